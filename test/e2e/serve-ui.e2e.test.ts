/**
 * End to end, as a person would use it: a real `holdfast serve` on a temp data dir, Debian's
 * Chromium driven by clicks and typing. Creates an image device and volumes, starts real
 * writers over NBD (qemu-io), runs a backup with each hold policy (volume, range, metadata on
 * an ext4 volume), watches the hold-queue panel's numbers grow and drain, sees the snapshots
 * listed, restores one through the wizard to a new volume and checks restored bytes against
 * the writer's model: a snapshot must be the volume after exactly the first k writes, with k
 * at or after the click and before the writes the panel showed held. API calls are used only
 * to verify (backup ids, restore-to-file of the other snapshots). Screenshots of every screen
 * go to test/artifacts/e2e-*.png.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { Backup, Snapshot } from '../../src-shared/contract';
import { installHoldSampler, readHoldSamples, type HoldSample } from './hold-sampler';
import { BLOCK, QemuIoWriter, type BlockWrite } from './nbd-writer';
import { matchingPrefixes, model } from './pit-model';
import { apiCall, CHROMIUM, CHROMIUM_ARGS, ROOT, nbdUri, startServe, type ServeProcess } from './serve-process';

const LIVE_SIZE = 160 << 20;
const FS_SIZE = 64 << 20;
const artifacts = path.join(ROOT, 'test/artifacts');
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) console.log(`[e2e] skipped: ${CHROMIUM} is missing (apt-get install chromium)`);

let tmp = '';
let serve: ServeProcess | null = null;
let browser: Browser | null = null;
const writers: QemuIoWriter[] = [];

beforeAll(async () => {
  if (!haveChromium) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-e2e-'));
  fs.mkdirSync(artifacts, { recursive: true });
  for (const f of fs.readdirSync(artifacts)) if (/^e2e-.*\.png$/.test(f)) fs.rmSync(path.join(artifacts, f));
  serve = await startServe(path.join(tmp, 'data'));
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}, 120_000);

afterAll(async () => {
  for (const w of writers) await w.stop().catch(() => undefined);
  await browser?.close();
  await serve?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, 60_000);

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(artifacts, `e2e-${name}.png`), fullPage: true });
const nav = async (page: Page, name: string) => {
  await page.getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();
};
const nbdRead = (volume: string, size: number): Buffer => {
  const out = path.join(tmp, `read-${volume}-${Date.now()}.img`);
  execFileSync('nbdcopy', [nbdUri(serve!.nbdSocket, volume), out]);
  const b = fs.readFileSync(out);
  fs.rmSync(out);
  expect(b.length).toBe(size);
  return b;
};
const heldShown = (page: Page, volume: string) => page.getByTestId(`held-count-${volume}`).textContent().then((t) => Number((t ?? '').replace(/[^0-9]/g, '')));

interface BackupRun {
  backup: Backup;
  ackedAtClick: number;
  ackedAtDone: number;
  samples: HoldSample[];
  maxHeld: number;
}

/**
 * Starts a backup through the Backup screen of `page` while a second window (`holds`) shows the
 * Hold queue screen the whole time, as a person watching it would; the in-page sampler records
 * every change of the volume's panel. Returns when the backup is over and the queue drained.
 */
