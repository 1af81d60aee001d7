/**
 * The vault's on-disk format, and nothing else: constants, layouts, encode/decode.
 * (After LevelDB's log_format.h.) docs/vault-format.md describes the same thing in prose.
 *
 *   <vault>/vault.json                 VaultConfig (format version, chunk/block size, encryption)
 *   <vault>/chunks/ab/abcdef…          content-addressed objects (ChunkFile framing below)
 *   <vault>/indexes/<id>.<gen>.idx     one snapshot's index (a ChunkFile-framed SnapshotIndex)
 *   <vault>/snapshots/<id>.json        SnapshotManifest — written last, by rename: its presence
 *                                      is what makes a snapshot exist
 *   <vault>/inprogress/, gc.running    markers that keep gc and running backups apart
 *   <vault>/tmp/                       temp files before rename (garbage after a crash)
 *
 * Invariants: a manifest only names an index whose bytes hash to manifest.index.digest, and an
 * index only names chunks that were durable (fsync + rename + dir fsync) before the index was
 * written. A chunk's name is the digest of its plaintext, so any decoded chunk can be checked.
 */
import { HoldfastError, invariant } from '../../../src-shared/errors';
import type { HoldPolicy } from '../../../src-shared/contract';

export const VAULT_FORMAT = 'holdfast-vault';
export const SNAPSHOT_FORMAT = 'holdfast-snapshot';
/** Newest format this code reads and writes. A vault or manifest with a higher number ⇒ VAULT_TOO_NEW. */
export const FORMAT_VERSION = 1;

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
export const DEFAULT_BLOCK_SIZE = 4096;
/** Any level decodes the same; 1 is ~1.7× faster than 3 on disk images for ~4 % larger chunks. */
export const ZSTD_LEVEL = 1;
export const DIGEST_BYTES = 32;
/** The name used in indexes for an all-zero chunk or block: never stored. */
export const ZERO_DIGEST = Buffer.alloc(DIGEST_BYTES);

/** Synthetic full (consolidation) when an incremental chain grows past this many links… */
export const CONSOLIDATE_CHAIN_LENGTH = 16;
/** …or its delta data passes this fraction of the volume size. */
export const CONSOLIDATE_DELTA_FRACTION = 0.25;

// ---------------------------------------------------------------- vault.json

export const VAULT_CONFIG_FILE = 'vault.json';

export interface EncryptionConfig {
  cipher: 'aes-256-gcm';
  kdf: 'scrypt';
  salt: string; // base64
  N: number;
  r: number;
  p: number;
  /** Master key wrapped with the scrypt key: base64(nonce 12 ‖ ciphertext 32 ‖ tag 16). */
  wrappedKey: string;
}

export interface VaultConfig {
  format: typeof VAULT_FORMAT;
  version: number;
  id: string;
  createdAt: string;
  chunkSize: number;
  blockSize: number;
  /** Chunk names: sha256(plaintext), or hmac-sha256(idKey, plaintext) when encrypted. */
  chunkHash: 'sha256' | 'hmac-sha256';
  encryption: EncryptionConfig | null;
}

export function decodeVaultConfig(text: string, where: string): VaultConfig {
  let v: Partial<VaultConfig>;
  try {
    v = JSON.parse(text) as Partial<VaultConfig>;
  } catch {
    throw new HoldfastError('VAULT_CORRUPT', `${where} is not valid JSON; the vault's configuration is damaged.`);
  }
  if (v.format !== VAULT_FORMAT) throw new HoldfastError('VAULT_CORRUPT', `${where} does not describe a Holdfast vault.`);
  if (typeof v.version !== 'number' || v.version > FORMAT_VERSION)
    throw new HoldfastError('VAULT_TOO_NEW', `This vault uses format ${v.version}; this Holdfast reads up to ${FORMAT_VERSION}. Update Holdfast to open it.`);
  if (!Number.isInteger(v.chunkSize) || !Number.isInteger(v.blockSize) || v.chunkSize! % v.blockSize! !== 0)
    throw new HoldfastError('VAULT_CORRUPT', `${where} has an invalid chunk or block size.`);
  return v as VaultConfig;
}

// ---------------------------------------------------------------- snapshots/<id>.json

/**
 * Oldest first: by creation time (ISO-8601 UTC strings, which sort as text), then by id. Plain
 * code-unit comparison, not localeCompare: the first localeCompare in a process loads ICU's
 * collator (8–20 ms on the engine thread, which answers NBD clients: it landed at the end of
 * the first backup that had a snapshot to sort against), and a locale must not reorder ids.
 */
