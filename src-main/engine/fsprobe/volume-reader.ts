/**
 * Bounded reader the probes use to look at a volume. It owns two promises: a probe never
 * reads outside the volume (a pointer that leads outside means the structure is not what
 * it claims, reported as ProbeInconsistent so the caller falls back to the conservative
 * map), and a probe never reads more than its byte budget (ProbeBudgetExceeded), so a huge
 * or hostile filesystem cannot stall the start of a backup.
 */
import { HoldfastError } from '../../../src-shared/errors';

export type ReadFn = (offset: number, length: number) => Promise<Buffer>;

/** The on-volume structures contradict themselves or point outside the volume. */
export class ProbeInconsistent extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProbeInconsistent';
  }
}

/** The probe would have to read more than it is allowed to. */
export class ProbeBudgetExceeded extends Error {
  constructor(readonly budget: number) {
    super(`the filesystem probe stopped after reading its budget of ${budget} bytes`);
    this.name = 'ProbeBudgetExceeded';
  }
}

export class VolumeReader {
  private bytesRead = 0;

  constructor(
    private readonly readFn: ReadFn,
    readonly size: number,
    readonly budget: number,
  ) {}

  get totalRead(): number {
    return this.bytesRead;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new ProbeInconsistent(`a structure points outside the volume (offset ${offset}, length ${length}, volume ${this.size} bytes)`);
    }
    if (length === 0) return Buffer.alloc(0);
    this.bytesRead += length;
    if (this.bytesRead > this.budget) throw new ProbeBudgetExceeded(this.budget);
    let buf: Buffer;
    try {
      buf = await this.readFn(offset, length);
    } catch (e) {
      if (e instanceof HoldfastError) throw e;
      throw new HoldfastError('IO_ERROR', `Reading the volume at byte ${offset} failed while probing its filesystem: ${(e as Error)?.message ?? String(e)}`);
    }
    if (buf.length < length) {
      throw new HoldfastError('IO_ERROR', `Reading the volume at byte ${offset} returned ${buf.length} of ${length} bytes while probing its filesystem.`);
    }
    return buf.length === length ? buf : buf.subarray(0, length);
  }
}
