// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { HoldfastError } from '../../src-shared/errors';
import { renderApp } from './render-app';
import { FakeEngine } from './fake-engine';

afterEach(cleanup);

describe('Drives & devices screen', () => {
  it('lists drives with size and model, and marks the system disk protected and not usable', async () => {
    renderApp('drives');
    const table = (await screen.findByText('Samsung SSD 980 PRO')).closest('table')!;
    const systemRow = within(table).getByText('nvme0n1').closest('tr')!;
    expect(within(systemRow).getByText('System disk · protected')).toBeTruthy();
    expect(within(systemRow).getByText('512 GiB')).toBeTruthy();
    expect((within(systemRow).getByRole('button', { name: 'Use as device…' }) as HTMLButtonElement).disabled).toBe(true);
    const mountedRow = within(table).getByText('sdc').closest('tr')!;
    expect(within(mountedRow).getByText('In use · mounted')).toBeTruthy();
    expect(within(mountedRow).getByText(/Mounted at \/media\/backup/)).toBeTruthy();
    const freeRow = within(table).getByText('sdb').closest('tr')!;
    expect(within(freeRow).getByText('Removable')).toBeTruthy();
    expect((within(freeRow).getByRole('button', { name: 'Use as device…' }) as HTMLButtonElement).disabled).toBe(false);
  });

  it('adds a drive as a device only after its name is typed, and passes it as confirm', async () => {
    const { engine } = renderApp('drives');
    const row = (await screen.findByText('SanDisk Extreme')).closest('tr')!;
    fireEvent.click(within(row).getByRole('button', { name: 'Use as device…' }));
    const format = screen.getByRole('button', { name: 'Format sdb' }) as HTMLButtonElement;
    expect(screen.getByText(/Everything on it now is erased/)).toBeTruthy();
    expect(format.disabled).toBe(true);
    fireEvent.change(screen.getByLabelText(/to confirm/), { target: { value: 'sd' } });
    expect(format.disabled).toBe(true);
    fireEvent.click(format);
    expect(engine.callsOf('device.add')).toHaveLength(0);
    fireEvent.change(screen.getByLabelText(/to confirm/), { target: { value: 'sdb' } });
    fireEvent.click(format);
    await waitFor(() => expect(engine.callsOf('device.add').map((c) => c.input)).toEqual([{ path: '/dev/sdb', confirm: 'sdb' }]));
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Format sdb' })).toBeNull());
  });

  it('lists image-file devices with size and free space', async () => {
    renderApp('drives');
    const cell = await screen.findByText('/srv/holdfast/disk1.img');
    const row = cell.closest('tr')!;
    expect(within(row).getByText('16.0 GiB')).toBeTruthy();
    expect(within(row).getByText('4.00 GiB')).toBeTruthy();
  });

  it('rejects a size it cannot read without calling the engine, then creates a 2G image file', async () => {
    const { engine } = renderApp('drives');
    await screen.findByText('/srv/holdfast/disk1.img');
    fireEvent.change(screen.getByLabelText('New image file path'), { target: { value: '/srv/holdfast/new.img' } });
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: 'two gigs' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create image file' }));
    expect((await screen.findByText(/"two gigs" is not a size/)).getAttribute('role')).toBe('alert');
    expect(screen.getByLabelText('Size').getAttribute('aria-invalid')).toBe('true');
    expect(engine.callsOf('device.add')).toHaveLength(0);

    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '2G' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create image file' }));
    await screen.findByText('Added /srv/holdfast/new.img.');
    expect(engine.callsOf('device.add').map((c) => c.input)).toEqual([{ path: '/srv/holdfast/new.img', create: true, size: 2 * 1024 ** 3 }]);
    // The mutation invalidated the device list, so the new device is listed.
    await screen.findByText('/srv/holdfast/new.img', { selector: 'span' });
  });

  it('shows the engine’s message and code where the add failed', async () => {
    const engine = new FakeEngine();
    engine.failNext.set('device.add', new HoldfastError('NO_SPACE', 'The folder /srv/holdfast has only 1.2 GiB free; a 2 GiB image does not fit.'));
    renderApp('drives', engine);
    await screen.findByText('/srv/holdfast/disk1.img');
    fireEvent.change(screen.getByLabelText('New image file path'), { target: { value: '/srv/holdfast/big.img' } });
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '2G' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create image file' }));
    const alert = await screen.findByText(/has only 1.2 GiB free/);
    const box = alert.closest('[role="alert"]')!;
    expect(within(box as HTMLElement).getByText('The device was not added')).toBeTruthy();
    expect(within(box as HTMLElement).getByText('Error code: NO_SPACE')).toBeTruthy();
  });
});
