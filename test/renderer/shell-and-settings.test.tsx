// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';
import { act, cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { renderApp } from './render-app';

afterEach(cleanup);

describe('App shell, Schedules and Settings', () => {
  it('navigates with links in the sidebar and marks the current page', async () => {
    renderApp('drives');
    const nav = screen.getByRole('navigation', { name: 'Main' });
    expect(nav.querySelector('[aria-current="page"]')!.textContent).toContain('Drives & devices');
    act(() => {
      window.location.hash = '#/volumes';
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    });
    expect(await screen.findByRole('heading', { level: 1, name: 'Volumes' })).toBeTruthy();
    expect(nav.querySelector('[aria-current="page"]')!.textContent).toContain('Volumes');
  });

  it('offers a form to schedule backups (the Schedules screen has its own tests)', async () => {
    renderApp('schedules');
    expect(await screen.findByRole('heading', { level: 2, name: 'New schedule' })).toBeTruthy();
    expect(screen.getByRole('button', { name: 'Create schedule' })).toBeTruthy();
  });

  it('shows the data directory and switches the theme', async () => {
    renderApp('settings');
    expect(await screen.findByText('/home/u/.local/share/holdfast')).toBeTruthy();
    fireEvent.click(screen.getByRole('radio', { name: 'Dark' }));
    expect(document.documentElement.dataset.theme).toBe('dark');
    fireEvent.click(screen.getByRole('radio', { name: 'Light' }));
    expect(document.documentElement.dataset.theme).toBe('light');
    expect(JSON.parse(localStorage.getItem('holdfast.preferences')!).theme).toBe('light');
  });

  it('a saved default vault is what the Backup screen starts with', async () => {
    renderApp('settings');
    fireEvent.change(await screen.findByLabelText(/Vault folder the Backup/), { target: { value: '/mnt/usb/vault' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    act(() => {
      window.location.hash = '#/backup';
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    });
    await waitFor(() => expect((screen.getByLabelText('Vault folder') as HTMLInputElement).value).toBe('/mnt/usb/vault'));
  });
});
