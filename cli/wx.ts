// The `wx` command: parses arguments, talks to the daemon (or runs in-process where a command
// says so), renders results. Each command group lives in cli/commands/ and registers itself here.
import { Command, CommanderError } from 'commander';
import { WxError } from '../daemon/errors.js';
import { VERSION } from '../daemon/version.js';
import { EXIT } from './exit.js';
import { registerDebug } from './commands/debug.js';
import { registerTranscribe } from './commands/transcribe.js';
import { transcribeViaDaemon } from './commands/transcribe-daemon.js';
import { registerDaemon } from './commands/daemon.js';
import { registerStatus } from './commands/status.js';
import { registerSearch } from './commands/search.js';
import { registerJobs } from './commands/jobs.js';
import { registerService } from './commands/service.js';
import { registerWatch } from './commands/watch.js';
import { registerShow } from './commands/show.js';
import { registerModels } from './commands/models.js';
import { registerDictate } from './commands/dictate.js';

const program = new Command('wx')
  .description('wx: local, private speech-to-text (a warm Whisper model, watched folders, search, dictation)')
  .version(VERSION)
  .showHelpAfterError()
  .exitOverride();

registerTranscribe(program, transcribeViaDaemon);
registerDebug(program);
registerDaemon(program);
registerStatus(program);
registerSearch(program);
registerJobs(program);
registerService(program);
registerWatch(program);
registerShow(program);
registerModels(program);
registerDictate(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (err instanceof WxError) {
    process.stderr.write(`wx: ${err.message}\n`);
    process.exitCode = EXIT.failure;
  } else {
    process.stderr.write(`wx: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = EXIT.internal;
  }
}
