/**
 * Chunk naming and framing (format.ts "chunk file framing") as pure functions of a key set.
 * The same factory runs on the main thread and, serialised with Function#toString, inside the
 * worker threads of ChunkWorkers — so it must stay self-contained: no references to anything
 * outside its own body, only what it is handed.
 *
 * Invariant: decode(encode(p, n), n) = p, and decode checks that the plaintext's digest is n,
 * so a flipped bit anywhere in a chunk file is reported as that chunk being corrupt.
 */
import crypto from 'node:crypto';
import * as zstd from 'zstd-napi';

export interface CodecKeys {
  /** AES-256-GCM key for chunk bodies; null for an unencrypted vault. */
  encKey: Buffer | null;
  /** HMAC key for chunk names; null ⇒ names are plain SHA-256. */
  idKey: Buffer | null;
  level: number;
}

export interface ChunkCodec {
  digest(plain: Buffer): Buffer;
  encode(plain: Buffer, nameHex: string): Buffer;
  /**
   * encode() into `out` (at least plain.length + 64 bytes); returns the encoded length. The
   * bytes are the same encode() would produce (up to the random nonce), but no chunk-sized
   * buffer is allocated on the way when the low-level zstd binding is available.
   */
  encodeInto(plain: Buffer, nameHex: string, out: Buffer): number;
  /**
   * encodeInto, except that a chunk stored as is (unencrypted, incompressible) gets only its
   * header written: `plainTail` true means the chunk file is out[0, length) followed by plain
   * itself — written together (writev), the plaintext is never copied.
   */
  encodeHead(plain: Buffer, nameHex: string, out: Buffer): { length: number; plainTail: boolean };
  /**
   * Throws an Error with `corrupt = true` when the file does not decode to a plaintext named
   * nameHex. `verifyName` false is for objects (indexes) whose name is not their digest.
   */
  decode(file: Buffer, nameHex: string, verifyName?: boolean): Buffer;
  /** decode() into `out`; returns the plaintext length. Same checks and errors as decode(). */
  decodeInto(file: Buffer, nameHex: string, out: Buffer): number;
  isZero(buf: Buffer): boolean;
}

/** The part of zstd-napi's low-level binding encodeInto uses: compress into a caller's buffer. */
export interface ZstdBinding {
  CCtx: new () => { compress2(dst: Uint8Array, src: Uint8Array): number; setParameter(p: number, v: number): void };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  CParameter: { compressionLevel: number };
}

interface CodecDeps {
  crypto: typeof crypto;
  zstd: { compress(b: Buffer, p?: { compressionLevel?: number }): Buffer; decompress(b: Buffer): Buffer };
  /** Optional: without it encodeInto is encode() plus a copy. */
  zstdBinding?: ZstdBinding | null;
  keys: CodecKeys;
}

