/**
 * Shared memory that starts on a page boundary, so uncached (O_DIRECT) reads can land in it.
 * A SharedArrayBuffer comes from malloc (16 bytes past a page boundary here), which O_DIRECT
 * refuses; a shared WebAssembly.Memory is mapped whole pages. Both can be posted to workers.
 */
import { invariant } from '../../../src-shared/errors';
import { DIRECT_IO_ALIGN } from './env';

const WASM_PAGE = 65536;
/** wasm32 addresses at most 65536 pages (4 GiB). */
const WASM_MAX_PAGES = 65536;

/**
 * `bytes` (or more) of zeroed shared memory whose first byte is DIRECT_IO_ALIGN-aligned; a plain
 * SharedArrayBuffer (unaligned: uncached reads into it fall back to buffered ones) where wasm
 * memory is unavailable or too small.
 */
export function alignedSharedMemory(bytes: number): SharedArrayBuffer {
  invariant(Number.isSafeInteger(bytes) && bytes >= 0, 'memory sizes are whole bytes');
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE));
  if (pages <= WASM_MAX_PAGES && typeof WebAssembly === 'object') {
    try {
      const buf = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
      if (buf instanceof SharedArrayBuffer) return buf;
    } catch {
      // no wasm (--jitless) or no address space for it: unaligned memory still works, buffered
    }
  }
  return new SharedArrayBuffer(bytes);
}

/** `n` rounded up to whole DIRECT_IO_ALIGN units (slot strides, so every slot starts aligned). */
export function alignUp(n: number): number {
  return Math.ceil(n / DIRECT_IO_ALIGN) * DIRECT_IO_ALIGN;
}
