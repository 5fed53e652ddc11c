// config.json validation and the rotating JSON-lines log.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultConfig, loadConfig } from '../daemon/config.js';
import { WxError } from '../daemon/errors.js';
import { Logger } from '../daemon/log.js';
import { tempHome } from './daemon-helpers.js';

const dirs: string[] = [];
const dir = () => {
  const d = tempHome();
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('config.json', () => {
  it('a missing or empty file means the defaults; WX_MODEL overrides the model', () => {
    const d = dir();
    const file = path.join(d, 'config.json');
    expect(loadConfig(file, {})).toEqual(defaultConfig());
    fs.writeFileSync(file, '  \n');
    expect(loadConfig(file, {})).toEqual(defaultConfig());
    fs.writeFileSync(file, JSON.stringify({ model: 'base.en' }));
    expect(loadConfig(file, {}).model).toBe('base.en');
    expect(loadConfig(file, { WX_MODEL: '/models/tiny' }).model).toBe('/models/tiny');
  });

  it('nested keys merge over the defaults', () => {
    const file = path.join(dir(), 'config.json');
    fs.writeFileSync(file, JSON.stringify({ vad: { threshold: 0.6 }, jobs: { maxAttempts: 5 }, formats: ['srt', 'vtt'] }));
    const c = loadConfig(file, {});
    expect(c.vad).toEqual({ ...defaultConfig().vad, threshold: 0.6 });
    expect(c.jobs.maxAttempts).toBe(5);
    expect(c.jobs.retryBaseMs).toBe(defaultConfig().jobs.retryBaseMs);
    expect(c.formats).toEqual(['srt', 'vtt']);
  });

  it.each([
    ['{"precision": "fp16"}', /"precision" must be one of int8, fp32 \(got "fp16"\)/, 'config.invalid'],
    ['{"vad": {"treshold": 0.5}}', /unknown key "vad.treshold"/, 'config.unknown_key'],
    ['{"threads": 0}', /"threads" must be an integer from 1 to 256/, 'config.invalid'],
    ['{"beamSize": 9}', /"beamSize" must be an integer from 1 to 8/, 'config.invalid'],
    ['{"vad": {"maxSilenceS": -1}}', /"vad.maxSilenceS" must be a number from 0 to 30/, 'config.invalid'],
    ['{"jobs": {"maxAttempts": 2.5}}', /"jobs.maxAttempts" must be an integer/, 'config.invalid'],
    ['{"idleReleaseS": -1}', /"idleReleaseS" must be a number from 0 to 86400/, 'config.invalid'],
    ['{"formats": ["txt", "docx"]}', /"formats" must be an array of txt, srt, vtt, json/, 'config.invalid'],
    ['[1, 2]', /must be an object/, 'config.invalid'],
    ['{"model": 1', /is not valid JSON/, 'config.parse'],
  ])('%s is refused with a clear message', (text, message, code) => {
    const file = path.join(dir(), 'config.json');
    fs.writeFileSync(file, text);
    let err: unknown;
    try {
      loadConfig(file, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WxError);
    expect((err as WxError).code).toBe(code);
    expect((err as WxError).message).toMatch(message);
    expect((err as WxError).message).toContain(file);
  });
});

describe('daemon log', () => {
  it('writes JSON lines, filters by level, and rotates by size keeping N files', () => {
    const d = dir();
    const file = path.join(d, 'logs', 'daemon.log');
    const log = new Logger(file, { level: 'info', maxBytes: 2000, keep: 2 });
    log.debug('not written');
    for (let i = 0; i < 100; i++) log.info('line', { i, pad: 'x'.repeat(40) });
    log.close();
    const files = fs.readdirSync(path.dirname(file)).sort();
    expect(files).toEqual(['daemon.log', 'daemon.log.1', 'daemon.log.2']);
    const lines = files.flatMap((f) => fs.readFileSync(path.join(d, 'logs', f), 'utf8').trim().split('\n')).map((l) => JSON.parse(l));
    expect(lines.every((l) => l.msg === 'line' && l.level === 'info' && typeof l.t === 'string' && l.pid === process.pid)).toBe(true);
    for (const f of files) expect(fs.statSync(path.join(d, 'logs', f)).size).toBeLessThanOrEqual(2000);
    // The newest lines are in daemon.log, the last one is the 99th.
    const current = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(current.at(-1).i).toBe(99);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });
});
