/**
 * Creates the sparse image files Holdfast formats as devices. An image is created with
 * O_EXCL (never over an existing file), sized with ftruncate (sparse), labelled, synced;
 * if any step fails the half-made file is removed, so a failed create leaves nothing behind.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Env } from '../env/env';
import { BLOCK } from '../../../src-shared/contract';
import { HoldfastError } from '../../../src-shared/errors';
import { formatSize } from '../../../src-shared/sizes';
import { DATA_START, MIN_DEVICE_SIZE } from './label-format';
import { writeLabel } from './label';

export interface CreatedImage {
  path: string;
  size: number;
  uuid: string;
}

/** Checks a requested image or volume size: a positive safe integer multiple of 4 KiB. */
export function checkBlockSize(size: number, what: string): void {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0)
    throw new HoldfastError('INVALID_SIZE', `The ${what} size must be a whole number of bytes greater than zero (got ${size}).`, { size });
  if (size % BLOCK !== 0)
    throw new HoldfastError('INVALID_SIZE', `The ${what} size must be a multiple of 4 KiB (got ${size} bytes; ${Math.ceil(size / BLOCK) * BLOCK} would do).`, { size });
}

export async function createImage(p: string, size: number, env: Env): Promise<CreatedImage> {
  const abs = path.resolve(p);
  checkBlockSize(size, 'image');
  if (size < MIN_DEVICE_SIZE)
    throw new HoldfastError('DEVICE_TOO_SMALL', `An image needs at least ${formatSize(MIN_DEVICE_SIZE)} (1 MiB label area + 4 KiB); got ${formatSize(size)}.`, { size });
  const dir = await env.stat(path.dirname(abs));
  if (!dir?.isDirectory) throw new HoldfastError('NOT_FOUND', `The folder ${path.dirname(abs)} does not exist; create it first.`, { path: abs });
  let file;
  try {
    file = await env.open(abs, { create: true, exclusive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new HoldfastError('ALREADY_EXISTS', `${abs} already exists; Holdfast creates new images only. Use "device add ${abs}" without --create for an existing one.`, {
        path: abs,
      });
    throw e;
  }
  const uuid = randomUUID();
  try {
    await file.truncate(size);
    await writeLabel(file, { uuid, dataStart: DATA_START, volumes: [] });
    await file.close();
    await env.fsyncDir(path.dirname(abs));
  } catch (e) {
    await file.close().catch(() => undefined);
    await env.unlink(abs).catch(() => undefined);
    throw e;
  }
  return { path: abs, size, uuid };
}