async function backupThroughUi(page: Page, holds: Page, opts: { volume: string; policy: RegExp; tag: string; full?: boolean; writer: QemuIoWriter; heldToShow: number }): Promise<BackupRun> {
  await nav(page, 'Backup');
  await page.getByLabel('Volume', { exact: true }).selectOption(opts.volume);
  await page.getByRole('radio', { name: opts.policy }).check();
  if (opts.full) await page.getByRole('checkbox', { name: /Full backup/ }).check();
  await holds.getByTestId(`held-count-${opts.volume}`).waitFor();
  await holds.evaluate(installHoldSampler, opts.volume);
  const before = new Set((await apiCall<Backup[]>(serve!, 'backup.list')).map((b) => b.id));
  const ackedAtClick = opts.writer.acked;
  await page.getByRole('button', { name: 'Start backup' }).click();

  // Capture the hold panel once the queue is worth showing (or as soon as the backup is over).
  const holdShot = (async () => {
    const until = Date.now() + 60_000;
    for (;;) {
      const samples = await holds.evaluate(readHoldSamples, [opts.volume, false] as [string, boolean]);
      const last = samples[samples.length - 1];
      const over = samples.some((x) => x.running) && last && !last.running;
      if ((last && last.running && last.held >= opts.heldToShow) || over || Date.now() > until) break;
      await holds.waitForTimeout(25);
    }
    await shot(holds, `holds-${opts.tag}-held`);
  })();
  const running = page.getByText(`Backing up ${opts.volume}`);
  if (await running.waitFor({ timeout: 5_000 }).then(() => true, () => false)) await shot(page, `backup-${opts.tag}-running`);
  await holdShot;

  // The start request returns when the backup has finished; the button comes back.
  await page.getByRole('button', { name: 'Start backup' }).waitFor({ timeout: 120_000 });
  const panel = holds.locator('.hold-panel', { has: holds.getByTestId(`held-count-${opts.volume}`) });
  await panel.getByText('No backup · writes flow through').waitFor({ timeout: 30_000 });
  await holds.waitForFunction((v) => document.querySelector(`[data-testid="held-count-${v}"]`)?.textContent === '0', opts.volume, { timeout: 30_000 });
  const ackedAtDone = opts.writer.acked;
  await holds.waitForTimeout(300);
  await shot(holds, `holds-${opts.tag}-drained`);
  await shot(page, `backup-${opts.tag}-done`);
  const samples = await holds.evaluate(readHoldSamples, [opts.volume, true] as [string, boolean]);
  expect(samples.some((x) => x.running), 'the hold panel showed the backup running').toBe(true);
  const backup = (await apiCall<Backup[]>(serve!, 'backup.list')).find((b) => !before.has(b.id) && b.volume === opts.volume);
  expect(backup, 'the click started a backup').toBeTruthy();
  expect(backup!.state).toBe('completed');
  expect(backup!.policy).toBe(opts.tag);
  return { backup: backup!, ackedAtClick, ackedAtDone, samples, maxHeld: Math.max(0, ...samples.map((x) => x.held).filter(Number.isFinite)) };
}

/** The held numbers shown rose and then fell back to zero, with queued = released at the end. */
function expectGrewAndDrained(run: BackupRun, minPeak: number) {
  const held = run.samples.map((s) => s.held).filter(Number.isFinite);
  const peakAt = held.indexOf(run.maxHeld);
  expect(run.maxHeld, `peak held writes shown (${held.length} distinct frames)`).toBeGreaterThanOrEqual(minPeak);
  expect(held.slice(0, peakAt + 1).some((h) => h < run.maxHeld), 'the held count grew on screen').toBe(true);
  expect(held[held.length - 1]).toBe(0);
  const last = run.samples[run.samples.length - 1]!;
  expect(last.queued).toBe(last.released);
  expect(last.queued).toBeGreaterThanOrEqual(run.maxHeld);
}

/** The image is the volume after the first k writes for some k between the click and the first write shown held. */
function expectPointInTime(image: Buffer, base: Buffer, run: BackupRun, writes: readonly BlockWrite[]) {
  const ks = matchingPrefixes(image, base, writes);
  expect(ks.length, 'the snapshot equals the volume after some prefix of the writes').toBeGreaterThan(0);
  const hi = run.ackedAtDone - run.maxHeld;
  expect(
    ks.some((k) => k >= run.ackedAtClick && k <= hi),
    `prefix ${ks.slice(0, 5).join(',')} within [${run.ackedAtClick}, ${hi}] (acked at click, acked at end minus peak held)`,
  ).toBe(true);
}

describe.skipIf(!haveChromium)('Holdfast in Chromium against holdfast serve', () => {
  it('devices, volumes, backups with every policy under live NBD writers, holds grow and drain, restore through the wizard', async () => {
    const s = serve!;
    const page = await (await browser!.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' })).newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      await journey(s, page);
    } catch (e) {
      await shot(page, 'failure').catch(() => undefined);
      throw e;
    }
    expect(pageErrors).toEqual([]);
  }, 240_000);
});

