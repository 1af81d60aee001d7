/** Attached drives as the engine discovers them. Refreshed on `devices.changed` and on demand. */
import { queryOptions } from '@tanstack/react-query';
import type { Api } from '../../src-shared/contract';

export const driveKeys = { all: ['drives'] as const, list: () => [...driveKeys.all, 'list'] as const };

export const driveListQuery = (api: Api) => queryOptions({ queryKey: driveKeys.list(), queryFn: () => api['drive.list']({}) });
