// Dictation's pure parts: LocalAgreement-2 stabilisation, post-processing (fillers, user
// replacements, trailing space) and the streaming WAV writer (valid after every append).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SileroVad, SpeechSegmenter, decodeWav, loadAudio } from '../daemon/audio/index.js';
import { sharedPath } from './shared.js';
import { LocalAgreement, applyReplacements, postprocess, removeFillers, tailStart, WavWriter, floatToS16, s16ToFloat } from '../daemon/dictation/index.js';

describe('LocalAgreement-2', () => {
  it('commits words two consecutive hypotheses agree on, keeping the newest word tentative', () => {
    const la = new LocalAgreement();
    expect(la.update('The wife')).toEqual({ committed: [], tentative: ['The', 'wife'] });
    // Agree on "The"; "wise" vs "wife" disagree.
    expect(la.update('The wise ship')).toEqual({ committed: ['The'], tentative: ['wise', 'ship'] });
    // "wise shepherd never" agrees with nothing new beyond "wise": ship ≠ shepherd.
    expect(la.update('The wise shepherd never')).toEqual({ committed: ['The', 'wise'], tentative: ['shepherd', 'never'] });
    // Full agreement still leaves the last word tentative (it may be cut off mid-word).
    expect(la.update('The wise shepherd never')).toEqual({ committed: ['The', 'wise', 'shepherd'], tentative: ['never'] });
  });

  it('never changes committed words, even when a later hypothesis rewrites them', () => {
    const la = new LocalAgreement();
    const seen: string[] = [];
    for (const h of ['one two', 'one two three', 'one two three four', 'won too three four five', 'one two three four five six']) {
      seen.push(la.update(h).committed.join(' '));
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.startsWith(seen[i - 1]!)).toBe(true);
    expect(la.finish('one two three four five six seven.')).toEqual(['one', 'two', 'three', 'four', 'five', 'six', 'seven.']);
  });

  it('ignores case and punctuation when comparing words', () => {
    const la = new LocalAgreement();
    la.update('Hello, world again');
    expect(la.update('hello world. Again and').committed).toEqual(['hello', 'world.', 'Again']);
  });

  it('with a minimum span, compares with the latest hypothesis that heard that much less audio', () => {
    const la = new LocalAgreement({ minSpanS: 0.7 });
    // 150-ms steps: the same words at 0.15 and 0.3 s do not commit (too little audio between).
    expect(la.update('The wise ship', 0.15).committed).toEqual([]);
    expect(la.update('The wise ship', 0.3).committed).toEqual([]);
    expect(la.update('The wise shepherd', 0.6).committed).toEqual([]);
    // At 0.9 s the reference is the 0.15-s hypothesis: "The wise" agree ("ship" ≠ "shepherd").
    expect(la.update('The wise shepherd never', 0.9)).toEqual({ committed: ['The', 'wise'], tentative: ['shepherd', 'never'] });
    // At 1.3 s the reference is the 0.6-s one: "shepherd" agrees and commits.
    expect(la.update('The wise shepherd never trusts', 1.3)).toEqual({ committed: ['The', 'wise', 'shepherd'], tentative: ['never', 'trusts'] });
  });

  it('finds where a hypothesis continues after the committed words (LCS alignment)', () => {
    expect(tailStart(['a', 'b', 'c'], ['a', 'b', 'c', 'd'])).toBe(3);
    // A dropped committed word: continue after the last one that lines up.
    expect(tailStart(['a', 'b', 'c'], ['a', 'c', 'd', 'e'])).toBe(2);
    // A doubled word.
    expect(tailStart(['a', 'b'], ['a', 'a', 'b', 'x'])).toBe(3);
    expect(tailStart([], ['x'])).toBe(0);
  });
});

describe('post-processing', () => {
  it('removes filler words and their commas, restoring the capital', () => {
    expect(removeFillers('Um, so I think, uh, we should go.')).toBe('So I think, we should go.');
    expect(removeFillers('I like hummus and umbrellas')).toBe('I like hummus and umbrellas');
    expect(postprocess('Hmm. Okay', { removeFillers: true })).toBe('Okay');
  });

  it('applies user replacements on whole words, case-insensitively, longest phrase first', () => {
    const r = { 'new york': 'New York', 'new york city': 'NYC', wx: 'WX' };
    expect(applyReplacements('I moved to new york city from new  York with wx, not wxyz', r)).toBe('I moved to NYC from New York with WX, not wxyz');
  });

  it('adds a trailing space only when asked and only after text', () => {
    expect(postprocess(' hello ', { trailingSpace: true })).toBe('hello ');
    expect(postprocess('hello', {})).toBe('hello');
    expect(postprocess('', { trailingSpace: true })).toBe('');
  });
});

describe('WavWriter', () => {
  it('is a valid WAV with every sample after each append (as if the daemon died there)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-wav-'));
    try {
      const file = path.join(dir, 'd.wav');
      const w = WavWriter.create(file, 16000);
      const a = Float32Array.from({ length: 1600 }, (_, i) => Math.sin(i / 10) * 0.5);
      w.append(a);
      let read = decodeWav(fs.readFileSync(file), file);
      expect(read.sampleRate).toBe(16000);
      expect(read.samples.length).toBe(1600);
      w.append(a.subarray(0, 800));
      read = decodeWav(fs.readFileSync(file), file);
      expect(read.samples.length).toBe(2400);
      const back = s16ToFloat(floatToS16(a));
      for (let i = 0; i < a.length; i += 97) expect(read.samples[i]).toBeCloseTo(back[i]!, 4);
      w.close();
      expect(() => WavWriter.create(file, 16000)).toThrow(/cannot create/);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SpeechSegmenter.lastSpeechEndS (where the final decode may stop listening)', () => {
  it('is the end of the last speech frame, before the confirming silence, on dev clips', async () => {
    const manifest = JSON.parse(fs.readFileSync(sharedPath('fixtures', 'speech', 'manifest.json'), 'utf8')) as { clips: { file: string; end: number }[] };
    const vad = await SileroVad.load();
    try {
      for (const clip of manifest.clips.slice(0, 5)) {
        const samples = await loadAudio(sharedPath('fixtures', 'speech', clip.file));
        const seg = new SpeechSegmenter(vad, { minSilenceMs: 400 });
        expect(seg.lastSpeechEndS).toBe(-1);
        for (let off = 0; off < samples.length; off += 1600) await seg.push(samples.subarray(off, off + 1600));
        // Within two frames (64 ms) plus the speech's soft ending of the true end.
        expect(Math.abs(seg.lastSpeechEndS - clip.end), clip.file).toBeLessThan(0.15);
        seg.reset();
        expect(seg.lastSpeechEndS).toBe(-1);
      }
    } finally {
      await vad.close();
    }
  });
});
