// A Hugging Face Hub client for fetching Whisper checkpoints: lists a repo at a revision, picks
// only the files the importer reads, and downloads them resumably and verified.
//
// Layout on disk while a pull runs: `$WX_HOME/models/.downloads/<repo@rev>/` holds finished
// files under their own names (each with a `.verified` marker naming the hash it matched) and
// unfinished ones as `<file>.partial` + `<file>.partial.json` (the hash expected and the ETag the
// bytes came from, so a resume after the repo moved on never splices two versions together).
// The directory survives interruptions; pullModel removes it after a successful import.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { WxError } from '../errors.js';
import { wxPaths } from '../paths.js';
import { createLockFile } from './config-file.js';

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const raw = env.HF_ENDPOINT?.trim() || DEFAULT_HF_ENDPOINT;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WxError('hub.bad_endpoint', `HF_ENDPOINT is not a URL: ${JSON.stringify(raw)}`, { endpoint: raw });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new WxError('hub.bad_endpoint', `HF_ENDPOINT must be an http(s) URL, got ${raw}`, { endpoint: raw });
  }
  return raw.replace(/\/+$/, '');
}

export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = env.HF_TOKEN?.trim() || env.HUGGING_FACE_HUB_TOKEN?.trim();
  return t ? t : undefined;
}

export interface HubOptions {
  /** Default: `HF_ENDPOINT` or the public Hub. */
  endpoint?: string;
  /** Default: `HF_TOKEN`. Sent only to the endpoint's own origin, never to a CDN it redirects to. */
  token?: string;
  signal?: AbortSignal;
}

export interface HubFile {
  /** Path inside the repo (`model.safetensors`). */
  path: string;
  size?: number;
  /** Git blob id: for regular files, sha1("blob <size>\0" + content). */
  blobId?: string;
  /** For LFS files: the sha256 of the content. */
  lfsSha256?: string;
}

export interface HubRepoInfo {
  repo: string;
  /** The revision asked for (branch, tag or commit). */
  revision: string;
  /** The commit it resolved to; downloads use it so every file comes from the same snapshot. */
  commit: string;
  files: HubFile[];
  gated?: boolean | string;
}

