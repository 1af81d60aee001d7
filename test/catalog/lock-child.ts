// Child process for the data-dir lock test: opens the dir, reports, then waits for stdin to close.
import { DataDir } from '../../src-main/engine/datadir';
import { nodeEnv } from '../../src-main/engine/env/node-env';

const dir = process.argv[2]!;
DataDir.open(dir, nodeEnv).then(
  async (dd) => {
    process.stdout.write(JSON.stringify({ ok: true, pid: process.pid }) + '\n');
    process.stdin.resume();
    process.stdin.on('end', async () => {
      await dd.release();
      process.exit(0);
    });
  },
  (e: { code?: string; message?: string; details?: unknown }) => {
    process.stdout.write(JSON.stringify({ ok: false, code: e.code, message: e.message, details: e.details }) + '\n');
    process.exit(3);
  },
);
