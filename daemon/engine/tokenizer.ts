// Whisper's tokenizer: byte-level BPE over GPT-2's byte↔unicode alphabet, plus the special,
// language, task and timestamp tokens that steer the decoder. Every id comes from the model's
// own files (tokenizer.json, or vocab.json + merges.txt + added_tokens.json), so English-only
// (51864), multilingual (51865) and large-v3 (51866) layouts all work without a table of ids.
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';

/** Seconds per timestamp step (`<|0.02|>` is one step after `<|0.00|>`). */
export const TIMESTAMP_STEP_SECONDS = 0.02;
/** Timestamp tokens in a full layout: `<|0.00|>` … `<|30.00|>`. */
const TIMESTAMP_TOKEN_COUNT = 1501;

// Language names users may type instead of codes. Codes not listed here still work by code.
const LANGUAGE_NAMES: Record<string, string> = {
  en: 'english', zh: 'chinese', de: 'german', es: 'spanish', ru: 'russian', ko: 'korean',
  fr: 'french', ja: 'japanese', pt: 'portuguese', tr: 'turkish', pl: 'polish', ca: 'catalan',
  nl: 'dutch', ar: 'arabic', sv: 'swedish', it: 'italian', id: 'indonesian', hi: 'hindi',
  fi: 'finnish', vi: 'vietnamese', he: 'hebrew', iw: 'hebrew', uk: 'ukrainian', el: 'greek',
  ms: 'malay', cs: 'czech', ro: 'romanian', da: 'danish', hu: 'hungarian', ta: 'tamil',
  no: 'norwegian', th: 'thai', ur: 'urdu', hr: 'croatian', bg: 'bulgarian', lt: 'lithuanian',
  la: 'latin', mi: 'maori', ml: 'malayalam', cy: 'welsh', sk: 'slovak', te: 'telugu',
  fa: 'persian', lv: 'latvian', bn: 'bengali', sr: 'serbian', az: 'azerbaijani', sl: 'slovenian',
  kn: 'kannada', et: 'estonian', mk: 'macedonian', br: 'breton', eu: 'basque', is: 'icelandic',
  hy: 'armenian', ne: 'nepali', mn: 'mongolian', bs: 'bosnian', kk: 'kazakh', sq: 'albanian',
  sw: 'swahili', gl: 'galician', mr: 'marathi', pa: 'punjabi', si: 'sinhala', km: 'khmer',
  sn: 'shona', yo: 'yoruba', so: 'somali', af: 'afrikaans', oc: 'occitan', ka: 'georgian',
  be: 'belarusian', tg: 'tajik', sd: 'sindhi', gu: 'gujarati', am: 'amharic', yi: 'yiddish',
  lo: 'lao', uz: 'uzbek', fo: 'faroese', ht: 'haitian creole', ps: 'pashto', tk: 'turkmen',
  nn: 'nynorsk', mt: 'maltese', sa: 'sanskrit', lb: 'luxembourgish', my: 'myanmar', bo: 'tibetan',
  tl: 'tagalog', mg: 'malagasy', as: 'assamese', tt: 'tatar', haw: 'hawaiian', ln: 'lingala',
  ha: 'hausa', ba: 'bashkir', jw: 'javanese', jv: 'javanese', su: 'sundanese', yue: 'cantonese',
};
const LANGUAGE_ALIASES: Record<string, string> = {
  burmese: 'my', valencian: 'ca', flemish: 'nl', haitian: 'ht', letzeburgesch: 'lb', pushto: 'ps',
  panjabi: 'pa', moldavian: 'ro', moldovan: 'ro', sinhalese: 'si', castilian: 'es', mandarin: 'zh',
  farsi: 'fa',
};

// Symbols OpenAI suppresses with `suppress_tokens = -1` (they make the model write sound
// annotations instead of speech); the ids differ per vocabulary, so they are found by encoding.
const NON_SPEECH_SYMBOLS = [
  ...'"#()*+/:;<=>@[\\]^_`{|}~「」『』',
  '<<', '>>', '<<<', '>>>', '--', '---', '-(', '-[', "('", '("', '((', '))', '(((', ')))', '[[', ']]',
  '{{', '}}', '♪♪', '♪♪♪',
];
const MUSIC_SYMBOLS = [...'♩♪♫♬♭♮♯'];

// GPT-2's pre-tokenisation: contractions, letter runs, digit runs, other-symbol runs (each with
// an optional leading space), and whitespace not followed by a non-space.
const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const UNSPACED_LANGUAGES = new Set(['zh', 'ja', 'th', 'lo', 'my', 'yue']);
const LANGUAGE_CONTENT = /^<\|([a-z]{2,3})\|>$/;

/** GPT-2's reversible map from bytes to printable unicode characters (so BPE never sees raw
 *  control bytes or spaces): printable Latin-1 bytes map to themselves, the rest to 256+n. */
