import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WhisperTokenizer } from '../daemon/engine/tokenizer.js';
import { WxError } from '../daemon/errors.js';
import { sharedPath, tinyModelDir } from './shared.js';
import { writeSyntheticTokenizer } from './helpers/synthetic-tokenizer.js';

const readJson = (file: string): any => JSON.parse(fs.readFileSync(file, 'utf8'));

function thrown(fn: () => unknown): WxError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WxError);
    return err as WxError;
  }
  throw new Error('expected a WxError, nothing was thrown');
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-tok-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ROUND_TRIP_TEXTS = [
  'Perl extension for paging SQL results',
  ' leading space, trailing space ',
  "It's what we've done; they'll see -- won't they?",
  'Ünïcödé façade, naïve café, Ærøskøbing, Łódź',
  'Emoji: 🎉🚀 👩‍👩‍👧 ✨ and flags 🇫🇷',
  '日本語のテキストと中文文本，还有한국어。',
  'tabs\tand\nnew lines\n\n  and   runs   of spaces',
  'numbers 3.14159 and 1,000,000 and 2026-11-25',
  'العربية עברית русский ελληνικά',
];

describe('WhisperTokenizer on the shared English-only model', () => {
  const dir = tinyModelDir();
  const tok = WhisperTokenizer.fromModelDir(dir);
  const added: Record<string, number> = readJson(path.join(dir, 'added_tokens.json'));
  const vocab: Record<string, number> = readJson(path.join(dir, 'vocab.json'));
  const idOf = (content: string) => added[content] ?? vocab[content];

  it('reads every special id from the files', () => {
    expect(tok.eot).toBe(idOf('<|endoftext|>'));
    expect(tok.sot).toBe(idOf('<|startoftranscript|>'));
    expect(tok.sotPrev).toBe(idOf('<|startofprev|>'));
    expect(tok.sotLm).toBe(idOf('<|startoflm|>'));
    expect(tok.noTimestamps).toBe(idOf('<|notimestamps|>'));
    expect(tok.noSpeech).toBe(idOf('<|nocaptions|>') ?? idOf('<|nospeech|>'));
    expect(tok.transcribe).toBe(idOf('<|transcribe|>'));
    expect(tok.translate).toBe(idOf('<|translate|>'));
    expect(tok.timestampBegin).toBe(idOf('<|0.00|>'));
    expect(tok.vocabSize).toBe(readJson(path.join(dir, 'config.json')).vocab_size);
    const gen = readJson(path.join(dir, 'generation_config.json'));
    expect(tok.multilingual).toBe(gen.is_multilingual);
    expect(tok.eot).toBe(gen.eos_token_id);
    expect(tok.noTimestamps).toBe(gen.no_timestamps_token_id);
    expect(tok.languages).toEqual([]);
  });

  it('maps timestamp tokens to seconds', () => {
    const one = idOf('<|1.00|>')!;
    const last = idOf('<|30.00|>')!;
    expect(tok.isTimestamp(one)).toBe(true);
    expect(tok.timestampSeconds(one)).toBe(1);
    expect(tok.timestampSeconds(last)).toBe(30);
    expect(tok.isTimestamp(tok.noTimestamps)).toBe(false);
    expect(tok.isTimestamp(tok.eot - 1)).toBe(false);
    expect(tok.timestampToken(1.234)).toBe(idOf('<|1.24|>'));
    expect(tok.isSpecial(tok.eot)).toBe(true);
    expect(tok.isSpecial(tok.eot - 1)).toBe(false);
    expect(() => tok.timestampSeconds(tok.eot - 1)).toThrow(WxError);
  });

  it('encodes every decodable vocabulary token to itself (merge ranks and byte map are right)', () => {
    let checked = 0;
    for (let id = 0; id < tok.eot; id++) {
      const text = tok.tokenText(id);
      if (text.includes('\uFFFD')) continue; // a partial UTF-8 sequence has no text of its own
      const ids = tok.encode(text);
      if (ids.length !== 1 || ids[0] !== id) expect({ id, text, ids }).toEqual({ id, text, ids: [id] });
      checked++;
    }
    expect(checked).toBeGreaterThan(tok.eot * 0.9);
  });

  it('round-trips ASCII, accented, emoji, CJK, RTL and whitespace text', () => {
    for (const text of ROUND_TRIP_TEXTS) {
      const ids = tok.encode(text);
      expect(ids.every((id) => id >= 0 && id < tok.eot)).toBe(true);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode('')).toEqual([]);
    // Special-token spellings in user text stay text.
    const injected = tok.encode('<|endoftext|><|0.00|>');
    expect(injected.some((id) => tok.isSpecial(id))).toBe(false);
    expect(tok.decode(injected)).toBe('<|endoftext|><|0.00|>');
  });

  it('encodes very long letter runs in bounded time and round-trips them', () => {
    let seed = 7;
    const letters = Array.from({ length: 60_000 }, () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return 'abcdefghijklmnopqrstuvwxyzäöüß'[seed % 30];
    }).join('');
    const long = letters + '日'.repeat(3_000) + '🎉'.repeat(1_000);
    const t0 = performance.now();
    const ids = tok.encode(long);
    expect(performance.now() - t0).toBeLessThan(3_000);
    expect(tok.decode(ids)).toBe(long);
  });

  it('joins UTF-8 sequences split across tokens and replaces broken ones', () => {
    const ids = tok.encode(' 🎉');
    expect(ids.length).toBeGreaterThan(1);
    expect(ids.some((id) => tok.tokenText(id).includes('\uFFFD'))).toBe(true);
    expect(tok.decode(ids)).toBe(' 🎉');
    // Special tokens between the pieces do not break the character.
    expect(tok.decode([tok.sot, ids[0]!, tok.noTimestamps, ...ids.slice(1), tok.eot])).toBe(' 🎉');
    // A truncated sequence decodes to U+FFFD instead of throwing.
    expect(tok.decode(ids.slice(0, -1))).toContain('\uFFFD');
  });

  it('decodes the reference greedy outputs; encode agrees on the words the model got right', () => {
    const reference = readJson(sharedPath('fixtures', 'reference', 'reference.json'));
    const fixtures = readJson(sharedPath('fixtures', 'fixtures.json'));
    let agreeing = 0;
    let compared = 0;
    for (const [name, ref] of Object.entries<any>(reference)) {
      const plain: number[] = ref.greedy_notimestamps.tokens;
      const timed: number[] = ref.greedy_timestamps.tokens;
      const text = tok.decode(plain);
      expect(plain[plain.length - 1]).toBe(tok.eot);
      expect(text).not.toMatch(/<\|/);
      const trueText: string = fixtures[name].text;
      const trueWords = new Set(trueText.split(/\s+/).filter(Boolean).map((w) => ' ' + w));
      if (trueText === '') expect(text.trim()).toBe('');
      const hypWords = tok.splitToWords(plain.filter((id) => !tok.isSpecial(id)));
      // What the model got right must be there (most of it: the model makes errors).
      const found = [...trueWords].filter((w) => text.includes(w.trim()));
      expect(found.length).toBeGreaterThanOrEqual(trueWords.size * 0.5);
      for (const w of hypWords) {
        if (!trueWords.has(w.word)) continue;
        compared++;
        if (JSON.stringify(tok.encode(w.word)) === JSON.stringify(w.tokens)) agreeing++;
      }
      // With timestamps: the text between timestamp tokens is the text, the times are in order.
      const rendered = tok.decodeWithTimestamps(timed);
      const times = [...rendered.matchAll(/<\|(\d+\.\d\d)\|>/g)].map((m) => Number(m[1]));
      expect(times.length).toBe(timed.filter((id) => tok.isTimestamp(id)).length);
      expect(times.length).toBeGreaterThan(0);
      for (let i = 1; i < times.length; i++) expect(times[i]!).toBeGreaterThanOrEqual(times[i - 1]!);
      expect(rendered.replace(/<\|\d+\.\d\d\|>/g, '')).toBe(tok.decode(timed));
    }
    expect(compared).toBeGreaterThan(10);
    expect(agreeing / compared).toBeGreaterThanOrEqual(0.9);
  });

  it("computes OpenAI's non-speech symbol tokens from the vocabulary", () => {
    const gen = readJson(path.join(dir, 'generation_config.json'));
    const expected = (gen.suppress_tokens as number[]).filter((id) => id < tok.eot).sort((a, b) => a - b);
    expect(tok.nonSpeechTokens()).toEqual(expected);
  });

  it('builds English-only prompts and refuses other languages and translation', () => {
    expect(tok.sotSequence({ timestamps: false })).toEqual([tok.sot, tok.noTimestamps]);
    expect(tok.sotSequence({ timestamps: true })).toEqual([tok.sot]);
    expect(tok.sotSequence({ timestamps: true, language: 'English' })).toEqual([tok.sot]);
    expect(thrown(() => tok.sotSequence({ timestamps: false, language: 'fr' })).code).toBe('tokenizer.english_only');
    expect(thrown(() => tok.sotSequence({ timestamps: false, task: 'translate' })).code).toBe('tokenizer.english_only');
    expect(thrown(() => tok.languageToken('en')).code).toBe('tokenizer.unknown_language');
  });

  it('reads vocab.json + merges.txt + added_tokens.json when tokenizer.json is absent', () => {
    const copy = path.join(tmp, 'no-tokenizer-json');
    fs.mkdirSync(copy);
    for (const f of ['vocab.json', 'merges.txt', 'added_tokens.json', 'generation_config.json', 'config.json']) {
      fs.copyFileSync(path.join(dir, f), path.join(copy, f));
    }
    const fallback = WhisperTokenizer.fromModelDir(copy);
    for (const key of ['vocabSize', 'eot', 'sot', 'sotPrev', 'noTimestamps', 'noSpeech', 'timestampBegin', 'multilingual'] as const) {
      expect(fallback[key]).toBe(tok[key]);
    }
    for (const text of ROUND_TRIP_TEXTS) expect(fallback.encode(text)).toEqual(tok.encode(text));
  });

  it('groups tokens into words', () => {
    const ids = tok.encode(' Hello, wonderful world! 🎉 ok');
    const words = tok.splitToWords([tok.timestampBegin, ...ids, tok.eot]);
    expect(words.map((w) => w.word)).toEqual(['<|0.00|>', ' Hello', ',', ' wonderful', ' world', '!', ' 🎉', ' ok', '<|endoftext|>']);
    expect(words.flatMap((w) => w.tokens)).toEqual([tok.timestampBegin, ...ids, tok.eot]);
  });

  it('splits unspaced languages into whole characters', () => {
    const text = '日本語のテキスト🎉です';
    const ids = tok.encode(text);
    const units = tok.splitToWords(ids, 'ja');
    expect(units.length).toBeGreaterThan(3);
    expect(units.map((u) => u.word).join('')).toBe(text);
    expect(units.flatMap((u) => u.tokens)).toEqual(ids);
    for (const u of units) expect(u.word).not.toContain('\uFFFD');
    // Without the language only the emoji (a symbol) breaks the run: no spaces, so no words.
    expect(tok.splitToWords(ids).map((w) => w.word)).toEqual(['日本語のテキスト', '🎉', 'です']);
  });
});

