/**
 * Import, flash and drive imaging (DESIGN.md §4, "what balenaEtcher does"):
 *  - image.import: a raw/.img/.iso/.gz/.zst file into an existing volume, or a new volume of
 *    the image's size rounded up to 4 KiB, through the volume's journaled write path;
 *  - image.flash: an image file or a vault snapshot onto a drive or an image file, after the
 *    same checks as every device write (not mounted, not the system, typed name);
 *  - drive.image: a drive read directly (not mounted) into the vault as a snapshot whose
 *    unchanged regions deduplicate against the drive's earlier images.
 * Every write is followed by a flush and a read-back whose SHA-256 must equal the SHA-256 of
 * the bytes written.
 *
 * Invariants: a compressed image is decompressed once before anything is written, so a
 * damaged file or one too big for its target fails with nothing changed; a volume created for
 * an import that fails is deleted again (no half volume); one transfer per target at a time;
 * `bytes` and `sha256` always describe the image's uncompressed bytes, exactly.
 */
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { Api, Backup, OpInput, OpOutput } from '../../../src-shared/contract';
import { BLOCK } from '../../../src-shared/contract';
import { HoldfastError, invariant } from '../../../src-shared/errors';
import { formatSize } from '../../../src-shared/sizes';
import { probeDevicePath } from '../devices/probe';
import type { BlockFile, Env } from '../env/env';
import type { EngineEvents } from '../events';
import { runBackup } from '../vault/backup-writer';
import { SNAPSHOT_ID_RE } from '../vault/format';
import { restoreSnapshot } from '../vault/restore';
import type { Vault } from '../vault/vault';
import type { LiveVolume } from '../volumes/live-volume';
import { DriveSource, driveVolumeName } from './drive-source';
import { IMAGE_PIECE, imageBytes, imageSize, openImageFile, type ImageFile } from './image-stream';

/** What the transfers need from the engine (the Engine itself satisfies it). */
export interface ImageTransferHost {
  readonly env: Env;
  readonly events: EngineEvents;
  /** Used lazily, for volume.create/delete and device.list. */
  readonly api: Api;
  readonly catalog: { getVolume(name: string): unknown };
  readonly backups: { vault(dir: string | undefined, passphrase?: string): Promise<Vault> };
  volume(name: string): LiveVolume;
  revokeExports(name: string): void;
  sessionFor(name: string): unknown;
}