function byteToUnicodeTable(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(printable(b) ? b : 256 + next++);
  }
  return table;
}
const BYTE_TO_UNICODE = byteToUnicodeTable();
const UNICODE_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(256 + 256).fill(-1);
  BYTE_TO_UNICODE.forEach((ch, b) => (table[ch.charCodeAt(0)] = b));
  return table;
})();

interface MergeTable {
  /** Ids of ordinary tokens are below `base`; pair keys are `left * base + right`. */
  base: number;
  /** Token id of each single byte. */
  byteIds: Int32Array;
  /** Pair key → `rank * base + merged id` (so comparing values compares ranks). */
  pairs: Map<number, number>;
}

interface AddedToken {
  id: number;
  content: string;
}

interface TokenizerFiles {
  /** The BPE vocabulary: token → id (as in the JSON files) or the tokens in id order (cache). */
  vocab: Record<string, number> | readonly (string | undefined)[];
  /** "left right" keys in rank order. */
  merges: string[];
  /** The id-level merge table, when read from the cache (then `merges` is empty). */
  mergeIds?: { byteIds: ArrayLike<number>; triples: ArrayLike<number> };
  added: AddedToken[];
  source: string;
  /** `is_multilingual` from generation_config.json, when the model has one. */
  declaredMultilingual: boolean | undefined;
  /** `vocab_size` from config.json, when present (covers files that omit timestamp tokens). */
  configVocabSize: number | undefined;
}

export interface SotOptions {
  language?: string;
  task?: 'transcribe' | 'translate';
  timestamps: boolean;
}

export interface WordTokens {
  word: string;
  tokens: number[];
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });
const WORD_CACHE_LIMIT = 50_000;
/** Longest pre-tokenised piece (UTF-16 units) encoded in one BPE run. */
const MAX_PIECE = 512;

export class WhisperTokenizer {
  readonly vocabSize: number;
  readonly multilingual: boolean;
  readonly eot: number;
  readonly sot: number;
  readonly sotPrev: number;
  readonly sotLm: number | undefined;
  readonly noTimestamps: number;
  readonly noSpeech: number;
  readonly transcribe: number | undefined;
  readonly translate: number | undefined;
  readonly timestampBegin: number;
  readonly languages: readonly string[];
  /** Where the vocabulary was read from (for error messages). */
  readonly source: string;
  /** True when it was loaded from `wx-tokenizer.cache` rather than parsed from the JSON files. */
  readonly fromCache: boolean;

  /** The BPE vocabulary as parsed (token → id), or undefined when read from the cache. */
  private readonly vocabObject: Record<string, number> | undefined;
  /** Tokens in id order, when read from the cache (the lookup map is built on first need). */
  private readonly vocabArray: readonly (string | undefined)[] | undefined;
  private vocabMapCache: Map<string, number> | undefined;
  private readonly added: Map<string, number>;
  private readonly addedById: Map<number, string>;
  /** Bytes of every ordinary token, back to back; `tokenStart`/`tokenLen` index it by id. */
  private readonly tokenBytes: Uint8Array;
  private readonly tokenStart: Uint32Array;
  private readonly tokenLen: Uint16Array;
  /** "left right" merge keys in rank order (empty when loaded from the cache, which stores the
   *  id-level table instead); the id-level merge table is built from them on the first encode. */
  private readonly mergeKeys: readonly string[];
  private mergeTableCache: MergeTable | undefined;
  private contentByIdCache: string[] | undefined;
  private readonly languageIds: Map<string, number>;
  private readonly languageById: Map<number, string>;
  private readonly wordCache = new Map<string, number[]>();
  private nonSpeechCache: number[] | undefined;
  private continuationCache: number[] | undefined;

