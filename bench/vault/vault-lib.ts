/**
 * The vault benchmark's child process (bundled to dist/bench/vault-lib.cjs): runs one vault
 * operation on a raw image file and prints its timing and peak RSS as JSON, so the parent can
 * measure each operation in its own process.
 *   init VAULT | backup VAULT IMAGE [--full] [--changed BLOCKS.u32 --parent ID] | restore VAULT ID OUT
 */
import fs from 'node:fs';
import type { SnapshotSource } from '../../src-main/engine/backup/snapshot-source';
import type { BlockFile } from '../../src-main/engine/env/env';
import { NodeEnv } from '../../src-main/engine/env/node-env';
import { CACHED_GUESS_MS, RecentRegions } from '../../src-main/engine/volumes/recent-regions';
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
  static async open(file: string, changed: { blocks: Uint32Array; parent: string } | null): Promise<FileSource> {
    return new FileSource(await new NodeEnv().open(file, { readOnly: true }), changed);
  }
  private readonly recent: RecentRegions;
  private constructor(
    private readonly file: BlockFile,
    changed: { blocks: Uint32Array; parent: string } | null,
  ) {
    this.size = file.size();
    // The engine's volume would have seen the changed blocks written (the bench wrote them just
    // now): their regions count as touched lately, the rest not (the image was made outside it).
    this.recent = new RecentRegions(this.size, () => performance.now());
    for (const b of changed?.blocks ?? []) this.recent.touch(b * 4096, 4096);
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
  // Like the engine's volumes (LiveVolume.readPointInTimeInto): on the thread pool, uncached
  // unless the region was touched lately.
  async readInto(offset: number, buf: Buffer): Promise<void> {
    if (this.recent.recent(offset, buf.length, CACHED_GUESS_MS)) await this.file.read(buf, offset);
    else await this.file.readUncached(buf, offset);
  }
  // Like the engine's volumes (LiveVolume.locatePointInTime): the chunk workers may read the file themselves.
  locate(offset: number, length: number) {
    const uncachedFd = this.recent.recent(offset, length, CACHED_GUESS_MS) ? null : this.file.uncachedFd!();
    return [{ fd: this.file.fd!, uncachedFd, position: offset, length }];
  }
  confirmLocated(): void {}
  rangeCopied(): void {}
  urgentRanges() {
    return [];
  }
  async end(): Promise<void> {
    await this.file.close();
  }
  async abort(): Promise<void> {
    await this.file.close();
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
    const m = await runBackup(await FileSource.open(args[1]!, changed), vault, { full: args.includes('--full') });
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
