import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ControlServer } from '../../src-main/host/control/server';
import { ControlClient } from '../../src-main/host/control/client';
import { MAX_REQUEST_FRAME } from '../../src-main/host/control/protocol';
import { HoldfastError } from '../../src-shared/errors';
import { createFakeApi, holdState } from './fake-api';

let dir: string;
let sockPath: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-control-'));
  sockPath = path.join(dir, 'control.sock');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Raw line-level conversation, to send what a well-behaved client never would. */
function rawConn(p: string) {
  const sock = net.connect(p);
  let buf = '';
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  sock.on('data', (c) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  sock.on('error', () => {});
  return {
    sock,
    closed,
    send: (s: string) => sock.write(s),
    async next(): Promise<any> {
      while (lines.length === 0) await new Promise<void>((r) => waiters.push(r));
      return JSON.parse(lines.shift()!);
    },
  };
}

describe('control socket', () => {
  it('round-trips operations with owner-only permissions and rehydrated errors', async () => {
    const { api, events } = createFakeApi();
    const server = await ControlServer.listen(sockPath, api, events);
    try {
      expect(fs.statSync(sockPath).mode & 0o777).toBe(0o600);
      const client = await ControlClient.connect(sockPath);
      const v = await client.api['volume.create']({ name: 'vol1', size: 8192 });
      expect(v).toMatchObject({ name: 'vol1', size: 8192, ackMode: 'journal' });
      expect(await client.api['volume.list']({})).toHaveLength(1);
      const err = await client.api['volume.create']({ name: 'vol1', size: 8192 }).catch((e) => e);
      expect(err).toBeInstanceOf(HoldfastError);
      expect(err.code).toBe('ALREADY_EXISTS');
      const bad = await client.api['volume.create']({ name: 'a b', size: 1 }).catch((e) => e);
      expect(bad.code).toBe('INVALID_ARGUMENT');
      await client.close();
    } finally {
      await server.close();
    }
    expect(fs.existsSync(sockPath)).toBe(false);
  });

  it('answers malformed frames with errors and keeps serving the connection', async () => {
    const { api, events } = createFakeApi();
    const server = await ControlServer.listen(sockPath, api, events);
    try {
      const c = rawConn(sockPath);
      c.send('this is not json\n');
      expect(await c.next()).toMatchObject({ id: null, ok: false, error: { code: 'INVALID_ARGUMENT', message: 'The control frame is not valid JSON.' } });
      c.send('[1,2]\n');
      expect(await c.next()).toMatchObject({ id: null, ok: false });
      c.send('{"op":"volume.list"}\n');
      expect(await c.next()).toMatchObject({ id: null, ok: false, error: { message: expect.stringContaining('"id"') } });
      c.send('{"id":7}\n');
      expect(await c.next()).toMatchObject({ id: 7, ok: false });
      c.send('{"id":8,"op":"nope.op","input":{}}\n');
      expect(await c.next()).toMatchObject({ id: 8, ok: false, error: { code: 'NOT_FOUND' } });
      // Split across writes and two frames in one write.
      c.send('{"id":9,"op":"volu');
      c.send('me.list","input":{}}\n{"id":10,"op":"drive.list"}\n');
      expect(await c.next()).toEqual({ id: 9, ok: true, result: [] });
      expect(await c.next()).toEqual({ id: 10, ok: true, result: [] });
      c.sock.destroy();
    } finally {
      await server.close();
    }
  });

  it('closes a connection that sends an oversized frame, without buffering it all, and stays up for others', async () => {
    const { api, events } = createFakeApi();
    const server = await ControlServer.listen(sockPath, api, events);
    try {
      const c = rawConn(sockPath);
      const chunk = 'x'.repeat(256 * 1024);
      for (let i = 0; i < (MAX_REQUEST_FRAME / chunk.length) * 3 && !c.sock.destroyed; i++) c.send(chunk);
      expect(await c.next()).toMatchObject({ id: null, ok: false, error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('longer than') } });
      await c.closed;
      const other = await ControlClient.connect(sockPath);
      expect(await other.api['volume.list']({})).toEqual([]);
      await other.close();
    } finally {
      await server.close();
    }
  });

  it('delivers subscribed events, coalescing holds.changed, and stops after unsubscribe', async () => {
    const { api, events } = createFakeApi();
    const server = await ControlServer.listen(sockPath, api, events);
    try {
      const client = await ControlClient.connect(sockPath);
      const got: Array<{ name: string; payload: any }> = [];
      client.onAny((name, payload) => got.push({ name, payload }));
      await client.subscribe(['holds.changed', 'volumes.changed']);
      await client.api['volume.create']({ name: 'v', size: 4096 });
      for (let i = 1; i <= 1000; i++) events.emit('holds.changed', holdState('v', i));
      events.emit('devices.changed', {}); // not subscribed
      await new Promise((r) => setTimeout(r, 150));
      expect(got.filter((e) => e.name === 'volumes.changed')).toHaveLength(1);
      const holds = got.filter((e) => e.name === 'holds.changed');
      expect(holds.length).toBeGreaterThanOrEqual(1);
      expect(holds.length).toBeLessThanOrEqual(3);
      expect(holds.at(-1)!.payload.heldCount).toBe(1000); // the last state always arrives
      expect(got.some((e) => e.name === 'devices.changed')).toBe(false);
      await client.unsubscribe();
      const before = got.length;
      events.emit('volumes.changed', {});
      await client.api['volume.list']({});
      expect(got.length).toBe(before);
      const badSub: any = await client.call('$subscribe', { events: ['nope'] }).catch((e) => e);
      expect(badSub.code).toBe('INVALID_ARGUMENT');
      await client.close();
      await new Promise((r) => setTimeout(r, 50));
      expect(events.listenerCount).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('replaces a stale socket file but refuses to steal a live one', async () => {
    fs.writeFileSync(sockPath, 'stale');
    const { api, events } = createFakeApi();
    const server = await ControlServer.listen(sockPath, api, events);
    try {
      const err = await ControlServer.listen(sockPath, api, events).catch((e) => e);
      expect(err.code).toBe('LOCKED');
      const client = await ControlClient.connect(sockPath);
      expect(await client.api['drive.list']({})).toEqual([]);
      await client.close();
    } finally {
      await server.close();
    }
  });

  it('fails pending requests when the engine goes away', async () => {
    const { api, events } = createFakeApi();
    let release!: () => void;
    (api as any)['volume.list'] = () => new Promise((r) => (release = () => r([])));
    const server = await ControlServer.listen(sockPath, api, events);
    const client = await ControlClient.connect(sockPath);
    const p = client.api['volume.list']({}).catch((e) => e);
    await new Promise((r) => setTimeout(r, 50));
    await server.close();
    const err = await p;
    expect(err.code).toBe('IO_ERROR');
    release();
    expect(await ControlClient.connect(sockPath).catch((e) => e.code)).toBe('NOT_FOUND');
  });
});
