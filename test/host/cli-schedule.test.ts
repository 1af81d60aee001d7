/**
 * `holdfast schedule …` as scripts meet it: node bin/holdfast.cjs against a temp data dir, in
 * process and through a running `holdfast nbd`, whose scheduler notices the vault folder
 * coming back (the backup drive plugged in) and backs up on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { bin, buildCli, runCli } from '../helpers/cli';
let tmp: string;
let data: string;

beforeAll(() => {
  buildCli();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-cli-sched-'));
  data = path.join(tmp, 'data');
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const hf = (...args: string[]) => runCli([...args, '--data', data], tmp);
const json = (r: { stdout: string; stderr: string; code: number | null }) => {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};
function expectError(r: ReturnType<typeof hf>, exit: number, code: string, msg?: RegExp) {
  expect(r.code, r.stderr).toBe(exit);
  expect(r.stderr).toMatch(/^holdfast: [^\n]+ \([A-Z_]+\)\n$/);
  expect(r.stderr).toContain(`(${code})`);
  if (msg) expect(r.stderr).toMatch(msg);
  expect(r.stdout).toBe('');
}

describe('holdfast schedule', { timeout: 120_000 }, () => {
  it('adds, lists, runs (a real backup into the vault), disables and removes schedules', () => {
    json(hf('device', 'add', path.join(tmp, 'disk.img'), '--create', '--size', '64M', '--json'));
    json(hf('volume', 'create', 'work', '--size', '8M', '--json'));
    const usb = path.join(tmp, 'usb');
    json(hf('vault', 'init', usb, '--json'));

    const a = json(hf('schedule', 'add', 'work', '--every', 'week', '--day', 'mon', '--at', '18:00', '--vault', usb, '--keep-last', '3', '--keep-monthly', '6', '--policy', 'volume', '--json'));
    expect(a).toMatchObject({ id: 1, target: { kind: 'volume', volume: 'work' }, frequency: { every: 'week', weekday: 1, at: '18:00' }, onPlugIn: false, vault: usb, policy: 'volume', retention: { keepLast: 3, keepMonthly: 6 }, enabled: true, lastRun: null });
    expect(new Date(a.nextRunAt).getDay()).toBe(1);
    const b = json(hf('schedule', 'add', 'work', '--every', 'hour', '--at', ':15', '--when-plugged-in', '--json'));
    expect(b).toMatchObject({ id: 2, frequency: { every: 'hour', minute: 15 }, onPlugIn: true });

    const human = hf('schedule', 'list');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^ID +TARGET +WHEN/);
    expect(human.stdout).toContain('every Monday at 18:00');
    expect(human.stdout).toContain('every hour at :15, or when the vault drive is plugged in');
    expect(json(hf('schedule', 'list', '--json'))).toHaveLength(2);

    const run = json(hf('schedule', 'run', '1', '--json'));
    expect(run.lastRun).toMatchObject({ trigger: 'manual', status: 'completed', error: null, pruned: 0 });
    const snaps = json(hf('snapshot', 'list', '--vault', usb, '--json'));
    expect(snaps.map((s: { id: string }) => s.id)).toEqual([run.lastRun.snapshotId]);
    expect(snaps[0]).toMatchObject({ volume: 'work', policy: 'volume' });

    expect(json(hf('schedule', 'disable', '2', '--json'))).toMatchObject({ enabled: false, nextRunAt: null });
    expect(json(hf('schedule', 'enable', '2', '--json')).nextRunAt).not.toBeNull();
    const rm = hf('schedule', 'remove', '2');
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe('Removed schedule 2.\n');
    expect(json(hf('schedule', 'list', '--json')).map((s: { id: number }) => s.id)).toEqual([1]);
  });

  it('refuses bad lines (exit 2) and bad targets (exit 1) with one line and a code, saving nothing', () => {
    const before = json(hf('schedule', 'list', '--json'));
    expectError(hf('schedule', 'add', 'work', '--every', 'day', '--at', '25:00'), 2, 'INVALID_ARGUMENT', /HH:MM/);
    expectError(hf('schedule', 'add', 'work', '--every', 'day'), 2, 'INVALID_ARGUMENT', /needs --at/);
    expectError(hf('schedule', 'add', 'work', '--every', 'week', '--at', '10:00', '--day', 'someday'), 2, 'INVALID_ARGUMENT', /weekday/);
    expectError(hf('schedule', 'add', 'work', '--every', 'fortnight', '--at', '10:00'), 2, 'INVALID_ARGUMENT', /hour, day or week/);
    expectError(hf('schedule', 'add', 'work'), 2, 'INVALID_ARGUMENT', /Say when/);
    expectError(hf('schedule', 'add', 'work', '--drive', 'sdb', '--when-plugged-in'), 2, 'INVALID_ARGUMENT', /VOLUME or --drive/);
    expectError(hf('schedule', 'remove', 'first'), 2, 'INVALID_ARGUMENT', /by its number/);
    expectError(hf('schedule', 'add', 'ghost', '--every', 'day', '--at', '02:00'), 1, 'NOT_FOUND', /no volume "ghost"/);
    expectError(hf('schedule', 'add', 'work', '--when-plugged-in', '--vault', path.join(tmp, 'not-plugged')), 1, 'VAULT_MISSING');
    expectError(hf('schedule', 'add', '--drive', path.join(tmp, 'no-such.img'), '--when-plugged-in'), 1, 'DEVICE_MISSING');
    expectError(hf('schedule', 'run', '99'), 1, 'NOT_FOUND', /no schedule 99/);
    expectError(hf('schedule', 'remove', '99'), 1, 'NOT_FOUND');
    expect(json(hf('schedule', 'list', '--json'))).toEqual(before);
  });

  it('a failed scheduled run exits 1 and is recorded with its reason', () => {
    const usb = path.join(tmp, 'usb');
    fs.renameSync(usb, `${usb}-away`);
    try {
      expectError(hf('schedule', 'run', '1'), 1, 'BACKUP_FAILED', /Scheduled backup of work failed: .*vault/i);
      const [s] = json(hf('schedule', 'list', '--json'));
      expect(s).toMatchObject({ vaultPresent: false, lastRun: { status: 'failed', trigger: 'manual' } });
    } finally {
      fs.renameSync(`${usb}-away`, usb);
    }
  });

  it('`holdfast nbd` runs schedules: plugging the vault drive back in starts a backup by itself', async () => {
    const usb = path.join(tmp, 'usb');
    const added = json(hf('schedule', 'add', 'work', '--when-plugged-in', '--vault', usb, '--json'));
    const before = json(hf('snapshot', 'list', '--vault', usb, '--json')).length;
    const child = spawn(process.execPath, [bin, 'nbd', '--nbd-port', '0', '--data', data], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (c) => (err += c));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const until = async (what: () => boolean, ms: number, label: string) => {
      const end = Date.now() + ms;
      while (!what()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${label}; engine stderr: ${err}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    try {
      await until(() => err.includes('Control socket:'), 30_000, 'the engine');
      await new Promise((r) => setTimeout(r, 6_000)); // one poll sees the vault present: no run
      expect(json(hf('snapshot', 'list', '--vault', usb, '--json'))).toHaveLength(before);
      fs.renameSync(usb, `${usb}-away`); // unplugged
      await new Promise((r) => setTimeout(r, 6_000));
      fs.renameSync(`${usb}-away`, usb); // plugged in again
      const mine = () => json(hf('schedule', 'list', '--json')).find((s: { id: number }) => s.id === added.id);
      await until(() => mine().lastRun?.status === 'completed', 40_000, 'the plug-in run');
      expect(mine().lastRun).toMatchObject({ trigger: 'plug-in', status: 'completed' });
      expect(json(hf('snapshot', 'list', '--vault', usb, '--json'))).toHaveLength(before + 1);
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
