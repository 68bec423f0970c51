//! Standard MIDI Files, read for display: a small strict parser and a server-rendered SVG
//! piano roll. Pure: bytes in, values or text out; no I/O and no HTTP.
//!
//! [`parse`] reads formats 0, 1 and 2 (the `MThd` header and its `MTrk` chunks; other chunk
//! types are skipped), with variable-length quantities, running status, sysex (`F0`/`F7`) and
//! meta events (tempo `51`, time signature `58`, end of track `2F`). Division may be ticks per
//! quarter note or SMPTE frames. Note-ons and note-offs are paired first in, first out per
//! channel and key (a note-on with velocity 0 is a note-off); a note still sounding when its
//! track ends lasts until the end of that track. Truncated chunks, over-long numbers, data
//! bytes without a status and impossible headers are refused with an [`Error`] that says
//! where; the total number of events is capped at [`MAX_EVENTS`] so a hostile file cannot
//! make the hub work for long.
//!
//! [`piano_roll_svg`] draws the notes: time runs left to right in seconds (through the tempo
//! map; 120 bpm until the file says otherwise), pitch bottom to top over the keys the file
//! uses (plus a few either side) with each C labelled, one colour per channel, light bar and
//! beat lines. The SVG has a `viewBox`, so it scales down on a phone, and `role="img"` with a
//! `<title>` and `<desc>` that give the track count, note count and duration.
//!
//! Format 2 files hold independent patterns; they are drawn on top of each other from time
//! zero with one shared tempo map.

use std::collections::VecDeque;
use std::fmt::Write as _;

/// Events (of every kind, over all tracks) after which a file is refused.
pub const MAX_EVENTS: usize = 1_000_000;

/// Notes drawn at most; a denser file shows its first notes in time and says so.
pub const MAX_DRAWN_NOTES: usize = 100_000;

/// Microseconds per quarter note until a tempo event says otherwise (120 bpm).
pub const DEFAULT_TEMPO: u32 = 500_000;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("it is not a Standard MIDI File (it does not start with an MThd header)")]
    NotMidi,
    #[error("the file ends inside {what} (at byte {at})")]
    Truncated { what: &'static str, at: usize },
    #[error("the MThd header says it is {0} bytes long; it must be at least 6")]
    ShortHeader(u32),
    #[error("the header says format {0}; MIDI files are format 0, 1 or 2")]
    Format(u16),
    #[error("the header's time division is zero ticks per quarter note")]
    ZeroDivision,
    #[error(
        "the header's SMPTE time division ({fps} frames per second, {ticks} ticks per frame) is not valid"
    )]
    BadSmpte { fps: i8, ticks: u8 },
    #[error("the chunk at byte {at} says it holds {len} bytes but only {left} follow")]
    ChunkTooLong { at: usize, len: u32, left: usize },
    #[error("the header says there are {declared} tracks but the file ends after {found}")]
    MissingTracks { declared: u16, found: u16 },
    #[error("track {track}: the number at byte {at} is longer than 4 bytes")]
    LongNumber { track: usize, at: usize },
    #[error("track {track}: the data byte {byte:#04x} at byte {at} has no status byte before it")]
    NoRunningStatus { track: usize, at: usize, byte: u8 },
    #[error("track {track}: byte {at} is {byte:#04x} where a data byte (below 0x80) belongs")]
    BadDataByte { track: usize, at: usize, byte: u8 },
    #[error("track {track}: the status byte {byte:#04x} at byte {at} cannot appear in a MIDI file")]
    BadStatus { track: usize, at: usize, byte: u8 },
    #[error("track {track}: the tempo event at byte {at} holds {len} bytes instead of 3")]
    BadTempo { track: usize, at: usize, len: usize },
    #[error("track {track}: the tempo event at byte {at} sets 0 microseconds per quarter note")]
    ZeroTempo { track: usize, at: usize },
    #[error("the file has more than {MAX_EVENTS} events")]
    TooManyEvents,
}

/// How the header counts time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Division {
    /// Ticks per quarter note (the usual case); seconds follow the tempo map.
    TicksPerQuarter(u16),
    /// SMPTE time: `fps` frames per second (24, 25, 29 meaning 29.97, or 30), each of
    /// `ticks_per_frame` ticks. Tempo events do not change it.
    Smpte { fps: u8, ticks_per_frame: u8 },
}

/// A sounded note, in ticks from the start of its track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    pub start: u64,
    /// The tick of its note-off (or of the end of its track).
    pub end: u64,
    pub key: u8,
    pub velocity: u8,
    /// 0-15 (channel 10 in musicians' numbering, drums, is 9).
    pub channel: u8,
    /// The index of its `MTrk` chunk.
    pub track: u16,
}

