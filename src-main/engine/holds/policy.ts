/**
 * Hold policies (claims 1, 10, 11): given an incoming write during a backup, say whether it
 * must wait in the hold queue. One small rule per policy; a new policy is one new class.
 */
import type { HoldPolicy } from '../../../src-shared/contract';
import type { BlockBitmap } from '../volumes/block-bitmap';

export interface HoldRule {
  readonly policy: HoldPolicy;
  mustHold(offset: number, length: number): boolean;
}

/** Claim 1 literally: every write to the volume under backup waits. */
export class WholeVolumeRule implements HoldRule {
  readonly policy = 'volume' as const;
  mustHold(): boolean {
    return true;
  }
}

/** Claim 11: only writes touching blocks the backup has not copied yet. */
export class UncopiedRangeRule implements HoldRule {
  readonly policy = 'range' as const;
  constructor(private readonly copied: BlockBitmap) {}
  mustHold(offset: number, length: number): boolean {
    return !this.copied.allIn(offset, length);
  }
}

/** What the filesystem probe provides: which byte ranges hold filesystem metadata. */
export interface MetadataClassifier {
  isMetadata(offset: number, length: number): boolean;
  describe(): string;
}

/** Claim 10: only writes that change filesystem metadata. The snapshot is metadata-consistent; file data may be newer. */
export class MetadataRule implements HoldRule {
  readonly policy = 'metadata' as const;
  constructor(readonly map: MetadataClassifier) {}
  mustHold(offset: number, length: number): boolean {
    return this.map.isMetadata(offset, length);
  }
}
