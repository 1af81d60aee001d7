/**
 * In-app notices ("toasts") for work that ends in the background: a backup finished or
 * failed, a scheduled run skipped. The Electron app also shows a native notification; a
 * browser on `holdfast serve` has only these. Fed by the engine-event subscription; each
 * notice is shown once (by key) and goes away after a while or when dismissed.
 */
import { useSyncExternalStore } from 'react';

export interface Notice {
  key: string;
  tone: 'ok' | 'error' | 'warn';
  title: string;
  body: string;
}

const LIFETIME_MS = 12_000;
let notices: Notice[] = [];
const seen = new Set<string>();
const listeners = new Set<() => void>();
const timers = new Map<string, ReturnType<typeof setTimeout>>();
const changed = () => listeners.forEach((l) => l());

export function pushNotice(n: Notice): void {
  if (seen.has(n.key)) return;
  seen.add(n.key);
  notices = [...notices.slice(-3), n];
  timers.set(
    n.key,
    setTimeout(() => dismissNotice(n.key), LIFETIME_MS),
  );
  changed();
}

export function dismissNotice(key: string): void {
  clearTimeout(timers.get(key));
  timers.delete(key);
  if (!notices.some((n) => n.key === key)) return;
  notices = notices.filter((n) => n.key !== key);
  changed();
}

/** Tests start from nothing. */
export function clearNotices(): void {
  for (const t of timers.values()) clearTimeout(t);
  timers.clear();
  seen.clear();
  notices = [];
  changed();
}

export function useNotices(): Notice[] {
  return useSyncExternalStore(
    (cb) => (listeners.add(cb), () => listeners.delete(cb)),
    () => notices,
  );
}
