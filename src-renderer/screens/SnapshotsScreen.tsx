/** Snapshots & restore: the snapshots in a vault; verify, export, and the restore wizard. */
import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { Snapshot } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { CopyButton } from '../components/CopyButton';
import { FieldError } from '../components/ErrorNotice';
import { VaultError } from '../components/VaultUnlock';
import { Badge, Card, EmptyState, Loading, PageHeader } from '../components/Layout';
import { formatDate, formatSize } from '../components/format';
import { policyName } from '../components/policies';
import { usePreferences } from '../live/preferences';
import { useVaultPassphrases } from '../live/vault-passphrases';
import { backupListQuery } from '../queries/backups';
import { engineInfoQuery } from '../queries/engine';
import { snapshotListQuery, useExportSnapshot, useVerifySnapshot } from '../queries/snapshots';
import { RestoreWizard } from './RestoreWizard';

export function SnapshotsScreen() {
  const api = useApi();
  const prefs = usePreferences();
  const info = useQuery(engineInfoQuery(api));
  const backups = useQuery(backupListQuery(api));
  const [vaultText, setVaultText] = useState<string | null>(null);
  const defaultVault = prefs.vault || info.data?.defaultVault || '';
  const vault = (vaultText ?? defaultVault).trim();
  const known = [...new Set([defaultVault, ...(backups.data ?? []).map((b) => b.vault)].filter(Boolean))];
  const passphrases = useVaultPassphrases();
  const snapshots = useQuery({ ...snapshotListQuery(api, vault, passphrases), enabled: info.isSuccess || vaultText !== null });
  const [restoring, setRestoring] = useState<Snapshot | null>(null);

  return (
    <>
      <PageHeader title="Snapshots & restore" subtitle="Every snapshot in a vault is a complete image of its volume at the moment its backup began." />
      <Card title="Vault">
        <div className="form-row">
          <div className="field grow">
            <label htmlFor="snapshot-vault">Vault folder</label>
            <input id="snapshot-vault" className="mono" list="known-vaults" value={vaultText ?? defaultVault} onChange={(e) => setVaultText(e.target.value)} />
            <datalist id="known-vaults">
              {known.map((v) => (
                <option key={v} value={v} />
              ))}
            </datalist>
          </div>
        </div>
      </Card>
      <Card title="Snapshots">
        {snapshots.isPending && snapshots.fetchStatus !== 'idle' && <Loading what="snapshots" />}
        <VaultError
          error={snapshots.error}
          title="Could not read the vault"
          vault={vault}
          action="list its snapshots"
          retry={() => void snapshots.refetch()}
        />
        {snapshots.data && snapshots.data.length === 0 && <EmptyState>This vault has no snapshots yet. Start one from Backup.</EmptyState>}
        {snapshots.data && snapshots.data.length > 0 && (
          <table className="table snapshots-table">
            <thead>
              <tr>
                <th scope="col">Volume</th>
                <th scope="col">Taken</th>
                <th scope="col" className="num">Size</th>
                <th scope="col">Consistency</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {snapshots.data.map((s) => (
                <SnapshotRow key={s.id} snapshot={s} vault={vault} onRestore={() => setRestoring(s)} />
              ))}
            </tbody>
          </table>
        )}
      </Card>
      {restoring && <RestoreWizard snapshot={restoring} vault={vault} onClose={() => setRestoring(null)} />}
    </>
  );
}

/**
 * The whole id, never cut: ids are `YYYYMMDDTHHMMSSZ-xxxxxx` and snapshots taken minutes apart
 * differ only at the end. Selectable in one click, copyable, and in a tooltip.
 */
function SnapshotId({ id }: { id: string }) {
  return (
    <div className="snapshot-id">
      <code className="muted" title={id}>
        {id}
      </code>
      <CopyButton text={id} label={`Copy snapshot id ${id}`} compact />
    </div>
  );
}

