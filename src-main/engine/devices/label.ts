/**
 * Reads and writes the device label (layout in label-format.ts) through a BlockFile.
 * writeLabel overwrites the slot with the older generation and syncs, so at every instant
 * at least one slot holds a complete label; readLabel returns the newest valid slot.
 */
import type { BlockFile } from '../env/env';
import { HoldfastError } from '../../../src-shared/errors';
import { decodeLabelSlot, encodeLabelSlot, HEADER_SIZE, MAX_BODY, SLOT_OFFSETS, type DecodedSlot, type DeviceLabel } from './label-format';

async function readSlot(file: BlockFile, offset: number): Promise<DecodedSlot> {
  const header = Buffer.alloc(HEADER_SIZE);
  const n = await file.read(header, offset);
  if (n < HEADER_SIZE) return { kind: 'blank' };
  const len = header.readUInt32LE(24);
  const body = Buffer.alloc(Math.min(len, MAX_BODY));
  await file.read(body, offset + HEADER_SIZE);
  return decodeLabelSlot(header, body);
}

async function readSlots(file: BlockFile): Promise<DecodedSlot[]> {
  return Promise.all(SLOT_OFFSETS.map((off) => readSlot(file, off)));
}

/**
 * The device's label; null when the device has none (never formatted, or adopted).
 * Throws IO_ERROR when a label is there but no slot decodes.
 */
export async function readLabel(file: BlockFile): Promise<DeviceLabel | null> {
  const slots = await readSlots(file);
  let best: { generation: number; label: DeviceLabel } | null = null;
  for (const s of slots) if (s.kind === 'label' && (!best || s.generation > best.generation)) best = s;
  if (best) return best.label;
  const corrupt = slots.find((s) => s.kind === 'corrupt');
  if (corrupt && corrupt.kind === 'corrupt')
    throw new HoldfastError('IO_ERROR', `The Holdfast label on ${file.path} is damaged (${corrupt.reason}); the device cannot be identified.`, {
      path: file.path,
    });
  return null;
}

/** Writes label durably into the older slot (both slots when the device has no label yet). */
export async function writeLabel(file: BlockFile, label: DeviceLabel): Promise<void> {
  const slots = await readSlots(file);
  const gens = slots.map((s) => (s.kind === 'label' ? s.generation : -1));
  const next = Math.max(...gens) + 1;
  if (gens.every((g) => g < 0)) {
    // Fresh label: fill both slots so a later torn write of either leaves a valid one.
    for (const off of SLOT_OFFSETS) await file.write(encodeLabelSlot(label, next), off);
  } else {
    const target = gens[0]! <= gens[1]! ? 0 : 1;
    await file.write(encodeLabelSlot(label, next), SLOT_OFFSETS[target]!);
  }
  await file.datasync();
}
