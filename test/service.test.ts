// wx service: the generated LaunchAgent plist and systemd unit (checked by real parsers:
// Python's plistlib and systemd-analyze), and install/uninstall file handling with the
// service-manager calls (launchctl/systemctl) behind the ServiceManager interface.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { installService, renderPlist, renderSystemdUnit, serviceValues, uninstallService, type ServiceManager, type ServiceValues } from '../cli/service.js';
import { tempHome, wx } from './daemon-helpers.js';

const dirs: string[] = [];
function tmp(): string {
  const d = tempHome();
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Values with every character the formats must escape. */
function awkwardValues(root: string): ServiceValues {
  const home = path.join(root, 'my wx & <data> "quoted" 100%$HOME');
  return { ...serviceValues(home), pathEnv: '/opt/a b/bin:/usr/bin' };
}

describe('service files', () => {
  it('the plist parses (plistlib) to exactly the resolved values', () => {
    const v = awkwardValues(tmp());
    const plist = renderPlist(v);
    const parsed = JSON.parse(
      execFileSync('python3', ['-c', 'import json,plistlib,sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))'], { input: plist }).toString(),
    );
    expect(parsed.Label).toBe('com.wx.daemon');
    expect(parsed.ProgramArguments).toEqual([process.execPath, v.script]);
    expect(parsed.EnvironmentVariables).toEqual({ WX_HOME: v.home, PATH: v.pathEnv });
    expect(parsed.RunAtLoad).toBe(true);
    expect(parsed.KeepAlive).toEqual({ SuccessfulExit: false });
    expect(parsed.StandardOutPath).toBe(v.log);
    expect(parsed.StandardErrorPath).toBe(v.log);
    expect(parsed.WorkingDirectory).toBe(v.home);
  });

  it('the systemd unit passes systemd-analyze verify and quotes every value', () => {
    const root = tmp();
    const v = awkwardValues(root);
    fs.mkdirSync(path.dirname(v.log), { recursive: true });
    const unit = renderSystemdUnit(v);
    const file = path.join(root, 'wx.service');
    fs.writeFileSync(file, unit);
    expect(process.platform).toBe('linux');
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    expect(r.error, 'systemd-analyze must be installed on Linux CI').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('');
    expect(unit).toContain(`ExecStart="${process.execPath}" "${v.script}"`);
    // % doubled (specifier), $ doubled (variable), " and \ escaped inside the quotes.
    expect(unit).toContain(`Environment="WX_HOME=${v.home.replace(/%/g, '%%').replace(/"/g, '\\"').replace(/\$/g, '$$$$')}"`);
    expect(unit).toContain('Restart=on-failure');
    expect(unit).toContain('WantedBy=default.target');
    expect(() => renderSystemdUnit({ ...v, home: '/a\nExecStartPre=/bin/evil' })).toThrow(/line break/);
  });
});

function fakeManager(dir: string): ServiceManager & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    platform: 'systemd',
    dir,
    fileName: 'wx.service',
    describeLoad: () => [['systemctl', '--user', 'enable', '--now', 'wx.service']],
    describeUnload: () => [['systemctl', '--user', 'disable', '--now', 'wx.service']],
    load: async (file) => void calls.push(['load', file]),
    unload: async (file) => void calls.push(['unload', file]),
    state: async () => 'active',
  };
}

describe('install and uninstall', () => {
  it('writes the unit atomically, loads it, and uninstall unloads and removes it', async () => {
    const root = tmp();
    const unitDir = path.join(root, 'config', 'systemd', 'user');
    const m = fakeManager(unitDir);
    const v = serviceValues(path.join(root, 'home'));
    const dry = await installService(m, v, { dryRun: true });
    expect(fs.existsSync(unitDir)).toBe(false);
    expect(m.calls).toEqual([]);

    const plan = await installService(m, v);
    expect(plan.file).toBe(path.join(unitDir, 'wx.service'));
    expect(fs.readFileSync(plan.file, 'utf8')).toBe(dry.content);
    expect(fs.statSync(plan.file).mode & 0o777).toBe(0o644);
    expect(fs.readdirSync(unitDir)).toEqual(['wx.service']);
    expect(m.calls).toEqual([['load', plan.file]]);

    const again = await installService(m, v);
    expect(again.file).toBe(plan.file);
    expect(m.calls).toHaveLength(2);

    const removed = await uninstallService(m);
    expect(removed.existed).toBe(true);
    expect(fs.existsSync(plan.file)).toBe(false);
    expect(m.calls[2]).toEqual(['unload', plan.file]);

    const nothing = await uninstallService(m);
    expect(nothing.existed).toBe(false);
    expect(m.calls).toHaveLength(3);
  });

  it('refuses to install when the daemon script is missing', async () => {
    const root = tmp();
    const m = fakeManager(path.join(root, 'units'));
    await expect(installService(m, { ...serviceValues(root), script: path.join(root, 'nope.js') })).rejects.toThrow(/does not exist/);
    expect(m.calls).toEqual([]);
  });

  it('wx service install --dry-run prints the unit for this machine and writes nothing', async () => {
    const root = tmp();
    const home = path.join(root, 'wxhome');
    const r = await wx(home, ['service', 'install', '--dry-run'], { HOME: root, XDG_CONFIG_HOME: path.join(root, 'cfg') });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`# would write ${path.join(root, 'cfg', 'systemd', 'user', 'wx.service')}`);
    expect(r.stdout).toContain(`ExecStart="${process.execPath}"`);
    expect(r.stdout).toContain(`Environment="WX_HOME=${home}"`);
    expect(r.stdout).toContain('systemctl --user enable --now wx.service');
    expect(fs.existsSync(path.join(root, 'cfg'))).toBe(false);
    const st = await wx(home, ['service', 'status', '--json'], { HOME: root, XDG_CONFIG_HOME: path.join(root, 'cfg') });
    expect(JSON.parse(st.stdout)).toMatchObject({ platform: 'systemd', installed: false });
  });
});
