// `wx transcribe FILES…`: transcripts to stdout or to --output-dir. With --no-daemon the model
// runs in this process; otherwise the daemon does the work (see the daemon section of the
// README). A file that fails prints its reason and the others go on; the exit code says
// whether all succeeded.
import path from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import type { Transcript } from '../../daemon/pipeline/index.js';
import { parseFormats, render, writeOutputs } from '../../daemon/pipeline/writers.js';
import type { OutputFormat } from '../../daemon/pipeline/types.js';
import { wxHome, wxPaths } from '../../daemon/paths.js';
import { MAX_BEAM, isBeamSize, loadConfig, pipelineDefaults } from '../../daemon/config.js';
import type { PipelineOptions } from '../../daemon/pipeline/index.js';
import { WxError, describeError } from '../../daemon/errors.js';
import { getDefaultModel } from '../../daemon/models/registry.js';
import { EXIT } from '../exit.js';

export interface TranscribeCliOptions {
  model?: string;
  precision?: string;
  format: string;
  outputDir?: string;
  language?: string;
  task?: string;
  strategy?: string;
  initialPrompt?: string;
  daemon: boolean;
  threads?: string;
  beamSize?: string;
}

interface ValidOptions {
  model: string;
  precision: 'int8' | 'fp32';
  formats: OutputFormat[];
  outputDir: string | undefined;
  language: string | undefined;
  task: 'transcribe' | 'translate';
  strategy: 'vad' | 'sequential';
  initialPrompt: string | undefined;
  threads: number;
  /** 1: greedy. */
  beamSize: number;
  /** config.json's speech detection settings (the daemon applies its own copy). */
  pipeline: Pick<PipelineOptions, 'vad' | 'maxSilenceS'>;
}

/** Flags first, then `$WX_HOME/config.json` (precision, strategy, language, threads, vad). */
export function validateTranscribeOptions(o: TranscribeCliOptions, home: string): ValidOptions {
  const config = loadConfig(wxPaths(home).config);
  const precision = (o.precision ?? config.precision) as 'int8' | 'fp32';
  if (precision !== 'int8' && precision !== 'fp32') throw new WxError('cli.bad_option', `--precision must be int8 or fp32, not ${o.precision}`);
  const strategy = (o.strategy ?? config.strategy) as 'vad' | 'sequential';
  if (strategy !== 'vad' && strategy !== 'sequential') throw new WxError('cli.bad_option', `--strategy must be vad or sequential, not ${o.strategy}`);
  const task = (o.task ?? 'transcribe') as 'transcribe' | 'translate';
  if (task !== 'transcribe' && task !== 'translate') throw new WxError('cli.bad_option', `--task must be transcribe or translate, not ${o.task}`);
  const formats = parseFormats(o.format);
  if (!o.outputDir && formats.length > 1) throw new WxError('cli.bad_option', `several formats (${formats.join(', ')}) need --output-dir`);
  const model = o.model ?? getDefaultModel(home)?.model;
  if (!model) throw new WxError('cli.no_model', 'no model: pass --model NAME|DIR, set WX_MODEL, or install one with `wx models pull tiny`');
  const threads = o.threads ? Number.parseInt(o.threads, 10) : config.threads;
  if (!Number.isInteger(threads) || threads < 0) throw new WxError('cli.bad_option', `--threads must be a non-negative integer, not ${o.threads}`);
  const beamSize = o.beamSize !== undefined ? Number(o.beamSize) : config.beamSize;
  if (!isBeamSize(beamSize)) throw new WxError('cli.bad_option', `--beam-size must be an integer from 1 to ${MAX_BEAM}, not ${o.beamSize}`);
  const { vad, maxSilenceS } = pipelineDefaults(config);
  const language = o.language ?? config.language ?? undefined;
  return { model, precision, formats, outputDir: o.outputDir ? path.resolve(o.outputDir) : undefined, language, task, strategy, initialPrompt: o.initialPrompt, threads, beamSize, pipeline: { vad, maxSilenceS } };
}

