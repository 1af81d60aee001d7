/**
 * Decides whether a path may become a Holdfast device: it exists, is an image file or a
 * block device, is big enough, is not mounted (itself, a partition or holder of it, or —
 * for an image file — a loop device it backs) and does not hold the running system
 * (/, /boot, /usr, swap). Holdfast never writes a device that fails these checks.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Env } from '../env/env';
import { HoldfastError } from '../../../src-shared/errors';
import { formatSize } from '../../../src-shared/sizes';
import { MIN_DEVICE_SIZE } from './label-format';
import { linuxSystemView, type BlockNode, type Mount, type SystemView } from './system-view';

export interface ProbedDevice {
  kind: 'image' | 'block';
  size: number;
  realPath: string;
}

export interface ProbeOptions {
  /** Smallest acceptable size; default MIN_DEVICE_SIZE (label area + one block). */
  minSize?: number;
  sys?: SystemView;
}

const SYSTEM_MOUNTS = new Set(['/', '/boot', '/boot/efi', '/efi', '/usr', '/var', '/home']);

function realpathOrSelf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}

/** Mounts of any of nodes (matched by device number or by /dev/<name> as source). */
function mountsOf(nodes: BlockNode[], mounts: Mount[]): Mount[] {
  const nums = new Set(nodes.map((n) => n.devNum));
  const devs = new Set(nodes.map((n) => `/dev/${n.name}`));
  return mounts.filter((m) => nums.has(m.devNum) || devs.has(realpathOrSelf(m.source)) || devs.has(m.source));
}

function checkInUse(shown: string, nodes: BlockNode[], sys: SystemView, via?: string): void {
  const mounts = mountsOf(nodes, sys.mounts());
  const swaps = new Set(sys.swaps().map(realpathOrSelf));
  const swapNode = nodes.find((n) => swaps.has(`/dev/${n.name}`));
  const sysMount = mounts.find((m) => SYSTEM_MOUNTS.has(m.mountPoint));
  if (sysMount || swapNode) {
    const what = sysMount ? `${sysMount.mountPoint} is mounted from /dev/${nodes.find((n) => n.devNum === sysMount.devNum)?.name ?? sysMount.source}` : `/dev/${swapNode!.name} is swap`;
    throw new HoldfastError('DEVICE_SYSTEM', `${shown} holds the running system (${what}); Holdfast never writes it.`, { path: shown });
  }
  if (mounts.length) {
    const m = mounts[0]!;
    throw new HoldfastError(
      'DEVICE_MOUNTED',
      `${shown}${via ? ` (${via})` : ''} is mounted at ${m.mountPoint}${m.source ? ` from ${m.source}` : ''}; unmount it first.`,
      { path: shown, mountPoints: mounts.map((x) => x.mountPoint) },
    );
  }
}

export async function probeDevicePath(p: string, env: Env, opts: ProbeOptions = {}): Promise<ProbedDevice> {
  const sys = opts.sys ?? linuxSystemView;
  const minSize = opts.minSize ?? MIN_DEVICE_SIZE;
  const abs = path.resolve(p);
  const st = await env.stat(abs);
  if (!st) throw new HoldfastError('DEVICE_MISSING', `There is no file or drive at ${abs}.`, { path: abs });
  const realPath = realpathOrSelf(abs);
  let kind: 'image' | 'block';
  if (st.isBlockDevice) {
    kind = 'block';
    const node = sys.blockNode(realPath);
    if (node) checkInUse(abs, [node, ...sys.dependents(node.name)], sys);
  } else if (st.isFile) {
    kind = 'image';
    if (sys.swaps().map(realpathOrSelf).includes(realPath))
      throw new HoldfastError('DEVICE_SYSTEM', `${abs} is an active swap file; Holdfast never writes it.`, { path: abs });
    for (const loop of sys.loopsBackedBy(realPath)) checkInUse(abs, [loop, ...sys.dependents(loop.name)], sys, `attached as /dev/${loop.name}`);
  } else {
    throw new HoldfastError('INVALID_ARGUMENT', `${abs} is neither an image file nor a drive.`, { path: abs });
  }
  if (st.size < minSize)
    throw new HoldfastError('DEVICE_TOO_SMALL', `${abs} is ${formatSize(st.size)}; a Holdfast device needs at least ${formatSize(minSize)}.`, {
      path: abs,
      size: st.size,
      minSize,
    });
  return { kind, size: st.size, realPath };
}
