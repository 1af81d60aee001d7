/**
 * The single engine-event subscription. Maps each event to the query cache — setQueryData for
 * data carried by the event, invalidateQueries for "something changed" — so screens stay live
 * without polling. `holds.changed` and `backup.progress` are coalesced per animation frame
 * (latest per volume / backup wins) before touching the cache or the timeline.
 */
import { useEffect } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { events, type EventPayload, type HoldState } from '../../src-shared/contract';
import { useClient } from '../api/client-context';
import { createFrameBatcher } from '../live/frame-batcher';
import { useTimeline } from '../live/live-context';
import { applyBackupProgress, backupKeys, type BackupProgress } from './backups';
import { deviceKeys } from './devices';
import { driveKeys } from './drives';
import { mergeHoldStates } from './holds';
import { pushNotice } from '../live/notices';
import { scheduleKeys } from './schedules';
import { snapshotKeys } from './snapshots';
import { applyVolumeStats, volumeKeys } from './volumes';

export function useEngineEvents(): void {
  const client = useClient();
  const qc = useQueryClient();
  const timeline = useTimeline();

  useEffect(() => {
    const holds = createFrameBatcher<string, HoldState>((batch) => {
      mergeHoldStates(qc, batch.values());
      timeline.record(batch.values());
    });
    const progress = createFrameBatcher<string, BackupProgress>((batch) => {
      for (const p of batch.values()) {
        applyBackupProgress(qc, p);
        if (p.state !== 'running') {
          noticeBackupEnded(p);
          void qc.invalidateQueries({ queryKey: backupKeys.list() });
          void qc.invalidateQueries({ queryKey: volumeKeys.all });
          void qc.invalidateQueries({ queryKey: snapshotKeys.all });
        }
      }
    });

    const offEvent = client.onEvent((m) => {
      switch (m.event) {
        case 'holds.changed':
          holds.push(m.payload.volume, m.payload);
          break;
        case 'backup.progress':
          progress.push(m.payload.id, m.payload as EventPayload<'backup.progress'>);
          break;
        case 'volumes.stats': {
          const stats = events['volumes.stats'].safeParse(m.payload);
          if (stats.success) applyVolumeStats(qc, stats.data);
          break;
        }
        case 'volumes.changed':
          void qc.invalidateQueries({ queryKey: volumeKeys.all });
          void qc.invalidateQueries({ queryKey: scheduleKeys.all }); // a renamed or deleted volume changes its schedules
          break;
        case 'devices.changed':
          void qc.invalidateQueries({ queryKey: deviceKeys.all });
          void qc.invalidateQueries({ queryKey: driveKeys.all });
          break;
        case 'schedules.changed':
          void qc.invalidateQueries({ queryKey: scheduleKeys.all });
          break;
        case 'schedule.finished': {
          void qc.invalidateQueries({ queryKey: scheduleKeys.all });
          // A run that became a backup is announced by its backup.progress; these never got that far.
          const { run, target } = m.payload;
          if (run.backupId === null && run.status !== 'completed')
            pushNotice({ key: `schedule:${m.payload.scheduleId}:${run.startedAt}`, tone: run.status === 'skipped' ? 'warn' : 'error', title: `Scheduled backup of ${target} ${run.status === 'skipped' ? 'skipped' : 'failed'}`, body: run.error ?? '' });
          break;
        }
        case 'snapshots.changed':
          void qc.invalidateQueries({ queryKey: snapshotKeys.all });
          break;
      }
    });
    // After a dropped live channel, events were missed: refetch what is on screen once.
    let wasDown = false;
    const offConn = client.onConnectionChange?.((s) => {
      if (s === 'disconnected') wasDown = true;
      if (s === 'connected' && wasDown) {
        wasDown = false;
        void qc.invalidateQueries();
      }
    });
    return () => {
      offEvent();
      offConn?.();
      holds.dispose();
      progress.dispose();
    };
  }, [client, qc, timeline]);
}

/** A backup (started by hand, by a schedule, or a drive image) ended: say so wherever the person is looking. */
function noticeBackupEnded(p: BackupProgress): void {
  const key = `backup:${p.id}`;
  if (p.state === 'completed') pushNotice({ key, tone: 'ok', title: `Backup of ${p.volume} finished`, body: p.snapshotId ? `Snapshot ${p.snapshotId} is in ${p.vault}.` : '' });
  else if (p.state === 'failed') pushNotice({ key, tone: 'error', title: `Backup of ${p.volume} failed`, body: p.error ?? '' });
  else if (p.state === 'aborted') pushNotice({ key, tone: 'warn', title: `Backup of ${p.volume} cancelled`, body: p.error ?? '' });
}
