// @vitest-environment jsdom
import { afterEach, describe, expect, it } from 'vitest';
import { act, cleanup, fireEvent, screen, waitFor, within } from '@testing-library/react';
import type { Schedule } from '../../src-shared/contract';
import { HoldfastError } from '../../src-shared/errors';
import { clearNotices } from '../../src-renderer/live/notices';
import { renderApp } from './render-app';
import { FakeEngine } from './fake-engine';

afterEach(() => {
  cleanup();
  clearNotices();
});

const form = () => within(screen.getByRole('region', { name: 'Schedule form' }));
const row = (name: string) => screen.getByRole('row', { name: new RegExp(`: ${name}$`) });

function withSchedules(): FakeEngine {
  const engine = new FakeEngine();
  const base = { onPlugIn: false, vault: '/media/backup/vault', policy: 'range', enabled: true, createdAt: '2025-11-20T10:00:00Z', vaultPresent: true } as const;
  engine.schedules = [
    {
      ...base, id: 1, target: { kind: 'volume', volume: 'vm-disk' }, frequency: { every: 'day', at: '02:30' }, retention: { keepLast: 3, keepDaily: 7 }, nextRunAt: '2025-11-26T02:30:00Z',
      lastRun: { trigger: 'time', status: 'completed', startedAt: '2025-11-25T02:30:00Z', endedAt: '2025-11-25T02:31:00Z', backupId: 'bk-1', snapshotId: '20251125T023000Z-a1b2c3', pruned: 2, error: null },
    },
    {
      ...base, id: 2, target: { kind: 'volume', volume: 'photos' }, frequency: null, onPlugIn: true, vault: '/media/usb/vault', vaultPresent: false, retention: {}, nextRunAt: null,
      lastRun: { trigger: 'plug-in', status: 'failed', startedAt: '2025-11-24T18:00:00Z', endedAt: '2025-11-24T18:00:01Z', backupId: null, snapshotId: null, pruned: null, error: 'No vault folder at /media/usb/vault. Is the drive connected?' },
    },
  ] satisfies Schedule[];
  return engine;
}

