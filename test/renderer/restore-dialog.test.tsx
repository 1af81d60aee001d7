// @vitest-environment jsdom
/**
 * The restore wizard is a modal dialog (WAI-ARIA dialog pattern): Tab and Shift+Tab cycle
 * inside it, the page behind is inert, Escape closes it and focus returns to the button that
 * opened it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { act, cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { tabbables } from '../../src-renderer/components/ModalDialog';
import { renderApp } from './render-app';

afterEach(cleanup);

const SNAP = '20251124T220000Z-a1b2c3';

/**
 * Presses (Shift+)Tab as a browser does: the keydown goes to the focused element; unless a
 * handler prevents it, focus moves to the next (previous) tab stop of the page, skipping inert parts.
 */
function tab(shift = false): HTMLElement {
  const from = (document.activeElement ?? document.body) as HTMLElement;
  const notPrevented = fireEvent.keyDown(from, { key: 'Tab', shiftKey: shift });
  if (notPrevented) {
    const stops = tabbables(document.body);
    const i = stops.indexOf(from);
    let next: HTMLElement | undefined;
    if (i >= 0) next = stops[shift ? i - 1 : i + 1];
    else {
      const after = stops.filter((s) => from.compareDocumentPosition(s) & Node.DOCUMENT_POSITION_FOLLOWING);
      next = shift ? stops.filter((s) => !after.includes(s)).at(-1) : after[0];
    }
    act(() => (next ?? document.body).focus());
  }
  return document.activeElement as HTMLElement;
}

const describeEl = (el: Element) => el.getAttribute('aria-label') ?? el.textContent?.trim() ?? el.id ?? el.tagName;

async function openWizard() {
  renderApp('snapshots');
  const opener = await screen.findByRole('button', { name: `Restore snapshot ${SNAP}` });
  act(() => opener.focus());
  fireEvent.click(opener);
  const dialog = await screen.findByRole('dialog');
  await waitFor(() => expect(dialog.contains(document.activeElement)).toBe(true));
  return { opener, dialog };
}

describe('restore dialog focus', () => {
  it('Tab and Shift+Tab cycle inside the dialog; the page behind is inert', async () => {
    const { dialog } = await openWizard();
    expect(dialog.getAttribute('aria-modal')).toBe('true');
    expect(document.querySelector('main')!.closest('[inert]')).not.toBeNull();

    const forward: string[] = [];
    for (let i = 0; i < 12; i++) {
      const at = tab();
      expect(dialog.contains(at), `Tab #${i + 1} left the dialog for ${describeEl(at)}`).toBe(true);
      forward.push(describeEl(at));
    }
    // One stop for the target radio group, the name field, Cancel, Next — then round again.
    const stops = tabbables(dialog);
    expect(stops.map((s) => s.tagName)).toEqual(['INPUT', 'INPUT', 'BUTTON', 'BUTTON']);
    expect(forward.slice(0, 8)).toEqual([...stops, ...stops].map(describeEl));

    act(() => stops[0]!.focus());
    expect(tab(true)).toBe(stops[3]);
    for (let i = 0; i < 9; i++) expect(dialog.contains(tab(true))).toBe(true);

    // On the confirm step the stops change; the cycle still holds.
    fireEvent.click(screen.getByRole('button', { name: 'Next' }));
    await screen.findByRole('button', { name: 'Restore' });
    for (let i = 0; i < 6; i++) expect(dialog.contains(tab())).toBe(true);
    for (let i = 0; i < 6; i++) expect(dialog.contains(tab(true))).toBe(true);
  });

  it('Escape closes the dialog and focus returns to the button that opened it', async () => {
    const { opener } = await openWizard();
    fireEvent.keyDown(document.activeElement!, { key: 'Escape' });
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(document.activeElement).toBe(opener);
    expect(document.querySelector('[inert]')).toBeNull();
  });

  it('focus that lands outside the open dialog is brought back in', async () => {
    const { dialog } = await openWizard();
    act(() => screen.getByRole('link', { name: 'Volumes', hidden: true }).focus());
    expect(dialog.contains(document.activeElement)).toBe(true);
  });
});
