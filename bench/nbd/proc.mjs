// Child processes for the NBD benches: run a command to completion, wait for a server's socket.
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
