/**
 * Maps whatever an export throws to one of the errno values the NBD protocol allows, plus
 * a short message for structured error chunks. Unknown failures become EIO: the client
 * learns the I/O failed, never why the server's internals broke.
 */
import { isHoldfastError } from '../../src-shared/errors';
import { NBD_EINVAL, NBD_EIO, NBD_ENOSPC, NBD_ENOTSUP, NBD_EPERM, NBD_ESHUTDOWN } from './protocol';

export function nbdErrno(e: unknown, isWrite: boolean): number {
  if (isHoldfastError(e)) {
    switch (e.code) {
      case 'OUT_OF_RANGE':
        return isWrite ? NBD_ENOSPC : NBD_EINVAL;
      case 'UNALIGNED':
      case 'INVALID_ARGUMENT':
        return NBD_EINVAL;
      case 'READ_ONLY':
        return NBD_EPERM;
      case 'NO_SPACE':
        return NBD_ENOSPC;
      case 'NOT_AVAILABLE':
        return NBD_ENOTSUP;
      case 'CANCELLED':
        return NBD_ESHUTDOWN;
      default:
        return NBD_EIO;
    }
  }
  const code = (e as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return NBD_ENOSPC;
    case 'EROFS':
    case 'EPERM':
    case 'EACCES':
      return NBD_EPERM;
    case 'EINVAL':
      return NBD_EINVAL;
    default:
      return NBD_EIO;
  }
}

export function errorMessage(e: unknown): string {
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? m : String(e);
}
