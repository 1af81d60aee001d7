/** Volumes: list with extent map and NBD addresses; create, grow and delete with validation. */
import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { VOLUME_NAME_RE, type Device, type Volume, type VolumeWriteRate } from '../../src-shared/contract';
import { parseSize } from '../../src-shared/sizes';
import { useApi } from '../api/client-context';
import { toHoldfastError } from '../api/transport';
import { CopyButton } from '../components/CopyButton';
import { ErrorNotice, FieldError } from '../components/ErrorNotice';
import { ExtentMap } from '../components/ExtentMap';
import { resetIfUnchanged } from '../components/form-reset';
import { Badge, Card, EmptyState, Loading, PageHeader } from '../components/Layout';
import { formatCount, formatDate, formatSize } from '../components/format';
import { nbdAddresses } from '../components/nbd-address';
import { deviceListQuery } from '../queries/devices';
import { engineInfoQuery } from '../queries/engine';
import { useCreateVolume, useDeleteVolume, useGrowVolume, volumeListQuery, volumeRatesQuery } from '../queries/volumes';

/** Client-side checks mirror the contract so most mistakes are caught before a round trip. */
export function checkVolumeName(name: string): string | null {
  if (!name) return 'Give the volume a name.';
  return VOLUME_NAME_RE.test(name) ? null : 'Volume names are 1–64 letters, digits, dot, dash or underscore, starting with a letter or digit.';
}

export function checkVolumeSize(text: string): { bytes?: number; error: string | null } {
  try {
    const bytes = parseSize(text);
    if (bytes % 4096 !== 0) return { error: 'The size must be a multiple of 4 KiB (4096 bytes); for example 1G or 256M.' };
    return { bytes, error: null };
  } catch (e) {
    return { error: toHoldfastError(e).message };
  }
}

export function VolumesScreen() {
  const api = useApi();
  const volumes = useQuery(volumeListQuery(api));
  const devices = useQuery(deviceListQuery(api));
  return (
    <>
      <PageHeader title="Volumes" subtitle="Logical volumes made of extents on your devices. Attach them to VMs or the kernel over NBD." />
      <CreateVolumeForm devices={devices.data ?? []} />
      {volumes.isPending && <Loading what="volumes" />}
      <ErrorNotice error={volumes.error} title="Could not list volumes" />
      {volumes.data && volumes.data.length === 0 && (
        <Card>
          <EmptyState>No volumes yet. Create one above; it needs a device with free space.</EmptyState>
        </Card>
      )}
      {volumes.data?.map((v) => <VolumeCard key={v.id} volume={v} devices={devices.data ?? []} />)}
    </>
  );
}

function CreateVolumeForm({ devices }: { devices: Device[] }) {
  const create = useCreateVolume();
  const [name, setName] = useState('');
  const [size, setSize] = useState('');
  const [ack, setAck] = useState<'journal' | 'device'>('journal');
  const [picked, setPicked] = useState<number[]>([]);
  const [errors, setErrors] = useState<{ name?: string | null; size?: string | null }>({});

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const nameError = checkVolumeName(name.trim());
    const s = checkVolumeSize(size);
    setErrors({ name: nameError, size: s.error });
    if (nameError || s.error || s.bytes === undefined) return;
    create.mutate(
      { name: name.trim(), size: s.bytes, ack, ...(picked.length ? { devices: picked } : {}) },
      {
        onSuccess: () => {
          resetIfUnchanged(setName, name, '');
          resetIfUnchanged(setSize, size, '');
          setPicked([]);
        },
      },
    );
  };

  return (
    <Card title="Create a volume">
      <form className="form" onSubmit={submit} noValidate>
        <div className="form-row">
          <div className="field">
            <label htmlFor="volume-name">Name</label>
            <input id="volume-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="vm-disk" aria-invalid={!!errors.name} aria-describedby={errors.name ? 'volume-name-error' : undefined} />
            <FieldError id="volume-name-error" message={errors.name ?? null} />
          </div>
          <div className="field">
            <label htmlFor="volume-size">Size</label>
            <input id="volume-size" value={size} onChange={(e) => setSize(e.target.value)} placeholder="8G" aria-invalid={!!errors.size} aria-describedby={errors.size ? 'volume-size-error' : undefined} />
            <FieldError id="volume-size-error" message={errors.size ?? null} />
          </div>
          <div className="field wide">
            <label htmlFor="volume-ack">Acknowledge writes</label>
            <select id="volume-ack" value={ack} onChange={(e) => setAck(e.target.value as 'journal' | 'device')}>
              <option value="journal">From the journal (writers never stall)</option>
              <option value="device">From the device (held writers wait)</option>
            </select>
          </div>
          <div className="field field-button">
            <button type="submit" className="btn btn-primary" disabled={create.isPending}>
              {create.isPending ? 'Creating…' : 'Create volume'}
            </button>
          </div>
        </div>
        {devices.length > 1 && (
          <fieldset className="checks">
            <legend>Place on devices (none ticked: Holdfast chooses)</legend>
            {devices.map((d) => (
              <label key={d.id}>
                <input
                  type="checkbox"
                  checked={picked.includes(d.id)}
                  onChange={(e) => setPicked((p) => (e.target.checked ? [...p, d.id] : p.filter((x) => x !== d.id)))}
                />{' '}
                <span className="mono">{d.path}</span> <span className="muted">({formatSize(d.free)} free)</span>
              </label>
            ))}
          </fieldset>
        )}
        <ErrorNotice error={create.error} title="The volume was not created" />
      </form>
    </Card>
  );
}

