/**
 * The one error type that crosses every boundary (engine → host → CLI/renderer).
 * Each failure carries a stable code from this list and a message a person can act on.
 * Codes are part of the contract: scripts and the UI branch on them, so never rename one.
 */
export const ErrorCodes = [
  'INVALID_ARGUMENT', // malformed request: bad name, size, path, flag
  'INVALID_NAME',
  'INVALID_SIZE',
  'OUT_OF_RANGE', // offset/length outside a volume or device
  'UNALIGNED', // offset/length not a multiple of the advertised block size
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'IN_USE', // device has volumes, volume is being backed up, export has clients
  'READ_ONLY',
  'NO_SPACE', // no free extents on the devices, or ENOSPC from the OS
  'DEVICE_MISSING',
  'DEVICE_TOO_SMALL',
  'DEVICE_MOUNTED',
  'DEVICE_SYSTEM', // holds the running system
  'CONFIRMATION_REQUIRED', // overwriting a drive needs its typed name
  'IO_ERROR',
  'LOCKED', // another process owns the data directory
  'CATALOG_TOO_NEW',
  'JOURNAL_CORRUPT',
  'BACKUP_RUNNING',
  'BACKUP_NOT_RUNNING',
  'BACKUP_FAILED',
  'VAULT_MISSING',
  'VAULT_CORRUPT',
  'VAULT_TOO_NEW',
  'VAULT_LOCKED', // encrypted vault and no or wrong passphrase
  'SNAPSHOT_NOT_FOUND',
  'CANCELLED',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_AVAILABLE', // the capability is not built yet or not on this platform
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export class HoldfastError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'HoldfastError';
    this.code = code;
    this.details = details;
  }

  toPayload(): ErrorPayload {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }

  static fromPayload(p: ErrorPayload): HoldfastError {
    return new HoldfastError(p.code, p.message, p.details);
  }
}

export function isHoldfastError(e: unknown): e is HoldfastError {
  return e instanceof HoldfastError;
}

/** Converts anything thrown into a payload; unknown errors become INTERNAL with their message. */
export function toErrorPayload(e: unknown): ErrorPayload {
  if (e instanceof HoldfastError) return e.toPayload();
  const err = e as { code?: string; message?: string } | undefined;
  if (err && typeof err.code === 'string') {
    if (err.code === 'ENOSPC') return { code: 'NO_SPACE', message: `The disk is full: ${err.message ?? ''}`.trim() };
    if (err.code === 'EIO') return { code: 'IO_ERROR', message: `An input/output error occurred: ${err.message ?? ''}`.trim() };
    if (err.code === 'ENOENT') return { code: 'NOT_FOUND', message: err.message ?? 'Not found' };
    if (err.code === 'EACCES' || err.code === 'EPERM' || err.code === 'EROFS')
      return { code: 'READ_ONLY', message: `Permission denied or read-only: ${err.message ?? ''}`.trim() };
  }
  return { code: 'INTERNAL', message: err?.message ?? String(e) };
}

/** Invariant check for code past the boundary: a failure is a bug, not bad input. */
export function invariant(cond: unknown, what: string): asserts cond {
  if (!cond) throw new HoldfastError('INTERNAL', `Invariant violated: ${what}`);
}
