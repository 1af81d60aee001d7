/**
 * Restore wizard: choose where a snapshot goes (new volume, existing volume, image file, drive),
 * review, and — when existing data will be overwritten — type the target's name to confirm.
 * Invariant: the restore button is disabled until the typed name matches exactly; the engine
 * checks `confirm` again. A modal dialog (focus kept inside, Escape cancels unless restoring);
 * an encrypted vault asks for its passphrase on the confirm step and the restore retries.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { OpInput, Snapshot } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { ErrorNotice, FieldError } from '../components/ErrorNotice';
import { ModalDialog } from '../components/ModalDialog';
import { VaultError } from '../components/VaultUnlock';
import { formatDate, formatSize } from '../components/format';
import { driveListQuery } from '../queries/drives';
import { useRestore } from '../queries/snapshots';
import { volumeListQuery } from '../queries/volumes';
import { checkVolumeName } from './VolumesScreen';

type TargetKind = 'new-volume' | 'volume' | 'file' | 'drive';

export function RestoreWizard({ snapshot, vault, onClose }: { snapshot: Snapshot; vault: string; onClose: () => void }) {
  const api = useApi();
  const volumes = useQuery(volumeListQuery(api));
  const drives = useQuery(driveListQuery(api));
  const restore = useRestore();
  const [step, setStep] = useState<'target' | 'confirm' | 'done'>('target');
  const [kind, setKind] = useState<TargetKind>('new-volume');
  const [newName, setNewName] = useState(`${snapshot.volume}-restored`);
  const [existing, setExisting] = useState('');
  const [file, setFile] = useState('');
  const [drive, setDrive] = useState('');
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<string | null>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);

  useEffect(() => headingRef.current?.focus(), [step]);

  const selectedDrive = drives.data?.find((d) => d.name === drive);
  const target =
    kind === 'new-volume' ? newName.trim() : kind === 'volume' ? existing : kind === 'file' ? file.trim() : (selectedDrive?.name ?? '');
  const overwrites = kind === 'volume' || kind === 'drive';

  const next = (e: FormEvent) => {
    e.preventDefault();
    let err: string | null = null;
    if (kind === 'new-volume') {
      err = checkVolumeName(target);
      if (!err && volumes.data?.some((v) => v.name === target)) err = `A volume named ${target} already exists. Pick another name, or choose "Overwrite an existing volume".`;
    } else if (kind === 'volume' && !target) err = 'Choose the volume to overwrite.';
    else if (kind === 'file' && !target) err = 'Enter the path of the image file to write.';
    else if (kind === 'drive' && !target) err = 'Choose the drive to overwrite.';
    setError(err);
    if (!err) {
      setTyped('');
      setStep('confirm');
    }
  };

  const run = () => {
    const input: OpInput<'restore.start'> = { id: snapshot.id, ...(vault ? { vault } : {}) };
    if (kind === 'new-volume' || kind === 'volume') input.toVolume = target;
    if (kind === 'file') input.toFile = target;
    if (kind === 'drive') input.toDevice = selectedDrive!.path;
    if (overwrites) input.confirm = target;
    restore.mutate(input, { onSuccess: () => setStep('done') });
  };

  const kindLabel: Record<TargetKind, string> = {
    'new-volume': 'a new volume',
    volume: 'an existing volume (overwrite)',
    file: 'an image file',
    drive: 'a drive (overwrite)',
  };

  return (
    <ModalDialog labelledBy="restore-title" onClose={onClose} canClose={!restore.isPending}>
      <div className="dialog-head">
        <h2 id="restore-title" ref={headingRef} tabIndex={-1}>
          Restore {snapshot.volume} from {formatDate(snapshot.createdAt)}
        </h2>
        <ol className="steps" aria-label="Steps">
          <li aria-current={step === 'target' ? 'step' : undefined}>Target</li>
          <li aria-current={step === 'confirm' ? 'step' : undefined}>Confirm</li>
          <li aria-current={step === 'done' ? 'step' : undefined}>Done</li>
        </ol>
      </div>

      {step === 'target' && (
        <form className="form" onSubmit={next} noValidate>
          <fieldset className="target-picker">
            <legend>Restore to</legend>
            {(Object.keys(kindLabel) as TargetKind[]).map((k) => (
              <label key={k} className={`target-option ${kind === k ? 'selected' : ''}`}>
                <input type="radio" name="restore-target" checked={kind === k} onChange={() => (setKind(k), setError(null))} /> {kindLabel[k][0]!.toUpperCase() + kindLabel[k].slice(1)}
              </label>
            ))}
          </fieldset>
          {kind === 'new-volume' && (
            <div className="field">
              <label htmlFor="restore-new-name">New volume name</label>
              <input id="restore-new-name" value={newName} onChange={(e) => setNewName(e.target.value)} />
            </div>
          )}
          {kind === 'volume' && (
            <div className="field">
              <label htmlFor="restore-volume">Volume to overwrite</label>
              <select id="restore-volume" value={existing} onChange={(e) => setExisting(e.target.value)}>
                <option value="">Choose a volume…</option>
                {volumes.data?.map((v) => (
                  <option key={v.id} value={v.name} disabled={v.size < snapshot.size || !!v.backup}>
                    {v.name} ({formatSize(v.size)}){v.size < snapshot.size ? ' — too small' : v.backup ? ' — backing up' : ''}
                  </option>
                ))}
              </select>
              <p className="hint">Its NBD clients are disconnected first.</p>
            </div>
          )}
          {kind === 'file' && (
            <div className="field">
              <label htmlFor="restore-file">Image file path</label>
              <input id="restore-file" className="mono" value={file} onChange={(e) => setFile(e.target.value)} placeholder="/srv/restore/disk.img" />
            </div>
          )}
          {kind === 'drive' && (
            <div className="field">
              <label htmlFor="restore-drive">Drive to overwrite</label>
              <select id="restore-drive" value={drive} onChange={(e) => setDrive(e.target.value)}>
                <option value="">Choose a drive…</option>
                {drives.data?.map((d) => (
                  <option key={d.path} value={d.name} disabled={d.system || d.mounted || d.size < snapshot.size}>
                    {d.name} {d.model ?? ''} ({formatSize(d.size)})
                    {d.system ? ' — system disk, protected' : d.mounted ? ' — mounted' : d.size < snapshot.size ? ' — too small' : ''}
                  </option>
                ))}
              </select>
              <ErrorNotice error={drives.error} title="Could not list drives" />
            </div>
          )}
          <FieldError id="restore-target-error" message={error} />
          <div className="dialog-actions">
            <button type="button" className="btn" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" className="btn btn-primary">
              Next
            </button>
          </div>
        </form>
      )}

      {step === 'confirm' && (
        <div className="form">
          <dl className="summary">
            <dt>Snapshot</dt>
            <dd>
              <span className="mono">{snapshot.id}</span> · {snapshot.volume} · {formatSize(snapshot.size)}
            </dd>
            <dt>Restore to</dt>
            <dd>
              {kindLabel[kind]}: <strong className="mono">{kind === 'drive' ? `${target} (${selectedDrive?.path})` : target}</strong>
            </dd>
          </dl>
          {overwrites ? (
            <div className="danger-zone">
              <p>
                Everything on <strong className="mono">{target}</strong> will be replaced by this snapshot. This cannot be undone.
              </p>
              <label htmlFor="restore-confirm">
                Type <strong className="mono">{target}</strong> to confirm
              </label>
              <input id="restore-confirm" className="mono" value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" spellCheck={false} />
            </div>
          ) : (
            <p>Nothing existing is overwritten.</p>
          )}
          <VaultError
            error={restore.error}
            title="The restore failed"
            vault={vault}
            action="restore"
            retry={run}
          />
          <div className="dialog-actions">
            <button type="button" className="btn" onClick={() => (restore.reset(), setStep('target'))} disabled={restore.isPending}>
              Back
            </button>
            <button type="button" className={`btn ${overwrites ? 'btn-danger' : 'btn-primary'}`} disabled={restore.isPending || (overwrites && typed !== target)} onClick={run}>
              {restore.isPending ? 'Restoring…' : overwrites ? `Overwrite ${target}` : 'Restore'}
            </button>
          </div>
        </div>
      )}

      {step === 'done' && restore.data && (
        <div className="form">
          <p className="notice notice-ok" role="status">
            Restored {formatSize(restore.data.bytes)} to <span className="mono">{restore.data.target}</span>.
          </p>
          <div className="dialog-actions">
            <button type="button" className="btn btn-primary" onClick={onClose}>
              Close
            </button>
          </div>
        </div>
      )}
    </ModalDialog>
  );
}
