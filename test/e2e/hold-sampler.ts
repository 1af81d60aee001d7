/**
 * In-page sampling of what the hold-queue panel shows: a requestAnimationFrame loop that reads
 * the numbers rendered in a volume's panel (held writes, queued / released) and records every
 * change with its time. Runs inside the browser page (serialised by Playwright), so it sees
 * exactly what a person would see, frame by frame, whichever screen is open.
 */
export interface HoldSample {
  t: number;
  held: number;
  queued: number;
  released: number;
  /** The panel's badge says a backup is running. */
  running: boolean;
}

/** Installed with `page.evaluate(installHoldSampler, volume)`; samples accumulate in `window.__holdSamples[volume]`. */
export function installHoldSampler(volume: string): void {
  const w = window as unknown as { __holdSamples?: Record<string, HoldSample[]>; __holdSamplerStop?: Record<string, boolean> };
  const all = (w.__holdSamples ??= {});
  const stop = (w.__holdSamplerStop ??= {});
  all[volume] = [];
  stop[volume] = false;
  const num = (s: string | null | undefined) => Number((s ?? '').replace(/[^0-9]/g, '') || NaN);
  let last = '';
  const tick = () => {
    if (stop[volume]) return;
    const heldEl = document.querySelector(`[data-testid="held-count-${CSS.escape(volume)}"]`);
    if (heldEl) {
      const dl = heldEl.closest('dl');
      const dds = dl ? Array.from(dl.querySelectorAll('dd')) : [];
      const qr = (dds[3]?.textContent ?? '').split('/');
      const running = /Backup running/.test(heldEl.closest('.card')?.querySelector('.card-actions')?.textContent ?? '');
      const key = `${heldEl.textContent}|${dds[3]?.textContent}|${running}`;
      if (key !== last) {
        last = key;
        all[volume]!.push({ t: performance.now(), held: num(heldEl.textContent), queued: num(qr[0]), released: num(qr[1]), running });
      }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

/** The samples so far; `stop` ends the sampling loop. */
export function readHoldSamples([volume, stop]: [string, boolean]): HoldSample[] {
  const w = window as unknown as { __holdSamples?: Record<string, HoldSample[]>; __holdSamplerStop?: Record<string, boolean> };
  if (stop && w.__holdSamplerStop) w.__holdSamplerStop[volume] = true;
  return w.__holdSamples?.[volume] ?? [];
}
