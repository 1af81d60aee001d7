// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';
import { act, cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { HoldfastError } from '../../src-shared/errors';
import { renderApp } from './render-app';
import { FakeEngine } from './fake-engine';

afterEach(cleanup);

const card = (name: string) => screen.getAllByText(name, { selector: '.card-head .mono' })[0]!.closest('section')!;

describe('Volumes screen', () => {
  it('shows each volume with its extent map across devices and NBD addresses to copy', async () => {
    renderApp('volumes');
    await screen.findByText('vm-disk', { selector: '.card-head .mono' });
    const vm = within(card('vm-disk'));
    expect(vm.getByRole('img', { name: 'Extent map: 2 extent(s) on 2 device(s)' })).toBeTruthy();
    expect(vm.getByText('/srv/holdfast/disk1.img')).toBeTruthy();
    expect(vm.getByText('/srv/holdfast/disk2.img')).toBeTruthy();
    expect(vm.getByText('nbd+unix:///vm-disk?socket=/home/u/.local/share/holdfast/nbd.sock')).toBeTruthy();
    expect(vm.getByText('nbd://127.0.0.1:10809/vm-disk')).toBeTruthy();
    expect(vm.getByRole('button', { name: 'Copy TCP address of vm-disk' })).toBeTruthy();
    expect(vm.getByText('1 NBD client(s)')).toBeTruthy();
  });

  it("shows a volume's own NBD URIs as the engine sends them, each once and not wrapped again", async () => {
    renderApp('volumes');
    await screen.findByText('vm-disk', { selector: '.card-head .mono' });
    const shown = [...card('vm-disk').querySelectorAll('code.addr')].map((c) => c.textContent);
    expect(shown).toEqual(['nbd+unix:///vm-disk?socket=/home/u/.local/share/holdfast/nbd.sock', 'nbd://127.0.0.1:10809/vm-disk']);
  });

  it("builds a volume's NBD URIs from the engine's raw socket path and host:port when the volume has none", async () => {
    const engine = new FakeEngine();
    engine.volumes[1]!.nbd = null;
    renderApp('volumes', engine);
    await screen.findByText('photos', { selector: '.card-head .mono' });
    const shown = [...card('photos').querySelectorAll('code.addr')].map((c) => c.textContent);
    expect(shown).toEqual(['nbd+unix:///photos?socket=/home/u/.local/share/holdfast/nbd.sock', 'nbd://127.0.0.1:10809/photos']);
  });

  it('shows each volume\'s live write rate from volumes.stats events, idle when zero', async () => {
    const { engine } = renderApp('volumes');
    await screen.findByText('vm-disk', { selector: '.card-head .mono' });
    expect(within(card('vm-disk')).getByTestId('write-rate-vm-disk').textContent).toBe('Idle');
    act(() =>
      engine.emit('volumes.stats', {
        intervalMs: 1000,
        volumes: [
          { volume: 'vm-disk', writesPerSec: 312.4, bytesPerSec: 1.2 * 1024 ** 2 },
          { volume: 'photos', writesPerSec: 0, bytesPerSec: 0 },
        ],
      }),
    );
    const rate = (name: string) => within(card(name)).getByTestId(`write-rate-${name}`).textContent;
    await waitFor(() => expect(rate('vm-disk')).toBe('312 writes/s · 1.20 MiB/s'));
    expect(within(card('photos')).getByTestId('write-rate-photos').textContent).toBe('Idle');
    // A list refresh (an NBD client connecting) does not blank the rate.
    act(() => engine.emit('volumes.changed', {}));
    await waitFor(() => expect(engine.callsOf('volume.list').length).toBeGreaterThan(1));
    await screen.findByText('vm-disk', { selector: '.card-head .mono' });
    expect(rate('vm-disk')).toBe('312 writes/s · 1.20 MiB/s');
    act(() => engine.emit('volumes.stats', { intervalMs: 1000, volumes: [{ volume: 'vm-disk', writesPerSec: 0, bytesPerSec: 0 }, { volume: 'photos', writesPerSec: 0, bytesPerSec: 0 }] }));
    await waitFor(() => expect(rate('vm-disk')).toBe('Idle'));
  });

  it('validates name and size before calling volume.create, then creates and lists the volume', async () => {
    const { engine } = renderApp('volumes');
    await screen.findByText('vm-disk', { selector: '.card-head .mono' });
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: '-bad name' } });
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '1000' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create volume' }));
    expect(await screen.findByText(/Volume names are 1–64 letters/)).toBeTruthy();
    expect(screen.getByText(/multiple of 4 KiB/)).toBeTruthy();
    expect(engine.callsOf('volume.create')).toHaveLength(0);

    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'scratch' } });
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '512M' } });
    fireEvent.click(screen.getByRole('checkbox', { name: /disk2\.img/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Create volume' }));
    await screen.findByText('scratch', { selector: '.card-head .mono' });
    expect(engine.callsOf('volume.create').map((c) => c.input)).toEqual([{ name: 'scratch', size: 512 * 1024 ** 2, ack: 'journal', devices: [2] }]);
  });

  it('keeps what was typed while volume.create ran: only the submitted name and size are cleared', async () => {
    const engine = new FakeEngine();
    let answer = () => {};
    engine.waitFor.set('volume.create', new Promise<void>((r) => (answer = r)));
    renderApp('volumes', engine);
    await screen.findByText('vm-disk', { selector: '.card-head .mono' });
    const name = screen.getByLabelText('Name') as HTMLInputElement;
    const size = screen.getByLabelText('Size') as HTMLInputElement;
    fireEvent.change(name, { target: { value: 'first' } });
    fireEvent.change(size, { target: { value: '1G' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create volume' }));
    await screen.findByRole('button', { name: 'Creating…' });
    // The person starts on the next volume before the first one is listed.
    fireEvent.change(name, { target: { value: 'second' } });
    act(() => answer());
    await screen.findByText('first', { selector: '.card-head .mono' });
    await screen.findByRole('button', { name: 'Create volume' });
    expect(name.value).toBe('second');
    expect(size.value).toBe('');
  });

  it('shows the engine error on the create form', async () => {
    const engine = new FakeEngine();
    engine.failNext.set('volume.create', new HoldfastError('NO_SPACE', 'The devices have 10.0 GiB free; 64.0 GiB were asked for. Add a device or pick a smaller size.'));
    renderApp('volumes', engine);
    await screen.findByText('vm-disk', { selector: '.card-head .mono' });
    fireEvent.change(screen.getByLabelText('Name'), { target: { value: 'huge' } });
    fireEvent.change(screen.getByLabelText('Size'), { target: { value: '64G' } });
    fireEvent.click(screen.getByRole('button', { name: 'Create volume' }));
    expect(await screen.findByText(/Add a device or pick a smaller size/)).toBeTruthy();
    expect(screen.getByText('Error code: NO_SPACE')).toBeTruthy();
  });

  it('grows only to a larger size and deletes after an explicit confirmation', async () => {
    const { engine } = renderApp('volumes');
    await screen.findByText('photos', { selector: '.card-head .mono' });
    const photos = within(card('photos'));
    fireEvent.change(photos.getByLabelText('Grow to'), { target: { value: '2G' } });
    fireEvent.click(photos.getByRole('button', { name: 'Grow' }));
    expect(await photos.findByText(/must be larger than the current 4.00 GiB/)).toBeTruthy();
    fireEvent.change(photos.getByLabelText('Grow to'), { target: { value: '8G' } });
    fireEvent.click(photos.getByRole('button', { name: 'Grow' }));
    await waitFor(() => expect(engine.callsOf('volume.grow').map((c) => c.input)).toEqual([{ name: 'photos', size: 8 * 1024 ** 3 }]));

    fireEvent.click(within(card('photos')).getByRole('button', { name: 'Delete volume…' }));
    expect(engine.callsOf('volume.delete')).toHaveLength(0);
    fireEvent.click(within(card('photos')).getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(screen.queryByText('photos', { selector: '.card-head .mono' })).toBeNull());
    expect(engine.callsOf('volume.delete').map((c) => c.input)).toEqual([{ name: 'photos' }]);
  });
});