async function journey(s: ServeProcess, page: Page): Promise<void> {
  {
    await page.goto(s.url);
    await page.getByRole('heading', { level: 1, name: 'Drives & devices' }).waitFor();
    expect(page.url()).not.toContain('token=');

    // --- an image-file device, typed in
    const diskPath = path.join(tmp, 'disk1.img');
    await page.getByLabel('New image file path').fill(diskPath);
    await page.getByLabel('Size', { exact: true }).fill('1G');
    await page.getByRole('button', { name: 'Create image file' }).click();
    await page.getByText(`Added ${diskPath}.`).waitFor();
    await page.getByRole('cell', { name: diskPath, exact: true }).waitFor();
    expect(fs.statSync(diskPath).size).toBe(1 << 30);
    await shot(page, '01-drives');

    // --- two volumes
    await nav(page, 'Volumes');
    for (const [name, size] of [['live', '160M'], ['fs', '64M']] as const) {
      await page.getByLabel('Name', { exact: true }).fill(name);
      await page.getByLabel('Size', { exact: true }).fill(size);
      await page.getByRole('button', { name: 'Create volume' }).click();
      await page.locator('.volume-card').filter({ has: page.locator('.card-title, h2', { hasText: new RegExp(`^${name}\\b`) }) }).first().waitFor();
    }
    await page.getByText(nbdUri(s.nbdSocket, 'live')).waitFor();
    await shot(page, '02-volumes');

    // --- fill them through NBD: random bytes on `live`, an ext4 filesystem (40 MiB file) on `fs`
    const base = crypto.randomBytes(LIVE_SIZE);
    fs.writeFileSync(path.join(tmp, 'base.img'), base);
    execFileSync('nbdcopy', [path.join(tmp, 'base.img'), nbdUri(s.nbdSocket, 'live')]);
    const tree = path.join(tmp, 'tree');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'data.bin'), crypto.randomBytes(40 << 20));
    const fsImage = path.join(tmp, 'fs.img');
    execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', tree, fsImage, '64M']);
    const dataBlocks = execFileSync('debugfs', ['-R', 'blocks /data.bin', fsImage], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim().split(/\s+/).map(Number);
    const itable = /Inode table at (\d+)-(\d+)/.exec(execFileSync('dumpe2fs', [fsImage], { stdio: ['ignore', 'pipe', 'ignore'] }).toString())!;
    // The tail of the inode table holds no in-use inode: rewriting it is a metadata write that keeps the filesystem valid.
    const metaBlocks = Array.from({ length: 16 }, (_, i) => Number(itable[2]) - i);
    execFileSync('nbdcopy', [fsImage, nbdUri(s.nbdSocket, 'fs')]);
    const fsBase = fs.readFileSync(fsImage);
    // No vault is created here: the first backup goes into the data directory's default vault,
    // which the engine creates on first use.

    // --- the writer on `live`: block i*7919 mod N (visits every block), one byte pattern per write
    const liveBlocks = LIVE_SIZE / BLOCK;
    const live = new QemuIoWriter(nbdUri(s.nbdSocket, 'live'), (i) => ({ block: (i * 7919 + 13) % liveBlocks, pattern: (i % 251) + 1 }));
    writers.push(live);
    await live.waitAcked(50);
    await nav(page, 'Volumes');
    await page.getByText(/NBD client/).first().waitFor();
    // The live write rate (volumes.stats, about once a second) shows the writer's writes.
    const rate = page.getByTestId('write-rate-live');
    await rate.filter({ hasText: /writes\/s/ }).waitFor({ timeout: 10_000 });
    const shownRate = /^([\d,]+) writes\/s · ([\d.]+) (B|KiB|MiB|GiB)\/s$/.exec((await rate.textContent()) ?? '');
    expect(shownRate, `write rate shown: ${await rate.textContent()}`).not.toBeNull();
    expect(Number(shownRate![1]!.replace(/,/g, ''))).toBeGreaterThan(0);
    // `fs` was filled by nbdcopy just before: its rate turns Idle at the next 1 s sample, which a
    // loaded machine may deliver later than expect.poll's default 1 s.
    await expect.poll(() => page.getByTestId('write-rate-fs').textContent(), { timeout: 10_000 }).toBe('Idle');
    await shot(page, '03-volumes-with-writer');
    // A second window on the Hold queue screen stays open through the backups.
    const holds = await page.context().newPage();
    await holds.goto(s.url + '#/holds');
    await holds.getByRole('heading', { level: 1, name: 'Hold queue' }).waitFor();

    // --- volume policy: every write to `live` is held until the end
    const volRun = await backupThroughUi(page, holds, { volume: 'live', policy: /Whole volume/, tag: 'volume', writer: live, heldToShow: 100 });
    expectGrewAndDrained(volRun, 20);

    // --- range policy (full read again): only writes to not-yet-copied blocks wait
    const rangeRun = await backupThroughUi(page, holds, { volume: 'live', policy: /^Range/, tag: 'range', full: true, writer: live, heldToShow: 5 });
    expectGrewAndDrained(rangeRun, 1);
    expect(rangeRun.backup.kind).toBe('full');

    // --- metadata policy on ext4: data writes flow, inode-table writes wait; `live` is never held meanwhile
    const fsw = new QemuIoWriter(nbdUri(s.nbdSocket, 'fs'), (i) => ({
      block: i % 2 === 0 ? dataBlocks[(i * 7919) % dataBlocks.length]! : metaBlocks[(i >> 1) % metaBlocks.length]!,
      pattern: (i % 251) + 1,
    }));
    writers.push(fsw);
    await fsw.waitAcked(40);
    await holds.evaluate(installHoldSampler, 'live');
    const metaRun = await backupThroughUi(page, holds, { volume: 'fs', policy: /Metadata only/, tag: 'metadata', writer: fsw, heldToShow: 10 });
    expectGrewAndDrained(metaRun, 1);
    const liveDuringMeta = await holds.evaluate(readHoldSamples, ['live', true] as [string, boolean]);
    expect(liveDuringMeta.every((x) => x.held === 0), 'writes to another volume are never held').toBe(true);

    await live.stop();
    await fsw.stop();
    // Every acknowledged write landed, in order, once the queues drained.
    expect(nbdRead('live', LIVE_SIZE).equals(model(base, live.writes, live.writes.length))).toBe(true);
    expect(nbdRead('fs', FS_SIZE).equals(model(fsBase, fsw.writes, fsw.writes.length))).toBe(true);

    // --- the backup history and the snapshot list
    await nav(page, 'Backup');
    await page.getByText(volRun.backup.snapshotId!).waitFor();
    await shot(page, '04-backup-history');
    await nav(page, 'Snapshots & restore');
    for (const r of [volRun, rangeRun, metaRun]) await page.getByRole('button', { name: `Restore snapshot ${r.backup.snapshotId}` }).waitFor();
    await page.getByText('Metadata-consistent').waitFor();
    await page.getByRole('button', { name: `Verify snapshot ${volRun.backup.snapshotId}` }).click();
    await page.getByText(/Verified: all \d+ chunks/).waitFor({ timeout: 60_000 });
    await shot(page, '05-snapshots');

    // --- restore the volume-policy snapshot to a new volume through the wizard
    // The wizard is a modal dialog: Tab and Shift+Tab stay inside; Escape closes it and focus returns to its button.
    const opener = page.getByRole('button', { name: `Restore snapshot ${volRun.backup.snapshotId}` });
    await opener.click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Next' }).waitFor();
    const focusInDialog = () => page.evaluate(() => !!document.activeElement?.closest('[role="dialog"]'));
    for (const key of ['Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
      await page.keyboard.press(key);
      expect(await focusInDialog(), `focus after ${key}`).toBe(true);
    }
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await opener.evaluate((el) => el === document.activeElement)).toBe(true);
    await opener.click();
    await dialog.getByRole('radio', { name: /new volume/i }).check();
    await dialog.getByLabel('New volume name').fill('live-restored');
    await shot(page, '06-restore-target');
    await dialog.getByRole('button', { name: 'Next' }).click();
    await dialog.getByText('Nothing existing is overwritten.').waitFor();
    await shot(page, '07-restore-confirm');
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    await dialog.getByText(/Restored .* to/).waitFor({ timeout: 90_000 });
    await shot(page, '08-restore-done');
    await dialog.getByRole('button', { name: 'Close' }).click();

    const restored = nbdRead('live-restored', LIVE_SIZE);
    expectPointInTime(restored, base, volRun, live.writes);

    // The range snapshot, restored to a file (API, to verify): also exactly a prefix.
    const rangeFile = path.join(tmp, 'range.img');
    await apiCall(s, 'restore.start', { id: rangeRun.backup.snapshotId, toFile: rangeFile });
    expectPointInTime(fs.readFileSync(rangeFile), base, rangeRun, live.writes);

    // The metadata snapshot: inode-table blocks are exactly a prefix of the metadata writes from
    // within the backup window; data blocks may be newer (each holds some version written there);
    // the filesystem checks clean.
    const metaFile = path.join(tmp, 'meta.img');
    await apiCall(s, 'restore.start', { id: metaRun.backup.snapshotId, toFile: metaFile });
    const metaImg = fs.readFileSync(metaFile);
    const metaWrites = fsw.writes.filter((w) => metaBlocks.includes(w.block));
    const countMeta = (n: number) => fsw.writes.slice(0, n).filter((w) => metaBlocks.includes(w.block)).length;
    const ks = matchingPrefixes(metaImg, fsBase, metaWrites, metaBlocks);
    expect(ks.some((k) => k >= countMeta(metaRun.ackedAtClick) && k <= countMeta(metaRun.ackedAtDone) - metaRun.maxHeld), `metadata prefix ${ks.slice(0, 5)}`).toBe(true);
    for (const b of new Set(dataBlocks)) {
      const got = metaImg.subarray(b * BLOCK, (b + 1) * BLOCK);
      const versions = [fsBase.subarray(b * BLOCK, (b + 1) * BLOCK), ...fsw.writes.filter((w) => w.block === b).map((w) => Buffer.alloc(BLOCK, w.pattern))];
      if (!versions.some((v) => v.equals(got))) throw new Error(`data block ${b} of the metadata snapshot holds bytes never written there`);
    }
    execFileSync('e2fsck', ['-fn', metaFile], { stdio: 'ignore' });
    const snaps = await apiCall<Snapshot[]>(s, 'snapshot.list');
    expect(snaps.find((x) => x.id === metaRun.backup.snapshotId)!.policy).toBe('metadata');

    // --- an encrypted vault (made with `holdfast vault init --encrypt`, here through the same API):
    // the Backup screen and, in a fresh window, the Snapshots screen ask for its passphrase.
    const secretVault = path.join(tmp, 'secret-vault');
    await apiCall(s, 'vault.init', { dir: secretVault, passphrase: 'correct horse' });
    await nav(page, 'Backup');
    await page.getByLabel('Volume', { exact: true }).selectOption('fs');
    await page.getByLabel('Vault folder').fill(secretVault);
    await page.getByRole('button', { name: 'Start backup' }).click();
    await page.getByLabel('Vault passphrase').fill('wrong horse');
    await page.getByRole('button', { name: 'Unlock and start the backup' }).click();
    await page.getByText(/Wrong passphrase: it does not open the encrypted vault/).waitFor();
    await shot(page, '15-backup-wrong-passphrase');
    await page.getByLabel('Vault passphrase').fill('correct horse');
    await page.getByRole('button', { name: 'Unlock and start the backup' }).click();
    const listSecret = () => apiCall<Snapshot[]>(s, 'snapshot.list', { vault: secretVault, passphrase: 'correct horse' });
    await expect.poll(async () => (await listSecret()).map((x) => x.volume), { timeout: 60_000, interval: 500 }).toEqual(['fs']);
    await page.getByRole('button', { name: 'Start backup' }).waitFor({ timeout: 60_000 });
    const secretSnaps = await listSecret();
    const fresh = await page.context().newPage();
    await fresh.goto(s.url + '#/snapshots');
    await fresh.getByRole('heading', { level: 1, name: 'Snapshots & restore' }).waitFor();
    await fresh.getByLabel('Vault folder').fill(secretVault);
    await fresh.getByText(/is encrypted\. Enter its passphrase to list its snapshots/).waitFor();
    await shot(fresh, '16-snapshots-locked');
    await fresh.getByLabel('Vault passphrase').fill('correct horse');
    await fresh.getByLabel('Vault passphrase').press('Enter');
    await fresh.getByRole('button', { name: `Verify snapshot ${secretSnaps[0]!.id}` }).click();
    await fresh.getByText(/Verified: all \d+ chunks/).waitFor({ timeout: 60_000 });
    expect(await fresh.getByLabel('Vault passphrase').count()).toBe(0);
    await shot(fresh, '17-snapshots-unlocked');
    await fresh.close();

    // --- every other screen, with this real data
    await nav(page, 'Volumes');
    await page.getByText(nbdUri(s.nbdSocket, 'live-restored')).waitFor();
    await shot(page, '09-volumes-after-restore');
    await nav(page, 'Hold queue');
    await shot(page, '10-holds-idle');
    await nav(page, 'Schedules');
    await shot(page, '11-schedules');
    await nav(page, 'Settings');
    await page.getByText(s.dataDir).first().waitFor();
    await shot(page, '12-settings');
    await nav(page, 'Drives & devices');
    await shot(page, '13-drives-after');
    const dark = await browser!.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    await dark.goto(s.url + '#/holds');
    await dark.getByRole('heading', { level: 1, name: 'Hold queue' }).waitFor();
    await dark.getByTestId('held-count-live').waitFor();
    await shot(dark, '14-holds-dark');
    await dark.close();

    console.log(
      `[e2e] peak held shown: volume ${volRun.maxHeld}, range ${rangeRun.maxHeld}, metadata ${metaRun.maxHeld}; writes: live ${live.writes.length}, fs ${fsw.writes.length}`,
    );
  }
}
