// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { renderApp } from './render-app';

afterEach(cleanup);

async function openWizard() {
  const r = renderApp('snapshots');
  fireEvent.click(await screen.findByRole('button', { name: 'Restore snapshot 20251124T220000Z-a1b2c3' }));
  return { ...r, dialog: within(screen.getByRole('dialog')) };
}

describe('Snapshots & restore screen', () => {
  it('lists the snapshots of the default vault with consistency', async () => {
    const { engine } = renderApp('snapshots');
    const row = (await screen.findByText('photos', { selector: '.strong' })).closest('tr')!;
    expect(within(row).getByText('Metadata-consistent')).toBeTruthy();
    expect(within(row).getByText('Incremental')).toBeTruthy();
    expect(engine.callsOf('snapshot.list').map((c) => c.input)).toEqual([{ vault: '/media/backup/vault' }]);
  });

  it('shows each snapshot id whole, so snapshots minutes apart are told apart, with a tooltip and a copy button', async () => {
    const writes: string[] = [];
    Object.defineProperty(navigator, 'clipboard', { configurable: true, value: { writeText: async (t: string) => void writes.push(t) } });
    renderApp('snapshots');
    for (const id of ['20251124T220000Z-a1b2c3', '20251124T220412Z-9c4e1d']) {
      const shown = await screen.findByText(id, { selector: 'code' });
      expect(shown.getAttribute('title')).toBe(id);
    }
    expect(screen.queryByText('20251124T220')).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Copy snapshot id 20251124T220412Z-9c4e1d' }));
    await screen.findByText('Copied');
    expect(writes).toEqual(['20251124T220412Z-9c4e1d']);
  });

  it('verifies a snapshot and exports it as VHD', async () => {
    const { engine } = renderApp('snapshots');
    fireEvent.click(await screen.findByRole('button', { name: 'Verify snapshot 20251124T220000Z-a1b2c3' }));
    expect(await screen.findByText('Verified: all 768 chunks decode and match their digests.')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Export snapshot 20251124T220000Z-a1b2c3' }));
    fireEvent.change(screen.getByLabelText('Format'), { target: { value: 'vhd' } });
    fireEvent.change(screen.getByLabelText('Save to'), { target: { value: '/tmp/vm.vhd' } });
    fireEvent.click(screen.getByRole('button', { name: 'Export' }));
    expect(await screen.findByText(/Exported 10.0 GiB to/)).toBeTruthy();
    expect(engine.callsOf('snapshot.export').map((c) => c.input)).toEqual([{ id: '20251124T220000Z-a1b2c3', format: 'vhd', path: '/tmp/vm.vhd', vault: '/media/backup/vault' }]);
  });

  it('restore wizard: overwriting an existing volume needs its name typed exactly', async () => {
    const { engine, dialog } = await openWizard();
    fireEvent.click(dialog.getByRole('radio', { name: /existing volume/ }));
    fireEvent.click(dialog.getByRole('button', { name: 'Next' }));
    expect(await dialog.findByText('Choose the volume to overwrite.')).toBeTruthy();
    await dialog.findByRole('option', { name: /vm-disk/ });
    expect((dialog.getByRole('option', { name: /photos/ }) as HTMLOptionElement).disabled).toBe(true); // 4 GiB < 10 GiB snapshot
    fireEvent.change(dialog.getByLabelText('Volume to overwrite'), { target: { value: 'vm-disk' } });
    fireEvent.click(dialog.getByRole('button', { name: 'Next' }));

    const go = (await dialog.findByRole('button', { name: 'Overwrite vm-disk' })) as HTMLButtonElement;
    expect(go.disabled).toBe(true);
    fireEvent.change(dialog.getByLabelText(/to confirm/), { target: { value: 'vm-disk ' } });
    expect(go.disabled).toBe(true);
    fireEvent.change(dialog.getByLabelText(/to confirm/), { target: { value: 'VM-DISK' } });
    expect(go.disabled).toBe(true);
    fireEvent.click(go);
    expect(engine.callsOf('restore.start')).toHaveLength(0);
    fireEvent.change(dialog.getByLabelText(/to confirm/), { target: { value: 'vm-disk' } });
    expect(go.disabled).toBe(false);
    fireEvent.click(go);
    expect(await dialog.findByText(/Restored 10.0 GiB to/)).toBeTruthy();
    expect(engine.callsOf('restore.start').map((c) => c.input)).toEqual([{ id: '20251124T220000Z-a1b2c3', vault: '/media/backup/vault', toVolume: 'vm-disk', confirm: 'vm-disk' }]);
  });

  it('restore wizard: the system disk and mounted drives cannot be picked; a drive needs its name typed', async () => {
    const { engine, dialog } = await openWizard();
    fireEvent.click(dialog.getByRole('radio', { name: /drive \(overwrite\)/ }));
    await dialog.findByRole('option', { name: /nvme0n1/ });
    expect((dialog.getByRole('option', { name: /nvme0n1/ }) as HTMLOptionElement).disabled).toBe(true);
    expect((dialog.getByRole('option', { name: /sdc/ }) as HTMLOptionElement).disabled).toBe(true);
    fireEvent.change(dialog.getByLabelText('Drive to overwrite'), { target: { value: 'sdb' } });
    fireEvent.click(dialog.getByRole('button', { name: 'Next' }));
    const go = (await dialog.findByRole('button', { name: 'Overwrite sdb' })) as HTMLButtonElement;
    expect(go.disabled).toBe(true);
    fireEvent.change(dialog.getByLabelText(/to confirm/), { target: { value: 'sdb' } });
    fireEvent.click(go);
    await waitFor(() => expect(engine.callsOf('restore.start').map((c) => c.input)).toEqual([{ id: '20251124T220000Z-a1b2c3', vault: '/media/backup/vault', toDevice: '/dev/sdb', confirm: 'sdb' }]));
  });

  it('restore wizard: a new volume needs no typed confirmation but a free, valid name', async () => {
    const { engine, dialog } = await openWizard();
    await screen.findAllByText('vm-disk');
    fireEvent.change(dialog.getByLabelText('New volume name'), { target: { value: 'photos' } });
    fireEvent.click(dialog.getByRole('button', { name: 'Next' }));
    expect(await dialog.findByText(/A volume named photos already exists/)).toBeTruthy();
    fireEvent.change(dialog.getByLabelText('New volume name'), { target: { value: 'vm-disk-restored' } });
    fireEvent.click(dialog.getByRole('button', { name: 'Next' }));
    expect(dialog.queryByLabelText(/to confirm/)).toBeNull();
    fireEvent.click(await dialog.findByRole('button', { name: 'Restore' }));
    await waitFor(() => expect(engine.callsOf('restore.start').map((c) => c.input)).toEqual([{ id: '20251124T220000Z-a1b2c3', vault: '/media/backup/vault', toVolume: 'vm-disk-restored' }]));
  });
});
