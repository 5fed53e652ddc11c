import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WxError } from '../daemon/errors.js';
import { writeFileAtomic } from '../daemon/fsutil.js';
import { normalizeBasic, normalizeEnglish, normalizerFor } from '../daemon/pipeline/normalize.js';
import type { Segment, Transcript } from '../daemon/pipeline/types.js';
import { compressionRatio, wordEdits, wordErrorRate } from '../daemon/pipeline/wer.js';
import {
  buildCues,
  formatTimestamp,
  parseFormats,
  renderJson,
  renderSrt,
  renderTxt,
  renderVtt,
  wrapText,
  writeOutputs,
} from '../daemon/pipeline/writers.js';
import { repoRoot, sharedPath } from './shared.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-text-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('normalizeEnglish', () => {
  const cases: [string, string][] = [
    ['Hello, World!', 'hello world'],
    ['[Music] Hello (laughs) <noise> there.', 'hello there'],
    ['Um, I uh think, hmm, so. Mm-hmm.', 'i think so hmm'.replace(' hmm', '')],
    ["I won't, can't, don't; we're, they've, you'll, I'm, she'd.", 'i will not can not do not we are they have you will i am she would'],
    ["It's been long; let's go, it's fine", 'it has been long let us go it is fine'],
    ['We’re here', 'we are here'],
    ['The colour of the theatre centre, organised', 'the color of the theater center organized'],
    ['twenty one', '21'],
    ['one hundred and five dogs', '105 dogs'],
    ['two thousand twenty six', '2026'],
    ['nineteen hundred', '1900'],
    ['one two three', '1 2 3'],
    ['three point five', '3.5'],
    ['ten percent', '10%'],
    ['the twenty first century', 'the 21st century'],
    ['the first time', 'the first time'],
    ['1,000 people at 3.5 km', '1000 people at 3.5 km'],
    ['50 % off', '50% off'],
    ['Café naïve résumé', 'cafe naive resume'],
    ['Mr. Smith and Dr. Jones & co', 'mister smith and doctor jones and co'],
    ['  lots\tof\n\nspace  ', 'lots of space'],
    ['U.S.A. and the U.K. vs USA', 'usa and the uk versus usa'],
    ['a hundred and a thousand and a cat', '100 and 1000 and a cat'],
    ['', ''],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
      expect(normalizeEnglish(input)).toBe(expected);
    });
  }

  it('makes different spellings of the same thing equal', () => {
    expect(normalizeEnglish("Mister Smith's colour TV, OK?")).toBe(normalizeEnglish("mr smith's color tv ok"));
    expect(normalizeEnglish('Twenty-five percent')).toBe(normalizeEnglish('25%'));
  });
});

describe('normalizeBasic', () => {
  it('folds case, symbols and whitespace but keeps letters of any script', () => {
    expect(normalizeBasic('Hola, ¿Qué tal? [música]  Bien!')).toBe('hola qué tal bien');
    expect(normalizeBasic('हिन्दी भाषा।')).toBe('हिन्दी भाषा');
    expect(normalizeBasic('日本語、テキスト。')).toBe('日本語 テキスト');
    expect(normalizerFor('fr')).toBe(normalizeBasic);
    expect(normalizerFor('en')).toBe(normalizeEnglish);
  });
});