/// A parsed Standard MIDI File: what the piano roll needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Smf {
    pub format: u16,
    pub division: Division,
    /// `MTrk` chunks read.
    pub tracks: usize,
    /// Every note, ordered by start tick, then key.
    pub notes: Vec<Note>,
    /// Tempo changes (tick, microseconds per quarter note), ordered by tick.
    pub tempos: Vec<(u64, u32)>,
    /// Time signatures (tick, numerator, denominator as a power of two), ordered by tick.
    pub time_signatures: Vec<(u64, u8, u8)>,
    /// The tick at which the longest track ends.
    pub end_tick: u64,
}

/// Reads a Standard MIDI File. See the module documentation for what is accepted.
pub fn parse(bytes: &[u8]) -> Result<Smf, Error> {
    if bytes.get(..4) != Some(b"MThd".as_slice()) {
        return Err(Error::NotMidi);
    }
    let mut r = Cursor {
        data: bytes,
        pos: 4,
    };
    let len = r.u32("the MThd header")?;
    if len < 6 {
        return Err(Error::ShortHeader(len));
    }
    let header = r.take(len as usize, "the MThd header")?;
    let be16 = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let (format, declared, raw_division) = (be16(0), be16(2), be16(4));
    if format > 2 {
        return Err(Error::Format(format));
    }
    let division = if raw_division & 0x8000 != 0 {
        let fps = (raw_division >> 8) as u8 as i8;
        let ticks = (raw_division & 0xff) as u8;
        match (fps, ticks) {
            (-24 | -25 | -29 | -30, 1..) => Division::Smpte {
                fps: fps.unsigned_abs(),
                ticks_per_frame: ticks,
            },
            _ => return Err(Error::BadSmpte { fps, ticks }),
        }
    } else if raw_division == 0 {
        return Err(Error::ZeroDivision);
    } else {
        Division::TicksPerQuarter(raw_division)
    };

    let mut b = Builder::default();
    let mut found: u16 = 0;
    while found < declared {
        if r.is_empty() {
            return Err(Error::MissingTracks { declared, found });
        }
        let at = r.pos;
        let id = r.take(4, "a chunk header")?;
        let len = r.u32("a chunk header")?;
        let left = r.data.len() - r.pos;
        if len as usize > left {
            return Err(Error::ChunkTooLong { at, len, left });
        }
        let base = r.pos;
        let body = r.take(len as usize, "a chunk")?;
        if id == b"MTrk" {
            b.track(body, base, usize::from(found))?;
            found += 1;
        }
    }

    let Builder {
        mut notes,
        mut tempos,
        mut time_signatures,
        end_tick,
        ..
    } = b;
    notes.sort_by_key(|n| (n.start, n.key, n.channel));
    // Stable sorts: at equal ticks the later event (later track) wins.
    tempos.sort_by_key(|t| t.0);
    time_signatures.sort_by_key(|t| t.0);
    Ok(Smf {
        format,
        division,
        tracks: usize::from(found),
        notes,
        tempos,
        time_signatures,
        end_tick,
    })
}

/// A bounds-checked reader over the file.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Error::Truncated {
                what,
                at: self.data.len(),
            }),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A track's reader: positions are reported as offsets in the whole file.
struct TrackCursor<'a> {
    cur: Cursor<'a>,
    base: usize,
    track: usize,
}

impl<'a> TrackCursor<'a> {
    fn at(&self) -> usize {
        self.base + self.cur.pos
    }

