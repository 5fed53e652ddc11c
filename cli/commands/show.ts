// `wx show RECORDING|JOB`: export a stored transcript; `wx forget RECORDING`: remove one.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { parseFormats, render, writeOutputs } from '../../daemon/pipeline/writers.js';
import { printJson, withDaemon } from '../daemon-client.js';

/** A number is a job id; anything else a recording's path. */
function target(arg: string): { jobId: number } | { path: string } {
  return /^\d+$/.test(arg) && !fs.existsSync(arg) ? { jobId: Number(arg) } : { path: path.resolve(arg) };
}

export function registerShow(program: Command): Command {
  program
    .command('show')
    .description('print (or write) the stored transcript of a recording or job')
    .argument('<recording|job>', 'path of the recording, or a job id')
    .option('--format <f>', 'txt, srt, vtt, json (a comma list or all with --output-dir)', 'txt')
    .option('--output-dir <dir>', 'write <name>.<format> files here instead of stdout')
    .option('--json', 'print the stored record (model, precision, transcript)')
    .action((arg: string, opts: { format: string; outputDir?: string; json?: boolean }) =>
      withDaemon({ autostart: true }, async (client) => {
        const stored = await client.call('transcripts.get', target(arg));
        if (opts.json) return printJson(stored);
        const formats = parseFormats(opts.format);
        if (opts.outputDir) {
          const basename = path.basename(stored.path, path.extname(stored.path));
          for (const f of writeOutputs(stored.transcript, { outputDir: path.resolve(opts.outputDir), basename, formats })) process.stderr.write(`wrote ${f}\n`);
          return;
        }
        process.stdout.write(render(stored.transcript, formats[0]!));
      }),
    );

  return program
    .command('forget')
    .description('remove a recording from the database: its jobs, transcript and search entries (the file stays)')
    .argument('<recording>', 'path of the recording')
    .action((arg: string) =>
      withDaemon({ autostart: true }, async (client) => {
        const r = await client.call('recordings.forget', { path: path.resolve(arg) });
        process.stdout.write(`forgot ${r.path}\n`);
      }),
    );
}
