import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServeHost, type ServeHost } from '../../src-main/host/serve/server';
import { createFakeApi, holdState } from './fake-api';

let dir: string;
let host: ServeHost;
let fake: ReturnType<typeof createFakeApi>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-serve-'));
  const root = path.join(dir, 'renderer');
  fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>Holdfast</title>');
  fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1)');
  fs.writeFileSync(path.join(root, 'assets', 'style.css'), 'body{}');
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'TOP SECRET');
  fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(root, 'assets', 'link.txt'));
  fake = createFakeApi();
  host = await startServeHost({ api: fake.api, events: fake.events, port: 0, rendererDir: root });
});
afterAll(async () => {
  await host.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A raw request: the path is sent byte for byte (no client-side normalisation of "..") and headers are ours. */
function request(opts: { method?: string; path: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent: false, host: '127.0.0.1', port: host.port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
const api = (op: string, input: unknown, headers: Record<string, string> = {}) =>
  request({ method: 'POST', path: `/api/${op}`, headers: { Authorization: `Bearer ${host.token}`, 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(input) });

describe('serve host', () => {
  it('binds 127.0.0.1 and builds the URL users open', () => {
    expect(host.url).toBe(`http://127.0.0.1:${host.port}/?token=${host.token}`);
    expect(host.token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes base64url
  });

  it('answers contract calls with the token and refuses without it', async () => {
    const ok = await api('volume.create', { name: 'web', size: 65536 });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ ok: true, result: { name: 'web', size: 65536 } });
    expect(ok.headers['cache-control']).toBe('no-store');

    const none = await request({ method: 'POST', path: '/api/volume.list', body: '{}' });
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    // A token one character off (the last character of 32 bytes in base64url is one of 16, often 'A').
    const last = host.token.slice(-1);
    const wrongToken = host.token.slice(0, -1) + (last === 'E' ? 'I' : 'E');
    expect(wrongToken).not.toBe(host.token);
    const wrong = await api('volume.list', {}, { Authorization: `Bearer ${wrongToken}` });
    expect(wrong.status).toBe(401);
    expect(fake.calls.filter((c) => c.op === 'volume.list')).toHaveLength(0);
  });

  it('carries engine and validation errors in the envelope with a fitting status', async () => {
    const dup = await api('volume.create', { name: 'web', size: 65536 });
    expect(dup.status).toBe(409);
    expect(JSON.parse(dup.body)).toEqual({ ok: false, error: { code: 'ALREADY_EXISTS', message: 'A volume named "web" already exists.' } });
    const bad = await api('volume.create', { name: '', size: 'big' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error.code).toBe('INVALID_ARGUMENT');
    const notJson = await request({ method: 'POST', path: '/api/volume.list', headers: { Authorization: `Bearer ${host.token}` }, body: '{nope' });
    expect(notJson.status).toBe(400);
    const unknown = await api('volume.explode', {});
    expect(unknown.status).toBe(404);
    const get = await request({ path: '/api/volume.list', headers: { Authorization: `Bearer ${host.token}` } });
    expect(get.status).toBe(405);
    const form = await api('volume.list', {}, { 'Content-Type': 'text/plain' });
    expect(form.status).toBe(415);
    const huge = await api('volume.list', { pad: 'x'.repeat(2 * 1024 * 1024) }).catch(() => ({ status: 413 }));
    expect(huge.status).toBe(413);
  });

  it('refuses other sites (Origin) and rebound DNS names (Host)', async () => {
    const foreign = await api('volume.list', {}, { Origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    const samePortOtherScheme = await api('volume.list', {}, { Origin: `https://127.0.0.1:${host.port}` });
    expect(samePortOtherScheme.status).toBe(403);
    const ours = await api('volume.list', {}, { Origin: `http://127.0.0.1:${host.port}` });
    expect(ours.status).toBe(200);
    const rebound = await api('volume.list', {}, { Host: `evil.example:${host.port}` });
    expect(rebound.status).toBe(403);
    const page = await request({ path: '/', headers: { Host: 'attacker.example' } });
    expect(page.status).toBe(403);
    expect(page.body).not.toContain('Holdfast');
  });

  it('serves the renderer with a strict CSP and the right content types', async () => {
    const index = await request({ path: '/?token=abc' });
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = index.headers['content-security-policy']!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(index.headers['referrer-policy']).toBe('no-referrer');
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    expect((await request({ path: '/assets/app.js' })).headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await request({ path: '/assets/style.css' })).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await request({ path: '/assets/missing.js' })).status).toBe(404);
    const spa = await request({ path: '/volumes/web' });
    expect(spa.status).toBe(200);
    expect(spa.body).toContain('<title>Holdfast</title>');
    expect((await request({ method: 'DELETE', path: '/' })).status).toBe(405);
  });

  it('never serves a file outside the renderer directory', async () => {
    for (const p of ['/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/..%5csecret.txt', '/assets/link.txt', '/%00', '/%E0%A4%A']) {
      const r = await request({ path: p });
      expect(r.body, p).not.toContain('TOP SECRET');
      expect([400, 404], p).toContain(r.status);
    }
  });

  it('streams events over the WebSocket only with the token, coalescing holds.changed', async () => {
    const wsUrl = `ws://127.0.0.1:${host.port}/events`;
    const refused = (url: string, headers?: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode!));
        ws.on('open', () => resolve(101));
        ws.on('error', () => {});
      });
    expect(await refused(wsUrl)).toBe(401);
    expect(await refused(`${wsUrl}?token=wrong`)).toBe(401);
    expect(await refused(`${wsUrl}?token=${host.token}`, { Origin: 'http://evil.example' })).toBe(403);

    const ws = new WebSocket(`${wsUrl}?token=${host.token}`, { headers: { Origin: `http://127.0.0.1:${host.port}` } });
    const got: Array<{ event: string; payload: any }> = [];
    ws.on('message', (m) => got.push(JSON.parse(m.toString())));
    await new Promise((r) => ws.on('open', r));
    // A ping from the client is answered by a pong.
    const pong = new Promise((r) => ws.once('pong', r));
    ws.ping('hi');
    await pong;
    await api('volume.create', { name: 'evt', size: 4096 });
    const start = Date.now();
    for (let i = 1; i <= 5000; i++) fake.events.emit('holds.changed', holdState('evt', i));
    fake.events.emit('holds.changed', holdState('other', 1));
    await new Promise((r) => setTimeout(r, 300));
    expect(got.find((e) => e.event === 'volumes.changed')).toEqual({ event: 'volumes.changed', payload: {} });
    const evt = got.filter((e) => e.event === 'holds.changed' && e.payload.volume === 'evt');
    const elapsed = (Date.now() - start) / 1000;
    expect(evt.length).toBeLessThanOrEqual(Math.ceil(elapsed * 30) + 1);
    expect(evt.at(-1)!.payload.heldCount).toBe(5000);
    expect(got.some((e) => e.event === 'holds.changed' && e.payload.volume === 'other')).toBe(true);
    const closed = new Promise((r) => ws.on('close', r));
    ws.close();
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.events.listenerCount).toBe(0);
  });

  it('closes a WebSocket that sends unmasked or oversized frames', async () => {
    const net = await import('node:net');
    const { encodeFrame } = await import('../../src-main/host/serve/websocket');
    const conn = net.connect(host.port, '127.0.0.1');
    const key = Buffer.alloc(16, 7).toString('base64');
    conn.write(`GET /events?token=${host.token} HTTP/1.1\r\nHost: 127.0.0.1:${host.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);
    let data = Buffer.alloc(0);
    conn.on('data', (c) => (data = Buffer.concat([data, c])));
    await new Promise((r) => setTimeout(r, 100));
    expect(data.toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
    conn.write(encodeFrame(0x1, Buffer.from('unmasked')));
    await new Promise((r) => conn.on('close', r));
    const tail = data.subarray(data.indexOf('\r\n\r\n') + 4);
    expect(tail[0]).toBe(0x88); // close frame
    expect(tail.readUInt16BE(2)).toBe(1002);
  });
});
