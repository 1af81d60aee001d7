/**
 * The compact block map carried in `HoldState.blockMap`: a volume divided into `cells` equal
 * cells of `cellBytes` (the last may be shorter), each in one of four states, packed 2 bits per
 * cell (cell i lives in byte i>>2 at bits (i&3)*2, least significant first) and base64-encoded.
 * A cell's state is the most urgent thing in it: HELD beats NOT_COPIED beats COPIED.
 * Pure functions; no Node or DOM imports (uses its own base64 so both sides share it).
 */
export const CellState = { NOT_COPIED: 0, COPIED: 1, HELD: 2, OUTSIDE: 3 } as const;
export type CellState = (typeof CellState)[keyof typeof CellState];

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function encodeBlockMap(states: ArrayLike<number>): string {
  const bytes = new Uint8Array(Math.ceil(states.length / 4));
  for (let i = 0; i < states.length; i++) bytes[i >> 2]! |= (states[i]! & 3) << ((i & 3) * 2);
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63]! : '=';
    out += i + 2 < bytes.length ? B64[n & 63]! : '=';
  }
  return out;
}

/** Decodes `cells` states; throws RangeError on text that is not base64 or too short. */
export function decodeBlockMap(text: string, cells: number): Uint8Array {
  const clean = text.replace(/=+$/, '');
  const bytes = new Uint8Array(Math.floor((clean.length * 6) / 8));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (const ch of clean) {
    const v = B64.indexOf(ch);
    if (v < 0) throw new RangeError('block map is not base64');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[j++] = (acc >> bits) & 0xff;
    }
  }
  if (bytes.length * 4 < cells) throw new RangeError('block map is shorter than its cell count');
  const states = new Uint8Array(cells);
  for (let i = 0; i < cells; i++) states[i] = (bytes[i >> 2]! >> ((i & 3) * 2)) & 3;
  return states;
}
