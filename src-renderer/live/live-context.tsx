/** Owns the renderer's live state that is not a query: the hold timeline. One per app. */
import { createContext, useContext, useSyncExternalStore, type ReactNode } from 'react';
import { HoldTimeline } from './hold-timeline';

const TimelineContext = createContext<HoldTimeline | null>(null);

export function TimelineProvider({ timeline, children }: { timeline: HoldTimeline; children: ReactNode }) {
  return <TimelineContext.Provider value={timeline}>{children}</TimelineContext.Provider>;
}

export function useTimeline(): HoldTimeline {
  const t = useContext(TimelineContext);
  if (!t) throw new Error('useTimeline outside TimelineProvider');
  return t;
}

/** Re-renders when the timeline records; returns the timeline. */
export function useTimelineVersion(): HoldTimeline {
  const t = useTimeline();
  useSyncExternalStore(t.subscribe, t.getVersion);
  return t;
}
