/** Backup: pick volume, vault and hold policy; start; watch progress (MB/s, ETA, dedup); cancel. */
import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { Backup, HoldPolicy, OpInput } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { toHoldfastError } from '../api/transport';
import { ErrorNotice, FieldError } from '../components/ErrorNotice';
import { VaultUnlock } from '../components/VaultUnlock';
import { Badge, Card, EmptyState, Loading, PageHeader, ProgressBar } from '../components/Layout';
import { formatDate, formatDuration, formatRate, formatSize, formatWhen, percent } from '../components/format';
import { POLICIES, policyName } from '../components/policies';
import { usePreferences } from '../live/preferences';
import { isVaultLocked, useVaultPassphrases } from '../live/vault-passphrases';
import { backupListQuery, backupProgressQuery, useAbortBackup, useStartBackup } from '../queries/backups';
import { engineInfoQuery } from '../queries/engine';
import { useInitVault } from '../queries/vaults';
import { volumeListQuery } from '../queries/volumes';

export function BackupScreen() {
  const api = useApi();
  const backups = useQuery(backupListQuery(api));
  const running = (backups.data ?? []).filter((b) => b.state === 'running');
  const past = (backups.data ?? []).filter((b) => b.state !== 'running');
  return (
    <>
      <PageHeader title="Backup" subtitle="Take a point-in-time snapshot of a live volume into a vault. Writers keep going while it runs." />
      <StartBackupForm />
      <ErrorNotice error={backups.error} title="Could not list backups" />
      {running.map((b) => (
        <BackupProgressCard key={b.id} backup={b} />
      ))}
      <Card title="Recent backups">
        {backups.isPending && <Loading what="backups" />}
        {backups.data && past.length === 0 && <EmptyState>No finished backups yet.</EmptyState>}
        {past.length > 0 && <BackupHistory backups={past} />}
      </Card>
    </>
  );
}

/**
 * The start form. The engine's default vault is never named in the request (the engine picks and,
 * on first use, creates it). When the engine answers for the folder the user named — no vault
 * there (VAULT_MISSING) or an encrypted vault that needs its passphrase (VAULT_LOCKED) — the form
 * offers the fix in place and retries the same request. A passphrase that opened a vault is
 * remembered for this window (live/vault-passphrases.ts), shared with the Snapshots screen.
 */
export function StartBackupForm() {
  const api = useApi();
  const prefs = usePreferences();
  const volumes = useQuery(volumeListQuery(api));
  const info = useQuery(engineInfoQuery(api));
  const start = useStartBackup();
  const initVault = useInitVault();
  const passphrases = useVaultPassphrases();
  const [volume, setVolume] = useState('');
  const [vault, setVault] = useState<string | null>(null);
  const [policy, setPolicy] = useState<HoldPolicy>('range');
  const [full, setFull] = useState(false);
  const [fullSpeed, setFullSpeed] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const defaultVault = info.data?.defaultVault ?? '';
  const vaultValue = vault ?? (prefs.vault || defaultVault);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!volume) return setError('Choose the volume to back up.');
    const chosen = vaultValue.trim();
    if (!chosen) return setError('Choose a vault folder.');
    setError(null);
    initVault.reset();
    const known = passphrases.get(chosen);
    send({ volume, ...(chosen === defaultVault ? {} : { vault: chosen }), policy, ...(full ? { full: true } : {}), ...(fullSpeed ? { throttle: 'off' as const } : {}), ...(known ? { passphrase: known } : {}) });
  };
  const send = (input: OpInput<'backup.start'>) => {
    const key = input.vault ?? defaultVault;
    start.mutate(input, {
      onSuccess: () => {
        if (input.passphrase !== undefined) passphrases.set(key, input.passphrase);
      },
      onError: (e) => {
        if (input.passphrase !== undefined && isVaultLocked(e)) passphrases.reject(key, input.passphrase);
      },
    });
  };
  const retry = (extra: { passphrase?: string } = {}) => {
    if (start.variables) send({ ...start.variables, ...extra });
  };
  const failure = start.error ? toHoldfastError(start.error) : null;
  const attemptedVault = start.variables?.vault ?? defaultVault;

  const busy = new Set((volumes.data ?? []).filter((v) => v.backup).map((v) => v.name));
  return (
    <Card title="New backup">
      <form className="form" onSubmit={submit} noValidate>
        <div className="form-row">
          <div className="field">
            <label htmlFor="backup-volume">Volume</label>
            <select id="backup-volume" value={volume} onChange={(e) => setVolume(e.target.value)} aria-describedby={error ? 'backup-error' : undefined}>
              <option value="">Choose a volume…</option>
              {volumes.data?.map((v) => (
                <option key={v.id} value={v.name} disabled={busy.has(v.name)}>
                  {v.name} ({formatSize(v.size)}){busy.has(v.name) ? ' — backing up' : ''}
                </option>
              ))}
            </select>
          </div>
          <div className="field grow">
            <label htmlFor="backup-vault">Vault folder</label>
            <input id="backup-vault" className="mono" value={vaultValue} onChange={(e) => setVault(e.target.value)} placeholder="/media/backup/holdfast-vault" />
          </div>
        </div>
        <fieldset className="policy-picker">
          <legend>What waits while the backup runs</legend>
          {POLICIES.map((p) => (
            <label key={p.id} className={`policy-option ${policy === p.id ? 'selected' : ''}`}>
              <input type="radio" name="policy" value={p.id} checked={policy === p.id} onChange={() => setPolicy(p.id)} />
              <span className="policy-name">{p.name}</span>
              <span className="policy-held">{p.held}</span>
              <span className="policy-guarantee">{p.guarantee}</span>
            </label>
          ))}
        </fieldset>
        <div className="form-row form-row-end">
          <div className="check-stack">
            <label className="check">
              <input type="checkbox" checked={full} onChange={(e) => setFull(e.target.checked)} /> Full backup (read every block, even if an earlier snapshot exists)
            </label>
            <label className="check">
              <input type="checkbox" checked={fullSpeed} onChange={(e) => setFullSpeed(e.target.checked)} /> Full speed (don't slow down while volumes are being written)
            </label>
          </div>
          <button type="submit" className="btn btn-primary btn-large" disabled={start.isPending || initVault.isPending}>
            {start.isPending ? 'Starting…' : 'Start backup'}
          </button>
        </div>
        <FieldError id="backup-error" message={error} />
        <ErrorNotice error={volumes.error} title="Could not list volumes" />
      </form>
      {failure?.code !== 'VAULT_LOCKED' && <ErrorNotice error={start.error} title="The backup did not start" />}
      {failure?.code === 'VAULT_MISSING' && attemptedVault && (
        <CreateVaultOffer dir={attemptedVault} pending={initVault.isPending} onCreate={() => initVault.mutate({ dir: attemptedVault }, { onSuccess: () => retry() })} />
      )}
      <ErrorNotice error={initVault.error} title="The vault was not created" />
      {failure?.code === 'VAULT_LOCKED' && (
        <VaultUnlock vault={attemptedVault} rejected={passphrases.rejected(attemptedVault)} action="start the backup" onUnlock={(passphrase) => retry({ passphrase })} />
      )}
    </Card>
  );
}

