import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { build } from 'esbuild';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataDir, LOCK_FILE } from '../../src-main/engine/datadir';
import { nodeEnv } from '../../src-main/engine/env/node-env';

let root: string;
let childBundle: string;
let bundleDir: string;
// Bundle the child once: plain node starts far faster than a TypeScript loader per child.
beforeAll(async () => {
  bundleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-dd-child-'));
  childBundle = path.join(bundleDir, 'lock-child.cjs');
  await build({ entryPoints: [path.join(__dirname, 'lock-child.ts')], outfile: childBundle, bundle: true, platform: 'node', format: 'cjs', external: ['holdfast-fs'], logLevel: 'warning' });
});
afterAll(() => fs.rmSync(bundleDir, { recursive: true, force: true }));
let dir: string;
const children: ChildProcessWithoutNullStreams[] = [];
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-dd-'));
  dir = path.join(root, 'data');
});
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});

function startChild(d: string): Promise<{ child: ChildProcessWithoutNullStreams; report: { ok: boolean; pid?: number; code?: string; message?: string; details?: { pid: number } } }> {
  const child = spawn(process.execPath, [childBundle, d]);
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    child.stdout.on('data', (b) => {
      out += b;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, report: JSON.parse(out.slice(0, nl)) });
    });
    child.on('exit', (code) => {
      if (!out.includes('\n')) reject(new Error(`child exited ${code}: ${err}`));
    });
  });
}

describe('DataDir', () => {
  it('creates the folder 0700 with the well-known paths and a lock naming this process', async () => {
    const dd = await DataDir.open(dir, nodeEnv);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(dd.catalogPath).toBe(path.join(dir, 'catalog.db'));
    expect(dd.journalDir).toBe(path.join(dir, 'journal'));
    expect(dd.controlSocket).toBe(path.join(dir, 'control.sock'));
    expect(dd.nbdSocket).toBe(path.join(dir, 'nbd.sock'));
    expect(dd.defaultVault).toBe(path.join(dir, 'vault'));
    expect(dd.imagesDir).toBe(path.join(dir, 'images'));
    const lock = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
    expect(lock).toMatchObject({ pid: process.pid, hostname: os.hostname() });
    expect(DataDir.readOwner(dir)).toMatchObject({ pid: process.pid });
    await expect(DataDir.open(dir, nodeEnv)).rejects.toMatchObject({ code: 'LOCKED', details: { pid: process.pid } });
    await dd.release();
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    expect(DataDir.readOwner(dir)).toBeNull();
  });

  it('a second process gets LOCKED naming the owner pid, and takes over once the owner is killed', async () => {
    const first = await startChild(dir);
    expect(first.report.ok).toBe(true);
    const ownerPid = first.report.pid!;
    expect(DataDir.readOwner(dir)?.pid).toBe(ownerPid);

    // a real second process is refused and the lock is untouched
    const lockBefore = fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8');
    const second = await startChild(dir);
    expect(second.report).toMatchObject({ ok: false, code: 'LOCKED', details: { pid: ownerPid } });
    expect(second.report.message).toMatch(new RegExp(`pid ${ownerPid}.*control socket`));
    expect(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).toBe(lockBefore);
    // and so is this one
    await expect(DataDir.open(dir, nodeEnv)).rejects.toMatchObject({ code: 'LOCKED', details: { pid: ownerPid } });

    // kill -9 the owner: its lock is stale and the next opener takes over
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    expect(DataDir.readOwner(dir)).toBeNull();
    const dd = await DataDir.open(dir, nodeEnv);
    expect(DataDir.readOwner(dir)?.pid).toBe(process.pid);
    await dd.release();
  });

  it('several processes racing for a stale lock: exactly one wins', async () => {
    fs.mkdirSync(dir, { recursive: true });
    // a dead pid: spawn and reap a short-lived process
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.once('exit', r));
    fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: dead.pid, startedAt: 'x', hostname: os.hostname() }));
    const results = await Promise.all([startChild(dir), startChild(dir), startChild(dir)]);
    const winners = results.filter((r) => r.report.ok);
    expect(winners).toHaveLength(1);
    for (const r of results.filter((x) => !x.report.ok)) expect(r.report).toMatchObject({ code: 'LOCKED', details: { pid: winners[0]!.report.pid } });
    expect(DataDir.readOwner(dir)?.pid).toBe(winners[0]!.report.pid);
  });

  it('defaultDir honours HOLDFAST_DATA and otherwise uses the platform app-data folder', () => {
    const saved = process.env.HOLDFAST_DATA;
    try {
      process.env.HOLDFAST_DATA = '/tmp/somewhere';
      expect(DataDir.defaultDir()).toBe('/tmp/somewhere');
      delete process.env.HOLDFAST_DATA;
      if (process.platform === 'linux') expect(DataDir.defaultDir()).toMatch(/holdfast$/);
    } finally {
      if (saved === undefined) delete process.env.HOLDFAST_DATA;
      else process.env.HOLDFAST_DATA = saved;
    }
  });

  it('refuses a data path that is a file', async () => {
    fs.writeFileSync(path.join(root, 'file'), 'x');
    await expect(DataDir.open(path.join(root, 'file'), nodeEnv)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