describe('Schedules screen', () => {
  it('checks the form in words a person can act on before anything is sent, then creates the schedule', async () => {
    const { engine } = renderApp('schedules');
    expect(await screen.findByText(/No schedules yet/)).toBeTruthy();
    await form().findByRole('option', { name: 'vm-disk' });
    fireEvent.change(form().getByLabelText(/^At/), { target: { value: '25:00' } });
    fireEvent.change(form().getByLabelText('Keep last'), { target: { value: '-1' } });
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    expect(await form().findByText('Times are HH:MM on a 24-hour clock, for example 02:30 or 18:00.')).toBeTruthy();
    expect(form().getByText(/“Keep last” must be a whole number/)).toBeTruthy();

    fireEvent.change(form().getByLabelText('Repeat'), { target: { value: 'none' } });
    fireEvent.change(form().getByLabelText('Keep last'), { target: { value: '3' } });
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    expect(await form().findByText(/Say when to back up/)).toBeTruthy();
    expect(engine.callsOf('schedule.create')).toHaveLength(0);

    fireEvent.change(form().getByLabelText('Repeat'), { target: { value: 'week' } });
    fireEvent.change(form().getByLabelText('On'), { target: { value: '5' } });
    fireEvent.change(form().getByLabelText(/^At/), { target: { value: '7:45' } });
    fireEvent.change(form().getByLabelText('Volume'), { target: { value: 'photos' } });
    fireEvent.change(form().getByLabelText('Hold policy'), { target: { value: 'metadata' } });
    fireEvent.click(form().getByRole('checkbox', { name: /Also when the backup drive is plugged in/ }));
    fireEvent.change(form().getByLabelText('Monthly'), { target: { value: '6' } });
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    await screen.findByRole('row', { name: /: photos$/ });
    expect(engine.callsOf('schedule.create').map((c) => c.input)).toEqual([
      { target: { kind: 'volume', volume: 'photos' }, frequency: { every: 'week', weekday: 5, at: '07:45' }, onPlugIn: true, policy: 'metadata', retention: { keepLast: 3, keepMonthly: 6 }, enabled: true },
    ]);
    const r = within(row('photos'));
    expect(r.getByText('Every Friday at 07:45, and when the backup drive is plugged in')).toBeTruthy();
    expect(r.getByText('Keeps the last 3, 6 monthly')).toBeTruthy();
    expect(r.getByText('Not run yet')).toBeTruthy();
    expect(form().getByText('Created the schedule of photos.')).toBeTruthy();
  });

  it('keeps what was typed while schedule.create ran, and empties the form when nothing was', async () => {
    const engine = new FakeEngine();
    let answer = () => {};
    engine.waitFor.set('schedule.create', new Promise<void>((r) => (answer = r)));
    renderApp('schedules', engine);
    await form().findByRole('option', { name: 'vm-disk' });
    fireEvent.change(form().getByLabelText('Keep last'), { target: { value: '3' } });
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    await waitFor(() => expect(engine.callsOf('schedule.create')).toHaveLength(1));
    // The person starts on the next schedule before the first one is listed.
    fireEvent.change(form().getByLabelText('Keep last'), { target: { value: '9' } });
    act(() => answer());
    await screen.findByRole('row', { name: /: vm-disk$/ });
    await form().findByText('Created the schedule of vm-disk.');
    expect((form().getByLabelText('Keep last') as HTMLInputElement).value).toBe('9');

    engine.waitFor.delete('schedule.create');
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    await waitFor(() => expect(engine.callsOf('schedule.create')).toHaveLength(2));
    await waitFor(() => expect((form().getByLabelText('Keep last') as HTMLInputElement).value).toBe(''));
  });

  it('schedules a drive image and shows the engine’s error where it happened', async () => {
    const engine = new FakeEngine();
    engine.failNext.set('schedule.create', new HoldfastError('VAULT_MISSING', 'No vault folder at /media/usb/vault. Is the drive connected?'));
    renderApp('schedules', engine);
    await screen.findByText(/No schedules yet/);
    fireEvent.click(form().getByRole('radio', { name: /A drive/ }));
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    expect(await form().findByText(/Name the drive to image/)).toBeTruthy();
    fireEvent.change(form().getByLabelText('Drive'), { target: { value: 'sdb' } });
    fireEvent.change(form().getByLabelText('Vault folder'), { target: { value: '/media/usb/vault' } });
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    expect(await form().findByText('No vault folder at /media/usb/vault. Is the drive connected?')).toBeTruthy();
    expect(form().getByText('Error code: VAULT_MISSING')).toBeTruthy();
    fireEvent.click(form().getByRole('button', { name: 'Create schedule' }));
    await screen.findByRole('row', { name: /: \/dev\/sdb$/ });
    expect(engine.callsOf('schedule.create').at(-1)!.input).toEqual({ target: { kind: 'drive', drive: 'sdb' }, frequency: { every: 'day', at: '02:00' }, onPlugIn: false, retention: {}, enabled: true, vault: '/media/usb/vault' });
    expect(within(row('/dev/sdb')).getByText('Drive image')).toBeTruthy();
  });

  it('lists next and last runs with status and reason; run now, turn off, delete after confirming', async () => {
    const long = '/media/backup/holdfast-vaults/family-archive/vault';
    const setup = withSchedules();
    setup.schedules[0] = { ...setup.schedules[0]!, vault: long };
    const { engine } = renderApp('schedules', setup);
    await screen.findByRole('row', { name: /: vm-disk$/ });
    const vm = within(row('vm-disk'));
    // A long vault folder shows its end (what tells vaults apart); the whole path is its title.
    expect(vm.getByTitle(long).textContent).toBe('…ts/family-archive/vault');
    expect(within(row('photos')).getByText('/media/usb/vault')).toBeTruthy();
    expect(vm.getByText('Every day at 02:30')).toBeTruthy();
    expect(vm.getByText('Keeps the last 3, 7 daily')).toBeTruthy();
    expect(vm.getByText('Completed')).toBeTruthy();
    expect(vm.getByText('20251125T023000Z-a1b2c3')).toBeTruthy();
    expect(vm.getByText(/2 old removed/)).toBeTruthy();
    const photos = within(row('photos'));
    expect(photos.getByText('When the backup drive is plugged in')).toBeTruthy();
    expect(photos.getByText('Not connected')).toBeTruthy();
    expect(photos.getByText('Failed')).toBeTruthy();
    expect(photos.getByText('No vault folder at /media/usb/vault. Is the drive connected?')).toBeTruthy();
    expect(photos.getByText('On plug-in only')).toBeTruthy();

    fireEvent.click(vm.getByRole('button', { name: 'Run now: vm-disk' }));
    await waitFor(() => expect(within(row('vm-disk')).getByText('Running…', { selector: '.badge' })).toBeTruthy());
    expect(engine.callsOf('schedule.runNow').map((c) => c.input)).toEqual([{ id: 1 }]);

    fireEvent.click(photos.getByRole('button', { name: 'Turn off schedule of photos' }));
    await waitFor(() => expect(within(row('photos')).getByText('Off')).toBeTruthy());
    expect(engine.callsOf('schedule.update').map((c) => c.input)).toEqual([{ id: 2, enabled: false }]);

    fireEvent.click(within(row('photos')).getByRole('button', { name: 'Delete schedule of photos' }));
    expect(engine.callsOf('schedule.delete')).toHaveLength(0);
    const confirm = screen.getByRole('group', { name: 'Confirm deleting the schedule of photos' });
    fireEvent.click(within(confirm).getByRole('button', { name: 'Delete schedule' }));
    await waitFor(() => expect(screen.queryByRole('row', { name: /: photos$/ })).toBeNull());
    expect(engine.callsOf('schedule.delete').map((c) => c.input)).toEqual([{ id: 2 }]);
  });

  it('edits a schedule in the form, prefilled, and saves only through schedule.update', async () => {
    const { engine } = renderApp('schedules', withSchedules());
    await screen.findByRole('row', { name: /: vm-disk$/ });
    fireEvent.click(within(row('vm-disk')).getByRole('button', { name: 'Edit schedule of vm-disk' }));
    expect(await screen.findByRole('heading', { name: 'Edit the schedule of vm-disk' })).toBeTruthy();
    expect((form().getByLabelText(/^At/) as HTMLInputElement).value).toBe('02:30');
    expect((form().getByLabelText('Keep last') as HTMLInputElement).value).toBe('3');
    fireEvent.change(form().getByLabelText('Repeat'), { target: { value: 'hour' } });
    fireEvent.change(form().getByLabelText('Minutes past the hour'), { target: { value: '75' } });
    fireEvent.click(form().getByRole('button', { name: 'Save changes' }));
    expect(await form().findByText('Minutes past the hour are a whole number from 0 to 59.')).toBeTruthy();
    fireEvent.change(form().getByLabelText('Minutes past the hour'), { target: { value: '15' } });
    fireEvent.click(form().getByRole('button', { name: 'Save changes' }));
    await waitFor(() => expect(within(row('vm-disk')).getByText('Every hour at :15')).toBeTruthy());
    expect(engine.callsOf('schedule.create')).toHaveLength(0);
    expect(engine.callsOf('schedule.update').map((c) => c.input)).toEqual([
      { id: 1, target: { kind: 'volume', volume: 'vm-disk' }, frequency: { every: 'hour', minute: 15 }, onPlugIn: false, policy: 'range', retention: { keepLast: 3, keepDaily: 7 }, enabled: true, vault: '/media/backup/vault' },
    ]);
    expect(screen.getByRole('heading', { name: 'New schedule' })).toBeTruthy();
  });

  it('follows engine events without polling, and tells about finished, failed and skipped work in a notice', async () => {
    const engine = withSchedules();
    renderApp('schedules', engine);
    await screen.findByRole('row', { name: /: vm-disk$/ });
    const lists = engine.callsOf('schedule.list').length;
    engine.schedules[0]!.lastRun = { ...engine.schedules[0]!.lastRun!, status: 'skipped', error: 'Volume vm-disk was already being backed up, so this run was skipped.', backupId: null, snapshotId: null, pruned: null };
    act(() => engine.emit('schedule.finished', { scheduleId: 1, target: 'vm-disk', run: engine.schedules[0]!.lastRun! }));
    await waitFor(() => expect(within(row('vm-disk')).getByText('Skipped')).toBeTruthy());
    expect(engine.callsOf('schedule.list').length).toBe(lists + 1);
    const notices = screen.getByRole('status', { name: 'Notifications' });
    expect(within(notices).getByText('Scheduled backup of vm-disk skipped')).toBeTruthy();

    act(() =>
      engine.emit('backup.progress', {
        id: 'bk-9', volume: 'vm-disk', policy: 'range', vault: '/media/backup/vault', state: 'completed', kind: 'incremental', startedAt: '2025-11-25T10:00:00Z', endedAt: '2025-11-25T10:01:00Z',
        bytesDone: 10, bytesTotal: 10, snapshotId: '20251125T100000Z-0a0b0c', error: null, mbPerSec: 0, etaSec: 0, dedupRatio: null,
      }),
    );
    expect(await within(notices).findByText('Backup of vm-disk finished')).toBeTruthy();
    expect(within(notices).getByText('Snapshot 20251125T100000Z-0a0b0c is in /media/backup/vault.')).toBeTruthy();
    fireEvent.click(within(notices).getByRole('button', { name: 'Dismiss: Backup of vm-disk finished' }));
    expect(within(notices).queryByText('Backup of vm-disk finished')).toBeNull();

    engine.schedules.pop();
    act(() => engine.emit('schedules.changed', {}));
    await waitFor(() => expect(screen.queryByRole('row', { name: /: photos$/ })).toBeNull());
  });
});
