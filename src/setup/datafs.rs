//! Which file system the data directory lives on, and whether setup may write to it.
//!
//! Setup never writes to a disk or partition it did not create. The image makes the data
//! partition as ext4 labelled [`DATA_LABEL`] and mounts it on the data directory. When the
//! data directory is itself a mount point (a partition or disk of its own: the image's, or a
//! USB disk someone mounted there), setup uses it only if it is that partition, or already
//! holds this hub's data, or the owner named its device with `--accept-data-filesystem
//! DEVICE`: a typed confirmation, not a yes/no. A data directory that is an ordinary
//! directory inside a larger file system (a hub installed by hand, `/var` on a partition of
//! its own) is not a data partition and is used as it is.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The ext4 label `image/build.sh` gives the data partition.
pub const DATA_LABEL: &str = "musehub-data";

/// One line of `/proc/self/mountinfo`, the parts setup looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The device (`/dev/vda4`) or, for virtual file systems, whatever name it was given.
    pub source: String,
}

/// What setup found about the data directory's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An ordinary directory inside a larger file system (or not made yet): no data
    /// partition of its own.
    Directory,
    /// The data partition the image made (ext4, labelled `musehub-data`).
    Ours(Mount),
    /// Already holds this hub's data (a `setup.json` from an earlier run): accepted before.
    Known(Mount),
    /// Someone else's file system, accepted by the owner typing its device name.
    Accepted(Mount),
    /// Someone else's file system, not accepted: setup writes nothing.
    Foreign { mount: Mount, label: Option<String> },
}

impl Verdict {
    /// Says in words where the data lives, or why setup stopped.
    pub fn describe(&self, data_dir: &Path) -> String {
        let dir = data_dir.display();
        match self {
            Verdict::Directory => format!("{dir} is a directory, not a partition of its own."),
            Verdict::Ours(m) => format!("{dir} is on the hub's data partition {}.", m.source),
            Verdict::Known(m) => format!("{dir} on {} already holds this hub's data.", m.source),
            Verdict::Accepted(m) => format!(
                "{dir} is on {} ({}), used because you named it with --accept-data-filesystem.",
                m.source, m.fstype
            ),
            Verdict::Foreign { mount, label } => format!(
                "Setup stopped and wrote nothing: {dir} is on {} ({}{}), a file system this \
                 box did not create, and setup never writes to a disk it did not make. If the \
                 hub's data should live there, run setup again with \
                 --accept-data-filesystem {} (the device name, typed out, is the confirmation).",
                mount.source,
                mount.fstype,
                label
                    .as_deref()
                    .map(|l| format!(", labelled \"{l}\""))
                    .unwrap_or_default(),
                mount.source
            ),
        }
    }
}

/// Decides whether setup may use `data_dir`, reading the live mount table and, for the file
/// system holding it, the ext4 label from the device.
pub fn check(data_dir: &Path, accept: Option<&str>) -> std::io::Result<Verdict> {
    let Ok(dir) = std::fs::canonicalize(data_dir) else {
        // Not there yet: setup makes it, as a directory in whatever holds its parent.
        return Ok(Verdict::Directory);
    };
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mounts = parse_mountinfo(&table);
    let Some(mount) = containing(&mounts, &dir).filter(|m| m.mount_point == dir) else {
        return Ok(Verdict::Directory);
    };
    let label = if mount.fstype == "ext4" {
        ext4_label(Path::new(&mount.source)).ok().flatten()
    } else {
        None
    };
    let has_state = data_dir.join(super::STATE_FILE).is_file();
    Ok(judge(mount.clone(), label, has_state, accept))
}

/// The decision, apart from the system: `mount` is mounted on the data directory.
pub fn judge(
    mount: Mount,
    label: Option<String>,
    has_state: bool,
    accept: Option<&str>,
) -> Verdict {
    if mount.fstype == "ext4" && label.as_deref() == Some(DATA_LABEL) {
        Verdict::Ours(mount)
    } else if has_state {
        Verdict::Known(mount)
    } else if accept.is_some_and(|a| same_device(a, &mount.source)) {
        Verdict::Accepted(mount)
    } else {
        Verdict::Foreign { mount, label }
    }
}

/// `/dev/disk/by-label/x` and `/dev/sdb1` name the same device when both resolve to it.
fn same_device(typed: &str, source: &str) -> bool {
    if typed == source {
        return true;
    }
    match (std::fs::canonicalize(typed), std::fs::canonicalize(source)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The mount whose mount point is the longest prefix of `dir`; the last one listed wins
/// among mounts stacked on the same point (it is the one visible).
pub fn containing<'a>(mounts: &'a [Mount], dir: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| dir.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)
}

