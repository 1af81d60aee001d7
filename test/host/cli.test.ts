/**
 * The CLI as users and scripts meet it: `node bin/holdfast.cjs` spawned against a real temp
 * data directory, with the real engine (in process, or the running engine over the control
 * socket while `holdfast nbd` / `holdfast serve` owns the directory).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { bin, buildCli, runCli } from '../helpers/cli';
import { isLoopback } from '../../src-main/host/cli/engine-host';
let tmp: string;
let data: string;

beforeAll(() => {
  buildCli();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-cli-'));
  data = path.join(tmp, 'data');
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const hf = (...args: string[]) => runCli(args, tmp, 30_000);
const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const ONE_ERROR_LINE = /^holdfast: [^\n]+ \([A-Z_]+\)\n$/;

function expectError(r: ReturnType<typeof hf>, exit: number, code: string) {
  expect(r.code, r.stderr).toBe(exit);
  expect(r.stderr).toMatch(ONE_ERROR_LINE);
  expect(r.stderr).toContain(`(${code})`);
  expect(r.stdout).toBe('');
}

/** Spawns a long-running holdfast and resolves once stderr shows the control socket line. */
async function startEngine(args: string[]): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  let so = '';
  let se = '';
  child.stdout!.on('data', (c) => (so += c));
  child.stderr!.on('data', (c) => (se += c));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (se.includes('Control socket:')) {
        clearInterval(t);
        resolve();
      }
      if (child.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`engine exited early: ${se}`));
      }
    }, 50);
  });
  return {
    child,
    stdout: () => so,
    stderr: () => se,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

// Each case spawns real processes; on a loaded 2-core machine a spawn can take a second.
describe('holdfast CLI (in process)', { timeout: 120_000 }, () => {
  it('accepts --data and --json anywhere and prints a JSON array for lists', () => {
    for (const args of [
      ['--json', 'volume', 'list', '--data', data],
      ['volume', '--data', data, 'list', '--json'],
      [`--data=${data}`, 'volume', 'list', '--json'],
    ]) {
      const r = hf(...args);
      expect(r.code, r.stderr).toBe(0);
      expect(json(r)).toEqual([]);
    }
  });

  it('creates devices and volumes with sizes in bytes or binary suffixes', () => {
    const dev = hf('device', 'add', 'disk.img', '--create', '--size', '256M', '--data', data, '--json');
    expect(dev.code, dev.stderr).toBe(0);
    const d = json(dev);
    expect(d).toMatchObject({ path: path.join(tmp, 'disk.img'), kind: 'image', size: 256 * 1024 * 1024 });
    expect(fs.statSync(path.join(tmp, 'disk.img')).size).toBe(256 * 1024 * 1024);

    const v = hf('--json', 'volume', 'create', 'alpha', '--size', '64M', '--device', String(d.id), '--data', data);
    expect(v.code, v.stderr).toBe(0);
    expect(json(v)).toMatchObject({ name: 'alpha', size: 64 * 1024 * 1024, ackMode: 'journal' });
    const b = hf('volume', 'create', 'beta', '--size', '1048576', '--ack', 'device', '--data', data, '--json');
    expect(json(b)).toMatchObject({ name: 'beta', size: 1048576, ackMode: 'device' });
    const g = hf('volume', 'grow', 'beta', '--size', '2M', '--data', data, '--json');
    expect(json(g).size).toBe(2 * 1024 * 1024);

    const list = json(hf('volume', 'list', '--json', '--data', data));
    expect(list.map((x: { name: string }) => x.name).sort()).toEqual(['alpha', 'beta']);
  });

  it('prints aligned tables with formatted sizes for people', () => {
    const r = hf('volume', 'list', '--data', data);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+SIZE\s+ACK\s+EXTENTS/);
    const alpha = lines.find((l) => l.startsWith('alpha'))!;
    expect(alpha).toContain('64.0 MiB');
    // Columns line up: the ACK column starts at the same offset on every line.
    const col = lines[0]!.indexOf('ACK');
    for (const l of lines.slice(1)) expect(l.slice(col, col + 7)).toMatch(/^(journal|device )/);
    const holds = hf('holds', '--data', data);
    expect(holds.stdout).toMatch(/^VOLUME\s+BACKUP\s+POLICY\s+HELD/);
    expect(json(hf('holds', 'alpha', '--json', '--data', data))).toEqual([expect.objectContaining({ volume: 'alpha', heldCount: 0, backupFlag: false })]);
  });

  it('prints a JSON object for non-list commands', () => {
    const info = json(hf('info', '--json', '--data', data));
    expect(info).toMatchObject({ dataDir: data });
    const del = hf('volume', 'delete', 'beta', '--json', '--data', data);
    expect(del.code, del.stderr).toBe(0);
    expect(json(del)).toEqual({ ok: true });
  });

  it('fails a bad command line with exit 2 and one line on stderr', () => {
    expectError(hf('volume', 'create', 'x', '--data', data), 2, 'INVALID_ARGUMENT'); // no --size
    expectError(hf('volume', 'create', 'x', '--size', '12Q', '--data', data), 2, 'INVALID_SIZE');
    expectError(hf('volume', 'create', 'x', '--size', '0', '--data', data), 2, 'INVALID_SIZE');
    expectError(hf('volume', 'frobnicate', '--data', data), 2, 'INVALID_ARGUMENT');
    expectError(hf('teleport', '--data', data), 2, 'INVALID_ARGUMENT');
    expectError(hf('volume', 'list', '--bogus', '--data', data), 2, 'INVALID_ARGUMENT');
    expectError(hf('volume', 'list', '--size', '1M', '--data', data), 2, 'INVALID_ARGUMENT');
    expectError(hf('volume', 'list', 'extra', '--data', data), 2, 'INVALID_ARGUMENT');
    expectError(hf('volume', 'list', '--data'), 2, 'INVALID_ARGUMENT');
    expectError(hf('volume', 'create', '-dash', '--size', '1M', '--data', data), 2, 'INVALID_ARGUMENT'); // "-dash" reads as an option
    expectError(hf('restore', 'snap1', '--data', data), 2, 'INVALID_ARGUMENT'); // no target
  });

  it('fails an operation with exit 1 and one line naming the code', () => {
    expectError(hf('volume', 'create', 'alpha', '--size', '1M', '--data', data), 1, 'ALREADY_EXISTS');
    expectError(hf('volume', 'delete', 'nope', '--data', data), 1, 'NOT_FOUND');
    expectError(hf('volume', 'create', 'bad!name', '--size', '1M', '--data', data), 1, 'INVALID_ARGUMENT');
    expectError(hf('volume', 'create', 'huge', '--size', '1P', '--data', data), 1, 'NO_SPACE');
    expectError(hf('device', 'add', path.join(tmp, 'missing.img'), '--data', data), 1, 'DEVICE_MISSING');
    expectError(hf('backup', 'start', 'alpha', '--throttle', 'fast', '--data', data), 1, 'INVALID_ARGUMENT'); // auto|off
  });

  it('says NOT_AVAILABLE, never faking an address, when a snapshot is mounted without an NBD server running', () => {
    const r = hf('snapshot', 'mount', 'some-id', '--data', data);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^holdfast: No NBD server is running: start `holdfast nbd` or `holdfast serve`.* \(NOT_AVAILABLE\)\n$/);
    expect(r.stdout).toBe('');
  });

  it('backs up a volume into a vault, waiting until done, and lists the snapshot', () => {
    const vault = path.join(tmp, 'vault');
    const init = hf('vault', 'init', vault, '--data', data, '--json');
    expect(init.code, init.stderr).toBe(0);
    expect(json(init)).toEqual({ dir: vault, encrypted: false });
    const b = hf('backup', 'start', 'alpha', '--vault', vault, '--policy', 'range', '--throttle', 'off', '--json', '--data', data);
    expect(b.code, b.stderr).toBe(0);
    const backup = json(b);
    expect(backup).toMatchObject({ volume: 'alpha', policy: 'range', state: 'completed', bytesDone: 64 * 1024 * 1024 });
    expect(backup.snapshotId).toEqual(expect.any(String));
    expect(b.stderr).toContain(`backup ${backup.id}:`); // progress went to stderr, not stdout
    const snaps = json(hf('snapshot', 'list', '--vault', vault, '--json', '--data', data));
    expect(snaps.map((x: { id: string }) => x.id)).toEqual([backup.snapshotId]);
    const v = hf('snapshot', 'verify', backup.snapshotId, '--vault', vault, '--data', data);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/^OK: \d+ chunks verified\.\n$/);
    expectError(hf('backup', 'start', 'alpha', '--vault', vault, '--detach', '--data', data), 1, 'NOT_AVAILABLE'); // nobody would keep it running
    expectError(hf('vault', 'init', path.join(tmp, 'enc'), '--encrypt', '--data', data), 2, 'INVALID_ARGUMENT'); // no passphrase in the environment
    expectError(hf('holds', '--watch', '--data', data), 1, 'NOT_AVAILABLE'); // nothing could change without a running engine
  });

  it('prints help per noun on stdout with exit 0', () => {
    const r = hf('volume', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('holdfast volume create NAME --size SIZE');
    expect(r.stdout).not.toContain('holdfast backup start');
    const all = hf('--help');
    expect(all.stdout).toContain('holdfast serve [--port N] [--nbd-port N] [--no-open]');
    expect(hf().code).toBe(2);
  });

  it('reports LOCKED when a live process owns the data dir but its control socket is silent', () => {
    const d = path.join(tmp, 'locked');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'holdfast.lock'), JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), hostname: os.hostname() }));
    expectError(hf('volume', 'list', '--data', d), 1, 'LOCKED');
  });
});

