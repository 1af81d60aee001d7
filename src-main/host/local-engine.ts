/**
 * Opens the engine in this process for a host (CLI one-shot, `holdfast nbd`/`serve`, the
 * Electron main process). The only host module that knows how the engine is constructed:
 * under Electron it passes the Electron-ABI better-sqlite3 binding and the shipped fs addon.
 */
import type { Api } from '../../src-shared/contract';
import type { ExportRegistry } from '../engine/block-export';
import { Engine } from '../engine/engine';
import type { EventSource } from './event-source';
import { electronFsAddon, electronNativeBinding } from './electron/native-binding';

export interface LocalEngine {
  readonly api: Api;
  readonly events: EventSource;
  readonly dataDirPath: string;
  readonly exports: ExportRegistry;
  /** Begins running schedules (catching up missed ones): only hosts that keep the engine open call it, never a one-shot CLI command. */
  startScheduler(): void;
  /** Tells the engine where NBD listens so volumes and engine.info show the address. */
  setNbdAddress(a: { socket: string | null; tcp: string | null }): void;
  close(): Promise<void>;
}

export interface LocalEngineOptions {
  dataDir: string;
}

export async function openLocalEngine(opts: LocalEngineOptions): Promise<LocalEngine> {
  return Engine.open({ dataDir: opts.dataDir, nativeBinding: electronNativeBinding(), nativeFsAddon: electronFsAddon() });
}