function VolumeCard({ volume, devices }: { volume: Volume; devices: Device[] }) {
  const api = useApi();
  const info = useQuery(engineInfoQuery(api));
  const rates = useQuery(volumeRatesQuery());
  const addresses = nbdAddresses(volume, info.data?.nbd);
  return (
    <Card
      className="volume-card"
      title={
        <>
          <span className="mono">{volume.name}</span> <span className="muted title-size">{formatSize(volume.size)}</span>
        </>
      }
      actions={
        <>
          <WriteRate name={volume.name} rate={rates.data?.[volume.name]} />
          {volume.backup && <Badge tone="info">Backing up · {volume.backup.policy} policy</Badge>}
          {volume.adopted && <Badge tone="muted">Adopted</Badge>}
          <Badge tone="muted">ack: {volume.ackMode}</Badge>
          {volume.nbd && volume.nbd.clients > 0 && <Badge tone="ok">{volume.nbd.clients} NBD client(s)</Badge>}
        </>
      }
    >
      <ExtentMap size={volume.size} extents={volume.extents} devices={devices} />
      <div className="volume-grid">
        <div>
          <h3>Attach over NBD</h3>
          {addresses.length === 0 && <p className="muted">The NBD server is not running.</p>}
          <ul className="addresses">
            {addresses.map((a) => (
              <li key={a.uri}>
                <span className="addr-label">{a.label}</span>
                <code className="addr">{a.uri}</code>
                <CopyButton text={a.uri} label={`Copy ${a.label} address of ${volume.name}`} />
              </li>
            ))}
          </ul>
          <p className="muted small">Created {formatDate(volume.createdAt)}</p>
        </div>
        <div>
          <h3>Manage</h3>
          <GrowVolumeForm volume={volume} />
          <DeleteVolume volume={volume} />
        </div>
      </div>
    </Card>
  );
}

/** Acknowledged writes per second, from the engine's once-a-second `volumes.stats`; "Idle" when none. */
export function WriteRate({ name, rate }: { name: string; rate: VolumeWriteRate | undefined }) {
  const active = !!rate && (rate.writesPerSec > 0 || rate.bytesPerSec > 0);
  return (
    <span className={`write-rate ${active ? 'active' : 'idle'}`} data-testid={`write-rate-${name}`} aria-label={`Write rate of ${name}`}>
      {active ? `${formatCount(Math.round(rate.writesPerSec))} writes/s · ${formatSize(Math.round(rate.bytesPerSec))}/s` : 'Idle'}
    </span>
  );
}

function GrowVolumeForm({ volume }: { volume: Volume }) {
  const grow = useGrowVolume();
  const [size, setSize] = useState('');
  const [error, setError] = useState<string | null>(null);
  const id = `grow-${volume.id}`;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const s = checkVolumeSize(size);
    let err = s.error;
    if (!err && s.bytes !== undefined && s.bytes <= volume.size) err = `The new size must be larger than the current ${formatSize(volume.size)}.`;
    setError(err);
    if (err || s.bytes === undefined) return;
    grow.mutate({ name: volume.name, size: s.bytes }, { onSuccess: () => resetIfUnchanged(setSize, size, '') });
  };
  return (
    <form className="inline-form" onSubmit={submit} noValidate>
      <label htmlFor={id}>Grow to</label>
      <input id={id} value={size} onChange={(e) => setSize(e.target.value)} placeholder="16G" aria-invalid={!!error} aria-describedby={error ? `${id}-error` : undefined} />
      <button type="submit" className="btn btn-small" disabled={grow.isPending}>
        {grow.isPending ? 'Growing…' : 'Grow'}
      </button>
      <FieldError id={`${id}-error`} message={error} />
      <ErrorNotice error={grow.error} title="The volume was not grown" />
    </form>
  );
}

function DeleteVolume({ volume }: { volume: Volume }) {
  const del = useDeleteVolume();
  const [asking, setAsking] = useState(false);
  if (!asking)
    return (
      <button type="button" className="btn btn-small btn-danger-quiet" onClick={() => setAsking(true)}>
        Delete volume…
      </button>
    );
  return (
    <div className="confirm" role="group" aria-label={`Confirm deleting ${volume.name}`}>
      <p>
        Delete <strong className="mono">{volume.name}</strong> and its {formatSize(volume.size)} of data? Snapshots in vaults are kept.
      </p>
      <button type="button" className="btn btn-small btn-danger" disabled={del.isPending} onClick={() => del.mutate({ name: volume.name })}>
        {del.isPending ? 'Deleting…' : 'Delete'}
      </button>{' '}
      <button type="button" className="btn btn-small" onClick={() => (del.reset(), setAsking(false))}>
        Keep it
      </button>
      <ErrorNotice error={del.error} title="The volume was not deleted" />
    </div>
  );
}
