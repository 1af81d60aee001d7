/**
 * Kills a real writer process with SIGKILL at many random points (also during its own
 * recovery and during backups), then recovers and proves against the model:
 * - every acknowledged write is present (acknowledged + flushed is the contract; the
 *   stronger "acknowledged" holds for a process crash because the page cache survives),
 * - no sector holds bytes of a write that was never issued, and no sector is torn,
 * - overlapping writes land in issue order (a sector never shows an older write than the
 *   newest acknowledged one covering it),
 * - recovering twice gives the same bytes as recovering once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { Engine } from '../../src-main/engine/engine';
import { parseModel, SECTOR, sectorOwner } from './crash-model';

const POINTS = Number(process.env.HOLDFAST_CRASH_POINTS ?? 200);
const root = path.resolve(__dirname, '../..');
// A bundle of its own, not scripts/build.mjs's dist/test/crash-child.cjs: the CLI tests rebuild
// dist/ in their beforeAll while this one spawns children from it, and a child that loaded the
// file while esbuild rewrote it died of a truncated script (CI, session 32). Next to dist/'s
// bundles so it finds node_modules the same way.
const child = path.join(root, `dist/test/crash-child.vitest-${process.pid}.cjs`);
const VOL_SIZE = 2 << 20;

beforeAll(async () => {
  await build({
    entryPoints: [path.join(root, 'test/crash/crash-child.ts')],
    outfile: child,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['better-sqlite3', 'zstd-napi', 'holdfast-fs'],
    logLevel: 'warning',
  });
});
afterAll(() => fs.rmSync(child, { force: true }));

/**
 * Kills the child `killAfterMs` after it reported ready (engine open, recovery done), or —
 * when `duringOpen` — that long after spawn, which can land inside its recovery.
 */
function runAndKill(dataDir: string, modelFile: string, seed: number, firstId: number, killAfterMs: number, duringOpen: boolean): Promise<{ exit: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [child, dataDir, modelFile, String(seed), String(firstId)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    let t: NodeJS.Timeout | undefined;
    if (duringOpen) t = setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    else p.stdout.once('data', () => (t = setTimeout(() => p.kill('SIGKILL'), killAfterMs)));
    p.on('exit', (code, sig) => {
      clearTimeout(t);
      resolve({ exit: sig ?? String(code), stderr });
    });
  });
}

async function readVolumes(dataDir: string): Promise<Record<string, Buffer>> {
  const e = await Engine.open({ dataDir });
  try {
    const out: Record<string, Buffer> = {};
    for (const v of ['jvol', 'dvol']) out[v] = await e.volume(v).read(0, VOL_SIZE);
    return out;
  } finally {
    await e.close();
  }
}

describe('crash recovery under SIGKILL', () => {
  it(`keeps every acknowledged write across ${POINTS} random kill points`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-crash-'));
    const dataDir = path.join(dir, 'data');
    const modelFile = path.join(dir, 'model.log');
    try {
      const e = await Engine.open({ dataDir });
      await e.api['device.add']({ path: path.join(dir, 'disk.img'), create: true, size: 16 << 20 });
      await e.api['volume.create']({ name: 'jvol', size: VOL_SIZE, ack: 'journal' });
      await e.api['volume.create']({ name: 'dvol', size: VOL_SIZE, ack: 'device' });
      await e.close();

      // Per volume, per sector: the write id it is known to hold after the last verification.
      const known: Record<string, Int32Array> = { jvol: new Int32Array(VOL_SIZE / SECTOR), dvol: new Int32Array(VOL_SIZE / SECTOR) };
      let firstId = 1;
      let totalAcked = 0;
      let killedDuringRun = 0;
      for (let i = 0; i < POINTS; i++) {
        fs.writeFileSync(modelFile, '');
        const duringOpen = i % 10 === 9;
        const killAt = duringOpen ? 50 + Math.floor(Math.random() * 400) : Math.floor(Math.random() * 250);
        const r = await runAndKill(dataDir, modelFile, 1 + i * 7919, firstId, killAt, duringOpen);
        expect(r.exit, r.stderr).toBe('SIGKILL');
        const m = parseModel(fs.readFileSync(modelFile, 'utf8'));
        if (m.writes.size > 0) killedDuringRun++;
        totalAcked += m.acksInOrder.length;

        const image = await readVolumes(dataDir);
        for (const vname of ['jvol', 'dvol']) {
          const buf = image[vname]!;
          const k = known[vname]!;
          // Writes of this run covering each sector, in issue order.
          const cover = new Map<number, number[]>();
          for (const w of [...m.writes.values()].filter((x) => x.volume === vname).sort((a, b) => a.id - b.id)) {
            for (let s = w.offset / SECTOR; s < (w.offset + w.length) / SECTOR; s++) {
              let l = cover.get(s);
              if (!l) cover.set(s, (l = []));
              l.push(w.id);
            }
          }
          for (let s = 0; s < k.length; s++) {
            const owner = sectorOwner(buf.subarray(s * SECTOR, (s + 1) * SECTOR));
            if (owner === -1) throw new Error(`run ${i}: ${vname} sector ${s} is torn or garbage`);
            const ids = cover.get(s) ?? [];
            const allowed = [k[s]!, ...ids];
            if (!allowed.includes(owner)) throw new Error(`run ${i}: ${vname} sector ${s} holds write ${owner}, which was never issued there (allowed ${allowed.slice(-5).join(',')})`);
            const lastAcked = [...ids].reverse().find((id) => m.writes.get(id)!.acked);
            if (lastAcked !== undefined && owner < lastAcked)
              throw new Error(`run ${i}: ${vname} sector ${s} holds write ${owner} but acknowledged write ${lastAcked} came later`);
            k[s] = owner;
          }
        }
        // Recovery is idempotent: a second open/close changes nothing.
        const again = await readVolumes(dataDir);
        for (const v of ['jvol', 'dvol'])
          expect(crypto.createHash('sha256').update(again[v]!).digest('hex')).toBe(crypto.createHash('sha256').update(image[v]!).digest('hex'));
        firstId += m.writes.size + 1;
      }
      expect(killedDuringRun).toBeGreaterThan(POINTS * 0.7);
      expect(totalAcked).toBeGreaterThan(POINTS * 10);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);
});
