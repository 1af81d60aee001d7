import { describe, expect, it } from 'vitest';
import { createRouter } from '../../src-main/host/router';
import { createFakeApi } from './fake-api';

describe('contract router', () => {
  it('passes parsed input to the api and returns its result', async () => {
    const { api, calls } = createFakeApi();
    const r = await createRouter(api).call('volume.create', { name: 'data', size: 1 << 20, ack: 'device' });
    expect(r).toMatchObject({ ok: true, result: { name: 'data', size: 1 << 20, ackMode: 'device' } });
    expect(calls).toEqual([{ op: 'volume.create', input: { name: 'data', size: 1 << 20, ack: 'device' } }]);
  });

  it('refuses an unknown op without calling the api', async () => {
    const { api, calls } = createFakeApi();
    const r = await createRouter(api).call('volume.format', {});
    expect(r).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'Unknown operation "volume.format".' } });
    expect((await createRouter(api).call('__proto__', {})).ok).toBe(false);
    expect((await createRouter(api).call('toString', {})).ok).toBe(false);
    expect(calls).toEqual([]);
  });

  it('reports every bad field with its path in one readable message', async () => {
    const { api, calls } = createFakeApi();
    const r = await createRouter(api).call('volume.create', { name: '-bad name', size: -5 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('INVALID_ARGUMENT');
    expect(r.error.message).toMatch(/^Invalid input for volume\.create: /);
    expect(r.error.message).toContain('name: Volume names are 1–64 letters');
    expect(r.error.message).toMatch(/size: /);
    expect(r.error.message).not.toContain('\n');
    expect(calls).toEqual([]);
  });

  it('rejects non-object input and treats a missing input as {}', async () => {
    const { api } = createFakeApi();
    const router = createRouter(api);
    expect(await router.call('volume.list', 'text')).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT' } });
    expect(await router.call('volume.list', undefined)).toEqual({ ok: true, result: [] });
  });

  it('turns engine errors and plain exceptions into error payloads', async () => {
    const { api } = createFakeApi();
    const router = createRouter(api);
    expect(await router.call('volume.delete', { name: 'nope' })).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'No volume named "nope".' } });
    expect(await router.call('engine.info', {})).toEqual({ ok: false, error: { code: 'INTERNAL', message: 'boom: not a HoldfastError' } });
  });

  it('answers NOT_AVAILABLE when the api lacks an op', async () => {
    const { api } = createFakeApi();
    const partial = { ...api } as Record<string, unknown>;
    delete partial['volume.rename'];
    const r = await createRouter(partial as never).call('volume.rename', { name: 'a', newName: 'b' });
    expect(r).toMatchObject({ ok: false, error: { code: 'NOT_AVAILABLE' } });
  });
});
