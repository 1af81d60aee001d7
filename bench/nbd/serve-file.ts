/**
 * Serves one image file over NBD with Holdfast's server and FileExport: the process the NBD
 * benchmark measures against qemu-nbd and nbdkit. Prints "READY" once listening; exits on
 * SIGTERM/SIGINT after closing the server.
 *
 *   node dist/bench/nbd-serve-file.cjs --file IMG --socket SOCK [--tcp PORT] [--name NAME] [--read-only] [--sync-io-max BYTES]
 */
import { nodeEnv } from '../../src-main/engine/env/node-env';
import { FileExport } from '../../src-main/nbd/file-export';
import { NbdServer } from '../../src-main/nbd/server';
import { StaticExportRegistry } from '../../src-main/nbd/static-registry';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const file = arg('file');
  const socket = arg('socket');
  const tcp = arg('tcp');
  if (!file || (!socket && !tcp)) {
    process.stderr.write('usage: nbd-serve-file --file IMG (--socket SOCK | --tcp PORT) [--name NAME] [--read-only] [--sync-io-max BYTES]\n');
    process.exit(2);
  }
  const syncIoMax = arg('sync-io-max');
  const ex = await FileExport.open(nodeEnv, file, {
    name: arg('name') ?? '',
    readOnly: process.argv.includes('--read-only'),
    ...(syncIoMax !== undefined ? { syncIoMax: Number(syncIoMax) } : {}),
  });
  const server = new NbdServer(new StaticExportRegistry([ex]), {
    log: process.argv.includes('--verbose') ? (m) => process.stderr.write(`${m}\n`) : undefined,
  });
  if (socket) await server.listenUnix(socket);
  let port: number | undefined;
  if (tcp) port = (await server.listenTcp(Number(tcp))).port;
  process.stdout.write(`READY ${JSON.stringify({ socket, port })}\n`);
  const stop = async () => {
    await server.close();
    await ex.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((e: unknown) => {
  process.stderr.write(`nbd-serve-file: ${(e as Error).message}\n`);
  process.exit(1);
});
