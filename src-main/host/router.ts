/**
 * The contract router: the one place where a request from any transport (Electron IPC, the
 * serve host's HTTP, the control socket) is checked against the contract before the engine
 * sees it. Invariants: an op that is not in `operations` never reaches the api; input that
 * does not parse never reaches the api (the api receives the schema's parsed output, so
 * defaults and coercions are applied once, here); every failure leaves as an ErrorPayload.
 */
import { operations, type Api, type OpName } from '../../src-shared/contract';
import { HoldfastError, toErrorPayload, type ErrorPayload } from '../../src-shared/errors';

export type RouterResult = { ok: true; result: unknown } | { ok: false; error: ErrorPayload };

export interface Router {
  /** Validates and runs one operation; never throws. */
  call(op: string, rawInput: unknown): Promise<RouterResult>;
}

export function isOpName(op: unknown): op is OpName {
  return typeof op === 'string' && Object.prototype.hasOwnProperty.call(operations, op);
}

interface IssueLike {
  path: ReadonlyArray<PropertyKey>;
  message: string;
}

/** One line a person can read: `size: Too small…; name: Volume names are…`. */
export function describeIssues(op: string, issues: ReadonlyArray<IssueLike>): string {
  const parts = issues.slice(0, 5).map((i) => {
    const where = i.path.length ? i.path.map(String).join('.') : 'input';
    return `${where}: ${i.message}`;
  });
  if (issues.length > 5) parts.push(`and ${issues.length - 5} more`);
  return `Invalid input for ${op}: ${parts.join('; ')}`;
}

/** Validates `rawInput` for `op`; throws INVALID_ARGUMENT / NOT_FOUND. Exposed for hosts that call the api directly. */
export function parseInput(op: string, rawInput: unknown): { op: OpName; input: unknown } {
  if (!isOpName(op)) throw new HoldfastError('NOT_FOUND', `Unknown operation "${String(op).slice(0, 80)}".`);
  const parsed = operations[op].input.safeParse(rawInput === undefined ? {} : rawInput);
  if (!parsed.success) throw new HoldfastError('INVALID_ARGUMENT', describeIssues(op, parsed.error.issues));
  return { op, input: parsed.data };
}

export function createRouter(api: Api): Router {
  return {
    async call(op, rawInput) {
      try {
        const { op: name, input } = parseInput(op, rawInput);
        const fn = (api as unknown as Record<string, ((i: unknown) => Promise<unknown>) | undefined>)[name];
        if (typeof fn !== 'function') throw new HoldfastError('NOT_AVAILABLE', `${name} is not available yet.`);
        const result = await fn.call(api, input);
        return { ok: true, result };
      } catch (e) {
        return { ok: false, error: toErrorPayload(e) };
      }
    },
  };
}
