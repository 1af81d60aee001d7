/**
 * Backups (running and past) and their live progress. `backup.progress` events write both the
 * backup row and its rate figures (MB/s, ETA, dedup) into the cache; start/abort invalidate.
 */
import { queryOptions, useMutation, useQueryClient, type QueryClient } from '@tanstack/react-query';
import type { Api, Backup, EventPayload, OpInput } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { holdKeys } from './holds';
import { volumeKeys } from './volumes';

export type BackupProgress = EventPayload<'backup.progress'>;

export const backupKeys = {
  all: ['backups'] as const,
  list: () => [...backupKeys.all, 'list'] as const,
  progress: (id: string) => [...backupKeys.all, 'progress', id] as const,
};

export const backupListQuery = (api: Api) => queryOptions({ queryKey: backupKeys.list(), queryFn: () => api['backup.list']({}) });

/** Rate figures exist only from events; the query never fetches. */
export const backupProgressQuery = (id: string) =>
  queryOptions<BackupProgress | null>({ queryKey: backupKeys.progress(id), queryFn: () => null, staleTime: Infinity, gcTime: 10 * 60_000 });

export function applyBackupProgress(qc: QueryClient, p: BackupProgress): void {
  qc.setQueryData(backupKeys.progress(p.id), p);
  const { mbPerSec: _r, etaSec: _e, dedupRatio: _d, ...row } = p;
  let known = false;
  qc.setQueryData<Backup[]>(backupKeys.list(), (old) => {
    if (!old) return old;
    const next = old.map((b) => (b.id === row.id ? ((known = true), row) : b));
    return known ? next : [row, ...old];
  });
}

export function useStartBackup() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<'backup.start'>) => api['backup.start'](input),
    onSuccess: () =>
      Promise.all([qc.invalidateQueries({ queryKey: backupKeys.all }), qc.invalidateQueries({ queryKey: volumeKeys.all }), qc.invalidateQueries({ queryKey: holdKeys.all })]),
  });
}

export function useAbortBackup() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<'backup.abort'>) => api['backup.abort'](input),
    onSuccess: () => Promise.all([qc.invalidateQueries({ queryKey: backupKeys.all }), qc.invalidateQueries({ queryKey: volumeKeys.all })]),
  });
}
