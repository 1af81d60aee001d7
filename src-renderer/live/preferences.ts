/**
 * The user's local preferences (this window's, not the engine's): theme and the vault folder the
 * Backup and Snapshots screens start with. Stored in localStorage; a bad stored value falls
 * back to the default. The theme is applied as `data-theme` on <html> ('system' = follow the OS).
 */
import { useSyncExternalStore } from 'react';

export type Theme = 'system' | 'light' | 'dark';
export interface Preferences {
  theme: Theme;
  /** Empty = the engine's default vault. */
  vault: string;
}

const KEY = 'holdfast.preferences';
const DEFAULTS: Preferences = { theme: 'system', vault: '' };
const listeners = new Set<() => void>();
let current: Preferences = load();

function load(): Preferences {
  try {
    const raw = JSON.parse(globalThis.localStorage?.getItem(KEY) ?? 'null') as Partial<Preferences> | null;
    return {
      theme: raw?.theme === 'light' || raw?.theme === 'dark' ? raw.theme : 'system',
      vault: typeof raw?.vault === 'string' ? raw.vault : '',
    };
  } catch {
    return DEFAULTS;
  }
}

export function applyTheme(theme: Theme): void {
  if (typeof document !== 'undefined') document.documentElement.dataset.theme = theme;
}

export function getPreferences(): Preferences {
  return current;
}

export function setPreferences(patch: Partial<Preferences>): void {
  current = { ...current, ...patch };
  try {
    globalThis.localStorage?.setItem(KEY, JSON.stringify(current));
  } catch {
    /* storage full or denied: keep in memory */
  }
  applyTheme(current.theme);
  listeners.forEach((l) => l());
}

function subscribe(l: () => void) {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function usePreferences(): Preferences {
  return useSyncExternalStore(subscribe, getPreferences);
}
