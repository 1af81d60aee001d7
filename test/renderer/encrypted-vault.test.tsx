// @vitest-environment jsdom
/**
 * An encrypted vault on the Snapshots screen: the list, verify, export and the restore wizard
 * ask for the passphrase when the engine answers VAULT_LOCKED, say clearly when it was wrong,
 * retry the same request with it, and ask once per window, not at every click.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import type { Api, OpName } from '../../src-shared/contract';
import { HoldfastError } from '../../src-shared/errors';
import { FakeEngine } from './fake-engine';
import { renderApp } from './render-app';

afterEach(cleanup);

const VAULT = '/media/backup/vault';
const SNAP = '20251124T220000Z-a1b2c3';

/** The fake engine with its default vault encrypted under `secret`, refusing vault requests as the real engine does. */
class EncryptedVaultEngine extends FakeEngine {
  constructor(readonly secret = 'correct horse') {
    super();
  }
  override api(): Api {
    const api = super.api() as unknown as Record<string, (input: { passphrase?: string }) => Promise<unknown>>;
    for (const op of ['snapshot.list', 'snapshot.verify', 'snapshot.export', 'restore.start', 'backup.start'] as OpName[]) {
      const inner = api[op]!;
      api[op] = async (input) => {
        if (input.passphrase === this.secret) return inner(input);
        this.calls.push({ op, input });
        throw input.passphrase === undefined
          ? new HoldfastError('VAULT_LOCKED', `The vault at ${VAULT} is encrypted. Give its passphrase to open it.`)
          : new HoldfastError('VAULT_LOCKED', `Wrong passphrase for the encrypted vault at ${VAULT}. Check the passphrase and try again.`);
      };
    }
    return api as unknown as Api;
  }
}

const unlock = (passphrase: string, button: string, within_ = screen) => {
  fireEvent.change(within_.getByLabelText('Vault passphrase'), { target: { value: passphrase } });
  fireEvent.click(within_.getByRole('button', { name: button }));
};

describe('encrypted vault on the Snapshots screen', () => {
  it('asks for the passphrase to list, says when it is wrong, then verifies and restores without asking again', async () => {
    const engine = new EncryptedVaultEngine();
    renderApp('snapshots', engine);
    expect(await screen.findByText(/is encrypted\. Enter its passphrase to list its snapshots/)).toBeTruthy();
    expect(screen.queryByText('Error code: VAULT_LOCKED')).toBeNull();

    fireEvent.click(screen.getByRole('button', { name: 'Unlock and list its snapshots' }));
    expect(await screen.findByText('Enter the passphrase of this vault.')).toBeTruthy();
    unlock('Correct horse', 'Unlock and list its snapshots');
    expect(await screen.findByText(/Wrong passphrase: it does not open the encrypted vault in/)).toBeTruthy();
    unlock('correct horse', 'Unlock and list its snapshots');
    await screen.findByRole('button', { name: `Verify snapshot ${SNAP}` });
    expect(engine.callsOf('snapshot.list').map((c) => c.input)).toEqual([
      { vault: VAULT },
      { vault: VAULT, passphrase: 'Correct horse' },
      { vault: VAULT, passphrase: 'correct horse' },
    ]);

    fireEvent.click(screen.getByRole('button', { name: `Verify snapshot ${SNAP}` }));
    expect(await screen.findByText(/Verified: all 768 chunks/)).toBeTruthy();
    expect(engine.callsOf('snapshot.verify').map((c) => c.input)).toEqual([{ id: SNAP, vault: VAULT, passphrase: 'correct horse' }]);

    fireEvent.click(screen.getByRole('button', { name: `Restore snapshot ${SNAP}` }));
    const dialog = within(screen.getByRole('dialog'));
    fireEvent.click(dialog.getByRole('button', { name: 'Next' }));
    fireEvent.click(await dialog.findByRole('button', { name: 'Restore' }));
    expect(await dialog.findByText(/Restored 10.0 GiB to/)).toBeTruthy();
    expect(engine.callsOf('restore.start').map((c) => c.input)).toEqual([{ id: SNAP, vault: VAULT, toVolume: 'vm-disk-restored', passphrase: 'correct horse' }]);
    expect(screen.queryByLabelText('Vault passphrase')).toBeNull();
  });

  it('verify and export ask for the passphrase when the engine says the vault is locked, and retry with it', async () => {
    const engine = new FakeEngine();
    engine.failNext.set('snapshot.verify', new HoldfastError('VAULT_LOCKED', `The vault at ${VAULT} is encrypted. Give its passphrase to open it.`));
    renderApp('snapshots', engine);
    fireEvent.click(await screen.findByRole('button', { name: `Verify snapshot ${SNAP}` }));
    expect(await screen.findByText(/is encrypted\. Enter its passphrase to verify/)).toBeTruthy();
    unlock('s3cret', 'Unlock and verify');
    expect(await screen.findByText(/Verified: all 768 chunks/)).toBeTruthy();
    expect(engine.callsOf('snapshot.verify').map((c) => c.input)).toEqual([
      { id: SNAP, vault: VAULT },
      { id: SNAP, vault: VAULT, passphrase: 's3cret' },
    ]);

    // The passphrase the vault accepted is used for the export at once; when the engine refuses it, the form asks again.
    engine.failNext.set('snapshot.export', new HoldfastError('VAULT_LOCKED', `Wrong passphrase for the encrypted vault at ${VAULT}.`));
    fireEvent.click(screen.getByRole('button', { name: `Export snapshot ${SNAP}` }));
    fireEvent.change(screen.getByLabelText('Save to'), { target: { value: '/tmp/vm.img' } });
    fireEvent.click(screen.getByRole('button', { name: 'Export' }));
    expect(await screen.findByText(/Wrong passphrase: it does not open the encrypted vault in/)).toBeTruthy();
    unlock('s3cret!', 'Unlock and export');
    expect(await screen.findByText(/Exported 10.0 GiB to/)).toBeTruthy();
    expect(engine.callsOf('snapshot.export').map((c) => c.input)).toEqual([
      { id: SNAP, format: 'raw', path: '/tmp/vm.img', vault: VAULT, passphrase: 's3cret' },
      { id: SNAP, format: 'raw', path: '/tmp/vm.img', vault: VAULT, passphrase: 's3cret!' },
    ]);
  });

  it('the restore wizard asks inside the dialog when the passphrase is refused and retries the restore', async () => {
    const engine = new FakeEngine();
    engine.failNext.set('restore.start', new HoldfastError('VAULT_LOCKED', `The vault at ${VAULT} is encrypted. Give its passphrase to open it.`));
    renderApp('snapshots', engine);
    fireEvent.click(await screen.findByRole('button', { name: `Restore snapshot ${SNAP}` }));
    const dialog = within(screen.getByRole('dialog'));
    fireEvent.click(dialog.getByRole('button', { name: 'Next' }));
    fireEvent.click(await dialog.findByRole('button', { name: 'Restore' }));
    expect(await dialog.findByText(/is encrypted\. Enter its passphrase to restore/)).toBeTruthy();
    unlock('s3cret', 'Unlock and restore', dialog as unknown as typeof screen);
    expect(await dialog.findByText(/Restored 10.0 GiB to/)).toBeTruthy();
    await waitFor(() =>
      expect(engine.callsOf('restore.start').map((c) => c.input)).toEqual([
        { id: SNAP, vault: VAULT, toVolume: 'vm-disk-restored' },
        { id: SNAP, vault: VAULT, toVolume: 'vm-disk-restored', passphrase: 's3cret' },
      ]),
    );
  });
});