/** Where image bytes go: a volume (512-byte aligned I/O) or an open drive/file. */
interface Sink {
  readonly what: string;
  /** I/O granularity: the last piece is padded with zeroes to it. */
  readonly align: number;
  write(offset: number, buf: Buffer): Promise<void>;
  /** A cheaper way to write zeroes, when the target has one. */
  zero?(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  /** Reads back length bytes (length a multiple of align, or up to the end). */
  read(offset: number, length: number): Promise<Buffer>;
}

export interface TransferResult {
  bytes: number;
  sha256: string;
}

const ZERO = Buffer.alloc(IMAGE_PIECE);
const PROGRESS_INTERVAL_MS = 250;
const roundUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Writes every piece in order, hashing exactly the image's bytes; zero pieces go as zeroes where the sink can. */
async function writeAll(pieces: AsyncIterable<Buffer>, sink: Sink, limit: number): Promise<TransferResult> {
  const h = crypto.createHash('sha256');
  let off = 0;
  for await (const p of pieces) {
    if (off + p.length > limit) throw new HoldfastError('DEVICE_TOO_SMALL', `${sink.what} (${limit} bytes) is smaller than the image; nothing past byte ${off} was written.`);
    h.update(p);
    let buf = p;
    if (p.length % sink.align) {
      buf = Buffer.alloc(roundUp(p.length, sink.align));
      p.copy(buf);
    }
    if (sink.zero && buf.equals(ZERO.subarray(0, buf.length))) await sink.zero(off, buf.length);
    else await sink.write(off, buf);
    off += p.length;
  }
  await sink.flush();
  return { bytes: off, sha256: h.digest('hex') };
}

/** SHA-256 of the first `bytes` bytes as the target now returns them. */
async function readBackHash(sink: Sink, bytes: number): Promise<string> {
  const h = crypto.createHash('sha256');
  for (let off = 0; off < bytes; off += IMAGE_PIECE) {
    const len = Math.min(IMAGE_PIECE, bytes - off);
    const b = await sink.read(off, roundUp(len, sink.align));
    invariant(b.length >= len, 'read-back is whole');
    h.update(b.subarray(0, len));
  }
  return h.digest('hex');
}

async function verify(sink: Sink, r: TransferResult): Promise<void> {
  const back = await readBackHash(sink, r.bytes);
  if (back !== r.sha256)
    throw new HoldfastError('IO_ERROR', `Verification failed: ${sink.what} reads back different bytes than were written (SHA-256 ${back} ≠ ${r.sha256}). The target may be failing.`, {
      written: r.sha256,
      readBack: back,
    });
}

async function readWhole(file: BlockFile, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  for (let done = 0; done < length; ) {
    const n = await file.read(buf.subarray(done), offset + done);
    if (n === 0) break; // past the end reads as zeroes (only the padding of the last piece)
    done += n;
  }
  return buf;
}

function volumeSink(vol: LiveVolume): Sink {
  return {
    what: `Volume ${vol.name}`,
    align: 512,
    write: (o, b) => vol.write(o, b),
    zero: (o, l) => vol.writeZeroes(o, l),
    flush: () => vol.flush(),
    read: (o, l) => vol.read(o, Math.min(l, vol.size() - o)),
  };
}

function fileSink(file: BlockFile, shown: string): Sink {
  return {
    what: shown,
    align: 1,
    write: (o, b) => file.write(b, o),
    flush: () => file.datasync(),
    read: (o, l) => readWhole(file, o, l),
  };
}

/** Drops a block device's cached pages so the read-back comes from the device, not from memory. Best effort. */
function flushBlockCache(dev: string): Promise<void> {
  return new Promise((resolve) => execFile('blockdev', ['--flushbufs', dev], () => resolve()));
}

export class ImageTransfer {
  /** Targets with a transfer running: `volume:NAME` or `device:REALPATH`. */
  private readonly busy = new Set<string>();

  constructor(private readonly host: ImageTransferHost) {}

  private async exclusive<T>(key: string, shown: string, work: () => Promise<T>): Promise<T> {
    if (this.busy.has(key)) throw new HoldfastError('IN_USE', `${shown} is already being written by another import or flash; wait for it.`);
    this.busy.add(key);
    try {
      return await work();
    } finally {
      this.busy.delete(key);
    }
  }

  // ------------------------------------------------------------------ image.import

  async importImage(i: OpInput<'image.import'>): Promise<OpOutput<'image.import'>> {
    const img = await openImageFile(this.host.env, i.file);
    return this.exclusive(`volume:${i.volume}`, `Volume ${i.volume}`, async () => {
      const exists = this.host.catalog.getVolume(i.volume) !== null;
      if (i.create && exists) throw new HoldfastError('ALREADY_EXISTS', `Volume ${i.volume} already exists; import into it without --create, or pick a new name.`);
      if (!i.create && !exists) throw new HoldfastError('NOT_FOUND', `There is no volume ${i.volume}; add --create to make one of the image's size.`);
      if (!i.create) {
        const vol = this.host.volume(i.volume);
        if (this.host.sessionFor(vol.name)) throw new HoldfastError('BACKUP_RUNNING', `Volume ${vol.name} is being backed up; import into it after the backup ends.`);
        const size = await imageSize(this.host.env, img, vol.size());
        if (size > vol.size())
          throw new HoldfastError('DEVICE_TOO_SMALL', `The image ${img.path} (more than ${formatSize(vol.size())}) does not fit volume ${vol.name} (${formatSize(vol.size())}); grow the volume or import with --create into a new one.`, {
            volumeSize: vol.size(),
          });
        this.host.revokeExports(vol.name); // its NBD clients must not see the image half-written
        const r = await this.writeVerified(img, volumeSink(vol), vol.size());
        this.host.events.emit('volumes.changed', {});
        return { volume: vol.name, ...r };
      }
      const size = await imageSize(this.host.env, img);
      await this.host.api['volume.create']({ name: i.volume, size: roundUp(size, BLOCK) });
      try {
        const vol = this.host.volume(i.volume);
        const r = await this.writeVerified(img, volumeSink(vol), vol.size());
        return { volume: vol.name, ...r };
      } catch (e) {
        await this.host.api['volume.delete']({ name: i.volume }).catch(() => undefined); // no half volume
        throw e;
      }
    });
  }

