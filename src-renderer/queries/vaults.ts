/** Vault commands: creating a vault in a folder. A new vault changes what the snapshot lists show. */
import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { OpInput } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { snapshotKeys } from './snapshots';

export function useInitVault() {
  const api = useApi();
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: OpInput<'vault.init'>) => api['vault.init'](input),
    onSuccess: () => qc.invalidateQueries({ queryKey: snapshotKeys.all }),
  });
}
