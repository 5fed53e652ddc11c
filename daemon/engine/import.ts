// `wx models import`: a Hugging Face Whisper directory → an installed model under
// `$WX_HOME/models/<name>/` (ONNX graphs per precision, tokenizer files, manifest). Everything is
// written into a temporary sibling directory and renamed into place at the end, so a crash or a
// bad checkpoint never leaves a half-installed model where the daemon would look.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../errors.js';
import { wxPaths } from '../paths.js';
import { encodeModel, type Graph, type TensorData } from './onnx/graph.js';
import { SafetensorsCheckpoint } from './model/safetensors.js';
import { readWhisperConfig } from './model/config.js';
import { buildEncoderAttention, buildEncoderGraph, buildEncoderStem, encoderNativeTensors, type WeightReader } from './graphs/encoder.js';
import { buildDecoderGraph, buildDecoderSegments, decoderNativeTensors } from './graphs/decoder.js';
import { WhisperTokenizer } from './tokenizer.js';
import { MANIFEST_FILE, MANIFEST_FORMAT_VERSION, type GraphFiles, type ModelManifest, type Precision } from './manifest.js';

export type ImportPrecision = Precision | 'both';

export interface ImportOptions {
  home: string;
  name?: string;
  precision?: ImportPrecision;
  source?: string;
  revision?: string;
  /** Replace an installed model of the same name. */
  force?: boolean;
  onProgress?: (p: { step: string; fraction: number }) => void;
}

export interface InstalledModel {
  name: string;
  dir: string;
  manifest: ModelManifest;
}

/** Files copied next to the graphs (the tokenizer and the configs the runtime reads). */
export const MODEL_SIDE_FILES = [
  'config.json', 'generation_config.json', 'preprocessor_config.json', 'tokenizer.json', 'vocab.json',
  'merges.txt', 'added_tokens.json', 'special_tokens_map.json', 'tokenizer_config.json', 'normalizer.json',
];

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** A model name derived from a directory or repo id: `openai/whisper-tiny.en` → `whisper-tiny.en`. */
export function defaultModelName(srcOrRepo: string): string {
  const base = path.basename(srcOrRepo.replace(/[\\/]+$/, ''));
  return base.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'model';
}

