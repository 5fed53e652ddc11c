// `wx service install|uninstall|status`: run the daemon at login under the platform's service
// manager — a LaunchAgent on macOS (launchctl), a systemd user unit on Linux (systemctl --user).
// Templates live in launchd/; values (node binary, daemon script, WX_HOME) are resolved at
// install time. The service-manager calls sit behind `ServiceManager` so file handling is
// testable anywhere; commands always go through execFile with argument arrays (no shell).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WxError } from '../daemon/errors.js';
import { daemonScript } from '../daemon/ipc/client.js';
import { projectRoot, wxPaths } from '../daemon/paths.js';

export const LAUNCHD_LABEL = 'com.wx.daemon';
export const SYSTEMD_UNIT = 'wx.service';

export type ServicePlatform = 'launchd' | 'systemd';

export interface ServiceValues {
  node: string;
  script: string;
  home: string;
  log: string;
  pathEnv: string;
}

export function serviceValues(home: string): ServiceValues {
  return {
    node: process.execPath,
    script: daemonScript(),
    home,
    log: path.join(wxPaths(home).logs, 'daemon.out'),
    // launchd and systemd start with a minimal PATH; the daemon needs ffmpeg from the user's.
    pathEnv: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
  };
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** systemd: `%` starts a specifier everywhere; in quoted ExecStart/Environment words `\` and `"` are escaped and `$` would expand a variable. */
const sdPercent = (s: string) => s.replace(/%/g, '%%');
const sdQuoted = (s: string) => `"${sdPercent(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$')}"`;

function template(name: string): string {
  return fs.readFileSync(path.join(projectRoot(), 'launchd', name), 'utf8');
}

function fill(text: string, values: Record<string, string>): string {
  return text.replace(/\{\{([A-Z_]+)\}\}/g, (_, key: string) => {
    const v = values[key];
    if (v === undefined) throw new WxError('service.template', `unknown placeholder {{${key}}} in a service template`, { key });
    return v;
  });
}

export function renderPlist(v: ServiceValues): string {
  return fill(template(`${LAUNCHD_LABEL}.plist`), {
    LABEL: LAUNCHD_LABEL,
    NODE: xml(v.node),
    SCRIPT: xml(v.script),
    WX_HOME: xml(v.home),
    PATH: xml(v.pathEnv),
    LOG: xml(v.log),
  });
}

export function renderSystemdUnit(v: ServiceValues): string {
  for (const [k, s] of Object.entries(v)) {
    if (/[\n\r]/.test(s)) throw new WxError('service.bad_value', `cannot write a systemd unit: ${k} contains a line break`, { key: k });
  }
  return fill(template(SYSTEMD_UNIT), {
    NODE: sdQuoted(v.node),
    SCRIPT: sdQuoted(v.script),
    ENV_WX_HOME: sdQuoted(`WX_HOME=${v.home}`),
    ENV_PATH: sdQuoted(`PATH=${v.pathEnv}`),
    WX_HOME: sdPercent(v.home),
    LOG: sdPercent(v.log),
  });
}

/** The calls to the platform's service manager. */
export interface ServiceManager {
  readonly platform: ServicePlatform;
  /** Directory the service file goes in. */
  readonly dir: string;
  readonly fileName: string;
  /** Commands `load`/`unload` run, for --dry-run output. */
  describeLoad(file: string): string[][];
  describeUnload(file: string): string[][];
  load(file: string): Promise<void>;
  unload(file: string): Promise<void>;
  /** A human-readable state from the manager (e.g. `active`, or launchctl's summary). */
  state(): Promise<string>;
}

function run(cmd: string, args: string[], opts: { allowFail?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? Number((err as { code?: unknown }).code) : 1) : 0;
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new WxError('service.no_manager', `${cmd} is not available on this system`, { cmd }));
        return;
      }
      if (err && !opts.allowFail) {
        reject(new WxError('service.command_failed', `${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cmd }));
        return;
      }
      resolve({ code, stdout, stderr });
    });
  });
}

export function launchctlManager(uid = process.getuid?.() ?? 0): ServiceManager {
  const domain = `gui/${uid}`;
  return {
    platform: 'launchd',
    dir: path.join(os.homedir(), 'Library', 'LaunchAgents'),
    fileName: `${LAUNCHD_LABEL}.plist`,
    describeLoad: (file) => [['launchctl', 'bootstrap', domain, file]],
    describeUnload: () => [['launchctl', 'bootout', `${domain}/${LAUNCHD_LABEL}`]],
    async load(file) {
      // bootstrap fails when the label is already loaded: boot out the old definition first.
      await run('launchctl', ['bootout', `${domain}/${LAUNCHD_LABEL}`], { allowFail: true });
      await run('launchctl', ['bootstrap', domain, file]);
    },
    async unload() {
      await run('launchctl', ['bootout', `${domain}/${LAUNCHD_LABEL}`], { allowFail: true });
    },
    async state() {
      const r = await run('launchctl', ['print', `${domain}/${LAUNCHD_LABEL}`], { allowFail: true });
      if (r.code !== 0) return 'not loaded';
      return /state = (\S+)/.exec(r.stdout)?.[1] ?? 'loaded';
    },
  };
}

export function systemctlManager(): ServiceManager {
  const configHome = process.env.XDG_CONFIG_HOME && path.isAbsolute(process.env.XDG_CONFIG_HOME) ? process.env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return {
    platform: 'systemd',
    dir: path.join(configHome, 'systemd', 'user'),
    fileName: SYSTEMD_UNIT,
    describeLoad: () => [
      ['systemctl', '--user', 'daemon-reload'],
      ['systemctl', '--user', 'enable', '--now', SYSTEMD_UNIT],
    ],
    describeUnload: () => [
      ['systemctl', '--user', 'disable', '--now', SYSTEMD_UNIT],
      ['systemctl', '--user', 'daemon-reload'],
    ],
    async load() {
      await run('systemctl', ['--user', 'daemon-reload']);
      await run('systemctl', ['--user', 'enable', '--now', SYSTEMD_UNIT]);
    },
    async unload() {
      await run('systemctl', ['--user', 'disable', '--now', SYSTEMD_UNIT], { allowFail: true });
      await run('systemctl', ['--user', 'daemon-reload'], { allowFail: true });
    },
    async state() {
      const r = await run('systemctl', ['--user', 'is-active', SYSTEMD_UNIT], { allowFail: true });
      return r.stdout.trim() || 'unknown';
    },
  };
}

export function platformManager(): ServiceManager {
  if (process.platform === 'darwin') return launchctlManager();
  if (process.platform === 'linux') return systemctlManager();
  throw new WxError('service.unsupported', `wx service supports macOS (launchd) and Linux (systemd), not ${process.platform}`, { platform: process.platform });
}

export function renderFor(manager: ServiceManager, values: ServiceValues): string {
  return manager.platform === 'launchd' ? renderPlist(values) : renderSystemdUnit(values);
}

export interface InstallPlan {
  file: string;
  content: string;
  commands: string[][];
}

/** Writes the service file (atomically) and loads it; with dryRun only returns the plan. */
export async function installService(manager: ServiceManager, values: ServiceValues, opts: { dryRun?: boolean } = {}): Promise<InstallPlan> {
  const file = path.join(manager.dir, manager.fileName);
  const plan = { file, content: renderFor(manager, values), commands: manager.describeLoad(file) };
  if (opts.dryRun) return plan;
  if (!fs.existsSync(values.script)) throw new WxError('service.no_daemon', `the daemon script ${values.script} does not exist (run \`npm run build\`)`, { file: values.script });
  fs.mkdirSync(manager.dir, { recursive: true });
  fs.mkdirSync(path.dirname(values.log), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, plan.content, { mode: 0o644 });
  fs.renameSync(tmp, file);
  await manager.load(file);
  return plan;
}

/** Unloads the service and removes its file. Returns the file removed, or null if none was installed. */
export async function uninstallService(manager: ServiceManager, opts: { dryRun?: boolean } = {}): Promise<{ file: string; existed: boolean; commands: string[][] }> {
  const file = path.join(manager.dir, manager.fileName);
  const existed = fs.existsSync(file);
  const commands = manager.describeUnload(file);
  if (opts.dryRun || !existed) return { file, existed, commands };
  await manager.unload(file);
  fs.rmSync(file, { force: true });
  return { file, existed, commands };
}