describe('WhisperTokenizer on synthetic layouts', () => {
  it('multilingual 51865: languages, tasks and prompts come from the files', () => {
    const dir = path.join(tmp, 'ml');
    const layout = writeSyntheticTokenizer(dir, { multilingual: true, vocabSize: 51865 });
    const tok = WhisperTokenizer.fromModelDir(dir);
    expect(tok.vocabSize).toBe(51865);
    expect(tok.multilingual).toBe(true);
    expect(tok.languages).toEqual(layout.languages);
    expect(tok.languages.length).toBe(99);
    expect(tok.languages.slice(0, 3)).toEqual(['en', 'zh', 'de']);
    for (const key of ['eot', 'sot', 'sotPrev', 'sotLm', 'noTimestamps', 'noSpeech', 'transcribe', 'translate', 'timestampBegin'] as const) {
      expect(tok[key]).toBe(layout[key]);
    }
    expect(tok.tokenContent(tok.noSpeech)).toBe('<|nocaptions|>');
    expect(tok.languageToken('en')).toBe(layout.languageIds.en);
    expect(tok.languageToken('English')).toBe(layout.languageIds.en);
    expect(tok.languageToken('german')).toBe(layout.languageIds.de);
    expect(tok.languageToken('iw')).toBe(layout.languageIds.he);
    expect(tok.languageOfToken(layout.languageIds.fr!)).toBe('fr');
    expect(tok.languageOfToken(tok.sot)).toBeUndefined();
    expect(tok.languageTokenIds()).toEqual(layout.languages.map((c) => layout.languageIds[c]));
    expect(tok.sotSequence({ language: 'de', task: 'translate', timestamps: false })).toEqual([
      layout.sot,
      layout.languageIds.de,
      layout.translate,
      layout.noTimestamps,
    ]);
    expect(tok.sotSequence({ language: 'ja', timestamps: true })).toEqual([layout.sot, layout.languageIds.ja, layout.transcribe]);
    const unknown = thrown(() => tok.languageToken('klingon'));
    expect(unknown.code).toBe('tokenizer.unknown_language');
    expect(unknown.message).toContain('klingon');
    for (const text of ROUND_TRIP_TEXTS) expect(tok.decode(tok.encode(text))).toBe(text);
    // Learnt merges make common words single tokens; encode/decode agree with the files' merges.
    expect(tok.encode(' the')).toHaveLength(1);
    expect(tok.timestampSeconds(layout.timestampBegin + 150)).toBe(3);
    const ns = tok.nonSpeechTokens();
    expect(ns.length).toBeGreaterThan(10);
    expect(ns.every((id) => id < tok.eot)).toBe(true);
    expect(ns).toContain(tok.encode('"')[0]);
  });

  it('large-v3 51866: 100 languages with yue and <|nospeech|>', () => {
    const dir = path.join(tmp, 'v3');
    const layout = writeSyntheticTokenizer(dir, { multilingual: true, vocabSize: 51866 });
    const tok = WhisperTokenizer.fromModelDir(dir);
    expect(tok.vocabSize).toBe(51866);
    expect(tok.languages.length).toBe(100);
    expect(tok.languages[99]).toBe('yue');
    expect(tok.languageToken('cantonese')).toBe(layout.languageIds.yue);
    expect(tok.noSpeech).toBe(layout.noSpeech);
    expect(tok.tokenContent(tok.noSpeech)).toBe('<|nospeech|>');
    expect(tok.timestampBegin).toBe(layout.timestampBegin);
    expect(tok.isTimestamp(51865)).toBe(true);
    expect(tok.timestampSeconds(51865)).toBe(30);
  });

  it('without generation_config.json, uses the vocabulary size rule (≥ 51865 ids is multilingual)', () => {
    const ml = path.join(tmp, 'ml-nogen');
    writeSyntheticTokenizer(ml, { multilingual: true, vocabSize: 51865, generationConfig: false });
    expect(WhisperTokenizer.fromModelDir(ml).multilingual).toBe(true);
    const en = path.join(tmp, 'en-nogen');
    writeSyntheticTokenizer(en, { multilingual: false, vocabSize: 51864, generationConfig: false });
    const enTok = WhisperTokenizer.fromModelDir(en);
    expect(enTok.multilingual).toBe(false);
    expect(enTok.languages).toEqual([]);
    // A small synthetic vocabulary is multilingual when generation_config.json says so.
    const small = path.join(tmp, 'small');
    const layout = writeSyntheticTokenizer(small, { multilingual: true });
    const smallTok = WhisperTokenizer.fromModelDir(small);
    expect(smallTok.multilingual).toBe(true);
    expect(smallTok.vocabSize).toBe(layout.vocabSize);
    expect(WhisperTokenizer.fromModelDir(small, { multilingual: false }).multilingual).toBe(false);
  });

  it('older files without timestamp tokens: timestamps follow <|notimestamps|>', () => {
    const dir = path.join(tmp, 'old');
    const layout = writeSyntheticTokenizer(dir, { multilingual: true, vocabSize: 51865 });
    const file = path.join(dir, 'tokenizer.json');
    const json = readJson(file);
    json.added_tokens = json.added_tokens.filter((a: any) => a.id < layout.timestampBegin);
    fs.writeFileSync(file, JSON.stringify(json));
    const tok = WhisperTokenizer.fromModelDir(dir);
    expect(tok.timestampBegin).toBe(layout.noTimestamps + 1);
    expect(tok.vocabSize).toBe(51865);
    const hello = tok.encode(' hello');
    expect(tok.decodeWithTimestamps([tok.timestampBegin + 50, ...hello, tok.timestampBegin + 75])).toBe('<|1.00|> hello<|1.50|>');
    expect(tok.decode([tok.timestampBegin + 50, ...hello])).toBe(' hello');
  });
});

