// UI benchmark against a real `holdfast serve` in Debian's Chromium (plain node; `npm run bench`).
//
// 1. First render on a warm start: the engine is already running and the browser cache warm;
//    time from navigation start to the Volumes screen showing the volume list (a volume card in
//    the DOM), measured in the page against performance.timeOrigin. Median of N loads. Target < 1 s.
// 2. Hold-queue panel smoothness: fio writes 4 KiB random blocks over NBD at high queue depth
//    while volume-policy backups run back to back for DURATION s. In the page, a MutationObserver
//    on the volume's hold panel marks frames in which the panel changed; the count of such frames
//    per second is the panel update rate (target ≥ 30/s). The renderer's JS heap is read over CDP
//    after a forced GC at the start and the end of the window (target: no growth). The write rate
//    is fio's own figure plus the engine's held-write count.
// 3. The same measure with an in-process writer asked for 50,000 writes/s (UI_BENCH_ENGINE_RATE): fio
//    over NBD cannot reach that rate on a 2-core machine (fio alone costs ~12 µs of CPU per
//    write), so `dist/bench/ui-serve-load.cjs` — holdfast serve plus a writer calling the
//    volume's write path (journal, hold queue, events) directly — serves the UI instead, and
//    its own count of acknowledged writes is the write rate. Results go to bench/results/ui.json.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'];
const LOADS = Number(process.env.UI_BENCH_LOADS ?? 15);
const DURATION = Number(process.env.UI_BENCH_SECONDS ?? 60);
const VOL = 512 << 20;
/** fio jobs, each its own NBD connection (the server advertises multi-conn). */
const FIO_JOBS = Number(process.env.UI_BENCH_FIO_JOBS ?? 1);

if (!existsSync(CHROMIUM)) {
  console.log(`ui bench skipped: ${CHROMIUM} is missing`);
  process.exit(0);
}
if (!existsSync(path.join(root, 'dist/cli.cjs')) || !existsSync(path.join(root, 'dist/renderer/index.html')))
  spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** `holdfast serve` on dataDir, or (withLoad) the same engine and UI with the in-process writer. */
async function startServe(dataDir, withLoad = false) {
  // UI_BENCH_SERVE_NODE_ARGS: extra node flags for the engine process (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
  const nodeArgs = (process.env.UI_BENCH_SERVE_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = withLoad
    ? ['dist/bench/ui-serve-load.cjs', '--data', dataDir]
    : ['bin/holdfast.cjs', 'serve', '--port', '0', '--nbd-port', '0', '--no-open', '--data', dataDir];
  const child = spawn(process.execPath, [...nodeArgs, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  // Lines after the first (the in-process writer's answers) go to whoever waits for them.
  const lineWaiters = [];
  let rest = '';
  let first = true;
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const line = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      rest += c;
      for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
        const l = rest.slice(0, i);
        rest = rest.slice(i + 1);
        if (first) {
          first = false;
          resolve(l);
        } else {
          const w = lineWaiters.findIndex((x) => l.startsWith(x.prefix));
          if (w >= 0) {
            const [x] = lineWaiters.splice(w, 1);
            x.resolve(l.slice(x.prefix.length).trim());
          }
        }
      }
    });
    child.once('exit', (code) => {
      const e = new Error(`serve exited ${code}: ${err}`);
      reject(e);
      for (const w of lineWaiters.splice(0)) w.reject(e); // no answer is coming
    });
  });
  const m = /^Holdfast UI: (http:\/\/127\.0\.0\.1:\d+)\/\?token=(\S+)$/.exec(line);
  if (!m) throw new Error(`unexpected first line: ${line}`);
  const exited = new Promise((r) => child.once('exit', r));
  return {
    url: line.slice('Holdfast UI: '.length),
    origin: m[1],
    token: m[2],
    socket: path.join(dataDir, 'nbd.sock'),
    /** Sends a command to the in-process writer and resolves with the rest of its answer line. */
    command(cmd, answerPrefix) {
      const answer = new Promise((resolve, reject) => lineWaiters.push({ prefix: answerPrefix, resolve, reject }));
      child.stdin.write(`${cmd}\n`);
      return answer;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function api(s, op, input = {}) {
  const res = await fetch(`${s.origin}/api/${op}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${s.token}` }, body: JSON.stringify(input) });
  const body = await res.json();
  if (!body.ok) throw new Error(`${op}: ${body.error?.code} ${body.error?.message}`);
  return body.result;
}

const ENGINE_RATE = Number(process.env.UI_BENCH_ENGINE_RATE ?? 50_000);
/** Writes go to random 4 KiB blocks of the volume's first 64 MiB (as fio's --size=64M). */
const SPAN = 64 << 20;

