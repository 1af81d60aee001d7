/**
 * Hold-queue state per volume. Fetched once; afterwards `holds.changed` events replace entries
 * in the cached list (see queries/events.ts) — the list is never polled.
 */
import { queryOptions, type QueryClient } from '@tanstack/react-query';
import type { Api, HoldState } from '../../src-shared/contract';

export const holdKeys = { all: ['holds'] as const, list: () => [...holdKeys.all, 'list'] as const };

export const holdListQuery = (api: Api) => queryOptions({ queryKey: holdKeys.list(), queryFn: () => api['holds.get']({}) });

/** Merges fresh states (by volume) into the cached list, keeping order; new volumes append. */
export function mergeHoldStates(qc: QueryClient, fresh: Iterable<HoldState>): void {
  qc.setQueryData<HoldState[]>(holdKeys.list(), (old) => {
    const byVolume = new Map((old ?? []).map((h) => [h.volume, h] as const));
    for (const h of fresh) byVolume.set(h.volume, h);
    return [...byVolume.values()];
  });
}
