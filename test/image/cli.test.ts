/**
 * The §6 spellings end to end: `node bin/holdfast.cjs image import|image flash|drive image`
 * against a real temp data directory (engine in process), real .gz/.zst files and an image
 * file standing in for a drive. Checks exit codes, the one-line errors and the bytes written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sampleImage } from './helpers';

import { buildCli, runCli } from '../helpers/cli';
const MiB = 1 << 20;
let tmp: string;
let data: string;
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

beforeAll(() => {
  buildCli();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-imgcli-'));
  data = path.join(tmp, 'data');
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const hf = (...args: string[]) => runCli([...args, '--data', data], tmp);

describe('holdfast image / drive image CLI', { timeout: 120_000 }, () => {
  it('imports, flashes with --confirm and images a drive into the vault', () => {
    expect(hf('device', 'add', path.join(tmp, 'disk.img'), '--create', '--size', '64M').code).toBe(0);
    const img = sampleImage(3 * MiB + 2048, 21);
    fs.writeFileSync(path.join(tmp, 'os.img'), img);
    execFileSync('zstd', ['-q', path.join(tmp, 'os.img'), '-o', path.join(tmp, 'os.img.zst')]);

    // Relative paths are the caller's: the CLI makes them absolute.
    const imp = hf('image', 'import', 'os.img.zst', '--volume', 'osvol', '--create', '--json');
    expect(imp.code, imp.stderr).toBe(0);
    expect(JSON.parse(imp.stdout)).toEqual({ volume: 'osvol', bytes: img.length, sha256: sha(img) });
    const vols = JSON.parse(hf('volume', 'list', '--json').stdout) as Array<{ name: string; size: number }>;
    expect(vols.find((v) => v.name === 'osvol')?.size).toBe(Math.ceil(img.length / 4096) * 4096);

    const missing = hf('image', 'import', 'nope.img', '--volume', 'osvol');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^holdfast: There is no image file at .*nope\.img \(NOT_FOUND\)\n$/);
    expect(hf('image', 'import', 'os.img').code).toBe(2); // --volume is required

    const card = path.join(tmp, 'card.bin');
    fs.writeFileSync(card, Buffer.alloc(4 * MiB));
    const noConfirm = hf('image', 'flash', 'os.img.zst', 'card.bin');
    expect(noConfirm.code).toBe(1);
    expect(noConfirm.stderr).toContain('--confirm card.bin');
    expect(noConfirm.stderr).toContain('(CONFIRMATION_REQUIRED)');
    const fl = hf('image', 'flash', 'os.img.zst', 'card.bin', '--confirm', 'card.bin');
    expect(fl.code, fl.stderr).toBe(0);
    expect(fl.stdout).toContain(`verified (sha256 ${sha(img)})`);
    expect(sha(fs.readFileSync(card).subarray(0, img.length))).toBe(sha(img));

    // An image file as the "drive" (not mounted): imaged into the default vault, then flashed back from its snapshot id.
    const di = hf('drive', 'image', 'card.bin', '--json');
    expect(di.code, di.stderr).toBe(0);
    const r = JSON.parse(di.stdout) as { snapshotId: string; volume: string; bytes: number };
    expect(r).toMatchObject({ volume: 'drive-card.bin', bytes: 4 * MiB });
    const copy = path.join(tmp, 'copy.bin');
    fs.writeFileSync(copy, Buffer.alloc(4 * MiB, 1));
    const back = hf('image', 'flash', r.snapshotId, 'copy.bin', '--confirm', 'copy.bin', '--json');
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ bytes: 4 * MiB, sha256: sha(fs.readFileSync(card)), verified: true });
    expect(sha(fs.readFileSync(copy))).toBe(sha(fs.readFileSync(card)));
  });
});