describe('WhisperTokenizer errors name the file', () => {
  it('missing directory or files', () => {
    const err = thrown(() => WhisperTokenizer.fromModelDir(path.join(tmp, 'does-not-exist')));
    expect(err.code).toBe('tokenizer.missing');
    expect(err.message).toContain('tokenizer.json');
    const noMerges = path.join(tmp, 'no-merges');
    writeSyntheticTokenizer(noMerges, { multilingual: false });
    fs.rmSync(path.join(noMerges, 'tokenizer.json'));
    fs.rmSync(path.join(noMerges, 'merges.txt'));
    const e2 = thrown(() => WhisperTokenizer.fromModelDir(noMerges));
    expect(e2.code).toBe('tokenizer.missing');
    expect(e2.message).toContain('merges.txt');
  });

  it('truncated or malformed tokenizer.json', () => {
    const dir = path.join(tmp, 'truncated');
    writeSyntheticTokenizer(dir, { multilingual: false });
    const file = path.join(dir, 'tokenizer.json');
    const full = fs.readFileSync(file);
    fs.writeFileSync(file, full.subarray(0, full.length >> 1));
    const err = thrown(() => WhisperTokenizer.fromModelDir(dir));
    expect(err.code).toBe('tokenizer.corrupt');
    expect(err.message).toContain(file);

    fs.writeFileSync(file, JSON.stringify({ model: { type: 'Unigram', vocab: [] } }));
    expect(thrown(() => WhisperTokenizer.fromModelDir(dir)).code).toBe('tokenizer.corrupt');

    const json = JSON.parse(full.toString('utf8'));
    json.added_tokens = json.added_tokens.filter((a: any) => a.content !== '<|startoftranscript|>');
    fs.writeFileSync(file, JSON.stringify(json));
    const missing = thrown(() => WhisperTokenizer.fromModelDir(dir));
    expect(missing.code).toBe('tokenizer.missing_token');
    expect(missing.message).toContain('<|startoftranscript|>');
    expect(missing.message).toContain(file);
  });
});