    fn truncated(&self, what: &'static str) -> Error {
        Error::Truncated {
            what,
            at: self.base + self.cur.data.len(),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        self.cur.u8(what).map_err(|_| self.truncated(what))
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        self.cur.take(n, what).map_err(|_| self.truncated(what))
    }

    /// A data byte of a channel message.
    fn data(&mut self) -> Result<u8, Error> {
        let at = self.at();
        let byte = self.u8("a channel message")?;
        if byte >= 0x80 {
            return Err(Error::BadDataByte {
                track: self.track,
                at,
                byte,
            });
        }
        Ok(byte)
    }

    /// A variable-length quantity: at most 4 bytes, 7 bits each, high bit = more follow.
    fn vlq(&mut self, what: &'static str) -> Result<u32, Error> {
        let at = self.at();
        let mut v = 0u32;
        for _ in 0..4 {
            let b = self.u8(what)?;
            v = (v << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::LongNumber {
            track: self.track,
            at,
        })
    }
}

/// Collects notes and the tempo map across tracks.
#[derive(Default)]
struct Builder {
    notes: Vec<Note>,
    tempos: Vec<(u64, u32)>,
    time_signatures: Vec<(u64, u8, u8)>,
    end_tick: u64,
    events: usize,
    /// Sounding notes (start tick, velocity) per channel × key, oldest first; reused by
    /// every track.
    pending: Vec<VecDeque<(u64, u8)>>,
    /// The `pending` slots that may be non-empty.
    touched: Vec<usize>,
}

impl Builder {
    fn track(&mut self, body: &[u8], base: usize, index: usize) -> Result<(), Error> {
        if self.pending.is_empty() {
            self.pending = vec![VecDeque::new(); 16 * 128];
        }
        let track_no = u16::try_from(index).unwrap_or(u16::MAX);
        let mut r = TrackCursor {
            cur: Cursor { data: body, pos: 0 },
            base,
            track: index,
        };
        let mut tick = 0u64;
        let mut running: Option<u8> = None;
        while !r.cur.is_empty() {
            self.events += 1;
            if self.events > MAX_EVENTS {
                return Err(Error::TooManyEvents);
            }
            tick += u64::from(r.vlq("an event's delta time")?);
            let at = r.at();
            let first = r.u8("an event")?;
            let status = if first >= 0x80 {
                first
            } else {
                // Running status: this byte is the first data byte of a repeated message.
                let Some(s) = running else {
                    return Err(Error::NoRunningStatus {
                        track: index,
                        at,
                        byte: first,
                    });
                };
                r.cur.pos -= 1;
                s
            };
            match status {
                0x80..=0xef => {
                    running = Some(status);
                    let key = r.data()?;
                    let value = if matches!(status & 0xf0, 0xc0 | 0xd0) {
                        0
                    } else {
                        r.data()?
                    };
                    let channel = status & 0x0f;
                    let slot = usize::from(channel) * 128 + usize::from(key);
                    match status & 0xf0 {
                        0x90 if value > 0 => {
                            self.pending[slot].push_back((tick, value));
                            self.touched.push(slot);
                        }
                        0x80 | 0x90 => {
                            if let Some((start, velocity)) = self.pending[slot].pop_front() {
                                self.notes.push(Note {
                                    start,
                                    end: tick,
                                    key,
                                    velocity,
                                    channel,
                                    track: track_no,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                0xf0 | 0xf7 => {
                    let len = r.vlq("a sysex event")?;
                    r.take(len as usize, "a sysex event")?;
                }
                0xff => {
                    let kind = r.u8("a meta event")?;
                    let len = r.vlq("a meta event")? as usize;
                    let data = r.take(len, "a meta event")?;
                    match kind {
                        0x2f => break,
                        0x51 => {
                            if len != 3 {
                                return Err(Error::BadTempo {
                                    track: index,
                                    at,
                                    len,
                                });
                            }
                            let us = u32::from_be_bytes([0, data[0], data[1], data[2]]);
                            if us == 0 {
                                return Err(Error::ZeroTempo { track: index, at });
                            }
                            self.tempos.push((tick, us));
                        }
                        // Numerator, denominator as a power of two (up to 1/64 notes).
                        0x58 if len >= 2 && data[0] > 0 && data[1] <= 6 => {
                            self.time_signatures.push((tick, data[0], data[1]));
                        }
                        _ => {}
                    }
                }
                byte => {
                    return Err(Error::BadStatus {
                        track: index,
                        at,
                        byte,
                    });
                }
            }
        }
        // Notes still sounding end with their track.
        for slot in self.touched.drain(..) {
            let channel = (slot / 128) as u8;
            let key = (slot % 128) as u8;
            for (start, velocity) in self.pending[slot].drain(..) {
                self.notes.push(Note {
                    start,
                    end: tick,
                    key,
                    velocity,
                    channel,
                    track: track_no,
                });
            }
        }
        self.end_tick = self.end_tick.max(tick);
        Ok(())
    }
}

/// Ticks to seconds for one file.
#[derive(Debug, Clone)]
struct Clock {
    /// (tick, seconds at that tick, seconds per tick from there on), ordered by tick.
    segments: Vec<(u64, f64, f64)>,
}

impl Clock {
    fn new(smf: &Smf) -> Self {
        match smf.division {
            Division::Smpte {
                fps,
                ticks_per_frame,
            } => {
                let fps = if fps == 29 { 29.97 } else { f64::from(fps) };
                Clock {
                    segments: vec![(0, 0.0, 1.0 / (fps * f64::from(ticks_per_frame)))],
                }
            }
            Division::TicksPerQuarter(tpq) => {
                let per_tick = |us: u32| f64::from(us) / 1e6 / f64::from(tpq);
                let mut segments = vec![(0u64, 0.0, per_tick(DEFAULT_TEMPO))];
                for &(tick, us) in &smf.tempos {
                    let Some(&(t0, s0, pt)) = segments.last() else {
                        continue;
                    };
                    let s = s0 + (tick - t0) as f64 * pt;
                    if tick == t0 {
                        segments.pop();
                    }
                    segments.push((tick, s, per_tick(us)));
                }
                Clock { segments }
            }
        }
    }

    fn seconds(&self, tick: u64) -> f64 {
        let i = self.segments.partition_point(|s| s.0 <= tick);
        match i.checked_sub(1).and_then(|i| self.segments.get(i)) {
            Some(&(t0, s0, pt)) => s0 + (tick - t0) as f64 * pt,
            None => 0.0,
        }
    }
}

impl Smf {
    /// The length of the file in seconds (to the end of its longest track).
    pub fn duration_seconds(&self) -> f64 {
        Clock::new(self).seconds(self.end_tick)
    }
}

/// How the piano roll is drawn.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names the drawing in its `<title>` (the file's name, usually).
    pub title: String,
    /// The widest drawing, in pixels; long files are squeezed to fit.
    pub max_width: u32,
    /// Horizontal scale before squeezing.
    pub pixels_per_second: f64,
    /// Height of one key's row.
    pub row_height: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            title: "MIDI file".into(),
            max_width: 4000,
            pixels_per_second: 60.0,
            row_height: 8,
        }
    }
}

/// Reads `file` and draws its piano roll. See the module documentation.
pub fn piano_roll_svg(file: &[u8], opts: &Options) -> Result<String, Error> {
    let smf = parse(file)?;
    Ok(render(&smf, opts))
}

/// Left margin for the key labels.
const GUTTER: f64 = 34.0;
/// Top margin for bar numbers.
const TOP: f64 = 16.0;
const BOTTOM: f64 = 4.0;
/// Narrowest plot area.
const MIN_PLOT: f64 = 240.0;
/// Grid positions looked at, at most, over the whole file.
const GRID_BUDGET: u64 = 20_000;

/// One colour per channel, readable on the light background (channel 10, drums, is grey).
const PALETTE: [&str; 16] = [
    "#8a3b12", "#1d5fd6", "#2e7d32", "#b8860b", "#6a1b9a", "#00838f", "#c62828", "#4e342e",
    "#ad1457", "#616161", "#283593", "#558b2f", "#ef6c00", "#37474f", "#00695c", "#7b1fa2",
];

const NAMES: [&str; 12] = [
    "C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B",
];

/// `60` → `C4` (middle C).
fn key_name(key: u8) -> String {
    format!(
        "{}{}",
        NAMES[usize::from(key % 12)],
        i32::from(key / 12) - 1
    )
}

fn is_black(key: u8) -> bool {
    matches!(key % 12, 1 | 3 | 6 | 8 | 10)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `4.5 s`, `2:05`, `1:02:05`.
fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "0 s".into();
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Escapes text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Draws a parsed file. Writing to a `String` cannot fail, so `write!` results are ignored.
fn render(smf: &Smf, opts: &Options) -> String {
    let clock = Clock::new(smf);
    let duration = clock.seconds(smf.end_tick);
    let title = xml_escape(&opts.title);
    let mut desc = format!(
        "{}, {}, {} long",
        plural(smf.tracks, "track", "tracks"),
        plural(smf.notes.len(), "note", "notes"),
        human_duration(duration)
    );
    let mut out = String::new();
    let (Some(lo), Some(hi)) = (
        smf.notes.iter().map(|n| n.key).min(),
        smf.notes.iter().map(|n| n.key).max(),
    ) else {
        desc.push_str(", no notes");
        let _ = write!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 480 120" width="480" height="120" role="img" aria-labelledby="pr-title pr-desc" font-family="system-ui, sans-serif"><title id="pr-title">Piano roll of {title}</title><desc id="pr-desc">{desc}.</desc><rect width="480" height="120" fill="#fffdfa" stroke="#e3ddd4"/><text x="240" y="66" text-anchor="middle" font-size="16" fill="#5b554d">no notes</text></svg>"##
        );
        return out;
    };
    // The used keys and a few either side; at least an octave.
    let (mut lo, mut hi) = (lo.saturating_sub(3), hi.saturating_add(3).min(127));
    while hi - lo < 11 {
        lo = lo.saturating_sub(1);
        if hi - lo < 11 && hi < 127 {
            hi += 1;
        }
    }
    let drawn = smf.notes.len().min(MAX_DRAWN_NOTES);
    if drawn < smf.notes.len() {
        let _ = write!(desc, " (the first {drawn} notes are drawn)");
    }
    let _ = write!(desc, ", keys {} to {}", key_name(lo), key_name(hi));

    let row = f64::from(opts.row_height.clamp(2, 40));
    let pps = if opts.pixels_per_second.is_finite() && opts.pixels_per_second > 0.0 {
        opts.pixels_per_second
    } else {
        60.0
    };
    let max_plot = (f64::from(opts.max_width) - GUTTER).max(MIN_PLOT);
    let plot_w = (duration * pps).clamp(MIN_PLOT, max_plot);
    let scale = if duration > 0.0 {
        plot_w / duration
    } else {
        pps
    };
    let rows = f64::from(hi - lo + 1);
    let (w, h) = (
        (GUTTER + plot_w + 2.0).ceil(),
        (TOP + rows * row + BOTTOM).ceil(),
    );
    let x_of = |tick: u64| GUTTER + clock.seconds(tick) * scale;
    let y_of = |key: u8| TOP + f64::from(hi - key) * row;

    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" preserveAspectRatio="xMinYMin meet" role="img" aria-labelledby="pr-title pr-desc" font-family="system-ui, sans-serif" font-size="9"><title id="pr-title">Piano roll of {title}</title><desc id="pr-desc">{desc}.</desc>"##
    );
    out.push_str("<style>.k{fill:#f1ede6}.o{stroke:#d8d0c4}.g{stroke:#ebe5dc}.b{stroke:#cbc1b3}.l{fill:#5b554d}");
    for (i, c) in PALETTE.iter().enumerate() {
        let _ = write!(out, ".c{i}{{fill:{c}}}");
    }
    out.push_str("</style>");
    let _ = write!(out, r##"<rect width="{w}" height="{h}" fill="#fffdfa"/>"##);

    // Key rows: black keys shaded, a line under each C, C labels in the gutter.
    for key in lo..=hi {
        let y = y_of(key);
        if is_black(key) {
            let _ = write!(
                out,
                r#"<rect class="k" x="{GUTTER}" y="{y:.1}" width="{plot_w:.1}" height="{row}"/>"#
            );
        }
        if key % 12 == 0 {
            let yb = y + row;
            let _ = write!(
                out,
                r#"<line class="o" x1="{GUTTER}" y1="{yb:.1}" x2="{:.1}" y2="{yb:.1}"/><text class="l" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                GUTTER + plot_w,
                GUTTER - 4.0,
                y + row / 2.0 + 3.0,
                key_name(key)
            );
        }
    }

    grid(&mut out, smf, &x_of, h - BOTTOM);

    // Notes, one rect each, coloured by channel, more opaque when louder.
    for n in &smf.notes[..drawn] {
        let x = x_of(n.start);
        let nw = (x_of(n.end) - x).max(1.5);
        let y = y_of(n.key) + 0.5;
        let _ = write!(
            out,
            r#"<rect class="c{}" x="{x:.1}" y="{y:.1}" width="{nw:.1}" height="{:.1}" rx="1""#,
            n.channel,
            row - 1.0
        );
        if n.velocity < 120 {
            let _ = write!(
                out,
                r#" fill-opacity="{:.2}""#,
                0.35 + 0.65 * f64::from(n.velocity) / 127.0
            );
        }
        out.push_str("/>");
    }
    out.push_str("</svg>");
    out
}

/// Bar and beat lines with bar numbers (or one line a second for SMPTE files). Lines closer
/// than a few pixels are skipped, and at most [`GRID_BUDGET`] positions are looked at.
fn grid(out: &mut String, smf: &Smf, x_of: &dyn Fn(u64) -> f64, bottom: f64) {
    let end = smf.end_tick;
    if end == 0 {
        return;
    }
    // Sections of constant metre: (start tick, beats per bar, ticks per beat).
    let sections: Vec<(u64, u64, f64)> = match smf.division {
        Division::Smpte {
            fps,
            ticks_per_frame,
        } => {
            let fps = if fps == 29 { 29.97 } else { f64::from(fps) };
            vec![(0, 1, fps * f64::from(ticks_per_frame))]
        }
        Division::TicksPerQuarter(tpq) => {
            let mut v = vec![(0u64, 4u64, f64::from(tpq))];
            for &(tick, num, pow) in &smf.time_signatures {
                let beat = f64::from(tpq) * 4.0 / f64::from(1u32 << pow);
                if v.last().is_some_and(|s| s.0 == tick) {
                    v.pop();
                }
                if tick < end {
                    v.push((tick, u64::from(num), beat));
                }
            }
            v
        }
    };
    let (mut last_x, mut last_bar_x, mut last_label_x) =
        (f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut bar_no = 0u64;
    let mut looked = 0u64;
    for (i, &(start, per_bar, beat)) in sections.iter().enumerate() {
        let stop = sections.get(i + 1).map_or(end, |s| s.0);
        let beats = ((stop - start) as f64 / beat).ceil() as u64;
        // Too many beats to look at each: step whole bars.
        let stride = if beats > GRID_BUDGET {
            per_bar * beats.div_ceil(per_bar * GRID_BUDGET)
        } else {
            1
        };
        let mut b = 0u64;
        while b < beats {
            looked += 1;
            if looked > GRID_BUDGET * 4 {
                return;
            }
            let tick = start + (b as f64 * beat) as u64;
            let x = x_of(tick);
            let is_bar = b.is_multiple_of(per_bar);
            if is_bar {
                bar_no = bar_no.saturating_add(1);
                if x - last_bar_x >= 3.0 {
                    let _ = write!(
                        out,
                        r#"<line class="b" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}"/>"#
                    );
                    last_bar_x = x;
                    last_x = x;
                    if x - last_label_x >= 28.0 {
                        let label = if matches!(smf.division, Division::Smpte { .. }) {
                            format!("{}s", bar_no - 1)
                        } else {
                            bar_no.to_string()
                        };
                        let _ = write!(
                            out,
                            r#"<text class="l" x="{:.1}" y="{:.1}">{label}</text>"#,
                            x + 2.0,
                            TOP - 5.0
                        );
                        last_label_x = x;
                    }
                }
            } else if x - last_x >= 6.0 {
                let _ = write!(
                    out,
                    r#"<line class="g" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}"/>"#
                );
                last_x = x;
            }
            b += stride;
            if stride > 1 {
                bar_no = bar_no.saturating_add(stride / per_bar - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 14-byte header: format 1, two tracks, 480 ticks per quarter note.
    const HEADER: &str = "4d546864000000060001000201e0";

    fn header(format: u16, tracks: u16, division: u16) -> Vec<u8> {
        let mut v = b"MThd".to_vec();
        v.extend_from_slice(&6u32.to_be_bytes());
        v.extend_from_slice(&format.to_be_bytes());
        v.extend_from_slice(&tracks.to_be_bytes());
        v.extend_from_slice(&division.to_be_bytes());
        v
    }

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn track(events: &[u8]) -> Vec<u8> {
        let mut body = events.to_vec();
        body.extend_from_slice(&[0x00, 0xff, 0x2f, 0x00]);
        chunk(b"MTrk", &body)
    }

    /// Track 0: 120 bpm → 60 bpm after one quarter note. Track 1: C4 and E4 with running
    /// status and a velocity-0 note-off, plus a note on channel 10 that never ends.
    fn two_track_file() -> Vec<u8> {
        let mut f = hex::decode(HEADER).unwrap();
        f.extend(track(&[
            0x00, 0xff, 0x51, 0x03, 0x07, 0xa1, 0x20, // 500,000 µs at tick 0
            0x83, 0x60, 0xff, 0x51, 0x03, 0x0f, 0x42, 0x40, // 1,000,000 µs at tick 480
        ]));
        f.extend(track(&[
            0x00, 0x90, 60, 100, // C4 on
            0x83, 0x60, 60, 0, // running status, velocity 0: C4 off at 480
            0x00, 64, 90, // running status: E4 on at 480
            0x83, 0x60, 0x80, 64, 0, // E4 off at 960
            0x00, 0x99, 36, 127, // kick on channel 10, never released
            0x83, 0x60, 0xb0, 7, 100, // a controller at 1440
        ]));
        f
    }

    #[test]
    fn header_constant_is_the_format_one_header() {
        assert_eq!(hex::decode(HEADER).unwrap(), header(1, 2, 480));
    }

    #[test]
    fn notes_running_status_and_velocity_zero() {
        let smf = parse(&two_track_file()).unwrap();
        assert_eq!(smf.format, 1);
        assert_eq!(smf.division, Division::TicksPerQuarter(480));
        assert_eq!(smf.tracks, 2);
        assert_eq!(
            smf.notes,
            vec![
                Note {
                    start: 0,
                    end: 480,
                    key: 60,
                    velocity: 100,
                    channel: 0,
                    track: 1
                },
                Note {
                    start: 480,
                    end: 960,
                    key: 64,
                    velocity: 90,
                    channel: 0,
                    track: 1
                },
                Note {
                    start: 960,
                    end: 1440,
                    key: 36,
                    velocity: 127,
                    channel: 9,
                    track: 1
                },
            ]
        );
        assert_eq!(smf.end_tick, 1440);
    }

    #[test]
    fn tempo_changes_move_seconds() {
        let smf = parse(&two_track_file()).unwrap();
        assert_eq!(smf.tempos, vec![(0, 500_000), (480, 1_000_000)]);
        let clock = Clock::new(&smf);
        assert!((clock.seconds(480) - 0.5).abs() < 1e-9);
        assert!((clock.seconds(960) - 1.5).abs() < 1e-9);
        assert!((smf.duration_seconds() - 2.5).abs() < 1e-9);
        // Without tempo events: 120 bpm.
        let mut f = header(0, 1, 96);
        f.extend(track(&[0x00, 0x90, 60, 1, 0x60, 0x80, 60, 0]));
        let smf = parse(&f).unwrap();
        assert!((smf.duration_seconds() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn smpte_division_counts_frames() {
        // 25 fps, 40 ticks per frame: 1000 ticks per second.
        let mut f = header(0, 1, 0xe728);
        f.extend(track(&[0x00, 0x90, 60, 1, 0x87, 0x68, 0x80, 60, 0]));
        let smf = parse(&f).unwrap();
        assert_eq!(
            smf.division,
            Division::Smpte {
                fps: 25,
                ticks_per_frame: 40
            }
        );
        assert!((smf.duration_seconds() - 1.0).abs() < 1e-9);
        assert!(piano_roll_svg(&f, &Options::default()).is_ok());
        let mut bad = header(0, 1, 0xe500);
        bad.extend(track(&[]));
        assert!(matches!(parse(&bad), Err(Error::BadSmpte { .. })));
        let mut bad = header(0, 1, 0xe928); // -23 fps
        bad.extend(track(&[]));
        assert!(matches!(parse(&bad), Err(Error::BadSmpte { .. })));
    }

    #[test]
    fn sysex_meta_and_unknown_chunks_are_skipped() {
        let mut f = header(0, 1, 480);
        f.extend(chunk(b"XFIH", &[1, 2, 3]));
        f.extend(track(&[
            0x00, 0xf0, 0x03, 0x7e, 0x7f, 0xf7, // sysex
            0x00, 0xf7, 0x01, 0x00, // escape
            0x00, 0xff, 0x03, 0x04, b'P', b'i', b'a', b'n', // track name
            0x00, 0xff, 0x58, 0x04, 3, 2, 24, 8, // 3/4
            0x00, 0xc0, 5, // program change: one data byte
            0x00, 0x90, 67, 80, 0x81, 0x70, 0x80, 67, 64,
        ]));
        let smf = parse(&f).unwrap();
        assert_eq!(smf.notes.len(), 1);
        assert_eq!(smf.time_signatures, vec![(0, 3, 2)]);
        // Trailing bytes after End of Track inside a chunk are ignored.
        let mut g = header(0, 1, 480);
        g.extend(chunk(b"MTrk", &[0x00, 0xff, 0x2f, 0x00, 0xde, 0xad]));
        assert!(parse(&g).unwrap().notes.is_empty());
    }

    #[test]
    fn truncated_and_broken_files_are_refused() {
        let good = two_track_file();
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(parse(b"RIFF....WAVE"), Err(Error::NotMidi));
        assert!(matches!(
            parse(&hex::decode("4d546864000000060001").unwrap()),
            Err(Error::Truncated { .. })
        ));
        assert_eq!(
            parse(&hex::decode("4d54686400000004000100").unwrap()),
            Err(Error::ShortHeader(4))
        );
        let mut f = header(3, 1, 480);
        f.extend(track(&[]));
        assert_eq!(parse(&f), Err(Error::Format(3)));
        let mut f = header(0, 1, 0);
        f.extend(track(&[]));
        assert_eq!(parse(&f), Err(Error::ZeroDivision));
        // A chunk claiming 4 GiB.
        let mut f = header(0, 1, 480);
        f.extend_from_slice(b"MTrk\xff\xff\xff\xff\x00");
        assert!(matches!(parse(&f), Err(Error::ChunkTooLong { .. })));
        // Fewer tracks than declared.
        let mut f = header(1, 3, 480);
        f.extend(track(&[]));
        assert_eq!(
            parse(&f),
            Err(Error::MissingTracks {
                declared: 3,
                found: 1
            })
        );
        // A five-byte delta time.
        let mut f = header(0, 1, 480);
        f.extend(track(&[0x81, 0x81, 0x81, 0x81, 0x01, 0x90, 60, 1]));
        assert!(matches!(parse(&f), Err(Error::LongNumber { .. })));
        // A data byte first: no running status yet.
        let mut f = header(0, 1, 480);
        f.extend(track(&[0x00, 60, 100]));
        assert!(matches!(parse(&f), Err(Error::NoRunningStatus { .. })));
        // A status byte where a data byte belongs.
        let mut f = header(0, 1, 480);
        f.extend(track(&[0x00, 0x90, 60, 0x90]));
        assert!(matches!(parse(&f), Err(Error::BadDataByte { .. })));
        // System common messages are not file events.
        let mut f = header(0, 1, 480);
        f.extend(track(&[0x00, 0xf2, 0, 0]));
        assert!(matches!(
            parse(&f),
            Err(Error::BadStatus { byte: 0xf2, .. })
        ));
        // Tempo of the wrong length, and of zero.
        let mut f = header(0, 1, 480);
        f.extend(track(&[0x00, 0xff, 0x51, 0x02, 1, 2]));
        assert!(matches!(parse(&f), Err(Error::BadTempo { len: 2, .. })));
        let mut f = header(0, 1, 480);
        f.extend(track(&[0x00, 0xff, 0x51, 0x03, 0, 0, 0]));
        assert!(matches!(parse(&f), Err(Error::ZeroTempo { .. })));
        // A meta event longer than its track.
        let mut f = header(0, 1, 480);
        f.extend(chunk(b"MTrk", &[0x00, 0xff, 0x01, 0x7f, b'x']));
        assert!(matches!(parse(&f), Err(Error::Truncated { .. })));
        // Messages read naturally.
        let e = parse(&f).unwrap_err().to_string();
        assert!(e.starts_with("the file ends inside a meta event"), "{e}");
    }

    #[test]
    fn event_count_is_capped() {
        // 1,000,001 one-byte-delta program changes with running status: 3 bytes each.
        let mut body = vec![0x00, 0xc0, 0x00];
        body.extend(std::iter::repeat_n([0x00u8, 0x00], MAX_EVENTS).flatten());
        let mut f = header(0, 1, 480);
        f.extend(chunk(b"MTrk", &body));
        assert_eq!(parse(&f), Err(Error::TooManyEvents));
    }

    #[test]
    fn overlapping_same_key_notes_pair_first_in_first_out() {
        let mut f = header(0, 1, 480);
        f.extend(track(&[
            0x00, 0x90, 60, 10, 0x10, 0x90, 60, 20, 0x10, 0x80, 60, 0, 0x10, 0x80, 60, 0,
            // A note-off with nothing sounding is ignored.
            0x10, 0x80, 61, 0,
        ]));
        let smf = parse(&f).unwrap();
        let pairs: Vec<_> = smf
            .notes
            .iter()
            .map(|n| (n.start, n.end, n.velocity))
            .collect();
        assert_eq!(pairs, vec![(0, 32, 10), (16, 48, 20)]);
    }

    #[test]
    fn svg_describes_the_file() {
        let opts = Options {
            title: "song <1> & \"2\".mid".into(),
            ..Options::default()
        };
        let svg = piano_roll_svg(&two_track_file(), &opts).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("<title id=\"pr-title\">Piano roll of song &lt;1&gt; &amp; &quot;2&quot;.mid</title>"), "{svg}");
        assert!(
            svg.contains("<desc id=\"pr-desc\">2 tracks, 3 notes, 2.5 s long, keys "),
            "{svg}"
        );
        assert_eq!(svg.matches("class=\"c0\"").count(), 2);
        assert_eq!(svg.matches("class=\"c9\"").count(), 1);
        assert!(svg.contains(">C4</text>") && svg.contains(">C3</text>"));
        assert!(svg.contains(r#"class="b""#), "bar lines");
        // Balanced tags, no raw ampersands.
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(!svg.contains("& "));
    }

    #[test]
    fn width_scales_with_duration_and_is_capped() {
        let width = |svg: &str| -> f64 {
            let s = svg.split("width=\"").nth(1).unwrap();
            s[..s.find('"').unwrap()].parse().unwrap()
        };
        let file = |ticks: u32| {
            let mut f = header(0, 1, 480);
            let mut ev = vec![0x00, 0x90, 60, 100];
            let mut v = ticks;
            let mut vlq = vec![(v & 0x7f) as u8];
            v >>= 7;
            while v > 0 {
                vlq.insert(0, 0x80 | (v & 0x7f) as u8);
                v >>= 7;
            }
            ev.extend(vlq);
            ev.extend([0x80, 60, 0]);
            f.extend(track(&ev));
            f
        };
        let opts = Options::default();
        let short = width(&piano_roll_svg(&file(480 * 20), &opts).unwrap()); // 10 s
        let long = width(&piano_roll_svg(&file(480 * 60), &opts).unwrap()); // 30 s
        let huge = width(&piano_roll_svg(&file(0x0fff_ffff), &opts).unwrap());
        assert!(short < long, "{short} {long}");
        assert!(huge <= 4000.0 + 2.0, "{huge}");
    }

    #[test]
    fn empty_file_says_no_notes() {
        let mut f = header(1, 2, 480);
        f.extend(track(&[]));
        f.extend(track(&[0x00, 0xff, 0x51, 0x03, 0x07, 0xa1, 0x20]));
        let svg = piano_roll_svg(&f, &Options::default()).unwrap();
        assert!(
            svg.contains("no notes") && svg.contains("2 tracks, 0 notes"),
            "{svg}"
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // No tracks at all is a valid, empty file too.
        let svg = piano_roll_svg(&header(1, 0, 480), &Options::default()).unwrap();
        assert!(svg.contains("0 tracks, 0 notes"));
    }

    #[test]
    fn key_names() {
        assert_eq!(key_name(60), "C4");
        assert_eq!(key_name(0), "C-1");
        assert_eq!(key_name(127), "G9");
        assert_eq!(human_duration(4.49), "4.5 s");
        assert_eq!(human_duration(125.0), "2:05");
        assert_eq!(human_duration(3725.0), "1:02:05");
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut s = 0x2545_f491_4f6c_dd1d_u64;
        let good = two_track_file();
        let opts = Options::default();
        for round in 0..4000 {
            let len = (xorshift(&mut s) % 200) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| xorshift(&mut s) as u8).collect();
            match round % 4 {
                // A valid header followed by noise.
                0 => {
                    let mut f = header((round / 4 % 3) as u16, 1, 96);
                    f.extend_from_slice(b"MTrk");
                    f.extend_from_slice(&(len as u32).to_be_bytes());
                    f.append(&mut buf);
                    buf = f;
                }
                // A good file with a few bytes changed.
                1 => {
                    buf = good.clone();
                    for _ in 0..1 + xorshift(&mut s) % 4 {
                        let i = (xorshift(&mut s) as usize) % buf.len();
                        buf[i] = xorshift(&mut s) as u8;
                    }
                }
                // A good file cut short or extended with noise.
                2 => {
                    buf = good[..(xorshift(&mut s) as usize) % good.len()].to_vec();
                    buf.extend((0..xorshift(&mut s) % 8).map(|_| xorshift(&mut s) as u8));
                }
                _ => {}
            }
            if let Ok(svg) = piano_roll_svg(&buf, &opts) {
                assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            }
        }
    }
}