const REPO_RE = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)?[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isRepoId(s: string): boolean {
  return REPO_RE.test(s) && !s.includes('..');
}

function checkRepo(repo: string): void {
  if (!isRepoId(repo)) {
    throw new WxError('hub.bad_repo', `not a Hugging Face repo id: ${JSON.stringify(repo)} (expected owner/name, e.g. openai/whisper-tiny)`, { repo });
  }
}

function encodePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

export function resolveUrl(endpoint: string, repo: string, revision: string, file: string): string {
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(file)}`;
}

/** Turns a failed Hub response into an error a user can act on. */
function httpError(res: Response, what: { repo: string; revision: string; file?: string; url: string; token: boolean }): WxError {
  const code = res.headers.get('x-error-code') ?? '';
  const hubMessage = res.headers.get('x-error-message') ?? '';
  const target = `${what.repo}@${what.revision}${what.file ? ` (${what.file})` : ''}`;
  const ctx = { repo: what.repo, revision: what.revision, file: what.file, url: what.url, status: res.status, hubCode: code || undefined };
  const detail = hubMessage ? ` — the Hub says: ${hubMessage}` : '';
  if (res.status === 404) {
    const which = code === 'RevisionNotFound' ? 'no such revision' : code === 'EntryNotFound' ? 'no such file' : 'no such model or revision';
    return new WxError('hub.not_found', `${which}: ${target} (404 from ${what.url})${detail}`, ctx);
  }
  if (res.status === 401 || res.status === 403) {
    const why = code === 'GatedRepo' || res.status === 403
      ? `${what.repo} is gated or private: accept its terms on its Hub page with your account, then set HF_TOKEN to a token of that account`
      : what.token
        ? `the Hub refused the token in HF_TOKEN for ${what.repo}: it is invalid or has no access (gated or private repo)`
        : `${what.repo} needs authentication (a gated or private repo, or none of that name): set HF_TOKEN to a Hugging Face access token`;
    return new WxError('hub.unauthorized', `${why} (${res.status} from ${what.url})${detail}`, ctx);
  }
  if (res.status === 429) {
    return new WxError('hub.server', `the Hub is rate-limiting requests for ${target} (429); try again in a minute${detail}`, ctx);
  }
  if (res.status >= 500) {
    return new WxError('hub.server', `the Hub failed serving ${target} (${res.status} from ${what.url}); try again later${detail}`, ctx);
  }
  return new WxError('hub.http', `unexpected HTTP ${res.status} from ${what.url} for ${target}${detail}`, ctx);
}

function networkError(err: unknown, url: string, what: string): WxError {
  if (isAbort(err)) return new WxError('hub.aborted', `${what}: cancelled`, { url });
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const reason = cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
  return new WxError('hub.network', `${what}: network error talking to ${new URL(url).origin}: ${reason}`, { url, reason }, { cause: err });
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError';
}

/** GET with redirects followed by hand: the Authorization header must not leak to another origin
 *  (LFS files redirect to a CDN), and the Hub's first answer carries the X-Linked-* headers. */
async function hubFetch(
  url: string,
  init: { headers: Record<string, string>; signal?: AbortSignal; authOrigin: string; token?: string },
  what: string,
): Promise<{ res: Response; finalUrl: string; linked: { etag?: string; size?: number } }> {
  const linked: { etag?: string; size?: number } = {};
  let current = url;
  for (let hop = 0; hop < 10; hop++) {
    const headers: Record<string, string> = { ...init.headers, 'user-agent': 'wx (speech-to-text; node)' };
    if (init.token && new URL(current).origin === init.authOrigin) headers.authorization = `Bearer ${init.token}`;
    let res: Response;
    try {
      res = await fetch(current, { headers, redirect: 'manual', ...(init.signal ? { signal: init.signal } : {}) });
    } catch (err) {
      throw networkError(err, current, what);
    }
    const le = res.headers.get('x-linked-etag');
    if (le && linked.etag === undefined) linked.etag = le.replace(/^W\//, '').replace(/"/g, '');
    const ls = res.headers.get('x-linked-size');
    if (ls && linked.size === undefined) linked.size = Number(ls);
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel().catch(() => {});
      current = new URL(res.headers.get('location')!, current).toString();
      continue;
    }
    return { res, finalUrl: current, linked };
  }
  throw new WxError('hub.http', `${what}: too many redirects from ${url}`, { url });
}

/** A listing request, retried twice after a network error (a kept-alive connection the server
 *  closed just then shows up as ECONNRESET); HTTP errors are answers and are not retried. */
async function fetchListing(url: string, init: { signal?: AbortSignal; authOrigin: string; token?: string }, what: string): ReturnType<typeof hubFetch> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await hubFetch(url, { headers: { accept: 'application/json' }, ...init }, what);
    } catch (err) {
      if (!(err instanceof WxError) || err.code !== 'hub.network' || attempt >= 2) throw err;
      await sleep(200 * (attempt + 1), init.signal);
    }
  }
}

interface ApiSibling {
  rfilename?: string;
  size?: number;
  blobId?: string;
  lfs?: { sha256?: string; oid?: string; size?: number };
}

/** `GET /api/models/{repo}/revision/{rev}?blobs=true`: the commit and every file with its hashes. */
export async function fetchRepoInfo(repo: string, revision = 'main', opts: HubOptions = {}): Promise<HubRepoInfo> {
  checkRepo(repo);
  const endpoint = opts.endpoint ?? hubEndpoint();
  const token = opts.token ?? hubToken();
  const url = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const { res } = await fetchListing(url, { signal: opts.signal, authOrigin: new URL(endpoint).origin, token }, `listing ${repo}@${revision}`);
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw httpError(res, { repo, revision, url, token: !!token });
  }
  let body: { sha?: string; siblings?: ApiSibling[]; gated?: boolean | string };
  try {
    body = (await res.json()) as typeof body;
  } catch (err) {
    throw new WxError('hub.bad_response', `the Hub's listing of ${repo}@${revision} is not JSON (${url})`, { repo, revision, url }, { cause: err });
  }
  if (!Array.isArray(body.siblings)) {
    throw new WxError('hub.bad_response', `the Hub's listing of ${repo}@${revision} has no file list (${url})`, { repo, revision, url });
  }
  const files: HubFile[] = body.siblings
    .filter((s): s is ApiSibling & { rfilename: string } => typeof s.rfilename === 'string')
    .map((s) => ({
      path: s.rfilename,
      ...(typeof s.size === 'number' ? { size: s.size } : typeof s.lfs?.size === 'number' ? { size: s.lfs.size } : {}),
      ...(s.blobId ? { blobId: s.blobId } : {}),
      ...(s.lfs?.sha256 || s.lfs?.oid ? { lfsSha256: (s.lfs.sha256 ?? s.lfs.oid)!.replace(/^sha256:/, '') } : {}),
    }));
  const commit = typeof body.sha === 'string' && /^[0-9a-f]{40}$/.test(body.sha) ? body.sha : revision;
  // A mirror that ignores `blobs=true` lists names only: the tree API has the sizes and hashes.
  if (files.some((f) => f.size === undefined && !f.path.includes('/'))) {
    const tree = await fetchRootTree(repo, commit, { endpoint, ...(token ? { token } : {}), ...(opts.signal ? { signal: opts.signal } : {}) }, revision);
    for (const f of files) {
      const t = tree.get(f.path);
      if (!t) continue;
      if (f.size === undefined && t.size !== undefined) f.size = t.size;
      if (!f.blobId && t.blobId) f.blobId = t.blobId;
      if (!f.lfsSha256 && t.lfsSha256) f.lfsSha256 = t.lfsSha256;
    }
  }
  return { repo, revision, commit, files, ...(body.gated !== undefined ? { gated: body.gated } : {}) };
}

