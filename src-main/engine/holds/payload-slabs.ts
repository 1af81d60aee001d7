/**
 * Memory for held writes' payloads. A held write's bytes stay in memory until it is released,
 * often for seconds; at thousands of held writes a second, one allocation per write means one
 * ArrayBuffer (and its view) per write that survives the young generation. V8's scavenges copy
 * every such survivor, and while a backup holds writes that made each scavenge take 2–3 ms
 * instead of 0.5 (a writer's p99 is that pause). Small payloads are therefore copied into
 * shared slabs; a held write keeps only the slab's ArrayBuffer and an offset (see HeldWrite).
 *
 * Invariants:
 * - Slab memory is never reused: a slab is written once, front to back, and freed by the
 *   garbage collector when nothing refers to it any more. A view handed out (to a read's
 *   overlay, to a journal batch) therefore stays valid for as long as it is held.
 * - A slab is alive while one of its payloads is queued, so slab memory is at most the payload
 *   bytes held since the oldest queued write, plus one slab. In ack mode `journal` those bytes
 *   are in live journal records, which the journal's capacity bounds.
 * The price: releases do not come in arrival order under the range policy, so a slab stays
 * while a few of its writes wait. Measured at NBD QD16 (bench, hold-only sessions): ArrayBuffer
 * memory 1.8–2.1× the held bytes (311–394 MiB for 171–188 MiB held), against 1.2–1.6× with one
 * allocation per write; 64 KiB slabs measured the same as 1 MiB ones.
 */
/** Payloads up to this size share slabs; larger ones get memory of their own. */
export const SLAB_PAYLOAD_MAX = 256 << 10;
export const SLAB_BYTES = 1 << 20;

export class PayloadSlabs {
  private slab: Buffer | null = null;
  private used = 0;

  /**
   * A copy of `data` that the caller may keep for as long as it likes. `stable`: the caller
   * never changes `data` again, so a large payload that owns most of its memory is kept as it
   * is (a small view of a large buffer is copied: it would keep the whole buffer alive).
   */
  keep(data: Buffer, stable: boolean): Buffer {
    const n = data.byteLength;
    if (n > SLAB_PAYLOAD_MAX) {
      if (stable && n * 2 >= data.buffer.byteLength) return data;
      const own = Buffer.allocUnsafeSlow(n);
      data.copy(own);
      return own;
    }
    if (this.slab === null || this.used + n > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const view = this.slab.subarray(this.used, this.used + n);
    data.copy(view);
    this.used += n;
    return view;
  }
}