  private constructor(files: TokenizerFiles, multilingualOverride?: boolean) {
    this.source = files.source;
    this.fromCache = Array.isArray(files.vocab);
    this.vocabObject = Array.isArray(files.vocab) ? undefined : (files.vocab as Record<string, number>);
    this.vocabArray = Array.isArray(files.vocab) ? (files.vocab as readonly (string | undefined)[]) : undefined;
    this.mergeKeys = files.merges;
    this.added = new Map();
    this.addedById = new Map();
    let maxId = -1;
    for (const a of files.added) {
      if (!Number.isInteger(a.id) || a.id < 0) throw corrupt(files.source, `added token ${JSON.stringify(a.content)} has invalid id ${a.id}`);
      this.added.set(a.content, a.id);
      this.addedById.set(a.id, a.content);
      if (a.id > maxId) maxId = a.id;
    }

    const required = (content: string): number => {
      const id = this.specialId(content);
      if (id === undefined) {
        throw new WxError('tokenizer.missing_token', `tokenizer ${files.source} has no ${content} token: not a Whisper tokenizer`, {
          file: files.source,
          token: content,
        });
      }
      return id;
    };
    this.eot = required('<|endoftext|>');
    this.sot = required('<|startoftranscript|>');
    this.sotPrev = required('<|startofprev|>');
    this.noTimestamps = required('<|notimestamps|>');
    this.sotLm = this.specialId('<|startoflm|>');
    this.transcribe = this.specialId('<|transcribe|>');
    this.translate = this.specialId('<|translate|>');
    const noSpeech = this.specialId('<|nospeech|>') ?? this.specialId('<|nocaptions|>');
    if (noSpeech === undefined) {
      throw new WxError('tokenizer.missing_token', `tokenizer ${files.source} has neither <|nospeech|> nor <|nocaptions|>`, {
        file: files.source,
        token: '<|nospeech|>',
      });
    }
    this.noSpeech = noSpeech;

    // One pass over the BPE vocabulary: validate ids and map each token's characters back to
    // bytes, into one buffer (a typed array per token would cost ~50k objects).
    const eot = this.eot;
    this.tokenStart = new Uint32Array(eot);
    this.tokenLen = new Uint16Array(eot);
    let bytes = new Uint8Array(1 << 19);
    let used = 0;
    const addToken = (token: string, id: number) => {
      if (!Number.isInteger(id) || id < 0) throw corrupt(files.source, `token ${JSON.stringify(token)} has invalid id ${String(id)}`);
      if (id > maxId) maxId = id;
      if (id >= eot || this.addedById.has(id)) return;
      if (used + token.length > bytes.length) {
        const grown = new Uint8Array(Math.max(bytes.length * 2, used + token.length));
        grown.set(bytes.subarray(0, used));
        bytes = grown;
      }
      this.tokenStart[id] = used;
      for (let i = 0; i < token.length; i++) {
        const code = token.charCodeAt(i);
        const b = code < UNICODE_TO_BYTE.length ? UNICODE_TO_BYTE[code]! : -1;
        if (b < 0) throw corrupt(files.source, `token ${JSON.stringify(token)} (id ${id}) has a character outside the byte-level alphabet`);
        bytes[used++] = b;
      }
      this.tokenLen[id] = token.length;
    };
    if (this.vocabArray) {
      const arr = this.vocabArray;
      for (let id = 0; id < arr.length; id++) if (arr[id] !== undefined) addToken(arr[id]!, id);
    } else {
      const obj = this.vocabObject!;
      for (const token in obj) addToken(token, obj[token]!);
    }
    // Added tokens below <|endoftext|> (not in Whisper's files, but allowed) are plain text.
    for (const [content, id] of this.added) {
      if (id >= eot) continue;
      const enc = utf8.encode(content);
      const grown = new Uint8Array(used + enc.length);
      grown.set(bytes.subarray(0, used));
      grown.set(enc, used);
      bytes = grown;
      this.tokenStart[id] = used;
      this.tokenLen[id] = enc.length;
      used += enc.length;
    }
    this.tokenBytes = bytes.subarray(0, used);

    // Some older Hub tokenizer files stop at <|notimestamps|>; the timestamps still follow it.
    const zero = this.specialId('<|0.00|>');
    this.timestampBegin = zero ?? this.noTimestamps + 1;
    const fullLayout = this.timestampBegin + TIMESTAMP_TOKEN_COUNT;
    this.vocabSize = Math.max(maxId + 1, zero === undefined ? Math.max(fullLayout, files.configVocabSize ?? 0) : 0);

    const languageIds = new Map<string, number>();
    for (const [content, id] of this.added) {
      const m = LANGUAGE_CONTENT.exec(content);
      if (m && id > this.eot && id < this.timestampBegin) languageIds.set(m[1]!, id);
    }
    // An English-only layout keeps the language tokens as unused ids; generation_config.json says
    // which kind of model this is. Without it, OpenAI's own rule applies: multilingual checkpoints
    // have one more ordinary token than GPT-2's English vocabulary, i.e. at least 51865 ids.
    const multilingual =
      multilingualOverride ?? files.declaredMultilingual ?? (languageIds.size > 0 && this.vocabSize >= 51865);
    this.multilingual = multilingual && languageIds.size > 0;
    const ordered = [...languageIds].sort((a, b) => a[1] - b[1]);
    this.languages = this.multilingual ? ordered.map(([code]) => code) : [];
    this.languageIds = this.multilingual ? new Map(ordered) : new Map();
    this.languageById = new Map([...this.languageIds].map(([code, id]) => [id, code]));
    if (files.mergeIds) this.mergeTableCache = tableFromTriples(this.eot, files.mergeIds.byteIds, files.mergeIds.triples, files.source);
  }

  /** Id of a BPE vocabulary entry (own properties only: "constructor" is a GPT-2 token too). */
  private ordinaryId(token: string): number | undefined {
    const obj = this.vocabObject;
    if (obj) {
      const id = obj[token];
      return typeof id === 'number' && Object.prototype.hasOwnProperty.call(obj, token) ? id : undefined;
    }
    if (!this.vocabMapCache) {
      const map = new Map<string, number>();
      const arr = this.vocabArray!;
      for (let id = 0; id < arr.length; id++) if (arr[id] !== undefined) map.set(arr[id]!, id);
      this.vocabMapCache = map;
    }
    return this.vocabMapCache.get(token);
  }

