/**
 * Byte-granular requests over a 512-byte-sector export: concurrent sub-sector writes from
 * several connections into the same sectors must all survive the read-modify-write.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RawClient } from './raw-client';
import { serve, type Served } from './fixture';

let s: Served;
beforeAll(async () => {
  s = await serve({ volBytes: 4 * 1024 * 1024 });
});
afterAll(async () => {
  await s.cleanup();
});

it('concurrent unaligned writes into shared sectors from two connections all land', async () => {
  const a = await RawClient.connect(s.socket);
  const b = await RawClient.connect(s.socket);
  await a.go('vol');
  await b.go('vol');
  // 512 writes of 7 bytes, interleaved over 8 sectors, alternating connections, all in flight at once.
  const pending: Array<Promise<unknown>> = [];
  let cookie = 1n;
  for (let i = 0; i < 512; i++) {
    const c = i % 2 ? a : b;
    const offset = 1000 + i * 7;
    const id = cookie++;
    c.send(1, id, offset, 7, 0, Buffer.alloc(7, (i % 250) + 1));
    pending.push(c.reply(id).then((r) => expect(r.error).toBe(0)));
  }
  // Aligned writes next to them at the same time.
  for (let k = 0; k < 8; k++) {
    const id = cookie++;
    a.send(1, id, 8192 + k * 512, 512, 0, Buffer.alloc(512, 0xee));
    pending.push(a.reply(id).then((r) => expect(r.error).toBe(0)));
  }
  await Promise.all(pending);
  const img = fs.readFileSync(s.volPath);
  for (let i = 0; i < 512; i++) expect(img.subarray(1000 + i * 7, 1007 + i * 7).every((x) => x === (i % 250) + 1)).toBe(true);
  expect(img.subarray(0, 1000).every((x) => x === 0)).toBe(true);
  expect(img.subarray(8192, 8192 + 4096).every((x) => x === 0xee)).toBe(true);
  // Unaligned reads and write-zeroes.
  const r = await a.request(0, 1003, 10);
  expect([...r.data!]).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
  expect((await a.request(6, 1001, 5)).error).toBe(0);
  expect([...(await b.request(0, 1000, 8)).data!]).toEqual([1, 0, 0, 0, 0, 0, 1, 2]);
  a.close();
  b.close();
});
