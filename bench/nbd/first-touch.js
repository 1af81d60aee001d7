// What the first touch of a page costs the thread that copies a held write into it, by how the
// page was faulted in before (bench/results/nbd-latency-session30.txt). On the 2-vCPU PVM bench
// VM: never touched ~11.5 µs a page; faulted in by the kernel (a read of /dev/zero, as
// holds/prefault.ts did until session 36) still ~5.7 µs; touched from user space by another
// thread ~0.2 µs on the same CPU, ~0.75 µs from the other; in use already ~0.25 µs.
//
//   node bench/nbd/first-touch.js [MiB]     (64 by default; pins itself to CPU 0 and the worker
//                                            to CPU 1 with taskset where there are two CPUs)
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const { execFileSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');

const MIB = Number(process.argv[2] || 64);
const N = MIB << 20;
const PAGE = 4096;
const src = Buffer.alloc(PAGE, 7);
const twoCpus = os.cpus().length >= 2;
const tid = () => fs.readlinkSync('/proc/thread-self').split('/').pop();
const pin = (cpu) => {
  try {
    execFileSync('taskset', ['-pc', String(cpu), tid()], { stdio: 'ignore' });
  } catch {
    // no taskset: unpinned
  }
};

/** ns per page to copy 4 KiB into every page of buf (what keeping a held write does). */
function copyEachPage(buf) {
  const t = process.hrtime.bigint();
  for (let o = 0; o + PAGE <= buf.length; o += PAGE) src.copy(buf, o);
  return Number(process.hrtime.bigint() - t) / (buf.length / PAGE);
}

/** A worker (on CPU `cpu`) writes one byte into every page of shared memory; resolves its ns per page. */
function touchInWorker(sab, cpu) {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    try { require('node:child_process').execFileSync('taskset', ['-pc', String(workerData.cpu),
      require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()], { stdio: 'ignore' }); } catch {}
    const u = new Uint8Array(workerData.sab);
    const t = process.hrtime.bigint();
    for (let o = 0; o < u.length; o += ${PAGE}) u[o] = 0;
    parentPort.postMessage(Number(process.hrtime.bigint() - t) / (u.length / ${PAGE}));`;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { sab, cpu } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

async function main() {
  pin(0);
  const zero = fs.openSync('/dev/zero', 'r');
  const row = (what, ns) => console.log(`${what.padEnd(58)} ${(ns / 1000).toFixed(2).padStart(6)} µs a page`);
  const cold = Buffer.allocUnsafeSlow(N);
  row('copy into memory never touched', copyEachPage(cold));
  row('copy into the same memory again', copyEachPage(cold));
  const kernel = Buffer.allocUnsafeSlow(N);
  for (let o = 0; o < N; o += 1 << 20) fs.readSync(zero, kernel, o, 1 << 20, null);
  row('copy after the kernel faulted it in (/dev/zero read)', copyEachPage(kernel));
  for (const cpu of twoCpus ? [0, 1] : [0]) {
    const sab = new SharedArrayBuffer(N);
    const ns = await touchInWorker(sab, cpu);
    row(`  (a worker on CPU ${cpu} touching it first)`, ns);
    row(`copy after that worker touched it`, copyEachPage(Buffer.from(sab)));
  }
}
main();
