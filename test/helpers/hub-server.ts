// A local stand-in for the Hugging Face Hub on 127.0.0.1, serving one model directory in the
// Hub's URL layout and with its headers:
//   GET /api/models/{repo}/revision/{rev}[?blobs=true] → {id, sha, siblings: [{rfilename, blobId, size, lfs}]}
//   GET|HEAD /{repo}/resolve/{rev}/{file} → regular files: 200 with ETag = git blob id;
//     LFS files: 302 to a second server (a different origin, like the Hub's CDN) with
//     X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit
//   GET /{sha256} on the CDN server → the bytes, with Range / If-Range / ETag support.
// Errors carry X-Error-Code like the Hub (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
// Knobs let a test interrupt a transfer, corrupt a file, fail with a status, or require a token.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface ServedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range?: string;
  ifRange?: string;
  authorization?: string;
  status: number;
  /** Body bytes written. */
  bytes: number;
}

export interface HubKnobs {
  /** Cut the connection after this many body bytes of `file`, the next `times` transfers of it (default once). */
  failAfter?: { file: string; bytes: number; times?: number };
  /** Files whose bytes are served altered (one byte flipped in the middle). */
  corrupt: Set<string>;
  /** Answer every hub request (API and resolve) with this status. */
  status?: { code: number; errorCode?: string };
  /** Require `Authorization: Bearer <token>` on hub requests; 401 without, 403 with a wrong one. */
  requireToken?: string;
  /** Extra files listed (and served) besides the directory's, e.g. pytorch_model.bin. */
  extraFiles: Map<string, Buffer>;
  /** Ignore Range headers (a server or proxy that always sends the whole file). */
  ignoreRange?: boolean;
  /** Sizes the listing reports instead of the real ones (e.g. a checkpoint too big for the disk). */
  listedSize: Map<string, number>;
  /** The revision API ignores `blobs=true` (names only), like some mirrors; the tree API has the hashes. */
  noBlobs?: boolean;
  /** Serve LFS bytes at this rate (a slow link, to interrupt a transfer from outside). */
  bytesPerSecond?: number;
  /** Called as a slow transfer progresses: the file and the offset sent up to. */
  onSent?: (file: string, offset: number) => void;
  /** Entries per page of the tree API (pages linked with `Link: <…>; rel="next"`). */
  treePageSize?: number;
}

interface RepoFile {
  name: string;
  data: Buffer;
  lfs: boolean;
  sha256: string;
  blobId: string;
}

export interface HubServer {
  endpoint: string;
  cdnOrigin: string;
  repo: string;
  commit: string;
  knobs: HubKnobs;
  requests: ServedRequest[];
  /** Body bytes served by the CDN (the LFS files) since start or the last reset. */
  bytesServed(): number;
  files(): { name: string; size: number; sha256: string; lfs: boolean }[];
  reset(): void;
  close(): Promise<void>;
}

const LFS_RE = /\.(safetensors|bin|h5|msgpack|onnx|ot)$/;

