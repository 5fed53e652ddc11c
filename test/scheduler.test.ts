// The scheduler that drives the model for every request: windows of different recordings share
// encoder runs and decoder steps, results equal unbatched decoding, priorities hold.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importModel } from '../daemon/engine/import.js';
import { WhisperEngine } from '../daemon/engine/index.js';
import { EngineScheduler } from '../daemon/engine/scheduler.js';
import { batchLimits, crossBytesPerWindow } from '../daemon/engine/limits.js';
import type { ModelDims } from '../daemon/engine/manifest.js';
import { loadAudio } from '../daemon/audio/index.js';
import { sharedPath, tinyModelDir } from './shared.js';

let home: string;
let engine: WhisperEngine;
let clips: Float32Array[];

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-sched-'));
  const m = await importModel(tinyModelDir(), { home, name: 'tiny', precision: 'int8' });
  engine = await WhisperEngine.open(m.dir, { precision: 'int8', threads: 2 });
  clips = await Promise.all(['dev-000.wav', 'dev-001.wav', 'dev-002.wav', 'dev-003.wav', 'dev-004.wav', 'dev-005.wav'].map((f) => loadAudio(sharedPath('fixtures', 'speech', f))));
});

afterAll(async () => {
  await engine?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

const win = (s: Float32Array) => Math.min(s.length, engine.windowSamples);

describe('batch limits from the model size', () => {
  const whisper = (dModel: number, heads: number, decoderLayers: number): ModelDims => ({ nMels: 128, nAudioCtx: 1500, dModel, encoderLayers: 32, encoderHeads: heads, decoderLayers, decoderHeads: heads, nVocab: 51866, nTextCtx: 448, encoderFfn: 4 * dModel, decoderFfn: 4 * dModel });
  it('keeps tiny at its measured defaults and scales large checkpoints down', () => {
    expect(engine.model.crossFormat).toBe('int8');
    expect(batchLimits(engine.model.dims, engine.model.crossFormat)).toEqual({ maxRows: 8, beamRows: 16, maxEncoderBatch: 4, windowsInFlight: 12 });
    const turbo = whisper(1280, 20, 4);
    expect(Math.round(crossBytesPerWindow(turbo) / 2 ** 20)).toBe(59);
    expect(batchLimits(turbo)).toEqual({ maxRows: 8, beamRows: 16, maxEncoderBatch: 1, windowsInFlight: 4 });
    // large-v3: 32 decoder layers, ~490 MB of cross keys/values per window.
    expect(batchLimits(whisper(1280, 20, 32))).toEqual({ maxRows: 1, beamRows: 2, maxEncoderBatch: 1, windowsInFlight: 1 });
    // Held as int8 by the native cross-attention (~133 MB per window), large-v3 gets 3 rows: a
    // beam of 5 fits. Windows waiting for the decoder are int8 too: turbo keeps 12 of them
    // (~15 MB each) where float32 allowed 4.
    expect(Math.round(crossBytesPerWindow(whisper(1280, 20, 32), 'int8') / 2 ** 20)).toBe(133);
    expect(batchLimits(whisper(1280, 20, 32), 'int8')).toEqual({ maxRows: 3, beamRows: 6, maxEncoderBatch: 1, windowsInFlight: 1 });
    expect(batchLimits(turbo, 'int8')).toEqual({ maxRows: 8, beamRows: 16, maxEncoderBatch: 1, windowsInFlight: 12 });
  });
});

describe('EngineScheduler', () => {
  it('batched across requests gives the same tokens as one window at a time, with shared steps', async () => {
    const alone: number[][] = [];
    for (const s of clips) {
      const enc = await engine.encodeAudio(s, [0], [win(s)]);
      alone.push((await engine.decode([{ enc, index: 0, options: { timestamps: true } }], { maxRows: 1 }))[0]!.tokens);
    }
    const sched = new EngineScheduler(engine, { maxRows: 4, maxEncoderBatch: 3 });
    // Six independent requests at once, as six recordings would arrive.
    const together = await Promise.all(
      clips.map(async (s) => {
        const enc = await sched.encode(s, [0], [win(s)]);
        return (await sched.decode([{ enc, index: 0, options: { timestamps: true } }]))[0]!.tokens;
      }),
    );
    expect(together).toEqual(alone);
    expect(sched.stats.encoderRuns).toBeLessThan(clips.length); // windows of different requests shared runs
    expect(sched.stats.rowSteps / sched.stats.decoderSteps).toBeGreaterThan(1.5); // rows shared steps
    // It accounts its own time by part (the batching bench reports each part's gain from these).
    expect(sched.stats.encoderMs).toBeGreaterThan(0);
    expect(sched.stats.decoderMs).toBeGreaterThan(0);
    await sched.close();
  });

  it('beam windows of several requests share steps past the greedy row cap, with their tokens alone', async () => {
    const encs = await Promise.all(clips.slice(0, 3).map((s) => engine.encodeAudio(s, [0], [win(s)])));
    const alone: number[][] = [];
    for (const enc of encs) alone.push((await engine.decode([{ enc, index: 0, options: { beamSize: 5 } }]))[0]!.tokens);
    const sched = new EngineScheduler(engine); // 8 greedy rows, 16 in all
    const together = await Promise.all(encs.map(async (enc) => (await sched.decode([{ enc, index: 0, options: { beamSize: 5 } }]))[0]!.tokens));
    expect(together).toEqual(alone);
    // Three searches of five hypotheses ran side by side (with 8 rows only one fits at a time).
    expect(sched.stats.rowSteps / sched.stats.decoderSteps, `${sched.stats.rowSteps} rows in ${sched.stats.decoderSteps} steps`).toBeGreaterThan(8);
    await sched.close();
  });

  it('an interactive window joins the running batch at once, ahead of a backlog', async () => {
    const sched = new EngineScheduler(engine, { maxRows: 4, reservedRows: 1 });
    const enc = await engine.encodeAudio(clips[0]!, [0], [win(clips[0]!)]);
    const order: string[] = [];
    const backlog = Array.from({ length: 12 }, (_, i) =>
      sched.decode([{ enc, index: 0, options: { timestamps: true } }], { priority: 'backlog' }).then(() => order.push(`b${i}`)),
    );
    // Let the backlog start decoding before the interactive request arrives.
    while (sched.stats.decoderSteps < 3) await new Promise<void>((r) => setImmediate(r));
    const stepsAtSubmit = sched.stats.decoderSteps;
    let stepsAtJoin = -1;
    const interactive = sched.decode([{ enc, index: 0, options: { timestamps: true } }], { priority: 'interactive' }).then(() => order.push('i'));
    // The reserved row lets it join without waiting for a backlog row to finish.
    while (stepsAtJoin < 0) {
      await new Promise<void>((r) => setImmediate(r));
      if (sched.stats.activeRows > 3 || order.includes('i')) stepsAtJoin = sched.stats.decoderSteps;
    }
    expect(stepsAtJoin - stepsAtSubmit).toBeLessThanOrEqual(1);
    await Promise.all([...backlog, interactive]);
    // The interactive row finished before most of the backlog, which was queued before it.
    expect(order.indexOf('i')).toBeLessThan(6);
    await sched.close();
  });

  it('while dictation is active, backlog encoder work waits; dictation is served first', async () => {
    const s = clips[2]!;
    const offsets = [0, 0, 0, 0];
    const lengths = offsets.map(() => win(s));
    const idle = new EngineScheduler(engine, { maxEncoderBatch: 4 });
    await idle.encode(s, offsets, lengths, { priority: 'backlog' });
    expect(idle.stats.encoderRuns).toBe(1);
    await idle.close();

    const busy = new EngineScheduler(engine, { maxEncoderBatch: 4 });
    await busy.encode(s, [0], [win(s)], { priority: 'dictation' });
    const order: string[] = [];
    const backlog = busy.encode(s, offsets, lengths, { priority: 'backlog' }).then(() => order.push('backlog'));
    // The scheduler holds the backlog instead of encoding it…
    while (!busy.stats.backlogHeld) await new Promise<void>((r) => setImmediate(r));
    expect(busy.stats.windowsEncoded).toBe(1);
    // …so the next dictation request, submitted later, is encoded before it.
    const dictation = busy.encode(s, [0], [win(s)], { priority: 'dictation' }).then(() => {
      order.push('dictation');
      return busy.stats.windowsEncoded;
    });
    const [, windowsWhenDictationDone] = await Promise.all([backlog, dictation]);
    expect(order).toEqual(['dictation', 'backlog']);
    expect(windowsWhenDictationDone).toBe(2); // the two dictation windows, no backlog window yet
    expect(busy.stats.windowsEncoded).toBe(6);
    await busy.close();
  });

  it('rejects work after close, and a failing request does not stop the others', async () => {
    const sched = new EngineScheduler(engine);
    const bad = sched.encode(new Float32Array(10), [0], [10, 20]);
    await expect(bad).rejects.toThrow(/one length per offset/);
    const ok = await sched.encode(clips[1]!, [0], [win(clips[1]!)]);
    expect(ok.batch).toBe(1);
    await sched.close();
    await expect(sched.encode(clips[1]!, [0], [win(clips[1]!)])).rejects.toThrow(/shutting down/);
  });
});
