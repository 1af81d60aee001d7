import { afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import type { Env } from '../../src-main/engine/env/env';
import { LiveVolume } from '../../src-main/engine/volumes/live-volume';
import type { BlockFile } from '../../src-main/engine/env/env';

export function tempDir(prefix = 'hf-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Temp dirs made by `mk()` are removed after each test of the calling file. */
export function useTempDirs(): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = tempDir();
    dirs.push(d);
    return d;
  };
}

export interface TestVolume {
  vol: LiveVolume;
  imagePath: string;
  file: BlockFile;
  reopen(opts?: { capacity?: number }): Promise<{ vol: LiveVolume; report: Awaited<ReturnType<typeof LiveVolume.open>>['report'] }>;
}

/** A live volume on one sparse image file, with its journal under `dir`. */
export async function openTestVolume(
  dir: string,
  name = 'vol',
  size = 8 << 20,
  opts: { ackMode?: 'journal' | 'device'; capacity?: number; segmentBytes?: number; env?: Env; id?: number; bootId?: string } = {},
): Promise<TestVolume> {
  const env = opts.env ?? new NodeEnv();
  const imagePath = path.join(dir, `${name}.img`);
  if (!fs.existsSync(imagePath)) fs.writeFileSync(imagePath, Buffer.alloc(0)), fs.truncateSync(imagePath, size);
  const open = async (capacity?: number) => {
    const file = await env.open(imagePath);
    const r = await LiveVolume.open({
      id: opts.id ?? 1,
      name,
      size,
      ackMode: opts.ackMode ?? 'journal',
      extents: [{ volumeOffset: 0, length: size, deviceId: 1, deviceOffset: 0 }],
      fileFor: () => file,
      journalDir: path.join(dir, `journal-${name}`),
      journalOptions: { segmentBytes: opts.segmentBytes ?? 1 << 20, capacity: capacity ?? opts.capacity ?? 64 << 20 },
      env,
      bootId: opts.bootId ?? 'boot-1',
    });
    return { ...r, file };
  };
  const first = await open();
  const tv: TestVolume = {
    vol: first.volume,
    imagePath,
    file: first.file,
    reopen: async (o) => {
      const r = await open(o?.capacity);
      tv.vol = r.volume;
      tv.file = r.file;
      return { vol: r.volume, report: r.report };
    },
  };
  return tv;
}

/** A new directory on tmpfs (/dev/shm), or null where there is none; the caller removes it. */
export function tmpfsDir(): string | null {
  try {
    return fs.mkdtempSync('/dev/shm/hf-test-');
  } catch {
    return null;
  }
}

export function pattern(byte: number, len: number): Buffer {
  return Buffer.alloc(len, byte);
}

export function readImage(p: string, offset: number, len: number): Buffer {
  const fd = fs.openSync(p, 'r');
  try {
    const b = Buffer.alloc(len);
    fs.readSync(fd, b, 0, len, offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

export const noProbe = async () => ({ isMetadata: () => true, describe: () => 'test' });

/** A deterministic PRNG (mulberry32) in [0, 1): random tests print their seed so a failure replays. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes of `file` (or block device) in the page cache, from util-linux fincore. */
export function cachedBytes(file: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());
}

/** Writes the file's dirty pages and drops its cached ones (POSIX_FADV_DONTNEED through GNU dd). */
export function evict(file: string): void {
  const fd = fs.openSync(file, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

export type WriteOp = 'write' | 'writeSync' | 'writev' | 'writevSync';
/**
 * Sees every write to a file: `next()` performs it (and returns what the write returns);
 * returning without calling it, or throwing, stands in for the file.
 */
export type WriteHook = (file: BlockFile, op: WriteOp, buf: Buffer | Buffer[], pos: number, next: () => unknown) => unknown;
const WRITE_OPS: ReadonlySet<string | symbol> = new Set<WriteOp>(['write', 'writeSync', 'writev', 'writevSync']);

/**
 * `f` with its writes routed through `hook`; everything else is `f`'s own, except the in-kernel
 * copy (copyFromSync), which it lacks, as a fault-injecting file does: its callers then write
 * from a buffer, through the hook.
 */
export function hookFileWrites(f: BlockFile, hook: WriteHook): BlockFile {
  return new Proxy(f, {
    get(target, key) {
      if (key === 'copyFromSync') return undefined;
      const v = Reflect.get(target, key, target) as unknown;
      if (typeof v !== 'function') return v;
      const method = v as (...a: unknown[]) => unknown;
      if (WRITE_OPS.has(key)) return (buf: Buffer | Buffer[], pos: number) => hook(target, key as WriteOp, buf, pos, () => method.call(target, buf, pos));
      return method.bind(target);
    },
  });
}

/** `inner` whose opened files route their writes through `hook` (hookFileWrites). */
export function hookWrites(inner: Env, hook: WriteHook): Env {
  return new Proxy(inner, {
    get(target, key) {
      const v = Reflect.get(target, key, target) as unknown;
      if (key === 'open') return async (p: string, o?: object) => hookFileWrites(await target.open(p, o), hook);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
