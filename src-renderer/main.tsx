/** Renderer entry: picks the transport, builds the query client and mounts the app. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { App } from './App';
import { ClientProvider } from './api/client-context';
import { createClient } from './api/transport';
import { HoldTimeline } from './live/hold-timeline';
import { TimelineProvider } from './live/live-context';
import { applyTheme, getPreferences } from './live/preferences';
import './styles.css';

applyTheme(getPreferences().theme);
const client = createClient(window);
// Live data comes from events; no interval refetching anywhere. Errors are shown, not retried forever.
const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false, staleTime: 5_000 } } });

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ClientProvider client={client}>
      <QueryClientProvider client={queryClient}>
        <TimelineProvider timeline={new HoldTimeline()}>
          <App />
        </TimelineProvider>
      </QueryClientProvider>
    </ClientProvider>
  </StrictMode>,
);
