/**
 * Puts the one `Client` (api + events) in React context. Screens reach the engine only through
 * `useApi()`; the event subscription is owned by `useEngineEvents` (queries/events.ts).
 */
import { createContext, useContext, type ReactNode } from 'react';
import type { Api } from '../../src-shared/contract';
import type { Client } from './transport';

const ClientContext = createContext<Client | null>(null);

export function ClientProvider({ client, children }: { client: Client; children: ReactNode }) {
  return <ClientContext.Provider value={client}>{children}</ClientContext.Provider>;
}

export function useClient(): Client {
  const c = useContext(ClientContext);
  if (!c) throw new Error('useClient outside ClientProvider');
  return c;
}

export function useApi(): Api {
  return useClient().api;
}