interface TreeEntry {
  type?: string;
  path?: string;
  oid?: string;
  size?: number;
  lfs?: { oid?: string; sha256?: string; size?: number };
}

/** `GET /api/models/{repo}/tree/{rev}`: the repo's root entries, following `Link: rel="next"` pages. */
export async function fetchRootTree(repo: string, revision: string, opts: HubOptions = {}, shownRevision = revision): Promise<Map<string, HubFile>> {
  checkRepo(repo);
  const endpoint = opts.endpoint ?? hubEndpoint();
  const token = opts.token ?? hubToken();
  const out = new Map<string, HubFile>();
  let url: string | undefined = `${endpoint}/api/models/${repo}/tree/${encodeURIComponent(revision)}`;
  for (let page = 0; url && page < 100; page++) {
    const { res }: { res: Response } = await fetchListing(url, { signal: opts.signal, authOrigin: new URL(endpoint).origin, token }, `listing ${repo}@${shownRevision}`);
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw httpError(res, { repo, revision: shownRevision, url, token: !!token });
    }
    const entries = (await res.json().catch(() => null)) as TreeEntry[] | null;
    if (!Array.isArray(entries)) throw new WxError('hub.bad_response', `the Hub's file tree of ${repo}@${shownRevision} is not a JSON list (${url})`, { repo, url });
    for (const e of entries) {
      if (e.type !== 'file' || typeof e.path !== 'string') continue;
      const sha = e.lfs?.sha256 ?? e.lfs?.oid;
      out.set(e.path, {
        path: e.path,
        ...(typeof e.size === 'number' ? { size: e.size } : {}),
        ...(e.oid && !e.lfs ? { blobId: e.oid } : {}),
        ...(sha ? { lfsSha256: sha.replace(/^sha256:/, '') } : {}),
      });
    }
    const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '');
    url = next ? new URL(next[1]!, url).toString() : undefined;
  }
  return out;
}

/** The configs and tokenizer files the importer reads (all optional except config.json). */
export const WANTED_SIDE_FILES = [
  'config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json', 'vocab.json', 'merges.txt',
  'added_tokens.json', 'special_tokens_map.json', 'tokenizer_config.json', 'normalizer.json',
] as const;

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** The files of a listing worth downloading: root-level configs and tokenizer, and the weights
 *  as `model.safetensors` or the sharded index (its shards are added once the index is read).
 *  Never pytorch/flax/tf/onnx weights. */
export function selectModelFiles(info: HubRepoInfo): { files: HubFile[]; sharded: boolean } {
  const byPath = new Map(info.files.map((f) => [f.path, f]));
  const target = `${info.repo}@${info.revision}`;
  if (!byPath.has('config.json')) {
    throw new WxError('hub.not_a_model', `${target} has no config.json at its root: not a transformers Whisper checkpoint`, { repo: info.repo, revision: info.revision });
  }
  const files = WANTED_SIDE_FILES.map((f) => byPath.get(f)).filter((f): f is HubFile => f !== undefined);
  if (byPath.has('model.safetensors')) return { files: [...files, byPath.get('model.safetensors')!], sharded: false };
  if (byPath.has(SAFETENSORS_INDEX)) return { files: [...files, byPath.get(SAFETENSORS_INDEX)!], sharded: true };
  const other = info.files.map((f) => f.path).filter((p) => /\.(bin|msgpack|h5|onnx|ckpt|pt)$/.test(p));
  throw new WxError(
    'hub.no_safetensors',
    `${target} has no model.safetensors (or sharded index)${other.length ? `; it has only ${other.slice(0, 4).join(', ')}, which wx does not read` : ''}`,
    { repo: info.repo, revision: info.revision },
  );
}

