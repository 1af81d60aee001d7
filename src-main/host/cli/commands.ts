/**
 * The `holdfast <noun> <verb>` command table (DESIGN.md §6 spellings, plus `volume rename`
 * and `info`). Each entry maps a command line to one contract operation: which positionals
 * and flags it takes, how they become the operation's input (sizes through parseSize, paths
 * made absolute here because the engine may run with another working directory), whether
 * the result is a list or an object, and how a person reads it. No business logic: the
 * engine decides; this only translates. Commands whose operation the contract does not have
 * yet are listed too, so they answer NOT_AVAILABLE instead of "unknown command".
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Backup, Device, Drive, HoldState, Snapshot, Volume } from '../../../src-shared/contract';
import { formatSize, parseSize } from '../../../src-shared/sizes';
import { UsageError, type ParsedArgs } from './argv';
import { formatAge, keyValues, orDash, table, yesNo } from './format';
import { SCHEDULE_COMMANDS } from './schedule-commands';

export interface CmdArgs {
  pos: string[];
  value(name: string): string | undefined;
  values(name: string): string[];
  flag(name: string): boolean;
}

export interface CommandSpec {
  words: string[];
  usage: string;
  summary: string;
  flags: string[];
  args: [min: number, max: number];
  /** Contract operation; may name one the contract does not have yet. */
  op: string;
  input(a: CmdArgs): unknown;
  output: 'list' | 'object';
  human(result: any, a: CmdArgs): string;
  /** Turns a result that reports a failure (a scheduled run that failed) into the command's error. */
  check?(result: any): void;
  /** Long work: waits for the backup/restore to finish unless --detach. */
  long?: 'backup';
}

/** Runs outside the op table: they own the engine for a long time or stream. */
export interface SpecialSpec {
  words: string[];
  usage: string;
  summary: string;
  flags: string[];
  args: [min: number, max: number];
  special: 'serve' | 'nbd' | 'holds';
}

export type AnySpec = CommandSpec | SpecialSpec;

export const GLOBAL_FLAGS = ['data', 'json', 'help'];

