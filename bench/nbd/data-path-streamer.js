// A stand-in for a backup's data path, in its own process (no Holdfast code, no hold queue):
// at RATE MiB/s it reads 4 MiB of SRC, SHA-256es it, writes it to one of 64 files DST.0–63
// and fdatasyncs it — or any part of that. Used by data-path-floor.sh and latency-alternate.sh
// (COND stream) to measure what the work alone costs a writer on this machine.
//
//   node data-path-streamer.js RATE_MIB_S SRC DST [MODE]
//   MODE: letters r (read) h (hash) w (write) s (fdatasync after each write); default rhws.
//         `burn`: no I/O, spin on the CPU (user space only) — CPU load alone, for comparison.
// Runs until killed (SIGTERM).
'use strict';
const fs = require('node:fs');
const crypto = require('node:crypto');

const [rateArg, src, dst, modeArg] = process.argv.slice(2);
const mode = modeArg || 'rhws';
if (!(Number(rateArg) > 0) || !src || !dst || !/^(burn|[rhws]+)$/.test(mode)) {
  console.error('usage: data-path-streamer.js RATE_MIB_S SRC DST [rhws|burn]');
  process.exit(2);
}
if (mode === 'burn') {
  for (;;) {} // eslint-disable-line no-empty
}
const rate = Number(rateArg) * 1048576;
const buf = Buffer.alloc(4 << 20);
const fd = fs.openSync(src, 'r');
const size = fs.fstatSync(fd).size;
const t0 = Date.now();
let off = 0;
let done = 0;
(function step() {
  if (mode.includes('r')) fs.readSync(fd, buf, 0, buf.length, off);
  off = (off + buf.length) % Math.max(buf.length, size - (size % buf.length));
  if (mode.includes('h')) crypto.createHash('sha256').update(buf).digest();
  if (mode.includes('w')) {
    const out = fs.openSync(`${dst}.${(done / buf.length) % 64}`, 'w');
    fs.writeSync(out, buf);
    if (mode.includes('s')) fs.fdatasyncSync(out);
    fs.closeSync(out);
  }
  done += buf.length;
  setTimeout(step, Math.max(0, t0 + (done / rate) * 1000 - Date.now()));
})();
