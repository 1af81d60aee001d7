// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';
import { act, cleanup, screen, waitFor, within } from '@testing-library/react';
import { CellState, decodeBlockMap, encodeBlockMap } from '../../src-shared/block-map';
import type { HoldState } from '../../src-shared/contract';
import { HoldTimeline } from '../../src-renderer/live/hold-timeline';
import { renderApp } from './render-app';
import { idleHold } from './fake-engine';

afterEach(cleanup);

const heldCount = (v: string) => screen.getByTestId(`held-count-${v}`).textContent;

function holding(volume: string, n: number, extra: Partial<HoldState> = {}): HoldState {
  return { ...idleHold(volume), backupFlag: true, policy: 'range', heldCount: n, heldBytes: n * 4096, oldestHeldAgeMs: 1500, queuedTotal: n + 10, releasedTotal: 10, journalBytes: n * 4200, ...extra };
}

describe('Hold queue screen', () => {
  it('updates the panel from holds.changed events without fetching again', async () => {
    const { engine } = renderApp('holds');
    await screen.findByTestId('held-count-vm-disk');
    expect(heldCount('vm-disk')).toBe('0');
    expect(engine.callsOf('holds.get')).toHaveLength(1);

    act(() => engine.emit('holds.changed', holding('vm-disk', 1234)));
    await waitFor(() => expect(heldCount('vm-disk')).toBe('1,234'));
    const panel = within(screen.getByTestId('held-count-vm-disk').closest('section')!);
    expect(panel.getByText('4.82 MiB')).toBeTruthy(); // held bytes
    expect(panel.getByText('1.5 s')).toBeTruthy(); // oldest held age
    expect(panel.getByText('Backup running · Range policy')).toBeTruthy();
    expect(heldCount('photos')).toBe('0'); // other volumes untouched
    expect(engine.callsOf('holds.get')).toHaveLength(1);
  });

  it('labels the sidebar hold-queue badge: the number on screen, "N writes held now" for screen readers and on hover', async () => {
    const { engine } = renderApp('holds');
    await screen.findByTestId('held-count-vm-disk');
    act(() => {
      engine.emit('holds.changed', holding('vm-disk', 1234));
      engine.emit('holds.changed', holding('photos', 2));
    });
    const link = await screen.findByRole('link', { name: 'Hold queue 1,236 writes held now' });
    const badge = link.querySelector('.nav-badge')!;
    expect(badge.getAttribute('title')).toBe('1,236 writes held now');
    expect(badge.querySelector('[aria-hidden="true"]')!.textContent).toBe('1,236');
  });

  it('every number on a panel comes from the latest hold state, even when the timeline has a newer sample', async () => {
    const { engine, timeline } = renderApp('holds');
    await screen.findByTestId('held-count-vm-disk');
    const state = holding('vm-disk', 10, { queuedTotal: 10, releasedTotal: 0 });
    act(() => engine.emit('holds.changed', state));
    await waitFor(() => expect(heldCount('vm-disk')).toBe('10'));
    // The timeline is one event ahead of the state the panel renders (a sample the cache has not caught up with).
    act(() => timeline.record([{ ...state, heldCount: 11, queuedTotal: 11 }]));
    const panel = within(screen.getByTestId('held-count-vm-disk').closest('section')!);
    expect(panel.getByText('10 / 0')).toBeTruthy();
    expect(panel.getByText(/Queued 10$/)).toBeTruthy();
    expect(panel.getByText(/Released 0$/)).toBeTruthy();
    expect(panel.getByText(/Held now 10$/)).toBeTruthy();
    expect(panel.queryByText(/11/)).toBeNull();
  });

  it('starts a new timeline when a new backup begins: no line from the last backup, no stale scale', async () => {
    const { engine } = renderApp('holds');
    await screen.findByTestId('held-count-vm-disk');
    const panel = () => within(screen.getByTestId('held-count-vm-disk').closest('section')!);
    // First backup: 95 writes queued, all released by its end.
    for (const [q, r] of [[30, 0], [95, 0], [95, 60], [95, 95]] as const) {
      act(() => engine.emit('holds.changed', holding('vm-disk', q - r, { queuedTotal: q, releasedTotal: r })));
      await waitFor(() => expect(panel().getByText(`${q} / ${r}`)).toBeTruthy());
    }
    await waitFor(() => expect(panel().getByText('+95 writes')).toBeTruthy());
    act(() => engine.emit('holds.changed', { ...idleHold('vm-disk'), queuedTotal: 95, releasedTotal: 95 }));
    await waitFor(() => expect(panel().getByText('No backup · writes flow through')).toBeTruthy());
    // Second backup: the engine restarts the totals at 0.
    for (const [q, r] of [[2, 0], [5, 0]] as const) {
      act(() => engine.emit('holds.changed', holding('vm-disk', q - r, { queuedTotal: q, releasedTotal: r })));
      await waitFor(() => expect(panel().getByText(`${q} / ${r}`)).toBeTruthy());
    }
    // The timeline redraws on the next animation frame, after the stat cards.
    await waitFor(() => expect(panel().getByText('+5 writes')).toBeTruthy());
    expect(panel().queryByText('+95 writes')).toBeNull();
    // Both lines stay inside the chart: nothing is drawn from the old totals (which would fall below the baseline).
    const chart = screen.getByRole('img', { name: /Timeline of queued and released writes for vm-disk/ });
    const ys = [...chart.querySelectorAll('polyline')].flatMap((l) => l.getAttribute('points')!.split(' ').map((xy) => Number(xy.split(',')[1])));
    expect(ys.length).toBeGreaterThan(0);
    for (const y of ys) expect(y).toBeGreaterThanOrEqual(0), expect(y).toBeLessThanOrEqual(150);
  });

  it('coalesces a burst of 20,000 events into a few cache writes and keeps the latest state', async () => {
    const { engine, timeline } = renderApp('holds');
    await screen.findByTestId('held-count-vm-disk');
    act(() => {
      for (let i = 1; i <= 20_000; i++) engine.emit('holds.changed', holding('vm-disk', i % 500, { queuedTotal: i, releasedTotal: i - (i % 500) }));
    });
    // 20,000 % 500 = 0 held, as before the burst: wait for the totals, which only the last event has.
    await screen.findByText('20,000 / 20,000');
    expect(heldCount('vm-disk')).toBe(String(20_000 % 500));
    expect(timeline.sampleCount('vm-disk')).toBeLessThanOrEqual(3);
    expect(screen.getByText(/Queued 20,000/)).toBeTruthy();
    expect(engine.callsOf('holds.get')).toHaveLength(1);
  });

  it('draws the block map the engine sends: copied, not yet copied and held cells', async () => {
    const { engine } = renderApp('holds');
    await screen.findByTestId('held-count-vm-disk');
    const cells = new Array<number>(200).fill(CellState.NOT_COPIED);
    for (let i = 0; i < 100; i++) cells[i] = CellState.COPIED;
    for (let i = 150; i < 160; i++) cells[i] = CellState.HELD;
    const states = encodeBlockMap(cells);
    act(() => engine.emit('holds.changed', holding('vm-disk', 10, { blockMap: { cells: 200, cellBytes: 50 * 1024 ** 2, states } })));
    const map = await screen.findByRole('img', { name: 'Block map of vm-disk' });
    const figure = map.closest('figure')!;
    expect(within(figure).getByText(/Copied 50%/)).toBeTruthy();
    expect(within(figure).getByText(/Not yet copied 45%/)).toBeTruthy();
    expect(within(figure).getByText(/Held writes 5%/)).toBeTruthy();
    // runs are merged: 128-column rows → row 0: copied 0-99, pending 100-127; row 1: pending, held, pending
    expect(map.querySelectorAll('rect')).toHaveLength(5);
  });
});

