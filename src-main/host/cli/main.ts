/**
 * `holdfast` — the command-line host. Parses `holdfast <noun> <verb>` (DESIGN.md §6), runs the
 * command through a Session (the running engine's control socket, or an engine opened here)
 * and prints the result: with --json a JSON array for lists and a JSON object otherwise;
 * without, aligned tables. Invariants: stdout carries only the result (progress goes to
 * stderr); every failure ends with exactly one line `holdfast: <message> (<CODE>)` on stderr
 * and exit status 2 for a wrong command line, 1 for an operation that failed.
 */
import net from 'node:net';
import path from 'node:path';
import { isOpName } from '../router';
import { HoldfastError, toErrorPayload } from '../../../src-shared/errors';
import type { Backup, HoldState } from '../../../src-shared/contract';
import { formatSize } from '../../../src-shared/sizes';
import { parseArgv, UsageError, type ParsedArgs } from './argv';
import { checkShape, cmdArgs, findCommand, helpText, holdColumns, NOUNS, type CmdArgs, type CommandSpec, type SpecialSpec } from './commands';
import { formatAge, oneLine, table } from './format';
import { openSession, resolveDataDir, type Session } from './session';
import { DEFAULT_NBD_PORT, runEngineHost } from './engine-host';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : s + '\n');
const err = (s: string) => process.stderr.write(s.endsWith('\n') ? s : s + '\n');

function printResult(result: unknown, kind: 'list' | 'object', json: boolean, human: () => string): void {
  if (json) {
    const value = kind === 'list' ? (Array.isArray(result) ? result : []) : result && typeof result === 'object' && !Array.isArray(result) ? result : { result };
    out(JSON.stringify(value, null, 2));
  } else out(human());
}

function port(a: CmdArgs, name: string): number | undefined {
  const v = a.value(name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) > 65535) throw new UsageError(`--${name} takes a port number 0–65535 (got "${v}").`);
  return Number(v);
}

async function main(argv: string[]): Promise<number> {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgv(argv);
  } catch (e) {
    return fail(e, EXIT_USAGE);
  }
  const json = parsed.booleans.has('json');
  const help = parsed.booleans.has('help');
  const [first] = parsed.positionals;
  if (first === undefined || first === 'help') {
    const noun = first === 'help' ? parsed.positionals[1] : undefined;
    if (first === undefined && !help) {
      err(helpText());
      return EXIT_USAGE;
    }
    out(helpText(noun && NOUNS.includes(noun) ? noun : undefined));
    return EXIT_OK;
  }
  const found = findCommand(parsed.positionals);
  if (!found) {
    if (NOUNS.includes(first)) {
      if (help) {
        out(helpText(first));
        return EXIT_OK;
      }
      const verb = parsed.positionals[1];
      return fail(new UsageError(`${verb ? `"${first} ${verb}" is not a command` : `"${first}" needs a verb`}; see \`holdfast ${first} --help\`.`), EXIT_USAGE);
    }
    return fail(new UsageError(`"${first}" is not a command; see \`holdfast --help\`.`), EXIT_USAGE);
  }
  const { spec, rest } = found;
  if (help) {
    out(helpText(spec.words[0]));
    return EXIT_OK;
  }
  let a: CmdArgs;
  try {
    checkShape(spec, parsed, rest);
    a = cmdArgs(parsed, rest);
  } catch (e) {
    return fail(e, EXIT_USAGE);
  }
  const dataDir = resolveDataDir(parsed.values.get('data')?.[0]);
  if ('special' in spec) return runSpecial(spec, a, dataDir, json);
  return runOp(spec, a, dataDir, json);
}

async function runOp(spec: CommandSpec, a: CmdArgs, dataDir: string, json: boolean): Promise<number> {
  const name = spec.words.join(' ');
  if (!isOpName(spec.op)) return fail(new HoldfastError('NOT_AVAILABLE', `${name} is not available yet`), EXIT_FAILED);
  let input: unknown;
  try {
    input = spec.input(a);
  } catch (e) {
    return fail(e, EXIT_USAGE);
  }
  let session: Session | null = null;
  try {
    session = await openSession(dataDir);
    if (spec.long === 'backup') {
      const wait = !a.flag('detach');
      if (!wait && session.mode === 'local')
        throw new HoldfastError('NOT_AVAILABLE', 'backup start --detach needs a running engine (`holdfast serve` or `holdfast nbd`) to keep the backup going after this command exits');
      const result = wait ? await waitForBackup(session, spec.op, input, json) : await session.call(spec.op, input);
      printResult(result, spec.output, json, () => spec.human(result, a));
      return EXIT_OK;
    }
    const result = await session.call(spec.op, input);
    spec.check?.(result);
    printResult(result, spec.output, json, () => spec.human(result, a));
    return EXIT_OK;
  } catch (e) {
    return fail(e, EXIT_FAILED);
  } finally {
    await session?.close().catch(() => undefined);
  }
}

/**
 * Runs backup.start, which returns when the backup has ended (the engine's contract), while
 * showing its progress events on stderr. Ctrl-C aborts the backup; the call then fails with
 * CANCELLED and the command exits 1.
 */
