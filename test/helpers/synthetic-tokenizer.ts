// Writes Whisper tokenizer files in the Hugging Face layout for a made-up vocabulary, so tests can
// check layouts the shared model does not have (multilingual 51865, large-v3 51866 with
// <|nospeech|> and <|yue|>) and build synthetic checkpoints around them. The ordinary vocabulary
// is 256 byte tokens, merges learnt from a small built-in English text, then filler merges of
// character pairs up to the requested size.
import fs from 'node:fs';
import path from 'node:path';

export interface SyntheticTokenizerOptions {
  multilingual: boolean;
  /** Total ids including special and timestamp tokens. Default: a small vocabulary (~2.1k ids). */
  vocabSize?: number;
  /** Language tokens (in OpenAI's order). Default 99, or 100 (adds `yue`) when `vocabSize` is 51866. */
  languageCount?: number;
  /** `nospeech` (large-v3) or `nocaptions` (older). Default: `nospeech` with 100 languages. */
  noSpeechToken?: 'nospeech' | 'nocaptions';
  /** Also write generation_config.json (default true). */
  generationConfig?: boolean;
}

export interface SyntheticTokenizerLayout {
  vocabSize: number;
  /** Number of ordinary (BPE) tokens: ids 0 … ordinaryCount-1. */
  ordinaryCount: number;
  eot: number;
  sot: number;
  translate: number;
  transcribe: number;
  sotLm: number;
  sotPrev: number;
  noSpeech: number;
  noTimestamps: number;
  timestampBegin: number;
  languages: string[];
  languageIds: Record<string, number>;
  multilingual: boolean;
  files: string[];
}

// OpenAI's language order (the order of the language tokens after <|startoftranscript|>).
export const WHISPER_LANGUAGE_ORDER = [
  'en', 'zh', 'de', 'es', 'ru', 'ko', 'fr', 'ja', 'pt', 'tr', 'pl', 'ca', 'nl', 'ar', 'sv', 'it', 'id', 'hi', 'fi', 'vi',
  'he', 'uk', 'el', 'ms', 'cs', 'ro', 'da', 'hu', 'ta', 'no', 'th', 'ur', 'hr', 'bg', 'lt', 'la', 'mi', 'ml', 'cy', 'sk',
  'te', 'fa', 'lv', 'bn', 'sr', 'az', 'sl', 'kn', 'et', 'mk', 'br', 'eu', 'is', 'hy', 'ne', 'mn', 'bs', 'kk', 'sq', 'sw',
  'gl', 'mr', 'pa', 'si', 'km', 'sn', 'yo', 'so', 'af', 'oc', 'ka', 'be', 'tg', 'sd', 'gu', 'am', 'yi', 'lo', 'uz', 'fo',
  'ht', 'ps', 'tk', 'nn', 'mt', 'sa', 'lb', 'my', 'bo', 'tl', 'mg', 'as', 'tt', 'haw', 'ln', 'ha', 'ba', 'jw', 'su', 'yue',
];

const TRAINING_TEXT = `
The quick brown fox jumps over the lazy dog. This is a small text used to learn a few merges
for a synthetic tokenizer: the model, the data, the transcription of speech into text. Library
for reading and writing files; tools for managing packages, development files and documentation.
Python bindings for the library. A font collection for the languages of the world. There is
nothing here that a test depends on except that common English words become single tokens.
`;

function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = new Array(256);
  let next = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + next++);
  return table;
}

/** Learns merges on TRAINING_TEXT (most frequent adjacent pair first), up to `limit`. */
function learnMerges(alphabet: string[], limit: number): [string, string][] {
  const enc = new TextEncoder();
  const words = (TRAINING_TEXT.match(/ ?[A-Za-z]+| ?[^\sA-Za-z]+/g) ?? []).map((w) => [...enc.encode(w)].map((b) => alphabet[b]!));
  const merges: [string, string][] = [];
  while (merges.length < limit) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i < w.length - 1; i++) {
      const k = w[i] + '\u0000' + w[i + 1];
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    let best: string | undefined;
    let bestCount = 1;
    for (const [k, c] of counts) if (c > bestCount || (c === bestCount && best !== undefined && k < best)) {
      best = k;
      bestCount = c;
    }
    if (best === undefined) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    for (const w of words) {
      for (let i = 0; i < w.length - 1; i++) if (w[i] === a && w[i + 1] === b) w.splice(i, 2, a + b);
    }
  }
  return merges;
}