/// Parses `/proc/<pid>/mountinfo` (proc(5)): `id parent major:minor root mount-point options
/// [optional fields] - fstype source super-options`. Lines it cannot read are left out.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split(' ').nth(4)?;
            let mut rest = after.split(' ');
            let fstype = rest.next()?;
            let source = rest.next()?;
            Some(Mount {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: unescape(fstype),
                source: unescape(source),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes in mountinfo (`\040` for a space, `\134` for `\`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let n = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
            if let Ok(b) = u8::try_from(n) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The volume label of the ext2/3/4 file system on `device` (a block device or an image
/// file): `None` when it is not one or has no label.
pub fn ext4_label(device: &Path) -> std::io::Result<Option<String>> {
    // The superblock starts 1024 bytes in: the magic 0xEF53 at offset 0x38 (little endian),
    // the 16-byte volume name at 0x78.
    let mut superblock = [0u8; 1024 + 0x88];
    std::fs::File::open(device)?.read_exact(&mut superblock)?;
    let sb = &superblock[1024..];
    if sb[0x38..0x3a] != [0x53, 0xef] {
        return Ok(None);
    }
    let name = &sb[0x78..0x88];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok((end > 0).then(|| String::from_utf8_lossy(&name[..end]).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw
23 22 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw,size=10240k
40 22 254:4 / /var/lib/musehub rw,noatime shared:20 - ext4 /dev/vda4 rw
41 22 254:1 / /boot/firmware rw,relatime shared:21 - vfat /dev/vda1 rw,fmask=0077
42 22 8:17 / /media/my\\040music rw shared:22 - ntfs3 /dev/sdb1 rw
garbage line
";

    fn mount(point: &str, fstype: &str, source: &str) -> Mount {
        Mount {
            mount_point: point.into(),
            fstype: fstype.into(),
            source: source.into(),
        }
    }

    #[test]
    fn reads_mountinfo_with_escapes() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[2], mount("/var/lib/musehub", "ext4", "/dev/vda4"));
        assert_eq!(mounts[4], mount("/media/my music", "ntfs3", "/dev/sdb1"));
    }

    #[test]
    fn finds_the_innermost_mount() {
        let mounts = parse_mountinfo(MOUNTINFO);
        let at = |p: &str| containing(&mounts, Path::new(p)).map(|m| m.source.clone());
        assert_eq!(at("/var/lib/musehub").as_deref(), Some("/dev/vda4"));
        assert_eq!(at("/var/lib/musehub/blocks").as_deref(), Some("/dev/vda4"));
        assert_eq!(at("/var/lib/musehubx").as_deref(), Some("/dev/vda2"));
        assert_eq!(at("/media/my music/hub").as_deref(), Some("/dev/sdb1"));
        // Two file systems mounted on one point: the later one is the one in use.
        let stacked = [
            mount("/", "ext4", "/dev/vda2"),
            mount("/data", "ext4", "/dev/a"),
            mount("/data", "tmpfs", "b"),
        ];
        assert_eq!(
            containing(&stacked, Path::new("/data/x")).map(|m| m.source.as_str()),
            Some("b")
        );
    }

    #[test]
    fn judges_data_file_systems() {
        let data = mount("/var/lib/musehub", "ext4", "/dev/vda4");
        let usb = mount("/var/lib/musehub", "exfat", "/dev/sdb1");
        assert_eq!(
            judge(data.clone(), Some(DATA_LABEL.into()), false, None),
            Verdict::Ours(data.clone())
        );
        // An ext4 someone else made (another label) is foreign.
        assert!(matches!(
            judge(data.clone(), Some("backup".into()), false, None),
            Verdict::Foreign { .. }
        ));
        assert!(matches!(
            judge(usb.clone(), None, false, None),
            Verdict::Foreign { .. }
        ));
        // The confirmation must name the device; anything else is not one.
        assert!(matches!(
            judge(usb.clone(), None, false, Some("yes")),
            Verdict::Foreign { .. }
        ));
        assert_eq!(
            judge(usb.clone(), None, false, Some("/dev/sdb1")),
            Verdict::Accepted(usb.clone())
        );
        // Accepted once, the next run finds its own state there.
        assert_eq!(judge(usb.clone(), None, true, None), Verdict::Known(usb));
    }

    #[test]
    fn foreign_verdict_names_the_device_to_type() {
        let v = judge(
            mount("/var/lib/musehub", "vfat", "/dev/sdb1"),
            Some("MUSIC".into()),
            false,
            None,
        );
        let text = v.describe(Path::new("/var/lib/musehub"));
        assert!(
            text.contains("--accept-data-filesystem /dev/sdb1"),
            "{text}"
        );
        assert!(text.contains("labelled \"MUSIC\""), "{text}");
        assert!(text.contains("wrote nothing"), "{text}");
    }

    #[test]
    fn a_plain_directory_is_not_a_data_partition() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path(), None).unwrap(), Verdict::Directory);
        assert_eq!(
            check(&dir.path().join("not/made/yet"), None).unwrap(),
            Verdict::Directory
        );
    }

    #[test]
    fn reads_an_ext4_label_from_an_image_file() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let made = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", DATA_LABEL])
            .arg(&img)
            .status()
            .expect("mkfs.ext4 (e2fsprogs) is installed");
        assert!(made.success());
        assert_eq!(ext4_label(&img).unwrap().as_deref(), Some(DATA_LABEL));
        // Not a file system at all.
        let zeros = dir.path().join("zeros");
        std::fs::write(&zeros, vec![0u8; 4096]).unwrap();
        assert_eq!(ext4_label(&zeros).unwrap(), None);
    }
}
