// `wx jobs`, `wx retry JOB`: the transcription queue.
import type { Command } from 'commander';
import type { JobInfo } from '../../daemon/ipc/protocol.js';
import { positiveInt, printJson, withDaemon } from '../daemon-client.js';

function renderJobs(jobs: JobInfo[]): string {
  if (jobs.length === 0) return 'no jobs\n';
  return jobs.map((j) => `${String(j.id).padStart(5)}  ${j.state.padEnd(9)} ${String(j.attempts)} ${j.path}${j.error ? `\n       ${j.error}` : ''}`).join('\n') + '\n';
}

export function registerJobs(program: Command): Command {
  program
    .command('jobs')
    .description('list transcription jobs, newest first')
    .option('--failed', 'only failed jobs (with their reason)')
    .option('--limit <n>', 'at most this many', positiveInt, 50)
    .option('--json', 'print an array of jobs {id, path, state, error, attempts}')
    .action((opts: { failed?: boolean; limit: number; json?: boolean }) =>
      withDaemon({ autostart: true }, async (client) => {
        const jobs = await client.call('jobs.list', opts.failed ? { state: 'failed', limit: opts.limit } : { limit: opts.limit });
        if (opts.json) printJson(jobs);
        else process.stdout.write(renderJobs(jobs));
      }),
    );

  program
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('<job>', 'job id (see `wx jobs`)', positiveInt)
    .action((id: number) =>
      withDaemon({ autostart: true }, async (client) => {
        const job = await client.call('jobs.cancel', { id });
        process.stdout.write(`job ${job.id} is ${job.state}: ${job.path}\n`);
      }),
    );

  return program
    .command('retry')
    .description('queue a failed (or cancelled) job again')
    .argument('<job>', 'job id (see `wx jobs --failed`)', positiveInt)
    .option('--json', 'print the job')
    .action((id: number, opts: { json?: boolean }) =>
      withDaemon({ autostart: true }, async (client) => {
        const job = await client.call('jobs.retry', { id });
        if (opts.json) printJson(job);
        else process.stdout.write(`job ${job.id} is ${job.state} again: ${job.path}\n`);
      }),
    );
}
