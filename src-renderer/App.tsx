/**
 * The app shell: sidebar navigation and the current screen. The screen lives in the URL hash
 * (`#/volumes`) so reloads and the back button work in Electron and in a browser alike.
 * Owns the single engine-event subscription for the whole window.
 */
import { useEffect, useState, useSyncExternalStore, type ComponentType } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useApi, useClient } from './api/client-context';
import type { ConnectionState } from './api/transport';
import { Icon } from './components/Icon';
import { Toasts } from './components/Toasts';
import { formatCount } from './components/format';
import { setPreferences, usePreferences } from './live/preferences';
import { engineInfoQuery } from './queries/engine';
import { useEngineEvents } from './queries/events';
import { holdListQuery } from './queries/holds';
import { BackupScreen } from './screens/BackupScreen';
import { DrivesScreen } from './screens/DrivesScreen';
import { HoldQueueScreen } from './screens/HoldQueueScreen';
import { SchedulesScreen } from './screens/SchedulesScreen';
import { SettingsScreen } from './screens/SettingsScreen';
import { SnapshotsScreen } from './screens/SnapshotsScreen';
import { VolumesScreen } from './screens/VolumesScreen';

export const SCREENS: { id: string; label: string; icon: string; Screen: ComponentType }[] = [
  { id: 'drives', label: 'Drives & devices', icon: 'drives', Screen: DrivesScreen },
  { id: 'volumes', label: 'Volumes', icon: 'volumes', Screen: VolumesScreen },
  { id: 'backup', label: 'Backup', icon: 'backup', Screen: BackupScreen },
  { id: 'holds', label: 'Hold queue', icon: 'holds', Screen: HoldQueueScreen },
  { id: 'snapshots', label: 'Snapshots & restore', icon: 'snapshots', Screen: SnapshotsScreen },
  { id: 'schedules', label: 'Schedules', icon: 'schedules', Screen: SchedulesScreen },
  { id: 'settings', label: 'Settings', icon: 'settings', Screen: SettingsScreen },
];

function subscribeHash(cb: () => void) {
  window.addEventListener('hashchange', cb);
  return () => window.removeEventListener('hashchange', cb);
}
const readHash = () => window.location.hash.replace(/^#\/?/, '');

export function App() {
  useEngineEvents();
  const hash = useSyncExternalStore(subscribeHash, readHash);
  const current = SCREENS.find((s) => s.id === hash) ?? SCREENS[0]!;
  const { Screen } = current;
  useEffect(() => {
    document.title = `${current.label} — Holdfast`;
  }, [current]);
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Sidebar current={current.id} />
      <main id="main" className="content" tabIndex={-1}>
        <Screen />
      </main>
      <Toasts />
    </div>
  );
}

function Sidebar({ current }: { current: string }) {
  const api = useApi();
  const holds = useQuery(holdListQuery(api));
  const held = (holds.data ?? []).reduce((a, h) => a + h.heldCount, 0);
  const active = (holds.data ?? []).some((h) => h.backupFlag);
  return (
    <nav className="sidebar" aria-label="Main">
      <div className="brand">
        <span className="brand-mark">
          <Icon name="shield" size={19} />
        </span>
        <span className="brand-name">Holdfast</span>
      </div>
      <ul className="nav">
        {SCREENS.map((s) => (
          <li key={s.id}>
            <a href={`#/${s.id}`} className="nav-item" aria-current={s.id === current ? 'page' : undefined}>
              <span className="nav-icon">
                <Icon name={s.icon} />
              </span>
              <span>{s.label}</span>
              {s.id === 'holds' && active && (
                <HeldBadge held={held} />
              )}
            </a>
          </li>
        ))}
      </ul>
      <SidebarFooter />
    </nav>
  );
}

/** Writes held now across all volumes: a number on screen, a sentence for screen readers and on hover. */
function HeldBadge({ held }: { held: number }) {
  const text = `${formatCount(held)} ${held === 1 ? 'write' : 'writes'} held now`;
  return (
    <span className="nav-badge" title={text}>
      <span aria-hidden="true">{formatCount(held)}</span>
      <span className="sr-only">{text}</span>
    </span>
  );
}

function SidebarFooter() {
  const api = useApi();
  const client = useClient();
  const info = useQuery(engineInfoQuery(api));
  const prefs = usePreferences();
  const [conn, setConn] = useState<ConnectionState>('connected');
  useEffect(() => client.onConnectionChange?.(setConn), [client]);
  const dark = prefs.theme === 'dark' || (prefs.theme === 'system' && window.matchMedia?.('(prefers-color-scheme: dark)').matches);
  return (
    <div className="sidebar-footer">
      <div className={`engine-state engine-${info.isError ? 'down' : conn}`} role="status">
        <span className="dot" aria-hidden="true" />
        {info.isError ? 'Engine unreachable' : conn === 'connected' ? `Engine ${info.data?.version ?? ''}` : conn === 'connecting' ? 'Connecting…' : 'Live updates paused — reconnecting'}
      </div>
      <button type="button" className="btn btn-small btn-quiet theme-toggle" onClick={() => setPreferences({ theme: dark ? 'light' : 'dark' })}>
        {dark ? 'Light theme' : 'Dark theme'}
      </button>
    </div>
  );
}
