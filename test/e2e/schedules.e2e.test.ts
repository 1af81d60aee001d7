/**
 * Schedules end to end, as a person would use them: a real `holdfast serve` on a temp data dir
 * and Debian's Chromium. A volume filled over NBD, a schedule created through the Schedules
 * form, "Run now" clicked; the row shows the run completed, a notice says the backup finished,
 * the Snapshots screen lists the snapshot, and its restored bytes are the volume's. The API is
 * used only to set up (device, volume) and to verify. Screenshots: test/artifacts/e2e-schedules-*.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { Schedule, Snapshot } from '../../src-shared/contract';
import { apiCall, CHROMIUM, CHROMIUM_ARGS, ROOT, nbdUri, startServe, type ServeProcess } from './serve-process';

const SIZE = 32 << 20;
const artifacts = path.join(ROOT, 'test/artifacts');
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) console.log(`[e2e] skipped: ${CHROMIUM} is missing (apt-get install chromium)`);

let tmp = '';
let serve: ServeProcess | null = null;
let browser: Browser | null = null;

beforeAll(async () => {
  if (!haveChromium) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-e2e-sched-'));
  fs.mkdirSync(artifacts, { recursive: true });
  serve = await startServe(path.join(tmp, 'data'));
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await serve?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, 60_000);

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(artifacts, `e2e-schedules-${name}.png`), fullPage: true });

describe.skipIf(!haveChromium)('Schedules in Chromium against holdfast serve', () => {
  it('creates a schedule in the form, runs it now, and the snapshot is listed with the volume’s bytes', async () => {
    const s = serve!;
    await apiCall(s, 'device.add', { path: path.join(tmp, 'disk.img'), create: true, size: 256 << 20 });
    await apiCall(s, 'volume.create', { name: 'work', size: SIZE });
    const bytes = crypto.randomBytes(SIZE);
    fs.writeFileSync(path.join(tmp, 'src.img'), bytes);
    execFileSync('nbdcopy', [path.join(tmp, 'src.img'), nbdUri(s.nbdSocket, 'work')]);

    const page = await browser!.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      await page.goto(`${s.url}#/schedules`);
      await page.getByRole('heading', { level: 1, name: 'Schedules' }).waitFor();
      await page.getByText(/No schedules yet/).waitFor();
      const form = page.getByRole('region', { name: 'Schedule form' });
      await form.getByRole('option', { name: 'work' }).waitFor({ state: 'attached' });

      // A mistake first: the form says what is wrong and sends nothing.
      await form.getByLabel(/^At/).fill('24:10');
      await form.getByRole('button', { name: 'Create schedule' }).click();
      await form.getByText('Times are HH:MM on a 24-hour clock, for example 02:30 or 18:00.').waitFor();
      expect(await apiCall<Schedule[]>(s, 'schedule.list')).toEqual([]);

      await form.getByLabel('Repeat').selectOption('week');
      await form.getByLabel('On', { exact: true }).selectOption('Sunday');
      await form.getByLabel(/^At/).fill('03:15');
      await form.getByLabel('Keep last').fill('5');
      await form.getByRole('button', { name: 'Create schedule' }).click();
      await form.getByText('Created the schedule of work.').waitFor();
      const row = page.getByRole('row', { name: /: work$/ });
      await row.getByText('Every Sunday at 03:15').waitFor();
      await row.getByText('Keeps the last 5').waitFor();
      await row.getByText('Not run yet').waitFor();
      await shot(page, '01-created');

      await row.getByRole('button', { name: 'Run now: work' }).click();
      await row.getByText('Completed').waitFor({ timeout: 120_000 });
      await page.getByRole('status', { name: 'Notifications' }).getByText('Backup of work finished').waitFor();
      const [sched] = await apiCall<Schedule[]>(s, 'schedule.list');
      expect(sched!.lastRun).toMatchObject({ trigger: 'manual', status: 'completed', error: null });
      const snapId = sched!.lastRun!.snapshotId!;
      await row.getByText(snapId).waitFor();
      await shot(page, '02-run-now-completed');

      await page.getByRole('link', { name: 'Snapshots & restore', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Snapshots & restore' }).waitFor();
      await page.getByText(snapId).first().waitFor();
      await shot(page, '03-snapshot-listed');
      await page.getByRole('link', { name: 'Schedules', exact: true }).click();
      await page.getByRole('row', { name: /: work$/ }).getByText('Completed').waitFor();
      await page.getByRole('button', { name: 'Dark theme' }).click();
      await shot(page, '04-dark');

      const snaps = await apiCall<Snapshot[]>(s, 'snapshot.list');
      expect(snaps.map((x) => x.id)).toEqual([snapId]);
      const out = path.join(tmp, 'restored.img');
      await apiCall(s, 'restore.start', { id: snapId, toFile: out });
      expect(fs.readFileSync(out).equals(bytes)).toBe(true);
      expect(pageErrors).toEqual([]);
    } catch (e) {
      await shot(page, 'failure').catch(() => undefined);
      throw e;
    } finally {
      await page.close();
    }
  }, 240_000);
});