function CreateVaultOffer({ dir, pending, onCreate }: { dir: string; pending: boolean; onCreate: () => void }) {
  return (
    <div className="vault-fix" role="group" aria-label="Create a vault">
      <p>
        There is no vault in <code>{dir}</code>. Create a new, empty vault in that folder and start this backup into it?
      </p>
      <button type="button" className="btn btn-primary" disabled={pending} onClick={onCreate}>
        {pending ? 'Creating vault…' : 'Create vault here'}
      </button>
    </div>
  );
}

export function BackupProgressCard({ backup }: { backup: Backup }) {
  const progress = useQuery(backupProgressQuery(backup.id));
  const abort = useAbortBackup();
  const p = progress.data;
  const pct = percent(backup.bytesDone, backup.bytesTotal);
  return (
    <Card
      className="backup-running"
      title={
        <>
          Backing up <span className="mono">{backup.volume}</span>
        </>
      }
      actions={
        <button type="button" className="btn btn-danger-quiet" disabled={abort.isPending} onClick={() => abort.mutate({ id: backup.id })}>
          {abort.isPending ? 'Cancelling…' : 'Cancel backup'}
        </button>
      }
    >
      <div className="progress-head">
        <span className="big-number">{pct.toFixed(0)}%</span>
        <span className="muted">
          {formatSize(backup.bytesDone)} of {formatSize(backup.bytesTotal)} · {policyName(backup.policy)} policy · {p ? p.kind : 'full or incremental…'} · into <span className="mono">{backup.vault}</span>
        </span>
      </div>
      <ProgressBar value={backup.bytesDone} max={backup.bytesTotal} label={`Backup of ${backup.volume}`} />
      <dl className="stats">
        <div>
          <dt>Speed</dt>
          <dd>{p ? formatRate(p.mbPerSec) : '—'}</dd>
        </div>
        <div>
          <dt>Time left</dt>
          <dd>{p && p.etaSec !== null ? formatDuration(p.etaSec) : '—'}</dd>
        </div>
        <div>
          <dt>Dedup</dt>
          <dd>{p && p.dedupRatio !== null ? `${p.dedupRatio.toFixed(2)}×` : '—'}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{formatWhen(backup.startedAt)}</dd>
        </div>
      </dl>
      {p && p.throttledToMiBPerSec != null && (
        <p className="muted small" data-testid="throttle-note">
          Throttled to {p.throttledToMiBPerSec} MiB/s while volumes are being written, so the programs using them stay responsive. Start a backup at full speed to skip this.
        </p>
      )}
      <ErrorNotice error={abort.error} title="The backup was not cancelled" />
    </Card>
  );
}

const STATE_TONE = { completed: 'ok', failed: 'danger', aborted: 'warn', running: 'info' } as const;

function BackupHistory({ backups }: { backups: Backup[] }) {
  return (
    <table className="table">
      <thead>
        <tr>
          <th scope="col">Volume</th>
          <th scope="col">Result</th>
          <th scope="col">Policy</th>
          <th scope="col">Kind</th>
          <th scope="col" className="num">Read</th>
          <th scope="col">Finished</th>
          <th scope="col">Snapshot</th>
        </tr>
      </thead>
      <tbody>
        {backups.map((b) => (
          <tr key={b.id}>
            <td className="mono">{b.volume}</td>
            <td>
              <Badge tone={STATE_TONE[b.state]}>{b.state}</Badge>
              {b.error && <div className="small error-text">{b.error}</div>}
            </td>
            <td>{policyName(b.policy)}</td>
            <td>{b.kind}</td>
            <td className="num">{formatSize(b.bytesDone)}</td>
            <td className="nowrap">{formatDate(b.endedAt)}</td>
            <td className="mono small">{b.snapshotId ?? '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
