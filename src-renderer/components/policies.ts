/** The three hold policies, each explained in one sentence: what waits, and what the snapshot guarantees. */
import type { HoldPolicy } from '../../src-shared/contract';

export const POLICIES: { id: HoldPolicy; name: string; held: string; guarantee: string }[] = [
  {
    id: 'range',
    name: 'Range',
    held: 'Only writes to blocks not yet copied wait (in the journal) until those blocks are copied.',
    guarantee: 'Exact snapshot, shortest waits.',
  },
  {
    id: 'volume',
    name: 'Whole volume',
    held: 'Every write to this volume waits (in the journal) until the backup ends.',
    guarantee: 'Exact snapshot.',
  },
  {
    id: 'metadata',
    name: 'Metadata only',
    held: 'Only filesystem-metadata writes wait until the backup ends.',
    guarantee: 'Metadata-consistent snapshot; file data may be newer.',
  },
];

export const policyName = (p: HoldPolicy | null | undefined) => POLICIES.find((x) => x.id === p)?.name ?? '—';
