// `wx dictate`: stream audio (a file, stdin, or — on macOS, later — the microphone) to the daemon
// and show the text as it stabilises; `--history` lists recent dictations.
import fs from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { loadAudio } from '../../daemon/audio/index.js';
import { MIC_LINUX_HINT } from '../../daemon/dictation/capture.js';
import { floatToS16 } from '../../daemon/dictation/wav-writer.js';
import type { DictationFinal, DictationHistoryItem } from '../../daemon/ipc/protocol.js';
import type { WxClient } from '../../daemon/ipc/client.js';
import { WxError } from '../../daemon/errors.js';
import { positiveInt, printJson, withDaemon } from '../daemon-client.js';
import { EXIT } from '../exit.js';

type Mode = 'low' | 'balanced' | 'high';
const FRAME_MS = 100;

interface DictateOptions {
  mode?: Mode;
  input: string;
  realtime?: boolean;
  json?: boolean;
  fillers: boolean;
  trailingSpace?: boolean;
  history?: boolean;
  limit: number;
}

interface AudioInput {
  sampleRate: number;
  /** s16le mono frames of about FRAME_MS. */
  frames: AsyncIterable<Buffer>;
}

function parseMode(value: string): Mode {
  if (value === 'low' || value === 'balanced' || value === 'high') return value;
  throw new InvalidArgumentError('must be low, balanced or high');
}

/** A WAV header at the start of `buf`: where the PCM data starts and its format, or null when
 *  `buf` is not WAV. Only 16-bit PCM mono is accepted on stdin (files go through loadAudio). */
export function parseWavHeader(buf: Buffer): { dataOffset: number; sampleRate: number } | null | 'need-more' {
  if (buf.length < 12) return 'need-more';
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') return null;
  let off = 12;
  let sampleRate = 0;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    if (id === 'fmt ') {
      if (off + 8 + 16 > buf.length) return 'need-more';
      const format = buf.readUInt16LE(off + 8);
      const channels = buf.readUInt16LE(off + 10);
      sampleRate = buf.readUInt32LE(off + 12);
      const bits = buf.readUInt16LE(off + 22);
      if ((format !== 1 && format !== 0xfffe) || bits !== 16 || channels !== 1) {
        throw new WxError('dictate.bad_wav', `stdin WAV must be 16-bit PCM mono (got format ${format}, ${bits}-bit, ${channels} channels); pass a file with --input FILE to convert any format`);
      }
    } else if (id === 'data') {
      if (!sampleRate) throw new WxError('dictate.bad_wav', 'stdin WAV has its data chunk before the fmt chunk');
      return { dataOffset: off + 8, sampleRate };
    }
    off += 8 + size + (size % 2);
  }
  return 'need-more';
}

function frameBytesFor(rate: number): number {
  return Math.round((rate * FRAME_MS) / 1000) * 2;
}

async function* chunked(source: AsyncIterable<Buffer> | Iterable<Buffer>, first: Buffer, frameBytes: number): AsyncGenerator<Buffer> {
  let pending = first;
  const drain = function* (final: boolean) {
    while (pending.length >= frameBytes || (final && pending.length >= 2)) {
      const n = Math.min(frameBytes, pending.length - (pending.length % 2));
      yield pending.subarray(0, n);
      pending = pending.subarray(n);
    }
  };
  yield* drain(false);
  for await (const chunk of source) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    yield* drain(false);
  }
  yield* drain(true);
}

