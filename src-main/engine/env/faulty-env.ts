/**
 * A fault-injecting Env for tests (LevelDB's FaultInjectionTestEnv): wraps a real Env and,
 * by rule, fails or damages file operations — EIO, ENOSPC, short writes, torn writes, and
 * "crash after N bytes" (every write past the budget is silently dropped, as if the
 * machine stopped), and a power loss that undoes what was written since each file's last
 * datasync (trackUnsynced, powerLoss). Production code cannot tell it from the real Env.
 */
import type { BlockFile, Env, FileRange, FileStat, OpenOptions, ZeroMode } from './env';

/** `map`: BlockFile.allocation (the filesystem's allocation map). */
export type FaultOp = 'read' | 'write' | 'datasync' | 'open' | 'rename' | 'writeFile' | 'truncate' | 'map';

export interface FaultRule {
  op: FaultOp;
  /** Only paths containing this substring (default: all). */
  path?: string;
  /** Errno code to throw: 'EIO', 'ENOSPC', 'EROFS', … */
  error?: string;
  /** For writes: write only this many bytes, then throw `error` (torn write) or return (short write handled by retry). */
  tornAt?: number;
  /** Skip this many matching calls before firing. */
  after?: number;
  /** Fire this many times (default 1; Infinity for always). */
  times?: number;
}

function errno(code: string, op: string, p: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: injected fault, ${op} '${p}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = op;
  e.path = p;
  return e;
}

export class FaultyEnv implements Env {
  private rules: Array<FaultRule & { seen: number; fired: number }> = [];
  /** Bytes that may still be written before the simulated crash; null = no crash planned. */
  private crashBudget: number | null = null;
  crashed = false;
  /** Files written since their last datasync, while trackUnsynced is on; null when off. */
  private unsynced: Set<FaultyFile> | null = null;

  constructor(private readonly inner: Env) {}

  /** From now on, every write remembers the bytes it replaced until its file is synced (for powerLoss). */
  trackUnsynced(): void {
    this.unsynced ??= new Set();
  }

  /** Where writes register their file while trackUnsynced is on. */
  unsyncedFiles(): Set<FaultyFile> | null {
    return this.unsynced;
  }

  /**
   * A power loss: the writes since each file's last datasync are undone (and files cut back to
   * their synced size), except in files `kept` names — their dirty pages had reached the disk
   * anyway, as the kernel's writeback may do in any order. Nothing is written afterwards.
   */
  async powerLoss(kept: (path: string) => boolean = () => false): Promise<void> {
    this.crashed = true;
    for (const f of this.unsynced ?? []) if (!kept(f.path)) await f.undoUnsynced();
    this.unsynced?.clear();
  }

  inject(rule: FaultRule): void {
    this.rules.push({ ...rule, seen: 0, fired: 0 });
  }

  clear(): void {
    this.rules = [];
    this.crashBudget = null;
    this.crashed = false;
  }

  /** After `bytes` more bytes are written, every further write and sync is dropped. */
  crashAfter(bytes: number): void {
    this.crashBudget = bytes;
  }

  /** Returns the matching rule that fires now, if any. */
  match(op: FaultOp, p: string): (FaultRule & { seen: number; fired: number }) | null {
    for (const r of this.rules) {
      if (r.op !== op || (r.path && !p.includes(r.path))) continue;
      r.seen++;
      if (r.seen <= (r.after ?? 0)) continue;
      if (r.fired >= (r.times ?? 1)) continue;
      r.fired++;
      return r;
    }
    return null;
  }

  /** How much of a write of `len` bytes survives the crash budget. */
  takeBudget(len: number): number {
    if (this.crashed) return 0;
    if (this.crashBudget === null) return len;
    const n = Math.min(len, this.crashBudget);
    this.crashBudget -= n;
    if (this.crashBudget <= 0) this.crashed = true;
    return n;
  }

  async open(p: string, opts?: OpenOptions): Promise<BlockFile> {
    const r = this.match('open', p);
    if (r) throw errno(r.error ?? 'EIO', 'open', p);
    return new FaultyFile(await this.inner.open(p, opts), this);
  }
  stat(p: string): Promise<FileStat | null> {
    return this.inner.stat(p);
  }
  mkdir(p: string): Promise<void> {
    return this.inner.mkdir(p);
  }
  readdir(p: string): Promise<string[]> {
    return this.inner.readdir(p);
  }
  async readFile(p: string): Promise<Buffer> {
    const r = this.match('read', p);
    if (r) throw errno(r.error ?? 'EIO', 'read', p);
    return this.inner.readFile(p);
  }
  async writeFileAtomic(p: string, data: Buffer | string, opts?: { durable?: boolean }): Promise<void> {
    const r = this.match('writeFile', p);
    if (r) throw errno(r.error ?? 'EIO', 'write', p);
    if (this.crashed || (this.crashBudget !== null && this.takeBudget(Buffer.byteLength(data)) < Buffer.byteLength(data))) return;
    return this.inner.writeFileAtomic(p, data, opts);
  }
  async rename(from: string, to: string): Promise<void> {
    const r = this.match('rename', from);
    if (r) throw errno(r.error ?? 'EIO', 'rename', from);
    if (this.crashed) return;
    return this.inner.rename(from, to);
  }
  unlink(p: string): Promise<void> {
    if (this.crashed) return Promise.resolve();
    return this.inner.unlink(p);
  }
  rmdir(p: string): Promise<void> {
    if (this.crashed) return Promise.resolve();
    return this.inner.rmdir(p);
  }
  fsyncDir(p: string): Promise<void> {
    return this.inner.fsyncDir(p);
  }
  freeSpace(p: string): Promise<number> {
    return this.inner.freeSpace(p);
  }
  now(): number {
    return this.inner.now();
  }
  monotonic(): number {
    return this.inner.monotonic();
  }
}

