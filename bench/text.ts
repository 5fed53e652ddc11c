// Text-layer benchmarks: tokenizer load time (tokenizer.json and the vocab.json+merges.txt
// fallback), encode/decode throughput on the dev manifest texts, WER over 100 clips, the
// compression ratio per segment, and rendering the subtitle/JSON formats of a 1-hour transcript.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { WhisperTokenizer } from '../daemon/engine/tokenizer.js';
import { normalizeEnglish } from '../daemon/pipeline/normalize.js';
import type { Segment, Transcript } from '../daemon/pipeline/types.js';
import { compressionRatio, wordErrorRate } from '../daemon/pipeline/wer.js';
import { renderJson, renderSrt, renderTxt, renderVtt, writeOutputs } from '../daemon/pipeline/writers.js';
import { fmt, median, peakRssMb, rssMb, table, timeRuns, type BenchSuite, sharedFile } from './util.js';

/** A forced garbage collection, so retained memory can be measured without --expose-gc. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** A hypothesis with some errors, deterministically: every 7th word replaced, every 11th dropped. */
function perturb(text: string): string {
  return text
    .split(' ')
    .filter((_, i) => i % 11 !== 10)
    .map((w, i) => (i % 7 === 6 ? w.split('').reverse().join('') : w))
    .join(' ');
}

