/**
 * A vault folder: opening/creating it, its keys, and durable reads and writes of its objects
 * (chunks, indexes, manifests) through the Env seam. Backup, restore, verify, prune and gc are
 * separate modules built on this one.
 *
 * Invariants: a chunk file appears under chunks/ only by rename of a fully written, fsynced temp
 * file; an index is durable before the manifest naming it is renamed into snapshots/; a snapshot
 * exists iff its manifest does. Nothing here deletes a chunk (only gc does), and an index is
 * deleted here only when no live reader may still need it (see "Readers" below).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HoldfastError, invariant } from '../../../src-shared/errors';
import type { Env } from '../env/env';
import { nodeEnv } from '../env/node-env';
import { localCodec, type ChunkCodec, type CodecKeys } from './chunk-codec';
import {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_CHUNK_SIZE,
  FORMAT_VERSION,
  SNAPSHOT_ID_RE,
  VAULT_FORMAT,
  ZSTD_LEVEL,
  chunkRelPath,
  decodeIndex,
  decodeManifest,
  decodeVaultConfig,
  encodeIndex,
  snapshotAgeOrder,
  type SnapshotIndex,
  type SnapshotManifest,
  type VaultConfig,
} from './format';

export interface VaultOptions {
  passphrase?: string;
  env?: Env;
}

export interface VaultInitOptions extends VaultOptions {
  chunkSize?: number;
  blockSize?: number;
  /** scrypt cost; the default (N=2^15, r=8, p=1) takes ~0.1 s and 32 MiB. */
  scrypt?: { N: number; r: number; p: number };
}

const KEY_AAD = Buffer.from('holdfast-vault-master-key');
const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest();

/** Maps an OS error met while touching the vault to a HoldfastError a person can act on. */
export function vaultIoError(e: unknown, dir: string, what: string): HoldfastError {
  if (e instanceof HoldfastError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  const msg = (e as Error)?.message ?? String(e);
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new HoldfastError('NO_SPACE', `The vault drive at ${dir} is full (${what}). Free space or prune old snapshots, then try again.`);
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM')
    return new HoldfastError('READ_ONLY', `The vault folder ${dir} is read-only or not writable (${what}). Snapshots can still be listed and restored.`);
  if (code === 'ENOENT') return new HoldfastError('VAULT_MISSING', `The vault folder ${dir} is gone (${what}). Is the drive still connected?`);
  if (code === 'EIO') return new HoldfastError('IO_ERROR', `The vault drive at ${dir} reported an I/O error (${what}): ${msg}`);
  return new HoldfastError('IO_ERROR', `Vault ${dir}: ${what} failed: ${msg}`);
}

function scryptKey(passphrase: string, salt: Buffer, p: { N: number; r: number; p: number }): Buffer {
  return crypto.scryptSync(passphrase.normalize('NFC'), salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + (1 << 20) });
}

function subKey(master: Buffer, label: string): Buffer {
  return crypto.createHmac('sha256', master).update(label).digest();
}

export interface Marker {
  pid: number;
  host: string;
  startedAt: string;
  /** Linux boot id: a marker from before a reboot is stale even if its pid is alive again. */
  bootId?: string;
  /** Start time of the process (Linux, clock ticks since boot): tells a reused pid from the marker's owner. */
  pidStart?: number;
}

/** What a reader needs kept: one link of its snapshot's chain as it was when the reader opened it. */
export interface ReaderPin {
  id: string;
  size: number;
  index: SnapshotManifest['index'];
}

/** readers/<name>.json: a restore, export, verify, consolidation or mount reading a snapshot. */
export interface ReaderMarker extends Marker {
  purpose: string;
  snapshot: string;
  /**
   * A browse with no end (a mounted snapshot) does not hold prune back: prune removes its snapshot
   * and the engine disconnects its clients. gc still keeps what it pinned until it closes.
   */
  preemptible?: boolean;
  /** The chain it loaded, newest first; null while it is still loading it. */
  chain: ReaderPin[] | null;
}

const READER_OPEN_TIMEOUT_MS = 30_000;

