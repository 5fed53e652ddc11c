// What an installed model is: `$WX_HOME/models/<name>/manifest.json` plus the ONNX graphs and the
// tokenizer files beside it. The importer writes it last (after everything else is in place and
// the directory has been renamed into `models/`), so a manifest that exists means a whole model.
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../errors.js';
export type Precision = 'fp32' | 'int8';

export interface ModelDims {
  nMels: number;
  nAudioCtx: number; // encoder positions (1500 for 30-s windows)
  dModel: number;
  encoderLayers: number;
  encoderHeads: number;
  decoderLayers: number;
  decoderHeads: number;
  nVocab: number;
  nTextCtx: number; // max_target_positions (448)
  encoderFfn: number;
  decoderFfn: number;
}

export interface ModelManifest {
  /** Layout version of this manifest; bumped when graphs change incompatibly. */
  formatVersion: number;
  name: string;
  /** Where it came from: a Hub repo id (`openai/whisper-tiny`), or `local:<absolute dir>`. */
  source: string;
  revision?: string;
  importedAt: string;
  dims: ModelDims;
  multilingual: boolean;
  precisions: Precision[];
  /** Relative file names of the graphs per precision. */
  files: Record<Precision, GraphFiles | undefined>;
  /** sha256 of every input file that went into the import (config, tokenizer, weights). */
  inputs: Record<string, string>;
  /** Total bytes of the model directory per precision (graphs + shared files). */
  sizeBytes: Partial<Record<Precision, number>>;
}

/** The graph files of one precision: the encoder, and the decoder either whole (`decoder`) or cut
 *  at its cross-attentions (`decoderSegments`, run with the native int8 cross-attention), whose
 *  tensors live once in `decoderData` (INT8 imports before the native decoder: only the token
 *  embedding both ends use). */
export interface GraphFiles {
  encoder: string;
  decoder?: string;
  decoderSegments?: string[];
  decoderData?: string;
  /** INT8: the encoder's pieces around our native int8 linears, used where the CPU has int8 dot
   *  products (elsewhere `encoder` runs whole): the conv stem, one weightless self-attention
   *  every layer runs, and where each native tensor lies in `data` (the external data file the
   *  whole encoder's tensors live in too, so each is stored once). */
  encoderNative?: EncoderNativeFiles;
  /** INT8: where each tensor of the native decoder step (graphs/decoder.ts NATIVE_DECODER) lies
   *  in `decoderData`, which the segments' tensors share. */
  decoderNative?: { tensors: Record<string, [number, number]> };
}

export interface EncoderNativeFiles {
  stem: string;
  attention: string;
  data: string;
  /** Tensor name (graphs/encoder.ts NATIVE_ENCODER) → [byte offset, byte length] in `data`. */
  tensors: Record<string, [number, number]>;
}

/** Every file of `f`, for sizes and checks. */
export function graphFileList(f: GraphFiles): string[] {
  const native = f.encoderNative ? [f.encoderNative.stem, f.encoderNative.attention, f.encoderNative.data] : [];
  return [f.encoder, ...native, ...(f.decoder ? [f.decoder] : []), ...(f.decoderSegments ?? []), ...(f.decoderData ? [f.decoderData] : [])];
}

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT_VERSION = 1;

/** The manifest of an installed model directory; a clear error when `dir` is not one. */
export function readManifest(dir: string): ModelManifest {
  const file = path.join(dir, MANIFEST_FILE);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ModelManifest;
  } catch (err) {
    throw new WxError('model.not_installed', `${dir} is not an installed wx model (${(err as Error).message})`, { file });
  }
}
