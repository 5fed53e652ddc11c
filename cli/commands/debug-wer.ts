// `wx debug wer REF HYP`: word error rate of a hypothesis transcript against a reference, with
// Whisper-style English normalisation (or basic/none), for checking accuracy from the shell.
import fs from 'node:fs';
import type { Command } from 'commander';
import { WxError } from '../../daemon/errors.js';
import { wordErrorRate, type WerOptions } from '../../daemon/pipeline/wer.js';

function readText(file: string, role: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new WxError('cli.read_failed', `cannot read ${role} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
  }
}

const nonEmptyLines = (text: string): string[] => text.split(/\r?\n/).filter((l) => l.trim().length > 0);

export function registerDebugWer(debug: Command): void {
  debug
    .command('wer <ref> <hyp>')
    .description('word error rate of a hypothesis text file against a reference text file')
    .option('--json', 'print {wer, substitutions, deletions, insertions, words, …} as JSON')
    .option('--lines', 'compare line by line (one utterance per non-empty line; corpus WER and exact-match count)')
    .option('--normalize <mode>', 'english (Whisper-style), basic (language-neutral) or none', 'english')
    .action((refFile: string, hypFile: string, o: { json?: boolean; lines?: boolean; normalize: string }) => {
      const modes: Record<string, WerOptions['normalize']> = { english: 'english', basic: 'basic', none: false };
      if (!(o.normalize in modes)) {
        throw new WxError('cli.bad_option', `--normalize must be english, basic or none, not "${o.normalize}"`, { option: o.normalize });
      }
      const ref = readText(refFile, 'reference');
      const hyp = readText(hypFile, 'hypothesis');
      let result;
      if (o.lines) {
        const refs = nonEmptyLines(ref);
        const hyps = nonEmptyLines(hyp);
        if (refs.length !== hyps.length) {
          throw new WxError(
            'cli.line_mismatch',
            `--lines needs as many lines in ${hypFile} (${hyps.length}) as in ${refFile} (${refs.length})`,
            { ref: refFile, hyp: hypFile },
          );
        }
        result = wordErrorRate(refs, hyps, { normalize: modes[o.normalize] });
      } else {
        result = wordErrorRate(ref, hyp, { normalize: modes[o.normalize] });
      }
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...result, wer: Number.isFinite(result.wer) ? result.wer : null }) + '\n');
        return;
      }
      const pct = Number.isFinite(result.wer) ? `${(result.wer * 100).toFixed(2)}%` : 'undefined (empty reference)';
      let line = `WER ${pct}  (S ${result.substitutions}, D ${result.deletions}, I ${result.insertions}; ${result.words} reference words)`;
      if (result.exactCount !== undefined) line += `  exact ${result.exactCount}/${result.pairs} lines`;
      process.stdout.write(line + '\n');
    });
}