export function writeSyntheticTokenizer(dir: string, opts: SyntheticTokenizerOptions): SyntheticTokenizerLayout {
  const languageCount = opts.languageCount ?? (opts.vocabSize !== undefined && opts.vocabSize >= 51866 ? 100 : 99);
  if (languageCount < 1 || languageCount > WHISPER_LANGUAGE_ORDER.length) throw new Error(`languageCount ${languageCount} out of range`);
  const noSpeechName = opts.noSpeechToken ?? (languageCount >= 100 ? 'nospeech' : 'nocaptions');
  const specialCount = 1 /* eot */ + 1 /* sot */ + languageCount + 6 + 1501;
  const alphabet = byteAlphabet();
  const ordinaryCount = opts.vocabSize !== undefined ? opts.vocabSize - specialCount : 256 + 400;
  if (ordinaryCount < 256) throw new Error(`vocabSize ${opts.vocabSize} leaves fewer than 256 ordinary tokens`);

  // Byte tokens in GPT-2's order: printable bytes first, then the remapped ones.
  const byteOrder = [...alphabet].sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0));
  const vocab: Record<string, number> = {};
  const tokens: string[] = [];
  const add = (t: string) => {
    vocab[t] = tokens.length;
    tokens.push(t);
  };
  for (const t of byteOrder) add(t);
  const merges: [string, string][] = [];
  for (const [a, b] of learnMerges(alphabet, ordinaryCount - 256)) {
    if (vocab[a + b] !== undefined) continue;
    merges.push([a, b]);
    add(a + b);
  }
  // Filler: pairs of byte characters, in a fixed order, until the vocabulary is full.
  outer: for (const a of byteOrder) {
    for (const b of byteOrder) {
      if (tokens.length >= ordinaryCount) break outer;
      if (vocab[a + b] !== undefined) continue;
      merges.push([a, b]);
      add(a + b);
    }
  }
  if (tokens.length < ordinaryCount) throw new Error(`cannot build ${ordinaryCount} ordinary tokens`);

  const added: { id: number; content: string; special: boolean }[] = [];
  const addSpecial = (content: string, special = true) => {
    const id = tokens.length + added.length;
    added.push({ id, content, special });
    return id;
  };
  const eot = addSpecial('<|endoftext|>');
  const sot = addSpecial('<|startoftranscript|>');
  const languages = WHISPER_LANGUAGE_ORDER.slice(0, languageCount);
  const languageIds: Record<string, number> = {};
  for (const code of languages) languageIds[code] = addSpecial(`<|${code}|>`);
  const translate = addSpecial('<|translate|>');
  const transcribe = addSpecial('<|transcribe|>');
  const sotLm = addSpecial('<|startoflm|>');
  const sotPrev = addSpecial('<|startofprev|>');
  const noSpeech = addSpecial(`<|${noSpeechName}|>`);
  const noTimestamps = addSpecial('<|notimestamps|>');
  const timestampBegin = tokens.length + added.length;
  for (let i = 0; i <= 1500; i++) addSpecial(`<|${(i * 0.02).toFixed(2)}|>`, false);
  const vocabSize = tokens.length + added.length;
  if (opts.vocabSize !== undefined && vocabSize !== opts.vocabSize) throw new Error(`built ${vocabSize} ids, wanted ${opts.vocabSize}`);

  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const write = (name: string, data: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof data === 'string' ? data : JSON.stringify(data, null, 1));
    files.push(file);
  };
  const fullVocab = { ...vocab, '<|endoftext|>': eot };
  write('tokenizer.json', {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map((a) => ({ id: a.id, content: a.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: a.special })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: fullVocab, merges },
  });
  write('vocab.json', fullVocab);
  write('merges.txt', '#version: 0.2\n' + merges.map(([a, b]) => `${a} ${b}`).join('\n') + '\n');
  write('added_tokens.json', Object.fromEntries(added.filter((a) => a.id !== eot).map((a) => [a.content, a.id])));
  write('special_tokens_map.json', {
    additional_special_tokens: added.filter((a) => a.special && a.id !== eot).map((a) => a.content),
    bos_token: '<|endoftext|>',
    eos_token: '<|endoftext|>',
    pad_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
  });
  write('tokenizer_config.json', { add_prefix_space: false, errors: 'replace', model_max_length: 1024, tokenizer_class: 'WhisperTokenizer', processor_class: 'WhisperProcessor' });
  if (opts.generationConfig !== false) {
    const space = vocab['Ġ']!;
    write('generation_config.json', {
      begin_suppress_tokens: [space, eot],
      bos_token_id: eot,
      decoder_start_token_id: sot,
      eos_token_id: eot,
      pad_token_id: eot,
      is_multilingual: opts.multilingual,
      no_timestamps_token_id: noTimestamps,
      max_initial_timestamp_index: 50,
      max_length: 448,
      ...(opts.multilingual
        ? {
            lang_to_id: Object.fromEntries(languages.map((c) => [`<|${c}|>`, languageIds[c]!])),
            task_to_id: { translate, transcribe },
          }
        : {}),
      suppress_tokens: [sot, translate, transcribe, sotLm, sotPrev, noSpeech],
    });
  }
  return {
    vocabSize,
    ordinaryCount,
    eot,
    sot,
    translate,
    transcribe,
    sotLm,
    sotPrev,
    noSpeech,
    noTimestamps,
    timestampBegin,
    languages,
    languageIds,
    multilingual: opts.multilingual,
    files,
  };
}
