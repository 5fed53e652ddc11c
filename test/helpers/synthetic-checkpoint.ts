// Writes a random-weight Whisper checkpoint in the Hugging Face layout (config, preprocessor,
// generation config, tokenizer, model.safetensors) for shapes the shared model lacks:
// multilingual vocabularies, 128 mel bins, other layer counts. Only shapes matter here.
import fs from 'node:fs';
import path from 'node:path';
import { writeSyntheticTokenizer, type SyntheticTokenizerLayout } from './synthetic-tokenizer.js';

export interface SyntheticCheckpointOptions {
  multilingual: boolean;
  vocabSize?: number;
  nMels?: number;
  dModel?: number;
  heads?: number;
  encoderLayers?: number;
  decoderLayers?: number;
  ffn?: number;
  dtype?: 'F16' | 'F32';
  seed?: number;
}

function f32ToF16Bits(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mant >>> 13);
}

export function writeSafetensors(file: string, tensors: { name: string; shape: number[]; values: Float32Array }[], dtype: 'F16' | 'F32'): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  const bytesPer = dtype === 'F16' ? 2 : 4;
  for (const t of tensors) {
    const n = t.values.length * bytesPer;
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  const body = Buffer.alloc(offset);
  let at = 0;
  for (const t of tensors) {
    if (dtype === 'F16') for (let i = 0; i < t.values.length; i++, at += 2) body.writeUInt16LE(f32ToF16Bits(t.values[i]!), at);
    else for (let i = 0; i < t.values.length; i++, at += 4) body.writeFloatLE(t.values[i]!, at);
  }
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(json, 'utf8'), body]));
}

export function writeSyntheticCheckpoint(dir: string, o: SyntheticCheckpointOptions): SyntheticTokenizerLayout & { config: Record<string, unknown> } {
  fs.mkdirSync(dir, { recursive: true });
  const layout = writeSyntheticTokenizer(dir, { multilingual: o.multilingual, ...(o.vocabSize ? { vocabSize: o.vocabSize } : {}) });
  const d = o.dModel ?? 64;
  const heads = o.heads ?? 2;
  const nMels = o.nMels ?? 80;
  const encL = o.encoderLayers ?? 1;
  const decL = o.decoderLayers ?? 2;
  const ffn = o.ffn ?? 4 * d;
  const V = layout.vocabSize;
  const T = 1500;
  const nText = 448;
  let seed = o.seed ?? 1234;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  };
  const tensors: { name: string; shape: number[]; values: Float32Array }[] = [];
  const add = (name: string, shape: number[], scale = 0.1, constant?: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = constant ?? rnd() * scale;
    tensors.push({ name, shape, values });
  };
  const lnorm = (p: string) => {
    add(`${p}.weight`, [d], 0, 1);
    add(`${p}.bias`, [d], 0.01);
  };
  const attn = (p: string) => {
    for (const x of ['q', 'k', 'v', 'out']) {
      add(`${p}.${x}_proj.weight`, [d, d]);
      if (x !== 'k') add(`${p}.${x}_proj.bias`, [d], 0.01);
    }
  };
  add('model.encoder.conv1.weight', [d, nMels, 3]);
  add('model.encoder.conv1.bias', [d], 0.01);
  add('model.encoder.conv2.weight', [d, d, 3]);
  add('model.encoder.conv2.bias', [d], 0.01);
  add('model.encoder.embed_positions.weight', [T, d]);
  for (let i = 0; i < encL; i++) {
    const p = `model.encoder.layers.${i}`;
    attn(`${p}.self_attn`);
    lnorm(`${p}.self_attn_layer_norm`);
    lnorm(`${p}.final_layer_norm`);
    add(`${p}.fc1.weight`, [ffn, d]);
    add(`${p}.fc1.bias`, [ffn], 0.01);
    add(`${p}.fc2.weight`, [d, ffn]);
    add(`${p}.fc2.bias`, [d], 0.01);
  }
  lnorm('model.encoder.layer_norm');
  add('model.decoder.embed_tokens.weight', [V, d]);
  add('model.decoder.embed_positions.weight', [nText, d]);
  for (let i = 0; i < decL; i++) {
    const p = `model.decoder.layers.${i}`;
    attn(`${p}.self_attn`);
    attn(`${p}.encoder_attn`);
    lnorm(`${p}.self_attn_layer_norm`);
    lnorm(`${p}.encoder_attn_layer_norm`);
    lnorm(`${p}.final_layer_norm`);
    add(`${p}.fc1.weight`, [ffn, d]);
    add(`${p}.fc1.bias`, [ffn], 0.01);
    add(`${p}.fc2.weight`, [d, ffn]);
    add(`${p}.fc2.bias`, [d], 0.01);
  }
  lnorm('model.decoder.layer_norm');
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors, o.dtype ?? 'F16');
  const config = {
    model_type: 'whisper', architectures: ['WhisperForConditionalGeneration'], activation_function: 'gelu',
    d_model: d, encoder_attention_heads: heads, decoder_attention_heads: heads, encoder_layers: encL, decoder_layers: decL,
    encoder_ffn_dim: ffn, decoder_ffn_dim: ffn, num_mel_bins: nMels, max_source_positions: T, max_target_positions: nText,
    vocab_size: V, scale_embedding: false, tie_word_embeddings: true,
    bos_token_id: layout.sot, eos_token_id: layout.eot, decoder_start_token_id: layout.sot, pad_token_id: layout.eot,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ feature_size: nMels, hop_length: 160, n_fft: 400, sampling_rate: 16000, chunk_length: 30, n_samples: 480000, nb_max_frames: 3000 }, null, 2));
  return { ...layout, config };
}