/** The shard files a safetensors index names, checked against the listing. */
export function shardsFromIndex(indexText: string, info: HubRepoInfo): HubFile[] {
  let index: { weight_map?: Record<string, string> };
  try {
    index = JSON.parse(indexText) as typeof index;
  } catch (err) {
    throw new WxError('hub.bad_response', `${info.repo}@${info.revision}: ${SAFETENSORS_INDEX} is not JSON`, { repo: info.repo, file: SAFETENSORS_INDEX }, { cause: err });
  }
  const names = [...new Set(Object.values(index.weight_map ?? {}))];
  if (names.length === 0) {
    throw new WxError('hub.bad_response', `${info.repo}@${info.revision}: ${SAFETENSORS_INDEX} has an empty weight_map`, { repo: info.repo, file: SAFETENSORS_INDEX });
  }
  const byPath = new Map(info.files.map((f) => [f.path, f]));
  return names.map((n) => {
    if (n.includes('/') || n.includes('..') || !byPath.has(n)) {
      throw new WxError('hub.incomplete', `${info.repo}@${info.revision}: ${SAFETENSORS_INDEX} names shard ${n}, which the repo does not have`, { repo: info.repo, file: n });
    }
    return byPath.get(n)!;
  });
}

export interface DownloadProgress {
  /** The file being fetched. */
  file: string;
  /** Bytes on disk of all selected files (resumed bytes included) and their total. */
  bytesDone: number;
  bytesTotal: number;
  /** Bytes fetched over the network in this run. */
  bytesFetched: number;
  /** Recent network speed (bytes/s, over the last few seconds). */
  speedBps: number;
  /** Seconds left at that speed; null before a speed is known. */
  etaSeconds: number | null;
}

export interface DownloadOptions extends HubOptions {
  home: string;
  revision?: string;
  onProgress?: (p: DownloadProgress) => void;
  /** Retries per file after a network error or a 5xx, each resuming where the last stopped. Default 3. */
  retries?: number;
  /** Milliseconds before the first retry (doubles each time). Default 500. */
  retryDelayMs?: number;
}

export interface DownloadResult {
  repo: string;
  revision: string;
  commit: string;
  /** The directory holding the downloaded files in the Hugging Face layout. */
  dir: string;
  files: { path: string; size: number; sha256?: string }[];
  bytesTotal: number;
  /** Bytes actually transferred in this call (less than bytesTotal after a resume). */
  bytesFetched: number;
}

export function downloadDirFor(home: string, repo: string, revision: string): string {
  const key = `${repo}@${revision}`.replace(/[^A-Za-z0-9._@-]/g, '_');
  return path.join(wxPaths(home).models, '.downloads', key);
}

/** Keeps a rolling window of (time, bytes) samples for speed and ETA. */
class SpeedMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 5000) {}
  add(bytesFetchedTotal: number): number {
    const t = performance.now();
    this.samples.push({ t, bytes: bytesFetchedTotal });
    while (this.samples.length > 2 && t - this.samples[0]!.t > this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (t - first.t) / 1000;
    return dt > 0.05 ? (bytesFetchedTotal - first.bytes) / dt : 0;
  }
}

interface Expected {
  size?: number;
  sha256?: string;
  gitSha1?: string;
}

function expectedOf(f: HubFile): Expected {
  return {
    ...(f.size !== undefined ? { size: f.size } : {}),
    ...(f.lfsSha256 ? { sha256: f.lfsSha256.toLowerCase() } : f.blobId ? { gitSha1: f.blobId.toLowerCase() } : {}),
  };
}

function expectedKey(e: Expected): string {
  return e.sha256 ? `sha256:${e.sha256}` : e.gitSha1 ? `git:${e.gitSha1}` : `size:${e.size ?? '?'}`;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new WxError('hub.aborted', 'download cancelled', {}));
    }, { once: true });
  });

