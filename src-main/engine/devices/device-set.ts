/**
 * The open handles of the catalog's devices, one BlockFile per device id. A device whose
 * file or drive is not there (unplugged drive, moved image) or whose label names another
 * device (a different drive now answers to /dev/sdb) is reported present=false with the
 * reason, and file() refuses it — nothing writes to the wrong disk.
 */
import type { BlockFile, Env } from '../env/env';
import { HoldfastError } from '../../../src-shared/errors';
import { readLabel } from './label';

export interface DeviceHandleInfo {
  id: number;
  path: string;
  labelUuid: string | null;
}

export interface DeviceStatus {
  present: boolean;
  reason?: string;
}

export class DeviceSet {
  private readonly files = new Map<number, BlockFile>();
  private readonly status = new Map<number, DeviceStatus>();

  constructor(private readonly env: Env) {}

  /** Opens (or reopens) a device; returns whether it is present and is the device the catalog means. */
  async open(d: DeviceHandleInfo): Promise<boolean> {
    await this.close(d.id);
    let file: BlockFile;
    try {
      file = await this.env.open(d.path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.status.set(d.id, { present: false, reason: code === 'ENOENT' ? `${d.path} is not there` : `${d.path} cannot be opened (${code ?? String(e)})` });
      return false;
    }
    if (d.labelUuid) {
      let uuid: string | null = null;
      try {
        uuid = (await readLabel(file))?.uuid ?? null;
      } catch {
        uuid = null;
      }
      if (uuid !== d.labelUuid) {
        await file.close();
        this.status.set(d.id, { present: false, reason: `${d.path} is now a different device (label ${uuid ?? 'missing'}, expected ${d.labelUuid})` });
        return false;
      }
    }
    this.files.set(d.id, file);
    this.status.set(d.id, { present: true });
    return true;
  }

  /** Records a device as not usable (e.g. mounted outside Holdfast since it was added), closing any handle. */
  async markUnavailable(id: number, reason: string): Promise<void> {
    await this.close(id);
    this.status.set(id, { present: false, reason });
  }

  async openAll(devices: DeviceHandleInfo[]): Promise<void> {
    for (const d of devices) await this.open(d);
  }

  isPresent(id: number): boolean {
    return this.files.has(id);
  }

  statusOf(id: number): DeviceStatus {
    return this.status.get(id) ?? { present: false, reason: 'not opened' };
  }

  /** The open handle; DEVICE_MISSING when the device is not present. */
  file(id: number): BlockFile {
    const f = this.files.get(id);
    if (!f) throw new HoldfastError('DEVICE_MISSING', `Device ${id} is not available: ${this.statusOf(id).reason ?? 'not opened'}.`, { deviceId: id });
    return f;
  }

  async close(id: number): Promise<void> {
    const f = this.files.get(id);
    this.files.delete(id);
    this.status.delete(id);
    if (f) await f.close();
  }

  async closeAll(): Promise<void> {
    for (const id of [...this.files.keys()]) await this.close(id);
  }
}
