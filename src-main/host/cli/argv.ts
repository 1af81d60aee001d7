/**
 * Command-line tokenizing for `holdfast`. Every flag has one arity everywhere it appears (a
 * spelling never takes a value in one command and not in another), so flags — including the
 * global `--data DIR` and `--json` — may stand anywhere on the line, before or after the noun
 * and verb. `--flag=value` and `--` (end of flags) are accepted. Unknown flags and missing
 * values are usage errors (exit 2); whether a flag is allowed for a command is checked by the
 * command table.
 */
import { HoldfastError } from '../../../src-shared/errors';

/** Flags that take a value; `repeatable` ones may be given several times. */
export const VALUE_FLAGS = new Set([
  'data',
  'size',
  'device',
  'ack',
  'name',
  'vault',
  'policy',
  'throttle',
  'port',
  'nbd-port',
  'nbd-socket',
  'nbd-bind',
  'format',
  'to-volume',
  'to-file',
  'to-device',
  'confirm',
  'volume',
  'keep-last',
  'keep-daily',
  'keep-weekly',
  'keep-monthly',
  'every',
  'at',
  'day',
  'drive',
]);
export const REPEATABLE_FLAGS = new Set(['device']);
export const BOOLEAN_FLAGS = new Set(['json', 'help', 'create', 'full', 'no-open', 'watch', 'detach', 'encrypt', 'dry-run', 'when-plugged-in', 'disabled']);

export interface ParsedArgs {
  positionals: string[];
  /** Value flags: the list of values given (repeatable flags may have several). */
  values: Map<string, string[]>;
  booleans: Set<string>;
}

export class UsageError extends HoldfastError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

export function parseArgv(argv: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { positionals: [], values: new Map(), booleans: new Set() };
  let flagsEnded = false;
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (flagsEnded || tok === '-' || !tok.startsWith('-')) {
      out.positionals.push(tok);
      continue;
    }
    if (tok === '--') {
      flagsEnded = true;
      continue;
    }
    if (tok === '-h') {
      out.booleans.add('help');
      continue;
    }
    if (!tok.startsWith('--')) throw new UsageError(`Unknown option "${tok}" (options are spelled --name).`);
    const eq = tok.indexOf('=');
    const name = (eq === -1 ? tok.slice(2) : tok.slice(2, eq)).toLowerCase();
    if (BOOLEAN_FLAGS.has(name)) {
      if (eq !== -1) throw new UsageError(`--${name} does not take a value.`);
      out.booleans.add(name);
      continue;
    }
    if (!VALUE_FLAGS.has(name)) throw new UsageError(`Unknown option "--${name}".`);
    let value: string;
    if (eq !== -1) value = tok.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${name} needs a value.`);
      value = next;
      i++;
    }
    const list = out.values.get(name) ?? [];
    if (list.length > 0 && !REPEATABLE_FLAGS.has(name)) throw new UsageError(`--${name} was given more than once.`);
    list.push(value);
    out.values.set(name, list);
  }
  return out;
}
