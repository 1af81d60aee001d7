/**
 * Drive discovery on Linux from `lsblk -J -b`: whole disks with their partitions nested,
 * whether anything on them is mounted, and whether they hold the running system (/, /boot,
 * swap). Parsing is a pure function of lsblk's JSON so it is tested against captured
 * output from several util-linux versions (older ones print MOUNTPOINT and string values).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Drive } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';

const run = promisify(execFile);
const COLUMNS_NEW = 'NAME,PATH,SIZE,MODEL,RM,MOUNTPOINTS,TYPE,FSTYPE,PKNAME';
const COLUMNS_OLD = 'NAME,PATH,SIZE,MODEL,RM,MOUNTPOINT,TYPE,FSTYPE,PKNAME';
const SYSTEM_MOUNTS = new Set(['/', '/boot', '/boot/efi', '/efi', '/usr', '[SWAP]']);

interface LsblkNode {
  name?: string;
  kname?: string;
  path?: string;
  size?: number | string | null;
  model?: string | null;
  rm?: boolean | string | number | null;
  mountpoint?: string | null;
  mountpoints?: Array<string | null> | null;
  type?: string;
  fstype?: string | null;
  children?: LsblkNode[];
}

export interface ParseOptions {
  /** Include loop devices (HOLDFAST_SHOW_LOOP=1): useful with real loop devices in tests. */
  showLoop?: boolean;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0) || 0);
const bool = (v: unknown): boolean => v === true || v === 1 || v === '1' || v === 'true';

function ownMountpoints(n: LsblkNode): string[] {
  const list = n.mountpoints ?? (n.mountpoint !== undefined ? [n.mountpoint] : []);
  return list.filter((m): m is string => typeof m === 'string' && m.length > 0);
}

function allMountpoints(n: LsblkNode): string[] {
  return [...ownMountpoints(n), ...(n.children ?? []).flatMap(allMountpoints)];
}

/** Parses `lsblk -J -b -o …` output into drives (disks, and loops when asked). */
export function parseLsblk(json: string, opts: ParseOptions = {}): Drive[] {
  let doc: { blockdevices?: LsblkNode[] };
  try {
    doc = JSON.parse(json) as { blockdevices?: LsblkNode[] };
  } catch {
    throw new HoldfastError('INTERNAL', 'lsblk printed something that is not JSON.');
  }
  const drives: Drive[] = [];
  for (const d of doc.blockdevices ?? []) {
    const name = d.name ?? '';
    if (d.type !== 'disk' && !(opts.showLoop && d.type === 'loop')) continue;
    if (name.startsWith('zram') || name.startsWith('ram')) continue; // memory, not a drive
    const size = num(d.size);
    if (size === 0) continue; // empty card reader slot, detached loop
    const mountpoints = allMountpoints(d);
    const partitions = (d.children ?? [])
      .filter((c) => c.type === 'part')
      .map((c) => ({
        name: c.name ?? '',
        path: c.path ?? `/dev/${c.name ?? ''}`,
        size: num(c.size),
        mounted: allMountpoints(c).length > 0, // swap counts: it is in use
        fstype: c.fstype ?? null,
      }));
    drives.push({
      name,
      path: d.path ?? `/dev/${name}`,
      size,
      model: d.model?.trim() || null,
      removable: bool(d.rm),
      mounted: mountpoints.length > 0,
      mountpoints: mountpoints.filter((m) => m !== '[SWAP]'),
      system: mountpoints.some((m) => SYSTEM_MOUNTS.has(m)),
      partitions,
    });
  }
  return drives;
}

/** The machine's drives. NOT_AVAILABLE off Linux (drive discovery there is not built yet). */
export async function listDrives(opts: ParseOptions = { showLoop: process.env.HOLDFAST_SHOW_LOOP === '1' }): Promise<Drive[]> {
  if (process.platform !== 'linux') throw new HoldfastError('NOT_AVAILABLE', `Drive discovery is not available on ${process.platform} yet.`);
  let out: string;
  try {
    out = (await run('lsblk', ['-J', '-b', '-o', COLUMNS_NEW], { maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new HoldfastError('NOT_AVAILABLE', 'lsblk is not installed (package util-linux); cannot list drives.');
    // util-linux before 2.37 has no MOUNTPOINTS column.
    try {
      out = (await run('lsblk', ['-J', '-b', '-o', COLUMNS_OLD], { maxBuffer: 16 << 20 })).stdout;
    } catch (e2) {
      throw new HoldfastError('IO_ERROR', `lsblk failed: ${(e2 as Error).message.split('\n')[0]}`);
    }
  }
  return parseLsblk(out, opts);
}