async function waitForBackup(session: Session, op: string, input: unknown, json: boolean): Promise<Backup> {
  const volume = (input as { volume: string }).volume;
  await session.watch(['backup.progress']);
  let id: string | null = null;
  let lastPrint = 0;
  const tty = process.stderr.isTTY === true && !json;
  const sub = session.events.onAny((name, payload) => {
    if (name !== 'backup.progress') return;
    const b = payload as Backup & { mbPerSec?: number; etaSec?: number | null; throttledToMiBPerSec?: number | null };
    // One backup per volume runs at a time, so the first running one on our volume is ours.
    if (id === null && b.volume === volume && b.state === 'running') id = b.id;
    if (b.id !== id || b.state !== 'running') return;
    const now = Date.now();
    if (now - lastPrint < (tty ? 100 : 1000)) return;
    lastPrint = now;
    const pct = b.bytesTotal ? ((100 * b.bytesDone) / b.bytesTotal).toFixed(1) : '0.0';
    const line = `backup ${b.id}: ${pct}% ${formatSize(b.bytesDone)} / ${formatSize(b.bytesTotal)}${b.mbPerSec !== undefined ? ` ${b.mbPerSec.toFixed(1)} MB/s` : ''}${b.etaSec != null ? ` ETA ${Math.round(b.etaSec)} s` : ''}${b.throttledToMiBPerSec != null ? ` (throttled to ${b.throttledToMiBPerSec} MiB/s: volumes are being written)` : ''}`;
    process.stderr.write(tty ? `\r${line}\x1b[K` : line + '\n');
  });
  const onSigint = () => {
    if (id) void session.call('backup.abort', { id }).catch(() => undefined);
    else process.exit(130);
  };
  process.on('SIGINT', onSigint);
  try {
    return (await session.call(op, input)) as Backup;
  } finally {
    process.off('SIGINT', onSigint);
    sub.dispose();
    if (tty && lastPrint) process.stderr.write('\n');
  }
}

async function runSpecial(spec: SpecialSpec, a: CmdArgs, dataDir: string, json: boolean): Promise<number> {
  if (spec.special === 'holds') return runHolds(a, dataDir, json);
  let opts: Parameters<typeof runEngineHost>[0];
  try {
    const nbdPort = port(a, 'nbd-port') ?? DEFAULT_NBD_PORT;
    const nbdSocket = a.value('nbd-socket') !== undefined ? path.resolve(a.value('nbd-socket')!) : path.join(dataDir, 'nbd.sock');
    const nbdBind = a.value('nbd-bind') ?? '127.0.0.1';
    if (net.isIP(nbdBind) === 0) throw new UsageError(`--nbd-bind takes an IP address of this machine, e.g. 127.0.0.1, ::1 or 0.0.0.0 for every interface (got "${nbdBind}").`);
    opts = { dataDir, nbdPort, nbdSocket, nbdBind, stdout: out, stderr: err };
    if (spec.special === 'serve') {
      opts.serve = { port: port(a, 'port') ?? 0, open: !a.flag('no-open'), rendererDir: path.join(__dirname, 'renderer') };
    }
  } catch (e) {
    return fail(e, EXIT_USAGE);
  }
  try {
    await runEngineHost(opts);
    return EXIT_OK;
  } catch (e) {
    return fail(e, EXIT_FAILED);
  }
}

async function runHolds(a: CmdArgs, dataDir: string, json: boolean): Promise<number> {
  const volume = a.pos[0];
  let session: Session | null = null;
  try {
    session = await openSession(dataDir);
    const input = volume !== undefined ? { volume } : {};
    if (!a.flag('watch')) {
      const states = (await session.call('holds.get', input)) as HoldState[];
      printResult(states, 'list', json, () => table(states, holdColumns, 'No volumes.'));
      return EXIT_OK;
    }
    // Watching an engine opened just for this command would hold the data dir without a control
    // socket or NBD, so nothing could ever change what it shows — and every other command would be locked out.
    if (session.mode === 'local')
      throw new HoldfastError('NOT_AVAILABLE', 'holds --watch needs a running engine (`holdfast serve`, `holdfast nbd` or the app) on this data directory');
    // Streaming: one JSON object per line with --json (NDJSON), one readable line per change otherwise.
    const line = (h: HoldState) =>
      json
        ? JSON.stringify(h)
        : `${new Date().toISOString().slice(11, 23)} ${h.volume} ${h.backupFlag ? `backup(${h.policy})` : 'idle'} held=${h.heldCount} (${formatSize(h.heldBytes)}) oldest=${formatAge(h.oldestHeldAgeMs)} queued=${h.queuedTotal} released=${h.releasedTotal} copied=${formatSize(h.copiedBytes)}`;
    await session.watch(['holds.changed']);
    const sub = session.events.onAny((name, payload) => {
      if (name !== 'holds.changed') return;
      const h = payload as HoldState;
      if (volume === undefined || h.volume === volume) out(line(h));
    });
    const initial = (await session.call('holds.get', input)) as HoldState[];
    if (json) initial.forEach((h) => out(line(h)));
    else out(table(initial, holdColumns, 'No volumes yet; waiting for changes…'));
    const stopped = new Promise<'signal'>((resolve) => {
      process.once('SIGINT', () => resolve('signal'));
      process.once('SIGTERM', () => resolve('signal'));
    });
    const why = await Promise.race([stopped, session.lost.then(() => 'lost' as const)]);
    sub.dispose();
    if (why === 'lost') throw new HoldfastError('IO_ERROR', 'The Holdfast engine stopped; no more hold-queue updates');
    return EXIT_OK;
  } catch (e) {
    return fail(e, EXIT_FAILED);
  } finally {
    await session?.close().catch(() => undefined);
  }
}

function fail(e: unknown, exit: number): number {
  const p = toErrorPayload(e);
  const msg = oneLine(p.message).replace(/\.$/, '');
  err(`holdfast: ${msg} (${p.code})`);
  return exit;
}

void main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => process.exit(fail(e, EXIT_FAILED)),
);
