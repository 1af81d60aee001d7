/** Drives & devices: attached drives (system disk protected), Holdfast's devices, add a device. */
import { Fragment, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import type { Drive, Device } from '../../src-shared/contract';
import { parseSize } from '../../src-shared/sizes';
import { useApi } from '../api/client-context';
import { toHoldfastError } from '../api/transport';
import { ErrorNotice, FieldError } from '../components/ErrorNotice';
import { resetIfUnchanged } from '../components/form-reset';
import { Badge, Card, EmptyState, Loading, PageHeader } from '../components/Layout';
import { formatDate, formatSize } from '../components/format';
import { deviceListQuery, useAddDevice, useRemoveDevice } from '../queries/devices';
import { driveListQuery } from '../queries/drives';

export function DrivesScreen() {
  return (
    <>
      <PageHeader title="Drives & devices" subtitle="Drives attached to this computer, and the devices Holdfast stores volumes on." />
      <DriveList />
      <DeviceList />
      <AddDeviceForm />
    </>
  );
}

function DriveState({ drive }: { drive: Drive }) {
  if (drive.system) return <Badge tone="danger">System disk · protected</Badge>;
  if (drive.mounted) return <Badge tone="warn">In use · mounted</Badge>;
  return <Badge tone="ok">Available</Badge>;
}

function DriveList() {
  const api = useApi();
  const drives = useQuery(driveListQuery(api));
  const devices = useQuery(deviceListQuery(api));
  const add = useAddDevice();
  const [confirming, setConfirming] = useState<string | null>(null);
  const used = new Set((devices.data ?? []).map((d) => d.path));
  return (
    <Card
      title="Attached drives"
      actions={
        <button type="button" className="btn btn-small" onClick={() => void drives.refetch()} disabled={drives.isFetching}>
          {drives.isFetching ? 'Scanning…' : 'Rescan'}
        </button>
      }
    >
      {drives.isPending && <Loading what="drives" />}
      <ErrorNotice error={drives.error} title="Could not list drives" />
      <ErrorNotice error={add.error} title="Could not add the drive" />
      {drives.data && drives.data.length === 0 && <EmptyState>No drives were found.</EmptyState>}
      {drives.data && drives.data.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Drive</th>
              <th scope="col">Model</th>
              <th scope="col" className="num">Size</th>
              <th scope="col">Type</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {drives.data.map((d) => {
              const blocked = d.system || d.mounted;
              return (
                <Fragment key={d.path}>
                  <tr className={d.system ? 'row-protected' : undefined}>
                    <td>
                      <span className="mono strong">{d.name}</span> <span className="muted mono">{d.path}</span>
                      {d.mountpoints.length > 0 && <div className="muted small">Mounted at {d.mountpoints.join(', ')}</div>}
                    </td>
                    <td>{d.model ?? <span className="muted">Unknown</span>}</td>
                    <td className="num">{formatSize(d.size)}</td>
                    <td>{d.removable ? 'Removable' : 'Internal'}</td>
                    <td>
                      <DriveState drive={d} />
                    </td>
                    <td className="actions">
                      {used.has(d.path) ? (
                        <span className="muted small">Holdfast device</span>
                      ) : (
                        <button
                          type="button"
                          className="btn btn-small"
                          disabled={blocked || add.isPending}
                          title={d.system ? 'Holdfast never writes the disk the running system is on.' : d.mounted ? 'Unmount the drive first.' : undefined}
                          onClick={() => (add.reset(), setConfirming(confirming === d.name ? null : d.name))}
                          aria-expanded={confirming === d.name}
                        >
                          Use as device…
                        </button>
                      )}
                    </td>
                  </tr>
                  {confirming === d.name && !blocked && (
                    <tr className="row-detail">
                      <td colSpan={6}>
                        <FormatDriveConfirm drive={d} busy={add.isPending} onCancel={() => setConfirming(null)} onConfirm={(typed) => add.mutate({ path: d.path, confirm: typed }, { onSuccess: () => setConfirming(null) })} />
                      </td>
                    </tr>
                  )}
                </Fragment>
              );
            })}
          </tbody>
        </table>
      )}
    </Card>
  );
}

/** Adding a drive formats it: the user types the drive's name, as with `--confirm`. */
function FormatDriveConfirm({ drive, busy, onConfirm, onCancel }: { drive: Drive; busy: boolean; onConfirm: (typed: string) => void; onCancel: () => void }) {
  const [typed, setTyped] = useState('');
  const id = `format-${drive.name}`;
  return (
    <div className="danger-zone">
      <p>
        Holdfast will format <strong className="mono">{drive.name}</strong> ({drive.model ?? 'unknown model'}, {formatSize(drive.size)}) to hold volumes. Everything on it now is erased.
      </p>
      <label htmlFor={id}>
        Type <strong className="mono">{drive.name}</strong> to confirm
      </label>
      <div className="inline-form">
        <input id={id} className="mono" value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" spellCheck={false} />
        <button type="button" className="btn btn-small btn-danger" disabled={busy || typed !== drive.name} onClick={() => onConfirm(typed)}>
          {busy ? 'Formatting…' : `Format ${drive.name}`}
        </button>
        <button type="button" className="btn btn-small" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </div>
  );
}

