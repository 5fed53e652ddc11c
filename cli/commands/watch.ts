// `wx watch add|ls|rm`: folders whose new recordings the daemon transcribes.
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { WatchInfo } from '../../daemon/ipc/protocol.js';
import { OUTPUT_FORMATS, type OutputFormat } from '../../daemon/pipeline/types.js';
import { printJson, withDaemon } from '../daemon-client.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function formatsArg(value: string): OutputFormat[] {
  const list = value.split(',').map((f) => f.trim()).filter(Boolean);
  const bad = list.filter((f) => !OUTPUT_FORMATS.includes(f as OutputFormat));
  if (bad.length > 0 || list.length === 0) throw new InvalidArgumentError(`formats are a comma list of ${OUTPUT_FORMATS.join(', ')} (got ${JSON.stringify(value)})`);
  return list as OutputFormat[];
}

function renderWatch(w: WatchInfo): string {
  const bits = [w.recursive ? 'recursive' : null, w.include.length ? `include ${w.include.join(' ')}` : null, w.exclude.length ? `exclude ${w.exclude.join(' ')}` : null, w.formats.length ? `writes ${w.formats.join(',')}${w.output_dir ? ` to ${w.output_dir}` : ' beside each recording'}` : null];
  const state = w.state === 'ok' ? '' : `  [${w.state}${w.error ? `: ${w.error}` : ''}]`;
  return `${w.dir}${bits.some(Boolean) ? `  (${bits.filter(Boolean).join('; ')})` : ''}${state}`;
}

export function registerWatch(program: Command): Command {
  const watch = program.command('watch').description('watched folders: every new recording in them is transcribed once');

  watch
    .command('add')
    .description('watch a folder (existing recordings are transcribed too unless --no-backfill)')
    .argument('<dir>', 'the folder')
    .option('--recursive', 'include subfolders')
    .option('--include <glob>', 'only files matching (repeatable; relative to the folder, e.g. "*.m4a")', collect)
    .option('--exclude <glob>', 'skip files matching (repeatable)', collect)
    .option('--output-dir <dir>', 'write sidecar outputs here instead of beside each recording')
    .option('--formats <list>', `sidecar outputs to write (${OUTPUT_FORMATS.join(',')}); none by default`, formatsArg)
    .option('--no-backfill', 'only new files, not those already there')
    .option('--json', 'print the watch')
    .action((dir: string, opts: { recursive?: boolean; include?: string[]; exclude?: string[]; outputDir?: string; formats?: OutputFormat[]; backfill: boolean; json?: boolean }) =>
      withDaemon({ autostart: true }, async (client) => {
        const params: Parameters<typeof client.call<'watch.add'>>[1] = {
          dir: path.resolve(dir),
          recursive: opts.recursive ?? false,
          include: opts.include ?? [],
          exclude: opts.exclude ?? [],
          backfill: opts.backfill,
        };
        if (opts.outputDir) params.outputDir = path.resolve(opts.outputDir);
        if (opts.formats) params.formats = opts.formats;
        const w = await client.call('watch.add', params);
        if (opts.json) printJson(w);
        else process.stdout.write(`watching ${renderWatch(w)}\n`);
      }),
    );

  watch
    .command('ls')
    .description('list watched folders and whether each is available')
    .option('--json', 'print an array of watches')
    .action((opts: { json?: boolean }) =>
      withDaemon({ autostart: true }, async (client) => {
        const list = await client.call('watch.ls', undefined);
        if (opts.json) printJson(list);
        else process.stdout.write(list.length === 0 ? 'no watched folders\n' : list.map(renderWatch).join('\n') + '\n');
      }),
    );

  watch
    .command('rm')
    .description('stop watching a folder (its transcripts stay)')
    .argument('<dir>', 'the folder')
    .action((dir: string) =>
      withDaemon({ autostart: true }, async (client) => {
        await client.call('watch.rm', { dir: path.resolve(dir) });
        process.stdout.write(`stopped watching ${path.resolve(dir)}\n`);
      }),
    );
  return watch;
}
