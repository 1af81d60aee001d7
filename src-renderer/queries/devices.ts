/** Devices (image files, adopted images, block devices) and their add/remove commands. */
import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import type { Api, OpInput } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { driveKeys } from './drives';

export const deviceKeys = { all: ['devices'] as const, list: () => [...deviceKeys.all, 'list'] as const };

export const deviceListQuery = (api: Api) => queryOptions({ queryKey: deviceKeys.list(), queryFn: () => api['device.list']({}) });

export function useAddDevice() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<'device.add'>) => api['device.add'](input),
    onSuccess: () => Promise.all([qc.invalidateQueries({ queryKey: deviceKeys.all }), qc.invalidateQueries({ queryKey: driveKeys.all })]),
  });
}

export function useRemoveDevice() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<'device.remove'>) => api['device.remove'](input),
    onSuccess: () => qc.invalidateQueries({ queryKey: deviceKeys.all }),
  });
}
