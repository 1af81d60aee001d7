/**
 * The live timeline of one volume's hold queue over the last two minutes: writes queued so far
 * and writes released so far; the shaded gap between the lines is what is held right now.
 * Draws at most ~240 points whatever the sample count (one per horizontal bucket).
 */
import { useEffect, useState } from 'react';
import type { TimelineSample } from '../live/hold-timeline';
import { useTimelineVersion } from '../live/live-context';
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

export function HoldTimelineChart({ volume, live }: { volume: string; live: boolean }) {
  const timeline = useTimelineVersion();
  const [, tick] = useState(0);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => tick((n) => n + 1), 1000); // moves the time axis, fetches nothing
    return () => clearInterval(t);
  }, [live]);

  const t1 = Date.now();
  const samples = timeline.samples(volume);
  // The axis spans what has been seen (at least 10 s, at most the window) so a fresh backup fills the chart.
  const span = Math.min(timeline.windowMs, Math.max(MIN_SPAN_MS, samples[0] ? t1 - samples[0].t : 0));
  const t0 = t1 - span;
  const points = downsample(samples, t0, t1);
  const last = points[points.length - 1];
  if (last && last.t < t1) points.push({ ...last, t: t1 });
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
          <span className="swatch swatch-queued" aria-hidden="true" /> Queued {last ? formatCount(last.queued) : 0}
        </span>
        <span>
          <span className="swatch swatch-released" aria-hidden="true" /> Released {last ? formatCount(last.released) : 0}
        </span>
        <span>
          <span className="swatch swatch-held" aria-hidden="true" /> Held now {last ? formatCount(last.held) : 0}
        </span>
        <span className="muted">last {Math.round(span / 1000)} s</span>
      </figcaption>
    </figure>
  );
}
