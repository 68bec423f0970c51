// End-to-end test of musehub's web UI in a real browser.
//
// Starts the real hub binary ($MUSEHUB_BIN, default target/debug/musehub) on 127.0.0.1:0 with a
// temporary data directory, pushes a realistic song over the Muse wire protocol (seed.mjs),
// then opens every page of the UI in Debian's headless Chromium (/usr/bin/chromium, driven by
// playwright-core; no browser is ever downloaded) and for each one checks the HTTP status, the
// text it must show, that none of its images, styles or scripts fail to load and that the
// console stays clean; takes full-page screenshots into target/ui-screenshots/ (1280×800, and
// 390×844 for the key pages); and runs axe-core, failing on any `serious` or `critical`
// violation. Ends with the sign-in flow (`musehub login-link alice`, "Sign in", /settings).
//
// Prints `e2e: N passed, M failed` and exits non-zero on any failure.
//
// Environment: MUSEHUB_BIN (the hub binary), CHROMIUM (default /usr/bin/chromium),
// E2E_KEEP=1 keeps the temporary data directory, E2E_ONLY=name,name runs only those pages.

import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

import * as seed from './seed.mjs';

const require = createRequire(import.meta.url);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = resolve(ROOT, process.env.MUSEHUB_BIN || 'target/debug/musehub');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(ROOT, 'target', 'ui-screenshots');
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const ONLY = process.env.E2E_ONLY ? new Set(process.env.E2E_ONLY.split(',')) : null;
const NOT_YET = 'not available yet';

// The browser must never reach for the internet (the machine has none and CI must not try).
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

const started = Date.now();
const results = [];
const cleanup = [];

function log(msg = '') {
  process.stdout.write(`${msg}\n`);
}

/** The environment for the hub binary: ours minus every MUSEHUB_* setting, logging at warn. */
function hubEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MUSEHUB_')) env[k] = v;
  // The IPFS node on loopback only, with no bootstrap peers and no mDNS.
  return {
    ...env,
    MUSEHUB_LOG: 'warn',
    MUSEHUB_IPFS_LISTEN: '/ip4/127.0.0.1/tcp/0',
    MUSEHUB_IPFS_BOOTSTRAP: '',
    MUSEHUB_IPFS_MDNS: 'false',
    MUSEHUB_FEDERATION_MDNS: 'false',
    ...extra,
  };
}

/** Runs `musehub --data-dir DIR ARGS…` to completion and returns its stdout. */
async function admin(dataDir, args, extraEnv = {}) {
  try {
    const { stdout } = await promisify(execFile)(BIN, ['--data-dir', dataDir, ...args], {
      env: hubEnv(extraEnv),
      timeout: 30_000,
    });
    return stdout;
  } catch (e) {
    const why = (e.stderr || e.message || '').toString().trim().split('\n').slice(0, 6).join('\n      ');
    throw new Error(`\`musehub ${args.join(' ')}\` failed (exit ${e.code}): ${why}`);
  }
}

/** Starts `musehub serve` on 127.0.0.1:0 and resolves with its URL and its log. */
function startHub(dataDir) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(BIN, ['--data-dir', dataDir, 'serve', '--listen', '127.0.0.1:0'], {
      env: hubEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const hub = { child, url: null, log: [] };
    let pending = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the hub did not report its address within 30 s:\n${hub.log.join('\n')}`));
    }, 30_000);
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${BIN}: ${e.message}`)); });
    child.on('exit', (code, signal) => {
      if (!hub.url) { clearTimeout(timer); reject(new Error(`the hub exited (${code ?? signal}) before listening:\n${hub.log.join('\n')}`)); }
      hub.exited = code ?? signal;
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const m = !hub.url && line.match(/listening on (http:\/\/\S+)/);
        if (m) {
          hub.url = m[1].replace(/\/$/, '');
          clearTimeout(timer);
          resolveStart(hub);
        } else if (!line.startsWith('(plain http')) {
          hub.log.push(line);
        }
      }
    });
  });
}