describe('wx-tokenizer.cache', () => {
  it('loads the same tokenizer from the cache, and ignores a stale or damaged cache', () => {
    const dir = path.join(tmp, 'cached');
    fs.mkdirSync(dir);
    for (const f of ['tokenizer.json', 'generation_config.json', 'config.json']) fs.copyFileSync(path.join(tinyModelDir(), f), path.join(dir, f));
    const parsed = WhisperTokenizer.fromModelDir(dir);
    expect(parsed.fromCache).toBe(false);
    const cacheFile = WhisperTokenizer.writeCache(dir);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const cached = WhisperTokenizer.fromModelDir(dir);
    expect(cached.fromCache).toBe(true);
    for (const key of ['vocabSize', 'eot', 'sot', 'sotPrev', 'sotLm', 'noTimestamps', 'noSpeech', 'transcribe', 'translate', 'timestampBegin', 'multilingual'] as const) {
      expect(cached[key]).toBe(parsed[key]);
    }
    for (const text of ROUND_TRIP_TEXTS) {
      const ids = cached.encode(text);
      expect(ids).toEqual(parsed.encode(text));
      expect(cached.decode(ids)).toBe(text);
    }
    expect(cached.nonSpeechTokens()).toEqual(parsed.nonSpeechTokens());
    expect(cached.tokenContent(cached.eot)).toBe('<|endoftext|>');
    expect(cached.tokenContent(cached.encode(' the')[0]!)).toBe('Ġthe');
    expect(WhisperTokenizer.fromModelDir(dir, { cache: false }).fromCache).toBe(false);

    // Damaged cache: ignored.
    const good = fs.readFileSync(cacheFile);
    fs.writeFileSync(cacheFile, good.subarray(0, good.length >> 1));
    const afterDamage = WhisperTokenizer.fromModelDir(dir);
    expect(afterDamage.fromCache).toBe(false);
    expect(afterDamage.encode('hello world')).toEqual(parsed.encode('hello world'));

    // Stale cache (the source changed since): ignored.
    fs.writeFileSync(cacheFile, good);
    expect(WhisperTokenizer.fromModelDir(dir).fromCache).toBe(true);
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(dir, 'tokenizer.json'), later, later);
    expect(WhisperTokenizer.fromModelDir(dir).fromCache).toBe(false);
  });

  it('works for a multilingual layout read from vocab.json + merges.txt', () => {
    const dir = path.join(tmp, 'cached-ml');
    const layout = writeSyntheticTokenizer(dir, { multilingual: true, vocabSize: 51866 });
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    WhisperTokenizer.writeCache(dir);
    const tok = WhisperTokenizer.fromModelDir(dir);
    expect(tok.fromCache).toBe(true);
    expect(tok.languages).toEqual(layout.languages);
    expect(tok.noSpeech).toBe(layout.noSpeech);
    expect(tok.sotSequence({ language: 'yue', timestamps: true })).toEqual([layout.sot, layout.languageIds.yue, layout.transcribe]);
    for (const text of ROUND_TRIP_TEXTS) expect(tok.decode(tok.encode(text))).toBe(text);
  });
});