describe('block map encoding', () => {
  it('round-trips every state at every cell position', () => {
    for (const n of [1, 2, 3, 4, 5, 7, 13, 1000]) {
      const cells = Array.from({ length: n }, (_, i) => (i * 7 + n) % 4);
      expect([...decodeBlockMap(encodeBlockMap(cells), n)]).toEqual(cells);
    }
  });
  it('rejects text that is not base64', () => {
    expect(() => decodeBlockMap('!!!!', 4)).toThrow(RangeError);
  });
});

describe('HoldTimeline', () => {
  it('keeps at most its capacity of samples and only the last window', () => {
    let now = 0;
    const t = new HoldTimeline(120_000, 100, () => now);
    for (let i = 0; i < 10_000; i++) {
      now = i * 10;
      t.record([holding('v', i % 7, { queuedTotal: i })]);
    }
    expect(t.sampleCount('v')).toBe(100);
    const s = t.samples('v');
    expect(s.at(-1)!.queued).toBe(9_999);
    expect(s[0]!.queued).toBe(9_900);
    now += 200_000;
    expect(t.samples('v')).toHaveLength(0);
  });

  it('begins a new series when the totals reset or backupFlag rises, and keeps only the current one', () => {
    let now = 0;
    const t = new HoldTimeline(120_000, 100, () => now);
    const rec = (q: number, r: number, flag = true) => {
      now += 100;
      t.record([holding('v', q - r, { queuedTotal: q, releasedTotal: r, backupFlag: flag })]);
    };
    rec(10, 0);
    rec(95, 95);
    expect(t.seriesCount('v')).toBe(1);
    rec(0, 0); // totals reset: a new backup (its start and the old end coalesced into one frame)
    rec(4, 0);
    expect(t.seriesCount('v')).toBe(2);
    expect(t.samples('v').map((s) => s.queued)).toEqual([0, 4]);
    rec(4, 4, false); // backup ended, totals kept
    rec(4, 4, true); // next backup seen before its totals reset
    expect(t.seriesCount('v')).toBe(3);
    expect(t.samples('v').map((s) => [s.queued, s.released])).toEqual([[4, 4]]);
    rec(1, 0);
    expect(t.seriesCount('v')).toBe(4);
    expect(t.samples('v').map((s) => s.queued)).toEqual([1]);
  });
});