const KIND_LABEL: Record<Device['kind'], string> = { image: 'Image file', 'adopted-image': 'Adopted image', block: 'Drive' };

function DeviceList() {
  const api = useApi();
  const devices = useQuery(deviceListQuery(api));
  const remove = useRemoveDevice();
  return (
    <Card title="Holdfast devices">
      {devices.isPending && <Loading what="devices" />}
      <ErrorNotice error={devices.error} title="Could not list devices" />
      <ErrorNotice error={remove.error} title="Could not remove the device" />
      {devices.data && devices.data.length === 0 && <EmptyState>No devices yet. Add an image file or a drive below to create volumes on it.</EmptyState>}
      {devices.data && devices.data.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Path</th>
              <th scope="col">Kind</th>
              <th scope="col" className="num">Size</th>
              <th scope="col" className="num">Free</th>
              <th scope="col">Added</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {devices.data.map((d) => (
              <tr key={d.id}>
                <td>
                  <span className="mono">{d.path}</span> {!d.present && <Badge tone="warn">Missing</Badge>}
                </td>
                <td>{KIND_LABEL[d.kind]}</td>
                <td className="num">{formatSize(d.size)}</td>
                <td className="num">{formatSize(d.free)}</td>
                <td className="nowrap">{formatDate(d.addedAt)}</td>
                <td className="actions">
                  <button type="button" className="btn btn-small btn-quiet" disabled={remove.isPending} onClick={() => remove.mutate({ device: d.id })} aria-label={`Remove device ${d.path}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

export function AddDeviceForm() {
  const add = useAddDevice();
  const [path, setPath] = useState('');
  const [create, setCreate] = useState(true);
  const [size, setSize] = useState('');
  const [errors, setErrors] = useState<{ path?: string; size?: string }>({});
  const [added, setAdded] = useState<string | null>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const next: typeof errors = {};
    if (!path.trim()) next.path = 'Enter the path of an image file or a drive (for example /srv/disks/data.img or /dev/sdb).';
    let bytes: number | undefined;
    if (create) {
      try {
        bytes = parseSize(size);
        if (bytes % 4096 !== 0) next.size = 'The size must be a multiple of 4 KiB (4096 bytes); for example 2G or 512M.';
      } catch (err) {
        next.size = toHoldfastError(err).message;
      }
    }
    setErrors(next);
    setAdded(null);
    if (next.path || next.size) return;
    add.mutate(create ? { path: path.trim(), create: true, size: bytes } : { path: path.trim() }, {
      onSuccess: (d) => {
        setAdded(d.path);
        resetIfUnchanged(setPath, path, '');
        resetIfUnchanged(setSize, size, '');
      },
    });
  };

  return (
    <Card title="Add a device">
      <form className="form" onSubmit={submit} noValidate>
        <fieldset className="segmented">
          <legend className="sr-only">What to add</legend>
          <label>
            <input type="radio" name="device-mode" checked={create} onChange={() => setCreate(true)} /> Create a new image file
          </label>
          <label>
            <input type="radio" name="device-mode" checked={!create} onChange={() => setCreate(false)} /> Use an existing file or drive
          </label>
        </fieldset>
        <div className="form-row">
          <div className="field grow">
            <label htmlFor="device-path">{create ? 'New image file path' : 'File or drive path'}</label>
            <input
              id="device-path"
              className="mono"
              value={path}
              onChange={(e) => setPath(e.target.value)}
              placeholder={create ? '/srv/holdfast/disk1.img' : '/dev/sdb'}
              aria-invalid={!!errors.path}
              aria-describedby={errors.path ? 'device-path-error' : undefined}
            />
            <FieldError id="device-path-error" message={errors.path ?? null} />
          </div>
          {create && (
            <div className="field">
              <label htmlFor="device-size">Size</label>
              <input
                id="device-size"
                value={size}
                onChange={(e) => setSize(e.target.value)}
                placeholder="2G"
                aria-invalid={!!errors.size}
                aria-describedby={errors.size ? 'device-size-error' : 'device-size-hint'}
              />
              {!errors.size && (
                <p className="hint" id="device-size-hint">
                  Bytes or K, M, G, T — the file is sparse.
                </p>
              )}
              <FieldError id="device-size-error" message={errors.size ?? null} />
            </div>
          )}
          <div className="field field-button">
            <button type="submit" className="btn btn-primary" disabled={add.isPending}>
              {add.isPending ? 'Adding…' : create ? 'Create image file' : 'Add device'}
            </button>
          </div>
        </div>
        <ErrorNotice error={add.error} title="The device was not added" />
        {added && (
          <p className="notice notice-ok" role="status">
            Added {added}.
          </p>
        )}
      </form>
    </Card>
  );
}