async function stopHub(hub) {
  if (hub.exited !== undefined) return;
  const gone = new Promise((r) => hub.child.once('exit', r));
  hub.child.kill('SIGTERM');
  const t = setTimeout(() => hub.child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(t);
}

function record(name, problems, notes = []) {
  results.push({ name, ok: problems.length === 0, problems, notes });
  const head = problems.length === 0 ? 'ok  ' : 'FAIL';
  log(`${head} ${name}${notes.length ? `  (${notes.join('; ')})` : ''}`);
  for (const p of problems) log(`       - ${p.replace(/\n/g, '\n         ')}`);
}

/** axe-core on the current page: [failing (serious|critical) lines, other lines]. */
async function axe(page) {
  // Not page.addScriptTag: the pages' CSP (script-src 'self') blocks the inline <script> it
  // adds, and bypassing CSP would hide the pages' own violations. Evaluating through the
  // DevTools protocol is not subject to the page's CSP.
  const ready = await page.evaluate(() => typeof window.axe === 'object');
  if (!ready) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    const violations = r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary, html: n.html })),
    }));
    return { violations, passes: r.passes.length };
  });
  const fail = [];
  const other = [];
  for (const v of result.violations) {
    const where = v.nodes.slice(0, 4).map((n) => `${n.target}  ${n.html.slice(0, 110).replace(/\s+/g, ' ')}`);
    const more = v.nodes.length > 4 ? [`… and ${v.nodes.length - 4} more`] : [];
    const summary = v.nodes[0]?.summary?.split('\n').slice(0, 3).join(' / ') ?? '';
    const line = `axe ${v.impact} ${v.id}: ${v.help} (${v.nodes.length} element(s))\n  ${[...where, ...more].join('\n  ')}\n  ${summary}`;
    (v.impact === 'serious' || v.impact === 'critical' ? fail : other).push(line);
  }
  return [fail, other, result.passes];
}

/**
 * Opens `path` and checks it. `expect(page, watch, notes)` adds page-specific checks: it returns
 * problem strings and may push notes.
 */