function gitBlobId(data: Buffer): string {
  return crypto.createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

function repoFile(name: string, data: Buffer): RepoFile {
  return { name, data, lfs: LFS_RE.test(name), sha256: crypto.createHash('sha256').update(data).digest('hex'), blobId: gitBlobId(data) };
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

export async function startHubServer(modelDir: string, repo = 'wx-test/whisper-tiny-synth'): Promise<HubServer> {
  const base = new Map<string, RepoFile>();
  for (const f of fs.readdirSync(modelDir).sort()) {
    const p = path.join(modelDir, f);
    if (fs.statSync(p).isFile()) base.set(f, repoFile(f, fs.readFileSync(p)));
  }
  base.set('.gitattributes', repoFile('.gitattributes', Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n')));
  base.set('README.md', repoFile('README.md', Buffer.from('---\nlicense: mit\n---\n# test model\n')));
  const commit = crypto.createHash('sha1').update([...base.values()].map((f) => f.blobId).join()).digest('hex');

  const knobs: HubKnobs = { corrupt: new Set(), extraFiles: new Map(), listedSize: new Map() };
  const requests: ServedRequest[] = [];
  const allFiles = (): Map<string, RepoFile> => {
    const m = new Map(base);
    for (const [name, data] of knobs.extraFiles) m.set(name, repoFile(name, data));
    return m;
  };
  const bySha = (sha: string) => [...allFiles().values()].find((f) => f.sha256 === sha);
  const servedBytes = (f: RepoFile): Buffer => {
    if (!knobs.corrupt.has(f.name)) return f.data;
    const copy = Buffer.from(f.data);
    copy[copy.length >> 1] = copy[copy.length >> 1]! ^ 0xff;
    return copy;
  };

  let cdnOrigin = '';
  const record = (server: 'hub' | 'cdn', req: http.IncomingMessage, status: number, bytes: number) => {
    requests.push({
      server,
      method: req.method ?? 'GET',
      url: req.url ?? '',
      status,
      bytes,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers['if-range'] ? { ifRange: String(req.headers['if-range']) } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
  };
  const fail = (req: http.IncomingMessage, res: http.ServerResponse, status: number, errorCode: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': errorCode, 'x-error-message': message });
    const body = JSON.stringify({ error: message });
    res.end(body);
    record('hub', req, status, body.length);
  };

  const hub = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (knobs.status) {
      return fail(req, res, knobs.status.code, knobs.status.errorCode ?? '', `test server answers ${knobs.status.code}`);
    }
    if (knobs.requireToken) {
      const auth = req.headers.authorization;
      if (!auth) return fail(req, res, 401, 'GatedRepo', 'Access to model is restricted. You must have access to it and be authenticated to access it. Please log in.');
      if (auth !== `Bearer ${knobs.requireToken}`) return fail(req, res, 403, 'GatedRepo', 'Access to model is restricted and you are not in the authorized list.');
    }
    const api = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(url.pathname);
    const tree = /^\/api\/models\/(.+)\/tree\/([^/]+)$/.exec(url.pathname);
    if (tree) {
      const rev = decodeURIComponent(tree[2]!);
      if (tree[1] !== repo) return fail(req, res, 404, 'RepoNotFound', 'Repository not found');
      if (rev !== 'main' && rev !== commit) return fail(req, res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      const entries = [...allFiles().values()].map((f) => ({
        type: 'file',
        oid: f.lfs ? gitBlobId(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${f.data.length}\n`)) : f.blobId,
        size: f.data.length,
        path: f.name,
        ...(f.lfs ? { lfs: { oid: f.sha256, size: f.data.length, pointerSize: 134 } } : {}),
      }));
      const per = knobs.treePageSize ?? 1000;
      const start = Number(url.searchParams.get('cursor') ?? '0');
      const page = entries.slice(start, start + per);
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
      if (start + per < entries.length) headers.link = `<${url.pathname}?cursor=${start + per}>; rel="next"`;
      const body = JSON.stringify(page);
      res.writeHead(200, headers);
      res.end(body);
      record('hub', req, 200, body.length);
      return;
    }
    const resolve = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const [r, rev] = api ? [api[1]!, decodeURIComponent(api[2]!)] : resolve ? [resolve[1]!, decodeURIComponent(resolve[2]!)] : ['', ''];
    if (!api && !resolve) return fail(req, res, 404, '', 'Not Found');
    if (r !== repo) return fail(req, res, 404, 'RepoNotFound', 'Repository not found');
    if (rev !== 'main' && rev !== commit) return fail(req, res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const files = allFiles();
    if (api) {
      const blobs = url.searchParams.get('blobs') === 'true' && !knobs.noBlobs;
      const body = JSON.stringify({
        _id: 'test',
        id: repo,
        modelId: repo,
        sha: commit,
        private: false,
        gated: knobs.requireToken ? 'manual' : false,
        siblings: [...files.values()].map((f) =>
          blobs
            ? (() => {
                const size = knobs.listedSize.get(f.name) ?? f.data.length;
                const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${size}\n`;
                return { rfilename: f.name, blobId: f.lfs ? gitBlobId(Buffer.from(pointer)) : f.blobId, size, ...(f.lfs ? { lfs: { sha256: f.sha256, size, pointerSize: pointer.length } } : {}) };
              })()
            : { rfilename: f.name },
        ),
      });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      record('hub', req, 200, body.length);
      return;
    }
    const name = decodeURIComponent(resolve![3]!);
    const f = files.get(name);
    if (!f) return fail(req, res, 404, 'EntryNotFound', `${name} does not exist on "${rev}"`);
    if (f.lfs) {
      res.writeHead(302, {
        location: `${cdnOrigin}/${f.sha256}?X-Amz-Signature=test`,
        'x-linked-etag': `"${f.sha256}"`,
        'x-linked-size': String(f.data.length),
        'x-repo-commit': commit,
        etag: `"${f.sha256}"`,
        'content-length': '0',
      });
      res.end();
      record('hub', req, 302, 0);
      return;
    }
    const data = servedBytes(f);
    res.writeHead(200, { 'content-length': data.length, etag: `"${f.blobId}"`, 'x-repo-commit': commit, 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') {
      res.end();
      record('hub', req, 200, 0);
      return;
    }
    sendBody(req, res, f.name, data, 0, 'hub', 200);
  });

  const sendBody = (req: http.IncomingMessage, res: http.ServerResponse, name: string, data: Buffer, start: number, server: 'hub' | 'cdn', status: number) => {
    const cut = knobs.failAfter && knobs.failAfter.file === name && (knobs.failAfter.times ?? 1) > 0 ? knobs.failAfter : undefined;
    const body = data.subarray(start);
    if (cut && cut.bytes < body.length) {
      cut.times = (cut.times ?? 1) - 1;
      res.write(body.subarray(0, cut.bytes), () => {
        record(server, req, status, cut.bytes);
        res.socket?.destroy();
      });
      return;
    }
    if (knobs.bytesPerSecond && server === 'cdn') {
      // A slow link: 64 KB slices on a timer; a client that goes away ends the transfer.
      const slice = 64 * 1024;
      const delayMs = (1000 * slice) / knobs.bytesPerSecond;
      let sent = 0;
      const next = () => {
        if (res.destroyed) return record(server, req, status, sent);
        const part = body.subarray(sent, sent + slice);
        sent += part.length;
        if (sent >= body.length) {
          res.end(part);
          return record(server, req, status, sent);
        }
        res.write(part);
        knobs.onSent?.(name, start + sent);
        setTimeout(next, delayMs);
      };
      next();
      return;
    }
    res.end(body);
    record(server, req, status, body.length);
  };

  const cdn = http.createServer((req, res) => {
    const sha = new URL(req.url ?? '/', 'http://127.0.0.1').pathname.slice(1);
    const f = bySha(sha);
    if (!f) {
      res.writeHead(404).end('NoSuchKey');
      record('cdn', req, 404, 9);
      return;
    }
    const data = servedBytes(f);
    const etag = `"cdn-${f.sha256.slice(0, 24)}${knobs.corrupt.has(f.name) ? '-x' : ''}"`;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const honourRange = range && !knobs.ignoreRange && (!ifRange || ifRange === etag);
    const headers = { etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (honourRange) {
      const start = Number(range[1]);
      if (start >= data.length) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${data.length}` }).end();
        record('cdn', req, 416, 0);
        return;
      }
      res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${data.length - 1}/${data.length}`, 'content-length': data.length - start });
      if (req.method === 'HEAD') return void res.end(), record('cdn', req, 206, 0);
      sendBody(req, res, f.name, data, start, 'cdn', 206);
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': data.length });
    if (req.method === 'HEAD') return void res.end(), record('cdn', req, 200, 0);
    sendBody(req, res, f.name, data, 0, 'cdn', 200);
  });

  const hubPort = await listen(hub);
  const cdnPort = await listen(cdn);
  cdnOrigin = `http://127.0.0.1:${cdnPort}`;
  const closeServer = (s: http.Server) => new Promise<void>((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  });
  return {
    endpoint: `http://127.0.0.1:${hubPort}`,
    cdnOrigin,
    repo,
    commit,
    knobs,
    requests,
    bytesServed: () => requests.filter((r) => r.server === 'cdn').reduce((s, r) => s + r.bytes, 0),
    files: () => [...allFiles().values()].map((f) => ({ name: f.name, size: f.data.length, sha256: f.sha256, lfs: f.lfs })),
    reset() {
      requests.length = 0;
      knobs.corrupt.clear();
      knobs.extraFiles.clear();
      knobs.listedSize.clear();
      delete knobs.failAfter;
      delete knobs.status;
      delete knobs.requireToken;
      delete knobs.ignoreRange;
      delete knobs.noBlobs;
      delete knobs.bytesPerSecond;
      delete knobs.onSent;
      delete knobs.treePageSize;
    },
    close: async () => {
      await Promise.all([closeServer(hub), closeServer(cdn)]);
    },
  };
}