class FaultyFile implements BlockFile {
  /** What unsynced writes replaced, oldest first, and the size at the last sync (powerLoss). */
  private undo: Array<{ pos: number; old: Buffer }> = [];
  private syncedSize = -1;
  constructor(
    private readonly f: BlockFile,
    private readonly env: FaultyEnv,
  ) {}
  /** Before a write of [pos, pos + len) lands: keeps the bytes it replaces, while tracking. */
  private remember(pos: number, len: number): void {
    const files = this.env.unsyncedFiles();
    if (!files || len <= 0) return;
    if (this.syncedSize < 0) this.syncedSize = this.f.size();
    const old = Buffer.alloc(len);
    const n = this.f.readSync(old, pos);
    this.undo.push({ pos, old: old.subarray(0, n) });
    files.add(this);
  }
  /** A datasync that began when `undone` writes were remembered and the file had `size` bytes completed. */
  private synced(undone: number, size: number): void {
    this.undo.splice(0, undone); // writes during the sync are not covered by it
    this.syncedSize = this.undo.length > 0 ? size : -1;
    if (this.undo.length === 0) this.env.unsyncedFiles()?.delete(this);
  }
  async undoUnsynced(): Promise<void> {
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const u = this.undo[i]!;
      if (u.old.length > 0) this.f.writeSync(u.old, u.pos);
    }
    if (this.syncedSize >= 0 && this.f.size() > this.syncedSize) await this.f.truncate(this.syncedSize);
    this.undo = [];
    this.syncedSize = -1;
  }
  get path(): string {
    return this.f.path;
  }
  size(): number {
    return this.f.size();
  }
  async read(buf: Buffer, pos: number): Promise<number> {
    const r = this.env.match('read', this.path);
    if (r) throw errno(r.error ?? 'EIO', 'read', this.path);
    return this.f.read(buf, pos);
  }
  readSync(buf: Buffer, pos: number): number {
    const r = this.env.match('read', this.path);
    if (r) throw errno(r.error ?? 'EIO', 'read', this.path);
    return this.f.readSync(buf, pos);
  }
  allocatedBytes(): number | null {
    return this.f.allocatedBytes?.() ?? null;
  }
  allocation(): Promise<FileRange[] | null> {
    const r = this.env.match('map', this.path);
    if (r) return Promise.reject(errno(r.error ?? 'EIO', 'map', this.path));
    return this.f.allocation?.() ?? Promise.resolve(null);
  }
  async readUncached(buf: Buffer, pos: number): Promise<number> {
    const r = this.env.match('read', this.path);
    if (r) throw errno(r.error ?? 'EIO', 'read', this.path);
    return this.f.readUncached(buf, pos);
  }
  /** Applies rules and the crash budget; returns the prefix length that should really be written. */
  private plan(len: number): { keep: number; error: NodeJS.ErrnoException | null } {
    const r = this.env.match('write', this.path);
    let keep = len;
    let error: NodeJS.ErrnoException | null = null;
    if (r) {
      keep = Math.min(len, r.tornAt ?? 0);
      error = errno(r.error ?? 'EIO', 'write', this.path);
    }
    keep = this.env.takeBudget(keep);
    return { keep, error };
  }
  async write(buf: Buffer, pos: number): Promise<void> {
    const { keep, error } = this.plan(buf.length);
    this.remember(pos, keep);
    if (keep > 0) await this.f.write(keep === buf.length ? buf : buf.subarray(0, keep), pos);
    if (error) throw error;
  }
  writeSync(buf: Buffer, pos: number): void {
    const { keep, error } = this.plan(buf.length);
    this.remember(pos, keep);
    if (keep > 0) this.f.writeSync(keep === buf.length ? buf : buf.subarray(0, keep), pos);
    if (error) throw error;
  }
  async writev(bufs: Buffer[], pos: number): Promise<void> {
    await this.write(Buffer.concat(bufs), pos);
  }
  writevSync(bufs: Buffer[], pos: number): void {
    this.writeSync(Buffer.concat(bufs), pos);
  }
  async datasync(): Promise<void> {
    const r = this.env.match('datasync', this.path);
    if (r) throw errno(r.error ?? 'EIO', 'fdatasync', this.path);
    if (this.env.crashed) return;
    const [undone, size] = [this.undo.length, this.f.size()];
    await this.f.datasync();
    this.synced(undone, size);
  }
  datasyncSync(): void {
    const r = this.env.match('datasync', this.path);
    if (r) throw errno(r.error ?? 'EIO', 'fdatasync', this.path);
    if (this.env.crashed) return;
    this.f.datasyncSync();
    this.synced(this.undo.length, this.f.size());
  }
  async truncate(len: number): Promise<void> {
    const r = this.env.match('truncate', this.path);
    if (r) throw errno(r.error ?? 'EIO', 'truncate', this.path);
    if (!this.env.crashed) await this.f.truncate(len);
  }
  /** A write as far as rules and the crash budget go: all of it lands, or none (a crash before it). */
  async zeroRange(pos: number, len: number, mode: ZeroMode): Promise<boolean> {
    const { keep, error } = this.plan(len);
    if (error) throw error;
    if (keep < len) return true; // lost in the crash, like a write past the budget
    this.remember(pos, len);
    return this.f.zeroRange(pos, len, mode);
  }
  close(): Promise<void> {
    return this.f.close();
  }
}
