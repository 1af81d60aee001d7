/**
 * The volume as a grid of cells: copied / not yet copied / holding a held write / outside the
 * backup. Consecutive cells of one state in a row are drawn as one rectangle.
 */
import { useMemo } from 'react';
import { decodeBlockMap } from '../../src-shared/block-map';
import type { HoldState } from '../../src-shared/contract';
import { formatSize } from './format';

const COLS = 128;
const CLASS = ['cell-pending', 'cell-copied', 'cell-held', 'cell-outside'];
const LABEL = ['Not yet copied', 'Copied', 'Held writes', 'Not in backup'];

export function BlockMap({ map, volume }: { map: NonNullable<HoldState['blockMap']>; volume: string }) {
  const decoded = useMemo(() => {
    try {
      return decodeBlockMap(map.states, map.cells);
    } catch {
      return null;
    }
  }, [map.states, map.cells]);
  if (!decoded) return <p className="muted">The block map from the engine could not be read.</p>;
  const rows = Math.ceil(decoded.length / COLS);
  const counts = [0, 0, 0, 0];
  const rects: { x: number; y: number; w: number; s: number }[] = [];
  for (let r = 0; r < rows; r++) {
    let c = 0;
    while (c < COLS && r * COLS + c < decoded.length) {
      const s = decoded[r * COLS + c]!;
      let e = c + 1;
      while (e < COLS && r * COLS + e < decoded.length && decoded[r * COLS + e] === s) e++;
      rects.push({ x: c, y: r, w: e - c, s });
      counts[s]! += e - c;
      c = e;
    }
  }
  return (
    <figure className="block-map">
      <svg viewBox={`0 0 ${COLS} ${rows}`} preserveAspectRatio="none" style={{ aspectRatio: `${COLS / Math.max(rows, 1) / 2.5}` }} role="img" aria-label={`Block map of ${volume}`}>
        {rects.map((q, i) => (
          <rect key={i} x={q.x} y={q.y} width={q.w} height={1} className={CLASS[q.s]} />
        ))}
      </svg>
      <figcaption className="timeline-legend">
        {[1, 0, 2, 3].map((s) =>
          counts[s] || s < 3 ? (
            <span key={s}>
              <span className={`swatch ${CLASS[s]}`} aria-hidden="true" /> {LABEL[s]} {((counts[s]! / decoded.length) * 100).toFixed(0)}%
            </span>
          ) : null,
        )}
        <span className="muted">1 cell = {formatSize(map.cellBytes)}</span>
      </figcaption>
    </figure>
  );
}
