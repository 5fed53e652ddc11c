// Include/exclude patterns of a watched folder, matched against paths relative to the folder
// (always with `/`). Written here rather than taken from picomatch, which is only a transitive
// dependency. Semantics (gitignore-like, documented in README):
//   *      any characters except `/`         **   any characters including `/` (whole segments)
//   ?      one character except `/`          [abc] [a-z] [!abc]   one character of (not of) a set
//   {a,b}  either alternative (may nest)     \x   the character x literally
// A pattern without `/` matches the file name at any depth (`*.m4a`); one with `/` is anchored
// at the watched folder (`Meetings/*.m4a`; a leading `/` is allowed). A pattern that matches a
// folder also matches everything inside it (`Archive` or `Archive/**` exclude the whole tree).
// Matching ignores case by default: recorders write `.M4A` as often as `.m4a`.

export type PathMatcher = (relPath: string) => boolean;

function escapeRegex(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(ch) ? `\\${ch}` : ch;
}

/** Translates glob syntax to a regular-expression body; `i` walks `src`. */
function translate(src: string): string {
  let out = '';
  let depth = 0; // open `{` groups
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (ch === '\\' && i + 1 < src.length) {
      out += escapeRegex(src[++i]!);
    } else if (ch === '*') {
      if (src[i + 1] === '*') {
        let j = i + 2;
        while (src[j] === '*') j++;
        if ((i === 0 || src[i - 1] === '/') && src[j] === '/') {
          out += '(?:[^/]*/)*'; // `**/`: zero or more whole folders
          i = j;
        } else {
          out += '.*';
          i = j - 1;
        }
      } else {
        out += '[^/]*';
      }
    } else if (ch === '?') {
      out += '[^/]';
    } else if (ch === '[') {
      const close = src.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
        continue;
      }
      let body = src.slice(i + 1, close);
      let negate = false;
      if (body[0] === '!' || body[0] === '^') {
        negate = true;
        body = body.slice(1);
      }
      const cls = body.replace(/\\/g, '\\\\').replace(/]/g, '\\]').replace(/\[/g, '\\[');
      out += negate ? `[^/${cls}]` : `[${cls}]`;
      i = close;
    } else if (ch === '{' && hasClosingBrace(src, i)) {
      out += '(?:';
      depth++;
    } else if (ch === ',' && depth > 0) {
      out += '|';
    } else if (ch === '}' && depth > 0) {
      out += ')';
      depth--;
    } else {
      out += escapeRegex(ch);
    }
  }
  return out;
}

function hasClosingBrace(src: string, open: number): boolean {
  let level = 0;
  for (let i = open; i < src.length; i++) {
    if (src[i] === '\\') i++;
    else if (src[i] === '{') level++;
    else if (src[i] === '}' && --level === 0) return true;
  }
  return false;
}

export function compileGlob(pattern: string, opts: { nocase?: boolean } = {}): PathMatcher {
  let p = pattern.trim().replace(/^\.\//, '').replace(/\/+$/, '');
  const anchored = p.includes('/');
  p = p.replace(/^\/+/, '');
  const body = translate(p);
  const re = new RegExp(anchored ? `^${body}$` : `^(?:.*/)?${body}$`, opts.nocase === false ? 'u' : 'iu');
  return (relPath: string) => {
    const rel = relPath.split(/[\\/]+/).filter(Boolean);
    // A folder that matches takes its contents with it.
    for (let n = rel.length; n >= 1; n--) if (re.test(rel.slice(0, n).join('/'))) return true;
    return false;
  };
}

/** Accepts a path when it matches some include (or there are none) and no exclude. */
export function compileFilter(include: readonly string[], exclude: readonly string[], opts: { nocase?: boolean } = {}): PathMatcher {
  const inc = include.map((g) => compileGlob(g, opts));
  const exc = exclude.map((g) => compileGlob(g, opts));
  return (rel) => (inc.length === 0 || inc.some((m) => m(rel))) && !exc.some((m) => m(rel));
}