export function makeChunkCodec(deps: CodecDeps): ChunkCodec {
  const { crypto: c, zstd: z, keys } = deps;
  // Keep these literals in step with format.ts (the factory cannot import it).
  const MAGIC = Buffer.from('HFC1');
  const FLAG_ZSTD = 1;
  const FLAG_ENCRYPTED = 2;
  const NONCE = 12;
  const TAG = 16;
  const ZERO = Buffer.alloc(1 << 16);
  const corrupt = (name: string, why: string) => Object.assign(new Error(`chunk ${name} is damaged (${why})`), { corrupt: true, chunk: name });

  const digest = (plain: Buffer): Buffer =>
    keys.idKey ? c.createHmac('sha256', keys.idKey).update(plain).digest() : c.createHash('sha256').update(plain).digest();

  const isZero = (buf: Buffer): boolean => {
    for (let o = 0; o < buf.length; o += ZERO.length) {
      const n = Math.min(ZERO.length, buf.length - o);
      if (!buf.subarray(o, o + n).equals(n === ZERO.length ? ZERO : ZERO.subarray(0, n))) return false;
    }
    return true;
  };

  // Incompressible data (random, encrypted, already compressed) is stored as is: cheaper to
  // write and to read back. Three 32 KiB samples decide before paying for the whole chunk.
  const worthCompressing = (plain: Buffer): boolean => {
    const S = 32768;
    let worthTrying = plain.length <= 4 * S;
    for (let k = 0; !worthTrying && k < 3; k++) {
      const at = Math.floor(((plain.length - S) * k) / 2);
      const sample = plain.subarray(at, at + S);
      worthTrying = z.compress(sample, { compressionLevel: keys.level }).length < S * 0.9;
    }
    return worthTrying;
  };

  const encode = (plain: Buffer, nameHex: string): Buffer => {
    let flags = 0;
    let body = plain;
    const packed = worthCompressing(plain) ? z.compress(plain, { compressionLevel: keys.level }) : plain;
    if (packed.length < plain.length - (plain.length >> 6)) {
      body = packed;
      flags |= FLAG_ZSTD;
    }
    const header = Buffer.alloc(8);
    MAGIC.copy(header, 0);
    if (!keys.encKey) {
      header[4] = flags;
      return Buffer.concat([header, body]);
    }
    header[4] = flags | FLAG_ENCRYPTED;
    const nonce = c.randomBytes(NONCE);
    const cipher = c.createCipheriv('aes-256-gcm', keys.encKey, nonce);
    cipher.setAAD(Buffer.from(nameHex, 'utf8'));
    const ct = cipher.update(body);
    const fin = cipher.final();
    return Buffer.concat([header, nonce, ct, fin, cipher.getAuthTag()]);
  };

  const zb = deps.zstdBinding ?? null;
  let cctx: InstanceType<ZstdBinding['CCtx']> | null = null;
  // Compressed bodies of encrypted chunks wait here for the cipher (one buffer, reused).
  let sealScratch: Buffer | null = null;
  const PIECE = 1 << 16; // the cipher runs over pieces this big, so its outputs come from small, reused allocations

  const encodeInto = (plain: Buffer, nameHex: string, out: Buffer): number => {
    const r = encodeHead(plain, nameHex, out);
    if (!r.plainTail) return r.length;
    plain.copy(out, r.length);
    return r.length + plain.length;
  };

  const encodeHead = (plain: Buffer, nameHex: string, out: Buffer): { length: number; plainTail: boolean } => {
    if (!zb) {
      const file = encode(plain, nameHex);
      if (file.length > out.length) throw new Error('encoded chunk larger than its buffer');
      file.copy(out);
      return { length: file.length, plainTail: false };
    }
    if (out.length < plain.length + 8 + NONCE + TAG) throw new Error('encode buffer too small');
    if (!cctx) {
      cctx = new zb.CCtx();
      cctx.setParameter(zb.CParameter.compressionLevel, keys.level);
    }
    // Stored compressed only when that saves more than 1/64 (as encode): zstd fails on a smaller destination.
    const limit = plain.length - (plain.length >> 6) - 1;
    const bodyAt = keys.encKey ? 8 + NONCE : 8;
    let dest: Buffer;
    if (keys.encKey) {
      if (!sealScratch || sealScratch.length < limit) sealScratch = Buffer.allocUnsafe(Math.max(limit, 1));
      dest = sealScratch.subarray(0, limit);
    } else dest = out.subarray(bodyAt, bodyAt + limit);
    let n = -1;
    if (limit > 0 && worthCompressing(plain)) {
      try {
        n = cctx.compress2(dest, plain);
      } catch {
        n = -1; // does not compress well enough
      }
    }
    const flags = n >= 0 ? FLAG_ZSTD : 0;
    MAGIC.copy(out, 0);
    out.fill(0, 4, 8);
    if (!keys.encKey) {
      out[4] = flags;
      return n >= 0 ? { length: 8 + n, plainTail: false } : { length: 8, plainTail: true };
    }
    const body = n >= 0 ? dest.subarray(0, n) : plain;
    out[4] = flags | FLAG_ENCRYPTED;
    const nonce = c.randomBytes(NONCE);
    nonce.copy(out, 8);
    const cipher = c.createCipheriv('aes-256-gcm', keys.encKey, nonce);
    cipher.setAAD(Buffer.from(nameHex, 'utf8'));
    let at = bodyAt;
    for (let o = 0; o < body.length; o += PIECE) at += cipher.update(body.subarray(o, Math.min(body.length, o + PIECE))).copy(out, at);
    at += cipher.final().copy(out, at);
    at += cipher.getAuthTag().copy(out, at);
    return { length: at, plainTail: false };
  };

  /** Checks a chunk file's header; for an encrypted one, the decipher (tag set) and the sealed body. */
  const openFile = (file: Buffer, nameHex: string) => {
    if (file.length < 8 || !file.subarray(0, 4).equals(MAGIC)) throw corrupt(nameHex, 'bad header');
    const flags = file[4]!;
    if (flags & ~(FLAG_ZSTD | FLAG_ENCRYPTED)) throw corrupt(nameHex, 'unknown flags');
    if (!(flags & FLAG_ENCRYPTED)) return { flags, decipher: null, sealedBody: file.subarray(8) };
    const body = file.subarray(8);
    if (!keys.encKey) throw corrupt(nameHex, 'encrypted chunk in an unencrypted vault');
    if (body.length < NONCE + TAG) throw corrupt(nameHex, 'truncated');
    const decipher = c.createDecipheriv('aes-256-gcm', keys.encKey, body.subarray(0, NONCE));
    decipher.setAAD(Buffer.from(nameHex, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG));
    return { flags, decipher, sealedBody: body.subarray(NONCE, body.length - TAG) };
  };

  const decode = (file: Buffer, nameHex: string, verifyName = true): Buffer => {
    const { flags, decipher: d, sealedBody } = openFile(file, nameHex);
    let body = file.subarray(8);
    if (d) {
      try {
        body = Buffer.concat([d.update(sealedBody), d.final()]);
      } catch {
        throw corrupt(nameHex, 'authentication failed');
      }
    }
    let plain: Buffer;
    if (flags & FLAG_ZSTD) {
      try {
        plain = z.decompress(body);
      } catch {
        throw corrupt(nameHex, 'does not decompress');
      }
    } else plain = Buffer.from(body);
    if (verifyName && digest(plain).toString('hex') !== nameHex) throw corrupt(nameHex, 'content does not match its name');
    return plain;
  };

  let dctx: InstanceType<ZstdBinding['DCtx']> | null = null;
  let openScratch: Buffer | null = null; // decrypted, still compressed bodies (one buffer, reused)

  const decodeInto = (file: Buffer, nameHex: string, out: Buffer): number => {
    if (!zb) {
      const plain = decode(file, nameHex);
      if (plain.length > out.length) throw corrupt(nameHex, 'larger than a chunk');
      plain.copy(out);
      return plain.length;
    }
    const { flags, decipher: d, sealedBody } = openFile(file, nameHex);
    let body = file.subarray(8);
    if (d) {
      let into: Buffer;
      if (flags & FLAG_ZSTD) {
        if (!openScratch || openScratch.length < sealedBody.length) openScratch = Buffer.allocUnsafe(Math.max(sealedBody.length, 1));
        into = openScratch;
      } else {
        if (sealedBody.length > out.length) throw corrupt(nameHex, 'larger than a chunk');
        into = out;
      }
      let at = 0;
      try {
        for (let o = 0; o < sealedBody.length; o += PIECE) at += d.update(sealedBody.subarray(o, Math.min(sealedBody.length, o + PIECE))).copy(into, at);
        at += d.final().copy(into, at);
      } catch {
        throw corrupt(nameHex, 'authentication failed');
      }
      body = into.subarray(0, at);
      if (!(flags & FLAG_ZSTD)) return verified(out, at, nameHex);
    }
    let n: number;
    if (flags & FLAG_ZSTD) {
      dctx ??= new zb.DCtx();
      try {
        n = dctx.decompress(out, body);
      } catch {
        throw corrupt(nameHex, 'does not decompress');
      }
    } else {
      if (body.length > out.length) throw corrupt(nameHex, 'larger than a chunk');
      n = body.copy(out);
    }
    return verified(out, n, nameHex);
  };

  const verified = (out: Buffer, n: number, nameHex: string): number => {
    if (digest(out.subarray(0, n)).toString('hex') !== nameHex) throw corrupt(nameHex, 'content does not match its name');
    return n;
  };

  return { digest, encode, encodeInto, encodeHead, decode, decodeInto, isZero };
}

/** The codec on the calling thread (with zstd-napi's low-level binding, encodeHead stores incompressible chunks without a copy). */
export function localCodec(keys: CodecKeys, zstdBinding: ZstdBinding | null = null): ChunkCodec {
  return makeChunkCodec({ crypto, zstd, zstdBinding, keys });
}
