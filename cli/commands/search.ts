// `wx search QUERY`: full-text search over every stored transcript.
import type { Command } from 'commander';
import { clock, positiveInt, printJson, withDaemon } from '../daemon-client.js';

export function registerSearch(program: Command): Command {
  return program
    .command('search')
    .description('search every transcript (words, "a phrase", prefix*, -exclude, a OR b); best matches first')
    .argument('<query...>', 'what to look for')
    .option('--json', 'print an array of hits {path, start, end, text, snippet, score}')
    .option('--limit <n>', 'at most this many hits', positiveInt, 20)
    .option('--since <date>', 'only recordings changed on or after this date (YYYY-MM-DD or ISO time)')
    .option('--path <glob>', 'only recordings whose path matches this glob (e.g. "*/meetings/*")')
    .action((words: string[], opts: { json?: boolean; limit: number; since?: string; path?: string }) =>
      withDaemon({ autostart: true }, async (client) => {
        const params: { query: string; limit: number; since?: string; path?: string } = { query: words.join(' '), limit: opts.limit };
        if (opts.since) params.since = opts.since;
        if (opts.path) params.path = opts.path;
        const hits = await client.call('search', params);
        if (opts.json) return printJson(hits);
        if (hits.length === 0) {
          process.stdout.write('no matches\n');
          return;
        }
        for (const h of hits) process.stdout.write(`${h.path}  ${clock(h.start)}  ${h.snippet}\n`);
      }),
    );
}
