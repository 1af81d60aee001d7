/**
 * Schedules and their commands. The list changes when the engine says so (`schedules.changed`,
 * `schedule.finished`, and `volumes.changed` for renames and deletions), never by polling;
 * mutations invalidate on success as well, so the screen is right even without live events.
 */
import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import type { Api, OpInput, OpOutput } from '../../src-shared/contract';
import { useApi } from '../api/client-context';

export const scheduleKeys = { all: ['schedules'] as const, list: () => [...scheduleKeys.all, 'list'] as const };

export const scheduleListQuery = (api: Api) => queryOptions({ queryKey: scheduleKeys.list(), queryFn: () => api['schedule.list']({}) });

type ScheduleOp = 'schedule.create' | 'schedule.update' | 'schedule.delete' | 'schedule.runNow';

function useScheduleMutation<N extends ScheduleOp>(op: N) {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<N>) => (api[op] as (i: OpInput<N>) => Promise<OpOutput<N>>)(input),
    onSuccess: () => qc.invalidateQueries({ queryKey: scheduleKeys.all }),
  });
}

export const useCreateSchedule = () => useScheduleMutation('schedule.create');
export const useUpdateSchedule = () => useScheduleMutation('schedule.update');
export const useDeleteSchedule = () => useScheduleMutation('schedule.delete');
export const useRunSchedule = () => useScheduleMutation('schedule.runNow');
