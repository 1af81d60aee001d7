// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';
import { act, cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import { HoldfastError } from '../../src-shared/errors';
import { renderApp } from './render-app';
import { FakeEngine } from './fake-engine';

afterEach(cleanup);

describe('Backup screen', () => {
  it('explains each hold policy in one sentence with its guarantee', async () => {
    renderApp('backup');
    await screen.findByRole('group', { name: 'What waits while the backup runs' });
    expect(screen.getByText('Every write to this volume waits (in the journal) until the backup ends.')).toBeTruthy();
    expect(screen.getByText('Only writes to blocks not yet copied wait (in the journal) until those blocks are copied.')).toBeTruthy();
    expect(screen.getByText('Exact snapshot, shortest waits.')).toBeTruthy();
    expect(screen.getByText('Only filesystem-metadata writes wait until the backup ends.')).toBeTruthy();
    expect(screen.getByText('Metadata-consistent snapshot; file data may be newer.')).toBeTruthy();
  });

  it('requires a volume, then starts with the chosen policy into the default vault without naming its path', async () => {
    const { engine } = renderApp('backup');
    await waitFor(() => expect((screen.getByLabelText('Vault folder') as HTMLInputElement).value).toBe('/media/backup/vault'));
    fireEvent.click(screen.getByRole('button', { name: 'Start backup' }));
    expect(await screen.findByText('Choose the volume to back up.')).toBeTruthy();
    expect(engine.callsOf('backup.start')).toHaveLength(0);

    await screen.findByRole('option', { name: /vm-disk/ });
    fireEvent.change(screen.getByLabelText('Volume'), { target: { value: 'vm-disk' } });
    fireEvent.click(screen.getByRole('radio', { name: /Whole volume/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Start backup' }));
    await screen.findByText('Backing up');
    // The engine picks (and on a fresh data dir creates) its default vault when no path is sent.
    expect(engine.callsOf('backup.start').map((c) => c.input)).toEqual([{ volume: 'vm-disk', policy: 'volume' }]);
  });

  it('shows progress events (percent, MB/s, ETA, dedup) and cancels with backup.abort', async () => {
    const engine = new FakeEngine();
    await engine.api()['backup.start']({ volume: 'vm-disk', policy: 'range', vault: '/media/backup/vault' });
    engine.calls = [];
    renderApp('backup', engine);
    const card = (await screen.findByText('Backing up')).closest('section')!;
    const b = engine.backups[0]!;
    act(() => engine.emit('backup.progress', { ...b, bytesDone: b.bytesTotal / 4, mbPerSec: 412.5, etaSec: 75, dedupRatio: 1.8 }));
    await within(card).findByText('25%');
    expect(within(card).getByText('413 MB/s')).toBeTruthy();
    expect(within(card).getByText('1 min 15 s')).toBeTruthy();
    expect(within(card).getByText('1.80×')).toBeTruthy();
    expect(engine.callsOf('backup.list')).toHaveLength(1); // from the event, not a refetch

    fireEvent.click(within(card).getByRole('button', { name: 'Cancel backup' }));
    await waitFor(() => expect(engine.callsOf('backup.abort').map((c) => c.input)).toEqual([{ id: b.id }]));
    await screen.findByText('aborted');
  });

  it('starts at full speed when asked (throttle off), and says when and to what rate a backup is throttled', async () => {
    const engine = new FakeEngine();
    renderApp('backup', engine);
    await screen.findByRole('option', { name: /vm-disk/ });
    fireEvent.change(screen.getByLabelText('Volume'), { target: { value: 'vm-disk' } });
    fireEvent.click(screen.getByRole('checkbox', { name: /Full speed/ }));
    fireEvent.click(screen.getByRole('button', { name: 'Start backup' }));
    const card = (await screen.findByText('Backing up')).closest('section')!;
    expect(engine.callsOf('backup.start').map((c) => c.input)).toEqual([{ volume: 'vm-disk', policy: 'range', throttle: 'off' }]);
    const b = engine.backups[0]!;
    act(() => engine.emit('backup.progress', { ...b, bytesDone: b.bytesTotal / 4, mbPerSec: 25.1, etaSec: 75, dedupRatio: null, throttledToMiBPerSec: 24 }));
    expect((await within(card).findByTestId('throttle-note')).textContent).toContain('Throttled to 24 MiB/s while volumes are being written');
    act(() => engine.emit('backup.progress', { ...b, bytesDone: b.bytesTotal / 2, mbPerSec: 900, etaSec: 5, dedupRatio: null, throttledToMiBPerSec: null }));
    await waitFor(() => expect(within(card).queryByTestId('throttle-note')).toBeNull());
  });

  it('says "full or incremental" until a progress event tells the kind, then shows the kind the engine reports', async () => {
    const engine = new FakeEngine();
    await engine.api()['backup.start']({ volume: 'vm-disk', policy: 'range' }); // the engine's first guess: incremental
    renderApp('backup', engine);
    const card = (await screen.findByText('Backing up')).closest('section')!;
    const b = engine.backups[0]!;
    expect(b.kind).toBe('incremental');
    expect(within(card).getByText(/full or incremental…/)).toBeTruthy();
    expect(within(card).queryByText(/· incremental ·/)).toBeNull();

    // No earlier snapshot: the backup turns out full.
    act(() => engine.emit('backup.progress', { ...b, kind: 'full', bytesDone: b.bytesTotal / 10, mbPerSec: 200, etaSec: 30, dedupRatio: null }));
    await within(card).findByText(/· full ·/);
    expect(within(card).queryByText(/incremental/)).toBeNull();
    act(() => engine.emit('backup.progress', { ...b, kind: 'incremental', bytesDone: b.bytesTotal / 5, mbPerSec: 200, etaSec: 20, dedupRatio: null }));
    await within(card).findByText(/· incremental ·/);
  });

  it('offers to create a vault in a folder that has none, then starts the same backup there', async () => {
    const engine = new FakeEngine();
    engine.failNext.set('backup.start', new HoldfastError('VAULT_MISSING', 'There is no vault in /media/usb/vault. Create one with `holdfast vault init /media/usb/vault`.'));
    renderApp('backup', engine);
    await screen.findByRole('option', { name: /vm-disk/ });
    fireEvent.change(screen.getByLabelText('Volume'), { target: { value: 'vm-disk' } });
    fireEvent.change(screen.getByLabelText('Vault folder'), { target: { value: '/media/usb/vault' } });
    fireEvent.click(screen.getByRole('button', { name: 'Start backup' }));
    expect(await screen.findByText('Error code: VAULT_MISSING')).toBeTruthy();
    expect(engine.callsOf('vault.init')).toHaveLength(0);

    fireEvent.click(screen.getByRole('button', { name: 'Create vault here' }));
    await screen.findByText('Backing up');
    expect(engine.callsOf('vault.init').map((c) => c.input)).toEqual([{ dir: '/media/usb/vault' }]);
    const starts = engine.callsOf('backup.start').map((c) => c.input);
    expect(starts).toEqual([
      { volume: 'vm-disk', vault: '/media/usb/vault', policy: 'range' },
      { volume: 'vm-disk', vault: '/media/usb/vault', policy: 'range' },
    ]);
    expect(screen.queryByText('Error code: VAULT_MISSING')).toBeNull();
  });

  it('asks for the passphrase of an encrypted vault and retries with it until the vault opens', async () => {
    const engine = new FakeEngine();
    const locked = () => new HoldfastError('VAULT_LOCKED', 'The vault in /media/usb/secret is encrypted; give its passphrase.');
    engine.failNext.set('backup.start', locked());
    renderApp('backup', engine);
    await screen.findByRole('option', { name: /vm-disk/ });
    fireEvent.change(screen.getByLabelText('Volume'), { target: { value: 'vm-disk' } });
    fireEvent.change(screen.getByLabelText('Vault folder'), { target: { value: '/media/usb/secret' } });
    fireEvent.click(screen.getByRole('button', { name: 'Start backup' }));

    fireEvent.click(await screen.findByRole('button', { name: 'Unlock and start the backup' }));
    expect(await screen.findByText('Enter the passphrase of this vault.')).toBeTruthy();
    expect(engine.callsOf('backup.start')).toHaveLength(1);

    engine.failNext.set('backup.start', locked()); // a wrong passphrase: asked again
    fireEvent.change(screen.getByLabelText('Vault passphrase'), { target: { value: 'wrong' } });
    fireEvent.click(screen.getByRole('button', { name: 'Unlock and start the backup' }));
    await waitFor(() => expect(engine.callsOf('backup.start')).toHaveLength(2));
    expect(await screen.findByText(/Wrong passphrase: it does not open the encrypted vault in/)).toBeTruthy();
    fireEvent.change(await screen.findByLabelText('Vault passphrase'), { target: { value: 'correct horse' } });
    fireEvent.click(screen.getByRole('button', { name: 'Unlock and start the backup' }));
    await screen.findByText('Backing up');
    expect(engine.callsOf('backup.start').map((c) => c.input)).toEqual([
      { volume: 'vm-disk', vault: '/media/usb/secret', policy: 'range' },
      { volume: 'vm-disk', vault: '/media/usb/secret', policy: 'range', passphrase: 'wrong' },
      { volume: 'vm-disk', vault: '/media/usb/secret', policy: 'range', passphrase: 'correct horse' },
    ]);
    expect(screen.queryByLabelText('Vault passphrase')).toBeNull();
  });

  it('shows why a backup did not start', async () => {
    const engine = new FakeEngine();
    engine.failNext.set('backup.start', new HoldfastError('VAULT_MISSING', 'The vault folder /media/backup/vault is not there. Is the backup drive plugged in?'));
    renderApp('backup', engine);
    await screen.findByRole('option', { name: /vm-disk/ });
    fireEvent.change(screen.getByLabelText('Volume'), { target: { value: 'vm-disk' } });
    fireEvent.click(screen.getByRole('button', { name: 'Start backup' }));
    expect(await screen.findByText(/Is the backup drive plugged in\?/)).toBeTruthy();
    expect(screen.getByText('Error code: VAULT_MISSING')).toBeTruthy();
  });
});