describe('holdfast CLI with a running engine', { timeout: 120_000 }, () => {
  it('goes through the control socket while `holdfast nbd` owns the data dir, and the engine stops cleanly', async () => {
    const eng = await startEngine(['nbd', '--nbd-port', '0', '--data', data]);
    try {
      expect(fs.statSync(path.join(data, 'control.sock')).mode & 0o777).toBe(0o600);
      const c = hf('volume', 'create', 'gamma', '--size', '4M', '--data', data, '--json');
      expect(c.code, c.stderr).toBe(0);
      const names = json(hf('--json', 'volume', 'list', '--data', data)).map((v: { name: string }) => v.name);
      expect(names).toContain('gamma');
      const vol = json(hf('volume', 'list', '--json', '--data', data)).find((v: { name: string }) => v.name === 'gamma');
      expect(vol.nbd.socket).toContain(path.join(data, 'nbd.sock'));
      expectError(hf('volume', 'create', 'gamma', '--size', '4M', '--data', data), 1, 'ALREADY_EXISTS');
      // holds --watch prints the current state, streams changes (a backup sets and clears the
      // flag; updates are coalesced), and exits 0 on SIGINT; a second watcher exits 1 with one line when the engine stops.
      const startWatch = () => {
        const w = spawn(process.execPath, [bin, 'holds', 'gamma', '--watch', '--json', '--data', data], { cwd: tmp });
        const o = { out: '', err: '' };
        w.stdout.on('data', (x) => (o.out += x));
        w.stderr.on('data', (x) => (o.err += x));
        const exit = new Promise<number | null>((r) => w.on('exit', (code) => r(code)));
        return { w, o, exit };
      };
      const lines = (t: string) => t.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const watch = startWatch();
      const orphan = startWatch();
      for (let i = 0; i < 200 && !(watch.o.out.includes('\n') && orphan.o.out.includes('\n')); i++) await new Promise((r) => setTimeout(r, 50));
      expect(lines(watch.o.out)[0]).toMatchObject({ volume: 'gamma', heldCount: 0, backupFlag: false });
      expect(hf('vault', 'init', path.join(tmp, 'vault-nbd'), '--data', data).code).toBe(0);
      const b = hf('backup', 'start', 'gamma', '--vault', path.join(tmp, 'vault-nbd'), '--policy', 'volume', '--json', '--data', data);
      expect(b.code, b.stderr).toBe(0);
      expect(json(b).state).toBe('completed');
      // The default vault's snapshots are exported read-only as volume@id while the engine runs.
      const dflt = hf('backup', 'start', 'gamma', '--policy', 'range', '--json', '--data', data);
      expect(dflt.code, dflt.stderr).toBe(0);
      const m = hf('snapshot', 'mount', json(dflt).snapshotId, '--json', '--data', data);
      expect(m.code, m.stderr).toBe(0);
      expect(json(m)).toMatchObject({ export: `gamma@${json(dflt).snapshotId}`, readOnly: true });
      const info = spawnSync('nbdinfo', ['--json', json(m).socket]);
      expect(info.status, String(info.stderr)).toBe(0);
      expect(JSON.parse(String(info.stdout)).exports[0]['is_read_only']).toBe(true);
      for (let i = 0; i < 100 && !(lines(watch.o.out).length >= 2 && lines(watch.o.out).at(-1).backupFlag === false); i++) await new Promise((r) => setTimeout(r, 50));
      const seen = lines(watch.o.out);
      // Updates are coalesced (≤ 40/s per volume, last state always delivered), so a short
      // backup may show only its end; what must arrive is at least one streamed update.
      expect(seen.length).toBeGreaterThanOrEqual(2);
      expect(seen.at(-1)).toMatchObject({ volume: 'gamma', backupFlag: false });
      watch.w.kill('SIGINT');
      expect(await watch.exit).toBe(0);
      expect(await eng.stop()).toBe(0);
      expect(await orphan.exit).toBe(1);
      expect(orphan.o.err).toMatch(/^holdfast: The Holdfast engine stopped; no more hold-queue updates \(IO_ERROR\)\n$/);
    } finally {
      if (eng.child.exitCode === null) await eng.stop();
    }
    expect(fs.existsSync(path.join(data, 'control.sock'))).toBe(false);
    expect(fs.existsSync(path.join(data, 'holdfast.lock'))).toBe(false);
    // With the engine gone, commands open the data dir in process again and see the same state.
    expect(json(hf('volume', 'list', '--json', '--data', data)).map((v: { name: string }) => v.name)).toContain('gamma');
  });

  it('listens for NBD on another address only when told (--nbd-bind), with a warning; a bad or foreign address fails in one line', async () => {
    const d = path.join(tmp, 'bind-data');
    expectError(hf('nbd', '--nbd-bind', 'nonsense', '--data', d), 2, 'INVALID_ARGUMENT');
    expectError(hf('nbd', '--nbd-bind', '192.0.2.1', '--nbd-port', '0', '--data', d), 1, 'IO_ERROR'); // TEST-NET-1: not this machine's
    expect(hf('device', 'add', path.join(tmp, 'bind-disk.img'), '--create', '--size', '16M', '--data', d).code).toBe(0);
    expect(hf('volume', 'create', 'bound', '--size', '4M', '--data', d).code).toBe(0);
    const eng = await startEngine(['nbd', '--nbd-bind', '0.0.0.0', '--nbd-port', '0', '--data', d]);
    try {
      expect(eng.stderr()).toMatch(/^holdfast: warning: NBD listens on 0\.0\.0\.0:\d+: anyone who can reach that address can read and write every volume/m);
      const port = Number(/NBD: nbd:\/\/0\.0\.0\.0:(\d+)\//.exec(eng.stderr())![1]);
      const list = spawnSync('nbdinfo', ['--list', '--json', `nbd://127.0.0.1:${port}`]);
      expect(list.status, String(list.stderr)).toBe(0);
      expect(JSON.parse(String(list.stdout)).exports.map((e: { 'export-name': string }) => e['export-name'])).toContain('bound');
      expect(json(hf('info', '--json', '--data', d)).nbd.tcp).toBe(`0.0.0.0:${port}`);
    } finally {
      await eng.stop();
    }
    // The default stays loopback, without a warning.
    const lo = await startEngine(['nbd', '--nbd-port', '0', '--data', d]);
    try {
      expect(lo.stderr()).not.toMatch(/warning/);
      expect(lo.stderr()).toMatch(/NBD: nbd:\/\/127\.0\.0\.1:\d+\//);
    } finally {
      await lo.stop();
    }
    expect(isLoopback('127.0.0.1') && isLoopback('127.1.2.3') && isLoopback('::1') && isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('0.0.0.0') || isLoopback('::') || isLoopback('192.168.1.2') || isLoopback('128.0.0.1')).toBe(false);
  });

  it('`holdfast serve` prints the UI URL as its first stdout line and serves the contract with the token', async () => {
    const eng = await startEngine(['serve', '--port', '0', '--nbd-port', '0', '--no-open', '--data', data]);
    try {
      const first = eng.stdout().split('\n')[0]!;
      const m = /^Holdfast UI: http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_-]{43})$/.exec(first);
      expect(m, first).not.toBeNull();
      const [, port, token] = m!;
      const post = (auth: string | null) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request(
            { host: '127.0.0.1', port: Number(port), method: 'POST', path: '/api/volume.list', agent: false, headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) } },
            (res) => {
              let body = '';
              res.on('data', (c) => (body += c));
              res.on('end', () => resolve({ status: res.statusCode!, body }));
            },
          );
          req.on('error', reject);
          req.end('{}');
        });
      expect((await post(null)).status).toBe(401);
      const ok = await post(`Bearer ${token}`);
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body).result.map((v: { name: string }) => v.name)).toContain('gamma');
      // The CLI works beside it, through the control socket.
      expect(hf('volume', 'list', '--json', '--data', data).code).toBe(0);
      // A second serve on the same data dir is refused: one owner per data dir.
      const second = hf('serve', '--port', '0', '--nbd-port', '0', '--no-open', '--data', data);
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/\((LOCKED)\)\n$/);
    } finally {
      expect(await eng.stop()).toBe(0);
    }
  });
});
