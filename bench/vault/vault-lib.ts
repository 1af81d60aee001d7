/**
 * The vault benchmark's child process (bundled to dist/bench/vault-lib.cjs): runs one vault
 * operation on a raw image file and prints its timing and peak RSS as JSON, so the parent can
 * measure each operation in its own process.
 *   init VAULT | backup VAULT IMAGE [--full] [--changed BLOCKS.u32 --parent ID] | restore VAULT ID OUT
 */
import fs from 'node:fs';
import type { SnapshotSource } from '../../src-main/engine/backup/snapshot-source';
import { runBackup } from '../../src-main/engine/vault/backup-writer';
import { restoreToFile } from '../../src-main/engine/vault/restore';
import { Vault } from '../../src-main/engine/vault/vault';

/** A quiescent image file as a SnapshotSource (no writer: nothing is ever held). */
class FileSource implements SnapshotSource {
  readonly backupId = `bench-${process.pid}`;
  readonly volume = 'bench';
  readonly volumeId = 1;
  readonly policy = 'volume' as const;
  readonly size: number;
  readonly changed: SnapshotSource['changed'];
  private readonly fd: number;
  constructor(file: string, changed: { blocks: Uint32Array; parent: string } | null) {
    this.fd = fs.openSync(file, 'r');
    this.size = fs.fstatSync(this.fd).size;
    if (changed) {
      // A bitmap, like the engine's changed-block map (BlockBitmap).
      const bits = new Uint8Array(Math.ceil(this.size / 4096 / 8));
      for (const b of changed.blocks) bits[b >>> 3]! |= 1 << (b & 7);
      const count = changed.blocks.length;
      this.changed = {
        granularity: 4096,
        parentSnapshotId: changed.parent,
        isChanged: (b) => (bits[b >>> 3]! & (1 << (b & 7))) !== 0,
        count: () => count,
        forEachChanged: (fn) => changed.blocks.forEach((b) => fn(b)),
      };
    } else this.changed = null;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(offset, buf);
    return buf;
  }
  // Like the engine's volumes (LiveVolume.deviceReadInto): small reads are a synchronous
  // page-cache copy, larger ones go to the thread pool.
  async readInto(offset: number, buf: Buffer): Promise<void> {
    if (buf.length <= 64 * 1024) fs.readSync(this.fd, buf, 0, buf.length, offset);
    else await new Promise<void>((res, rej) => fs.read(this.fd, buf, 0, buf.length, offset, (e) => (e ? rej(e) : res())));
  }
  // Like the engine's volumes (LiveVolume.locatePointInTime): the chunk workers may read the file themselves.
  locate(offset: number, length: number) {
    return [{ fd: this.fd, position: offset, length }];
  }
  confirmLocated(): void {}
  rangeCopied(): void {}
  urgentRanges() {
    return [];
  }
  async end(): Promise<void> {
    fs.closeSync(this.fd);
  }
  async abort(): Promise<void> {
    fs.closeSync(this.fd);
  }
}

async function main(): Promise<void> {
  const [cmd, ...args] = process.argv.slice(2);
  const t0 = performance.now();
  let result: unknown;
  if (cmd === 'init') result = (await Vault.init(args[0]!)).config.id;
  else if (cmd === 'backup') {
    const vault = await Vault.open(args[0]!);
    const ci = args.indexOf('--changed');
    const changed =
      ci >= 0
        ? { blocks: new Uint32Array(new Uint8Array(fs.readFileSync(args[ci + 1]!)).buffer), parent: args[args.indexOf('--parent') + 1]! }
        : null;
    const m = await runBackup(new FileSource(args[1]!, changed), vault, { full: args.includes('--full') });
    result = { id: m.id, kind: m.kind, stats: m.stats };
  } else if (cmd === 'restore') {
    const vault = await Vault.open(args[0]!);
    result = await restoreToFile(vault, args[1]!, args[2]!);
  } else throw new Error(`unknown command ${cmd}`);
  const ms = performance.now() - t0;
  process.stdout.write(JSON.stringify({ ms, maxRssMiB: process.resourceUsage().maxRSS / 1024, result }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
