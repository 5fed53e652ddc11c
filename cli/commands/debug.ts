// `wx debug …`: tools for checking the engine against reference outputs.
import type { Command } from 'commander';

export function registerDebug(program: Command): Command {
  const debug = program.command('debug').description('developer tools: features, greedy decoding, WER');
  return debug;
}