export function snapshotAgeOrder(a: Pick<SnapshotManifest, 'createdAt' | 'id'>, b: Pick<SnapshotManifest, 'createdAt' | 'id'>): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export interface SnapshotManifest {
  format: typeof SNAPSHOT_FORMAT;
  version: number;
  id: string;
  volume: string;
  volumeId?: number;
  size: number;
  createdAt: string;
  policy: HoldPolicy;
  /** full: a chunk digest per chunk-size region. incremental: 4 KiB-block delta on top of `parent`. */
  kind: 'full' | 'incremental';
  parent: string | null;
  chunkSize: number;
  blockSize: number;
  index: { file: string; digest: string; bytes: number };
  /** Links from this snapshot down to its full base (a full has 0). */
  chainLength: number;
  /** Sum of changed bytes recorded by the incrementals of the chain (0 for a full). */
  chainDeltaBytes: number;
  /** Set when this full was written from an incremental chain without re-reading the volume. */
  consolidatedFrom?: string;
  backupId?: string;
  stats: {
    /** Bytes read from the volume (changed data for an incremental). */
    readBytes: number;
    /** Bytes of chunk files this snapshot added to the vault. */
    storedBytes: number;
    newChunks: number;
    reusedChunks: number;
    zeroChunks: number;
  };
}

export function decodeManifest(text: string, where: string): SnapshotManifest {
  let m: Partial<SnapshotManifest>;
  try {
    m = JSON.parse(text) as Partial<SnapshotManifest>;
  } catch {
    throw new HoldfastError('VAULT_CORRUPT', `Snapshot manifest ${where} is not valid JSON.`);
  }
  if (m.format !== SNAPSHOT_FORMAT) throw new HoldfastError('VAULT_CORRUPT', `${where} is not a Holdfast snapshot manifest.`);
  if (typeof m.version !== 'number' || m.version > FORMAT_VERSION)
    throw new HoldfastError(
      'VAULT_TOO_NEW',
      `Snapshot ${m.id ?? where} was written in format ${m.version}; this Holdfast reads up to ${FORMAT_VERSION}. Update Holdfast to read it.`,
    );
  if (typeof m.id !== 'string' || !Number.isSafeInteger(m.size) || !m.index || typeof m.index.digest !== 'string')
    throw new HoldfastError('VAULT_CORRUPT', `Snapshot manifest ${where} is missing fields.`);
  return m as SnapshotManifest;
}

// ---------------------------------------------------------------- chunk file framing

/**
 * Every stored object (chunk or index): 8-byte header then payload.
 *   0  'HFC1'           magic
 *   4  u8 flags          bit0 zstd-compressed, bit1 AES-256-GCM encrypted
 *   5  3 bytes reserved (0)
 *   8  payload: encrypted ? nonce(12) ‖ ciphertext ‖ tag(16) : body   (body = zstd(plain) or plain)
 * GCM's additional data is the object's name, so a chunk cannot be swapped for another.
 */
export const CHUNK_MAGIC = Buffer.from('HFC1');
export const CHUNK_HEADER_BYTES = 8;
export const FLAG_ZSTD = 1;
export const FLAG_ENCRYPTED = 2;
export const GCM_NONCE_BYTES = 12;
export const GCM_TAG_BYTES = 16;

export function chunkHeader(flags: number): Buffer {
  const h = Buffer.alloc(CHUNK_HEADER_BYTES);
  CHUNK_MAGIC.copy(h, 0);
  h[4] = flags;
  return h;
}

export function parseChunkHeader(file: Buffer, name: string): { flags: number; payload: Buffer } {
  if (file.length < CHUNK_HEADER_BYTES || !file.subarray(0, 4).equals(CHUNK_MAGIC))
    throw new HoldfastError('VAULT_CORRUPT', `Chunk ${name} is damaged (bad header).`, { chunk: name });
  const flags = file[4]!;
  if (flags & ~(FLAG_ZSTD | FLAG_ENCRYPTED)) throw new HoldfastError('VAULT_TOO_NEW', `Chunk ${name} uses features this Holdfast does not know.`);
  return { flags, payload: file.subarray(CHUNK_HEADER_BYTES) };
}

/** chunks/ab/abcdef… */
export function chunkRelPath(hex: string): string {
  return `chunks/${hex.slice(0, 2)}/${hex}`;
}

// ---------------------------------------------------------------- snapshot index

/**
 * Index payload (little-endian), stored framed as a chunk object named by the snapshot id:
 *   0  'HFIX'   4  u32 version   8  u8 kind (0 full, 1 delta)   9..15 reserved
 *  16  u64 volume size   24 u32 chunkSize   28 u32 blockSize   32 u32 nDigests   36 u32 nEntries
 *  40  nDigests × 32-byte digests
 *      full : one per chunk-size region of the volume, ZERO_DIGEST for an all-zero region
 *      delta: the delta chunks, each a concatenation of ≤ chunkSize/blockSize changed blocks
 *   …  delta only: nEntries × 12 bytes { u32 block, u32 delta chunk (0xFFFFFFFF = zero block), u32 slot }
 *      sorted by block, blocks unique; slot = block position inside the delta chunk
 *   …  32-byte SHA-256 of everything before it (detects truncation inside the frame)
 */
export const INDEX_MAGIC = Buffer.from('HFIX');
export const INDEX_HEADER_BYTES = 40;
export const DELTA_ENTRY_BYTES = 12;
export const ZERO_BLOCK_REF = 0xffffffff;

export interface FullIndex {
  kind: 'full';
  size: number;
  chunkSize: number;
  blockSize: number;
  /** nRegions × 32 bytes. */
  digests: Buffer;
}

