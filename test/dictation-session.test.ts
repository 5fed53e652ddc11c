// DictationSession in-process with the real model and the real Silero VAD: an utterance longer
// than the 25-s limit rolls over into several final segments without losing the text, silence
// gives an empty final, and committed text never changes along the way.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SileroVad, loadAudio } from '../daemon/audio/index.js';
import { DictationSession, decodeUtterance, engineWindowModel, type DictationPartial, type UtteranceDecoder } from '../daemon/dictation/index.js';
import { Transcriber } from '../daemon/pipeline/index.js';
import { wordErrorRate } from '../daemon/pipeline/wer.js';
import { sharedPath, tinyModelDir } from './shared.js';
import { tempHome } from './daemon-helpers.js';

let transcriber: Transcriber;
let vad: SileroVad;
let decoder: UtteranceDecoder;
let home: string;

beforeAll(async () => {
  home = tempHome();
  transcriber = await Transcriber.open({ model: tinyModelDir(), precision: 'int8', home, threads: 2 });
  vad = await SileroVad.load();
  const engine = transcriber.engine;
  decoder = { decodeUtterance: (req) => decodeUtterance(engineWindowModel(engine), engine, req) };
}, 120_000);

afterAll(async () => {
  await transcriber?.close();
  await vad?.close();
  fs.rmSync(home, { recursive: true, force: true });
});

async function dictate(samples: Float32Array, mode: 'low' | 'balanced' | 'high' = 'high') {
  const partials: DictationPartial[] = [];
  const session = new DictationSession({ mode, decoder, vad, onPartial: (p) => partials.push(p) });
  for (let off = 0; off < samples.length; off += 1600) {
    session.push(samples.subarray(off, Math.min(samples.length, off + 1600)));
    // Faster than real time, but the VAD (and so the partial decodes) keeps up with the audio.
    await session.vadSettled();
  }
  const result = await session.stop();
  return { result, partials };
}

describe('DictationSession (real model, real VAD)', () => {
  it('rolls an utterance over at 25 s: several segments, none longer, the text kept', async () => {
    const manifest = JSON.parse(fs.readFileSync(sharedPath('fixtures', 'speech', 'manifest.json'), 'utf8')) as { clips: { file: string; text: string; start: number; end: number }[] };
    // Clips trimmed to their speech with 0.15-s gaps: no pause reaches the 400-ms end of an
    // utterance, so only the length limit can cut it.
    const parts: Float32Array[] = [];
    const truths: string[] = [];
    let total = 0;
    for (const clip of manifest.clips) {
      if (total > 40 * 16000) break;
      const s = await loadAudio(sharedPath('fixtures', 'speech', clip.file));
      const piece = s.subarray(Math.floor(clip.start * 16000), Math.ceil(clip.end * 16000));
      parts.push(piece, new Float32Array(2400));
      truths.push(clip.text);
      total += piece.length + 2400;
    }
    const audio = new Float32Array(total);
    let at = 0;
    for (const p of parts) {
      audio.set(p, at);
      at += p.length;
    }
    const { result, partials } = await dictate(audio);
    expect(result.utterances.length).toBeGreaterThanOrEqual(2);
    for (const u of result.utterances) expect(u.end - u.start).toBeLessThanOrEqual(25.5);
    let prev = '';
    for (const p of partials) {
      expect(p.committed.startsWith(prev)).toBe(true);
      prev = p.committed;
    }
    expect(result.text.startsWith(prev)).toBe(true);
    // The test model's own WER on these clips is ~30%; a lost stretch of text would be far worse.
    expect(wordErrorRate(truths.join(' '), result.text).wer).toBeLessThan(0.5);
  }, 120_000);

  it('continues committed words (a forced prefix) without re-deciding or gluing onto them', async () => {
    const samples = await loadAudio(sharedPath('fixtures', 'speech', 'dev-000.wav'));
    const free = await decoder.decodeUtterance({ samples });
    const words = free.text.split(/\s+/);
    expect(words.length).toBeGreaterThan(4);
    // A prefix the model would not say itself, ending on a word the audio continues mid-way.
    const prefix = 'The wise ship';
    const h = await decoder.decodeUtterance({ samples, prefix });
    expect(h.text.startsWith(prefix)).toBe(true);
    const rest = h.text.slice(prefix.length);
    expect(rest === '' || /^[\s,.;:!?]/.test(rest)).toBe(true);
    expect(rest.trim().length).toBeGreaterThan(0);
    expect(transcriber.engine.tokenizer.decode(h.tokens).trim()).toBe(h.text);
    // Text-only: a prefix with timestamps is refused with a reason.
    const engine = transcriber.engine;
    const enc = await engine.encodeAudio(samples, [0], [samples.length]);
    await expect(engine.decode([{ enc, index: 0, options: { timestamps: true, prefix: engine.tokenizer.encode(' The') } }])).rejects.toThrow(/text-only/);
  }, 60_000);

  it('silence gives an empty final and no text partials', async () => {
    const { result, partials } = await dictate(await loadAudio(sharedPath('fixtures', 'fx-silence.wav')), 'low');
    expect(result.text).toBe('');
    expect(result.utterances).toEqual([]);
    expect(partials.filter((p) => p.committed || p.tentative)).toEqual([]);
    expect(result.stats.audioS).toBeGreaterThan(1);
  }, 60_000);
});
