// What the NBD benches share: running commands and servers, timing a measurement that may fail,
// rotating the servers' order per round, and the table's figures.
import { execFile } from 'node:child_process';
import fs from 'node:fs';

/** Runs `cmd` to completion: resolves with its stdout, rejects with its stderr (execFile options in `opts`; 600 s unless `timeout`). */
export function sh(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 600_000, maxBuffer: 64 * 1024 * 1024, ...opts }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(String(stdout));
    });
  });
}

/** Resolves once `p` exists; rejects if `proc` exits first or after `tries` × 50 ms. */
export async function waitForSocket(p, proc, tries = 400) {
  for (let i = 0; i < tries; i++) {
    if (fs.existsSync(p)) return;
    if (proc.exitCode !== null) throw new Error(`server exited early (${proc.exitCode})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`socket ${p} never appeared`);
}

/** Sends SIGTERM and resolves once `proc` has exited. */
export async function stopProcess(proc) {
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

/** Seconds `fn` took. */
export async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** `fn`'s result, or null after logging `label` and the error's last line: a client failing against a server is a result too. */
export async function attempt(label, fn) {
  try {
    return await fn();
  } catch (e) {
    console.error(`${label}: FAILED ${String(e.message).split('\n').filter(Boolean).pop()}`);
    return null;
  }
}

/** `list` rotated left by `by` (each round starts with another server). */
export function rotated(list, by) {
  const n = list.length;
  return list.map((_, i) => list[(i + by) % n]);
}

/** The shortest time, or null when every round failed. */
export const best = (xs) => (xs.some((x) => x !== null) ? Math.min(...xs.filter((x) => x !== null)) : null);
export const secs = (x) => (x === null ? 'failed' : `${x.toFixed(3)} s`);
/** Peer time ÷ Holdfast time, as the tables print it. */
export const ratio = (peer, h) => (peer === null || h === null ? '-' : `${(peer / h).toFixed(2)}×`);
