// Installed models (`$WX_HOME/models/<name>/manifest.json`), the default model, the short names
// users type (`tiny`, `turbo`, …), and `pullModel`: Hub download → import → install. The CLI
// calls these in-process and the daemon's models.* methods call the same functions.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../errors.js';
import { wxPaths } from '../paths.js';
import { readManifest, type ModelManifest, type Precision } from '../engine/manifest.js';
import { defaultModelName, importModel, MODEL_SIDE_FILES, type ImportPrecision, type InstalledModel } from '../engine/import.js';
import { downloadDirFor, downloadModelFiles, fetchRepoInfo, isRepoId, sha256OfFile, type DownloadProgress, type HubOptions } from './hub.js';
import { readConfig, updateConfig } from './config-file.js';
import type { ModelsList } from '../ipc/protocol.js';

/** Short names for the checkpoints people use; any other Hub repo id works too. */
export const MODEL_ALIASES: Readonly<Record<string, string>> = {
  tiny: 'openai/whisper-tiny',
  'tiny.en': 'openai/whisper-tiny.en',
  base: 'openai/whisper-base',
  'base.en': 'openai/whisper-base.en',
  small: 'openai/whisper-small',
  'small.en': 'openai/whisper-small.en',
  medium: 'openai/whisper-medium',
  'medium.en': 'openai/whisper-medium.en',
  'large-v2': 'openai/whisper-large-v2',
  'large-v3': 'openai/whisper-large-v3',
  large: 'openai/whisper-large-v3',
  turbo: 'openai/whisper-large-v3-turbo',
  'large-v3-turbo': 'openai/whisper-large-v3-turbo',
  'distil-large-v3': 'distil-whisper/distil-large-v3',
  'distil-large-v3.5': 'distil-whisper/distil-large-v3.5',
  'distil-large-v2': 'distil-whisper/distil-large-v2',
  'distil-medium.en': 'distil-whisper/distil-medium.en',
  'distil-small.en': 'distil-whisper/distil-small.en',
};

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface InstalledInfo extends InstalledModel {
  /** Bytes on disk of the whole directory. */
  diskBytes: number;
}