  private async writeVerified(img: ImageFile, sink: Sink, limit: number, beforeVerify?: () => Promise<void>): Promise<TransferResult> {
    const r = await writeAll(imageBytes(this.host.env, img), sink, limit);
    await beforeVerify?.();
    await verify(sink, r);
    return r;
  }

  // ------------------------------------------------------------------ image.flash

  async flash(i: OpInput<'image.flash'>): Promise<OpOutput<'image.flash'>> {
    const env = this.host.env;
    const dev = path.resolve(i.device);
    const probed = await probeDevicePath(dev, env, { minSize: 0 });
    const name = path.basename(probed.realPath);
    const devices = await this.host.api['device.list']({});
    const own = devices.find((d) => d.path === probed.realPath || d.path === dev);
    if (own) throw new HoldfastError('IN_USE', `${dev} is Holdfast device ${own.id}; flashing it would destroy its volumes. Remove it from Holdfast first.`, { path: dev });
    if (i.confirm !== name) throw new HoldfastError('CONFIRMATION_REQUIRED', `Flashing ${dev} erases everything on it. Confirm by typing its name (--confirm ${name}).`, { path: dev });

    // The source: an image file if one is there, else a snapshot id in the vault.
    const srcPath = path.resolve(i.source);
    const isFile = (await env.stat(srcPath)) !== null;
    if (!isFile && (i.source.includes('/') || !SNAPSHOT_ID_RE.test(i.source)))
      throw new HoldfastError('NOT_FOUND', `There is no image file at ${srcPath}.`, { path: srcPath });
    // A block device has a fixed size; an image file target grows as needed.
    const limit = probed.kind === 'block' ? probed.size : Number.MAX_SAFE_INTEGER;

    return this.exclusive(`device:${probed.realPath}`, dev, async () => {
      let r: TransferResult;
      if (isFile) {
        const img = await openImageFile(env, srcPath);
        const size = await imageSize(env, img, limit);
        if (size > limit) throw new HoldfastError('DEVICE_TOO_SMALL', `The image ${img.path} is larger than ${dev} (${formatSize(limit)}); nothing was written.`, { path: dev, size: limit });
        r = await this.withDevice(dev, probed.kind, (sink) => writeAll(imageBytes(env, img), sink, limit));
      } else {
        let vault: Vault;
        try {
          vault = await this.host.backups.vault(i.vault, i.passphrase);
          await vault.getManifest(i.source);
        } catch (e) {
          if (e instanceof HoldfastError && e.code === 'SNAPSHOT_NOT_FOUND')
            throw new HoldfastError('NOT_FOUND', `${i.source} is neither an image file (no file at ${srcPath}) nor a snapshot in the vault: ${e.message}`);
          throw e;
        }
        const m = await vault.getManifest(i.source);
        if (m.size > limit) throw new HoldfastError('DEVICE_TOO_SMALL', `${dev} (${formatSize(limit)}) is smaller than snapshot ${m.id} (${formatSize(m.size)}); nothing was written.`, { path: dev, size: limit });
        r = await this.withDevice(dev, probed.kind, async (sink) => {
          const h = crypto.createHash('sha256');
          let next = 0;
          await restoreSnapshot(vault, m.id, {
            size: Math.max(m.size, probed.kind === 'block' ? probed.size : m.size),
            sparse: false,
            write: async (o, b) => {
              invariant(o === next, 'restore writes in volume order');
              h.update(b);
              next = o + b.length;
              await sink.write(o, b);
            },
            flush: () => sink.flush(),
          });
          invariant(next === m.size, 'restore wrote the whole snapshot');
          return { bytes: m.size, sha256: h.digest('hex') };
        });
      }
      return { device: dev, bytes: r.bytes, sha256: r.sha256, verified: true as const };
    });
  }

