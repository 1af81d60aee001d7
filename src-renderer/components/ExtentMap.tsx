/** A volume's extents as one bar: where each piece of the address space lives, by device. */
import type { Device, Extent } from '../../src-shared/contract';
import { formatSize } from './format';

const PALETTE = 6;

export function ExtentMap({ size, extents, devices }: { size: number; extents: Extent[]; devices: Device[] }) {
  const order = [...new Set(extents.map((e) => e.deviceId))];
  const pathOf = (id: number) => devices.find((d) => d.id === id)?.path ?? `device ${id}`;
  const colour = (id: number) => `extent-c${order.indexOf(id) % PALETTE}`;
  return (
    <figure className="extent-map">
      <div className="extent-bar" role="img" aria-label={`Extent map: ${extents.length} extent(s) on ${order.length} device(s)`}>
        {extents.map((e, i) => (
          <div
            key={i}
            className={`extent ${colour(e.deviceId)}`}
            style={{ left: `${(e.volumeOffset / size) * 100}%`, width: `${Math.max(0.3, (e.length / size) * 100)}%` }}
            title={`${formatSize(e.length)} at ${formatSize(e.volumeOffset)} → ${pathOf(e.deviceId)} @ ${formatSize(e.deviceOffset)}`}
          />
        ))}
      </div>
      <figcaption className="extent-legend">
        {order.map((id) => (
          <span key={id} className="legend-item">
            <span className={`swatch ${colour(id)}`} aria-hidden="true" />
            <span className="mono">{pathOf(id)}</span>
            <span className="muted">
              {' '}
              {formatSize(extents.filter((e) => e.deviceId === id).reduce((a, e) => a + e.length, 0))}
            </span>
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
