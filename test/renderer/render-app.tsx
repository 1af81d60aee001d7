/** Renders the real app (or one screen) around a FakeEngine, as main.tsx does around a transport. */
import { configure, render } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { App } from '../../src-renderer/App';
import { ClientProvider } from '../../src-renderer/api/client-context';
import { HoldTimeline } from '../../src-renderer/live/hold-timeline';
import { TimelineProvider } from '../../src-renderer/live/live-context';
import { FakeEngine } from './fake-engine';

// The machine is shared; allow slow renders without weakening what is asserted.
configure({ asyncUtilTimeout: 5000 });

export function renderApp(screen: string, engine = new FakeEngine(), children?: ReactNode) {
  window.location.hash = `#/${screen}`;
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false }, mutations: { retry: false } } });
  const timeline = new HoldTimeline();
  const utils = render(
    <ClientProvider client={engine.client()}>
      <QueryClientProvider client={queryClient}>
        <TimelineProvider timeline={timeline}>{children ?? <App />}</TimelineProvider>
      </QueryClientProvider>
    </ClientProvider>,
  );
  return { ...utils, engine, queryClient, timeline };
}
