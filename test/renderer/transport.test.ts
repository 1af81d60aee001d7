// @vitest-environment jsdom
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bridgeClient, createClient, httpClient, takeToken } from '../../src-renderer/api/transport';
import type { EventMessage, HoldfastBridge, RpcResponse } from '../../src-shared/bridge';
import { HoldfastError } from '../../src-shared/errors';

afterEach(() => {
  sessionStorage.clear();
  vi.useRealTimers();
});

class FakeSocket {
  static all: FakeSocket[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  close() {
    this.closed = true;
  }
}

function fakeWindow(href: string, fetchImpl: (url: string, init: RequestInit) => Promise<Response>) {
  return { location: { href }, fetch: vi.fn(fetchImpl), WebSocket: FakeSocket } as unknown as Window & { fetch: ReturnType<typeof vi.fn> };
}

const json = (body: unknown, status = 200) => Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } }));

describe('serve transport', () => {
  it('takes ?token= into sessionStorage and removes it from the visible URL', () => {
    history.replaceState(null, '', '/app/?token=s3cret&x=1#/volumes');
    expect(takeToken(window)).toBe('s3cret');
    expect(location.pathname + location.search + location.hash).toBe('/app/?x=1#/volumes');
    expect(sessionStorage.getItem('holdfast.token')).toBe('s3cret');
    expect(takeToken(window)).toBe('s3cret'); // after a reload the URL has none; the session keeps it
  });

  it('POSTs /api/<op> with the bearer token and unwraps {ok:true, result}', async () => {
    const win = fakeWindow('http://127.0.0.1:4000/?x=1#/holds', () => json({ ok: true, result: [{ volume: 'a' }] }));
    const { api } = httpClient(win, 'T0K');
    await expect(api['holds.get']({ volume: 'a' })).resolves.toEqual([{ volume: 'a' }]);
    const [url, init] = win.fetch.mock.calls[0]!;
    expect(String(url)).toBe('http://127.0.0.1:4000/api/holds.get');
    expect(init.method).toBe('POST');
    expect((init.headers as Record<string, string>).authorization).toBe('Bearer T0K');
    expect(JSON.parse(init.body as string)).toEqual({ volume: 'a' });
  });

  it('turns {ok:false, error} into a HoldfastError with the engine’s code and message', async () => {
    const win = fakeWindow('http://127.0.0.1:4000/', () => json({ ok: false, error: { code: 'IN_USE', message: 'Volume vm is being backed up.' } }, 409));
    const err = await httpClient(win, 'T').api['volume.delete']({ name: 'vm' }).catch((e) => e);
    expect(err).toBeInstanceOf(HoldfastError);
    expect(err.code).toBe('IN_USE');
    expect(err.message).toBe('Volume vm is being backed up.');
  });

  it('explains a missing token (401) and an unreachable engine', async () => {
    const e401 = await httpClient(fakeWindow('http://h/', () => Promise.resolve(new Response('', { status: 401 }))), null).api['volume.list']({}).catch((e) => e);
    expect(e401.code).toBe('UNAUTHORIZED');
    expect(e401.message).toMatch(/token/);
    const down = await httpClient(fakeWindow('http://h/', () => Promise.reject(new TypeError('Failed to fetch'))), 'T').api['volume.list']({}).catch((e) => e);
    expect(down.code).toBe('IO_ERROR');
  });

  it('receives events over one WebSocket /events?token=, reconnects after a drop and reports the state', async () => {
    vi.useFakeTimers();
    FakeSocket.all = [];
    const client = httpClient(fakeWindow('http://127.0.0.1:4000/', () => json({})), 'T 1');
    const states: string[] = [];
    client.onConnectionChange!((s) => states.push(s));
    const got: EventMessage[] = [];
    const off1 = client.onEvent((m) => got.push(m));
    const off2 = client.onEvent(() => {});
    expect(FakeSocket.all).toHaveLength(1);
    const ws = FakeSocket.all[0]!;
    expect(ws.url).toBe('ws://127.0.0.1:4000/events?token=T+1');
    ws.onopen!();
    ws.onmessage!({ data: JSON.stringify({ event: 'volumes.changed', payload: {} }) });
    ws.onmessage!({ data: 'not json' });
    expect(got).toEqual([{ event: 'volumes.changed', payload: {} }]);
    ws.onclose!();
    vi.advanceTimersByTime(600);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.all[1]!.onopen!();
    expect(states).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
    off1();
    off2();
    expect(FakeSocket.all[1]!.closed).toBe(true);
  });
});

describe('Electron bridge transport', () => {
  const bridge = (reply: (op: string, input: unknown) => Promise<RpcResponse>): HoldfastBridge => ({ invoke: vi.fn(reply) as HoldfastBridge['invoke'], onEvent: () => () => {} });

  it('is picked when window.holdfast exists and unwraps envelopes', async () => {
    const b = bridge(async (op) => (op === 'volume.delete' ? { ok: true, result: { ok: true } } : { ok: false, error: { code: 'NOT_FOUND', message: 'No volume named x.' } }));
    (window as unknown as { holdfast?: HoldfastBridge }).holdfast = b;
    try {
      const { api } = createClient(window);
      await expect(api['volume.delete']({ name: 'v' })).resolves.toEqual({ ok: true });
      await expect(api['volume.grow']({ name: 'x', size: 4096 })).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'No volume named x.' });
      expect(b.invoke).toHaveBeenCalledWith('volume.grow', { name: 'x', size: 4096 });
    } finally {
      delete (window as unknown as { holdfast?: HoldfastBridge }).holdfast;
    }
  });

  it('keeps a person-readable message when the preload rejects instead', async () => {
    const b: HoldfastBridge = { invoke: () => Promise.reject(new Error("Error invoking remote method 'holdfast:invoke': Error: The journal is full.")), onEvent: () => () => {} };
    await expect(bridgeClient(b).api['volume.list']({})).rejects.toMatchObject({ code: 'INTERNAL', message: 'The journal is full.' });
  });
});
