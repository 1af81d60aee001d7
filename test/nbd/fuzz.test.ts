/**
 * Hostile clients: ≥10,000 malformed or abusive messages over raw sockets while a
 * well-behaved client keeps writing and verifying its own region. The server must answer
 * each bad request with the protocol's errno (or disconnect that client when framing is
 * lost), stay up, keep memory bounded for a client that never reads its replies, and never
 * corrupt the good client's data.
 */
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from './raw-client';
import { mustRun, serve, type Served } from './fixture';
import { rng } from '../engine/helpers';

const MiB = 1024 * 1024;
const VOL = 64 * MiB;
const RO = 1 * MiB;
const EPERM = 1;
const EINVAL = 22;
const ENOSPC = 28;
const ENOTSUP = 95;


let s: Served;
let messages = 0;
/** The well-behaved client: writes random 4 KiB blocks in [48M, 56M) and verifies each. */
let good: { stop: () => Promise<number>; errors: string[] };

async function startGoodClient(): Promise<typeof good> {
  const c = await RawClient.connect(s.socket);
  await c.go('vol');
  const errors: string[] = [];
  let running = true;
  let ops = 0;
  const model = new Map<number, Buffer>();
  const loop = (async () => {
    const r = rng(7);
    while (running) {
      const off = 48 * MiB + Math.floor(r() * 2048) * 4096;
      const data = crypto.randomBytes(4096);
      const w = await c.request(1, off, 4096, 0, data);
      if (w.error !== 0) errors.push(`write ${off}: errno ${w.error}`);
      model.set(off, data);
      const keys = [...model.keys()];
      const check = keys[Math.floor(r() * keys.length)]!;
      const rd = await c.request(0, check, 4096);
      if (rd.error !== 0 || !rd.data!.equals(model.get(check)!)) errors.push(`read ${check}: mismatch or errno ${rd.error}`);
      ops++;
    }
  })().catch((e: unknown) => errors.push(`good client failed: ${(e as Error).message}`));
  return {
    errors,
    stop: async () => {
      running = false;
      await loop;
      c.close();
      return ops;
    },
  };
}

beforeAll(async () => {
  s = await serve({ volBytes: VOL, roBytes: RO });
  good = await startGoodClient();
});

afterAll(async () => {
  await s.cleanup();
});

/** The errno the spec asks for (0 = success) for a request on a connection without meta contexts. */
function expectedErrno(type: number, flags: number, offset: bigint, length: number, readOnly: boolean, size: number, structured: boolean): number {
  const end = offset + BigInt(length);
  const past = end > BigInt(size);
  const FUA = 1;
  switch (type) {
    case 0:
      if (flags & ~(FUA | (structured ? 4 : 0)) || length === 0 || length > 32 * MiB || past) return EINVAL;
      return 0;
    case 1:
      if (flags & ~FUA) return EINVAL;
      if (readOnly) return EPERM;
      if (length === 0 || length > 32 * MiB) return EINVAL;
      return past ? ENOSPC : 0;
    case 3:
      return flags & ~FUA || offset !== 0n || length !== 0 ? EINVAL : 0;
    case 4:
    case 6: {
      const allowed = type === 6 ? FUA | 2 | 16 : FUA;
      if (flags & ~allowed) return EINVAL;
      if (readOnly) return EPERM;
      if (length === 0) return EINVAL;
      if (past) return type === 6 ? ENOSPC : EINVAL;
      if (type === 6 && flags & 16) return ENOTSUP;
      return 0;
    }
    default:
      return EINVAL; // unknown commands, and block status without a meta context
  }
}

