/**
 * What the running system says about block devices: mounts (/proc/self/mountinfo), swap
 * (/proc/swaps), the partitions and holders of a disk and loop devices' backing files
 * (/sys). Probing asks this instead of reading /proc itself so tests can describe a
 * machine (a mounted partition of a whole disk) that the test host does not have.
 * On systems without /proc or /sys every answer is empty.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Mount {
  /** "major:minor" of the mounted device (field 3 of mountinfo). */
  devNum: string;
  mountPoint: string;
  fsType: string;
  /** The mount source, e.g. /dev/sda1. */
  source: string;
}

export interface BlockNode {
  /** Kernel name: sda, sda1, loop0, dm-0. */
  name: string;
  devNum: string;
}

export interface SystemView {
  mounts(): Mount[];
  /** Paths listed in /proc/swaps (devices or swap files). */
  swaps(): string[];
  /** The kernel block node for a block-device path, or null. */
  blockNode(realPath: string): BlockNode | null;
  /** Partitions and holders (dm, md, …) stacked on a node, recursively. */
  dependents(name: string): BlockNode[];
  /** Loop devices whose backing file is realPath. */
  loopsBackedBy(realPath: string): BlockNode[];
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    const g = post.split(' ');
    out.push({ devNum: f[2] ?? '', mountPoint: unescapeMount(f[4] ?? ''), fsType: g[0] ?? '', source: unescapeMount(g[1] ?? '') });
  }
  return out;
}

export function parseSwaps(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean)
    .map((p) => unescapeMount(p));
}

function readText(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

function nodeOf(name: string): BlockNode | null {
  const dev = readText(`/sys/class/block/${name}/dev`).trim();
  return dev ? { name, devNum: dev } : null;
}

export class LinuxSystemView implements SystemView {
  mounts(): Mount[] {
    return parseMountinfo(readText('/proc/self/mountinfo'));
  }

  swaps(): string[] {
    return parseSwaps(readText('/proc/swaps'));
  }

  blockNode(realPath: string): BlockNode | null {
    try {
      const st = fs.statSync(realPath);
      if (!st.isBlockDevice()) return null;
      const devNum = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
      const byName = nodeOf(path.basename(realPath));
      if (byName && byName.devNum === devNum) return byName;
      const link = readText(`/sys/dev/block/${devNum}/uevent`).match(/^DEVNAME=(.*)$/m);
      return { name: link?.[1] ?? path.basename(realPath), devNum };
    } catch {
      return null;
    }
  }

  dependents(name: string): BlockNode[] {
    const out: BlockNode[] = [];
    const seen = new Set<string>([name]);
    const visit = (n: string) => {
      const base = `/sys/class/block/${n}`;
      let kids: string[] = [];
      try {
        kids = fs.readdirSync(base).filter((k) => fs.existsSync(path.join(base, k, 'partition')));
      } catch {
        /* not a block node */
      }
      try {
        kids = kids.concat(fs.readdirSync(path.join(base, 'holders')));
      } catch {
        /* no holders dir */
      }
      for (const k of kids) {
        if (seen.has(k)) continue;
        seen.add(k);
        const node = nodeOf(k);
        if (node) out.push(node);
        visit(k);
      }
    };
    visit(name);
    return out;
  }

  loopsBackedBy(realPath: string): BlockNode[] {
    let names: string[] = [];
    try {
      names = fs.readdirSync('/sys/block').filter((n) => n.startsWith('loop'));
    } catch {
      return [];
    }
    const out: BlockNode[] = [];
    for (const n of names) {
      const backing = readText(`/sys/block/${n}/loop/backing_file`).trim();
      if (backing && (backing === realPath || backing.replace(/ \(deleted\)$/, '') === realPath)) {
        const node = nodeOf(n);
        if (node) out.push(node);
      }
    }
    return out;
  }
}

export const linuxSystemView: SystemView = new LinuxSystemView();
