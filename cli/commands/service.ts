// `wx service install|uninstall|status`: start the daemon at login (launchd / systemd --user).
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { describeError } from '../../daemon/errors.js';
import { wxHome } from '../../daemon/paths.js';
import { exitCodeFor, printJson } from '../daemon-client.js';
import { installService, platformManager, serviceValues, uninstallService } from '../service.js';

const shellWord = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

async function run(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    process.stderr.write(`wx: ${describeError(err)}\n`);
    process.exitCode = exitCodeFor(err);
  }
}

export function registerService(program: Command): Command {
  const service = program.command('service').description('run the daemon at login (macOS LaunchAgent, Linux systemd user unit)');

  service
    .command('install')
    .description('write the LaunchAgent / systemd unit for this user and load it')
    .option('--dry-run', 'print the file and the commands instead of doing anything')
    .action((opts: { dryRun?: boolean }) =>
      run(async () => {
        const manager = platformManager();
        const plan = await installService(manager, serviceValues(wxHome()), { dryRun: opts.dryRun });
        if (opts.dryRun) {
          process.stdout.write(`# would write ${plan.file}:\n${plan.content}\n# then run:\n${plan.commands.map((c) => c.map(shellWord).join(' ')).join('\n')}\n`);
        } else {
          process.stdout.write(`installed ${plan.file} (the daemon now starts at login)\n`);
        }
      }),
    );

  service
    .command('uninstall')
    .description('unload the service and remove its file')
    .option('--dry-run', 'print what would be done')
    .action((opts: { dryRun?: boolean }) =>
      run(async () => {
        const r = await uninstallService(platformManager(), { dryRun: opts.dryRun });
        if (opts.dryRun) process.stdout.write(`# would run:\n${r.commands.map((c) => c.map(shellWord).join(' ')).join('\n')}\n# and remove ${r.file}${r.existed ? '' : ' (not installed)'}\n`);
        else process.stdout.write(r.existed ? `removed ${r.file}\n` : `not installed (${r.file} does not exist)\n`);
      }),
    );

  service
    .command('status')
    .description('is the service installed, and what does the service manager say')
    .option('--json', 'print a JSON object')
    .action((opts: { json?: boolean }) =>
      run(async () => {
        const manager = platformManager();
        const file = path.join(manager.dir, manager.fileName);
        const installed = fs.existsSync(file);
        const state = installed ? await manager.state().catch((e) => `unknown (${describeError(e)})`) : 'not installed';
        if (opts.json) printJson({ platform: manager.platform, file, installed, state });
        else process.stdout.write(`${manager.platform}: ${installed ? `installed (${file})` : 'not installed'}, ${state}\n`);
      }),
    );
  return service;
}