/** A device, the `bench` volume filled with random data (so a backup has real work: hash + compress, and lasts) and a vault. */
async function setUp(serve, dir) {
  await api(serve, 'device.add', { path: path.join(dir, 'disk.img'), create: true, size: 1 << 30 });
  await api(serve, 'volume.create', { name: 'bench', size: VOL });
  await api(serve, 'vault.init', { dir: path.join(dir, 'data', 'vault') });
  const fill = path.join(dir, 'fill.img');
  spawnSync('sh', ['-c', `head -c ${VOL} /dev/urandom > ${fill}`]);
  spawnSync('nbdcopy', [fill, `nbd+unix:///bench?socket=${serve.socket}`], { stdio: 'inherit' });
  rmSync(fill);
}

/** fio over NBD at queue depth 64; its own IOPS figure is the write rate. */
function fioWriter(serve) {
  let fio = null;
  let out = '';
  let err = '';
  let done = null;
  return {
    what: `fio ioengine=nbd randwrite 4k iodepth=64 numjobs=${FIO_JOBS} over ${serve.socket}`,
    async start() {
      fio = spawn('fio', [
        '--name=w', '--ioengine=nbd', `--uri=nbd+unix:///bench?socket=${serve.socket}`, '--rw=randwrite', '--bs=4k', '--iodepth=64',
        `--numjobs=${FIO_JOBS}`, '--group_reporting', `--size=${SPAN >> 20}M`, '--time_based', `--runtime=${DURATION + 20}`, '--output-format=json', '--norandommap', '--randrepeat=0',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      fio.stdout.on('data', (c) => (out += c));
      fio.stderr.on('data', (c) => (err += c));
      done = new Promise((r) => fio.once('exit', r));
    },
    async stop() {
      fio.kill('SIGINT');
      await done;
      try {
        return { writesPerSec: Math.round(JSON.parse(out.slice(out.indexOf('{'))).jobs[0].write.iops) };
      } catch {
        return { writesPerSec: null, error: err.slice(0, 300) };
      }
    },
    kill() {
      if (fio && fio.exitCode === null) fio.kill('SIGKILL');
    },
  };
}

/** The serve process's own writer (dist/bench/ui-serve-load.cjs): acknowledged writes per second as it counts them. */
function engineWriter(serve) {
  return {
    what: `in-process writer: 4 KiB random writes at ${ENGINE_RATE}/s, ≤ 64 in flight, through the volume's write path (no NBD)`,
    async start() {
      await serve.command(`load bench ${ENGINE_RATE} ${SPAN}`, 'LOAD-ON');
    },
    async stop() {
      const r = JSON.parse(await serve.command('load-off', 'LOAD-OFF'));
      return { writesPerSec: r.perSec, writes: r.writes, errors: r.errors, maxInFlight: r.maxInFlight };
    },
    kill() {},
  };
}

/**
 * Hold panel smoothness: volume-policy backups back to back while `writer` writes to `bench`;
 * in the page, a MutationObserver marks frames in which the panel changed.
 */
async function measureHoldPanel(serve, ctx, writer) {
  const page = await ctx.newPage();
  await page.goto(`${serve.url}#/holds`);
  await page.getByTestId('held-count-bench').waitFor();
  await writer.start();
  try {
    await sleep(2000);
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Performance.enable');
    const heapAfterGc = async () => {
      await cdp.send('HeapProfiler.collectGarbage');
      const m = await cdp.send('Performance.getMetrics');
      return m.metrics.find((x) => x.name === 'JSHeapUsedSize').value;
    };
    // Backups back to back for the whole window; the panel sampler counts changed frames while one runs.
    let stopBackups = false;
    const backups = [];
    const backupLoop = (async () => {
      while (!stopBackups) {
        const t0 = Date.now();
        const b = await api(serve, 'backup.start', { volume: 'bench', policy: 'volume', full: true });
        const h = await api(serve, 'holds.get', { volume: 'bench' });
        backups.push({ ms: Date.now() - t0, state: b.state, releasedTotal: h[0].releasedTotal });
      }
    })();
    await sleep(1000);
    await page.evaluate(() => {
      const w = window;
      // Per second also: frames drawn (below 60 = the page itself stalled) and frames in which the
      // held count read 0 (nothing held, so nothing in the panel to change).
      w.__panel = { frames: 0, changedFrames: 0, runningFrames: 0, changedRunningFrames: 0, perSecond: [], framesPerSecond: [], heldZeroFramesPerSecond: [] };
      const heldEl = document.querySelector('[data-testid="held-count-bench"]');
      let framesInSecond = 0;
      let zeroInSecond = 0;
      let dirty = false;
      const el = heldEl.closest('.hold-panel');
      new MutationObserver(() => (dirty = true)).observe(el, { childList: true, subtree: true, characterData: true, attributes: true });
      let second = Math.floor(performance.now() / 1000);
      w.__panel.firstSecond = second;
      let inSecond = 0;
      const tick = () => {
        const p = w.__panel;
        if (p.stop) return;
        const running = /Backup running/.test(el.querySelector('.card-actions')?.textContent ?? '');
        p.frames++;
        framesInSecond++;
        if (/^\s*0\s*$/.test(heldEl.textContent ?? '')) zeroInSecond++;
        if (running) p.runningFrames++;
        if (dirty) {
          p.changedFrames++;
          inSecond++;
          if (running) p.changedRunningFrames++;
          dirty = false;
        }
        const s = Math.floor(performance.now() / 1000);
        if (s !== second) {
          p.perSecond.push(inSecond);
          p.framesPerSecond.push(framesInSecond);
          p.heldZeroFramesPerSecond.push(zeroInSecond);
          inSecond = framesInSecond = zeroInSecond = 0;
          second = s;
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    const heapStart = await heapAfterGc();
    const heapSeries = [];
    const t0 = Date.now();
    const held0 = (await api(serve, 'holds.get', { volume: 'bench' }))[0];
    // A forced GC at half time as well: the heap grows once while code warms up (V8's compiled
    // code and feedback, the query cache's first entries); growth that goes on shows between
    // the middle and the end.
    let heapMid = null;
    let midGcAt = null;
    while (Date.now() - t0 < DURATION * 1000) {
      await sleep(5000);
      if (heapMid === null && Date.now() - t0 >= (DURATION * 1000) / 2) {
        midGcAt = await page.evaluate(() => Math.floor(performance.now() / 1000));
        heapMid = await heapAfterGc();
      }
      const m = await cdp.send('Performance.getMetrics');
      heapSeries.push(Math.round(m.metrics.find((x) => x.name === 'JSHeapUsedSize').value));
    }
    const heapEnd = await heapAfterGc();
    heapMid ??= heapEnd;
    const panel = await page.evaluate(() => ((window.__panel.stop = true), window.__panel));
    stopBackups = true;
    await backupLoop;
    const w = await writer.stop();
    const runningSeconds = panel.runningFrames / 60;
    /** Index in `seconds` of the second in which the half-time forced GC ran. */
    const midGcSecond = midGcAt === null ? null : midGcAt - panel.firstSecond - 1;
    const seconds = panel.perSecond.slice(1, -1);
    return {
      what: 'hold panel DOM-changed frames per second while volume-policy backups run under a write load',
      windowS: DURATION,
      writer: writer.what,
      writesPerSec: w.writesPerSec,
      writerDetail: w,
      backups: backups.length,
      backupMsMedian: backups.length ? Math.round(median(backups.map((b) => b.ms))) : null,
      backupsNotCompleted: backups.filter((b) => b.state !== 'completed').length,
      heldWritesQueuedAtStart: held0.queuedTotal,
      framesTotal: panel.frames,
      framesWhileBackupRunning: panel.runningFrames,
      panelUpdatesPerSecMedian: seconds.length ? median(seconds) : 0,
      panelUpdatesPerSecMin: seconds.length ? Math.min(...seconds) : 0,
      // The seconds in which writes were held throughout (the panel had something to change),
      // without the one of the forced GC at half time.
      panelUpdatesPerSecMinWhileHolding: (() => {
        const zero = panel.heldZeroFramesPerSecond.slice(1, -1);
        const held = seconds.filter((_, i) => zero[i] === 0 && i !== midGcSecond);
        return held.length ? Math.min(...held) : null;
      })(),
      panelUpdatesPerSecond: seconds,
      framesPerSecond: panel.framesPerSecond.slice(1, -1),
      heldZeroFramesPerSecond: panel.heldZeroFramesPerSecond.slice(1, -1),
      panelSecondOfMidGc: midGcSecond,
      panelUpdatesPerSecWhileRunning: panel.runningFrames ? Math.round((panel.changedRunningFrames / panel.runningFrames) * (panel.frames / DURATION) * 10) / 10 : 0,
      approxRunningSeconds: Math.round(runningSeconds),
      targetUpdatesPerSec: 30,
      targetWritesPerSec: 50_000,
      heapAfterGcStartMiB: +(heapStart / 2 ** 20).toFixed(2),
      heapAfterGcEndMiB: +(heapEnd / 2 ** 20).toFixed(2),
      heapAfterGcMidMiB: +(heapMid / 2 ** 20).toFixed(2),
      heapGrowthMiB: +((heapEnd - heapStart) / 2 ** 20).toFixed(2),
      heapGrowthSecondHalfMiB: +((heapEnd - heapMid) / 2 ** 20).toFixed(2),
      heapUsedSeriesMiB: heapSeries.map((b) => +(b / 2 ** 20).toFixed(2)),
    };
  } finally {
    writer.kill();
    await page.close();
  }
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'holdfast-uibench-'));
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
const result = { env: { node: process.version, cpus: os.cpus().length, loadavg: os.loadavg(), date: new Date().toISOString() }, results: {} };
try {
  // ---------- 1. first render, warm; 2. hold panel under fio
  const dir1 = path.join(tmp, 'fio');
  mkdirSync(dir1);
  const serve = await startServe(path.join(dir1, 'data'));
  try {
    await setUp(serve, dir1);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.addInitScript(() => {
      const w = window;
      w.__volumesVisibleAt = null;
      const check = () => {
        if (w.__volumesVisibleAt === null && document.querySelector('.volume-card')) w.__volumesVisibleAt = performance.now();
      };
      new MutationObserver(check).observe(document, { childList: true, subtree: true });
    });
    const page = await ctx.newPage();
    const times = [];
    const fcps = [];
    for (let i = 0; i < LOADS + 2; i++) {
      await page.goto(`${serve.url}#/volumes`);
      await page.waitForFunction(() => window.__volumesVisibleAt !== null, null, { timeout: 30_000 });
      const t = await page.evaluate(() => window.__volumesVisibleAt);
      const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
      if (i >= 2) (times.push(t), fcp !== null && fcps.push(fcp)); // two warm-up loads fill the cache
    }
    await page.close();
    result.results.firstRender = {
      what: 'navigation start → Volumes list visible, warm engine + warm browser cache',
      loads: times.length,
      medianMs: Math.round(median(times)),
      minMs: Math.round(Math.min(...times)),
      maxMs: Math.round(Math.max(...times)),
      medianFirstContentfulPaintMs: fcps.length ? Math.round(median(fcps)) : null,
      targetMs: 1000,
      pass: median(times) < 1000,
    };
    result.results.holdPanel = await measureHoldPanel(serve, ctx, fioWriter(serve));
    await ctx.close();
  } finally {
    await serve.stop();
  }

  // ---------- 3. hold panel under the in-process writer at ENGINE_RATE
  if (ENGINE_RATE > 0) {
    const dir2 = path.join(tmp, 'engine');
    mkdirSync(dir2);
    const serve2 = await startServe(path.join(dir2, 'data'), true);
    try {
      await setUp(serve2, dir2);
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      result.results.holdPanelEngineWriter = await measureHoldPanel(serve2, ctx, engineWriter(serve2));
      await ctx.close();
    } finally {
      await serve2.stop();
    }
  }
} finally {
  await browser.close();
  rmSync(tmp, { recursive: true, force: true });
}

mkdirSync(path.join(root, 'bench/results'), { recursive: true });
writeFileSync(path.join(root, 'bench/results/ui.json'), JSON.stringify(result, null, 2) + '\n');
const fr = result.results.firstRender;
console.log(`\n| figure | value | target |\n|---|---|---|`);
console.log(`| first render, warm (median of ${fr.loads}) | ${fr.medianMs} ms (min ${fr.minMs}, max ${fr.maxMs}; FCP ${fr.medianFirstContentfulPaintMs} ms) | < ${fr.targetMs} ms |`);
for (const [label, hp] of [
  ['fio 4k randwrite QD64 over NBD', result.results.holdPanel],
  ['in-process writer, 4k random, no NBD', result.results.holdPanelEngineWriter],
]) {
  if (!hp) continue;
  const failed = hp.writerDetail?.errors ? ` (${hp.writerDetail.errors} writes failed)` : '';
  console.log(`| write load (${label}) | ${hp.writesPerSec ?? 'n/a'} writes/s${failed} | 50,000/s |`);
  console.log(`| — hold panel updates/s (median / min per second over ${hp.windowS} s / min in seconds with writes held throughout) | ${hp.panelUpdatesPerSecMedian} / ${hp.panelUpdatesPerSecMin} / ${hp.panelUpdatesPerSecMinWhileHolding} | ≥ ${hp.targetUpdatesPerSec} |`);
  console.log(`| — hold panel updates/s while a backup runs | ${hp.panelUpdatesPerSecWhileRunning} | ≥ ${hp.targetUpdatesPerSec} |`);
  console.log(`| — backups during the window | ${hp.backups} (median ${hp.backupMsMedian} ms; not completed: ${hp.backupsNotCompleted}) | — |`);
  const signed = (x) => `${x >= 0 ? '+' : ''}${x}`;
  console.log(`| — renderer JS heap after GC, start → half time → end | ${hp.heapAfterGcStartMiB} → ${hp.heapAfterGcMidMiB} → ${hp.heapAfterGcEndMiB} MiB (${signed(hp.heapGrowthMiB)}; second half ${signed(hp.heapGrowthSecondHalfMiB)}) | no growth |`);
}
console.log(`\nload average at start: ${result.env.loadavg.map((x) => x.toFixed(1)).join(' ')} (${result.env.cpus} CPUs shared)`);