describe('wordErrorRate', () => {
  it('counts substitutions, deletions and insertions', () => {
    const r = wordErrorRate('the cat sat on the mat', 'today the cat sit on mat');
    expect(r).toMatchObject({ substitutions: 1, deletions: 1, insertions: 1, words: 6 });
    expect(r.wer).toBeCloseTo(0.5, 10);
    expect(r.exactCount).toBeUndefined();
  });

  it('handles empty sides', () => {
    expect(wordErrorRate('a b c', '')).toMatchObject({ wer: 1, deletions: 3 });
    expect(wordErrorRate('', 'a b')).toMatchObject({ wer: Infinity, insertions: 2 });
    expect(wordErrorRate('', '')).toMatchObject({ wer: 0, words: 0 });
  });

  it('normalises by default, and only splits when asked not to', () => {
    expect(wordErrorRate('Hello, World!', 'hello world').wer).toBe(0);
    expect(wordErrorRate('Hello, World!', 'hello world', { normalize: false })).toMatchObject({ substitutions: 2 });
    expect(wordErrorRate('¡Hola, Mundo!', 'hola mundo', { normalize: 'basic' }).wer).toBe(0);
  });

  it('sums a corpus and counts exact matches', () => {
    const r = wordErrorRate(['a b c d', 'one two', 'x'], ['a b c d', '1 2 3', 'y']);
    expect(r).toMatchObject({ words: 7, insertions: 1, substitutions: 1, deletions: 0, exactCount: 1, pairs: 3 });
    expect(r.wer).toBeCloseTo(2 / 7, 10);
    expect(() => wordErrorRate(['a'], ['a', 'b'])).toThrow(WxError);
  });

  it('finds the minimum edit distance (checked against a full-matrix DP on random inputs)', () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const vocab = ['a', 'b', 'c', 'd'];
    for (let t = 0; t < 300; t++) {
      const ref = Array.from({ length: rand(9) }, () => vocab[rand(4)]!);
      const hyp = Array.from({ length: rand(9) }, () => vocab[rand(4)]!);
      const d: number[][] = Array.from({ length: ref.length + 1 }, (_, i) => Array.from({ length: hyp.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
      for (let i = 1; i <= ref.length; i++) {
        for (let j = 1; j <= hyp.length; j++) {
          d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (ref[i - 1] === hyp[j - 1] ? 0 : 1));
        }
      }
      const e = wordEdits(ref, hyp);
      expect(e.substitutions + e.deletions + e.insertions).toBe(d[ref.length]![hyp.length]);
      // The counts describe a real alignment: lengths must reconcile.
      expect(ref.length - e.deletions + e.insertions).toBe(hyp.length);
    }
  });

  it('on the dev manifest: 0 against itself, one deletion per clip when a word is dropped', () => {
    const manifest = JSON.parse(fs.readFileSync(sharedPath('fixtures', 'speech', 'manifest.json'), 'utf8'));
    const refs: string[] = manifest.clips.map((c: { text: string }) => c.text);
    expect(refs.length).toBeGreaterThan(10);
    expect(wordErrorRate(refs, refs)).toMatchObject({ wer: 0, exactCount: refs.length });
    const dropped = refs.map((t) => t.split(' ').slice(1).join(' '));
    const r = wordErrorRate(refs, dropped, { normalize: false });
    expect(r.deletions).toBe(refs.length);
    expect(r.substitutions + r.insertions).toBe(0);
  });
});

describe('compressionRatio', () => {
  it('is high for repetitive text and low for ordinary text', () => {
    expect(compressionRatio('Thank you. '.repeat(40))).toBeGreaterThan(2.4 * 3);
    expect(compressionRatio('The wise shepherd never trusts his flock to a smiling wolf.')).toBeLessThan(2.4);
    expect(compressionRatio('')).toBe(0);
  });
});

function seg(id: number, start: number, end: number, text: string, extra: Partial<Segment> = {}): Segment {
  return { id, seek: 0, start, end, text, tokens: [id + 100], temperature: 0, avg_logprob: -0.25, compression_ratio: 1.2, no_speech_prob: 0.01, ...extra };
}

const longText =
  ' This segment is deliberately long so that it cannot fit into a single two-line subtitle cue and must be split into several cues by the writer.';
const transcript: Transcript = {
  text: '',
  language: 'en',
  duration: 3800,
  segments: [
    seg(0, 0.0, 2.5, ' Hello world.'),
    seg(1, 2.0, 9.0, longText), // starts before the previous one ended
    seg(2, 9.0, 9.0, '   '), // empty: no cue
    seg(3, 9.5, 12.25, ' 日本語のテキストは空白なしで長く続くのでこの行は四十二文字を超えて折り返される必要があります。'),
    seg(4, 12.5, 13.0, ' Tags <b> & arrows --> stay text'),
    seg(5, 3725.5, 3727.0, ' Past one hour.', { avg_logprob: NaN }),
  ],
};
transcript.text = transcript.segments.map((s) => s.text).join('');

interface ParsedCue {
  index?: number;
  start: number;
  end: number;
  lines: string[];
}

function parseTime(t: string, sep: ',' | '.'): number {
  const m = new RegExp(`^(\\d{2,}):([0-5]\\d):([0-5]\\d)\\${sep}(\\d{3})$`).exec(t);
  if (!m) throw new Error(`bad timestamp ${t}`);
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
}

function parseSubtitles(text: string, kind: 'srt' | 'vtt'): ParsedCue[] {
  let body = text;
  if (kind === 'vtt') {
    expect(body.startsWith('WEBVTT\n\n')).toBe(true);
    body = body.slice('WEBVTT\n\n'.length);
  }
  if (body.trim() === '') return [];
  expect(body.endsWith('\n')).toBe(true);
  return body
    .trimEnd()
    .split('\n\n')
    .map((block) => {
      const lines = block.split('\n');
      const cue: Partial<ParsedCue> = {};
      if (kind === 'srt') cue.index = Number(lines.shift());
      const m = /^(\S+) --> (\S+)$/.exec(lines.shift() ?? '');
      if (!m) throw new Error(`bad timing line in ${JSON.stringify(block)}`);
      const sep = kind === 'srt' ? ',' : '.';
      return { ...cue, start: parseTime(m[1]!, sep), end: parseTime(m[2]!, sep), lines } as ParsedCue;
    });
}

function checkCues(cues: ParsedCue[], kind: 'srt' | 'vtt') {
  let prevEnd = 0;
  cues.forEach((c, i) => {
    if (kind === 'srt') expect(c.index).toBe(i + 1);
    expect(c.start).toBeGreaterThanOrEqual(prevEnd);
    expect(c.end).toBeGreaterThanOrEqual(c.start);
    expect(c.lines.length).toBeGreaterThanOrEqual(1);
    expect(c.lines.length).toBeLessThanOrEqual(2);
    for (const l of c.lines) {
      const shown = kind === 'vtt' ? l.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') : l;
      expect([...shown].length).toBeLessThanOrEqual(42);
      expect(l.trim()).toBe(l);
      expect(l.length).toBeGreaterThan(0);
    }
    prevEnd = c.end;
  });
}

describe('subtitle writers', () => {
  it('SRT parses back: numbered, monotonic, wrapped, no text lost', () => {
    const cues = parseSubtitles(renderSrt(transcript), 'srt');
    checkCues(cues, 'srt');
    expect(cues.length).toBeGreaterThan(transcript.segments.length - 1); // long segments split
    const words = (s: string) => s.replace(/\s+/g, '');
    const expected = transcript.segments.map((s) => s.text.replace(/-->/g, '->')).join('');
    expect(words(cues.flatMap((c) => c.lines).join(''))).toBe(words(expected));
    // The long segment's cues cover exactly its (clamped) time span.
    const longCues = cues.filter((c) => c.start >= 2.5 && c.end <= 9.0);
    expect(longCues.length).toBeGreaterThanOrEqual(2);
    expect(longCues[0]!.start).toBe(2.5);
    expect(longCues[longCues.length - 1]!.end).toBe(9.0);
    expect(cues[cues.length - 1]).toMatchObject({ start: 3725.5, end: 3727.0 });
  });

  it('VTT parses back and escapes markup', () => {
    const vtt = renderVtt(transcript);
    const cues = parseSubtitles(vtt, 'vtt');
    checkCues(cues, 'vtt');
    const tagged = cues.find((c) => c.lines.join(' ').includes('Tags'))!;
    expect(tagged.lines.join(' ')).toBe('Tags &lt;b&gt; &amp; arrows --&gt; stay text');
    expect(vtt).toContain('01:02:05.500 --> 01:02:07.000');
  });

  it('an empty transcript gives empty but valid files', () => {
    const empty: Transcript = { text: '', segments: [], language: 'en', duration: 30 };
    expect(renderSrt(empty)).toBe('');
    expect(renderVtt(empty)).toBe('WEBVTT\n');
    expect(renderTxt(empty)).toBe('');
    expect(JSON.parse(renderJson(empty))).toEqual({ text: '', segments: [], language: 'en', duration: 30 });
  });

  it('wraps at spaces, cuts unspaced text, formats long times', () => {
    expect(wrapText('aaa bbb ccc', 7)).toEqual(['aaa bbb', 'ccc']);
    expect(wrapText('abcdefghij', 4)).toEqual(['abcd', 'efgh', 'ij']);
    expect(wrapText('x abcdefghij y', 4)).toEqual(['x', 'abcd', 'efgh', 'ij y']);
    expect(formatTimestamp(3_725_500, ',')).toBe('01:02:05,500');
    expect(formatTimestamp(360_000_000 + 1, '.')).toBe('100:00:00.001');
    expect(buildCues(transcript, { maxLineChars: 20, maxLines: 1 }).every((c) => c.lines.length === 1 && [...c.lines[0]!].length <= 20)).toBe(true);
  });

  it('TXT has one line per non-empty segment', () => {
    const lines = renderTxt(transcript).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toEqual(transcript.segments.map((s) => s.text.trim()).filter(Boolean));
  });

  it("JSON has exactly OpenAI whisper's fields", () => {
    const json = JSON.parse(renderJson(transcript));
    expect(Object.keys(json).sort()).toEqual(['duration', 'language', 'segments', 'text']);
    expect(json.text).toBe(transcript.text);
    expect(json.segments).toHaveLength(transcript.segments.length);
    for (const s of json.segments) {
      expect(Object.keys(s).sort()).toEqual(
        ['avg_logprob', 'compression_ratio', 'end', 'id', 'no_speech_prob', 'seek', 'start', 'temperature', 'text', 'tokens'].sort(),
      );
    }
    expect(json.segments[5].avg_logprob).toBeNull(); // NaN is not JSON
    expect(json.segments[1]).toMatchObject({ id: 1, start: 2.0, end: 9.0, text: longText, tokens: [101] });
    const withWords: Transcript = {
      ...transcript,
      segments: [seg(0, 0, 1, ' Hi there', { words: [{ word: ' Hi', start: 0, end: 0.4, probability: 0.9 }, { word: ' there', start: 0.4, end: 1, probability: 0.8 }] })],
    };
    expect(JSON.parse(renderJson(withWords)).segments[0].words).toEqual(withWords.segments[0]!.words);
  });
});

describe('writeOutputs and writeFileAtomic', () => {
  it('writes every format atomically and leaves no temporary files', () => {
    const dir = path.join(tmp, 'out', 'nested');
    const paths = writeOutputs(transcript, { outputDir: dir, basename: 'talk', formats: parseFormats('all') });
    expect(paths).toEqual(['txt', 'srt', 'vtt', 'json'].map((f) => path.join(dir, `talk.${f}`)));
    expect(fs.readFileSync(paths[0]!, 'utf8')).toBe(renderTxt(transcript));
    expect(fs.readFileSync(paths[1]!, 'utf8')).toBe(renderSrt(transcript));
    expect(fs.readFileSync(paths[2]!, 'utf8')).toBe(renderVtt(transcript));
    expect(fs.readFileSync(paths[3]!, 'utf8')).toBe(renderJson(transcript));
    // Overwriting replaces the content.
    const short: Transcript = { text: ' Bye.', segments: [seg(0, 0, 1, ' Bye.')], language: 'en', duration: 1 };
    writeOutputs(short, { outputDir: dir, basename: 'talk', formats: ['txt'] });
    expect(fs.readFileSync(paths[0]!, 'utf8')).toBe('Bye.\n');
    expect(fs.readdirSync(dir).sort()).toEqual(['talk.json', 'talk.srt', 'talk.txt', 'talk.vtt']);
  });

  it('a failed write leaves the target untouched and no temporary file', () => {
    const dir = path.join(tmp, 'fail');
    fs.mkdirSync(path.join(dir, 'x.txt'), { recursive: true }); // a directory where the file should go
    let err: unknown;
    try {
      writeFileAtomic(path.join(dir, 'x.txt'), 'data');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WxError);
    expect((err as WxError).code).toBe('fs.write_failed');
    expect((err as WxError).message).toContain(path.join(dir, 'x.txt'));
    expect(fs.readdirSync(dir)).toEqual(['x.txt']);
    expect(fs.statSync(path.join(dir, 'x.txt')).isDirectory()).toBe(true);
    expect(() => writeOutputs(transcript, { outputDir: dir, basename: '../escape', formats: ['txt'] })).toThrow(WxError);
  });

  it('parses format lists', () => {
    expect(parseFormats('srt, vtt,srt')).toEqual(['srt', 'vtt']);
    expect(parseFormats('ALL')).toEqual(['txt', 'srt', 'vtt', 'json']);
    expect(() => parseFormats('docx')).toThrow(/docx/);
  });
});

describe('wx debug wer (the real CLI)', () => {
  const wxBin = path.join(repoRoot, 'bin', 'wx.js');
  beforeAll(() => {
    for (const src of ['cli/commands/debug-wer.ts', 'cli/commands/debug.ts', 'daemon/pipeline/wer.ts', 'daemon/pipeline/normalize.ts', 'cli/wx.ts']) {
      const built = fs.statSync(path.join(repoRoot, 'dist', src.replace(/\.ts$/, '.js')), { throwIfNoEntry: false });
      if (!built || built.mtimeMs < fs.statSync(path.join(repoRoot, src)).mtimeMs) {
        throw new Error(`dist/ is missing or older than ${src}: run \`npm run build:ts\` (npm test does it)`);
      }
    }
  });
  const run = (...args: string[]) => spawnSync(process.execPath, [wxBin, 'debug', 'wer', ...args], { encoding: 'utf8' });

  it('prints WER and the edit counts, as text and JSON', () => {
    const ref = path.join(tmp, 'ref.txt');
    const hyp = path.join(tmp, 'hyp.txt');
    fs.writeFileSync(ref, 'The cat sat on the mat.\n');
    fs.writeFileSync(hyp, 'today the cat sit on mat\n');
    const text = run(ref, hyp);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^WER 50\.00% {2}\(S 1, D 1, I 1; 6 reference words\)\n$/);
    const json = run(ref, hyp, '--json');
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ wer: 0.5, substitutions: 1, deletions: 1, insertions: 1, words: 6 });
  });

  it('compares line by line with --lines', () => {
    const ref = path.join(tmp, 'ref-lines.txt');
    const hyp = path.join(tmp, 'hyp-lines.txt');
    fs.writeFileSync(ref, 'one two three\nfour five\n\n');
    fs.writeFileSync(hyp, '1 2 3\nfour six\n');
    const r = run(ref, hyp, '--lines', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ substitutions: 1, words: 5, exactCount: 1, pairs: 2 });
    fs.writeFileSync(hyp, 'just one line\n');
    const bad = run(ref, hyp, '--lines');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(hyp);
  });

  it('fails clearly on a missing file or a bad option', () => {
    const missing = path.join(tmp, 'nope.txt');
    const r = run(missing, missing);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`reference file ${missing}`);
    const ref = path.join(tmp, 'ref.txt');
    const bad = run(ref, ref, '--normalize', 'loud');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--normalize');
  });
});
