/**
 * The data directory and its single owner. One process at a time owns a data directory:
 * it holds `holdfast.lock`, created with O_EXCL and holding {pid, startedAt, hostname}.
 * Every other process (a second CLI, a second app window) talks to the owner over its
 * control socket instead of opening the catalog and journal.
 *
 * Invariant: while open() has returned and release() has not, the lock file exists and
 * names this process. A lock whose pid is dead (on this host) is stale and is taken over;
 * takeovers are serialised by a second O_EXCL file so two processes racing for a stale lock
 * cannot both win.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Env } from './env/env';
import { HoldfastError } from '../../src-shared/errors';

export const LOCK_FILE = 'holdfast.lock';
const TAKEOVER_FILE = 'holdfast.lock.takeover';
/** A lock file still empty after this long belongs to a process that died while creating it. */
const EMPTY_LOCK_GRACE_MS = 2000;

export interface LockOwner {
  pid: number;
  startedAt: string;
  hostname: string;
}

/** Data directories this process holds, so a pid match can tell "us" from a reused pid. */
const heldHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && Number.isInteger(o.pid) && o.pid > 0) return { pid: o.pid, startedAt: String(o.startedAt ?? ''), hostname: String(o.hostname ?? '') };
  } catch {
    /* partially written or foreign */
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class DataDir {
  readonly catalogPath: string;
  readonly journalDir: string;
  readonly controlSocket: string;
  readonly nbdSocket: string;
  readonly defaultVault: string;
  readonly imagesDir: string;
  readonly lockPath: string;
  private released = false;

  private constructor(
    readonly dir: string,
    private readonly env: Env,
    private readonly owner: LockOwner,
  ) {
    this.catalogPath = path.join(dir, 'catalog.db');
    this.journalDir = path.join(dir, 'journal');
    this.controlSocket = path.join(dir, 'control.sock');
    this.nbdSocket = path.join(dir, 'nbd.sock');
    this.defaultVault = path.join(dir, 'vault');
    this.imagesDir = path.join(dir, 'images');
    this.lockPath = path.join(dir, LOCK_FILE);
  }

  /** --data is resolved by the caller; this is the fallback: HOLDFAST_DATA, else the platform's app-data folder. */
  static defaultDir(): string {
    if (process.env.HOLDFAST_DATA) return path.resolve(process.env.HOLDFAST_DATA);
    const home = os.homedir();
    if (process.platform === 'win32') return path.join(process.env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'Holdfast');
    if (process.platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Holdfast');
    return path.join(process.env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'holdfast');
  }

  /**
   * The live owner of dir, or null when nobody (or only a dead process) holds it. Synchronous so
   * the CLI can decide cheaply whether to talk to the control socket.
   */
  static readOwner(dir: string): { pid: number; startedAt: string; hostname: string } | null {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8');
    } catch {
      return null;
    }
    const o = parseOwner(text);
    if (!o) return null;
    if (o.hostname && o.hostname !== os.hostname()) return o; // cannot check a pid on another host
    if (o.pid === process.pid) return heldHere.has(path.resolve(dir)) ? o : null;
    return isAlive(o.pid) ? o : null;
  }

  /** Creates dir (0700) if needed and takes its lock; LOCKED when a live process owns it. */
  static async open(dir: string, env: Env): Promise<DataDir> {
    const abs = path.resolve(dir);
    const st = await env.stat(abs);
    if (st && !st.isDirectory) throw new HoldfastError('INVALID_ARGUMENT', `${abs} is not a folder; pick a folder for Holdfast's data.`);
    if (!st) {
      await env.mkdir(abs);
      if (process.platform !== 'win32') fs.chmodSync(abs, 0o700);
    }
    const owner: LockOwner = { pid: process.pid, startedAt: new Date(env.now()).toISOString(), hostname: os.hostname() };
    await DataDir.acquire(abs, env, owner);
    heldHere.add(abs);
    return new DataDir(abs, env, owner);
  }

  private static lockedError(abs: string, o: LockOwner): HoldfastError {
    const where = o.hostname && o.hostname !== os.hostname() ? ` on ${o.hostname}` : '';
    return new HoldfastError(
      'LOCKED',
      `Another Holdfast process (pid ${o.pid}${where}) owns ${abs}; run commands while it is up and they go through its control socket, or stop it first.`,
      { pid: o.pid, hostname: o.hostname, startedAt: o.startedAt },
    );
  }

  private static async tryCreate(file: string, env: Env, content: string): Promise<boolean> {
    let f;
    try {
      f = await env.open(file, { create: true, exclusive: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    try {
      await f.write(Buffer.from(content), 0);
      await f.datasync();
    } finally {
      await f.close();
    }
    return true;
  }

  private static async readLock(file: string, env: Env): Promise<{ owner: LockOwner | null; mtimeMs: number } | null> {
    const st = await env.stat(file);
    if (!st) return null;
    let text = '';
    try {
      text = (await env.readFile(file)).toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return { owner: parseOwner(text), mtimeMs: st.mtimeMs };
  }

  /** True when the lock's owner is gone: dead pid on this host, our own pid not held by us (reused), or empty for too long. */
  private static isStale(abs: string, lock: { owner: LockOwner | null; mtimeMs: number }, env: Env): boolean {
    const o = lock.owner;
    if (!o) return env.now() - lock.mtimeMs > EMPTY_LOCK_GRACE_MS;
    if (o.hostname && o.hostname !== os.hostname()) return false;
    if (o.pid === process.pid) return !heldHere.has(abs);
    return !isAlive(o.pid);
  }

  private static async acquire(abs: string, env: Env, owner: LockOwner): Promise<void> {
    const lockPath = path.join(abs, LOCK_FILE);
    const takeoverPath = path.join(abs, TAKEOVER_FILE);
    const content = JSON.stringify(owner);
    for (let attempt = 0; attempt < 50; attempt++) {
      if (await DataDir.tryCreate(lockPath, env, content)) return;
      const lock = await DataDir.readLock(lockPath, env);
      if (!lock) continue; // released between our create and read: try again
      if (!DataDir.isStale(abs, lock, env)) {
        if (lock.owner) throw DataDir.lockedError(abs, lock.owner);
        await sleep(50); // being written right now
        continue;
      }
      // Stale. Only the holder of the takeover file may remove it, and only after re-checking.
      if (!(await DataDir.tryCreate(takeoverPath, env, content))) {
        const t = await DataDir.readLock(takeoverPath, env);
        if (t && DataDir.isStale(abs, t, env)) await env.unlink(takeoverPath);
        else await sleep(20);
        continue;
      }
      try {
        const again = await DataDir.readLock(lockPath, env);
        if (again && DataDir.isStale(abs, again, env)) await env.unlink(lockPath);
        if (await DataDir.tryCreate(lockPath, env, content)) return;
      } finally {
        await env.unlink(takeoverPath);
      }
    }
    const last = await DataDir.readLock(lockPath, env);
    if (last?.owner) throw DataDir.lockedError(abs, last.owner);
    throw new HoldfastError('LOCKED', `Could not take the lock ${lockPath}; another process keeps changing it.`);
  }

  /** Pid and start time written in the lock. */
  get lockOwner(): LockOwner {
    return { ...this.owner };
  }

  /** Removes the lock if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.dir);
    const lock = await DataDir.readLock(this.lockPath, this.env);
    if (lock?.owner && lock.owner.pid === this.owner.pid && lock.owner.startedAt === this.owner.startedAt) await this.env.unlink(this.lockPath);
  }
}
