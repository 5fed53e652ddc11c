// `wx transcribe` through the daemon (the default; `--no-daemon` runs in-process): the files
// are queued as interactive jobs on the warm model, progress arrives as notifications, and
// Ctrl-C cancels the request (and so its jobs) with `$/cancelRequest`.
import path from 'node:path';
import { describeError } from '../../daemon/errors.js';
import type { ResultOf, TranscribeOptions } from '../../daemon/ipc/protocol.js';
import { WxClient } from '../../daemon/ipc/client.js';
import { wxHome } from '../../daemon/paths.js';
import { EXIT } from '../exit.js';
import { exitCodeFor } from '../daemon-client.js';
import { emitTranscript, type validateTranscribeOptions } from './transcribe.js';

type ValidOptions = ReturnType<typeof validateTranscribeOptions>;

/** One progress line on a terminal (nothing when stderr is not a TTY). */
function progressLine(enabled: boolean) {
  let last = '';
  return {
    update(file: string, processedS: number, durationS: number) {
      if (!enabled) return;
      const pct = durationS > 0 ? Math.min(100, Math.round((processedS / durationS) * 100)) : 0;
      const line = `${path.basename(file).slice(0, 40)}  ${pct}%  (${processedS.toFixed(0)} / ${durationS.toFixed(0)} s)`;
      if (line !== last) process.stderr.write(`\r\x1b[2K${line}`);
      last = line;
    },
    clear() {
      if (enabled && last) process.stderr.write('\r\x1b[2K');
      last = '';
    },
  };
}

export async function transcribeViaDaemon(files: string[], o: ValidOptions): Promise<number> {
  let client: WxClient;
  try {
    client = await WxClient.connect({ home: wxHome(), autostart: true });
  } catch (err) {
    process.stderr.write(`wx: ${describeError(err)}\n(use --no-daemon to transcribe in this process)\n`);
    return exitCodeFor(err);
  }
  if (client.started) process.stderr.write(`wx: started the daemon (pid ${client.server.pid})\n`);
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    // First Ctrl-C cancels on the daemon side and waits for its reply; a second one leaves now.
    if (++interrupts > 1) process.exit(EXIT.interrupted);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const progress = progressLine(process.stderr.isTTY === true);
  const off = client.on('progress', (p) => progress.update(p.file, p.processedS, p.durationS));
  const absolute = files.map((f) => path.resolve(f));
  let result: ResultOf<'transcribe'>;
  try {
    const options: TranscribeOptions = { model: o.model, precision: o.precision, task: o.task, strategy: o.strategy, beamSize: o.beamSize };
    if (o.language) options.language = o.language;
    if (o.initialPrompt) options.initialPrompt = o.initialPrompt;
    result = await client.call('transcribe', { files: absolute, options, wait: true }, controller.signal);
  } catch (err) {
    progress.clear();
    if (controller.signal.aborted) {
      process.stderr.write('wx: cancelled\n');
      return EXIT.interrupted;
    }
    process.stderr.write(`wx: ${describeError(err)}\n`);
    return exitCodeFor(err);
  } finally {
    off();
    process.off('SIGINT', onSigint);
    await client.close();
  }
  progress.clear();
  let failures = 0;
  result.jobs.forEach((job, i) => {
    const t = result.transcripts[i];
    if (job.state === 'done' && t) {
      emitTranscript(t.transcript, absolute[i]!, o, files.length > 1);
    } else {
      failures++;
      process.stderr.write(`wx: ${job.error ?? `${job.path}: job ${job.id} ended ${job.state}`}\n`);
    }
  });
  return failures > 0 ? EXIT.failure : EXIT.ok;
}
