/**
 * The one passphrase prompt for encrypted vaults, shown where a vault request failed with
 * VAULT_LOCKED (Backup, the Snapshots list, verify, export, the restore wizard). It says whether
 * the vault needs its passphrase or the one given was wrong, and hands the new passphrase to
 * `onUnlock`, which remembers it for this window and retries the same request. Not a <form>: it
 * often sits inside the form whose request failed (export), and forms must not nest — Enter in
 * the field unlocks, and never submits the outer form.
 */
import { useId, useState, type KeyboardEvent } from 'react';
import { isVaultLocked, useVaultPassphrases } from '../live/vault-passphrases';
import { ErrorNotice, FieldError } from './ErrorNotice';

export function VaultUnlock({ vault, rejected, action, onUnlock }: { vault: string; rejected: boolean; action: string; onUnlock: (passphrase: string) => void }) {
  const id = useId();
  const [passphrase, setPassphrase] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = () => {
    if (!passphrase) return setError('Enter the passphrase of this vault.');
    setError(null);
    setPassphrase('');
    onUnlock(passphrase);
  };
  return (
    <div className="vault-fix inline-form" role="group" aria-label="Unlock the vault">
      {rejected ? (
        <p className="field-error" role="alert">
          Wrong passphrase: it does not open the encrypted vault in <code>{vault || 'the default vault'}</code>. Check it (capitals, spaces) and try again.
        </p>
      ) : (
        <p>
          The vault in <code>{vault || 'the default vault'}</code> is encrypted. Enter its passphrase to {action}.
        </p>
      )}
      <label htmlFor={`${id}-passphrase`}>Vault passphrase</label>
      <input
        id={`${id}-passphrase`}
        type="password"
        autoComplete="current-password"
        value={passphrase}
        onChange={(e) => setPassphrase(e.target.value)}
        onKeyDown={(e: KeyboardEvent) => {
          if (e.key !== 'Enter') return;
          e.preventDefault();
          submit();
        }}
        aria-invalid={!!error || rejected}
        aria-describedby={error ? `${id}-error` : undefined}
      />
      <button type="button" className="btn btn-primary" onClick={submit}>
        Unlock and {action}
      </button>
      <FieldError id={`${id}-error`} message={error} />
    </div>
  );
}

/**
 * A vault request's failure: the passphrase prompt when the vault is locked, otherwise the
 * engine's message. `rejected`: the passphrase last tried for this vault was wrong.
 */
/**
 * A failed vault request's error: the passphrase prompt when the vault is locked (the passphrase
 * is remembered for this window, then `retry` repeats the request), else the error itself.
 */
export function VaultError({ error, title, vault, action, retry }: { error: unknown; title: string; vault: string; action: string; retry: () => void }) {
  const passphrases = useVaultPassphrases();
  if (!error) return null;
  if (isVaultLocked(error))
    return (
      <VaultUnlock
        vault={vault}
        rejected={passphrases.rejected(vault)}
        action={action}
        onUnlock={(passphrase) => {
          passphrases.set(vault, passphrase);
          retry();
        }}
      />
    );
  return <ErrorNotice error={error} title={title} />;
}