/** Progress on a terminal: percent of audio, speed × real time, ETA. Nothing when piped. */
class ProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private started = 0;
  constructor(private readonly enabled: boolean) {}
  start(file: string, durationS: number): void {
    if (!this.enabled) return;
    this.started = performance.now();
    this.bar = new cliProgress.SingleBar(
      { format: `${path.basename(file).slice(0, 28).padEnd(28)} {bar} {percentage}% | {speed}× real time | ETA {eta_formatted}`, hideCursor: true, clearOnComplete: true, stream: process.stderr, etaBuffer: 20 },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(Math.max(1, Math.round(durationS * 10)), 0, { speed: '—' });
  }
  update(processedS: number): void {
    if (!this.bar) return;
    const elapsed = (performance.now() - this.started) / 1000;
    this.bar.update(Math.round(processedS * 10), { speed: elapsed > 0 ? (processedS / elapsed).toFixed(0) : '—' });
  }
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

export function emitTranscript(t: Transcript, file: string, o: ValidOptions, multiple: boolean): void {
  if (o.outputDir) {
    const basename = path.basename(file, path.extname(file));
    const written = writeOutputs(t, { outputDir: o.outputDir, basename, formats: o.formats });
    for (const w of written) process.stderr.write(`wrote ${w}\n`);
    return;
  }
  const format = o.formats[0]!;
  if (multiple && format === 'txt') process.stdout.write(`==> ${file} <==\n`);
  process.stdout.write(render(t, format));
}

async function transcribeInProcess(files: string[], o: ValidOptions): Promise<number> {
  const home = wxHome();
  const progress = new ProgressView(process.stderr.isTTY === true);
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  let failures = 0;
  // Loaded on use: the engine pulls in ONNX Runtime, which every other wx command can skip.
  const { Transcriber } = await import('../../daemon/pipeline/index.js');
  const transcriber = await Transcriber.open({ model: o.model, precision: o.precision, home, threads: o.threads });
  try {
    for (const file of files) {
      if (controller.signal.aborted) break;
      let shown = false;
      try {
        const t = await transcriber.transcribeFile(
          path.resolve(file),
          { ...o.pipeline, beamSize: o.beamSize, strategy: o.strategy, task: o.task, ...(o.language ? { language: o.language } : {}), ...(o.initialPrompt ? { initialPrompt: o.initialPrompt } : {}) },
          {
            signal: controller.signal,
            onProgress: (p) => {
              if (!shown) {
                progress.start(file, p.durationS);
                shown = true;
              }
              progress.update(p.processedS);
            },
          },
        );
        progress.stop();
        emitTranscript(t, file, o, files.length > 1);
      } catch (err) {
        progress.stop();
        if (controller.signal.aborted) break;
        failures++;
        process.stderr.write(`wx: ${describeError(err)}\n`);
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
    await transcriber.close();
  }
  if (controller.signal.aborted) return EXIT.interrupted;
  return failures > 0 ? EXIT.failure : EXIT.ok;
}

export function registerTranscribe(program: Command, viaDaemon?: (files: string[], o: ValidOptions) => Promise<number>): Command {
  return program
    .command('transcribe')
    .description('transcribe audio/video files (txt, srt, vtt, json)')
    .argument('<files...>', 'recordings (wav, mp3, m4a, flac, ogg/opus, video…)')
    .option('--model <name|dir>', 'installed model, alias, or Hugging Face model directory (default: WX_MODEL / config)')
    .option('--precision <p>', 'int8 or fp32 (default: config, int8)')
    .option('--format <f>', 'txt, srt, vtt, json, a comma list, or all', 'txt')
    .option('--output-dir <dir>', 'write <name>.<format> files here (atomically) instead of stdout')
    .option('--language <code>', 'spoken language (multilingual models; detected when absent)')
    .option('--task <task>', 'transcribe or translate (to English; multilingual models)', 'transcribe')
    .option('--strategy <s>', 'vad (batched; default: config, vad) or sequential (OpenAI long-form)')
    .option('--beam-size <n>', `beam search with n hypotheses, 1–${MAX_BEAM} (default: config, 1 = greedy)`)
    .option('--initial-prompt <text>', 'text that conditions the first window (names, spelling)')
    .option('--threads <n>', 'inference threads (default: config, all cores up to 4)')
    .option('--no-daemon', 'run the model in this process instead of the daemon')
    .action(async (files: string[], opts: TranscribeCliOptions) => {
      const home = wxHome();
      const o = validateTranscribeOptions(opts, home);
      const code = opts.daemon && viaDaemon ? await viaDaemon(files, o) : await transcribeInProcess(files, o);
      process.exitCode = code;
    });
}
