/**
 * A small fault-injecting Env for vault tests (the engine's FaultyEnv did not exist yet when
 * these tests were written): wraps NodeEnv and fails mutating calls with ENOSPC once a byte
 * budget is spent, or with EROFS when the "drive" is read-only.
 */
import type { BlockFile, Env, OpenOptions } from '../../../src-main/engine/env/env';
import { NodeEnv } from '../../../src-main/engine/env/node-env';

const errno = (code: string, what: string) => Object.assign(new Error(`${code}: ${what}`), { code });

export class VaultFaultyEnv extends NodeEnv {
  /** Bytes that may still be written before ENOSPC; Infinity = no limit. */
  spaceLeft = Infinity;
  readOnly = false;
  bytesWritten = 0;

  private spend(n: number, what: string): void {
    if (this.readOnly) throw errno('EROFS', what);
    if (n > this.spaceLeft) {
      this.spaceLeft = 0;
      throw errno('ENOSPC', what);
    }
    this.spaceLeft -= n;
    this.bytesWritten += n;
  }

  override async open(p: string, opts: OpenOptions = {}): Promise<BlockFile> {
    if (!opts.readOnly && this.readOnly) throw errno('EROFS', `open ${p}`);
    const f = await super.open(p, opts);
    const write = f.write.bind(f);
    f.write = async (buf: Buffer, pos: number) => {
      this.spend(buf.length, `write ${p}`);
      return write(buf, pos);
    };
    const writev = f.writev.bind(f);
    f.writev = async (bufs: Buffer[], pos: number) => {
      this.spend(bufs.reduce((n, b) => n + b.length, 0), `writev ${p}`);
      return writev(bufs, pos);
    };
    return f;
  }
  override async writeFileAtomic(p: string, data: Buffer | string, opts?: { durable?: boolean }): Promise<void> {
    this.spend(typeof data === 'string' ? Buffer.byteLength(data) : data.length, `write ${p}`);
    return super.writeFileAtomic(p, data, opts);
  }
  override async mkdir(p: string): Promise<void> {
    if (this.readOnly) throw errno('EROFS', `mkdir ${p}`);
    return super.mkdir(p);
  }
  override async rename(a: string, b: string): Promise<void> {
    if (this.readOnly) throw errno('EROFS', `rename ${a}`);
    return super.rename(a, b);
  }
  override async unlink(p: string): Promise<void> {
    if (this.readOnly) throw errno('EROFS', `unlink ${p}`);
    return super.unlink(p);
  }
}
