/**
 * Snapshots per vault, and the commands that read them: verify, export, restore. Every vault
 * request goes with the vault's passphrase when this window knows it (live/vault-passphrases.ts),
 * so an encrypted vault is unlocked once and then listed, verified, exported and restored.
 */
import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import type { Api, OpInput, OpOutput } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { useVaultPassphrases, withVaultPassphrase, type VaultPassphrases } from '../live/vault-passphrases';
import { deviceKeys } from './devices';
import { volumeKeys } from './volumes';

export const snapshotKeys = {
  all: ['snapshots'] as const,
  list: (vault: string) => [...snapshotKeys.all, 'list', vault] as const,
};

export const snapshotListQuery = (api: Api, vault: string, passphrases?: VaultPassphrases) =>
  queryOptions({
    queryKey: snapshotKeys.list(vault),
    queryFn: () => {
      const input: OpInput<'snapshot.list'> = vault ? { vault } : {};
      return passphrases ? withVaultPassphrase(passphrases, vault, input, (i) => api['snapshot.list'](i)) : api['snapshot.list'](input);
    },
  });

/** A mutation on a snapshot in a vault; the input's `vault` ('' = default) picks the passphrase. */
function useVaultMutation<N extends 'snapshot.verify' | 'snapshot.export' | 'restore.start'>(op: N, onSuccess?: () => Promise<unknown>) {
  const api = useApi();
  const passphrases = useVaultPassphrases();
  return useMutation({
    mutationFn: (input: OpInput<N>) => withVaultPassphrase(passphrases, input.vault ?? '', input, (i) => (api[op] as unknown as (i: OpInput<N>) => Promise<OpOutput<N>>)(i)),
    onSuccess,
  });
}

export const useVerifySnapshot = () => useVaultMutation('snapshot.verify');
export const useExportSnapshot = () => useVaultMutation('snapshot.export');

export function useRestore() {
  const qc = useQueryClient();
  return useVaultMutation('restore.start', () => Promise.all([qc.invalidateQueries({ queryKey: volumeKeys.all }), qc.invalidateQueries({ queryKey: deviceKeys.all })]));
}
