// `wx status`: what the daemon is doing (starts it if needed).
import type { Command } from 'commander';
import type { StatusResult } from '../../daemon/ipc/protocol.js';
import { printJson, withDaemon } from '../daemon-client.js';

export function renderStatus(s: StatusResult): string {
  const lines = [
    `daemon     pid ${s.pid}, wx ${s.version} (protocol ${s.protocol_version}), up ${formatUptime(s.uptime_s)}, ${s.rss_mb.toFixed(0)} MB resident${releaseNote(s)}`,
    s.model
      ? `model      ${s.model.name} (${s.model.precision}, ${s.model.backend}), loaded in ${s.model.load_ms.toFixed(0)} ms`
      : s.model_loading
        ? `model      loading ${s.model_loading}…`
        : 'model      none loaded (install one with `wx models pull tiny`, or set WX_MODEL)',
    `queue      ${s.queue.queued} queued (${formatUptime(s.queue.queued_audio_s)} of audio${s.queue.queued_unknown_duration ? ` + ${s.queue.queued_unknown_duration} of unknown length` : ''}), ${s.queue.running} running, ${s.queue.done} done, ${s.queue.failed} failed`,
    `throughput ${s.queue.speed_x === null ? '—' : `${s.queue.speed_x}× real time`}${s.queue.eta_s === null ? '' : `, backlog ETA ${formatUptime(s.queue.eta_s)}`}`,
  ];
  if (s.watch.length === 0) lines.push('watching   nothing (add a folder with `wx watch add DIR`)');
  for (const w of s.watch) lines.push(`watching   ${w.dir}${w.recursive ? ' (recursive)' : ''}${w.state === 'ok' ? '' : ` — ${w.state}${w.error ? `: ${w.error}` : ''}`}`);
  if (s.last_error) lines.push(`last error ${s.last_error.at}: ${s.last_error.message}`);
  lines.push(`home       ${s.home}`);
  return lines.join('\n') + '\n';
}

function releaseNote(s: StatusResult): string {
  const last = s.memory_releases?.last;
  return last ? ` (idle release ${last.rss_before_mb.toFixed(0)} → ${last.rss_after_mb.toFixed(0)} MB at ${last.at})` : '';
}

function formatUptime(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function registerStatus(program: Command): Command {
  return program
    .command('status')
    .description('daemon pid, uptime, model, queue, watched folders (starts the daemon if needed)')
    .option('--json', 'print the status object (see README: `wx status --json`)')
    .action((opts: { json?: boolean }) =>
      withDaemon({ autostart: true }, async (client) => {
        const status = await client.call('status', undefined);
        if (opts.json) printJson(status);
        else process.stdout.write(renderStatus(status));
      }),
    );
}