export const suite: BenchSuite = {
  name: 'text',
  description: 'tokenizer load, encode/decode tokens/s, WER of 100 clips, compression ratio, rendering a 1-hour transcript',
  async run() {
    const modelDir = path.dirname(sharedFile('models', 'wx-tiny-en-synth', 'tokenizer.json'));
    const manifest = JSON.parse(fs.readFileSync(sharedFile('fixtures', 'speech', 'manifest.json'), 'utf8'));
    const texts: string[] = manifest.clips.map((c: { text: string }) => ' ' + c.text);
    collectGarbage();
    const heap0 = process.memoryUsage().heapUsed;
    const retained = WhisperTokenizer.fromModelDir(modelDir);
    retained.encode(' warm up the merge table');
    collectGarbage();
    const heapPerTokenizer = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;

    const loadMs = await timeRuns(() => WhisperTokenizer.fromModelDir(modelDir), 5);
    const fallbackDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-tok-'));
    for (const f of ['vocab.json', 'merges.txt', 'added_tokens.json', 'generation_config.json']) {
      fs.copyFileSync(path.join(modelDir, f), path.join(fallbackDir, f));
    }
    const fallbackMs = await timeRuns(() => WhisperTokenizer.fromModelDir(fallbackDir, { cache: false }), 5);
    WhisperTokenizer.writeCache(fallbackDir);
    const cacheMs = await timeRuns(() => {
      const t = WhisperTokenizer.fromModelDir(fallbackDir);
      if (!t.fromCache) throw new Error('bench text: the tokenizer cache was not used');
    }, 5);
    fs.rmSync(fallbackDir, { recursive: true, force: true });

    // Cold: a fresh tokenizer per run (empty word cache); warm: the same one again.
    let tokenCount = 0;
    const coldMs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const fresh = WhisperTokenizer.fromModelDir(modelDir);
      fresh.encode('\u0001'); // builds the merge table, so this measures BPE with an empty word cache
      const t0 = performance.now();
      tokenCount = 0;
      for (const t of texts) tokenCount += fresh.encode(t).length;
      coldMs.push(performance.now() - t0);
    }
    const tok = WhisperTokenizer.fromModelDir(modelDir);
    const encoded = texts.map((t) => tok.encode(t));
    const reps = 20;
    const warmMs = await timeRuns(() => {
      for (let k = 0; k < reps; k++) for (const t of texts) tok.encode(t);
    }, 5);
    const decodeMs = await timeRuns(() => {
      for (let k = 0; k < reps; k++) for (const ids of encoded) tok.decode(ids);
    }, 5);
    const wordsMs = await timeRuns(() => {
      for (const ids of encoded) tok.splitToWords(ids);
    }, 5);
    for (let i = 0; i < texts.length; i++) {
      if (tok.decode(encoded[i]!) !== texts[i]) throw new Error(`bench text: round trip failed for clip ${i}`);
    }

    const hyps = texts.map(perturb);
    const werMs = await timeRuns(() => wordErrorRate(texts, hyps), 30, 5);
    const wer = wordErrorRate(texts, hyps);
    const normMs = await timeRuns(() => texts.map(normalizeEnglish), 30, 5);
    const ratioMs = await timeRuns(() => texts.map(compressionRatio), 30, 5);

    // A 1-hour transcript: 900 segments of 4 s, cycling through the dev texts.
    const segments: Segment[] = Array.from({ length: 900 }, (_, i) => ({
      id: i, seek: Math.floor((i * 4) / 30) * 3000, start: i * 4, end: i * 4 + 3.6, text: texts[i % texts.length]!,
      tokens: encoded[i % texts.length]!, temperature: 0, avg_logprob: -0.3, compression_ratio: 1.4, no_speech_prob: 0.02,
    }));
    const hour: Transcript = { text: segments.map((s) => s.text).join(''), segments, language: 'en', duration: 3600 };
    const renderMs = {
      txt: await timeRuns(() => renderTxt(hour), 15, 3),
      srt: await timeRuns(() => renderSrt(hour), 15, 3),
      vtt: await timeRuns(() => renderVtt(hour), 15, 3),
      json: await timeRuns(() => renderJson(hour), 15, 3),
    };
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-out-'));
    const writeMs = await timeRuns(() => writeOutputs(hour, { outputDir: outDir, basename: 'hour', formats: ['txt', 'srt', 'vtt', 'json'] }), 5);
    fs.rmSync(outDir, { recursive: true, force: true });

    const words = texts.reduce((n, t) => n + t.split(' ').length, 0);
    const perS = (count: number, ms: number) => fmt((count / ms) * 1000, 0);
    console.log(
      table(
        ['measure', 'median'],
        [
          ['tokenizer load, tokenizer.json (ms)', fmt(median(loadMs))],
          ['tokenizer load, vocab.json + merges.txt (ms)', fmt(median(fallbackMs))],
          ['tokenizer load, wx-tokenizer.cache (ms)', fmt(median(cacheMs))],
          [`encode cold, ${texts.length} dev texts, ${tokenCount} tokens (tokens/s)`, perS(tokenCount, median(coldMs))],
          ['encode warm, word cache hit (tokens/s)', perS(tokenCount * reps, median(warmMs))],
          ['decode (tokens/s)', perS(tokenCount * reps, median(decodeMs))],
          ['splitToWords (tokens/s)', perS(tokenCount, median(wordsMs))],
          [`WER of ${texts.length} clips, ${words} words, normalised (ms)`, fmt(median(werMs), 2)],
          ['  (its WER on the perturbed hypotheses)', `${fmt(wer.wer * 100, 1)}%`],
          [`normalizeEnglish, ${texts.length} texts (ms)`, fmt(median(normMs), 2)],
          [`compressionRatio, ${texts.length} texts (µs per text)`, fmt((median(ratioMs) * 1000) / texts.length, 1)],
          ['render 1-hour transcript (900 segments): txt / srt / vtt / json (ms)', ['txt', 'srt', 'vtt', 'json'].map((f) => fmt(median(renderMs[f as keyof typeof renderMs]), 2)).join(' / ')],
          ['writeOutputs, all 4 formats, atomic + fsync (ms)', fmt(median(writeMs), 1)],
          ['JS heap retained by one loaded tokenizer (MB)', fmt(heapPerTokenizer, 1)],
          ['RSS of the process (MB)', fmt(rssMb(), 0)],
          ['peak RSS of the process (MB)', fmt(peakRssMb(), 0)],
        ],
      ),
    );
  },
};