const abs = (p: string) => path.resolve(p);
/** A path made absolute when it names one (has a slash or exists here); a bare name (a drive, a snapshot id) stays as given. */
const localPath = (p: string) => (p.includes('/') || fs.existsSync(p) ? abs(p) : p);
const size = (text: string | undefined, flag = 'size'): number => {
  if (text === undefined) throw new UsageError(`--${flag} SIZE is required (bytes or 64M, 2G, …).`);
  return parseSize(text);
};
const intFlag = (a: CmdArgs, name: string): number | undefined => {
  const v = a.value(name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} takes a whole number (got "${v}").`);
  return Number(v);
};
const optional = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== false)) as T;
/** A device given as its catalog id or a path. */
const deviceRef = (s: string): number | string => (/^\d+$/.test(s) ? Number(s) : abs(s));
const vaultOpt = (a: CmdArgs) => (a.value('vault') !== undefined ? abs(a.value('vault')!) : undefined);
/** An encrypted vault's passphrase comes from the environment, never from the command line (it would show in `ps`). */
export const PASSPHRASE_ENV = 'HOLDFAST_PASSPHRASE';
const passphrase = (): string | undefined => process.env[PASSPHRASE_ENV] || undefined;
const vaultInput = (a: CmdArgs) => ({ vault: vaultOpt(a), passphrase: passphrase() });

const volumeColumns = [
  { header: 'NAME', value: (v: Volume) => v.name },
  { header: 'SIZE', value: (v: Volume) => formatSize(v.size), right: true },
  { header: 'ACK', value: (v: Volume) => v.ackMode },
  { header: 'EXTENTS', value: (v: Volume) => String(v.extents.length), right: true },
  { header: 'DEVICES', value: (v: Volume) => [...new Set(v.extents.map((e) => e.deviceId))].join(',') || '-' },
  { header: 'BACKUP', value: (v: Volume) => (v.backup ? `${v.backup.policy} ${v.backup.id}` : '-') },
  { header: 'NBD', value: (v: Volume) => orDash(v.nbd?.tcp ?? v.nbd?.socket) },
];
const deviceColumns = [
  { header: 'ID', value: (d: Device) => String(d.id), right: true },
  { header: 'KIND', value: (d: Device) => d.kind },
  { header: 'SIZE', value: (d: Device) => formatSize(d.size), right: true },
  { header: 'FREE', value: (d: Device) => formatSize(d.free), right: true },
  { header: 'PRESENT', value: (d: Device) => yesNo(d.present) },
  { header: 'PATH', value: (d: Device) => d.path },
];
const driveColumns = [
  { header: 'NAME', value: (d: Drive) => d.name },
  { header: 'SIZE', value: (d: Drive) => formatSize(d.size), right: true },
  { header: 'MODEL', value: (d: Drive) => orDash(d.model) },
  { header: 'REMOVABLE', value: (d: Drive) => yesNo(d.removable) },
  { header: 'MOUNTED', value: (d: Drive) => (d.mounted ? d.mountpoints.join(',') || 'yes' : 'no') },
  { header: 'SYSTEM', value: (d: Drive) => yesNo(d.system) },
  { header: 'PATH', value: (d: Drive) => d.path },
];
const backupColumns = [
  { header: 'ID', value: (b: Backup) => b.id },
  { header: 'VOLUME', value: (b: Backup) => b.volume },
  { header: 'POLICY', value: (b: Backup) => b.policy },
  { header: 'KIND', value: (b: Backup) => b.kind },
  { header: 'STATE', value: (b: Backup) => b.state },
  { header: 'DONE', value: (b: Backup) => `${formatSize(b.bytesDone)} / ${formatSize(b.bytesTotal)}`, right: true },
  { header: 'STARTED', value: (b: Backup) => b.startedAt },
  { header: 'SNAPSHOT', value: (b: Backup) => orDash(b.snapshotId) },
];
const snapshotColumns = [
  { header: 'ID', value: (s: Snapshot) => s.id },
  { header: 'VOLUME', value: (s: Snapshot) => s.volume },
  { header: 'SIZE', value: (s: Snapshot) => formatSize(s.size), right: true },
  { header: 'STORED', value: (s: Snapshot) => formatSize(s.storedBytes), right: true },
  { header: 'KIND', value: (s: Snapshot) => s.kind },
  { header: 'POLICY', value: (s: Snapshot) => s.policy },
  { header: 'CREATED', value: (s: Snapshot) => s.createdAt },
];
export const holdColumns = [
  { header: 'VOLUME', value: (h: HoldState) => h.volume },
  { header: 'BACKUP', value: (h: HoldState) => (h.backupFlag ? 'running' : '-') },
  { header: 'POLICY', value: (h: HoldState) => orDash(h.policy) },
  { header: 'HELD', value: (h: HoldState) => String(h.heldCount), right: true },
  { header: 'HELD SIZE', value: (h: HoldState) => formatSize(h.heldBytes), right: true },
  { header: 'OLDEST', value: (h: HoldState) => formatAge(h.oldestHeldAgeMs), right: true },
  { header: 'QUEUED', value: (h: HoldState) => String(h.queuedTotal), right: true },
  { header: 'RELEASED', value: (h: HoldState) => String(h.releasedTotal), right: true },
  { header: 'COPIED', value: (h: HoldState) => formatSize(h.copiedBytes), right: true },
  { header: 'JOURNAL', value: (h: HoldState) => `${formatSize(h.journalBytes)} / ${formatSize(h.journalCapacity)}`, right: true },
];

export function describeVolume(v: Volume): string {
  return keyValues([
    ['name', v.name],
    ['size', `${formatSize(v.size)} (${v.size} bytes)`],
    ['ack', v.ackMode],
    ['adopted', yesNo(v.adopted)],
    ['extents', v.extents.map((e) => `dev ${e.deviceId} @${e.deviceOffset} +${formatSize(e.length)}`).join(', ') || '-'],
    ['backup', v.backup ? `${v.backup.policy} (${v.backup.id})` : '-'],
    ['nbd', orDash([v.nbd?.socket, v.nbd?.tcp].filter(Boolean).join(' '))],
  ]);
}
const describeDevice = (d: Device) =>
  keyValues([
    ['id', String(d.id)],
    ['path', d.path],
    ['kind', d.kind],
    ['size', `${formatSize(d.size)} (${d.size} bytes)`],
    ['free', formatSize(d.free)],
  ]);
const describeBackup = (b: Backup) =>
  keyValues([
    ['id', b.id],
    ['volume', b.volume],
    ['policy', b.policy],
    ['kind', b.kind],
    ['state', b.state],
    ['done', `${formatSize(b.bytesDone)} / ${formatSize(b.bytesTotal)}`],
    ['snapshot', orDash(b.snapshotId)],
    ...(b.error ? ([['error', b.error]] as Array<[string, string]>) : []),
  ]);
const generic = (r: unknown) =>
  r && typeof r === 'object' ? keyValues(Object.entries(r as object).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)])) : String(r);

export const COMMANDS: AnySpec[] = [
  { words: ['serve'], usage: 'serve [--port N] [--nbd-port N] [--no-open]', summary: 'Run the engine with the web UI, NBD and the control socket; also --nbd-socket PATH, --nbd-bind ADDR', flags: ['port', 'nbd-port', 'nbd-socket', 'nbd-bind', 'no-open'], args: [0, 0], special: 'serve' },
  { words: ['nbd'], usage: 'nbd [--nbd-port N] [--nbd-socket PATH]', summary: 'Run the engine with NBD and the control socket until SIGINT/SIGTERM; --nbd-bind ADDR listens on another address than 127.0.0.1 (unauthenticated: every volume readable and writable from there)', flags: ['nbd-port', 'nbd-socket', 'nbd-bind'], args: [0, 0], special: 'nbd' },
  { words: ['holds'], usage: 'holds [VOLUME] [--watch]', summary: 'Hold-queue state per volume; --watch streams changes', flags: ['watch'], args: [0, 1], special: 'holds' },
  {
    words: ['info'], usage: 'info', summary: 'Engine version, data directory and NBD addresses', flags: [], args: [0, 0],
    op: 'engine.info', input: () => ({}), output: 'object', human: generic,
  },
  {
    words: ['drive', 'list'], usage: 'drive list', summary: 'Attached drives', flags: [], args: [0, 0],
    op: 'drive.list', input: () => ({}), output: 'list', human: (r: Drive[]) => table(r, driveColumns, 'No drives found.'),
  },
  {
    words: ['drive', 'image'], usage: 'drive image DRIVE [--vault DIR]', summary: 'Image a drive (not mounted) into the vault; unchanged regions are shared with its earlier images', flags: ['vault'], args: [1, 1],
    op: 'drive.image', input: (a) => optional({ drive: localPath(a.pos[0]!), ...vaultInput(a) }), output: 'object',
    human: (r: { snapshotId: string; drive: string; bytes: number; storedBytes: number; previous: string | null }) =>
      `Imaged ${r.drive} (${formatSize(r.bytes)}) as snapshot ${r.snapshotId}; ${formatSize(r.storedBytes)} new in the vault${r.previous ? ` (the rest shared with ${r.previous})` : ''}.`,
  },
  {
    words: ['device', 'add'], usage: 'device add PATH [--create --size SIZE] [--confirm NAME]', summary: 'Add an image file or a drive as a device (a drive needs --confirm with its name)', flags: ['create', 'size', 'confirm'], args: [1, 1],
    op: 'device.add',
    input: (a) => {
      if (a.flag('create') && a.value('size') === undefined) throw new UsageError('device add --create needs --size SIZE.');
      if (!a.flag('create') && a.value('size') !== undefined) throw new UsageError('--size is only used with --create.');
      return optional({ path: abs(a.pos[0]!), create: a.flag('create'), size: a.flag('create') ? size(a.value('size')) : undefined, confirm: a.value('confirm') });
    },
    output: 'object', human: describeDevice,
  },
  {
    words: ['device', 'list'], usage: 'device list', summary: 'Devices Holdfast may write', flags: [], args: [0, 0],
    op: 'device.list', input: () => ({}), output: 'list', human: (r: Device[]) => table(r, deviceColumns, 'No devices. Add one with `holdfast device add PATH --create --size 1G`.'),
  },
  {
    words: ['device', 'remove'], usage: 'device remove ID|PATH', summary: 'Forget a device that no volume uses', flags: [], args: [1, 1],
    op: 'device.remove', input: (a) => ({ device: deviceRef(a.pos[0]!) }), output: 'object', human: (_r, a) => `Removed device ${a.pos[0]}.`,
  },
  {
    words: ['volume', 'create'], usage: 'volume create NAME --size SIZE [--device ID|PATH]... [--ack journal|device]', summary: 'Create a logical volume', flags: ['size', 'device', 'ack'], args: [1, 1],
    op: 'volume.create',
    input: (a) => {
      const devices = a.values('device').map(deviceRef);
      return optional({ name: a.pos[0], size: size(a.value('size')), devices: devices.length ? devices : undefined, ack: a.value('ack') });
    },
    output: 'object', human: describeVolume,
  },
  {
    words: ['volume', 'list'], usage: 'volume list', summary: 'Logical volumes', flags: [], args: [0, 0],
    op: 'volume.list', input: () => ({}), output: 'list', human: (r: Volume[]) => table(r, volumeColumns, 'No volumes. Create one with `holdfast volume create NAME --size 1G`.'),
  },
  {
    words: ['volume', 'grow'], usage: 'volume grow NAME --size SIZE', summary: 'Grow a volume to a new size', flags: ['size'], args: [1, 1],
    op: 'volume.grow', input: (a) => ({ name: a.pos[0], size: size(a.value('size')) }), output: 'object', human: describeVolume,
  },
  {
    words: ['volume', 'rename'], usage: 'volume rename NAME NEW-NAME', summary: 'Rename a volume', flags: [], args: [2, 2],
    op: 'volume.rename', input: (a) => ({ name: a.pos[0], newName: a.pos[1] }), output: 'object', human: describeVolume,
  },
  {
    words: ['volume', 'delete'], usage: 'volume delete NAME', summary: 'Delete a volume and free its extents', flags: [], args: [1, 1],
    op: 'volume.delete', input: (a) => ({ name: a.pos[0] }), output: 'object', human: (_r, a) => `Deleted volume ${a.pos[0]}.`,
  },
  {
    words: ['volume', 'adopt'], usage: 'volume adopt PATH [--name NAME]', summary: 'Use an existing image or drive 1:1 as a volume', flags: ['name'], args: [1, 1],
    op: 'volume.adopt', input: (a) => optional({ path: abs(a.pos[0]!), name: a.value('name') }), output: 'object', human: describeVolume,
  },
  {
    words: ['backup', 'start'], usage: 'backup start VOLUME [--vault DIR] [--policy volume|range|metadata] [--full] [--throttle auto|off] [--detach]', summary: 'Back up a volume into a vault (waits, progress on stderr); --throttle auto (default) slows it while volumes are written', flags: ['vault', 'policy', 'full', 'throttle', 'detach'], args: [1, 1],
    op: 'backup.start', input: (a) => optional({ volume: a.pos[0], ...vaultInput(a), policy: a.value('policy'), full: a.flag('full'), throttle: a.value('throttle'), detach: a.flag('detach') }), output: 'object', human: describeBackup, long: 'backup',
  },
  {
    words: ['backup', 'list'], usage: 'backup list', summary: 'Running and past backups', flags: [], args: [0, 0],
    op: 'backup.list', input: () => ({}), output: 'list', human: (r: Backup[]) => table(r, backupColumns, 'No backups yet.'),
  },
  {
    words: ['backup', 'abort'], usage: 'backup abort ID', summary: 'Abort a running backup (held writes are released)', flags: [], args: [1, 1],
    op: 'backup.abort', input: (a) => ({ id: a.pos[0] }), output: 'object', human: describeBackup,
  },
  {
    words: ['snapshot', 'list'], usage: 'snapshot list [--vault DIR]', summary: 'Snapshots in a vault', flags: ['vault'], args: [0, 0],
    op: 'snapshot.list', input: (a) => optional(vaultInput(a)), output: 'list', human: (r: Snapshot[]) => table(r, snapshotColumns, 'No snapshots in this vault.'),
  },
  {
    words: ['snapshot', 'verify'], usage: 'snapshot verify ID [--vault DIR]', summary: 'Check every chunk of a snapshot', flags: ['vault'], args: [1, 1],
    op: 'snapshot.verify', input: (a) => optional({ id: a.pos[0], ...vaultInput(a) }), output: 'object',
    human: (r: { ok: boolean; chunks: number; bad: string[] }) => (r.ok ? `OK: ${r.chunks} chunks verified.` : `DAMAGED: ${r.bad.length} of ${r.chunks} chunks are bad: ${r.bad.join(', ')}`),
  },
  {
    words: ['snapshot', 'mount'], usage: 'snapshot mount ID', summary: 'Export a snapshot read-only over NBD', flags: ['vault'], args: [1, 1],
    op: 'snapshot.mount', input: (a) => optional({ id: a.pos[0], vault: vaultOpt(a) }), output: 'object', human: generic,
  },
  {
    words: ['snapshot', 'export'], usage: 'snapshot export ID --format raw|vhd|qcow2 PATH', summary: 'Write a snapshot as a raw, VHD or qcow2 image', flags: ['format', 'vault'], args: [2, 2],
    op: 'snapshot.export',
    input: (a) => {
      if (a.value('format') === undefined) throw new UsageError('snapshot export needs --format raw|vhd|qcow2.');
      return optional({ id: a.pos[0], format: a.value('format'), path: abs(a.pos[1]!), ...vaultInput(a) });
    },
    output: 'object', human: (r: { path: string; bytes: number }) => `Wrote ${formatSize(r.bytes)} to ${r.path}.`,
  },
  {
    words: ['restore'], usage: 'restore ID --to-volume NAME | --to-file PATH | --to-device DEV --confirm NAME', summary: 'Restore a snapshot to a volume, file or drive', flags: ['to-volume', 'to-file', 'to-device', 'confirm', 'vault', 'detach'], args: [1, 1],
    op: 'restore.start',
    input: (a) => {
      const targets = ['to-volume', 'to-file', 'to-device'].filter((t) => a.value(t) !== undefined);
      if (targets.length !== 1) throw new UsageError('restore needs exactly one of --to-volume NAME, --to-file PATH, --to-device DEV.');
      return optional({
        id: a.pos[0],
        toVolume: a.value('to-volume'),
        toFile: a.value('to-file') !== undefined ? abs(a.value('to-file')!) : undefined,
        toDevice: a.value('to-device'),
        confirm: a.value('confirm'),
        ...vaultInput(a),
      });
    },
    output: 'object', human: (r: { id: string; target: string; bytes: number }) => `Restored ${r.id} to ${r.target} (${formatSize(r.bytes)}).`,
  },
  {
    words: ['image', 'import'], usage: 'image import FILE --volume NAME [--create]', summary: 'Write a raw/.img/.iso/.gz/.zst image into a volume (--create: a new one of the image size), verified', flags: ['volume', 'create'], args: [1, 1],
    op: 'image.import',
    input: (a) => {
      if (a.value('volume') === undefined) throw new UsageError('image import needs --volume NAME.');
      return optional({ file: abs(a.pos[0]!), volume: a.value('volume'), create: a.flag('create') });
    },
    output: 'object', human: (r: { volume: string; bytes: number; sha256: string }) => `Imported ${formatSize(r.bytes)} into volume ${r.volume}, verified (sha256 ${r.sha256}).`,
  },
  {
    words: ['image', 'flash'], usage: 'image flash FILE|ID DEV --confirm NAME', summary: 'Write an image or snapshot onto a drive, verified', flags: ['confirm', 'vault'], args: [2, 2],
    op: 'image.flash', input: (a) => optional({ source: localPath(a.pos[0]!), device: abs(a.pos[1]!), confirm: a.value('confirm'), ...vaultInput(a) }), output: 'object',
    human: (r: { device: string; bytes: number; sha256: string }) => `Wrote ${formatSize(r.bytes)} to ${r.device}, verified (sha256 ${r.sha256}).`,
  },
  {
    words: ['vault', 'init'], usage: 'vault init DIR [--encrypt]', summary: `Create a vault folder (--encrypt takes the passphrase from $${PASSPHRASE_ENV})`, flags: ['encrypt'], args: [1, 1],
    op: 'vault.init',
    input: (a) => {
      if (a.flag('encrypt') && !passphrase()) throw new UsageError(`vault init --encrypt needs the passphrase in the environment variable ${PASSPHRASE_ENV}.`);
      return optional({ dir: abs(a.pos[0]!), passphrase: a.flag('encrypt') ? passphrase() : undefined });
    },
    output: 'object', human: (r: { dir: string; encrypted: boolean }) => `Created ${r.encrypted ? 'an encrypted' : 'a'} vault at ${r.dir}.`,
  },
  {
    words: ['vault', 'prune'], usage: 'vault prune [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--volume NAME] [--dry-run] [--vault DIR]', summary: 'Forget snapshots by retention', flags: ['keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly', 'volume', 'dry-run', 'vault'], args: [0, 0],
    op: 'vault.prune',
    input: (a) => optional({ keepLast: intFlag(a, 'keep-last'), keepDaily: intFlag(a, 'keep-daily'), keepWeekly: intFlag(a, 'keep-weekly'), keepMonthly: intFlag(a, 'keep-monthly'), volume: a.value('volume'), dryRun: a.flag('dry-run'), ...vaultInput(a) }),
    output: 'object',
    human: (r: { kept: Array<{ id: string; volume: string; reasons: string[] }>; removed: Array<{ id: string; volume: string; createdAt: string }>; dryRun: boolean }) =>
      [
        table(r.removed, [{ header: r.dryRun ? 'WOULD REMOVE' : 'REMOVED', value: (x) => x.id }, { header: 'VOLUME', value: (x) => x.volume }, { header: 'CREATED', value: (x) => x.createdAt }], r.dryRun ? 'Nothing would be removed.' : 'Nothing removed.'),
        '',
        table(r.kept, [{ header: 'KEPT', value: (x) => x.id }, { header: 'VOLUME', value: (x) => x.volume }, { header: 'WHY', value: (x) => x.reasons.join(', ') }], 'No snapshots kept.'),
      ].join('\n'),
  },
  {
    words: ['vault', 'gc'], usage: 'vault gc [--dry-run] [--vault DIR]', summary: 'Delete chunks no snapshot uses', flags: ['vault', 'dry-run'], args: [0, 0],
    op: 'vault.gc', input: (a) => optional({ dryRun: a.flag('dry-run'), ...vaultInput(a) }), output: 'object',
    human: (r: { removedChunks: number; freedBytes: number; keptChunks: number }) => `Removed ${r.removedChunks} chunks (${formatSize(r.freedBytes)}); ${r.keptChunks} chunks in use.`,
  },
  ...SCHEDULE_COMMANDS,
];

export const NOUNS = [...new Set(COMMANDS.map((c) => c.words[0]!))];

/** Finds the command named by the leading positionals; returns it with the remaining positionals. */
export function findCommand(positionals: string[]): { spec: AnySpec; rest: string[] } | null {
  for (const spec of COMMANDS) {
    if (spec.words.every((w, i) => positionals[i] === w)) return { spec, rest: positionals.slice(spec.words.length) };
  }
  return null;
}

export function cmdArgs(parsed: ParsedArgs, rest: string[]): CmdArgs {
  return {
    pos: rest,
    value: (n) => parsed.values.get(n)?.[0],
    values: (n) => parsed.values.get(n) ?? [],
    flag: (n) => parsed.booleans.has(n),
  };
}

/** Throws a UsageError when the line gives flags or a positional count the command does not take. */
export function checkShape(spec: AnySpec, parsed: ParsedArgs, rest: string[]): void {
  const allowed = new Set([...GLOBAL_FLAGS, ...spec.flags]);
  for (const f of [...parsed.values.keys(), ...parsed.booleans]) {
    if (!allowed.has(f)) throw new UsageError(`${spec.words.join(' ')} does not take --${f}. Usage: holdfast ${spec.usage}`);
  }
  const [min, max] = spec.args;
  if (rest.length < min || rest.length > max) {
    const what = rest.length > max ? `unexpected argument "${rest[max]}"` : 'missing argument';
    throw new UsageError(`${spec.words.join(' ')}: ${what}. Usage: holdfast ${spec.usage}`);
  }
}

export function helpText(noun?: string): string {
  const specs = noun ? COMMANDS.filter((c) => c.words[0] === noun) : COMMANDS;
  const w = Math.max(...specs.map((s) => s.usage.length));
  const lines = specs.map((s) => `  holdfast ${s.usage.padEnd(w)}  ${s.summary}`);
  const head = noun ? `Usage (holdfast ${noun}):` : 'Usage: holdfast <noun> <verb> [options]';
  return [
    head,
    ...lines,
    '',
    'Global options (anywhere on the line):',
    '  --data DIR   data directory (default: $HOLDFAST_DATA, else ~/.local/share/holdfast)',
    '  --json       machine-readable output: lists print a JSON array, other commands a JSON object',
    '  --help       this text; `holdfast NOUN --help` for one noun',
    '',
    'Sizes take bytes or binary suffixes: 4096, 64M, 2G, 1T.',
    'Exit status: 0 success, 1 the operation failed, 2 the command line is wrong.',
  ].join('\n');
}