/** Linux only: elsewhere there is no stable boot id (a boot time derived from uptime jitters), so none is recorded. */
const thisBootId: string | undefined = (() => {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
})();

function processStartTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]); // field 22, starttime
    return Number.isSafeInteger(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
const selfStart = processStartTicks(process.pid);

/**
 * A registered reader's handle: pin() records the chain it loaded, release() removes the marker.
 * When the marker cannot be written (read-only or full vault drive) the read goes ahead
 * unregistered: it reads correctly unless something prunes and collects the vault meanwhile.
 */
export class ReaderLease {
  constructor(
    private readonly vault: Vault,
    private file: string | null,
    private readonly marker: ReaderMarker,
  ) {}

  get registered(): boolean {
    return this.file !== null;
  }

  async pin(chain: ReaderPin[]): Promise<void> {
    if (!this.file) return;
    this.marker.chain = chain;
    try {
      await this.vault.env.writeFileAtomic(this.file, JSON.stringify(this.marker), { durable: false });
    } catch {
      await this.release(); // an "opening" marker left behind would make gc wait for it in vain
    }
  }

  async release(): Promise<void> {
    const f = this.file;
    this.file = null;
    if (f) await this.vault.env.unlink(f).catch(() => undefined);
  }
}

export class Vault {
  readonly codec: ChunkCodec;
  private readonly knownChunks = new Set<string>();
  private writableReason: string | null = null;

  private constructor(
    readonly dir: string,
    readonly config: VaultConfig,
    readonly keys: CodecKeys,
    readonly env: Env,
  ) {
    this.codec = localCodec(keys);
  }

  get encrypted(): boolean {
    return this.config.encryption !== null;
  }
  get chunkSize(): number {
    return this.config.chunkSize;
  }
  get blockSize(): number {
    return this.config.blockSize;
  }

  // ------------------------------------------------------------ create / open

  static async init(dir: string, opts: VaultInitOptions = {}): Promise<Vault> {
    const env = opts.env ?? nodeEnv;
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    if (!Number.isInteger(blockSize) || blockSize < 512 || blockSize & (blockSize - 1) || chunkSize % blockSize || chunkSize > 64 * 1024 * 1024)
      throw new HoldfastError('INVALID_ARGUMENT', 'Chunk size must be a multiple of the block size (a power of two ≥ 512) and at most 64 MiB.');
    if (opts.passphrase !== undefined && opts.passphrase.length < 1) throw new HoldfastError('INVALID_ARGUMENT', 'The passphrase must not be empty.');
    try {
      if (await env.stat(path.join(dir, 'vault.json'))) throw new HoldfastError('ALREADY_EXISTS', `${dir} already holds a vault.`);
      await env.mkdir(dir);
      for (const sub of ['chunks', 'indexes', 'snapshots', 'inprogress', 'readers', 'tmp']) await env.mkdir(path.join(dir, sub));
      let encryption: VaultConfig['encryption'] = null;
      let keys: CodecKeys = { encKey: null, idKey: null, level: ZSTD_LEVEL };
      if (opts.passphrase !== undefined) {
        const params = opts.scrypt ?? { N: 1 << 15, r: 8, p: 1 };
        const salt = crypto.randomBytes(16);
        const kek = scryptKey(opts.passphrase, salt, params);
        const master = crypto.randomBytes(32);
        const nonce = crypto.randomBytes(12);
        const c = crypto.createCipheriv('aes-256-gcm', kek, nonce);
        c.setAAD(KEY_AAD);
        const wrapped = Buffer.concat([nonce, c.update(master), c.final(), c.getAuthTag()]);
        encryption = { cipher: 'aes-256-gcm', kdf: 'scrypt', salt: salt.toString('base64'), ...params, wrappedKey: wrapped.toString('base64') };
        keys = { encKey: subKey(master, 'holdfast/chunk-encryption'), idKey: subKey(master, 'holdfast/chunk-name'), level: ZSTD_LEVEL };
      }
      const config: VaultConfig = {
        format: VAULT_FORMAT,
        version: FORMAT_VERSION,
        id: crypto.randomUUID(),
        createdAt: new Date(env.now()).toISOString(),
        chunkSize,
        blockSize,
        chunkHash: encryption ? 'hmac-sha256' : 'sha256',
        encryption,
      };
      await env.writeFileAtomic(path.join(dir, 'vault.json'), JSON.stringify(config, null, 2) + '\n');
      return new Vault(dir, config, keys, env);
    } catch (e) {
      throw vaultIoError(e, dir, 'creating the vault');
    }
  }

  static async open(dir: string, opts: VaultOptions = {}): Promise<Vault> {
    const env = opts.env ?? nodeEnv;
    const st = await env.stat(dir).catch(() => null);
    if (!st || !st.isDirectory)
      throw new HoldfastError('VAULT_MISSING', `No vault folder at ${dir}. Is the drive connected? Create a vault with \`holdfast vault init ${dir}\`.`);
    let text: string;
    try {
      text = (await env.readFile(path.join(dir, 'vault.json'))).toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new HoldfastError('VAULT_MISSING', `${dir} is not a Holdfast vault (no vault.json). Create one with \`holdfast vault init ${dir}\`.`);
      throw vaultIoError(e, dir, 'reading vault.json');
    }
    const config = decodeVaultConfig(text, path.join(dir, 'vault.json'));
    let keys: CodecKeys = { encKey: null, idKey: null, level: ZSTD_LEVEL };
    if (config.encryption) {
      if (opts.passphrase === undefined)
        throw new HoldfastError('VAULT_LOCKED', `The vault at ${dir} is encrypted. Give its passphrase to open it.`);
      const enc = config.encryption;
      const kek = scryptKey(opts.passphrase, Buffer.from(enc.salt, 'base64'), enc);
      const wrapped = Buffer.from(enc.wrappedKey, 'base64');
      let master: Buffer;
      try {
        const d = crypto.createDecipheriv('aes-256-gcm', kek, wrapped.subarray(0, 12));
        d.setAAD(KEY_AAD);
        d.setAuthTag(wrapped.subarray(wrapped.length - 16));
        master = Buffer.concat([d.update(wrapped.subarray(12, wrapped.length - 16)), d.final()]);
      } catch {
        throw new HoldfastError('VAULT_LOCKED', `Wrong passphrase for the encrypted vault at ${dir}. Check the passphrase and try again.`);
      }
      keys = { encKey: subKey(master, 'holdfast/chunk-encryption'), idKey: subKey(master, 'holdfast/chunk-name'), level: ZSTD_LEVEL };
    }
    const v = new Vault(dir, config, keys, env);
    await v.probeWritable();
    return v;
  }

  private async probeWritable(): Promise<void> {
    const probe = path.join(this.dir, 'tmp', `.probe-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    try {
      await this.env.mkdir(path.join(this.dir, 'tmp'));
      await this.env.writeFileAtomic(probe, 'probe', { durable: false }); // only asks whether the drive takes writes
      await this.env.unlink(probe);
      this.writableReason = null;
    } catch (e) {
      this.writableReason = vaultIoError(e, this.dir, 'probing for write access').message;
    }
  }

  get writable(): boolean {
    return this.writableReason === null;
  }

  /** Throws READ_ONLY (or the probe's error) before any operation that writes. */
  assertWritable(): void {
    if (this.writableReason !== null)
      throw new HoldfastError('READ_ONLY', `Cannot write to the vault at ${this.dir}: ${this.writableReason}`);
  }

  // ------------------------------------------------------------ snapshots

  private manifestPath(id: string): string {
    return path.join(this.dir, 'snapshots', `${id}.json`);
  }

  async listSnapshots(volume?: string): Promise<SnapshotManifest[]> {
    let names: string[];
    try {
      names = await this.env.readdir(path.join(this.dir, 'snapshots'));
    } catch (e) {
      throw vaultIoError(e, this.dir, 'listing snapshots');
    }
    const out: SnapshotManifest[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue; // temp files of an unfinished rename are not snapshots
      let m: SnapshotManifest;
      try {
        m = await this.getManifest(n.slice(0, -5));
      } catch (e) {
        if (e instanceof HoldfastError && e.code === 'SNAPSHOT_NOT_FOUND') continue; // pruned while we listed
        throw e;
      }
      if (volume === undefined || m.volume === volume) out.push(m);
    }
    return out.sort(snapshotAgeOrder);
  }

  async getManifest(id: string): Promise<SnapshotManifest> {
    if (!SNAPSHOT_ID_RE.test(id)) throw new HoldfastError('SNAPSHOT_NOT_FOUND', `"${id}" is not a snapshot id.`);
    let text: string;
    try {
      text = (await this.env.readFile(this.manifestPath(id))).toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new HoldfastError('SNAPSHOT_NOT_FOUND', `No snapshot ${id} in the vault at ${this.dir}.`);
      throw vaultIoError(e, this.dir, `reading snapshot ${id}`);
    }
    return decodeManifest(text, id);
  }

  /** Newest snapshot of a volume, or null. */
  async newestOf(volume: string): Promise<SnapshotManifest | null> {
    const all = await this.listSnapshots(volume);
    return all.length ? all[all.length - 1]! : null;
  }

  /** The index a manifest (or a reader's pin of one) names, checked against its recorded digest. */
  async readIndex(m: Pick<SnapshotManifest, 'id' | 'size' | 'index'>): Promise<SnapshotIndex> {
    let file: Buffer;
    try {
      file = await this.env.readFile(path.join(this.dir, 'indexes', m.index.file));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new HoldfastError('VAULT_CORRUPT', `The index of snapshot ${m.id} is missing from the vault.`, { index: m.index.file });
      throw vaultIoError(e, this.dir, `reading the index of ${m.id}`);
    }
    if (file.length !== m.index.bytes || sha256(file).toString('hex') !== m.index.digest)
      throw new HoldfastError(
        'VAULT_CORRUPT',
        `The index of snapshot ${m.id} is damaged (${file.length < m.index.bytes ? 'truncated' : 'checksum mismatch'}).`,
        { index: m.index.file },
      );
    let body: Buffer;
    try {
      body = this.codec.decode(file, `index:${m.id}`, false);
    } catch (e) {
      throw new HoldfastError('VAULT_CORRUPT', `The index of snapshot ${m.id} is damaged: ${(e as Error).message}.`, { index: m.index.file });
    }
    const ix = decodeIndex(body, m.id, sha256);
    if (ix.size !== m.size) throw new HoldfastError('VAULT_CORRUPT', `The index of snapshot ${m.id} does not match its manifest.`);
    return ix;
  }

  /** The snapshot and its ancestors down to the full it rests on, newest first. */
  async chain(id: string): Promise<Array<{ manifest: SnapshotManifest; index: SnapshotIndex }>> {
    const out: Array<{ manifest: SnapshotManifest; index: SnapshotIndex }> = [];
    let cur: string | null = id;
    while (cur !== null) {
      let m: SnapshotManifest;
      try {
        m = await this.getManifest(cur);
      } catch (e) {
        if (out.length && e instanceof HoldfastError && e.code === 'SNAPSHOT_NOT_FOUND')
          throw new HoldfastError('VAULT_CORRUPT', `Snapshot ${id} depends on ${cur}, which is missing from the vault.`);
        throw e;
      }
      let index: SnapshotIndex;
      try {
        index = await this.readIndex(m);
      } catch (e) {
        // Pruned (manifest, then index) between our two reads: say so rather than "damaged".
        if (e instanceof HoldfastError && e.code === 'VAULT_CORRUPT' && !(await this.env.stat(this.manifestPath(m.id)).catch(() => 'unknown')))
          throw new HoldfastError('SNAPSHOT_NOT_FOUND', `Snapshot ${m.id} was removed from the vault ${this.dir} (pruned) just as it was opened.`);
        throw e;
      }
      out.push({ manifest: m, index });
      if (m.kind === 'full') break;
      invariant(out.length < 100_000, 'snapshot chain is finite');
      cur = m.parent;
      if (cur === null) throw new HoldfastError('VAULT_CORRUPT', `Incremental snapshot ${m.id} names no parent.`);
    }
    return out;
  }

  /**
   * Makes a snapshot visible: the index first (atomic + durable) — while the fan-out folders of
   * `chunks` (the chunk files it wrote) are synced — then the manifest by rename. A crash before
   * the manifest rename leaves only garbage that gc removes.
   */
  async commitSnapshot(manifest: Omit<SnapshotManifest, 'index'>, index: SnapshotIndex, chunks: Iterable<string> = []): Promise<SnapshotManifest> {
    this.assertWritable();
    const body = encodeIndex(index, sha256);
    const file = this.codec.encode(body, `index:${manifest.id}`);
    const name = `${manifest.id}.${crypto.randomBytes(4).toString('hex')}.idx`;
    const full: SnapshotManifest = { ...manifest, index: { file: name, digest: sha256(file).toString('hex'), bytes: file.length } };
    try {
      await Promise.all([this.env.writeFileAtomic(path.join(this.dir, 'indexes', name), file), this.syncChunkDirs(chunks)]);
      await this.env.writeFileAtomic(this.manifestPath(manifest.id), JSON.stringify(full, null, 2) + '\n');
    } catch (e) {
      if (e instanceof HoldfastError) throw e;
      throw vaultIoError(e, this.dir, `writing snapshot ${manifest.id}`);
    }
    return full;
  }

  /**
   * Removes a snapshot: the manifest first (it stops existing), then its index — unless a live
   * reader may still need the index (it pinned it, or is still loading its chain); gc removes it
   * once that reader is gone. Reading the readers after the manifest is gone is what makes this
   * safe: a reader that registered later cannot load this snapshot any more.
   */
  async deleteSnapshot(m: SnapshotManifest): Promise<void> {
    this.assertWritable();
    try {
      await this.env.unlink(this.manifestPath(m.id));
      await this.env.fsyncDir(path.join(this.dir, 'snapshots'));
      const readers = [...(await this.liveReaders()).values()];
      if (readers.some((r) => r.chain === null || r.chain.some((p) => p.index.file === m.index.file))) return;
      await this.env.unlink(path.join(this.dir, 'indexes', m.index.file));
    } catch (e) {
      throw vaultIoError(e, this.dir, `deleting snapshot ${m.id}`);
    }
  }

  // ------------------------------------------------------------ chunks

  chunkPath(hex: string): string {
    return path.join(this.dir, chunkRelPath(hex));
  }

  async hasChunk(hex: string): Promise<boolean> {
    if (this.knownChunks.has(hex)) return true;
    const st = await this.env.stat(this.chunkPath(hex)).catch((e) => {
      throw vaultIoError(e, this.dir, `checking chunk ${hex}`);
    });
    if (st) this.knownChunks.add(hex);
    return st !== null;
  }

  /**
   * Writes a chunk file durably (temp + fsync + rename); returns bytes written. The caller
   * fsyncs the fan-out dirs with syncChunkDirs. `onWritten` runs once `file` has been handed
   * to the OS (before the fsync): from then on the caller may reuse its memory. `file` may come
   * in parts (header and body), written with one writev.
   */
  async writeChunk(hex: string, file: Buffer | Buffer[], onWritten?: () => void): Promise<number> {
    const parts = Array.isArray(file) ? file : [file];
    const length = parts.reduce((n, b) => n + b.length, 0);
    const tmp = path.join(this.dir, 'tmp', `${hex}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`);
    const fan = path.join(this.dir, 'chunks', hex.slice(0, 2));
    try {
      const f = await this.env.open(tmp, { create: true, exclusive: true });
      try {
        if (parts.length === 1) await f.write(parts[0]!, 0);
        else await f.writev(parts, 0);
        onWritten?.();
        await f.datasync();
      } finally {
        await f.close();
      }
      // The fan-out folder usually exists: make it only when the rename says it is missing.
      await this.env.rename(tmp, this.chunkPath(hex)).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        await this.env.mkdir(fan);
        await this.env.rename(tmp, this.chunkPath(hex));
      });
    } catch (e) {
      await this.env.unlink(tmp).catch(() => undefined);
      throw vaultIoError(e, this.dir, `writing chunk ${hex.slice(0, 12)}…`);
    }
    this.knownChunks.add(hex);
    return length;
  }

  async syncChunkDirs(hexes: Iterable<string>): Promise<void> {
    const dirs = new Set<string>();
    for (const h of hexes) dirs.add(h.slice(0, 2));
    if (dirs.size === 0) return;
    try {
      // Independent directories: sync them together (one at a time cost a round trip and a
      // journal commit each — hundreds after a full backup).
      const queue = [...dirs];
      const syncNext = async (): Promise<void> => {
        for (let d = queue.pop(); d !== undefined; d = queue.pop()) await this.env.fsyncDir(path.join(this.dir, 'chunks', d));
      };
      await Promise.all(Array.from({ length: Math.min(16, queue.length) }, syncNext));
      await this.env.fsyncDir(path.join(this.dir, 'chunks'));
    } catch (e) {
      throw vaultIoError(e, this.dir, 'syncing chunk folders');
    }
  }

  async readChunkFile(hex: string): Promise<Buffer> {
    try {
      return await this.env.readFile(this.chunkPath(hex));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new HoldfastError('VAULT_CORRUPT', `Chunk ${hex} is missing from the vault.`, { chunk: hex });
      throw vaultIoError(e, this.dir, `reading chunk ${hex.slice(0, 12)}…`);
    }
  }

  /** Every chunk file name present (for gc). */
  async listChunks(): Promise<string[]> {
    const out: string[] = [];
    const root = path.join(this.dir, 'chunks');
    for (const d of await this.env.readdir(root)) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const n of await this.env.readdir(path.join(root, d))) if (/^[0-9a-f]{64}$/.test(n)) out.push(n);
    }
    return out;
  }

  forgetChunk(hex: string): void {
    this.knownChunks.delete(hex);
  }

  // ------------------------------------------------------------ markers (gc ⟂ backup)

  markerSelf(): Marker {
    return { pid: process.pid, host: os.hostname(), startedAt: new Date(this.env.now()).toISOString(), bootId: thisBootId, pidStart: selfStart };
  }

  /**
   * A marker whose process is gone is stale (a crash); it no longer counts. On this host "gone"
   * means: written before the last reboot (boot id), or its pid is dead, or the pid now belongs
   * to a process that started at another time (pid reuse). Another host's marker (a vault drive
   * moved between machines) counts for 24 hours.
   */
  isStale(m: Marker): boolean {
    if (m.host !== os.hostname()) return this.env.now() - Date.parse(m.startedAt) > 24 * 3600_000;
    if (m.bootId && thisBootId && m.bootId !== thisBootId) return true;
    if (m.pid === process.pid) return m.pidStart !== undefined && selfStart !== undefined && m.pidStart !== selfStart;
    try {
      process.kill(m.pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
    }
    if (m.pidStart === undefined) return false;
    const now = processStartTicks(m.pid);
    return now !== undefined && now !== m.pidStart;
  }

  async readMarker(p: string): Promise<Marker | null> {
    try {
      return JSON.parse((await this.env.readFile(p)).toString('utf8')) as Marker;
    } catch {
      return null;
    }
  }

  inProgressPath(backupId: string): string {
    return path.join(this.dir, 'inprogress', `${backupId.replace(/[^0-9A-Za-z._-]/g, '_')}.json`);
  }

  gcMarkerPath(): string {
    return path.join(this.dir, 'gc.running');
  }

  /**
   * Registers a writer (backup, consolidation) in inprogress/ and waits until no gc is deleting
   * chunks (see maintenance.ts for the handshake). Returns the release function.
   */
  async beginWrite(name: string, signal?: AbortSignal): Promise<() => Promise<void>> {
    this.assertWritable();
    const marker = this.inProgressPath(name);
    // Markers name a live process: visible at once to gc in other processes, meaningless after a crash (no fsync).
    await this.env.writeFileAtomic(marker, JSON.stringify(this.markerSelf()), { durable: false }).catch((e) => {
      throw vaultIoError(e, this.dir, 'registering a writer');
    });
    const release = () => this.env.unlink(marker).catch(() => undefined);
    try {
      const deadline = this.env.monotonic() + 60_000;
      for (;;) {
        const m = await this.readMarker(this.gcMarkerPath());
        if (!m || this.isStale(m)) break;
        if (signal?.aborted) throw new HoldfastError('CANCELLED', 'Cancelled while waiting for garbage collection to stop.');
        if (this.env.monotonic() > deadline) throw new HoldfastError('IN_USE', `A garbage collection of the vault ${this.dir} does not stop; try again later.`);
        await new Promise((r) => setTimeout(r, 10));
      }
    } catch (e) {
      await release();
      throw e;
    }
    return release;
  }

  // ------------------------------------------------------------ readers (restore/export/mount ⟂ prune, gc)
  //
  // A reader writes readers/<name>.json naming its snapshot *before* it reads any manifest, then
  // records the chain it loaded (pin). prune skips snapshots a live reader's chain contains (except
  // a preemptible one's: a mount) and deleteSnapshot keeps pinned indexes; gc keeps every chunk a
  // pinned index names. Readers never
  // wait for gc: the writer handshake already guarantees no manifest appears while gc runs, so a
  // reader that registers during gc reads snapshots whose chunks gc marked.

  readersDir(): string {
    return path.join(this.dir, 'readers');
  }

  /** Registers a reader of `snapshot` (see ReaderLease for a vault that cannot be written). */
  async beginRead(snapshot: string, purpose: string, opts: { preemptible?: boolean } = {}): Promise<ReaderLease> {
    const marker: ReaderMarker = { ...this.markerSelf(), purpose, snapshot, chain: null, ...(opts.preemptible ? { preemptible: true } : {}) };
    if (!this.writable) return new ReaderLease(this, null, marker);
    const safe = `${purpose}-${snapshot}`.replace(/[^0-9A-Za-z._-]/g, '_').slice(0, 120);
    const file = path.join(this.readersDir(), `${safe}-${process.pid}-${crypto.randomBytes(4).toString('hex')}.json`);
    try {
      await this.env.mkdir(this.readersDir());
      await this.env.writeFileAtomic(file, JSON.stringify(marker), { durable: false });
    } catch {
      await this.env.unlink(file).catch(() => undefined);
      return new ReaderLease(this, null, marker);
    }
    return new ReaderLease(this, file, marker);
  }

  /** Live readers by marker name; `removeStale` deletes the markers of dead processes on the way. */
  async liveReaders(opts: { removeStale?: boolean } = {}): Promise<Map<string, ReaderMarker>> {
    const dir = this.readersDir();
    const names = await this.env.readdir(dir).catch(() => [] as string[]);
    const live = new Map<string, ReaderMarker>();
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const m = (await this.readMarker(path.join(dir, n))) as ReaderMarker | null;
      if (!m || typeof m.snapshot !== 'string') continue; // vanished (released) or not a reader marker
      if (this.isStale(m)) {
        if (opts.removeStale) await this.env.unlink(path.join(dir, n)).catch(() => undefined);
        continue;
      }
      live.set(n, m);
    }
    return live;
  }

  /**
   * Live readers once each has recorded its chain: waits (briefly — loading indexes takes
   * milliseconds) for readers still loading. IN_USE if one never finishes.
   */
  async openedReaders(opts: { removeStale?: boolean } = {}): Promise<Map<string, ReaderMarker & { chain: ReaderPin[] }>> {
    const deadline = this.env.monotonic() + READER_OPEN_TIMEOUT_MS;
    for (;;) {
      const live = await this.liveReaders(opts);
      const opening = [...live.values()].find((r) => r.chain === null);
      if (!opening) return live as Map<string, ReaderMarker & { chain: ReaderPin[] }>;
      if (this.env.monotonic() > deadline)
        throw new HoldfastError('IN_USE', `A ${opening.purpose} of snapshot ${opening.snapshot} (pid ${opening.pid}) has been opening for over ${READER_OPEN_TIMEOUT_MS / 1000} s; try again when it has started or ended.`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Live backups writing to this vault right now (markers of dead processes are ignored). */
  async liveBackups(): Promise<string[]> {
    const dir = path.join(this.dir, 'inprogress');
    const names = await this.env.readdir(dir).catch(() => [] as string[]);
    const live: string[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const m = await this.readMarker(path.join(dir, n));
      if (m && !this.isStale(m)) live.push(n.slice(0, -5));
    }
    return live;
  }
}
