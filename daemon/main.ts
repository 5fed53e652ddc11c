// `node dist/daemon/main.js`: the wx daemon process (started by `wx daemon start`, by any
// command that needs it, or by launchd/systemd).
import { runDaemon } from './daemon.js';
import { wxHome } from './paths.js';

const code = await runDaemon({ home: wxHome(), echoLog: process.env.WX_LOG_ECHO === '1' });
process.exit(code);