/** One process at a time per download directory; a lock left by a dead process is taken over. */
function lockDir(dir: string, repo: string): () => void {
  const lock = path.join(dir, '.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createLockFile(lock)) return () => fs.rmSync(lock, { force: true });
    let pid: number;
    try {
      pid = Number(fs.readFileSync(lock, 'utf8').trim());
    } catch {
      continue; // released meanwhile
    }
    // Our own pid means another pull in this process (the daemon) holds it.
    let alive = pid === process.pid;
    if (!alive && Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    }
    if (alive) throw new WxError('hub.busy', `another wx process (pid ${pid}) is already downloading ${repo}`, { repo, pid });
    fs.rmSync(lock, { force: true });
  }
  throw new WxError('hub.busy', `cannot lock the download directory ${dir}`, { repo, file: dir });
}

/** Downloads the model files of `repo` at a revision into its download directory. */
export async function downloadModelFiles(repo: string, opts: DownloadOptions): Promise<DownloadResult> {
  const revision = opts.revision ?? 'main';
  const endpoint = opts.endpoint ?? hubEndpoint();
  const token = opts.token ?? hubToken();
  const hub: HubOptions = { endpoint, ...(token ? { token } : {}), ...(opts.signal ? { signal: opts.signal } : {}) };
  const info = await fetchRepoInfo(repo, revision, hub);
  const { files: selected, sharded } = selectModelFiles(info);

  const dir = downloadDirFor(opts.home, repo, revision);
  fs.mkdirSync(dir, { recursive: true });
  const unlock = lockDir(dir, repo);
  try {
    checkFreeSpace(dir, selected, repo);
    const state = {
      bytesTotal: selected.reduce((s, f) => s + (f.size ?? 0), 0),
      bytesDone: 0,
      bytesFetched: 0,
      meter: new SpeedMeter(),
      lastSpeed: 0,
    };
    const report = (file: string) => {
      state.lastSpeed = state.meter.add(state.bytesFetched);
      const left = Math.max(0, state.bytesTotal - state.bytesDone);
      opts.onProgress?.({
        file,
        bytesDone: state.bytesDone,
        bytesTotal: state.bytesTotal,
        bytesFetched: state.bytesFetched,
        speedBps: state.lastSpeed,
        etaSeconds: state.lastSpeed > 0 ? left / state.lastSpeed : null,
      });
    };
    const ctx: FileCtx = { dir, endpoint, repo, revision, commit: info.commit, token, signal: opts.signal, retries: opts.retries ?? 3, retryDelayMs: opts.retryDelayMs ?? 500, state, report };

    const done: DownloadResult['files'] = [];
    // Small files first: a bad config or tokenizer shows up before gigabytes are fetched.
    const queue = [...selected].sort((a, b) => (a.size ?? 0) - (b.size ?? 0));
    for (let i = 0; i < queue.length; i++) {
      const f = queue[i]!;
      done.push(await fetchOne(f, ctx));
      if (sharded && f.path === SAFETENSORS_INDEX) {
        const shards = shardsFromIndex(fs.readFileSync(path.join(dir, SAFETENSORS_INDEX), 'utf8'), info);
        checkFreeSpace(dir, shards, repo);
        state.bytesTotal += shards.reduce((s, x) => s + (x.size ?? 0), 0);
        queue.push(...shards);
      }
    }
    // Anything else in the directory (an older revision's leftovers) must not reach the importer.
    const keep = new Set(done.map((f) => f.path));
    for (const entry of fs.readdirSync(dir)) {
      if (entry === '.lock' || keep.has(entry) || (entry.endsWith('.verified') && keep.has(entry.slice(0, -'.verified'.length)))) continue;
      if (entry.endsWith('.partial') || entry.endsWith('.partial.json')) continue;
      fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
    }
    report(done.at(-1)?.path ?? '');
    return { repo, revision, commit: info.commit, dir, files: done, bytesTotal: state.bytesTotal, bytesFetched: state.bytesFetched };
  } finally {
    unlock();
  }
}

