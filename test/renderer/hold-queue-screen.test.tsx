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
    // The sidebar shows the total held while a backup runs.
    expect(screen.getByLabelText('1234 writes held')).toBeTruthy();
  });

  it('coalesces a burst of 20,000 events into a few cache writes and keeps the latest state', async () => {
    const { engine, timeline } = renderApp('holds');
    await screen.findByTestId('held-count-vm-disk');
    act(() => {
      for (let i = 1; i <= 20_000; i++) engine.emit('holds.changed', holding('vm-disk', i % 500, { queuedTotal: i, releasedTotal: i - (i % 500) }));
    });
    await waitFor(() => expect(heldCount('vm-disk')).toBe(String(20_000 % 500)));
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
});
