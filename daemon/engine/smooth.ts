// Activation smoothing before 8-bit quantisation (the idea of SmoothQuant, without calibration
// data): a LayerNorm's output channel c is scaled down by s_c and the linear layers reading it
// are scaled up by s_c along that input channel, which leaves the float function unchanged but
// moves outliers from the activations (quantised at run time, per block of 32 channels) into
// the weights (quantised offline, per block). The activation range of channel c after a
// LayerNorm is estimated from its affine parameters, |γ_c| + |β_c|, since the normalised input
// has unit variance.
import type { ModelDims } from './manifest.js';
import type { WeightReader } from './graphs/encoder.js';

const ALPHA = 0.5;

interface Group {
  norm: string;
  linears: string[];
  /** Output features of each linear. */
  rows: number;
}

function groups(dims: ModelDims): Group[] {
  const out: Group[] = [];
  for (let i = 0; i < dims.encoderLayers; i++) {
    const p = `model.encoder.layers.${i}`;
    out.push({ norm: `${p}.self_attn_layer_norm`, linears: ['q', 'k', 'v'].map((x) => `${p}.self_attn.${x}_proj`), rows: dims.dModel });
    out.push({ norm: `${p}.final_layer_norm`, linears: [`${p}.fc1`], rows: dims.encoderFfn });
  }
  for (let i = 0; i < dims.decoderLayers; i++) {
    const p = `model.decoder.layers.${i}`;
    out.push({ norm: `${p}.self_attn_layer_norm`, linears: ['q', 'k', 'v'].map((x) => `${p}.self_attn.${x}_proj`), rows: dims.dModel });
    out.push({ norm: `${p}.encoder_attn_layer_norm`, linears: [`${p}.encoder_attn.q_proj`], rows: dims.dModel });
    out.push({ norm: `${p}.final_layer_norm`, linears: [`${p}.fc1`], rows: dims.decoderFfn });
  }
  return out;
}

/** A reader returning smoothed LayerNorm parameters and linear weights (same float function). */
export function smoothedReader(read: WeightReader, dims: ModelDims): WeightReader {
  const replaced = new Map<string, Float32Array>();
  const d = dims.dModel;
  for (const g of groups(dims)) {
    const gamma = read(`${g.norm}.weight`, [d]);
    const beta = read(`${g.norm}.bias`, [d]);
    const weights = g.linears.map((l) => read(`${l}.weight`, [g.rows, d]));
    const wMax = new Float32Array(d);
    for (const w of weights) {
      const rows = w.length / d;
      for (let r = 0; r < rows; r++) for (let c = 0; c < d; c++) wMax[c] = Math.max(wMax[c]!, Math.abs(w[r * d + c]!));
    }
    const s = new Float32Array(d);
    for (let c = 0; c < d; c++) {
      const a = Math.abs(gamma[c]!) + Math.abs(beta[c]!);
      const v = a > 0 && wMax[c]! > 0 ? Math.pow(a, ALPHA) / Math.pow(wMax[c]!, 1 - ALPHA) : 1;
      s[c] = Number.isFinite(v) && v > 0 ? v : 1;
    }
    replaced.set(`${g.norm}.weight`, gamma.map((x, c) => x / s[c]!));
    replaced.set(`${g.norm}.bias`, beta.map((x, c) => x / s[c]!));
    g.linears.forEach((l, k) => {
      const w = weights[k]!;
      replaced.set(`${l}.weight`, w.map((x, i) => x * s[i % d]!));
    });
  }
  return (name, shape) => replaced.get(name) ?? read(name, shape);
}
