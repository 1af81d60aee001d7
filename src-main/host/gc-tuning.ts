/**
 * Garbage-collector settings for a process that keeps the engine running (`holdfast nbd`,
 * `serve`, the app's main process). Call once at start, before clients connect.
 *
 * V8's memory reducer runs extra full collections that compact the whole heap when it judges
 * the program idle. An engine answering NBD clients is never idle in that sense, but its heap is
 * small, so the reducer fired every few seconds during backups: 3–4 compacting collections per
 * 10 s with pauses of 13–31 ms on the thread that answers clients (fio QD16 at 12k IOPS during a
 * range backup; without it 8–9 ordinary full collections of at most 6–9 ms, and p99 3.1–4.9 →
 * 2.9–3.2 ms in paired runs). The heap then shrinks only through ordinary collections.
 * This flag takes effect when set at run time (unlike heap sizes, which the launchers pass).
 */
import v8 from 'node:v8';

let tuned = false;

export function tuneGcForServing(): void {
  if (tuned) return;
  tuned = true;
  v8.setFlagsFromString('--no-memory-reducer');
}
