// What dictation users expect done to the final text: filler words removed on request, a user
// dictionary of replacements (config `dictation.replacements`), an optional trailing space.
// Capitalisation and punctuation are left as the model wrote them.
import { WxError } from '../errors.js';

export interface PostprocessOptions {
  removeFillers?: boolean;
  /** Phrase → replacement, matched on whole words, case-insensitively. */
  replacements?: Record<string, string>;
  trailingSpace?: boolean;
}

/** Hesitation sounds, never words with meaning (so "like" or "so" stay). */
export const FILLER_WORDS: readonly string[] = ['um', 'umm', 'uh', 'uhh', 'uh-huh', 'er', 'erm', 'ah', 'hmm', 'hm', 'mm', 'mhm'];

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A filler with the comma or ellipsis that usually follows it ("Um, so…" → "So…"). */
const FILLER_RE = new RegExp(`(^|\\s)(?:${FILLER_WORDS.map(escapeRegExp).join('|')})(?:[,.…]+|(?=\\s|$))`, 'giu');

export function removeFillers(text: string): string {
  const out = text.replace(FILLER_RE, '$1').replace(/\s{2,}/g, ' ').trim();
  // A sentence that started with a filler now starts lower-case: restore the capital.
  return text.trim() !== out && /^\p{Ll}/u.test(out) && /^\p{Lu}/u.test(text.trim()) ? out[0]!.toUpperCase() + out.slice(1) : out;
}

export function applyReplacements(text: string, replacements: Record<string, string>): string {
  // Longer phrases first, so "new york city" wins over "new york".
  const phrases = Object.keys(replacements).sort((a, b) => b.length - a.length);
  let out = text;
  for (const phrase of phrases) {
    const key = phrase.trim();
    if (!key) throw new WxError('config.bad_replacement', 'dictation.replacements has an empty phrase', { phrase });
    const re = new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(key).replace(/\s+/g, '\\s+')}(?![\\p{L}\\p{N}])`, 'giu');
    out = out.replace(re, () => replacements[phrase]!);
  }
  return out;
}

export function postprocess(text: string, opts: PostprocessOptions): string {
  let out = text.trim();
  if (opts.removeFillers) out = removeFillers(out);
  if (opts.replacements && Object.keys(opts.replacements).length > 0) out = applyReplacements(out, opts.replacements);
  out = out.replace(/\s{2,}/g, ' ').trim();
  if (opts.trailingSpace && out.length > 0) out += ' ';
  return out;
}