  /** Like `tokenId`, without building the whole lookup map (special tokens sit at the end). */
  private specialId(content: string): number | undefined {
    const added = this.added.get(content);
    if (added !== undefined) return added;
    if (this.vocabObject) return this.ordinaryId(content);
    const id = this.vocabArray!.lastIndexOf(content);
    return id >= 0 ? id : undefined;
  }

  /** Tokens of the BPE vocabulary in id order. */
  private contentById(): readonly (string | undefined)[] {
    if (this.vocabArray) return this.vocabArray;
    if (!this.contentByIdCache) {
      const byId: string[] = [];
      for (const token in this.vocabObject!) byId[this.vocabObject![token]!] = token;
      this.contentByIdCache = byId;
    }
    return this.contentByIdCache;
  }

  /** Merges over token ids, built on the first encode: (left, right) → rank and merged id. */
  private get mergeTable(): MergeTable {
    if (this.mergeTableCache) return this.mergeTableCache;
    const base = this.eot;
    const byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const id = this.ordinaryId(BYTE_TO_UNICODE[b]!);
      if (id === undefined || id >= base) throw corrupt(this.source, `byte token ${JSON.stringify(BYTE_TO_UNICODE[b])} is missing from the vocabulary`);
      byteIds[b] = id;
    }
    const pairs = new Map<number, number>();
    this.mergeKeys.forEach((key, rank) => {
      const sp = key.indexOf(' ');
      const left = this.ordinaryId(key.slice(0, sp));
      const right = this.ordinaryId(key.slice(sp + 1));
      const merged = this.ordinaryId(key.slice(0, sp) + key.slice(sp + 1));
      // A merge whose parts or result are not ordinary tokens cannot produce a valid id: skip it.
      if (left === undefined || right === undefined || merged === undefined) return;
      if (left >= base || right >= base || merged >= base) return;
      const pair = left * base + right;
      if (!pairs.has(pair)) pairs.set(pair, rank * base + merged);
    });
    this.mergeTableCache = { base, byteIds, pairs };
    return this.mergeTableCache;
  }

  /** Reads the tokenizer of a Hugging Face model directory: tokenizer.json if present, else
   *  vocab.json + merges.txt + added_tokens.json. `generation_config.json` (if present) says
   *  whether the model is multilingual. */
  static fromModelDir(dir: string, opts: { multilingual?: boolean; cache?: boolean } = {}): WhisperTokenizer {
    const files = (opts.cache !== false ? readCache(dir) : undefined) ?? readSourceFiles(dir).files;
    const gen = readOptionalJson(path.join(dir, 'generation_config.json'));
    const config = readOptionalJson(path.join(dir, 'config.json'));
    const declaredMultilingual = typeof gen?.is_multilingual === 'boolean' ? gen.is_multilingual : undefined;
    const configVocabSize = typeof config?.vocab_size === 'number' ? config.vocab_size : undefined;
    return new WhisperTokenizer({ ...files, declaredMultilingual, configVocabSize }, opts.multilingual);
  }

  /** Writes `wx-tokenizer.cache` into a model directory: the same vocabulary, merges and added
   *  tokens as plain lines, which load several times faster than tokenizer.json. `fromModelDir`
   *  uses it while the files it was made from are unchanged (size and mtime). Returns its path. */
  static writeCache(dir: string): string {
    const { files, sources } = readSourceFiles(dir);
    const tok = new WhisperTokenizer({ ...files, declaredMultilingual: undefined, configVocabSize: undefined });
    const vocab = tok.contentById();
    const table = tok.mergeTable;
    const triples: number[] = [];
    // Map iteration follows insertion, i.e. rank order; only relative ranks matter.
    for (const [pair, value] of table.pairs) triples.push(Math.floor(pair / table.base), pair % table.base, value % table.base);
    const lines: string[] = [];
    for (let id = 0; id < vocab.length; id++) {
      const t = vocab[id];
      if (t !== undefined && (t.length === 0 || t.includes('\n'))) throw corrupt(files.source, `token ${id} cannot be cached`);
      lines.push(t ?? '');
    }
    const header = {
      sources: sources.map((f) => {
        const st = fs.statSync(f);
        return { name: path.basename(f), size: st.size, mtimeMs: st.mtimeMs };
      }),
      source: files.source,
      added: [...tok.added].map(([content, id]) => [content, id]),
      vocab: lines.length,
      byteIds: [...table.byteIds],
    };
    const file = path.join(dir, TOKENIZER_CACHE_FILE);
    writeFileAtomic(file, [CACHE_MAGIC, JSON.stringify(header), JSON.stringify(triples), ...lines].join('\n') + '\n');
    return file;
  }

  // ---- ids ----------------------------------------------------------------------------------

  isTimestamp(id: number): boolean {
    return id >= this.timestampBegin && id < this.vocabSize;
  }

  timestampSeconds(id: number): number {
    if (!this.isTimestamp(id)) throw new WxError('tokenizer.not_timestamp', `token ${id} is not a timestamp token`, { token: id });
    return Math.round((id - this.timestampBegin) * TIMESTAMP_STEP_SECONDS * 100) / 100;
  }

  /** The timestamp token for a time in seconds (rounded to the nearest step, clamped to 0…30 s). */
  timestampToken(seconds: number): number {
    const step = Math.round(seconds / TIMESTAMP_STEP_SECONDS);
    return this.timestampBegin + Math.min(Math.max(step, 0), this.vocabSize - 1 - this.timestampBegin);
  }

  isSpecial(id: number): boolean {
    return id >= this.eot;
  }

  /** The literal content of a token as stored in the files (`Ġthe`, `<|en|>`). */
  tokenContent(id: number): string | undefined {
    const added = this.addedById.get(id);
    if (added !== undefined) return added;
    if (this.isTimestamp(id)) return `<|${this.timestampSeconds(id).toFixed(2)}|>`;
    return this.contentById()[id];
  }

  /** The id of a token's literal content, if the vocabulary has it. */
  tokenId(content: string): number | undefined {
    return this.added.get(content) ?? this.ordinaryId(content);
  }

  // ---- languages and prompts ------------------------------------------------------------------

  /** Normalises `'en'`, `'EN'` or `'English'` to the code this model uses; WxError if unknown. */
  languageCode(language: string): string {
    const key = language.trim().toLowerCase();
    const candidates = [key, LANGUAGE_ALIASES[key]];
    for (const [code, name] of Object.entries(LANGUAGE_NAMES)) if (name === key) candidates.push(code);
    // Hebrew appears as `he` (OpenAI) or `iw` (some Hub files); Javanese as `jw` or `jv`.
    if (key === 'he' || key === 'iw') candidates.push('he', 'iw');
    if (key === 'jw' || key === 'jv') candidates.push('jw', 'jv');
    for (const c of candidates) if (c !== undefined && this.languageIds.has(c)) return c;
    const known = this.multilingual ? `known: ${this.languages.join(', ')}` : 'this model is English-only';
    throw new WxError('tokenizer.unknown_language', `unknown language "${language}" (${known})`, { language, source: this.source });
  }

  languageToken(code: string): number {
    return this.languageIds.get(this.languageCode(code))!;
  }

  languageOfToken(id: number): string | undefined {
    return this.languageById.get(id);
  }

  /** All language token ids in id order (for language detection). */
  languageTokenIds(): number[] {
    return [...this.languageIds.values()];
  }

  /** The decoder prompt: `[sot]` for English-only models, `[sot, language, task]` for
   *  multilingual ones, followed by `<|notimestamps|>` unless timestamps are wanted. */
  sotSequence(opts: SotOptions): number[] {
    const seq = [this.sot];
    const task = opts.task ?? 'transcribe';
    if (this.multilingual) {
      if (opts.language !== undefined) seq.push(this.languageToken(opts.language));
      const taskId = task === 'translate' ? this.translate : this.transcribe;
      if (taskId === undefined) {
        throw new WxError('tokenizer.missing_token', `tokenizer ${this.source} has no <|${task}|> token`, { task, file: this.source });
      }
      seq.push(taskId);
    } else {
      if (opts.language !== undefined && !['en', 'english'].includes(opts.language.trim().toLowerCase())) {
        throw new WxError('tokenizer.english_only', `language "${opts.language}" requested, but the model is English-only`, {
          language: opts.language,
          source: this.source,
        });
      }
      if (task === 'translate') {
        throw new WxError('tokenizer.english_only', 'translation requested, but the model is English-only', { source: this.source });
      }
    }
    if (!opts.timestamps) seq.push(this.noTimestamps);
    return seq;
  }

  /** Token ids of symbols and sound annotations OpenAI suppresses for `suppress_tokens = -1`. */
  nonSpeechTokens(): number[] {
    if (this.nonSpeechCache) return [...this.nonSpeechCache];
    const result = new Set<number>();
    for (const s of [' -', " '"]) {
      const first = this.encode(s)[0];
      if (first !== undefined) result.add(first);
    }
    for (const symbol of [...NON_SPEECH_SYMBOLS, ...MUSIC_SYMBOLS]) {
      const music = MUSIC_SYMBOLS.includes(symbol);
      for (const ids of [this.encode(symbol), this.encode(' ' + symbol)]) {
        // Multi-token music symbols still start with a byte token specific to them.
        if (ids.length === 1 || (music && ids.length > 0)) result.add(ids[0]!);
      }
    }
    this.nonSpeechCache = [...result].sort((a, b) => a - b);
    return [...this.nonSpeechCache];
  }

  /** Text tokens that continue the word before them (their text starts with a letter, a digit,
   *  an apostrophe or a non-ASCII character, not with a space): what must not come first after a
   *  forced prefix that ends on a whole word. */
  wordContinuationTokens(): readonly number[] {
    if (!this.continuationCache) {
      const ids: number[] = [];
      for (let id = 0; id < this.eot; id++) {
        const b = this.textBytes(id)?.[0];
        if (b === undefined) continue;
        if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x27 || b >= 0x80) ids.push(id);
      }
      this.continuationCache = ids;
    }
    return this.continuationCache;
  }

  // ---- encode ------------------------------------------------------------------------------

  /** Byte-level BPE of plain text. Special-token spellings in the text (`<|en|>`) are encoded as
   *  ordinary characters, so user text can never inject control tokens. */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const m of text.matchAll(PRETOKENIZE)) {
      const piece = m[0];
      if (piece.length > MAX_PIECE) {
        // BPE is quadratic in the piece length; a letter run this long is not language (e.g. a
        // pasted hash), so it is encoded in slices, cut between code points.
        for (let i = 0; i < piece.length; ) {
          let j = Math.min(i + MAX_PIECE, piece.length);
          if (j < piece.length && /[\uDC00-\uDFFF]/.test(piece[j]!)) j--;
          for (const id of this.bpe(piece.slice(i, j))) out.push(id);
          i = j;
        }
        continue;
      }
      let ids = this.wordCache.get(piece);
      if (ids === undefined) {
        ids = this.bpe(piece);
        if (this.wordCache.size >= WORD_CACHE_LIMIT) this.wordCache.clear();
        this.wordCache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }

  private bpe(piece: string): number[] {
    const { base, byteIds, pairs } = this.mergeTable;
    const bytes = utf8.encode(piece);
    let parts: number[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) parts[i] = byteIds[bytes[i]!]!;
    // Merge the lowest-ranked adjacent pair (every occurrence, left to right) until none applies.
    while (parts.length > 1) {
      let best = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const v = pairs.get(parts[i]! * base + parts[i + 1]!);
        if (v !== undefined && v < best) best = v;
      }
      if (best === Infinity) break;
      const merged = best % base;
      let left = -1;
      let right = -1;
      for (let i = 0; i < parts.length - 1; i++) {
        if (pairs.get(parts[i]! * base + parts[i + 1]!) === best) {
          left = parts[i]!;
          right = parts[i + 1]!;
          break;
        }
      }
      const next: number[] = [];
      for (let i = 0; i < parts.length; ) {
        if (i < parts.length - 1 && parts[i] === left && parts[i + 1] === right) {
          next.push(merged);
          i += 2;
        } else {
          next.push(parts[i]!);
          i += 1;
        }
      }
      parts = next;
    }
    return parts;
  }

  // ---- decode ------------------------------------------------------------------------------

  private textBytes(id: number): Uint8Array | undefined {
    if (!(id >= 0 && id < this.eot)) return undefined;
    const len = this.tokenLen[id]!;
    if (len === 0) return undefined;
    const start = this.tokenStart[id]!;
    return this.tokenBytes.subarray(start, start + len);
  }

  /** Text of the ordinary tokens; special and timestamp tokens are dropped. UTF-8 sequences split
   *  across tokens are joined before decoding; invalid bytes become U+FFFD. */
  decode(ids: readonly number[]): string {
    return decodeBytes(this.collectBytes(ids));
  }

  /** Like `decode`, but timestamp tokens are rendered as `<|1.23|>` in place. */
  decodeWithTimestamps(ids: readonly number[]): string {
    let out = '';
    let run: number[] = [];
    for (const id of ids) {
      if (this.isTimestamp(id)) {
        out += decodeBytes(this.collectBytes(run)) + `<|${this.timestampSeconds(id).toFixed(2)}|>`;
        run = [];
      } else {
        run.push(id);
      }
    }
    return out + decodeBytes(this.collectBytes(run));
  }

  private collectBytes(ids: readonly number[]): Uint8Array {
    const { tokenStart, tokenLen, tokenBytes, eot } = this;
    let total = 0;
    for (const id of ids) if (id >= 0 && id < eot) total += tokenLen[id]!;
    const buf = new Uint8Array(total);
    let off = 0;
    for (const id of ids) {
      if (!(id >= 0 && id < eot)) continue;
      const len = tokenLen[id]!;
      if (len === 0) continue;
      const start = tokenStart[id]!;
      if (len === 1) buf[off] = tokenBytes[start]!;
      else buf.set(tokenBytes.subarray(start, start + len), off);
      off += len;
    }
    return buf;
  }

  /** The text of one token on its own (a partial UTF-8 sequence decodes to U+FFFD). Special and
   *  timestamp tokens give their spelling, e.g. `<|en|>`, `<|1.00|>`. */
  tokenText(id: number): string {
    const b = this.textBytes(id);
    if (b) return decodeBytes(b);
    return this.tokenContent(id) ?? '';
  }

  /** Groups tokens into words. For space-delimited languages a word starts at a token beginning
   *  with a space, at punctuation, or at a special token; for languages written without spaces
   *  (Chinese, Japanese, Thai, Lao, Burmese, Cantonese) each run of tokens that decodes to whole
   *  characters is a word. Tokens that only together form a valid UTF-8 character always stay in
   *  one unit; timestamp and special tokens are each their own word. */
  splitToWords(ids: readonly number[], language?: string): WordTokens[] {
    if (language !== undefined && UNSPACED_LANGUAGES.has(language)) return this.splitToCharacterUnits(ids);
    const words: WordTokens[] = [];
    for (const unit of this.splitToCharacterUnits(ids)) {
      const special = unit.tokens.length === 1 && this.isSpecial(unit.tokens[0]!);
      const startsWord = special || /^\s/u.test(unit.word) || isPunctuationOnly(unit.word);
      const prev = words[words.length - 1];
      const prevClosed =
        prev === undefined || (prev.tokens.length === 1 && this.isSpecial(prev.tokens[0]!)) || isPunctuationOnly(prev.word);
      if (startsWord || prevClosed) {
        words.push({ word: unit.word, tokens: [...unit.tokens] });
      } else {
        prev.word += unit.word;
        prev.tokens.push(...unit.tokens);
      }
    }
    return words;
  }

  /** Groups consecutive ordinary tokens until their bytes form complete UTF-8 characters. */
  private splitToCharacterUnits(ids: readonly number[]): WordTokens[] {
    const units: WordTokens[] = [];
    let pending: number[] = [];
    const flush = () => {
      if (pending.length > 0) units.push({ word: this.decode(pending), tokens: pending });
      pending = [];
    };
    for (const id of ids) {
      if (this.isSpecial(id)) {
        flush();
        units.push({ word: this.tokenText(id), tokens: [id] });
        continue;
      }
      pending.push(id);
      if (isCompleteUtf8(this.collectBytes(pending))) flush();
    }
    flush();
    return units;
  }
}

