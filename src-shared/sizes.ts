/** Parses and prints sizes the way people write them: bytes or binary suffixes (64M, 2G, 512K, 1T). */
import { HoldfastError } from './errors';

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4, P: 1024 ** 5 };

export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*$/i.exec(String(text));
  if (!m) throw new HoldfastError('INVALID_SIZE', `"${text}" is not a size; write bytes or a number with K, M, G or T (e.g. 64M, 2G).`);
  const n = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  if (!Number.isFinite(n) || n <= 0) throw new HoldfastError('INVALID_SIZE', `Size must be greater than zero (got "${text}").`);
  if (!Number.isSafeInteger(Math.round(n))) throw new HoldfastError('INVALID_SIZE', `Size "${text}" is too large.`);
  return Math.round(n);
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}
