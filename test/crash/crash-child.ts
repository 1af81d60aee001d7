/**
 * The process the crash harness kills with SIGKILL: opens the engine on a data directory
 * (running recovery), then writes to two volumes (journal-ack and device-ack) with up to 8
 * writes in flight, flushes now and then, and runs backups under each policy that hold,
 * release and abort writes — logging every issue/ack/flush to the model file first.
 *   node crash-child.cjs <dataDir> <modelFile> <seed> <firstWriteId>
 */
import fs from 'node:fs';
import { Engine } from '../../src-main/engine/engine';
import { writeData } from './crash-model';

const [dataDir, modelFile, seedArg, firstIdArg] = process.argv.slice(2);
let seed = Number(seedArg) >>> 0 || 1;
const rand = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 0x1_0000_0000;
};
const model = fs.openSync(modelFile!, 'a');
const log = (line: string) => fs.writeSync(model, line + '\n');

async function main() {
  const engine = await Engine.open({ dataDir: dataDir!, journal: { segmentBytes: 256 << 10, capacity: 4 << 20 } });
  process.stdout.write('ready\n');
  let nextId = Number(firstIdArg);
  let acks = 0;
  const vols = ['jvol', 'dvol'];
  const inflight = new Set<Promise<void>>();
  const backup = async (name: string) => {
    const policies = ['volume', 'range', 'metadata'] as const;
    const s = await engine.beginBackup(name, policies[Math.floor(rand() * 3)]!, `b${nextId}-${name}`);
    const size = engine.volume(name).size();
    for (let off = 0; off < size; off += 256 << 10) {
      await s.read(off, 256 << 10);
      s.rangeCopied(off, 256 << 10);
      await new Promise((r) => setTimeout(r, rand() * 5));
    }
    if (rand() < 0.8) await s.end(`snap-${nextId}`);
    else await s.abort('test abort');
  };
  let backups: Promise<void> | null = null;
  for (;;) {
    const r = rand();
    if (r < 0.02) {
      const at = acks;
      await Promise.all(vols.map((v) => engine.volume(v).flush()));
      log(`F ${at}`);
      continue;
    }
    if (r < 0.03 && !backups) {
      const name = vols[Math.floor(rand() * 2)]!;
      backups = backup(name).finally(() => (backups = null));
      continue;
    }
    const name = vols[Math.floor(rand() * 2)]!;
    const vol = engine.volume(name);
    const sectors = vol.size() / 512;
    const len = (1 + Math.floor(rand() * (rand() < 0.8 ? 8 : 128))) * 512;
    const offset = Math.floor(rand() * (sectors - len / 512)) * 512;
    const id = nextId++;
    log(`I ${id} ${name} ${offset} ${len}`);
    const p = vol.write(offset, writeData(id, len)).then(() => {
      acks++;
      log(`A ${id}`);
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    if (inflight.size >= 8) await Promise.race(inflight);
  }
}

main().catch((e) => {
  process.stderr.write(`crash-child failed: ${(e as Error).stack}\n`);
  process.exit(3);
});
