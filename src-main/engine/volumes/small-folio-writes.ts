/**
 * Writes into a volume's device files in pieces of at most WRITE_PIECE_BYTES.
 *
 * Linux caches a regular file in folios sized by the write that created them (ext4 since 6.16,
 * XFS since 5.18), and a later small write into a large folio walks all of it: on the bench VM
 * (kernel 6.18, ext4) a random 4 KiB write costs 3.3–4.5 µs (p50) in a file written with 4 KiB
 * writes, 5–6.5 µs with 64 KiB writes, 7–12 µs with 256 KiB, 24–32 µs with 1 MiB and 42–60 µs
 * with 4 MiB (bench/nbd/page-cache-write-cost.py; bench/results/nbd-latency-session40.txt §1).
 * So after a restore into a volume (4 MiB writes), a `qemu-img convert` or nbdcopy into it, or
 * a new volume's signature wipe, every random write of the volume's user into that range cost
 * several times more kernel time until the kernel let those pages go: fio 4 KiB random writes
 * at queue depth 16 ran at 35–46k IOPS right after an nbdcopy import instead of 58–66k, and at
 * 21–26k right after a restore instead of 52–54k. Smaller pieces would leave cheaper folios but
 * cost more thread-pool round trips per byte: with 64 or 128 KiB ones a queue-depth-1 writer of
 * 1 MiB writes got 0.5–0.8× a plain writer's page-cache throughput, with 256 KiB 0.82–0.91× (§2).
 */
import type { BlockFile } from '../env/env';

export const WRITE_PIECE_BYTES = 256 << 10;
/**
 * Pieces of one write in flight at once: twice Node's thread pool (4 threads), so a thread that
 * finishes a piece finds the next one queued instead of waiting for the event loop to submit it.
 * The pool is shared with the journal's fdatasyncs, which each big write delays by at most 8
 * pieces (~0.5 ms).
 */
const WRITE_LANES = 8;

/**
 * file.write(data, pos), in pieces started in ascending order. On a failure no new piece
 * starts, and it resolves (rejects) only once no piece of it is in flight, so a caller that
 * orders overlapping writes by their completion stays right even after an error.
 */
export async function writePieces(file: BlockFile, data: Buffer, pos: number): Promise<void> {
  if (data.length <= WRITE_PIECE_BYTES) return file.write(data, pos);
  let next = 0;
  let failure: { error: unknown } | null = null;
  const lane = async (): Promise<void> => {
    while (next < data.length && failure === null) {
      const at = next;
      next = Math.min(data.length, at + WRITE_PIECE_BYTES);
      try {
        await file.write(data.subarray(at, next), pos + at);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const lanes: Promise<void>[] = [];
  for (let i = 0; i < WRITE_LANES; i++) lanes.push(lane());
  await Promise.all(lanes);
  if (failure !== null) throw (failure as { error: unknown }).error;
}