async function visit(page, hub, spec) {
  const { name, path, status = 200, text = [], phone = false, expect } = spec;
  if (ONLY && !ONLY.has(name)) return;
  const problems = [];
  const notes = [];
  const watch = watchPage(page);
  const t0 = Date.now();
  try {
    await page.setViewportSize(DESKTOP);
    let res;
    if (spec.navigate) {
      res = await spec.navigate(page);
    } else {
      res = await page.goto(`${hub.url}${path}`, { waitUntil: 'load', timeout: 20_000 });
    }
    const statusOk = await checkDocument(page, res, status, text, problems);
    // A page that is missing or broken gets no further checks: its status says it all.
    if (expect && statusOk) problems.push(...((await expect(page, watch, notes)) ?? []));
    await settle(page);
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    if (phone) {
      await page.setViewportSize(PHONE);
      await settle(page);
      await page.screenshot({ path: join(SHOTS, `${name}-phone.png`), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 0) notes.push(`phone: scrolls sideways by ${overflow}px`);
      await page.setViewportSize(DESKTOP);
    }
    const [axeFail, axeOther, axePasses] = await axe(page);
    problems.push(...axeFail);
    notes.push(`axe: ${axePasses} rules pass, ${axeFail.length} serious/critical, ${axeOther.length} moderate/minor`);
    spec.axeOther = axeOther;
  } catch (e) {
    problems.push(`error: ${e.message.split('\n').slice(0, 4).join(' | ')}`);
  }
  problems.push(...watch.problems());
  watch.stop();
  notes.unshift(`${Date.now() - t0} ms`);
  record(`${name} ${path ?? ''}`.trim(), problems, notes);
  for (const o of spec.axeOther ?? []) log(`       · ${o.replace(/\n/g, '\n         ')}`);
}

/** The main document: status, HTML, "not available yet", required text. */
async function checkDocument(page, res, status, text, problems) {
  if (!res) {
    problems.push('no response for the page');
    return false;
  }
  const got = res.status();
  const ct = res.headers()['content-type'] ?? '';
  const body = (await page.locator('body').innerText().catch(() => '')) || '';
  if (got !== status) {
    const hint = body.includes(NOT_YET) ? ' — the page is NOT IMPLEMENTED YET ("not available yet")' : '';
    problems.push(`HTTP ${got}, expected ${status}${hint}: ${body.replace(/\s+/g, ' ').slice(0, 160)}`);
  }
  if (!ct.startsWith('text/html')) problems.push(`Content-Type is ${JSON.stringify(ct)}, not text/html`);
  if (got === status) {
    for (const t of text) {
      if (!body.includes(t)) problems.push(`the page does not show ${JSON.stringify(t)}`);
    }
  }
  return got === status;
}

/** Waits until fonts and images are done, so screenshots show the finished page. */
async function settle(page) {
  await page.waitForLoadState('load');
  await page.evaluate(async () => {
    await document.fonts?.ready;
    await Promise.all([...document.images].map((img) => (img.complete ? null : new Promise((r) => { img.onload = img.onerror = r; }))));
  });
}

/** Collects console errors, page errors and failed subresources while a page is checked. */
function watchPage(page) {
  const errors = [];
  const failed = [];
  const responses = [];
  const onConsole = (m) => {
    if (m.type() !== 'error') return;
    const url = m.location()?.url ?? '';
    // The 404 page's own status and the browser's automatic favicon request are expected.
    if (/Failed to load resource/.test(m.text()) && (url === page.url() || url.endsWith('/favicon.ico'))) return;
    errors.push(`console error: ${m.text().slice(0, 300)}${url ? ` (${url})` : ''}`);
  };
  const onPageError = (e) => errors.push(`uncaught exception: ${e.message.slice(0, 300)}`);
  const onResponse = (r) => {
    responses.push(r);
    const req = r.request();
    if (req.resourceType() === 'document' && req.frame() === page.mainFrame()) return;
    if (r.url().endsWith('/favicon.ico')) return;
    if (r.status() >= 400) failed.push(`${req.resourceType()} ${r.url()} answered ${r.status()}`);
  };
  const onRequestFailed = (req) => {
    const why = req.failure()?.errorText ?? '';
    // A media element aborting its own range request when it has enough is normal.
    if (why === 'net::ERR_ABORTED' && req.resourceType() === 'media') return;
    if (req.url().endsWith('/favicon.ico')) return;
    failed.push(`${req.resourceType()} ${req.url()} failed: ${why}`);
  };
  page.on('console', onConsole);
  page.on('pageerror', onPageError);
  page.on('response', onResponse);
  page.on('requestfailed', onRequestFailed);
  return {
    responses,
    problems: () => [...errors, ...failed],
    stop() {
      page.off('console', onConsole);
      page.off('pageerror', onPageError);
      page.off('response', onResponse);
      page.off('requestfailed', onRequestFailed);
    },
  };
}

/** The piano roll of a MIDI blob must be an image that loads. */
async function expectPianoRoll(page, _watch, notes) {
  const imgs = await page.evaluate(() => [...document.querySelectorAll('main img')].map((i) => ({
    src: i.currentSrc || i.src, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, alt: i.getAttribute('alt'),
  })));
  const roll = imgs.filter((i) => i.src.includes('pianoroll'));
  if (roll.length === 0) {
    return [`no piano roll <img> (src containing "pianoroll") in <main>; images: ${JSON.stringify(imgs.map((i) => i.src))}`];
  }
  const problems = [];
  for (const img of roll) {
    if (img.w > 0 && img.h > 0) {
      notes.push(`piano roll ${img.w}×${img.h}`);
      continue;
    }
    const probe = await page.evaluate(async (src) => {
      const r = await fetch(src);
      return { status: r.status, type: r.headers.get('content-type'), head: (await r.text()).slice(0, 160) };
    }, img.src);
    problems.push(`piano roll image ${img.src} did not load (naturalWidth ${img.w}, naturalHeight ${img.h}); GET answered ${probe.status} ${probe.type}: ${probe.head.replace(/\s+/g, ' ')}`
      + (probe.status === 200 && /svg/.test(probe.type ?? '') ? ' (an SVG needs width and height attributes to have a natural size)' : ''));
  }
  return problems;
}

/** The audio player of a WAV blob must play, or at least buffer through a 206 range answer. */
async function expectAudio(page, watch, notes) {
  const count = await page.locator('main audio').count();
  if (count === 0) return ['no <audio> element in <main>'];
  const state = await page.evaluate(async () => {
    const a = document.querySelector('main audio');
    a.muted = true;
    let playError = null;
    try {
      await a.play();
    } catch (e) {
      playError = `${e.name}: ${e.message}`;
    }
    const until = Date.now() + 5_000;
    while (a.currentTime <= 0 && Date.now() < until && !a.error) await new Promise((r) => setTimeout(r, 100));
    const out = {
      src: a.currentSrc,
      currentTime: a.currentTime,
      readyState: a.readyState,
      duration: a.duration,
      error: a.error ? `${a.error.code} ${a.error.message}` : null,
      playError,
    };
    a.pause();
    return out;
  });
  const ranged = watch.responses.filter((r) => r.request().resourceType() === 'media' && r.status() === 206);
  const mediaStatuses = watch.responses.filter((r) => r.request().resourceType() === 'media').map((r) => r.status());
  const said = `currentTime ${state.currentTime}, readyState ${state.readyState}, duration ${state.duration}, media answers ${JSON.stringify(mediaStatuses)}${state.playError ? `, play() threw ${state.playError}` : ''}${state.error ? `, media error ${state.error}` : ''}`;
  if (state.currentTime > 0) {
    notes.push(`audio played to ${state.currentTime.toFixed(2)} s`);
    return [];
  }
  if (state.readyState >= 2 && ranged.length > 0) {
    notes.push(`audio buffered (readyState ${state.readyState}, ${ranged.length} answer(s) 206)`);
    return [];
  }
  return [`the audio (${state.src || 'no source'}) neither played nor buffered through a 206 range answer: ${said}`];
}

/** Signs in with a one-time link: the form, the "Sign in" button, then /settings. */
async function signIn(page, hub, dataDir) {
  let link;
  const problems = [];
  try {
    const out = await admin(dataDir, ['login-link', 'alice'], { MUSEHUB_PUBLIC_URL: hub.url });
    link = out.split('\n')[0].trim();
    if (!/^https?:\/\//.test(link)) throw new Error(`\`musehub login-link alice\` printed ${JSON.stringify(link)}, not a URL`);
  } catch (e) {
    record('login  musehub login-link alice', [e.message]);
    record('settings  /settings (after "Sign in")', ['skipped: no sign-in link']);
    return;
  }
  // The link carries the configured public URL; the hub under test listens elsewhere.
  const u = new URL(link);
  const path = `${u.pathname}${u.search}`;
  await visit(page, hub, {
    name: 'login',
    path,
    phone: true,
    expect: async (p) => ((await p.getByRole('button', { name: /sign in/i }).count()) === 0 ? ['no "Sign in" button'] : []),
  });
  await visit(page, hub, {
    name: 'settings',
    path: '/settings',
    phone: true,
    text: ['alice'],
    navigate: async (p) => {
      if (!p.url().includes(u.pathname)) await p.goto(`${hub.url}${path}`, { waitUntil: 'load' });
      const button = p.getByRole('button', { name: /sign in/i });
      if ((await button.count()) === 0) throw new Error(`no "Sign in" button at ${p.url()}`);
      const [res] = await Promise.all([
        p.waitForResponse((r) => new URL(r.url()).pathname === '/settings' && r.request().resourceType() === 'document', { timeout: 15_000 }),
        button.first().click(),
      ]);
      await p.waitForLoadState('load');
      if (new URL(p.url()).pathname !== '/settings') problems.push(`landed on ${p.url()}, not /settings`);
      return res;
    },
    expect: async () => problems,
  });
}

async function main() {
  log(`e2e: hub ${BIN}`);
  log(`e2e: browser ${CHROMIUM}`);
  if (!existsSync(BIN)) throw new Error(`${BIN} does not exist: run \`cargo build\` first or set MUSEHUB_BIN`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} does not exist: apt-get install -y chromium`);
  mkdirSync(SHOTS, { recursive: true });
  for (const f of readdirSync(SHOTS)) if (f.endsWith('.png')) rmSync(join(SHOTS, f));

  const work = mkdtempSync(join(tmpdir(), 'musehub-e2e-'));
  cleanup.push(() => {
    if (process.env.E2E_KEEP) log(`e2e: kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  });
  const dataDir = join(work, 'hub');

  await admin(dataDir, ['user', 'add', 'alice']);
  const token = (await admin(dataDir, ['token', 'create', '--user', 'alice'])).split('\n')[0].trim();
  const hub = await startHub(dataDir);
  cleanup.unshift(() => stopHub(hub));
  // Whatever happens to this process, the hub goes with it.
  process.on('exit', () => { if (hub.exited === undefined) hub.child.kill('SIGKILL'); });
  log(`e2e: hub at ${hub.url} (data in ${dataDir})`);

  let song;
  try {
    song = await seed.push(`${hub.url}/alice/song`, token);
    record('seed  alice/song over the wire protocol', [], [`${song.main.length} commits on main, 1 on feature/chorus, ${song.objects} objects, release v1.0.0`]);
  } catch (e) {
    record('seed  alice/song over the wire protocol', [e.message]);
    song = { ...seed.history() };
    song.tip = song.main[song.main.length - 1];
  }

  const context = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: DESKTOP,
    locale: 'en-GB',
    timezoneId: 'UTC',
    acceptDownloads: false,
  });
  cleanup.unshift(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);

  const tip = song.tip;
  const pages = [
    { name: 'home', path: '/', phone: true, text: ['alice/song'] },
    { name: 'user', path: '/alice', text: ['song', 'Key anchoring'] },
    { name: 'repo', path: '/alice/song', phone: true, text: ['late trains and early mornings', 'README.md', 'lyrics.txt'] },
    { name: 'branches', path: '/alice/song/branches', text: ['main', 'feature/chorus'] },
    { name: 'commits', path: '/alice/song/commits/main', phone: true, text: song.main.map((c) => c.message) },
    { name: 'commit', path: `/alice/song/commit/${tip.id}`, phone: true, text: [tip.message, 'lyrics.txt'] },
    { name: 'tree', path: '/alice/song/tree/main', text: ['README.md', 'lyrics.txt', 'tracks', 'stems'] },
    { name: 'tree-tracks', path: '/alice/song/tree/main/tracks', text: ['drums.mid'] },
    { name: 'tree-branch', path: '/alice/song/tree/feature/chorus/tracks', text: ['drums.mid', 'keys.mid'] },
    { name: 'blob-readme', path: '/alice/song/blob/main/README.md', text: ['late trains and early mornings'],
      expect: async (p) => ((await p.locator('main h1, main h2').filter({ hasText: /Song|Parts/ }).count()) === 0 ? ['the README is not rendered as Markdown (no "Song"/"Parts" heading in <main>)'] : []) },
    { name: 'blob-lyrics', path: '/alice/song/blob/main/lyrics.txt', text: ['the platform lights are counting me', 'the station sleeps'] },
    { name: 'blob-midi', path: '/alice/song/blob/main/tracks/drums.mid', phone: true, expect: expectPianoRoll },
    { name: 'blob-wav', path: '/alice/song/blob/main/stems/bass.wav', phone: true, expect: expectAudio },
    { name: 'releases', path: '/alice/song/releases', text: ['v1.0.0'] },
    { name: 'release', path: '/alice/song/release/v1.0.0', text: ['v1.0.0', 'First cut'] },
    { name: 'node', path: '/node', text: ['Objects'] },
    { name: 'peers', path: '/peers', text: ['Followed hubs', 'On your LAN'] },
    { name: 'connect', path: '/connect', text: ['muse auth login'] },
    { name: 'not-found', path: '/alice/song/no/such/page', status: 404, text: ['Nothing here'] },
  ];
  for (const spec of pages) await visit(page, hub, spec);
  if (!ONLY || ONLY.has('login') || ONLY.has('settings')) await signIn(page, hub, dataDir);

  if (hub.exited !== undefined) record('hub', [`the hub exited during the run (${hub.exited})`]);
  if (hub.log.length) {
    log(`e2e: the hub logged ${hub.log.length} line(s) at warn level or above:`);
    for (const l of hub.log.slice(0, 50)) log(`  ${l}`);
  }
}

let fatal = null;
// A stray promise must not end the run before the cleanup (and leave a hub behind).
process.on('unhandledRejection', (e) => record('e2e harness', [`unhandled rejection: ${e?.stack ?? e}`]));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
try {
  await main();
} catch (e) {
  fatal = e;
}
for (const f of cleanup) {
  try {
    await f();
  } catch (e) {
    log(`e2e: cleanup: ${e.message}`);
  }
}
if (fatal) record('e2e harness', [fatal.stack ?? String(fatal)]);
const failed = results.filter((r) => !r.ok);
log();
if (failed.length) log(`e2e: failing: ${failed.map((r) => r.name.split(/\s+/)[0]).join(', ')}`);
log(`e2e: screenshots in ${SHOTS}; took ${((Date.now() - started) / 1000).toFixed(1)} s`);
log(`e2e: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
