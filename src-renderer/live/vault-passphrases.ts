/**
 * Passphrases of encrypted vaults the user unlocked in this window, so the Snapshots list,
 * verify, export, restore and backups into the same vault ask once, not at every click.
 * Invariants: kept only in memory, per query client (one per window) — never in storage, never
 * sent anywhere but the engine request that needs it; a passphrase the engine refused
 * (VAULT_LOCKED in answer to a request that carried it) is forgotten at once and the vault is
 * marked `rejected`, so the prompt can say the passphrase was wrong instead of asking blankly.
 */
import { useSyncExternalStore } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { toHoldfastError } from '../api/transport';

export class VaultPassphrases {
  private readonly known = new Map<string, string>();
  private readonly refused = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private version = 0;

  get(vault: string): string | undefined {
    return this.known.get(vault);
  }

  /** Whether the last passphrase tried for this vault was wrong. */
  rejected(vault: string): boolean {
    return this.refused.has(vault);
  }

  set(vault: string, passphrase: string): void {
    this.known.set(vault, passphrase);
    this.refused.delete(vault);
    this.changed();
  }

  /** The engine refused `passphrase` for this vault: forget it (unless another was set meanwhile). */
  reject(vault: string, passphrase: string): void {
    if (this.known.get(vault) === passphrase) this.known.delete(vault);
    this.refused.add(vault);
    this.changed();
  }

  subscribe = (l: () => void): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  getVersion = (): number => this.version;

  private changed(): void {
    this.version++;
    this.listeners.forEach((l) => l());
  }
}

export const isVaultLocked = (e: unknown): boolean => !!e && toHoldfastError(e).code === 'VAULT_LOCKED';

/**
 * Runs a vault request with the vault's known passphrase (unless the input names one); if the
 * engine answers VAULT_LOCKED to a request that carried a passphrase, that passphrase is wrong.
 */
export async function withVaultPassphrase<I extends { passphrase?: string }, O>(
  ring: VaultPassphrases,
  vault: string,
  input: I,
  call: (input: I) => Promise<O>,
): Promise<O> {
  const known = input.passphrase ?? ring.get(vault);
  const sent = known === undefined ? input : { ...input, passphrase: known };
  try {
    const out = await call(sent);
    if (input.passphrase !== undefined && ring.get(vault) !== input.passphrase) ring.set(vault, input.passphrase);
    return out;
  } catch (e) {
    if (known !== undefined && isVaultLocked(e)) ring.reject(vault, known);
    throw e;
  }
}

const rings = new WeakMap<QueryClient, VaultPassphrases>();

/** This window's passphrases (one set per query client); re-renders when one is set or refused. */
export function useVaultPassphrases(): VaultPassphrases {
  const qc = useQueryClient();
  let ring = rings.get(qc);
  if (!ring) rings.set(qc, (ring = new VaultPassphrases()));
  useSyncExternalStore(ring.subscribe, ring.getVersion);
  return ring;
}