/** The manifest of `dir`, or undefined when it is not an installed model. */
function manifestOf(dir: string): ModelManifest | undefined {
  try {
    return readManifest(dir);
  } catch {
    return undefined;
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return total;
}

/** Every installed model, by name. Temp directories of imports and downloads in progress
 *  (dot-names) and directories without a manifest are never listed. */
export function listInstalled(home: string): InstalledInfo[] {
  const models = wxPaths(home).models;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(models, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: InstalledInfo[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.') || !NAME_RE.test(e.name)) continue;
    const dir = path.join(models, e.name);
    const manifest = manifestOf(dir);
    // The importer renames a replaced model aside for a moment (`<name>.old-<pid>`): its
    // manifest still names the original.
    if (!manifest || manifest.name !== e.name) continue;
    out.push({ name: e.name, dir, manifest, diskBytes: dirBytes(dir) });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export interface PendingDownload {
  /** `<repo>@<revision>` (with `/` as `_`), as the download directory is named. */
  key: string;
  dir: string;
  bytes: number;
}

/** Downloads left by interrupted pulls (`models/.downloads/*`): the same pull resumes them. */
export function listDownloads(home: string): PendingDownload[] {
  const root = path.join(wxPaths(home).models, '.downloads');
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => ({ key: e.name, dir: path.join(root, e.name), bytes: dirBytes(path.join(root, e.name)) }));
}

export function installedModel(home: string, name: string): InstalledModel | undefined {
  if (!NAME_RE.test(name)) return undefined;
  const dir = path.join(wxPaths(home).models, name);
  const manifest = manifestOf(dir);
  return manifest && manifest.name === name ? { name, dir, manifest } : undefined;
}

/** The Hub repo a name stands for: an alias, or a repo id given as is. */
export function repoFor(aliasOrRepo: string): string | undefined {
  if (Object.hasOwn(MODEL_ALIASES, aliasOrRepo)) return MODEL_ALIASES[aliasOrRepo];
  return aliasOrRepo.includes('/') && isRepoId(aliasOrRepo) ? aliasOrRepo : undefined;
}

function checkPrecision(m: InstalledModel, precision: Precision | undefined): void {
  if (precision && !m.manifest.precisions.includes(precision)) {
    throw new WxError(
      'model.precision_missing',
      `model ${m.name} has no ${precision} graphs (it has ${m.manifest.precisions.join(', ')}); re-install it with --precision ${precision} or both`,
      { model: m.name, precision },
    );
  }
}

export interface ResolveOptions {
  home: string;
  precision?: Precision;
  onProgress?: (p: { step: string; fraction: number }) => void;
}

/** The installed directory for an installed name, an alias or repo id that is installed, an
 *  installed model's directory, or a Hugging Face model directory (imported on first use and
 *  reused afterwards as long as its files are the same). */
export async function resolveModel(nameOrDir: string, opts: ResolveOptions): Promise<InstalledModel> {
  const { home, precision } = opts;
  const asPath = path.resolve(nameOrDir);
  const looksLikePath = nameOrDir.startsWith('.') || nameOrDir.startsWith('/') || !installedModel(home, nameOrDir);
  if (looksLikePath && fs.existsSync(asPath) && fs.statSync(asPath).isDirectory()) {
    const manifest = manifestOf(asPath);
    if (manifest) {
      const m = { name: manifest.name, dir: asPath, manifest };
      checkPrecision(m, precision);
      return m;
    }
    if (fs.existsSync(path.join(asPath, 'config.json'))) return await importCached(asPath, opts);
    throw new WxError('model.not_a_model', `${asPath} is neither an installed wx model (no manifest.json) nor a Hugging Face model directory (no config.json)`, { file: asPath });
  }
  const installed = installedModel(home, nameOrDir);
  if (installed) {
    checkPrecision(installed, precision);
    return installed;
  }
  const repo = repoFor(nameOrDir);
  if (repo) {
    const same = listInstalled(home).find((m) => m.manifest.source === repo && (!precision || m.manifest.precisions.includes(precision)));
    if (same) return { name: same.name, dir: same.dir, manifest: same.manifest };
    throw new WxError('model.not_installed', `model ${nameOrDir} is not installed; run: wx models pull ${nameOrDir}`, { model: nameOrDir, repo });
  }
  throw new WxError('model.unknown', `no model ${JSON.stringify(nameOrDir)}: not an installed name, an alias (${Object.keys(MODEL_ALIASES).join(', ')}), a Hub repo id or a model directory`, { model: nameOrDir });
}

/** The files of a Hugging Face directory that make up the model, as the importer hashes them. */
function modelInputFiles(dir: string): string[] {
  const entries = fs.readdirSync(dir);
  return entries
    .filter((f) => MODEL_SIDE_FILES.includes(f) || f.endsWith('.safetensors') || f === 'model.safetensors.index.json')
    .sort();
}

const LOCAL_CACHE = '.local-imports.json';

function readLocalCache(home: string): Record<string, string> {
  try {
    return JSON.parse(fs.readFileSync(path.join(wxPaths(home).models, LOCAL_CACHE), 'utf8')) as Record<string, string>;
  } catch {
    return {};
  }
}

function writeLocalCache(home: string, cache: Record<string, string>): void {
  const file = path.join(wxPaths(home).models, LOCAL_CACHE);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(cache, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

/** A cheap key for "the same files as last time": path, size, mtime and inode of every input. */
function statFingerprint(dir: string, files: string[]): string {
  const h = crypto.createHash('sha256').update(dir);
  for (const f of files) {
    const st = fs.statSync(path.join(dir, f));
    h.update(`\0${f}\0${st.size}\0${st.mtimeMs}\0${st.ino}`);
  }
  return h.digest('hex');
}

async function importCached(dir: string, opts: ResolveOptions): Promise<InstalledModel> {
  const { home } = opts;
  const files = modelInputFiles(dir);
  const fingerprint = statFingerprint(dir, files);
  const cache = readLocalCache(home);
  const want = (m: InstalledModel) => !opts.precision || m.manifest.precisions.includes(opts.precision);
  const hit = cache[fingerprint] ? installedModel(home, cache[fingerprint]) : undefined;
  if (hit && want(hit)) return hit;

  // Same content under another path (a copy, a re-download): compare with what each installed
  // model was imported from.
  const inputs: Record<string, string> = {};
  for (const f of files) inputs[f] = await sha256OfFile(path.join(dir, f));
  const sameInputs = (m: ModelManifest) => {
    const keys = Object.keys(m.inputs ?? {}).sort();
    return keys.length === files.length && keys.every((k, i) => k === files[i] && m.inputs[k] === inputs[k]);
  };
  const installed = listInstalled(home);
  const match = installed.find((m) => sameInputs(m.manifest) && want(m));
  let result: InstalledModel;
  if (match) {
    result = { name: match.name, dir: match.dir, manifest: match.manifest };
  } else {
    const stale = installed.find((m) => sameInputs(m.manifest));
    const contentTag = crypto.createHash('sha256').update(files.map((f) => `${f}:${inputs[f]}`).join('\n')).digest('hex').slice(0, 8);
    const base = defaultModelName(dir);
    const name = stale ? stale.name : installed.some((m) => m.name === base) ? `${base}-${contentTag}` : base;
    // A cached import that lacks the precision asked for is rebuilt with both.
    const precision: ImportPrecision = stale ? 'both' : (opts.precision ?? 'int8');
    result = await importModel(dir, { home, name, precision, force: !!stale, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
  }
  updateLocalCache(home, fingerprint, result.name);
  return result;
}

function updateLocalCache(home: string, fingerprint: string, name: string): void {
  const cache = readLocalCache(home);
  cache[fingerprint] = name;
  writeLocalCache(home, cache);
}

/** Removes an installed model: renamed aside first so it disappears at once, then deleted. */
export function removeModel(home: string, name: string): { name: string; wasDefault: boolean } {
  const m = installedModel(home, name);
  if (!m) throw new WxError('model.not_installed', `no installed model named ${JSON.stringify(name)} (see wx models ls)`, { model: name });
  const aside = path.join(wxPaths(home).models, `.removing-${name}-${process.pid}`);
  fs.renameSync(m.dir, aside);
  fs.rmSync(aside, { recursive: true, force: true });
  let wasDefault = false;
  updateConfig(home, (cfg) => {
    if (cfg.model === name) {
      delete cfg.model;
      wasDefault = true;
    }
  });
  const cache = readLocalCache(home);
  const kept = Object.fromEntries(Object.entries(cache).filter(([, n]) => n !== name));
  if (Object.keys(kept).length !== Object.keys(cache).length) writeLocalCache(home, kept);
  return { name, wasDefault };
}

export interface DefaultModel {
  /** What was configured: an installed name, an alias or a model directory. */
  model: string;
  from: 'WX_MODEL' | 'config' | 'only installed model';
}

/** The default model: `WX_MODEL`, else `model` in config.json, else the one installed model. */
export function getDefaultModel(home: string, env: NodeJS.ProcessEnv = process.env): DefaultModel | undefined {
  if (env.WX_MODEL?.trim()) return { model: env.WX_MODEL.trim(), from: 'WX_MODEL' };
  const cfg = readConfig(home);
  if (typeof cfg.model === 'string' && cfg.model) return { model: cfg.model, from: 'config' };
  const installed = listInstalled(home);
  return installed.length === 1 ? { model: installed[0]!.name, from: 'only installed model' } : undefined;
}

/** Sets `model` in config.json to an installed model (named directly or by alias/repo id). */
export async function setDefaultModel(home: string, nameOrAlias: string): Promise<InstalledModel> {
  const m = await resolveModel(nameOrAlias, { home });
  updateConfig(home, (cfg) => {
    cfg.model = m.name;
  });
  return m;
}

export type PullProgress =
  | ({ phase: 'download' } & DownloadProgress)
  | { phase: 'import'; step: string; fraction: number }
  | { phase: 'done' };

export interface PullOptions extends HubOptions {
  home: string;
  revision?: string;
  precision?: ImportPrecision;
  /** Installed name; default: the alias, or the repo's name (`openai/whisper-tiny` → `whisper-tiny`). */
  name?: string;
  /** Download and import again even when the same model is installed. */
  force?: boolean;
  retries?: number;
  retryDelayMs?: number;
  onProgress?: (p: PullProgress) => void;
}

export interface PullResult extends InstalledModel {
  repo: string;
  /** True when nothing was downloaded because the same model is installed. */
  alreadyInstalled: boolean;
  bytesTotal: number;
  bytesFetched: number;
}

/** Hub download → import → install, then the downloaded files are removed. */
export async function pullModel(aliasOrRepo: string, opts: PullOptions): Promise<PullResult> {
  const repo = repoFor(aliasOrRepo);
  if (!repo) {
    throw new WxError('model.unknown', `${JSON.stringify(aliasOrRepo)} is neither a known model (${Object.keys(MODEL_ALIASES).join(', ')}) nor a Hub repo id (owner/name)`, { model: aliasOrRepo });
  }
  const name = opts.name ?? (Object.hasOwn(MODEL_ALIASES, aliasOrRepo) ? aliasOrRepo : defaultModelName(repo));
  if (!NAME_RE.test(name)) throw new WxError('model.bad_name', `invalid model name ${JSON.stringify(name)} (letters, digits, . _ - only)`, { name });
  const precisions: Precision[] = opts.precision === 'both' ? ['int8', 'fp32'] : [opts.precision ?? 'int8'];
  const revision = opts.revision ?? 'main';
  const hubOpts: HubOptions = {
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.token ? { token: opts.token } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  // Without --name, a model already installed from the same repo under another name counts.
  const existing = installedModel(opts.home, name) ?? (opts.name ? undefined : listInstalled(opts.home).find((m) => m.manifest.source === repo));
  if (existing && !opts.force) {
    if (existing.manifest.source !== repo) {
      throw new WxError('model.exists', `a model named ${name} is already installed from ${existing.manifest.source}; pick another --name or remove it first`, { name, repo });
    }
    if (precisions.every((p) => existing.manifest.precisions.includes(p))) {
      const installedCommit = existing.manifest.revision ?? '';
      // A commit id is compared as is; a branch or tag costs one listing request to see where it points now.
      const upToDate = /^[0-9a-f]{7,40}$/.test(revision)
        ? installedCommit.startsWith(revision)
        : installedCommit === (await fetchRepoInfo(repo, revision, hubOpts)).commit;
      if (upToDate) {
        opts.onProgress?.({ phase: 'done' });
        return { name: existing.name, dir: existing.dir, manifest: existing.manifest, repo, alreadyInstalled: true, bytesTotal: 0, bytesFetched: 0 };
      }
    }
  }
  const installName = existing && !opts.name ? existing.name : name;
  // Replacing an installed model keeps the precisions it had.
  const replaced = installedModel(opts.home, installName);
  const keep = replaced?.manifest.source === repo ? replaced.manifest.precisions : [];
  const allPrecisions = new Set<Precision>([...precisions, ...keep]);
  const importPrecision: ImportPrecision = allPrecisions.size > 1 ? 'both' : [...allPrecisions][0]!;

  const download = await downloadModelFiles(repo, {
    home: opts.home,
    revision,
    ...hubOpts,
    ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
    ...(opts.retryDelayMs !== undefined ? { retryDelayMs: opts.retryDelayMs } : {}),
    onProgress: (p) => opts.onProgress?.({ phase: 'download', ...p }),
  });
  if (opts.signal?.aborted) throw new WxError('hub.aborted', `pull of ${repo} cancelled before conversion; the download is kept`, { repo });
  const installed = await importModel(download.dir, {
    home: opts.home,
    name: installName,
    precision: importPrecision,
    source: repo,
    revision: download.commit,
    force: replaced !== undefined,
    onProgress: (p) => opts.onProgress?.({ phase: 'import', ...p }),
  });
  fs.rmSync(downloadDirFor(opts.home, repo, revision), { recursive: true, force: true });
  opts.onProgress?.({ phase: 'done' });
  return { ...installed, repo, alreadyInstalled: false, bytesTotal: download.bytesTotal, bytesFetched: download.bytesFetched };
}

/** What `wx models ls` shows (the `models.ls` reply): installed models with the default marked,
 *  the default and where it comes from, interrupted downloads, the aliases. */
export function modelsOverview(home: string): ModelsList {
  const def = getDefaultModel(home) ?? null;
  return {
    installed: listInstalled(home).map((m) => ({
      name: m.name,
      dir: m.dir,
      precisions: m.manifest.precisions,
      isDefault: def !== null && (m.name === def.model || m.dir === def.model),
      source: m.manifest.source,
      revision: m.manifest.revision ?? null,
      sizeBytes: m.diskBytes,
      importedAt: m.manifest.importedAt,
    })),
    default: def,
    downloads: listDownloads(home),
    aliases: { ...MODEL_ALIASES },
  };
}
