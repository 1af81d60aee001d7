/**
 * `holdfast nbd` and `holdfast serve`: this process becomes the owner of the data directory
 * and runs the engine with its NBD listeners, the control socket (so other `holdfast`
 * commands keep working through it) and, for serve, the web UI. Runs until SIGINT/SIGTERM,
 * then closes in reverse order of opening: UI, NBD, control socket, engine. If any part
 * fails to start, what was opened is closed again and the error is reported.
 */
import path from 'node:path';
import { spawn } from 'node:child_process';
import { NbdServer } from '../../nbd/server';
import { ControlServer } from '../control/server';
import { tuneGcForServing } from '../gc-tuning';
import { openLocalEngine } from '../local-engine';
import { startServeHost } from '../serve/server';
import { CONTROL_SOCKET } from './session';

export const DEFAULT_NBD_PORT = 10809;

export interface EngineHostOptions {
  dataDir: string;
  /** Unix socket path; null disables it. */
  nbdSocket: string | null;
  /** TCP port; 0 picks a free one; null disables TCP. */
  nbdPort: number | null;
  /** The address the TCP listener binds (default 127.0.0.1; anything else only when the user says so). */
  nbdBind?: string;
  serve?: { port: number; open: boolean; rendererDir: string };
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

/** 127.0.0.0/8 and ::1 (also as an IPv4-mapped address). */
export function isLoopback(addr: string): boolean {
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return /^127\.\d+\.\d+\.\d+$/.test(v4) || addr === '::1';
}

export async function runEngineHost(opts: EngineHostOptions): Promise<void> {
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch((e) => opts.stderr(`holdfast: while closing: ${(e as Error).message}`));
  };
  try {
    tuneGcForServing();
    const engine = await openLocalEngine({ dataDir: opts.dataDir });
    closers.push(() => engine.close());

    const control = await ControlServer.listen(path.join(engine.dataDirPath, CONTROL_SOCKET), engine.api, engine.events);
    closers.push(() => control.close());

    const nbd = new NbdServer(engine.exports, { log: (m) => opts.stderr(m) });
    closers.push(() => nbd.close());
    let tcp: string | null = null;
    if (opts.nbdSocket) await nbd.listenUnix(opts.nbdSocket);
    if (opts.nbdPort !== null) {
      const bind = opts.nbdBind ?? '127.0.0.1';
      const { port } = await nbd.listenTcp(opts.nbdPort, bind);
      tcp = `${bind.includes(':') ? `[${bind}]` : bind}:${port}`;
      if (!isLoopback(bind))
        opts.stderr(`holdfast: warning: NBD listens on ${tcp}: anyone who can reach that address can read and write every volume (NBD here has no authentication or TLS).`);
    }
    engine.setNbdAddress({ socket: opts.nbdSocket, tcp });

    if (opts.serve) {
      const host = await startServeHost({ api: engine.api, events: engine.events, port: opts.serve.port, rendererDir: opts.serve.rendererDir });
      closers.push(() => host.close());
      // DESIGN.md §6: this is the first line on stdout; scripts and tests read it.
      opts.stdout(`Holdfast UI: ${host.url}`);
      if (opts.serve.open) openBrowser(host.url);
    }
    if (opts.nbdSocket) opts.stderr(`NBD: nbd+unix:///VOLUME?socket=${opts.nbdSocket}`);
    if (tcp) opts.stderr(`NBD: nbd://${tcp}/VOLUME`);
    opts.stderr(`Control socket: ${control.path} (data ${engine.dataDirPath}). Stop with Ctrl-C.`);
    // Scheduled backups run while this host owns the data directory; missed ones catch up now.
    engine.startScheduler();
  } catch (e) {
    await closeAll();
    throw e;
  }

  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      // A second signal while closing means "now".
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  opts.stderr('Stopping…');
  await closeAll();
}

function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd as string, args as string[], { detached: true, stdio: 'ignore' });
    child.on('error', () => {}); // no browser on a headless machine: the printed URL is enough
    child.unref();
  } catch {
    /* same */
  }
}
