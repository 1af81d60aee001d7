/**
 * What e2fsprogs says about an ext2/3/4 image: dumpe2fs's per-group layout (superblocks,
 * descriptor tables, reserved GDT blocks, bitmaps, inode tables) and debugfs's block lists
 * per inode, split into mapping blocks (ETB/IND/DIND/TIND) and data blocks.
 */
import { writeFileSync } from 'node:fs';
import { run } from './fixtures';

export interface ExtLayout {
  blockSize: number;
  blockCount: number;
  firstIno: number;
  features: string[];
  /** Inodes past the reserved range whose blocks are metadata (orphan file, quota files). */
  extraSpecialInodes: number[];
  /** Blocks dumpe2fs names as group metadata. */
  staticMetadata: Set<number>;
}

function addRange(set: Set<number>, a: number, b: number): void {
  for (let x = a; x <= b; x++) set.add(x);
}

export function dumpe2fs(image: string): ExtLayout {
  const out = run('dumpe2fs', [image]);
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(out);
    if (!m) throw new Error(`dumpe2fs printed no "${name}"`);
    return m[1]!.trim();
  };
  const staticMetadata = new Set<number>();
  const re = /(superblock|Group descriptors?|Reserved GDT blocks|Block bitmap|Inode bitmap|Inode table) at (\d+)(?:-(\d+))?/g;
  for (const m of out.matchAll(re)) addRange(staticMetadata, Number(m[2]), Number(m[3] ?? m[2]));
  const mmp = /MMP block number:\s+(\d+)/.exec(out);
  if (mmp) staticMetadata.add(Number(mmp[1]));
  const extraSpecialInodes = [...out.matchAll(/^(?:Orphan file|User quota|Group quota|Project quota) inode:\s+(\d+)/gm)].map((m) => Number(m[1]));
  return {
    extraSpecialInodes,
    blockSize: Number(field('Block size')),
    blockCount: Number(field('Block count')),
    firstIno: Number(field('First inode')),
    features: field('Filesystem features').split(/\s+/),
    staticMetadata,
  };
}

export interface InodeBlocks {
  name: string;
  type: string;
  mapping: number[];
  data: number[];
  xattrBlock: number;
}

/** Runs `stat` on every name in one debugfs session and parses the block lists. */
export function debugfsStat(image: string, names: string[], scratch: string): InodeBlocks[] {
  const cmdFile = `${scratch}/debugfs-cmds`;
  writeFileSync(cmdFile, names.map((n) => `stat "${n}"\n`).join(''));
  const out = run('debugfs', ['-f', cmdFile, image]);
  const sections = out.split(/^debugfs: stat /m).slice(1);
  if (sections.length !== names.length) throw new Error(`debugfs answered ${sections.length} of ${names.length} stat commands`);
  return sections.map((text, i) => {
    const type = /Type: (\S+)/.exec(text)?.[1] ?? 'none';
    const acl = /File ACL: (\d+)/.exec(text);
    const mapping: number[] = [];
    const data: number[] = [];
    const list = /^(?:EXTENTS|BLOCKS):\n([\s\S]*?)(?:\nTOTAL|\n*$)/m.exec(text)?.[1] ?? '';
    for (const m of list.matchAll(/\(([^)]+)\):(\d+)(?:-(\d+))?/g)) {
      const label = m[1]!;
      const a = Number(m[2]);
      const b = Number(m[3] ?? m[2]);
      const target = /^(ETB\d*|IND|DIND|TIND)$/.test(label) ? mapping : data;
      for (let x = a; x <= b; x++) target.push(x);
    }
    return { name: names[i]!, type, mapping, data, xattrBlock: acl ? Number(acl[1]) : 0 };
  });
}