/** Fails before any byte is fetched when the files left to download cannot fit on the disk. */
function checkFreeSpace(dir: string, files: HubFile[], repo: string): void {
  let left = 0;
  for (const f of files) {
    const final = path.join(dir, f.path);
    if (fs.existsSync(final)) continue;
    const partial = `${final}.partial`;
    left += Math.max(0, (f.size ?? 0) - (fs.existsSync(partial) ? fs.statSync(partial).size : 0));
  }
  const st = fs.statfsSync(dir);
  const free = st.bavail * st.bsize;
  if (left > free) {
    const gb = (n: number) => `${(n / 2 ** 30).toFixed(2)} GB`;
    throw new WxError('hub.disk_full', `${repo} needs ${gb(left)} more for its download in ${dir}, but only ${gb(free)} is free`, { repo, dir, needed: left, free });
  }
}

interface FileCtx {
  dir: string;
  endpoint: string;
  repo: string;
  revision: string;
  commit: string;
  token?: string;
  signal?: AbortSignal;
  retries: number;
  retryDelayMs: number;
  state: { bytesTotal: number; bytesDone: number; bytesFetched: number };
  report: (file: string) => void;
}

const WRITE_BATCH_BYTES = 1 << 20;

interface PartialMeta {
  expected: string;
  etag?: string;
}

/** Downloads (or resumes, or skips) one file and verifies it. */
async function fetchOne(f: HubFile, ctx: FileCtx): Promise<DownloadResult['files'][number]> {
  const final = path.join(ctx.dir, f.path);
  const marker = `${final}.verified`;
  const expected = expectedOf(f);
  const key = expectedKey(expected);
  if (fs.existsSync(final) && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === key) {
    const size = fs.statSync(final).size;
    ctx.state.bytesDone += size;
    ctx.report(f.path);
    return { path: f.path, size, ...(expected.sha256 ? { sha256: expected.sha256 } : {}) };
  }
  fs.rmSync(final, { force: true });
  fs.rmSync(marker, { force: true });

  const startDone = ctx.state.bytesDone;
  for (let attempt = 0; ; attempt++) {
    ctx.state.bytesDone = startDone;
    try {
      const size = await fetchAttempt(f, expected, ctx);
      fs.renameSync(`${final}.partial`, final);
      fs.rmSync(`${final}.partial.json`, { force: true });
      fs.writeFileSync(marker, key + '\n');
      return { path: f.path, size, ...(expected.sha256 ? { sha256: expected.sha256 } : {}) };
    } catch (err) {
      const retryable = err instanceof WxError && (err.code === 'hub.network' || err.code === 'hub.server' || err.code === 'hub.incomplete');
      if (!retryable || attempt >= ctx.retries || ctx.signal?.aborted) throw err;
      await sleep(ctx.retryDelayMs * 2 ** attempt, ctx.signal);
    }
  }
}

