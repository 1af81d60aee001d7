/**
 * Schedules: automatic backups of a volume or a drive — hourly, daily or weekly at a local
 * time, and/or when the backup drive (the vault folder) is plugged in — with retention applied
 * after every run. The list shows each schedule's next run and how its last run went; the form
 * creates and edits with person-readable checks before anything is sent. Schedules run in the
 * engine host (the app, also in the tray; `holdfast serve`; `holdfast nbd`), not in this page.
 */
import { useRef, useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { TIME_OF_DAY_RE, type HoldPolicy, type OpInput, type Retention, type Schedule, type ScheduleFrequency } from '../../src-shared/contract';
import { useApi } from '../api/client-context';
import { ErrorNotice, FieldError } from '../components/ErrorNotice';
import { resetIfUnchanged } from '../components/form-reset';
import { Badge, Card, EmptyState, Loading, PageHeader } from '../components/Layout';
import { formatDate, formatWhen, shortPath } from '../components/format';
import { POLICIES, policyName } from '../components/policies';
import { driveListQuery } from '../queries/drives';
import { engineInfoQuery } from '../queries/engine';
import { scheduleListQuery, useCreateSchedule, useDeleteSchedule, useRunSchedule, useUpdateSchedule } from '../queries/schedules';
import { volumeListQuery } from '../queries/volumes';

export const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

export function describeWhen(s: Pick<Schedule, 'frequency' | 'onPlugIn'>): string {
  const f = s.frequency;
  const timer = !f ? null : f.every === 'hour' ? `Every hour at :${String(f.minute).padStart(2, '0')}` : f.every === 'day' ? `Every day at ${f.at}` : `Every ${WEEKDAYS[f.weekday]} at ${f.at}`;
  if (timer && s.onPlugIn) return `${timer}, and when the backup drive is plugged in`;
  return timer ?? 'When the backup drive is plugged in';
}

export function describeRetention(r: Retention): string {
  const parts = [
    r.keepLast !== undefined ? `the last ${r.keepLast}` : null,
    r.keepDaily !== undefined ? `${r.keepDaily} daily` : null,
    r.keepWeekly !== undefined ? `${r.keepWeekly} weekly` : null,
    r.keepMonthly !== undefined ? `${r.keepMonthly} monthly` : null,
  ].filter(Boolean);
  return parts.length ? `Keeps ${parts.join(', ')}` : 'Keeps every snapshot';
}

const targetName = (s: Schedule) => (s.target.kind === 'volume' ? s.target.volume : s.target.drive);
const TRIGGERS: Record<string, string> = { time: 'on time', 'catch-up': 'caught up at start', 'plug-in': 'drive plugged in', manual: 'run by hand' };

export function SchedulesScreen() {
  const api = useApi();
  const schedules = useQuery(scheduleListQuery(api));
  const [editing, setEditing] = useState<Schedule | null>(null);
  const formRef = useRef<HTMLElement | null>(null);
  const edit = (s: Schedule) => {
    setEditing(s);
    requestAnimationFrame(() => formRef.current?.querySelector<HTMLElement>('input, select')?.focus());
  };
  return (
    <>
      <PageHeader
        title="Schedules"
        subtitle="Automatic backups per volume or drive, with retention. They run while Holdfast runs (the app, also from the tray; holdfast serve or holdfast nbd); a run missed meanwhile catches up once at start."
      />
      <Card title="Scheduled backups">
        {schedules.isPending && <Loading what="schedules" />}
        <ErrorNotice error={schedules.error} title="Could not list the schedules" />
        {schedules.data && schedules.data.length === 0 && <EmptyState>No schedules yet. Add one below: pick a volume or drive, when, and how many snapshots to keep.</EmptyState>}
        {schedules.data && schedules.data.length > 0 && (
          <table className="table schedules-table">
            <thead>
              <tr>
                <th scope="col">Backs up</th>
                <th scope="col">When</th>
                <th scope="col">Vault and retention</th>
                <th scope="col">Next run</th>
                <th scope="col">Last run</th>
                <th scope="col" className="actions">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {schedules.data.map((s) => (
                <ScheduleRow key={s.id} schedule={s} onEdit={() => edit(s)} editing={editing?.id === s.id} />
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <section ref={formRef} aria-label="Schedule form">
        <ScheduleForm key={editing ? `edit-${editing.id}` : 'new'} editing={editing} onDone={() => setEditing(null)} />
      </section>
    </>
  );
}

function LastRun({ schedule }: { schedule: Schedule }) {
  const r = schedule.lastRun;
  if (!r) return <span className="muted">Not run yet</span>;
  const badge =
    r.status === 'completed' ? <Badge tone="ok">Completed</Badge> : r.status === 'failed' ? <Badge tone="danger">Failed</Badge> : r.status === 'skipped' ? <Badge tone="warn">Skipped</Badge> : <Badge tone="info">Running…</Badge>;
  return (
    <div className="schedule-when">
      <div>
        {badge} <span className="small">{formatWhen(r.startedAt)}</span> <span className="muted small">({TRIGGERS[r.trigger] ?? r.trigger})</span>
      </div>
      {r.snapshotId && (
        <span className="small">
          Snapshot <span className="mono">{r.snapshotId}</span>
          {r.pruned ? <span className="muted"> · {r.pruned} old removed</span> : null}
        </span>
      )}
      {r.error && <p className={r.status === 'completed' || r.status === 'skipped' ? 'schedule-run-note' : 'schedule-run-error'}>{r.error}</p>}
    </div>
  );
}

function ScheduleRow({ schedule: s, onEdit, editing }: { schedule: Schedule; onEdit: () => void; editing: boolean }) {
  const run = useRunSchedule();
  const update = useUpdateSchedule();
  const del = useDeleteSchedule();
  const [confirming, setConfirming] = useState(false);
  const name = targetName(s);
  const running = s.lastRun?.status === 'running' || run.isPending;
  const error = run.error ?? update.error ?? del.error;
  return (
    <>
      <tr aria-label={`Schedule ${s.id}: ${name}`}>
        <td>
          <span className="mono strong">{name}</span>
          <div className="muted small">{s.target.kind === 'volume' ? `Volume · ${policyName(s.policy)} policy` : 'Drive image'}</div>
        </td>
        <td>
          <div className="schedule-when">
            <span>{describeWhen(s)}</span>
            {!s.enabled && (
              <span>
                <Badge tone="muted">Off</Badge>
              </span>
            )}
          </div>
        </td>
        <td>
          <span className="mono small nowrap" title={s.vault}>
            {shortPath(s.vault, 24)}
          </span>{' '}
          {!s.vaultPresent && <Badge tone="warn">Not connected</Badge>}
          <div className="muted small">{describeRetention(s.retention)}</div>
        </td>
        <td className="nowrap">{s.nextRunAt ? formatDate(s.nextRunAt) : <span className="muted">{s.enabled ? 'On plug-in only' : '—'}</span>}</td>
        <td>
          <LastRun schedule={s} />
        </td>
        <td className="actions">
          <div className="row-actions">
            <button type="button" className="btn btn-small" disabled={running} onClick={() => run.mutate({ id: s.id })} aria-label={`Run now: ${name}`}>
              {running ? 'Running…' : 'Run now'}
            </button>
            <button type="button" className="btn btn-small" onClick={onEdit} aria-pressed={editing} aria-label={`Edit schedule of ${name}`}>
              Edit
            </button>
            <button type="button" className="btn btn-small" disabled={update.isPending} onClick={() => update.mutate({ id: s.id, enabled: !s.enabled })} aria-label={`${s.enabled ? 'Turn off' : 'Turn on'} schedule of ${name}`}>
              {s.enabled ? 'Turn off' : 'Turn on'}
            </button>
            <button type="button" className="btn btn-small btn-danger-quiet" onClick={() => setConfirming(true)} aria-label={`Delete schedule of ${name}`}>
              Delete…
            </button>
          </div>
        </td>
      </tr>
      {(confirming || error) && (
        <tr className="row-detail">
          <td colSpan={6}>
            {confirming && (
              <div className="confirm" role="group" aria-label={`Confirm deleting the schedule of ${name}`}>
                <p>
                  Delete the schedule of <strong className="mono">{name}</strong> ({describeWhen(s).toLowerCase()})? Its snapshots stay in the vault.
                </p>
                <button type="button" className="btn btn-small btn-danger" disabled={del.isPending} onClick={() => del.mutate({ id: s.id })}>
                  {del.isPending ? 'Deleting…' : 'Delete schedule'}
                </button>{' '}
                <button type="button" className="btn btn-small" onClick={() => (del.reset(), setConfirming(false))}>
                  Keep it
                </button>
              </div>
            )}
            <ErrorNotice error={error} title={run.error ? 'The run did not start' : update.error ? 'The schedule was not changed' : 'The schedule was not deleted'} />
          </td>
        </tr>
      )}
    </>
  );
}

// ------------------------------------------------------------------ form

type Every = 'none' | ScheduleFrequency['every'];
interface FormState {
  kind: 'volume' | 'drive';
  volume: string;
  drive: string;
  every: Every;
  minute: string;
  at: string;
  weekday: string;
  onPlugIn: boolean;
  vault: string;
  policy: HoldPolicy;
  keepLast: string;
  keepDaily: string;
  keepWeekly: string;
  keepMonthly: string;
  enabled: boolean;
}
type Errors = Partial<Record<'target' | 'when' | 'at' | 'minute' | 'keep', string>>;
const KEEPS = [
  ['keepLast', 'Keep last'],
  ['keepDaily', 'Daily'],
  ['keepWeekly', 'Weekly'],
  ['keepMonthly', 'Monthly'],
] as const;

function initialState(s: Schedule | null): FormState {
  const f = s?.frequency ?? null;
  const r = s?.retention ?? {};
  const str = (n: number | undefined) => (n === undefined ? '' : String(n));
  return {
    kind: s?.target.kind ?? 'volume',
    volume: s?.target.kind === 'volume' ? s.target.volume : '',
    drive: s?.target.kind === 'drive' ? s.target.drive : '',
    every: s ? (f?.every ?? 'none') : 'day',
    minute: f?.every === 'hour' ? String(f.minute) : '0',
    at: f && f.every !== 'hour' ? f.at : '02:00',
    weekday: f?.every === 'week' ? String(f.weekday) : '1',
    onPlugIn: s?.onPlugIn ?? false,
    vault: s?.vault ?? '',
    policy: s?.policy ?? 'range',
    keepLast: str(r.keepLast),
    keepDaily: str(r.keepDaily),
    keepWeekly: str(r.keepWeekly),
    keepMonthly: str(r.keepMonthly),
    enabled: s?.enabled ?? true,
  };
}

/** Checks the form as the engine would, in words a person can act on; returns the input or the errors. */
export function checkScheduleForm(st: FormState, defaultVolume: string): { input?: Omit<OpInput<'schedule.create'>, 'vault'>; errors: Errors } {
  const errors: Errors = {};
  const volume = st.volume || defaultVolume;
  if (st.kind === 'volume' && !volume) errors.target = 'There is no volume to back up yet; create one on the Volumes screen first.';
  if (st.kind === 'drive' && !st.drive.trim()) errors.target = 'Name the drive to image, for example sdb (as the Drives screen shows it) or /dev/sdb.';
  let frequency: ScheduleFrequency | null = null;
  const at = /^\d:\d\d$/.test(st.at.trim()) ? `0${st.at.trim()}` : st.at.trim();
  if (st.every === 'hour') {
    const m = Number(st.minute);
    if (!/^\d{1,2}$/.test(st.minute.trim()) || m > 59) errors.minute = 'Minutes past the hour are a whole number from 0 to 59.';
    else frequency = { every: 'hour', minute: m };
  } else if (st.every === 'day' || st.every === 'week') {
    if (!TIME_OF_DAY_RE.test(at)) errors.at = 'Times are HH:MM on a 24-hour clock, for example 02:30 or 18:00.';
    else frequency = st.every === 'day' ? { every: 'day', at } : { every: 'week', weekday: Number(st.weekday), at };
  }
  if (st.every === 'none' && !st.onPlugIn) errors.when = 'Say when to back up: pick hourly, daily or weekly, or tick “when the backup drive is plugged in” (or both).';
  const retention: Retention = {};
  for (const [k, label] of KEEPS) {
    const v = st[k].trim();
    if (v === '') continue;
    if (!/^\d+$/.test(v) || Number(v) > 10_000) errors.keep = `“${label}” must be a whole number from 0 to 10000, or empty to not use it.`;
    else retention[k] = Number(v);
  }
  if (Object.keys(errors).length) return { errors };
  return {
    errors,
    input: {
      target: st.kind === 'volume' ? { kind: 'volume', volume } : { kind: 'drive', drive: st.drive.trim() },
      frequency,
      onPlugIn: st.onPlugIn,
      ...(st.kind === 'volume' ? { policy: st.policy } : {}),
      retention,
      enabled: st.enabled,
    },
  };
}

function ScheduleForm({ editing, onDone }: { editing: Schedule | null; onDone: () => void }) {
  const api = useApi();
  const volumes = useQuery(volumeListQuery(api));
  const drives = useQuery(driveListQuery(api));
  const info = useQuery(engineInfoQuery(api));
  const create = useCreateSchedule();
  const update = useUpdateSchedule();
  const [st, setSt] = useState<FormState>(() => initialState(editing));
  const [errors, setErrors] = useState<Errors>({});
  const [saved, setSaved] = useState<string | null>(null);
  const set = <K extends keyof FormState>(k: K, v: FormState[K]) => {
    setSaved(null);
    setSt((p) => ({ ...p, [k]: v }));
  };
  const mutation = editing ? update : create;
  const defaultVolume = volumes.data?.[0]?.name ?? '';
  const defaultVault = info.data?.defaultVault ?? '';

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const { input, errors: found } = checkScheduleForm(st, defaultVolume);
    setErrors(found);
    if (!input) return;
    const vault = st.vault.trim() || defaultVault;
    const done = (s: Schedule) => {
      setSaved(`${editing ? 'Saved' : 'Created'} the schedule of ${targetName(s)}.`);
      if (editing) onDone();
      else resetIfUnchanged(setSt, st, initialState(null));
    };
    if (editing) update.mutate({ id: editing.id, ...input, ...(vault ? { vault } : {}) }, { onSuccess: done });
    else create.mutate({ ...input, ...(st.vault.trim() ? { vault: st.vault.trim() } : {}) }, { onSuccess: done });
  };

  const pickableDrives = (drives.data ?? []).filter((d) => !d.system);
  return (
    <Card title={editing ? `Edit the schedule of ${targetName(editing)}` : 'New schedule'}>
      <form className="form" onSubmit={submit} noValidate>
        <div className="form-row">
          <fieldset className="segmented">
            <legend>Back up</legend>
            <label>
              <input type="radio" name="schedule-kind" checked={st.kind === 'volume'} onChange={() => set('kind', 'volume')} /> A volume
            </label>
            <label>
              <input type="radio" name="schedule-kind" checked={st.kind === 'drive'} onChange={() => set('kind', 'drive')} /> A drive (image it, not mounted)
            </label>
          </fieldset>
        </div>
        <div className="form-row">
          {st.kind === 'volume' ? (
            <div className="field">
              <label htmlFor="schedule-volume">Volume</label>
              <select id="schedule-volume" value={st.volume || defaultVolume} onChange={(e) => set('volume', e.target.value)} aria-invalid={!!errors.target} aria-describedby={errors.target ? 'schedule-target-error' : undefined}>
                {(volumes.data ?? []).map((v) => (
                  <option key={v.id} value={v.name}>
                    {v.name}
                  </option>
                ))}
              </select>
              <FieldError id="schedule-target-error" message={errors.target ?? null} />
            </div>
          ) : (
            <div className="field">
              <label htmlFor="schedule-drive">Drive</label>
              <input id="schedule-drive" className="mono" list="schedule-drives" value={st.drive} onChange={(e) => set('drive', e.target.value)} placeholder="sdb" aria-invalid={!!errors.target} aria-describedby={errors.target ? 'schedule-target-error' : 'schedule-drive-hint'} />
              <datalist id="schedule-drives">
                {pickableDrives.map((d) => (
                  <option key={d.name} value={d.name}>
                    {d.model ?? d.path}
                  </option>
                ))}
              </datalist>
              <p className="hint" id="schedule-drive-hint">
                A drive name as the Drives screen shows it, or an image file’s path. It must not be mounted.
              </p>
              <FieldError id="schedule-target-error" message={errors.target ?? null} />
            </div>
          )}
          {st.kind === 'volume' && (
            <div className="field">
              <label htmlFor="schedule-policy">Hold policy</label>
              <select id="schedule-policy" value={st.policy} onChange={(e) => set('policy', e.target.value as HoldPolicy)} aria-describedby="schedule-policy-hint">
                {POLICIES.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
              <p className="hint" id="schedule-policy-hint">
                {POLICIES.find((p) => p.id === st.policy)?.guarantee}
              </p>
            </div>
          )}
          <div className="field grow">
            <label htmlFor="schedule-vault">Vault folder</label>
            <input id="schedule-vault" className="mono" value={st.vault} onChange={(e) => set('vault', e.target.value)} placeholder={defaultVault || 'The default vault'} aria-describedby="schedule-vault-hint" />
            <p className="hint" id="schedule-vault-hint">
              Empty: the default vault. An external drive’s folder must be connected while you save.
            </p>
          </div>
        </div>
        <div className="form-row">
          <div className="field">
            <label htmlFor="schedule-every">Repeat</label>
            <select id="schedule-every" value={st.every} onChange={(e) => set('every', e.target.value as Every)} aria-invalid={!!errors.when} aria-describedby={errors.when ? 'schedule-when-error' : undefined}>
              <option value="hour">Every hour</option>
              <option value="day">Every day</option>
              <option value="week">Every week</option>
              <option value="none">Not on a timer</option>
            </select>
          </div>
          {st.every === 'hour' && (
            <div className="field">
              <label htmlFor="schedule-minute">Minutes past the hour</label>
              <input id="schedule-minute" inputMode="numeric" value={st.minute} onChange={(e) => set('minute', e.target.value)} aria-invalid={!!errors.minute} aria-describedby={errors.minute ? 'schedule-minute-error' : undefined} />
              <FieldError id="schedule-minute-error" message={errors.minute ?? null} />
            </div>
          )}
          {st.every === 'week' && (
            <div className="field">
              <label htmlFor="schedule-weekday">On</label>
              <select id="schedule-weekday" value={st.weekday} onChange={(e) => set('weekday', e.target.value)}>
                {WEEKDAYS.map((d, i) => (
                  <option key={d} value={String(i)}>
                    {d}
                  </option>
                ))}
              </select>
            </div>
          )}
          {(st.every === 'day' || st.every === 'week') && (
            <div className="field">
              <label htmlFor="schedule-at">At (HH:MM, this computer’s time)</label>
              <input id="schedule-at" className="mono" value={st.at} onChange={(e) => set('at', e.target.value)} placeholder="02:30" aria-invalid={!!errors.at} aria-describedby={errors.at ? 'schedule-at-error' : undefined} />
              <FieldError id="schedule-at-error" message={errors.at ?? null} />
            </div>
          )}
          <div className="field grow field-button">
            <label className="check">
              <input type="checkbox" checked={st.onPlugIn} onChange={(e) => set('onPlugIn', e.target.checked)} /> {st.every === 'none' ? 'When' : 'Also when'} the backup drive is plugged in
            </label>
          </div>
        </div>
        <FieldError id="schedule-when-error" message={errors.when ?? null} />
        <fieldset>
          <legend>Retention after each run (empty: not used; nothing set keeps every snapshot)</legend>
          <div className="form-row retention-row">
            {KEEPS.map(([k, label]) => (
              <div className="field" key={k}>
                <label htmlFor={`schedule-${k}`}>{label}</label>
                <input id={`schedule-${k}`} inputMode="numeric" value={st[k]} onChange={(e) => set(k, e.target.value)} aria-invalid={!!errors.keep && !/^\d*$/.test(st[k].trim())} />
              </div>
            ))}
          </div>
          <FieldError id="schedule-keep-error" message={errors.keep ?? null} />
        </fieldset>
        <div className="form-row form-row-end">
          <label className="check">
            <input type="checkbox" checked={st.enabled} onChange={(e) => set('enabled', e.target.checked)} /> Turned on
          </label>
          <div>
            {editing && (
              <>
                <button type="button" className="btn" onClick={onDone}>
                  Cancel
                </button>{' '}
              </>
            )}
            <button type="submit" className="btn btn-primary" disabled={mutation.isPending}>
              {mutation.isPending ? 'Saving…' : editing ? 'Save changes' : 'Create schedule'}
            </button>
          </div>
        </div>
        {saved && (
          <p className="notice notice-ok" role="status">
            {saved}
          </p>
        )}
        <ErrorNotice error={mutation.error} title={editing ? 'The schedule was not changed' : 'The schedule was not created'} />
      </form>
    </Card>
  );
}