function sha256File(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    let n: number;
    let pos = 0;
    while ((n = fs.readSync(fd, buf, 0, buf.length, pos)) > 0) {
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Graphs above this size keep their weights in an external data file (protobuf's 2 GB limit). */
const EXTERNAL_DATA_THRESHOLD = 1.5 * 2 ** 30;

function writeGraph(graph: Graph, file: string): number {
  const bytesGuess = graph.initializers.reduce((s, i) => s + i.tensor.data.length, 0);
  if (bytesGuess < EXTERNAL_DATA_THRESHOLD) {
    const bytes = encodeModel(graph);
    fs.writeFileSync(file, bytes);
    return bytes.length;
  }
  return writeGraphsWithData([graph], [file], `${file}.data`, 1024).bytes;
}

/** Writes graphs whose tensors of at least `minBytes` go to one external data file (large ones
 *  4 KiB aligned: ORT maps them directly); a tensor several graphs hold (same bytes) is stored
 *  once. `extra` tensors are added to the data file too (deduplicated the same way) and their
 *  places returned, for readers other than ORT. */
function writeGraphsWithData(graphs: Graph[], files: string[], dataFile: string, minBytes: number, extra?: Map<string, TensorData>): { bytes: number; tensors: Record<string, [number, number]> } {
  const fd = fs.openSync(dataFile, 'w');
  const seen = new Map<string, number>();
  const tensors: Record<string, [number, number]> = {};
  let offset = 0;
  let total = 0;
  try {
    const sink = {
      location: path.basename(dataFile),
      append(bytes: Uint8Array): number {
        const key = crypto.createHash('sha256').update(bytes).digest('hex') + ':' + bytes.length;
        const known = seen.get(key);
        if (known !== undefined) return known;
        const align = bytes.length >= 1 << 16 ? 4096 : 64;
        const pad = (align - (offset % align)) % align;
        if (pad) fs.writeSync(fd, new Uint8Array(pad));
        offset += pad;
        fs.writeSync(fd, bytes);
        const at = offset;
        offset += bytes.length;
        seen.set(key, at);
        return at;
      },
    };
    graphs.forEach((g, i) => {
      const bytes = encodeModel(g, { external: { sink, minBytes } });
      fs.writeFileSync(files[i]!, bytes);
      total += bytes.length;
    });
    for (const [name, t] of extra ?? []) tensors[name] = [sink.append(t.data), t.data.length];
  } finally {
    fs.closeSync(fd);
  }
  return { bytes: total + offset, tensors };
}

/** Graph files per precision for `layers` decoder layers. INT8 decoders are cut at their
 *  cross-attentions, which the native int8 attention runs (keys/values 4× smaller than float). */
export function graphFiles(precision: Precision, layers: number): GraphFiles {
  if (precision === 'fp32') return { encoder: 'encoder.fp32.onnx', decoder: 'decoder.fp32.onnx' };
  return {
    encoder: 'encoder.int8.onnx',
    encoderNative: { stem: 'encoder.int8.stem.onnx', attention: 'encoder.int8.attention.onnx', data: 'encoder.int8.data', tensors: {} },
    decoderSegments: Array.from({ length: layers + 1 }, (_, i) => `decoder.int8.${i}.onnx`),
    decoderData: 'decoder.int8.data',
    decoderNative: { tensors: {} },
  };
}

/** INT8 tensors of at least this size go to the shared data files (`encoder.int8.data`,
 *  `decoder.int8.data`): every tensor the native encoder and decoder read (norms of 1.5 KB and
 *  up) is then stored once, for ORT's graphs and our kernels alike. */
const SHARED_DATA_MIN_BYTES = 1024;

/** Builds and writes the graphs of one precision from an opened checkpoint; returns their bytes
 *  and the manifest's description of them. */
export function writeModelGraphs(srcDir: string, outDir: string, precision: Precision, onStep?: (step: string) => void): { bytes: number; files: GraphFiles } {
  const cfg = readWhisperConfig(srcDir);
  const ckpt = SafetensorsCheckpoint.open(srcDir);
  const cache = new Map<string, Float32Array>();
  const read: WeightReader = (name, shape) => {
    let t = cache.get(name);
    if (!t) {
      t = ckpt.float32(name, shape);
      cache.set(name, t);
    }
    return t;
  };
  const files = graphFiles(precision, cfg.dims.decoderLayers);
  onStep?.(`encoder ${precision}`);
  // INT8 files keep their few unquantised tensors as float16 (lossless for float16 checkpoints).
  const floatStorage = precision === 'int8' ? 'fp16' : 'fp32';
  const enc = buildEncoderGraph(cfg.dims, read, { linear: precision, crossKv: precision, floatStorage });
  let bytes: number;
  if (files.encoderNative) {
    const n = files.encoderNative;
    const written = writeGraphsWithData(
      [enc, buildEncoderStem(cfg.dims, read, { floatStorage }), buildEncoderAttention(cfg.dims)],
      [files.encoder, n.stem, n.attention].map((f) => path.join(outDir, f)),
      path.join(outDir, n.data), SHARED_DATA_MIN_BYTES, encoderNativeTensors(cfg.dims, read),
    );
    bytes = written.bytes;
    n.tensors = written.tensors;
  } else {
    bytes = writeGraph(enc, path.join(outDir, files.encoder));
  }
  onStep?.(`decoder ${precision}`);
  const decOpts = { linear: precision, logits: precision, floatStorage } as const;
  if (files.decoderSegments) {
    const segments = buildDecoderSegments(cfg.dims, read, decOpts);
    const written = writeGraphsWithData(segments, files.decoderSegments.map((f) => path.join(outDir, f)), path.join(outDir, files.decoderData!), SHARED_DATA_MIN_BYTES, decoderNativeTensors(cfg.dims, read));
    bytes += written.bytes;
    files.decoderNative = { tensors: written.tensors };
  } else {
    bytes += writeGraph(buildDecoderGraph(cfg.dims, read, decOpts), path.join(outDir, files.decoder!));
  }
  return { bytes, files };
}

export async function importModel(srcDir: string, opts: ImportOptions): Promise<InstalledModel> {
  const src = path.resolve(srcDir);
  const name = opts.name ?? defaultModelName(src);
  if (!NAME_RE.test(name)) throw new WxError('model.bad_name', `invalid model name ${JSON.stringify(name)} (letters, digits, . _ - only)`, { name });
  const precisions: Precision[] = opts.precision === 'both' ? ['int8', 'fp32'] : [opts.precision ?? 'int8'];
  const progress = opts.onProgress ?? (() => {});
  const cfg = readWhisperConfig(src); // validates config before any work
  SafetensorsCheckpoint.open(src); // and that weights exist

  const modelsDir = wxPaths(opts.home).models;
  const finalDir = path.join(modelsDir, name);
  if (fs.existsSync(path.join(finalDir, MANIFEST_FILE)) && !opts.force) {
    throw new WxError('model.exists', `a model named ${name} is already installed (${finalDir}); remove it first or pick another --name`, { name });
  }
  fs.mkdirSync(modelsDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(modelsDir, `.import-${name}-`));
  try {
    const inputs: Record<string, string> = {};
    const steps = precisions.length * 2 + 2;
    let done = 0;
    progress({ step: 'hashing inputs', fraction: 0 });
    const weightFiles = fs.readdirSync(src).filter((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json');
    for (const f of [...MODEL_SIDE_FILES, ...weightFiles]) {
      const file = path.join(src, f);
      if (!fs.existsSync(file)) continue;
      inputs[f] = sha256File(file);
      if (MODEL_SIDE_FILES.includes(f)) {
        fs.copyFileSync(file, path.join(tmp, f));
        fs.chmodSync(path.join(tmp, f), 0o644); // sources may be read-only; ours stay removable
      }
    }
    progress({ step: 'hashing inputs', fraction: ++done / steps });
    // A pre-parsed tokenizer next to the files makes every later load ~3× faster.
    const tokenizer = WhisperTokenizer.fromModelDir(tmp);
    WhisperTokenizer.writeCache(tmp);
    const sizeBytes: Partial<Record<Precision, number>> = {};
    const files: Record<Precision, GraphFiles | undefined> = { fp32: undefined, int8: undefined };
    const sideBytes = MODEL_SIDE_FILES.reduce((s, f) => s + (fs.existsSync(path.join(tmp, f)) ? fs.statSync(path.join(tmp, f)).size : 0), 0);
    for (const precision of precisions) {
      const written = writeModelGraphs(src, tmp, precision, (step) => progress({ step, fraction: ++done / steps }));
      sizeBytes[precision] = written.bytes + sideBytes;
      files[precision] = written.files;
    }
    const manifest: ModelManifest = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      name,
      source: opts.source ?? `local:${src}`,
      ...(opts.revision ? { revision: opts.revision } : {}),
      importedAt: new Date().toISOString(),
      dims: cfg.dims,
      multilingual: tokenizer.multilingual,
      precisions,
      files,
      inputs,
      sizeBytes,
    };
    fs.writeFileSync(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    if (fs.existsSync(finalDir)) {
      const old = `${finalDir}.old-${process.pid}`;
      fs.renameSync(finalDir, old);
      fs.renameSync(tmp, finalDir);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, finalDir);
    }
    progress({ step: 'done', fraction: 1 });
    return { name, dir: finalDir, manifest };
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
