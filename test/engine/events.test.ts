/**
 * Engine events: subscriptions are owned (dispose removes exactly that listener, once), and
 * `wants` tells a producer whether anyone would receive an event, so costly payloads (the hold
 * block map) are computed only for a listener. Also end to end: a listener that subscribes while
 * a backup runs gets hold events with the current counts and a block map.
 */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { Engine } from '../../src-main/engine/engine';
import { EngineEvents } from '../../src-main/engine/events';
import type { HoldState } from '../../src-shared/contract';
import { useTempDirs } from './helpers';

const mk = useTempDirs();

describe('engine events', () => {
  it('wants an event only while a listener for it (or for all events) is subscribed', () => {
    const ev = new EngineEvents();
    expect(ev.wants('holds.changed')).toBe(false);
    const other = ev.on('snapshots.changed', () => undefined);
    expect(ev.wants('holds.changed')).toBe(false);
    expect(ev.wants('snapshots.changed')).toBe(true);
    const seen: string[] = [];
    const named = ev.on('holds.changed', (p) => seen.push(p.volume));
    expect(ev.wants('holds.changed')).toBe(true);
    named.dispose();
    named.dispose(); // twice: still counted once
    expect(ev.wants('holds.changed')).toBe(false);
    const all = ev.onAny(() => undefined);
    expect(ev.wants('holds.changed')).toBe(true);
    all.dispose();
    all.dispose();
    expect(ev.wants('holds.changed')).toBe(false);
    expect(ev.wants('snapshots.changed')).toBe(true);
    other.dispose();
    expect(ev.listenerCount).toBe(0);
    expect(seen).toEqual([]);
  });

  it('a listener subscribed during a backup gets hold events with counts and a block map', async () => {
    const dir = mk();
    const engine = await Engine.open({ dataDir: path.join(dir, 'data') });
    try {
      await engine.api['device.add']({ path: path.join(dir, 'disk.img'), create: true, size: 64 << 20 });
      await engine.api['volume.create']({ name: 'v', size: 8 << 20 });
      const session = await engine.beginBackup('v', 'range', 'bk-test');
      const vol = engine.volume('v');
      await vol.write(0, Buffer.alloc(4096, 1));
      await new Promise((r) => setTimeout(r, 100));
      const got: HoldState[] = [];
      const sub = engine.events.on('holds.changed', (h) => got.push(h));
      await vol.write(1 << 20, Buffer.alloc(4096, 2));
      for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.length).toBeGreaterThan(0);
      const last = got[got.length - 1]!;
      expect(last.heldCount).toBe(2);
      expect(last.blockMap?.cells).toBeGreaterThan(0);
      sub.dispose();
      await session.end('snap-test');
    } finally {
      await engine.close();
    }
  });
});