async function fetchAttempt(f: HubFile, expected: Expected, ctx: FileCtx): Promise<number> {
  const final = path.join(ctx.dir, f.path);
  const partial = `${final}.partial`;
  const metaFile = `${partial}.json`;
  const key = expectedKey(expected);
  let meta: PartialMeta | undefined;
  try {
    meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as PartialMeta;
  } catch {
    meta = undefined;
  }
  let have = 0;
  if (meta?.expected === key && fs.existsSync(partial)) have = fs.statSync(partial).size;
  else {
    fs.rmSync(partial, { force: true });
    meta = { expected: key };
  }
  if (expected.size !== undefined && have > expected.size) {
    fs.rmSync(partial, { force: true });
    have = 0;
  }

  const url = resolveUrl(ctx.endpoint, ctx.repo, ctx.commit, f.path);
  const what = `downloading ${f.path} of ${ctx.repo}@${ctx.revision}`;
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (have > 0) {
    headers.range = `bytes=${have}-`;
    // Only a resume from the very same bytes: a changed file answers 200 with the whole body.
    if (meta.etag && !meta.etag.startsWith('W/')) headers['if-range'] = meta.etag;
  }
  const { res, linked } = await hubFetch(url, { headers, signal: ctx.signal, authOrigin: new URL(ctx.endpoint).origin, token: ctx.token }, what);

  if (res.status === 416 && have > 0) {
    // The partial already holds the whole file (or the server cannot serve the range): verify
    // what we have; a bad file is deleted and the next attempt starts over.
    await res.body?.cancel().catch(() => {});
    return await verify(f, expected, partial, ctx, undefined, linked);
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel().catch(() => {});
    throw httpError(res, { repo: ctx.repo, revision: ctx.revision, file: f.path, url, token: !!ctx.token });
  }
  let offset = 0;
  if (res.status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (!m || Number(m[1]) !== have) {
      await res.body?.cancel().catch(() => {});
      fs.rmSync(partial, { force: true });
      fs.rmSync(metaFile, { force: true });
      throw new WxError('hub.incomplete', `${what}: the server answered a range request with the wrong range (${res.headers.get('content-range')}); starting over`, { file: f.path, url });
    }
    offset = have;
  }
  const etag = res.headers.get('etag') ?? undefined;
  fs.writeFileSync(metaFile, JSON.stringify({ expected: key, ...(etag ? { etag } : {}) } satisfies PartialMeta));

  // Hash the bytes already on disk, then the new ones as they arrive: one pass over the file.
  const hash = expected.sha256 || !expected.gitSha1 ? crypto.createHash('sha256') : null;
  if (offset > 0) {
    fs.truncateSync(partial, offset);
    if (hash) for await (const chunk of fs.createReadStream(partial, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  }
  ctx.state.bytesDone += offset;
  const fh = await fsp.open(partial, offset > 0 ? 'a' : 'w');
  // Chunks arrive in tens of kilobytes: write them in ~1 MB batches (fewer write calls).
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    try {
      await fh.writev(batch);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new WxError('hub.disk_full', `the disk holding ${ctx.dir} is full while downloading ${f.path}; free some space and pull again (it resumes)`, { file: f.path, dir: ctx.dir });
      }
      throw err;
    }
  };
  try {
    if (res.body) {
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          pending.push(chunk);
          pendingBytes += chunk.byteLength;
          hash?.update(chunk);
          if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
          ctx.state.bytesDone += chunk.byteLength;
          ctx.state.bytesFetched += chunk.byteLength;
          ctx.report(f.path);
        }
      } catch (err) {
        // Keep every byte that arrived: the next attempt resumes after them.
        await flush();
        throw networkError(err, url, what);
      }
      await flush();
    }
  } finally {
    await fh.close();
  }
  return await verify(f, expected, partial, ctx, hash ? hash.digest('hex') : undefined, linked);
}

/** Checks a complete partial file against the listing's size and hash; deletes it when bad. */
async function verify(
  f: HubFile,
  expected: Expected,
  partial: string,
  ctx: FileCtx,
  sha256Hex: string | undefined,
  linked: { etag?: string; size?: number },
): Promise<number> {
  const size = fs.statSync(partial).size;
  const wantSize = expected.size ?? linked.size;
  const target = `${f.path} of ${ctx.repo}@${ctx.revision}`;
  const discard = () => {
    fs.rmSync(partial, { force: true });
    fs.rmSync(`${partial}.json`, { force: true });
  };
  if (wantSize !== undefined && size < wantSize) {
    // The connection ended early without an error: keep the bytes, the next attempt resumes.
    throw new WxError('hub.incomplete', `${target}: the server sent ${size} of ${wantSize} bytes`, { file: f.path, expected: wantSize, got: size });
  }
  if (wantSize !== undefined && size > wantSize) {
    discard();
    throw new WxError('hub.checksum', `${target}: got ${size} bytes, expected ${wantSize}; the bad download was deleted`, { file: f.path, expected: wantSize, got: size });
  }
  // The Hub's X-Linked-Etag of an LFS file is its sha256: use it when the listing had none.
  const wantSha = expected.sha256 ?? (linked.etag && /^[0-9a-f]{64}$/.test(linked.etag) ? linked.etag : undefined);
  if (wantSha) {
    const got = sha256Hex ?? (await sha256OfFile(partial));
    if (got !== wantSha) {
      discard();
      throw new WxError('hub.checksum', `${target} is corrupt: sha256 ${got}, expected ${wantSha}; the bad download was deleted`, { file: f.path, expected: wantSha, got });
    }
  } else if (expected.gitSha1) {
    const got = await gitBlobSha1(partial, size);
    if (got !== expected.gitSha1) {
      discard();
      throw new WxError('hub.checksum', `${target} is corrupt: git blob id ${got}, expected ${expected.gitSha1}; the bad download was deleted`, { file: f.path, expected: expected.gitSha1, got });
    }
  }
  return size;
}

export async function sha256OfFile(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The id git gives a file's content, which the Hub reports as `blobId` for regular files. */
export async function gitBlobSha1(file: string, size = fs.statSync(file).size): Promise<string> {
  const h = crypto.createHash('sha1');
  h.update(`blob ${size}\0`);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
