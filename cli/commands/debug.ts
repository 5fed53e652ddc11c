// `wx debug …`: tools for checking the engine against reference outputs.
import type { Command } from 'commander';
import { registerDebugGreedy } from './debug-greedy.js';
import { registerDebugWer } from './debug-wer.js';
import { registerDebugMel } from './debug-mel.js';

export function registerDebug(program: Command): Command {
  const debug = program.command('debug').description('developer tools: features, greedy decoding, WER');
  registerDebugGreedy(debug);
  registerDebugWer(debug);
  registerDebugMel(debug);
  return debug;
}