  /** Opens the target, writes, syncs, drops its cache (a drive) and verifies through a fresh handle. */
  private async withDevice(dev: string, kind: 'image' | 'block', write: (s: Sink) => Promise<TransferResult>): Promise<TransferResult> {
    const env = this.host.env;
    let r: TransferResult;
    const file = await env.open(dev);
    try {
      r = await write(fileSink(file, dev));
    } finally {
      await file.close().catch(() => undefined);
    }
    if (kind === 'block') await flushBlockCache(dev);
    const back = await env.open(dev, { readOnly: true });
    try {
      await verify(fileSink(back, dev), r);
    } finally {
      await back.close().catch(() => undefined);
    }
    return r;
  }

  // ------------------------------------------------------------------ drive.image

  async imageDrive(i: OpInput<'drive.image'>): Promise<OpOutput<'drive.image'>> {
    const env = this.host.env;
    const dev = i.drive.includes('/') ? path.resolve(i.drive) : path.join('/dev', i.drive);
    const probed = await probeDevicePath(dev, env, { minSize: 512 });
    const vault = await this.host.backups.vault(i.vault, i.passphrase);
    vault.assertWritable();
    const volume = driveVolumeName(probed.realPath);
    return this.exclusive(`device:${probed.realPath}`, dev, async () => {
      const previous = (await vault.newestOf(volume))?.id ?? null;
      const id = `img-${Date.now().toString(36)}-${crypto.randomBytes(3).toString('hex')}`;
      const record: Backup = {
        id,
        volume,
        policy: 'volume',
        vault: vault.dir,
        state: 'running',
        kind: 'full',
        startedAt: new Date().toISOString(),
        endedAt: null,
        bytesDone: 0,
        bytesTotal: probed.size,
        snapshotId: null,
        error: null,
      };
      let last = 0;
      const emit = (extra: { mbPerSec: number; etaSec: number | null; dedupRatio: number | null }) => this.host.events.emit('backup.progress', { ...record, ...extra });
      const file = await env.open(dev, { readOnly: true });
      try {
        const m = await runBackup(new DriveSource(id, volume, probed.size, file), vault, {
          full: true,
          onProgress: (p) => {
            record.bytesDone = p.bytesDone;
            const now = Date.now();
            if (now - last < PROGRESS_INTERVAL_MS) return;
            last = now;
            emit({ mbPerSec: p.mbPerSec, etaSec: p.etaSec, dedupRatio: p.dedupRatio });
          },
        });
        Object.assign(record, { state: 'completed', snapshotId: m.id, bytesDone: probed.size, endedAt: new Date().toISOString() });
        emit({ mbPerSec: 0, etaSec: 0, dedupRatio: null });
        this.host.events.emit('snapshots.changed', { vault: vault.dir });
        return {
          snapshotId: m.id,
          drive: dev,
          volume,
          bytes: m.size,
          storedBytes: m.stats.storedBytes,
          newChunks: m.stats.newChunks,
          reusedChunks: m.stats.reusedChunks,
          previous,
          vault: vault.dir,
        };
      } catch (e) {
        Object.assign(record, { state: 'failed', error: e instanceof Error ? e.message : String(e), endedAt: new Date().toISOString() });
        emit({ mbPerSec: 0, etaSec: null, dedupRatio: null });
        throw e;
      } finally {
        await file.close().catch(() => undefined);
      }
    });
  }

  ops(): Pick<Api, 'image.import' | 'image.flash' | 'drive.image'> {
    return {
      'image.import': (i) => this.importImage(i),
      'image.flash': (i) => this.flash(i),
      'drive.image': (i) => this.imageDrive(i),
    };
  }
}
