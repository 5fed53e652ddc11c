// Turns what a user types into a safe FTS5 MATCH expression. Raw FTS5 syntax is unforgiving
// (a stray `"`, `*` or a bare `AND` is a syntax error), so every term is re-quoted here and
// only a small, documented syntax is honoured:
//
//   word            must occur (all words must occur: implicit AND)
//   "two words"     the phrase, in that order
//   word* "ph ra"*  prefix match on the (last) word
//   -word -"a b"    must not occur (NOT word also works)
//   a OR b          either side (OR binds loosest: `a b OR c` = (a AND b) OR c)
//   AND             accepted and ignored (AND is implicit)
//
// Anything else is literal text. Terms with no letters or digits are dropped (FTS5 would find
// no tokens in them). The result is null when nothing searchable is left (e.g. only exclusions).

interface Term {
  text: string;
  prefix: boolean;
  negated: boolean;
}

type Token = { kind: 'term'; term: Term } | { kind: 'or' } | { kind: 'not' };

const SEARCHABLE = /[\p{L}\p{N}\p{Co}]/u;

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = input.length;
  while (i < n) {
    const ch = input[i]!;
    if (/\s/u.test(ch)) {
      i++;
      continue;
    }
    let negated = false;
    if (ch === '-' && i + 1 < n && !/\s/u.test(input[i + 1]!)) {
      negated = true;
      i++;
    }
    let text: string;
    let quoted = false;
    if (input[i] === '"') {
      quoted = true;
      const close = input.indexOf('"', i + 1);
      const end = close === -1 ? n : close;
      text = input.slice(i + 1, end);
      i = close === -1 ? n : close + 1;
    } else {
      let j = i;
      while (j < n && !/\s/u.test(input[j]!) && input[j] !== '"') j++;
      text = input.slice(i, j);
      i = j;
    }
    let prefix = false;
    if (quoted) {
      if (input[i] === '*') {
        prefix = true;
        i++;
      }
    } else {
      if (!negated && text === 'OR') {
        tokens.push({ kind: 'or' });
        continue;
      }
      if (!negated && text === 'AND') continue;
      if (!negated && text === 'NOT') {
        tokens.push({ kind: 'not' });
        continue;
      }
      const stars = /\*+$/u.exec(text);
      if (stars) {
        prefix = true;
        text = text.slice(0, stars.index);
      }
    }
    tokens.push({ kind: 'term', term: { text, prefix, negated } });
  }
  return tokens;
}

const quote = (t: Term): string => `"${t.text.replace(/"/g, '""')}"${t.prefix ? '*' : ''}`;

/** The FTS5 expression for a user query, or null when it has nothing to search for. */
export function toFtsQuery(input: string): string | null {
  const groups: Term[][] = [[]];
  const excluded: Term[] = [];
  let negateNext = false;
  for (const tok of tokenize(input)) {
    if (tok.kind === 'or') {
      if (groups[groups.length - 1]!.length > 0) groups.push([]);
      continue;
    }
    if (tok.kind === 'not') {
      negateNext = true;
      continue;
    }
    const term = { ...tok.term, negated: tok.term.negated || negateNext };
    negateNext = false;
    if (!SEARCHABLE.test(term.text)) continue;
    if (term.negated) excluded.push(term);
    else groups[groups.length - 1]!.push(term);
  }
  const positive = groups.filter((g) => g.length > 0);
  if (positive.length === 0) return null;
  const include = positive.map((g) => '(' + g.map(quote).join(' AND ') + ')').join(' OR ');
  if (excluded.length === 0) return include;
  return `(${include})` + excluded.map((t) => ` NOT ${quote(t)}`).join('');
}