function SnapshotRow({ snapshot: s, vault, onRestore }: { snapshot: Snapshot; vault: string; onRestore: () => void }) {
  const verify = useVerifySnapshot();
  const [exporting, setExporting] = useState(false);
  return (
    <>
      <tr>
        <td>
          <span className="mono strong">{s.volume}</span>
          <SnapshotId id={s.id} />
        </td>
        <td className="nowrap">
          {formatDate(s.createdAt)}
          <div className="muted small">{s.kind === 'incremental' ? 'Incremental' : 'Full'}</div>
        </td>
        <td className="num">
          {formatSize(s.size)}
          <div className="muted small">{formatSize(s.storedBytes)} stored</div>
        </td>
        <td>
          {s.policy === 'metadata' ? <Badge tone="warn">Metadata-consistent</Badge> : <Badge tone="ok">Exact</Badge>}
          <div className="muted small">{policyName(s.policy)} policy</div>
        </td>
        <td className="actions">
          <button type="button" className="btn btn-small" disabled={verify.isPending} onClick={() => verify.mutate({ id: s.id, ...(vault ? { vault } : {}) })} aria-label={`Verify snapshot ${s.id}`}>
            {verify.isPending ? 'Verifying…' : 'Verify'}
          </button>
          <button type="button" className="btn btn-small" onClick={() => setExporting((x) => !x)} aria-expanded={exporting} aria-label={`Export snapshot ${s.id}`}>
            Export…
          </button>
          <button type="button" className="btn btn-small btn-primary" onClick={onRestore} aria-label={`Restore snapshot ${s.id}`}>
            Restore…
          </button>
        </td>
      </tr>
      {(verify.data || verify.error || exporting) && (
        <tr className="row-detail">
          <td colSpan={5}>
            {verify.data &&
              (verify.data.ok ? (
                <p className="notice notice-ok" role="status">
                  Verified: all {verify.data.chunks} chunks decode and match their digests.
                </p>
              ) : (
                <div className="notice notice-error" role="alert">
                  <p className="notice-message">
                    {verify.data.bad.length} of {verify.data.chunks} chunks are damaged or missing. Restoring this snapshot would give wrong data.
                  </p>
                  <p className="notice-code mono">{verify.data.bad.slice(0, 5).join(', ')}</p>
                </div>
              ))}
            <VaultError
              error={verify.error}
              title="Verification could not run"
              vault={vault}
              action="verify"
              retry={() => verify.variables && verify.mutate(verify.variables)}
            />
            {exporting && <ExportForm snapshot={s} vault={vault} />}
          </td>
        </tr>
      )}
    </>
  );
}

function ExportForm({ snapshot, vault }: { snapshot: Snapshot; vault: string }) {
  const exp = useExportSnapshot();
  const [format, setFormat] = useState<'raw' | 'vhd' | 'qcow2'>('raw');
  const [path, setPath] = useState('');
  const [error, setError] = useState<string | null>(null);
  const id = `export-${snapshot.id}`;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!path.trim()) return setError('Enter where to write the exported image.');
    setError(null);
    exp.mutate({ id: snapshot.id, format, path: path.trim(), ...(vault ? { vault } : {}) });
  };
  return (
    <form className="inline-form" onSubmit={submit} noValidate>
      <label htmlFor={`${id}-format`}>Format</label>
      <select id={`${id}-format`} value={format} onChange={(e) => setFormat(e.target.value as 'raw' | 'vhd' | 'qcow2')}>
        <option value="raw">Raw image (.img)</option>
        <option value="vhd">VHD, fixed (Windows mounts it)</option>
        <option value="qcow2">qcow2, sparse (QEMU/KVM, Proxmox)</option>
      </select>
      <label htmlFor={`${id}-path`}>Save to</label>
      <input id={`${id}-path`} className="mono grow" value={path} onChange={(e) => setPath(e.target.value)} placeholder={`/srv/export/${snapshot.volume}.${format === 'raw' ? 'img' : format}`} />
      <button type="submit" className="btn btn-small btn-primary" disabled={exp.isPending}>
        {exp.isPending ? 'Exporting…' : 'Export'}
      </button>
      <FieldError id={`${id}-error`} message={error} />
      <VaultError
        error={exp.error}
        title="The export failed"
        vault={vault}
        action="export"
        retry={() => exp.variables && exp.mutate(exp.variables)}
      />
      {exp.data && (
        <p className="notice notice-ok" role="status">
          Exported {formatSize(exp.data.bytes)} to <span className="mono">{exp.data.path}</span>.
        </p>
      )}
    </form>
  );
}
