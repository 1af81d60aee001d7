/**
 * A served pair of exports for NBD tests: "vol" (read-write) and "ro" (read-only), each a
 * real image file in a temp dir, behind a real NbdServer on a Unix socket.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { FileExport } from '../../src-main/nbd/file-export';
import { NbdServer, type NbdServerOptions } from '../../src-main/nbd/server';
import { StaticExportRegistry } from '../../src-main/nbd/static-registry';

export interface Served {
  dir: string;
  socket: string;
  volPath: string;
  roPath: string;
  uri: (name: string) => string;
  server: NbdServer;
  registry: StaticExportRegistry;
  logs: string[];
  cleanup: () => Promise<void>;
}

export async function serve(opts: { volBytes?: number; roBytes?: number; server?: NbdServerOptions } = {}): Promise<Served> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'holdfast-nbd-'));
  const volPath = path.join(dir, 'vol.img');
  const roPath = path.join(dir, 'ro.img');
  fs.writeFileSync(volPath, Buffer.alloc(0));
  fs.truncateSync(volPath, opts.volBytes ?? 64 * 1024 * 1024);
  const ro = Buffer.alloc(opts.roBytes ?? 1024 * 1024);
  for (let i = 0; i < ro.length; i++) ro[i] = (i * 7 + 3) & 0xff;
  fs.writeFileSync(roPath, ro);
  const vol = await FileExport.open(nodeEnv, volPath, { name: 'vol', description: 'test volume' });
  const roEx = await FileExport.open(nodeEnv, roPath, { name: 'ro', description: 'read-only snapshot', readOnly: true });
  const registry = new StaticExportRegistry([vol, roEx]);
  const logs: string[] = [];
  const server = new NbdServer(registry, { log: (m) => logs.push(m), ...opts.server });
  const socket = path.join(dir, 'nbd.sock');
  await server.listenUnix(socket);
  return {
    dir,
    socket,
    volPath,
    roPath,
    uri: (name) => `nbd+unix:///${name}?socket=${socket}`,
    server,
    registry,
    logs,
    cleanup: async () => {
      await server.close();
      await vol.close();
      await roEx.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a CLI without blocking the event loop (the server under test lives in this process). */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function mustRun(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}