describe('NBD server under hostile input', () => {
  it('answers thousands of invalid requests with the right errno and keeps serving correct data', async () => {
    const r = rng(1);
    const pick = <T,>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
    const conns = await Promise.all(['vol', 'ro', 'vol', 'ro'].map(async (name) => {
      const c = await RawClient.connect(s.socket);
      await c.go(name, { structured: name === 'vol' });
      return { c, name, size: name === 'vol' ? VOL : RO, readOnly: name === 'ro' };
    }));
    let cookie = 1n;
    let checked = 0;
    for (let batch = 0; batch < 170; batch++) {
      const pending: Array<Promise<void>> = [];
      for (const conn of conns) {
        for (let i = 0; i < 12; i++) {
          const type = pick([0, 0, 1, 1, 3, 4, 5, 6, 7, 8, 9, 42, 255, 65535]);
          const flags = r() < 0.5 ? 0 : pick([1, 2, 4, 8, 16, 0x20, 0x8000, Math.floor(r() * 65536)]);
          const offset = pick<bigint>([0n, BigInt(conn.size - 512), BigInt(conn.size), BigInt(conn.size + 4096), 1n << 62n, 0xffffffffffffffffn,
            BigInt(Math.floor(r() * 8192) * 512), BigInt(Math.floor(r() * Math.min(conn.size, 32 * MiB) - 70000) + 1)].map((o) => (o < 0n ? 0n : o)));
          let length = pick([0, 1, 511, 512, 4096, 65536, 32 * MiB + 1, 0xffffffff, Math.floor(r() * 65536)]);
          if (type === 1 && length > 65536) length = 4096; // payload must be sent; huge writes are tested separately
          if ((type === 4 || type === 6) && length > MiB && length !== 0xffffffff) length = 65536;
          if (type === 3 && r() < 0.5) length = 0;
          const id = cookie++;
          const payload = type === 1 ? crypto.randomBytes(length) : undefined;
          // Keep successful writes away from the good client's region.
          const inGood = offset < BigInt(56 * MiB) && offset + BigInt(length) > BigInt(48 * MiB) && conn.name === 'vol';
          const safeOffset = inGood ? 0n : offset;
          conn.c.send(type, id, safeOffset, length, flags, payload);
          messages++;
          const want = expectedErrno(type, flags, safeOffset, length, conn.readOnly, conn.size, conn.name === 'vol');
          pending.push(conn.c.reply(id, 30_000).then((rep) => {
            expect({ type, flags, offset: safeOffset.toString(), length, errno: rep.error }).toEqual({ type, flags, offset: safeOffset.toString(), length, errno: want });
            if (type === 0 && want === 0 && conn.readOnly) {
              const off = Number(safeOffset);
              for (let k = 0; k < rep.data!.length; k += 97) expect(rep.data![k]).toBe(((off + k) * 7 + 3) & 0xff);
            }
            checked++;
          }));
        }
      }
      await Promise.all(pending);
    }
    expect(checked).toBe(170 * 4 * 12);
    for (const { c } of conns) c.close();
    expect(good.errors).toEqual([]);
  });

  it('refuses malformed handshakes and options, answering what can be answered and disconnecting the rest', async () => {
    const r = rng(2);
    // Unknown options and garbage option payloads on one connection: each gets an error reply.
    const c = await RawClient.connect(s.socket);
    await c.greeting();
    c.write(Buffer.from([0, 0, 0, 3]));
    for (let i = 0; i < 1500; i++) {
      const kind = i % 5;
      if (kind === 0) {
        c.sendOption(12 + Math.floor(r() * 1000), crypto.randomBytes(Math.floor(r() * 200)));
        expect((await c.optionReply()).type).toBe(0x80000001); // ERR_UNSUP
      } else if (kind === 1) {
        c.sendOption(7, crypto.randomBytes(Math.floor(r() * 40))); // malformed GO
        expect([0x80000003, 0x80000006]).toContain((await c.optionReply()).type);
      } else if (kind === 2) {
        const n = Buffer.from(`missing-${i}`);
        const d = Buffer.alloc(6 + n.length);
        d.writeUInt32BE(n.length, 0);
        n.copy(d, 4);
        c.sendOption(6, d); // INFO on an unknown export
        expect((await c.optionReply()).type).toBe(0x80000006); // ERR_UNKNOWN
      } else if (kind === 3) {
        c.sendOption(3, Buffer.from('x')); // LIST with data
        expect((await c.optionReply()).type).toBe(0x80000003); // ERR_INVALID
      } else {
        c.sendOption(10, crypto.randomBytes(Math.floor(r() * 30))); // SET_META_CONTEXT before structured / malformed
        expect((await c.optionReply()).type).toBe(0x80000003);
      }
      messages++;
    }
    // An over-long option is drained and refused; the connection survives.
    c.sendOption(5000, crypto.randomBytes(100 * 1024));
    expect((await c.optionReply()).type).toBe(0x80000009); // ERR_TOO_BIG
    messages++;
    // A length we will not even drain ends the connection.
    c.sendOption(5000, Buffer.alloc(0), 0xffffffff);
    messages++;
    expect(await c.waitClosed()).toBe(true);

    // Framing violations, each on a fresh connection: the server hangs up.
    const attacks: Array<(x: RawClient) => Promise<void>> = [
      async (x) => { await x.greeting(); x.write(Buffer.from([0, 0, 0, 0xff])); }, // unknown client flags
      async (x) => { await x.greeting(); x.write(Buffer.from([0, 0, 0, 3])); x.write(Buffer.from('IHAVEOPX\0\0\0\x03\0\0\0\0', 'latin1')); }, // bad option magic
      async (x) => { await x.greeting(); x.write(Buffer.from([0, 0, 0, 3])); x.sendOption(1, Buffer.from('no-such-export')); }, // EXPORT_NAME unknown
      async (x) => { await x.go('vol'); x.write(RawClient.request(0, 1n, 0, 512, 0, 0xdeadbeef)); }, // bad request magic
      async (x) => { await x.go('vol'); x.write(RawClient.request(0, 1n, 0, 512).subarray(0, 13)); x.write(crypto.randomBytes(3000)); }, // garbage after a truncated header
    ];
    for (let i = 0; i < 200; i++) {
      const x = await RawClient.connect(s.socket);
      await attacks[i % attacks.length]!(x);
      messages++;
      expect(await x.waitClosed(5000)).toBe(true);
    }
    // Truncated frames followed by the client vanishing: nothing to answer, nothing must leak.
    for (let i = 0; i < 200; i++) {
      const x = await RawClient.connect(s.socket);
      if (i % 2) {
        await x.go('vol');
        x.write(RawClient.request(1, 9n, 0, 65536)); // a write whose payload never comes
        x.write(crypto.randomBytes(1000));
      } else {
        await x.greeting();
        x.write(Buffer.from([0, 0]));
      }
      messages++;
      x.close();
    }
    for (let i = 0; i < 50 && s.server.clientCount() > 1; i++) await new Promise((res) => setTimeout(res, 50));
    expect(s.server.clientCount('vol')).toBe(1); // only the good client is left
    expect(s.registry.openCount('vol')).toBe(1);
    expect(good.errors).toEqual([]);
  });

  it('drains refused huge writes without buffering them and handles DISC after outstanding requests', async () => {
    const x = await RawClient.connect(s.socket);
    await x.go('vol');

    x.send(1, 77n, 0, 0x20000000); // 512 MiB: refused up front, its payload skipped as it streams in
    expect((await x.reply(77n)).error).toBe(EINVAL);
    messages++;
    const before = process.memoryUsage().arrayBuffers;
    const chunk = Buffer.alloc(4 * MiB, 0x99);
    for (let sent = 0; sent < 0x20000000; sent += chunk.length) {
      if (!x.socket.write(chunk)) await new Promise((res) => x.socket.once('drain', res));
    }
    // Framing is intact after the drained payload.
    const ok = await x.request(0, 0, 4096);
    expect(ok.error).toBe(0);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(128 * MiB);
    // DISC with requests still in flight: they are answered, then the server closes.
    x.send(0, 1000n, 0, MiB);
    x.send(0, 1001n, MiB, MiB);
    x.send(2, 1002n, 0, 0);
    messages += 3;
    expect((await x.reply(1000n)).error).toBe(0);
    expect((await x.reply(1001n)).error).toBe(0);
    expect(await x.waitClosed()).toBe(true);
  });

  it('a client that never reads its replies stalls only itself, with bounded server memory', async () => {
    const hog = await RawClient.connect(s.socket);
    await hog.go('ro', { structured: false });
    hog.socket.pause(); // never read replies
    const before = process.memoryUsage().arrayBuffers;
    const reqs: Buffer[] = [];
    for (let i = 0; i < 6000; i++) reqs.push(RawClient.request(0, BigInt(i), 0, MiB));
    hog.write(Buffer.concat(reqs)); // 6000 × 1 MiB reads = 6 GiB of replies if unbounded
    messages += 6000;
    const opsBefore = good.errors.length;
    await new Promise((res) => setTimeout(res, 2500));
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(grown).toBeLessThan(200 * MiB);
    // Another connection is served normally meanwhile.
    await mustRun('qemu-io', ['-f', 'raw', s.uri('vol'), '-c', 'write -P 0x42 20M 1M', '-c', 'read -P 0x42 20M 1M']);
    expect(good.errors.length).toBe(opsBefore);
    hog.close();
    for (let i = 0; i < 50 && s.server.clientCount('ro') > 0; i++) await new Promise((res) => setTimeout(res, 50));
    expect(s.server.clientCount('ro')).toBe(0);
  });

  it('sent at least 10,000 hostile messages and the good client never saw an error', async () => {
    const ops = await good.stop();
    expect(messages).toBeGreaterThanOrEqual(10_000);
    expect(ops).toBeGreaterThan(50);
    expect(good.errors).toEqual([]);
    // The server still answers new clients.
    const info = JSON.parse(await mustRun('nbdinfo', ['--json', s.uri('vol')]));
    expect(info.exports[0]['export-size']).toBe(VOL);
  });
});
