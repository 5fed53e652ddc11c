#!/usr/bin/env node
// Builds everything a fresh clone needs, offline: better-sqlite3 from source against the
// installed Node's headers (when no working binary is present), the wx native addon with
// cmake-js (Node-API headers from the node-api-headers package), and the TypeScript.
// Run by `npm install` (prepare) and `npm run build` (--force rebuilds the addon).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const force = process.argv.includes('--force');

function run(step, cmd, args, cwd = root) {
  process.stderr.write(`wx setup: ${step}\n`);
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit', env: process.env });
  if (r.status !== 0) {
    process.stderr.write(`wx setup: ${step} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(1);
  }
}

// The installed Node's own headers, so node-gyp never downloads them.
function localNodeDir() {
  const candidates = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..')];
  for (const dir of candidates) {
    if (dir && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) return dir;
  }
  return null;
}

function sqliteWorks() {
  const r = spawnSync(process.execPath, ['-e', "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()"], { cwd: root, stdio: 'ignore' });
  return r.status === 0;
}

function buildSqlite() {
  if (sqliteWorks()) return;
  const nodeDir = localNodeDir();
  if (!nodeDir) {
    process.stderr.write('wx setup: better-sqlite3 needs Node\'s C headers (include/node/node_api.h) next to the node binary; ' +
      'install Node from nodejs.org, Homebrew or your distribution\'s nodejs-dev package, or set npm_config_nodedir.\n');
    process.exit(1);
  }
  const gyp = require.resolve('node-gyp/bin/node-gyp.js');
  const pkgDir = path.dirname(require.resolve('better-sqlite3/package.json'));
  run(`building better-sqlite3 from source (headers: ${nodeDir})`, process.execPath, [gyp, 'rebuild', '--release', `--nodedir=${nodeDir}`], pkgDir);
  if (!sqliteWorks()) {
    process.stderr.write('wx setup: better-sqlite3 was built but does not load\n');
    process.exit(1);
  }
}

function buildAddon() {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const args = [cmakeJs, force ? 'rebuild' : 'compile', '--out', 'build'];
  run('building the native addon (cmake-js)', process.execPath, args);
}

function buildTs() {
  run('compiling TypeScript', process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json']);
}

buildSqlite();
buildAddon();
buildTs();
