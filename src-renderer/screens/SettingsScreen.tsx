/** Settings: where the engine keeps its data, the vault this window starts with, and the theme. */
import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useApi } from '../api/client-context';
import { CopyButton } from '../components/CopyButton';
import { ErrorNotice } from '../components/ErrorNotice';
import { Card, Loading, PageHeader } from '../components/Layout';
import { setPreferences, usePreferences, type Theme } from '../live/preferences';
import { engineInfoQuery } from '../queries/engine';

export function SettingsScreen() {
  const api = useApi();
  const info = useQuery(engineInfoQuery(api));
  const prefs = usePreferences();
  const [vault, setVault] = useState(prefs.vault);
  const [saved, setSaved] = useState(false);
  const save = (e: FormEvent) => {
    e.preventDefault();
    setPreferences({ vault: vault.trim() });
    setSaved(true);
  };
  return (
    <>
      <PageHeader title="Settings" />
      <Card title="Engine">
        {info.isPending && <Loading what="engine information" />}
        <ErrorNotice error={info.error} title="Could not reach the engine" />
        {info.data && (
          <dl className="summary">
            <dt>Data directory</dt>
            <dd>
              <code>{info.data.dataDir}</code> <CopyButton text={info.data.dataDir} label="Copy data directory" />
            </dd>
            <dt>Engine default vault</dt>
            <dd>
              <code>{info.data.defaultVault}</code>
            </dd>
            <dt>NBD</dt>
            <dd>
              {info.data.nbd.socket || info.data.nbd.tcp ? (
                <>
                  {info.data.nbd.socket && <code>{info.data.nbd.socket}</code>} {info.data.nbd.tcp && <code>{info.data.nbd.tcp}</code>}
                </>
              ) : (
                'Not running'
              )}
            </dd>
            <dt>Version</dt>
            <dd>{info.data.version}</dd>
          </dl>
        )}
        <p className="muted small">The data directory is chosen when the engine starts (--data or HOLDFAST_DATA).</p>
      </Card>
      <Card title="Default vault">
        <form className="form-row" onSubmit={save}>
          <div className="field grow">
            <label htmlFor="settings-vault">Vault folder the Backup and Snapshots screens start with</label>
            <input
              id="settings-vault"
              className="mono"
              value={vault}
              onChange={(e) => (setVault(e.target.value), setSaved(false))}
              placeholder={info.data?.defaultVault ?? 'Engine default'}
              aria-describedby="settings-vault-hint"
            />
            <p className="hint" id="settings-vault-hint">
              Leave empty to use the engine's default vault.
            </p>
          </div>
          <div className="field field-button">
            <button type="submit" className="btn btn-primary">
              Save
            </button>
          </div>
        </form>
        {saved && (
          <p className="notice notice-ok" role="status">
            Saved.
          </p>
        )}
      </Card>
      <Card title="Appearance">
        <fieldset className="segmented">
          <legend>Theme</legend>
          {(['system', 'light', 'dark'] as Theme[]).map((t) => (
            <label key={t}>
              <input type="radio" name="theme" checked={prefs.theme === t} onChange={() => setPreferences({ theme: t })} /> {t === 'system' ? 'Follow the system' : t === 'light' ? 'Light' : 'Dark'}
            </label>
          ))}
        </fieldset>
      </Card>
    </>
  );
}
