/**
 * The live timeline of one volume's hold queue over the last two minutes: writes queued so far
 * and writes released so far; the shaded gap between the lines is what is held right now.
 * Draws at most ~240 points whatever the sample count (one per horizontal bucket).
 *
 * A pure view of what its owner read in one render: `samples` is the current backup's series
 * and `state` the latest HoldState. The lines end at `state` and every number shown comes from
 * it, so the chart can never disagree with the panel around it. Samples newer than `state` (the
 * cache briefly lagging the timeline) are left out: totals only grow within a series, so those
 * are exactly the samples with a larger total.
 */
import type { HoldState } from '../../src-shared/contract';
import type { TimelineSample } from '../live/hold-timeline';
import { formatCount } from './format';

const W = 600;
const H = 150;
const BUCKETS = 240;
const MIN_SPAN_MS = 10_000;

export function downsample(samples: TimelineSample[], t0: number, t1: number, buckets = BUCKETS): TimelineSample[] {
  const out: TimelineSample[] = [];
  let lastBucket = -1;
  for (const s of samples) {
    const b = Math.min(buckets - 1, Math.floor(((s.t - t0) / (t1 - t0)) * buckets));
    if (b === lastBucket) out[out.length - 1] = s;
    else out.push(s);
    lastBucket = b;
  }
  return out;
}

/** The series up to `state`, then `state` itself at `now`. */
export function seriesEndingAt(samples: TimelineSample[], state: HoldState, now: number): TimelineSample[] {
  const out: TimelineSample[] = [];
  for (const s of samples) {
    if (s.queued > state.queuedTotal || s.released > state.releasedTotal) break;
    out.push(s);
  }
  out.push({ t: Math.max(now, out.at(-1)?.t ?? now), queued: state.queuedTotal, released: state.releasedTotal, held: state.heldCount });
  return out;
}

export function HoldTimelineChart({ state, samples, now, windowMs }: { state: HoldState; samples: TimelineSample[]; now: number; windowMs: number }) {
  const volume = state.volume;
  const series = seriesEndingAt(samples, state, now);
  const t1 = series.at(-1)!.t;
  // The axis spans what has been seen (at least 10 s, at most the window) so a fresh backup fills the chart.
  const span = Math.min(windowMs, Math.max(MIN_SPAN_MS, t1 - series[0]!.t));
  const t0 = t1 - span;
  const points = downsample(series, t0, t1);
  const base = points[0] ? Math.min(points[0].released, points[0].queued) : 0;
  const top = Math.max(1, ...points.map((p) => p.queued - base));
  const x = (t: number) => ((t - t0) / (t1 - t0)) * W;
  const y = (v: number) => H - 4 - ((v - base) / top) * (H - 12);
  const line = (f: (p: TimelineSample) => number) => points.map((p) => `${x(p.t).toFixed(1)},${y(f(p)).toFixed(1)}`).join(' ');
  const band = points.length ? `${line((p) => p.queued)} ${[...points].reverse().map((p) => `${x(p.t).toFixed(1)},${y(p.released).toFixed(1)}`).join(' ')}` : '';

  return (
    <figure className="timeline">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`Timeline of queued and released writes for ${volume}, last ${Math.round(span / 1000)} seconds`}>
        {[0.25, 0.5, 0.75].map((f) => (
          <line key={f} x1={0} x2={W} y1={H * f} y2={H * f} className="grid-line" vectorEffect="non-scaling-stroke" />
        ))}
        {points.length > 1 && (
          <>
            <polygon points={band} className="band-held" />
            <polyline points={line((p) => p.queued)} className="line-queued" vectorEffect="non-scaling-stroke" />
            <polyline points={line((p) => p.released)} className="line-released" vectorEffect="non-scaling-stroke" />
          </>
        )}
      </svg>
      {points.length > 1 && top > 1 && (
        <span className="timeline-max" aria-hidden="true">
          +{formatCount(top)} writes
        </span>
      )}
      <figcaption className="timeline-legend">
        <span>
          <span className="swatch swatch-queued" aria-hidden="true" /> Queued {formatCount(state.queuedTotal)}
        </span>
        <span>
          <span className="swatch swatch-released" aria-hidden="true" /> Released {formatCount(state.releasedTotal)}
        </span>
        <span>
          <span className="swatch swatch-held" aria-hidden="true" /> Held now {formatCount(state.heldCount)}
        </span>
        <span className="muted">last {Math.round(span / 1000)} s</span>
      </figcaption>
    </figure>
  );
}
