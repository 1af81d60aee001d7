/**
 * Held payloads: small ones are copies in shared slabs (one ArrayBuffer for many held writes,
 * so the garbage collector has one object per held write to move, not three), never reused in
 * place; large ones own their memory. HeldWrite keeps a payload as memory + offset and hands out
 * views equal to what was written.
 */
import { describe, expect, it } from 'vitest';
import { HeldWrite, HoldQueue } from '../../src-main/engine/holds/hold-queue';
import { PayloadSlabs, SLAB_BYTES, SLAB_PAYLOAD_MAX } from '../../src-main/engine/holds/payload-slabs';

describe('payload slabs', () => {
  it('copies small payloads into shared slabs that are written once, front to back', () => {
    const slabs = new PayloadSlabs();
    const kept: Buffer[] = [];
    const n = Math.ceil((3 * SLAB_BYTES) / 4096) + 7;
    for (let i = 0; i < n; i++) {
      const src = Buffer.alloc(4096, i & 0xff);
      kept.push(slabs.keep(src, i % 2 === 0));
      src.fill(0xee); // the caller reuses its buffer: the kept copy must not change
    }
    const memories = new Set(kept.map((b) => b.buffer));
    expect(memories.size).toBe(Math.ceil(n / (SLAB_BYTES / 4096)));
    for (const m of memories) expect(m.byteLength).toBe(SLAB_BYTES);
    kept.forEach((b, i) => expect(b.equals(Buffer.alloc(4096, i & 0xff)), `payload ${i}`).toBe(true));
    // No two kept payloads share a byte (nothing is reused in place).
    const spans = kept.map((b) => [b.buffer, b.byteOffset, b.byteOffset + b.length] as const).sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : 0));
    for (let i = 1; i < spans.length; i++) if (spans[i]![0] === spans[i - 1]![0]) expect(spans[i]![1]).toBeGreaterThanOrEqual(spans[i - 1]![2]);
  });

  it('keeps a large stable payload that owns its memory, and copies a large view or an unstable one', () => {
    const slabs = new PayloadSlabs();
    const own = Buffer.alloc(SLAB_PAYLOAD_MAX + 4096, 1);
    expect(slabs.keep(own, true) === own).toBe(true);
    const unstable = slabs.keep(own, false);
    expect(unstable === own).toBe(false);
    expect(unstable.buffer === own.buffer).toBe(false);
    expect(unstable.equals(own)).toBe(true);
    const big = Buffer.alloc(4 * SLAB_PAYLOAD_MAX, 2);
    const view = big.subarray(0, SLAB_PAYLOAD_MAX + 512);
    const kept = slabs.keep(view, true);
    expect(kept.buffer === big.buffer).toBe(false);
    expect(kept.byteLength).toBe(SLAB_PAYLOAD_MAX + 512);
    expect(kept.buffer.byteLength).toBe(SLAB_PAYLOAD_MAX + 512);
  });

  it('a held write hands out views of its payload, drops it when superseded and gets it back when the superseder is dropped', () => {
    const slabs = new PayloadSlabs();
    const q = new HoldQueue(true);
    const a = new HeldWrite(1, 8192, 4096, slabs.keep(Buffer.alloc(4096, 0xa1), false), 12.7);
    expect(a.heldAt).toBe(12);
    q.push(a);
    expect(a.data!.equals(Buffer.alloc(4096, 0xa1))).toBe(true);
    expect(a.data === a.data).toBe(false); // a new view each time, of the same memory
    expect(a.data!.buffer === a.data!.buffer).toBe(true);
    const b = new HeldWrite(2, 8192, 4096, slabs.keep(Buffer.alloc(4096, 0xb2), false), 13);
    q.push(b);
    expect(a.superseded).toBe(true);
    expect(a.data).toBeNull();
    // b's record failed to commit: b leaves, a is back with its own bytes.
    expect(q.dropSeqs(2, 2)).toBe(1);
    expect(a.superseded).toBe(false);
    expect(a.data!.equals(Buffer.alloc(4096, 0xa1))).toBe(true);
    expect(() => new HeldWrite(3, 0, 4096, Buffer.alloc(512), 0)).toThrow();
    const zero = new HeldWrite(4, 0, 4096, null, 0);
    expect(zero.data).toBeNull();
  });
});
