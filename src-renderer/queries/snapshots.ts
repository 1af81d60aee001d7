/** Snapshots per vault, and the commands that read them: verify, export, restore. */
import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import type { Api, OpInput } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { deviceKeys } from './devices';
import { volumeKeys } from './volumes';

export const snapshotKeys = {
  all: ['snapshots'] as const,
  list: (vault: string) => [...snapshotKeys.all, 'list', vault] as const,
};

export const snapshotListQuery = (api: Api, vault: string) =>
  queryOptions({ queryKey: snapshotKeys.list(vault), queryFn: () => api['snapshot.list'](vault ? { vault } : {}) });

export function useVerifySnapshot() {
  const api = useApi();
  return useMutation({ mutationFn: (input: OpInput<'snapshot.verify'>) => api['snapshot.verify'](input) });
}

export function useExportSnapshot() {
  const api = useApi();
  return useMutation({ mutationFn: (input: OpInput<'snapshot.export'>) => api['snapshot.export'](input) });
}

export function useRestore() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<'restore.start'>) => api['restore.start'](input),
    onSuccess: () => Promise.all([qc.invalidateQueries({ queryKey: volumeKeys.all }), qc.invalidateQueries({ queryKey: deviceKeys.all })]),
  });
}
