/** Engine facts (version, data dir, default vault, NBD endpoints): one query, rarely changes. */
import { queryOptions } from '@tanstack/react-query';
import type { Api } from '../../src-shared/contract';

export const engineKeys = { all: ['engine'] as const, info: () => [...engineKeys.all, 'info'] as const };

export const engineInfoQuery = (api: Api) =>
  queryOptions({ queryKey: engineKeys.info(), queryFn: () => api['engine.info']({}), staleTime: Infinity });
