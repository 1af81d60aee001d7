import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { allocate, checkLayout, freeBytes, grow, type AllocDevice } from '../../src-main/engine/volumes/allocation';
import type { Extent } from '../../src-shared/contract';
import { HoldfastError } from '../../src-shared/errors';

const MiB = 1024 * 1024;
const K4 = 4096;

type Op = { kind: 'create'; blocks: number; prefer: number[] } | { kind: 'grow'; pick: number; blocks: number } | { kind: 'delete'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), blocks: fc.integer({ min: 1, max: 3000 }), prefer: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 2 }) }),
  fc.record({ kind: fc.constant('grow' as const), pick: fc.nat(), blocks: fc.integer({ min: 1, max: 2000 }) }),
  fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
);

const devicesArb: fc.Arbitrary<AllocDevice[]> = fc
  .array(fc.record({ blocks: fc.integer({ min: 1, max: 4000 }), extraBytes: fc.integer({ min: 0, max: 4095 }), labelled: fc.boolean() }), { minLength: 1, maxLength: 4 })
  .map((ds) => ds.map((d, i) => ({ id: i + 1, dataStart: d.labelled ? MiB : 0, size: (d.labelled ? MiB : 0) + d.blocks * K4 + d.extraBytes })));

describe('extent allocation', () => {
  it('keeps extents disjoint, contiguous and exactly sized over random create/grow/delete sequences', () => {
    fc.assert(
      fc.property(devicesArb, fc.array(opArb, { minLength: 1, maxLength: 40 }), (devices, ops) => {
        const vols: Array<{ size: number; extents: Extent[] }> = [];
        const used = () => vols.flatMap((v) => v.extents);
        for (const op of ops) {
          const freeBefore = freeBytes(devices, used());
          if (op.kind === 'create') {
            const size = op.blocks * K4;
            try {
              vols.push({ size, extents: allocate(devices, used(), size, op.prefer) });
            } catch (e) {
              expect((e as HoldfastError).code).toBe('NO_SPACE');
              // It may only refuse when the space really is not there.
              expect(freeBefore).toBeLessThan(size);
              expect((e as HoldfastError).details).toEqual({ needed: size, free: freeBefore });
            }
          } else if (vols.length > 0) {
            const v = vols[op.pick % vols.length]!;
            if (op.kind === 'delete') vols.splice(vols.indexOf(v), 1);
            else {
              const newSize = v.size + op.blocks * K4;
              try {
                v.extents = grow(devices, used(), v.extents, newSize);
                v.size = newSize;
              } catch (e) {
                expect((e as HoldfastError).code).toBe('NO_SPACE');
                expect(freeBefore).toBeLessThan(op.blocks * K4);
              }
            }
          }
          checkLayout(devices, vols);
          const usedBytes = vols.reduce((s, v) => s + v.size, 0);
          expect(freeBytes(devices, used())).toBe(devices.reduce((s, d) => s + Math.floor((d.size - d.dataStart) / K4) * K4, 0) - usedBytes);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('places a volume that fits on one device in a single 1 MiB aligned extent', () => {
    const devices = [{ id: 1, size: MiB + 64 * MiB, dataStart: MiB }];
    const a = allocate(devices, [], 4096);
    const b = allocate(devices, a, 8 * MiB);
    expect(a).toEqual([{ volumeOffset: 0, deviceId: 1, deviceOffset: MiB, length: 4096 }]);
    expect(b).toEqual([{ volumeOffset: 0, deviceId: 1, deviceOffset: 2 * MiB, length: 8 * MiB }]);
  });

  it('packs at 4 KiB when alignment would cost the space needed', () => {
    const devices = [{ id: 1, size: MiB + 2 * MiB, dataStart: MiB }];
    const a = allocate(devices, [], 4096);
    const rest = 2 * MiB - 4096;
    const b = allocate(devices, a, rest);
    expect(b).toEqual([{ volumeOffset: 0, deviceId: 1, deviceOffset: MiB + 4096, length: rest }]);
    expect(() => allocate(devices, [...a, ...b], 4096)).toThrow(/Not enough free space/);
  });

  it('spans devices in order when no single device holds the volume', () => {
    const devices = [
      { id: 1, size: MiB + 4 * MiB, dataStart: MiB },
      { id: 2, size: MiB + 4 * MiB, dataStart: MiB },
    ];
    const v = allocate(devices, [], 6 * MiB);
    expect(v).toEqual([
      { volumeOffset: 0, deviceId: 1, deviceOffset: MiB, length: 4 * MiB },
      { volumeOffset: 4 * MiB, deviceId: 2, deviceOffset: MiB, length: 2 * MiB },
    ]);
  });

  it('grows by extending the last extent in place when the space after it is free', () => {
    const devices = [{ id: 1, size: MiB + 16 * MiB, dataStart: MiB }];
    const v = allocate(devices, [], MiB);
    expect(grow(devices, v, v, 3 * MiB)).toEqual([{ volumeOffset: 0, deviceId: 1, deviceOffset: MiB, length: 3 * MiB }]);
    const w = allocate(devices, v, MiB); // now something sits right after v
    const g = grow(devices, [...v, ...w], v, 2 * MiB);
    expect(g).toEqual([
      { volumeOffset: 0, deviceId: 1, deviceOffset: MiB, length: MiB },
      { volumeOffset: MiB, deviceId: 1, deviceOffset: 3 * MiB, length: MiB },
    ]);
  });
});
