// Where wx keeps its data. Every part of the daemon, the CLI and the tests goes through here.
import os from 'node:os';
import path from 'node:path';

/** `WX_HOME`, or the platform default: `~/Library/Application Support/wx` on macOS,
 *  `$XDG_DATA_HOME/wx` (default `~/.local/share/wx`) elsewhere. */
export function wxHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WX_HOME) return path.resolve(env.WX_HOME);
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Application Support', 'wx');
  const xdg = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(os.homedir(), '.local', 'share');
  return path.join(xdg, 'wx');
}

export interface WxPaths {
  home: string;
  db: string;
  runDir: string;
  socket: string;
  lock: string;
  models: string;
  logs: string;
  config: string;
  /** Audio captured by dictation sessions, kept before any transcription starts. */
  recordings: string;
}

export function wxPaths(home: string = wxHome()): WxPaths {
  return {
    home,
    db: path.join(home, 'wx.db'),
    runDir: path.join(home, 'run'),
    socket: path.join(home, 'run', 'wx.sock'),
    lock: path.join(home, 'run', 'wx.lock'),
    models: path.join(home, 'models'),
    logs: path.join(home, 'logs'),
    config: path.join(home, 'config.json'),
    recordings: path.join(home, 'recordings'),
  };
}

/** The repository root (dist/daemon/paths.js and daemon/paths.ts both sit two levels down). */
export function projectRoot(): string {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const up = path.resolve(here, '..');
  return path.basename(up) === 'dist' ? path.resolve(up, '..') : up;
}
