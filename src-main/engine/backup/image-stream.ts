/**
 * Reading an image file for import/flash (DESIGN.md §4): raw (.img/.iso/anything), gzip or
 * zstd, recognised by its magic bytes, streamed as its uncompressed bytes in fixed-size
 * pieces. Every byte comes from the file through the Env; decompression runs as a Node
 * stream (zlib gunzip, zstd-napi's DecompressStream), so memory stays bounded by the piece
 * size whatever the image size.
 *
 * Invariants: a damaged or truncated compressed file fails with INVALID_ARGUMENT naming the
 * file and the format (never a silently short image); errors reading the file keep their
 * own code; the file is closed when the iteration ends, however it ends.
 */
import path from 'node:path';
import { Readable, pipeline, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
import { HoldfastError, toErrorPayload } from '../../../src-shared/errors';
import type { BlockFile, Env } from '../env/env';

export type ImageFormat = 'raw' | 'gzip' | 'zstd';

/** Bytes handed to a writer at a time (the last piece may be shorter). */
export const IMAGE_PIECE = 1 << 20;

export interface ImageFile {
  path: string;
  format: ImageFormat;
  /** Size of the file itself (compressed size for gzip/zstd). */
  fileSize: number;
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** Formats recognised only to say plainly that Holdfast does not read them. */
const UNSUPPORTED: Array<{ ext: string; name: string; magic: Buffer }> = [
  { ext: '.xz', name: 'xz', magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { ext: '.bz2', name: 'bzip2', magic: Buffer.from('BZh') },
  { ext: '.zip', name: 'zip', magic: Buffer.from([0x50, 0x4b, 0x03, 0x04]) },
];

function ioError(e: unknown, what: string): HoldfastError {
  if (e instanceof HoldfastError) return e;
  const p = toErrorPayload(e);
  return new HoldfastError(p.code === 'INTERNAL' ? 'IO_ERROR' : p.code, `${what}: ${p.message}`);
}

/** Finds the file and its format; NOT_FOUND when missing, INVALID_ARGUMENT when it is no regular file or empty. */
export async function openImageFile(env: Env, file: string): Promise<ImageFile> {
  const abs = path.resolve(file);
  const st = await env.stat(abs);
  if (!st) throw new HoldfastError('NOT_FOUND', `There is no image file at ${abs}.`, { path: abs });
  if (!st.isFile) throw new HoldfastError('INVALID_ARGUMENT', `${abs} is not an image file (to copy a drive, use "drive image").`, { path: abs });
  if (st.size === 0) throw new HoldfastError('INVALID_ARGUMENT', `${abs} is empty; there is nothing to write.`, { path: abs });
  const head = Buffer.alloc(8);
  const f = await env.open(abs, { readOnly: true }).catch((e: unknown) => {
    throw ioError(e, `Opening ${abs}`);
  });
  try {
    const n = await f.read(head, 0);
    const h = head.subarray(0, n);
    const ext = path.extname(abs).toLowerCase();
    if (h.subarray(0, 2).equals(GZIP_MAGIC)) return { path: abs, format: 'gzip', fileSize: st.size };
    if (h.subarray(0, 4).equals(ZSTD_MAGIC)) return { path: abs, format: 'zstd', fileSize: st.size };
    if (ext === '.gz' || ext === '.zst')
      throw new HoldfastError('INVALID_ARGUMENT', `${abs} is named ${ext} but is not a ${ext === '.gz' ? 'gzip' : 'zstd'} file (its first bytes are ${h.toString('hex')}).`, { path: abs });
    const u = UNSUPPORTED.find((x) => x.ext === ext && h.subarray(0, x.magic.length).equals(x.magic));
    if (u) throw new HoldfastError('INVALID_ARGUMENT', `${abs} is ${u.name}-compressed; Holdfast reads raw, gzip and zstd images. Decompress it first.`, { path: abs });
    return { path: abs, format: 'raw', fileSize: st.size };
  } finally {
    await f.close().catch(() => undefined);
  }
}

async function* fileChunks(file: BlockFile, what: string): AsyncGenerator<Buffer> {
  for (let pos = 0; ; ) {
    const b = Buffer.allocUnsafe(IMAGE_PIECE);
    let n: number;
    try {
      n = await file.read(b, pos);
    } catch (e) {
      throw ioError(e, `Reading ${what}`);
    }
    if (n === 0) return;
    yield b.subarray(0, n);
    pos += n;
  }
}

/** Cuts a byte stream into pieces of exactly `size` bytes (the last one may be shorter). */
async function* pieces(src: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(size);
  let fill = 0;
  for await (const c of src) {
    for (let o = 0; o < c.length; ) {
      const n = Math.min(size - fill, c.length - o);
      c.copy(buf, fill, o, o + n);
      fill += n;
      o += n;
      if (fill === size) {
        yield buf;
        buf = Buffer.allocUnsafe(size);
        fill = 0;
      }
    }
  }
  if (fill) yield buf.subarray(0, fill);
}

function decompressor(format: 'gzip' | 'zstd'): Transform {
  return format === 'gzip' ? zlib.createGunzip() : (new DecompressStream() as unknown as Transform);
}

/**
 * The image's uncompressed bytes in pieces of IMAGE_PIECE bytes. Breaking out of the loop
 * early is fine: the file is closed and the decompressor destroyed.
 */
export async function* imageBytes(env: Env, img: ImageFile): AsyncGenerator<Buffer> {
  const file = await env.open(img.path, { readOnly: true }).catch((e: unknown) => {
    throw ioError(e, `Opening ${img.path}`);
  });
  try {
    if (img.format === 'raw') {
      yield* fileChunks(file, img.path);
      return;
    }
    const dec = decompressor(img.format);
    const src = Readable.from(fileChunks(file, img.path), { objectMode: false, highWaterMark: 2 });
    let srcError: unknown = null;
    src.on('error', (e) => (srcError = e));
    pipeline(src, dec, () => undefined); // errors surface through the iteration below
    try {
      yield* pieces(dec as AsyncIterable<Buffer>, IMAGE_PIECE);
    } catch (e) {
      if (srcError) throw ioError(srcError, `Reading ${img.path}`);
      if (e instanceof HoldfastError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new HoldfastError(
        'INVALID_ARGUMENT',
        `${img.path} is not a valid ${img.format === 'gzip' ? 'gzip' : 'zstd'} file (damaged or truncated: ${why}).`,
        { path: img.path },
      );
    } finally {
      src.destroy();
      dec.destroy();
    }
  } finally {
    await file.close().catch(() => undefined);
  }
}

/**
 * The uncompressed size, by reading the whole image once (raw: the file size). With `limit`,
 * stops as soon as the image is known to be larger and returns limit + 1. A damaged
 * compressed file fails here, before anything is written.
 */
export async function imageSize(env: Env, img: ImageFile, limit = Number.MAX_SAFE_INTEGER): Promise<number> {
  if (img.format === 'raw') return img.fileSize;
  let n = 0;
  for await (const p of imageBytes(env, img)) {
    n += p.length;
    if (n > limit) return limit + 1;
  }
  return n;
}
