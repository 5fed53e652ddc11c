// `wx daemon start|stop|restart|status`: manage the background daemon.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Command } from 'commander';
import { WxClient, daemonScript } from '../../daemon/ipc/client.js';
import { pidAlive } from '../../daemon/instance.js';
import { wxHome, wxPaths } from '../../daemon/paths.js';
import { WxError } from '../../daemon/errors.js';
import { EXIT } from '../exit.js';
import { CliExit, exitCodeFor, printJson } from '../daemon-client.js';
import { describeError } from '../../daemon/errors.js';

/** Connects if a daemon is running; null when none is. */
async function tryConnect(home: string): Promise<WxClient | null> {
  try {
    return await WxClient.connect({ home, autostart: false });
  } catch (err) {
    if (err instanceof WxError && err.code === 'daemon.not_running') return null;
    throw err;
  }
}

/** Waits (polling the process table, the only signal for a non-child) until `pid` exits. */
async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
  return true;
}

export async function startDaemon(home: string, opts: { quiet?: boolean } = {}): Promise<number> {
  const running = await tryConnect(home);
  if (running) {
    await running.close();
    if (!opts.quiet) process.stdout.write(`wx daemon already running (pid ${running.server.pid})\n`);
    return running.server.pid;
  }
  const client = await WxClient.connect({ home, autostart: true });
  await client.close();
  if (!opts.quiet) process.stdout.write(`wx daemon started (pid ${client.server.pid}, socket ${client.socketPath})\n`);
  return client.server.pid;
}

/** Asks the daemon to shut down and waits until its process is gone. Returns the pid, or null
 *  when no daemon was running. */
export async function stopDaemon(home: string, timeoutMs = 60_000): Promise<number | null> {
  const client = await tryConnect(home);
  if (!client) return null;
  const pid = client.server.pid;
  await client.call('daemon.shutdown', undefined);
  await client.connection.closed;
  if (!(await waitForExit(pid, timeoutMs))) {
    // The daemon treats a signal during its shutdown as "exit now".
    process.stderr.write(`wx: the daemon (pid ${pid}) is still shutting down after ${timeoutMs / 1000} s; signalling it\n`);
    process.kill(pid, 'SIGTERM');
    if (!(await waitForExit(pid, 10_000))) {
      throw new WxError('daemon.stop_timeout', `the wx daemon (pid ${pid}) did not exit after a shutdown request and SIGTERM`, { pid });
    }
  }
  return pid;
}

function runForeground(home: string): Promise<number> {
  // A child with inherited stdio: Ctrl-C reaches it through the terminal's process group and
  // it shuts down cleanly; we exit with its code.
  const child = spawn(process.execPath, [daemonScript()], { stdio: 'inherit', env: { ...process.env, WX_HOME: home, WX_LOG_ECHO: '1' } });
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : EXIT.failure))));
}

async function run(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof CliExit)) process.stderr.write(`wx: ${describeError(err)}\n`);
    process.exitCode = exitCodeFor(err);
  }
}

export function registerDaemon(program: Command): Command {
  const daemon = program.command('daemon').description('manage the background daemon (one per user)');

  daemon
    .command('start')
    .description('start the daemon in the background (or in this terminal with --foreground)')
    .option('--foreground', 'run in this terminal, logging to stderr, until Ctrl-C')
    .action((opts: { foreground?: boolean }) =>
      run(async () => {
        const home = wxHome();
        if (opts.foreground) {
          const existing = await tryConnect(home);
          if (existing) {
            await existing.close();
            process.stderr.write(`wx: a daemon is already running (pid ${existing.server.pid}); stop it first with \`wx daemon stop\`\n`);
            throw new CliExit(EXIT.daemon);
          }
          process.exitCode = await runForeground(home);
          return;
        }
        await startDaemon(home);
      }),
    );

  daemon
    .command('stop')
    .description('ask the daemon to finish or re-queue its current job and exit')
    .action(() =>
      run(async () => {
        const pid = await stopDaemon(wxHome());
        process.stdout.write(pid === null ? 'wx daemon is not running\n' : `wx daemon stopped (pid ${pid})\n`);
      }),
    );

  daemon
    .command('restart')
    .description('stop the daemon (if running) and start it again, e.g. after an upgrade')
    .action(() =>
      run(async () => {
        const home = wxHome();
        try {
          await stopDaemon(home);
        } catch (err) {
          // A daemon speaking another protocol version cannot be asked politely: signal it.
          if (!(err instanceof WxError && err.code === 'ipc.protocol_mismatch')) throw err;
          const pid = Number(err.context.pid);
          if (pid > 0) {
            process.kill(pid, 'SIGTERM');
            await waitForExit(pid, 60_000);
          }
        }
        await startDaemon(home);
      }),
    );

  daemon
    .command('status')
    .description('is the daemon running? (exit 0 if so, 3 if not; never starts it)')
    .option('--json', 'print a JSON object')
    .action((opts: { json?: boolean }) =>
      run(async () => {
        const home = wxHome();
        const client = await tryConnect(home);
        if (!client) {
          const lock = wxPaths(home).lock;
          if (opts.json) printJson({ running: false, socket: wxPaths(home).socket, stale_lock: fs.existsSync(lock) });
          else process.stdout.write('wx daemon is not running\n');
          throw new CliExit(EXIT.daemon);
        }
        const status = await client.call('status', undefined);
        await client.close();
        if (opts.json) printJson({ running: true, ...status });
        else process.stdout.write(`wx daemon running: pid ${status.pid}, version ${status.version}, up ${status.uptime_s} s, socket ${status.socket}\n`);
      }),
    );

  return daemon;
}