function decodeBytes(bytes: Uint8Array): string {
  return bytes.length === 0 ? '' : utf8Decoder.decode(bytes);
}

/** True when the bytes do not end inside a multi-byte UTF-8 sequence. */
function isCompleteUtf8(bytes: Uint8Array): boolean {
  let i = bytes.length - 1;
  let continuation = 0;
  while (i >= 0 && (bytes[i]! & 0xc0) === 0x80 && continuation < 3) {
    continuation++;
    i--;
  }
  if (i < 0) return continuation === 0;
  const lead = bytes[i]!;
  const need = lead < 0x80 ? 0 : (lead & 0xe0) === 0xc0 ? 1 : (lead & 0xf0) === 0xe0 ? 2 : (lead & 0xf8) === 0xf0 ? 3 : 0;
  return continuation >= need;
}

function isPunctuationOnly(text: string): boolean {
  const t = text.trim();
  return t.length > 0 && /^[\p{P}\p{S}]+$/u.test(t);
}

function corrupt(file: string, detail: string): WxError {
  return new WxError('tokenizer.corrupt', `tokenizer file ${file} is corrupt: ${detail}`, { file });
}

function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new WxError('tokenizer.missing', `cannot read tokenizer file ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new WxError('tokenizer.corrupt', `tokenizer file ${file} is not valid JSON: ${(err as Error).message}`, { file }, { cause: err });
  }
}

function readOptionalJson(file: string): Record<string, unknown> | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const v: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch (err) {
    throw new WxError('tokenizer.corrupt', `model file ${file} is not valid JSON: ${(err as Error).message}`, { file }, { cause: err });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkVocab(v: unknown, file: string): Record<string, number> {
  // Ids are validated in the constructor's single pass over the vocabulary.
  if (!isRecord(v)) throw corrupt(file, 'the vocabulary is not an object of token → id');
  return v as Record<string, number>;
}

/** Merges as "left right" keys in rank order. Two spellings exist: "Ġ t" (merges.txt, older
 *  tokenizer.json) and ["Ġ", "t"] (newer tokenizer.json). Byte-level tokens never contain a
 *  space, so the key is unambiguous. */
function parseMerges(list: unknown, file: string): string[] {
  if (!Array.isArray(list)) throw corrupt(file, 'merges is not a list');
  const keys: string[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const m: unknown = list[i];
    if (typeof m === 'string') {
      const sp = m.indexOf(' ');
      if (sp <= 0 || sp === m.length - 1 || m.indexOf(' ', sp + 1) >= 0) throw corrupt(file, `merge ${i} (${JSON.stringify(m)}) is not "left right"`);
      keys[i] = m;
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      keys[i] = m[0] + ' ' + m[1];
    } else {
      throw corrupt(file, `merge ${i} is neither "left right" nor [left, right]`);
    }
  }
  return keys;
}

type SourceFiles = Omit<TokenizerFiles, 'declaredMultilingual' | 'configVocabSize'>;

/** tokenizer.json if present, else vocab.json + merges.txt (+ added_tokens.json). */
function readSourceFiles(dir: string): { files: SourceFiles; sources: string[] } {
  const tokenizerJson = path.join(dir, 'tokenizer.json');
  if (fs.existsSync(tokenizerJson)) return { files: readTokenizerJson(tokenizerJson), sources: [tokenizerJson] };
  if (fs.existsSync(path.join(dir, 'vocab.json'))) {
    const sources = ['vocab.json', 'merges.txt', 'added_tokens.json'].map((f) => path.join(dir, f)).filter((f) => fs.existsSync(f));
    return { files: readVocabAndMerges(dir), sources };
  }
  throw new WxError(
    'tokenizer.missing',
    `no tokenizer in ${dir}: expected tokenizer.json, or vocab.json + merges.txt + added_tokens.json`,
    { dir, file: tokenizerJson },
  );
}

export const TOKENIZER_CACHE_FILE = 'wx-tokenizer.cache';
const CACHE_MAGIC = 'wx-tokenizer-cache 2';

/** The cached tokenizer of `dir`, or undefined when there is none or it no longer matches the
 *  files it was made from (a stale or damaged cache is ignored, never an error). */
function readCache(dir: string): SourceFiles | undefined {
  const file = path.join(dir, TOKENIZER_CACHE_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const lines = text.split('\n');
    if (lines[0] !== CACHE_MAGIC) return undefined;
    const header = JSON.parse(lines[1]!) as {
      sources: { name: string; size: number; mtimeMs: number }[];
      source: string;
      added: [string, number][];
      vocab: number;
      byteIds: number[];
    };
    for (const s of header.sources) {
      const st = fs.statSync(path.join(dir, s.name), { throwIfNoEntry: false });
      if (!st || st.size !== s.size || st.mtimeMs !== s.mtimeMs) return undefined;
    }
    if (lines.length !== 3 + header.vocab + 1 || header.byteIds.length !== 256) return undefined;
    const triples = JSON.parse(lines[2]!) as number[];
    if (!Array.isArray(triples) || triples.length % 3 !== 0) return undefined;
    const vocab: (string | undefined)[] = lines.slice(3, 3 + header.vocab);
    for (let i = 0; i < vocab.length; i++) if (vocab[i] === '') vocab[i] = undefined;
    return {
      vocab,
      merges: [],
      mergeIds: { byteIds: header.byteIds, triples },
      added: header.added.map(([content, id]) => ({ content, id })),
      source: path.join(dir, header.sources[0]!.name),
    };
  } catch {
    return undefined;
  }
}

/** The id-level merge table from (left, right, merged) triples in rank order. */
function tableFromTriples(base: number, byteIds: ArrayLike<number>, triples: ArrayLike<number>, source: string): MergeTable {
  const pairs = new Map<number, number>();
  for (let k = 0, rank = 0; k < triples.length; k += 3, rank++) {
    const left = triples[k]!;
    const right = triples[k + 1]!;
    const merged = triples[k + 2]!;
    if (!(left < base && right < base && merged < base)) throw corrupt(source, `cached merge ${rank} has ids outside the vocabulary`);
    pairs.set(left * base + right, rank * base + merged);
  }
  return { base, byteIds: Int32Array.from(byteIds), pairs };
}

function readTokenizerJson(file: string): SourceFiles {
  const json = readJsonFile(file);
  if (!isRecord(json) || !isRecord(json.model)) throw corrupt(file, 'no "model" object');
  const model = json.model;
  if (model.type !== undefined && model.type !== 'BPE') throw corrupt(file, `model type is ${String(model.type)}, expected BPE`);
  const vocab = checkVocab(model.vocab, file);
  const merges = parseMerges(model.merges, file);
  const addedList = json.added_tokens ?? [];
  if (!Array.isArray(addedList)) throw corrupt(file, 'added_tokens is not a list');
  const added: AddedToken[] = addedList.map((a: unknown, i) => {
    if (!isRecord(a) || typeof a.id !== 'number' || typeof a.content !== 'string') throw corrupt(file, `added token ${i} lacks id/content`);
    return { id: a.id, content: a.content };
  });
  return { vocab, merges, added, source: file };
}

function readVocabAndMerges(dir: string): SourceFiles {
  const vocabFile = path.join(dir, 'vocab.json');
  const mergesFile = path.join(dir, 'merges.txt');
  const addedFile = path.join(dir, 'added_tokens.json');
  const vocab = checkVocab(readJsonFile(vocabFile), vocabFile);
  let mergesText: string;
  try {
    mergesText = fs.readFileSync(mergesFile, 'utf8');
  } catch (err) {
    throw new WxError('tokenizer.missing', `cannot read tokenizer file ${mergesFile}: ${(err as Error).message}`, { file: mergesFile }, { cause: err });
  }
  const lines = mergesText.split(/\r?\n/).filter((l) => l.length > 0 && !l.startsWith('#version'));
  const merges = parseMerges(lines, mergesFile);
  const added: AddedToken[] = [];
  if (fs.existsSync(addedFile)) {
    const a = readJsonFile(addedFile);
    if (!isRecord(a)) throw corrupt(addedFile, 'not an object of token → id');
    for (const [content, id] of Object.entries(a)) {
      if (typeof id !== 'number') throw corrupt(addedFile, `token ${JSON.stringify(content)} has a non-numeric id`);
      added.push({ id, content });
    }
  }
  return { vocab, merges, added, source: vocabFile };
}

