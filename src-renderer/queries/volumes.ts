/** Logical volumes and their create/grow/delete commands. Devices' free space follows volumes. */
import { queryOptions, useMutation, useQueryClient, type QueryClient } from '@tanstack/react-query';
import type { Api, EventPayload, OpInput, VolumeWriteRate } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { deviceKeys } from './devices';
import { holdKeys } from './holds';

export const volumeKeys = { all: ['volumes'] as const, list: () => [...volumeKeys.all, 'list'] as const };

export const volumeListQuery = (api: Api) => queryOptions({ queryKey: volumeKeys.list(), queryFn: () => api['volume.list']({}) });

/**
 * Live write rates by volume name. Only `volumes.stats` events (about once a second while a
 * volume writes) fill it; the query never fetches — no entry means idle. Its own key, so the
 * frequent volume-list invalidations do not blank it.
 */
export const volumeRateKeys = { all: ['volumeRates'] as const };
export const volumeRatesQuery = () =>
  queryOptions<Record<string, VolumeWriteRate>>({ queryKey: volumeRateKeys.all, queryFn: () => ({}), initialData: {}, staleTime: Infinity });

export function applyVolumeStats(qc: QueryClient, stats: EventPayload<'volumes.stats'>): void {
  qc.setQueryData(volumeRateKeys.all, Object.fromEntries(stats.volumes.map((r) => [r.volume, r])));
}

function useVolumeMutation<N extends 'volume.create' | 'volume.grow' | 'volume.delete' | 'volume.rename'>(op: N) {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<N>) => (api[op] as (i: OpInput<N>) => Promise<unknown>)(input),
    onSuccess: () =>
      Promise.all([
        qc.invalidateQueries({ queryKey: volumeKeys.all }),
        qc.invalidateQueries({ queryKey: deviceKeys.all }),
        qc.invalidateQueries({ queryKey: holdKeys.all }),
      ]),
  });
}

export const useCreateVolume = () => useVolumeMutation('volume.create');
export const useGrowVolume = () => useVolumeMutation('volume.grow');
export const useDeleteVolume = () => useVolumeMutation('volume.delete');