export interface DeltaIndex {
  kind: 'delta';
  size: number;
  chunkSize: number;
  blockSize: number;
  digests: Buffer;
  blocks: Uint32Array;
  chunkOf: Uint32Array;
  slotOf: Uint32Array;
}

export type SnapshotIndex = FullIndex | DeltaIndex;

export function regionCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

export function digestAt(digests: Buffer, i: number): Buffer {
  return digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
}

export function encodeIndex(ix: SnapshotIndex, sha256: (b: Buffer) => Buffer): Buffer {
  invariant(ix.digests.length % DIGEST_BYTES === 0, 'index digests are whole');
  const nEntries = ix.kind === 'delta' ? ix.blocks.length : 0;
  const body = Buffer.alloc(INDEX_HEADER_BYTES + ix.digests.length + nEntries * DELTA_ENTRY_BYTES + DIGEST_BYTES);
  INDEX_MAGIC.copy(body, 0);
  body.writeUInt32LE(FORMAT_VERSION, 4);
  body[8] = ix.kind === 'full' ? 0 : 1;
  body.writeBigUInt64LE(BigInt(ix.size), 16);
  body.writeUInt32LE(ix.chunkSize, 24);
  body.writeUInt32LE(ix.blockSize, 28);
  body.writeUInt32LE(ix.digests.length / DIGEST_BYTES, 32);
  body.writeUInt32LE(nEntries, 36);
  let o = INDEX_HEADER_BYTES + ix.digests.copy(body, INDEX_HEADER_BYTES);
  if (ix.kind === 'delta') {
    for (let i = 0; i < nEntries; i++) {
      invariant(i === 0 || ix.blocks[i]! > ix.blocks[i - 1]!, 'delta entries sorted by block and unique');
      body.writeUInt32LE(ix.blocks[i]!, o);
      body.writeUInt32LE(ix.chunkOf[i]!, o + 4);
      body.writeUInt32LE(ix.slotOf[i]!, o + 8);
      o += DELTA_ENTRY_BYTES;
    }
  }
  sha256(body.subarray(0, o)).copy(body, o);
  return body;
}

export function decodeIndex(body: Buffer, name: string, sha256: (b: Buffer) => Buffer): SnapshotIndex {
  const bad = (why: string) => new HoldfastError('VAULT_CORRUPT', `The index of snapshot ${name} is damaged (${why}).`, { index: name });
  if (body.length < INDEX_HEADER_BYTES + DIGEST_BYTES || !body.subarray(0, 4).equals(INDEX_MAGIC)) throw bad('bad header');
  const version = body.readUInt32LE(4);
  if (version > FORMAT_VERSION) throw new HoldfastError('VAULT_TOO_NEW', `The index of snapshot ${name} uses format ${version}; update Holdfast.`);
  const kind = body[8] === 0 ? 'full' : body[8] === 1 ? 'delta' : null;
  if (!kind) throw bad('unknown kind');
  const size = Number(body.readBigUInt64LE(16));
  const chunkSize = body.readUInt32LE(24);
  const blockSize = body.readUInt32LE(28);
  const nDigests = body.readUInt32LE(32);
  const nEntries = body.readUInt32LE(36);
  const end = INDEX_HEADER_BYTES + nDigests * DIGEST_BYTES + nEntries * DELTA_ENTRY_BYTES;
  if (body.length !== end + DIGEST_BYTES) throw bad('truncated');
  if (!sha256(body.subarray(0, end)).equals(body.subarray(end))) throw bad('checksum mismatch');
  const digests = Buffer.from(body.subarray(INDEX_HEADER_BYTES, INDEX_HEADER_BYTES + nDigests * DIGEST_BYTES));
  if (kind === 'full') {
    if (nDigests !== regionCount(size, chunkSize)) throw bad('region count');
    return { kind, size, chunkSize, blockSize, digests };
  }
  const blocks = new Uint32Array(nEntries);
  const chunkOf = new Uint32Array(nEntries);
  const slotOf = new Uint32Array(nEntries);
  let o = INDEX_HEADER_BYTES + digests.length;
  const perChunk = chunkSize / blockSize;
  for (let i = 0; i < nEntries; i++, o += DELTA_ENTRY_BYTES) {
    blocks[i] = body.readUInt32LE(o);
    chunkOf[i] = body.readUInt32LE(o + 4);
    slotOf[i] = body.readUInt32LE(o + 8);
    if (i > 0 && blocks[i]! <= blocks[i - 1]!) throw bad('entries out of order');
    if (chunkOf[i] !== ZERO_BLOCK_REF && (chunkOf[i]! >= nDigests || slotOf[i]! >= perChunk)) throw bad('entry out of range');
  }
  return { kind, size, chunkSize, blockSize, digests, blocks, chunkOf, slotOf };
}

// ---------------------------------------------------------------- snapshot ids

/** Sortable by time: 20250101T120000Z-3fa9c1. */
export function newSnapshotId(nowMs: number, random: Buffer): string {
  const t = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${t}-${random.toString('hex').slice(0, 6)}`;
}

export const SNAPSHOT_ID_RE = /^[0-9A-Za-z][0-9A-Za-z._-]{0,100}$/;
