/**
 * Hold queue — the heart of Holdfast: per volume, what is held right now (count, bytes, oldest
 * age), the journal it is held in, a live timeline of queued vs released writes and, when the
 * engine sends one, a block map. Data arrives from `holds.changed` events; nothing polls.
 */
import { useEffect, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useApi } from '../api/client-context';
import { BlockMap } from '../components/BlockMap';
import { ErrorNotice } from '../components/ErrorNotice';
import { HoldTimelineChart } from '../components/HoldTimelineChart';
import { Badge, Card, EmptyState, Loading, PageHeader, ProgressBar } from '../components/Layout';
import { formatAge, formatCount, formatSize, percent } from '../components/format';
import { POLICIES, policyName } from '../components/policies';
import { useTimelineVersion } from '../live/live-context';
import { holdListQuery } from '../queries/holds';

export function HoldQueueScreen() {
  const api = useApi();
  const holds = useQuery(holdListQuery(api));
  return (
    <>
      <PageHeader
        title="Hold queue"
        subtitle="While a backup runs, writes it must not see yet wait in the journal, in arrival order, and are released when the backup no longer needs the old data. Other volumes keep flowing."
      />
      {holds.isPending && <Loading what="hold queues" />}
      <ErrorNotice error={holds.error} title="Could not read the hold queues" />
      {holds.data && holds.data.length === 0 && (
        <Card>
          <EmptyState>No volumes yet. Create a volume, then start a backup to see writes queue and release here.</EmptyState>
        </Card>
      )}
      {holds.data?.map((h) => <HoldQueuePanel key={h.volume} volume={h.volume} />)}
    </>
  );
}

/**
 * One volume's panel. Reads the latest HoldState from the query cache and the timeline in the
 * same render (events.ts writes both in one flush), so every number on the panel — stat cards,
 * chart legend, the chart's last point — is that one state; nothing is taken from a sample.
 */
export function HoldQueuePanel({ volume }: { volume: string }) {
  const api = useApi();
  // Reads the list the screen fetched (enabled: false = this observer never fetches on its own).
  const { data: h } = useQuery({ ...holdListQuery(api), select: (list) => list.find((x) => x.volume === volume), enabled: false });
  const timeline = useTimelineVersion();
  useSecondTick(!!h && (h.backupFlag || h.heldCount > 0)); // moves the time axis, fetches nothing
  if (!h) return null;
  const samples = timeline.samples(volume);
  const now = Date.now();
  const policy = POLICIES.find((p) => p.id === h.policy);
  const idle = !h.backupFlag && h.heldCount === 0 && h.queuedTotal === 0 && !samples.some((x) => x.queued > 0);
  return (
    <Card
      className={`hold-panel ${h.backupFlag ? 'hold-active' : ''}`}
      title={<span className="mono">{h.volume}</span>}
      actions={h.backupFlag ? <Badge tone="info">Backup running · {policyName(h.policy)} policy</Badge> : <Badge tone="muted">No backup · writes flow through</Badge>}
    >
      <dl className="stats stats-large" aria-label={`Hold queue of ${h.volume}`}>
        <div>
          <dt>Held writes</dt>
          <dd data-testid={`held-count-${h.volume}`}>{formatCount(h.heldCount)}</dd>
        </div>
        <div>
          <dt>Held bytes</dt>
          <dd>{formatSize(h.heldBytes)}</dd>
        </div>
        <div>
          <dt>Oldest held</dt>
          <dd>{formatAge(h.oldestHeldAgeMs)}</dd>
        </div>
        <div>
          <dt>Queued / released</dt>
          <dd>
            {formatCount(h.queuedTotal)} / {formatCount(h.releasedTotal)}
          </dd>
        </div>
      </dl>
      {policy && h.backupFlag && <p className="muted small">{policy.held}</p>}
      <div className={idle ? 'hold-grid hold-grid-idle' : 'hold-grid'}>
        {idle ? (
          <p className="muted small">Nothing has been held on this volume since the engine started. The timeline appears when a backup holds writes.</p>
        ) : (
          <HoldTimelineChart state={h} samples={samples} now={now} windowMs={timeline.windowMs} />
        )}
        <div className="hold-side">
          <div className="meter">
            <div className="meter-head">
              <span>Journal</span>
              <span className="muted">
                {formatSize(h.journalBytes)} of {formatSize(h.journalCapacity)}
              </span>
            </div>
            <ProgressBar value={h.journalBytes} max={h.journalCapacity} label={`Journal use for ${h.volume}`} />
            {percent(h.journalBytes, h.journalCapacity) > 90 && <p className="small warn-text">The journal is nearly full: new writes will wait until held writes are released.</p>}
          </div>
          {h.backupFlag && h.policy === 'range' && (
            <div className="meter">
              <div className="meter-head">
                <span>Copied by the backup</span>
                <span className="muted">{formatSize(h.copiedBytes)}</span>
              </div>
            </div>
          )}
        </div>
      </div>
      {h.blockMap ? <BlockMap map={h.blockMap} volume={h.volume} /> : h.backupFlag && <p className="muted small">The engine does not send a block map for this volume.</p>}
    </Card>
  );
}

function useSecondTick(on: boolean): void {
  const [, tick] = useState(0);
  useEffect(() => {
    if (!on) return;
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [on]);
}