/** stdin: WAV (16-bit mono) or raw s16le at 16 kHz. */
async function stdinInput(): Promise<AudioInput> {
  const it = process.stdin[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head = Buffer.alloc(0);
  let ended = false;
  for (;;) {
    const parsed = parseWavHeader(head);
    if (parsed !== 'need-more' || ended) {
      const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
      if (parsed === null || parsed === 'need-more') return { sampleRate: 16000, frames: chunked(ended ? [] : rest, head, frameBytesFor(16000)) };
      return { sampleRate: parsed.sampleRate, frames: chunked(ended ? [] : rest, head.subarray(parsed.dataOffset), frameBytesFor(parsed.sampleRate)) };
    }
    const next = await it.next();
    if (next.done) ended = true;
    else head = Buffer.concat([head, next.value]);
    if (head.length > 1 << 20) throw new WxError('dictate.bad_wav', 'stdin: no WAV data chunk in the first MiB');
  }
}

/** A file in any format loadAudio reads, as 16-kHz frames. */
async function fileInput(file: string): Promise<AudioInput> {
  const samples = await loadAudio(file);
  const pcm = floatToS16(samples);
  const frameBytes = frameBytesFor(16000);
  return {
    sampleRate: 16000,
    frames: (async function* () {
      for (let off = 0; off < pcm.length; off += frameBytes) yield pcm.subarray(off, Math.min(pcm.length, off + frameBytes));
    })(),
  };
}

class PartialLine {
  private shown = false;
  constructor(private readonly out: NodeJS.WriteStream) {}

  show(committed: string, tentative: string): void {
    const width = Math.max(20, (this.out.columns ?? 80) - 1);
    const plain = [committed, tentative].filter(Boolean).join(' ');
    // Keep the end of the text in view; the tentative words are dimmed.
    const cut = Math.max(0, plain.length - width);
    const visibleCommitted = committed.slice(Math.min(cut, committed.length));
    const visibleTentative = tentative.slice(Math.max(0, cut - committed.length - 1));
    this.out.write(`\r\x1b[2K${visibleCommitted}${visibleCommitted && visibleTentative ? ' ' : ''}\x1b[2m${visibleTentative}\x1b[0m`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}

interface Interrupt {
  value: boolean;
  /** Resolves at the first Ctrl-C. */
  wait: Promise<'interrupted'>;
}

async function dictate(client: WxClient, input: AudioInput, opts: DictateOptions, interrupted: Interrupt): Promise<DictationFinal> {
  const tty = !opts.json && process.stdout.isTTY === true;
  const line = tty ? new PartialLine(process.stdout) : null;
  const { sessionId } = await client.call('dictation.start', { ...(opts.mode ? { mode: opts.mode } : {}), source: 'client', sampleRate: input.sampleRate, ...(opts.fillers ? {} : { noFillers: true }), ...(opts.trailingSpace ? { trailingSpace: true } : {}) });
  const off = client.on('dictation.partial', (p) => {
    if (p.sessionId !== sessionId) return;
    if (opts.json) process.stdout.write(JSON.stringify({ type: 'partial', committed: p.committed, tentative: p.tentative }) + '\n');
    else line?.show(p.committed, p.tentative);
  });
  try {
    let failed: unknown = null;
    const inFlight = new Set<Promise<unknown>>();
    const t0 = performance.now();
    let seq = 0;
    const frames = input.frames[Symbol.asyncIterator]();
    for (;;) {
      // Ctrl-C must end the audio even while stdin has nothing to read (a pipe kept open).
      const next = await Promise.race([frames.next(), interrupted.wait]);
      if (next === 'interrupted' || next.done || failed) break;
      const frame = next.value;
      if (opts.realtime) {
        // Pace frames as a microphone would deliver them.
        const due = t0 + seq * FRAME_MS;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const sent = client.call('dictation.audio', { sessionId, seq: seq++, pcm: frame.toString('base64') });
      const tracked = sent.catch((err) => (failed ??= err)).finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size >= 64) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failed) {
      await client.call('dictation.cancel', { sessionId }).catch(() => {});
      throw failed;
    }
    const final = await client.call('dictation.stop', { sessionId });
    line?.clear();
    return final;
  } finally {
    off();
  }
}

function renderHistory(items: DictationHistoryItem[]): string {
  if (items.length === 0) return 'no dictations yet\n';
  return (
    items
      .map((d) => {
        const when = d.created_at.replace('T', ' ').slice(0, 19);
        const dur = d.duration_s === null ? '   ?' : `${d.duration_s.toFixed(1).padStart(5)}s`;
        return `${when}  ${dur}  ${d.state.padEnd(7)} ${d.text ?? `(${d.path})`}`;
      })
      .join('\n') + '\n'
  );
}

export function registerDictate(program: Command): Command {
  return program
    .command('dictate')
    .description('stream speech to the daemon: partial text while it is said, the final text at the end')
    .option('--mode <mode>', 'low (re-decode every 150 ms), balanced (350 ms) or high (750 ms); default: config dictation.mode (balanced)', parseMode)
    .option('--input <source>', 'mic (macOS), FILE (any audio format), or - (stdin: WAV or raw s16le 16 kHz mono)', 'mic')
    .option('--realtime', 'send FILE/stdin audio at real-time pace (as a microphone would)')
    .option('--json', 'one JSON event per line: {"type":"partial",…} … {"type":"final","text",…,"latency_ms"}')
    .option('--no-fillers', 'remove filler words (um, uh, …) from the final text')
    .option('--trailing-space', 'end the final text with a space (for pasting sentence after sentence)')
    .option('--history', 'list recent dictations instead')
    .option('--limit <n>', 'with --history: at most this many', positiveInt, 20)
    .action(async (opts: DictateOptions) => {
      if (opts.history) {
        await withDaemon({ autostart: true }, async (client) => {
          const items = await client.call('dictation.history', { limit: opts.limit });
          if (opts.json) printJson(items);
          else process.stdout.write(renderHistory(items));
        });
        return;
      }
      if (opts.input === 'mic' && process.platform !== 'darwin') {
        process.stderr.write(`wx: ${MIC_LINUX_HINT}\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      if (opts.input === 'mic') {
        process.stderr.write('wx: microphone dictation comes with the macOS client; stream audio with --input - meanwhile\n');
        process.exitCode = EXIT.usage;
        return;
      }
      if (opts.input !== '-' && !fs.existsSync(opts.input)) {
        process.stderr.write(`wx: ${opts.input}: no such file\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      let onInterrupt!: (v: 'interrupted') => void;
      const interrupted: Interrupt = { value: false, wait: new Promise((r) => (onInterrupt = r)) };
      // First Ctrl-C ends the audio (the final text still comes: `arecord | wx dictate` ends so);
      // a second one exits at once.
      const onSigint = () => {
        if (interrupted.value) process.exit(EXIT.interrupted);
        interrupted.value = true;
        onInterrupt('interrupted');
      };
      process.on('SIGINT', onSigint);
      try {
        await withDaemon({ autostart: true }, async (client) => {
          const input = opts.input === '-' ? await stdinInput() : await fileInput(opts.input);
          const final = await dictate(client, input, opts, interrupted);
          if (opts.json) process.stdout.write(JSON.stringify({ type: 'final', ...final }) + '\n');
          else process.stdout.write(final.text + '\n');
          if (!opts.json && process.stderr.isTTY) process.stderr.write(`(final in ${final.latency_ms} ms after the end of the audio)\n`);
        });
      } finally {
        process.off('SIGINT', onSigint);
        // An open pipe on stdin would keep the process alive after the final text.
        if (opts.input === '-') process.stdin.destroy();
      }
    });
}
