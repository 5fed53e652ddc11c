// Transcript renderers (txt, srt, vtt, OpenAI-style json) and the writer that puts them next to
// each other in an output directory. Subtitles are made to be valid for players: timestamps
// never go backwards or overlap, lines are wrapped, and a cue never has more than two lines
// (long segments become several cues, their time shared in proportion to their text).
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { OUTPUT_FORMATS, type OutputFormat, type Transcript } from './types.js';

export interface SubtitleOptions {
  /** Characters per line before wrapping (default 42, the usual broadcast limit). */
  maxLineChars?: number;
  /** Lines per cue (default 2). */
  maxLines?: number;
}

export interface Cue {
  /** Milliseconds from the start of the recording. */
  startMs: number;
  endMs: number;
  lines: string[];
}

const DEFAULT_LINE = 42;
const DEFAULT_LINES = 2;

/** Splits text into lines of at most `max` characters at spaces; a longer word (or text
 *  without spaces, such as Chinese or Japanese) is cut every `max` characters. */
export function wrapText(text: string, max: number = DEFAULT_LINE): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/u).filter((w) => w.length > 0)) {
    const chars = [...word];
    if (chars.length > max) {
      if (line) lines.push(line);
      line = '';
      for (let i = 0; i < chars.length; i += max) {
        const piece = chars.slice(i, i + max).join('');
        if (i + max >= chars.length) line = piece;
        else lines.push(piece);
      }
      continue;
    }
    const candidate = line ? `${line} ${word}` : word;
    if ([...candidate].length <= max) {
      line = candidate;
    } else {
      lines.push(line);
      line = word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** The cues of a transcript: one or more per non-empty segment, in order, each starting no
 *  earlier than the previous one ended. */
export function buildCues(transcript: Transcript, opts: SubtitleOptions = {}): Cue[] {
  const maxLine = opts.maxLineChars ?? DEFAULT_LINE;
  const maxLines = opts.maxLines ?? DEFAULT_LINES;
  const cues: Cue[] = [];
  let prevEnd = 0;
  for (const seg of transcript.segments) {
    const lines = wrapText(seg.text.trim(), maxLine);
    if (lines.length === 0) continue;
    const start = Math.max(toMs(seg.start), prevEnd);
    const end = Math.max(toMs(seg.end), start);
    const groups: string[][] = [];
    for (let i = 0; i < lines.length; i += maxLines) groups.push(lines.slice(i, i + maxLines));
    const weights = groups.map((g) => g.reduce((n, l) => n + [...l].length, 0));
    const total = weights.reduce((a, b) => a + b, 0);
    let acc = 0;
    let cueStart = start;
    groups.forEach((g, k) => {
      acc += weights[k]!;
      const cueEnd = k === groups.length - 1 ? end : start + Math.round(((end - start) * acc) / total);
      cues.push({ startMs: cueStart, endMs: cueEnd, lines: g });
      cueStart = cueEnd;
    });
    prevEnd = end;
  }
  return cues;
}

function toMs(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? Math.round(seconds * 1000) : 0;
}

/** `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT). */
export function formatTimestamp(ms: number, separator: ',' | '.'): string {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  const milli = ms % 1000;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(h)}:${p(m)}:${p(s)}${separator}${p(milli, 3)}`;
}

/** Plain text: one line per segment. */
export function renderTxt(transcript: Transcript): string {
  const lines = transcript.segments.map((s) => s.text.trim()).filter((t) => t.length > 0);
  if (lines.length === 0 && transcript.text.trim()) lines.push(transcript.text.trim());
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

export function renderSrt(transcript: Transcript, opts: SubtitleOptions = {}): string {
  return buildCues(transcript, opts)
    .map((c, i) => {
      // "-->" inside a cue would be read as a timing line.
      const text = c.lines.map((l) => l.replace(/-->/g, '->')).join('\n');
      return `${i + 1}\n${formatTimestamp(c.startMs, ',')} --> ${formatTimestamp(c.endMs, ',')}\n${text}\n`;
    })
    .join('\n');
}

export function renderVtt(transcript: Transcript, opts: SubtitleOptions = {}): string {
  const cues = buildCues(transcript, opts).map((c) => {
    const text = c.lines.map((l) => l.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')).join('\n');
    return `${formatTimestamp(c.startMs, '.')} --> ${formatTimestamp(c.endMs, '.')}\n${text}\n`;
  });
  return ['WEBVTT\n', ...cues].join('\n');
}

/** OpenAI whisper's JSON output: `text`, `segments` (id, seek, start, end, text, tokens,
 *  temperature, avg_logprob, compression_ratio, no_speech_prob[, words]), `language`, plus
 *  `duration`. Non-finite numbers become null. */
export function renderJson(transcript: Transcript): string {
  const out = {
    text: transcript.text,
    segments: transcript.segments.map((s) => ({
      id: s.id,
      seek: s.seek,
      start: s.start,
      end: s.end,
      text: s.text,
      tokens: s.tokens,
      temperature: s.temperature,
      avg_logprob: s.avg_logprob,
      compression_ratio: s.compression_ratio,
      no_speech_prob: s.no_speech_prob,
      ...(s.words ? { words: s.words.map((w) => ({ word: w.word, start: w.start, end: w.end, probability: w.probability })) } : {}),
    })),
    language: transcript.language,
    duration: transcript.duration,
  };
  return JSON.stringify(out, null, 2) + '\n';
}

export function render(transcript: Transcript, format: OutputFormat, opts: SubtitleOptions = {}): string {
  switch (format) {
    case 'txt':
      return renderTxt(transcript);
    case 'srt':
      return renderSrt(transcript, opts);
    case 'vtt':
      return renderVtt(transcript, opts);
    case 'json':
      return renderJson(transcript);
  }
}

/** `txt`, `srt,vtt`, `all` → the formats, in the order given, without duplicates. */
export function parseFormats(spec: string): OutputFormat[] {
  const out: OutputFormat[] = [];
  for (const part of spec.split(',').map((p) => p.trim().toLowerCase()).filter(Boolean)) {
    const formats: readonly OutputFormat[] | undefined =
      part === 'all' ? OUTPUT_FORMATS : (OUTPUT_FORMATS as readonly string[]).includes(part) ? [part as OutputFormat] : undefined;
    if (!formats) {
      throw new WxError('output.unknown_format', `unknown output format "${part}" (use ${OUTPUT_FORMATS.join(', ')} or all)`, { format: part });
    }
    for (const f of formats) if (!out.includes(f)) out.push(f);
  }
  if (out.length === 0) throw new WxError('output.unknown_format', 'no output format given', { format: spec });
  return out;
}

export interface WriteOutputsOptions extends SubtitleOptions {
  outputDir: string;
  /** File name without extension (usually the input's name without its extension). */
  basename: string;
  formats: readonly OutputFormat[];
}

/** Writes `<outputDir>/<basename>.<format>` for each format, each atomically; returns the
 *  paths in the order of `formats`. */
export function writeOutputs(transcript: Transcript, opts: WriteOutputsOptions): string[] {
  const { outputDir, basename } = opts;
  if (!basename || basename === '.' || basename === '..' || /[/\\\0]/.test(basename)) {
    throw new WxError('output.bad_name', `cannot use "${basename}" as an output file name`, { basename, outputDir });
  }
  try {
    fs.mkdirSync(outputDir, { recursive: true });
  } catch (err) {
    throw new WxError('output.dir_failed', `cannot create output directory ${outputDir}: ${(err as Error).message}`, { outputDir }, { cause: err });
  }
  return opts.formats.map((format) => {
    const file = path.join(outputDir, `${basename}.${format}`);
    writeFileAtomic(file, render(transcript, format, opts));
    return file;
  });
}
