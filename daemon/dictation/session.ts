// One dictation: 16 kHz audio arrives in small frames; a streaming Silero VAD finds where
// utterances start and end; the open utterance is decoded again at the mode's cadence and its
// hypotheses stabilised by LocalAgreement-2 (partial = committed + tentative); a closed
// utterance is decoded once more in full and becomes final. `stop()` closes what is open and
// resolves with the final text once every utterance is final.
import { WxError, describeError } from '../errors.js';
import { SpeechSegmenter, type SegmenterEvent, type SileroVad } from '../audio/vad.js';
import { LocalAgreement } from './agreement.js';
import type { UtteranceHypothesis, UtteranceRequest } from './window.js';

export const SAMPLE_RATE = 16_000;
export type DictationMode = 'low' | 'balanced' | 'high';
/** Re-decode cadence of the open utterance by mode (audio time between decodes). */
export const CADENCE_MS: Record<DictationMode, number> = { low: 150, balanced: 350, high: 750 };
/** Audio kept after the last speech frame for a decode to count as having heard the utterance. */
const TAIL_MARGIN_SAMPLES = Math.round(0.15 * SAMPLE_RATE);
/** A word is committed when two hypotheses at least this much audio apart agree on it (in every
 *  mode: the cadence sets how often text updates, not how soon it is trusted). On the 100 dev
 *  clips, final WER in low/balanced: 36.9/35.6% at 0.3 s, 32.4/32.0% at 0.7 s, 32.2/31.8% at 1 s. */
const COMMIT_SPAN_S = 0.7;
export const DICTATION_MODES = Object.keys(CADENCE_MS) as DictationMode[];

export interface UtteranceDecoder {
  decodeUtterance(request: UtteranceRequest): Promise<UtteranceHypothesis>;
}

export interface DictationSessionOptions {
  mode: DictationMode;
  decoder: UtteranceDecoder;
  vad: SileroVad;
  /** Audio kept in front of detected speech so the first word is whole (300 ms). */
  preRollMs?: number;
  /** An utterance is cut (at a pause when there is one) once it is this long (25 s). */
  maxUtteranceS?: number;
  /** Silence that ends an utterance (400 ms). */
  minSilenceMs?: number;
  language?: string;
  /** Audio context of each decode (UtteranceRequest.context, whose default is `fit`). */
  audioContext?: 'fit' | 'full';
  onPartial?: (p: DictationPartial) => void;
}

export interface DictationPartial {
  committed: string;
  tentative: string;
}

export interface FinalUtterance {
  /** Seconds from the first sample of the session. */
  start: number;
  end: number;
  text: string;
  tokens: number[];
  avgLogprob: number;
  noSpeechProb: number;
}

export interface SessionStats {
  /** Partial notifications sent. */
  partials: number;
  /** Decodes run (partial and final). */
  decodes: number;
  decodeMsMean: number;
  /** Audio seconds received when the first partial with text went out (null: none did). */
  firstTextAudioS: number | null;
  audioS: number;
}

export interface SessionResult {
  text: string;
  utterances: FinalUtterance[];
  /** From stop() to the final text being ready. */
  latencyMs: number;
  stats: SessionStats;
}

interface Utterance {
  start: number;
  /** Sample where it ended; null while open. */
  end: number | null;
  readonly agreement: LocalAgreement;
  /** Audio end the last partial decode was started on. */
  decodedTo: number;
  lastHypothesis: { text: string; coversTo: number; h: UtteranceHypothesis } | null;
  final: { words: string[]; h: UtteranceHypothesis | null } | null;
}

/** Whisper's no-speech rule: the model says "no speech" and is not confident in any text. */
function isNoSpeech(h: UtteranceHypothesis): boolean {
  return h.noSpeechProb > 0.6 && h.avgLogprob < -1;
}

/** 16-kHz audio from an absolute sample index on; old audio is dropped once nothing needs it. */
class SampleBuffer {
  private data = new Float32Array(SAMPLE_RATE * 4);
  private length = 0;
  /** Absolute index of data[0]. */
  private base = 0;

  get end(): number {
    return this.base + this.length;
  }

  append(samples: Float32Array): void {
    if (this.length + samples.length > this.data.length) {
      const grown = new Float32Array(Math.max(this.data.length * 2, this.length + samples.length));
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    this.data.set(samples, this.length);
    this.length += samples.length;
  }

  slice(from: number, to: number): Float32Array {
    const a = Math.max(from, this.base) - this.base;
    const b = Math.min(to, this.end) - this.base;
    return this.data.slice(a, Math.max(a, b));
  }

  discardBefore(abs: number): void {
    const drop = Math.min(Math.max(0, abs - this.base), this.length);
    if (drop < SAMPLE_RATE) return; // not worth a copy yet
    this.data.copyWithin(0, drop, this.length);
    this.length -= drop;
    this.base += drop;
  }
}

export class DictationSession {
  private readonly buffer = new SampleBuffer();
  private readonly segmenter: SpeechSegmenter;
  private readonly cadenceSamples: number;
  private readonly preRollSamples: number;
  private readonly utterances: Utterance[] = [];
  private vadChain: Promise<void> = Promise.resolve();
  private partialInFlight = false;
  /** The partial decode running now, if any (its result lands in `u.lastHypothesis`). */
  private inflight: { u: Utterance; to: number; done: Promise<void> } | null = null;
  private finalizing: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private stopped = false;
  /** The final went out: no partial may follow it. */
  private done = false;
  private lastPartial = '\u0000';
  private readonly stats = { partials: 0, decodes: 0, decodeMs: 0, firstTextAudioS: null as number | null };

  constructor(private readonly opts: DictationSessionOptions) {
    this.cadenceSamples = Math.round((CADENCE_MS[opts.mode] * SAMPLE_RATE) / 1000);
    this.preRollSamples = Math.round(((opts.preRollMs ?? 300) * SAMPLE_RATE) / 1000);
    this.segmenter = new SpeechSegmenter(opts.vad, {
      preRollMs: opts.preRollMs ?? 300,
      minSilenceMs: opts.minSilenceMs ?? 400,
      maxSpeechS: opts.maxUtteranceS ?? 25,
    });
  }

  get audioS(): number {
    return this.buffer.end / SAMPLE_RATE;
  }

  /** Takes the next 16-kHz samples. VAD and decoding follow asynchronously. */
  push(samples: Float32Array): void {
    if (this.stopped) throw new WxError('dictation.stopped', 'audio after the dictation was stopped');
    this.buffer.append(samples);
    this.vadChain = this.vadChain.then(async () => {
      if (this.failure) return;
      try {
        this.onVad(await this.segmenter.push(samples));
      } catch (err) {
        this.fail(err);
      }
    });
  }

  /** Resolves once the VAD has read everything pushed so far (a producer faster than real time
   *  can wait on it to keep the session's view of the audio current). */
  async vadSettled(): Promise<void> {
    await this.vadChain;
  }

  /** No more audio: closes the open utterance, waits for every final decode. */
  async stop(): Promise<SessionResult> {
    const stoppedAt = performance.now();
    this.stopped = true;
    await this.vadChain;
    if (!this.failure) this.onVad(this.segmenter.flush(), true);
    // Anything still open ends with the audio.
    for (const u of this.utterances) if (u.end === null) this.close(u, this.buffer.end);
    await this.finalizing;
    this.done = true;
    if (this.failure) throw this.failure;
    const utterances: FinalUtterance[] = [];
    for (const u of this.utterances) {
      const text = u.final!.words.join(' ');
      if (!text) continue;
      const h = u.final!.h;
      utterances.push({ start: u.start / SAMPLE_RATE, end: u.end! / SAMPLE_RATE, text, tokens: h?.tokens ?? [], avgLogprob: h?.avgLogprob ?? 0, noSpeechProb: h?.noSpeechProb ?? 0 });
    }
    return {
      text: utterances.map((u) => u.text).join(' '),
      utterances,
      latencyMs: performance.now() - stoppedAt,
      stats: {
        partials: this.stats.partials,
        decodes: this.stats.decodes,
        decodeMsMean: this.stats.decodes ? this.stats.decodeMs / this.stats.decodes : 0,
        firstTextAudioS: this.stats.firstTextAudioS,
        audioS: this.audioS,
      },
    };
  }

  /** Drops everything; pending decodes finish in the background and are ignored. */
  cancel(): void {
    this.stopped = true;
    this.failure ??= new WxError('dictation.cancelled', 'the dictation was cancelled');
  }

  private fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new WxError('dictation.failed', describeError(err));
  }

  private onVad(events: SegmenterEvent[], flushing = false): void {
    for (const e of events) {
      const at = Math.round(e.atS * SAMPLE_RATE);
      const open = this.utterances.at(-1);
      if (e.type === 'start') {
        if (open && open.end === null) continue;
        this.utterances.push({ start: Math.max(at, open?.end ?? 0), end: null, agreement: new LocalAgreement({ minSpanS: COMMIT_SPAN_S }), decodedTo: 0, lastHypothesis: null, final: null });
      } else if (open && open.end === null) {
        this.close(open, Math.min(Math.max(at, open.start), this.buffer.end));
      }
    }
    if (!flushing) this.pumpPartial();
    const first = this.utterances.find((u) => u.final === null);
    // The VAD may lag the audio: a start it reports later can reach back a pre-roll (and a
    // second for its minimum speech) before where it has read to.
    const vadAt = Math.round(this.segmenter.processedS * SAMPLE_RATE);
    this.buffer.discardBefore(Math.min(first?.start ?? Infinity, vadAt - this.preRollSamples - SAMPLE_RATE));
  }

  /** Closes an utterance and queues its final decode behind the previous ones (in order, so each
   *  is prompted with the text before it). */
  private close(u: Utterance, end: number): void {
    u.end = end;
    this.finalizing = this.finalizing.then(() => this.finalize(u));
  }

  private async finalize(u: Utterance): Promise<void> {
    if (this.failure) return;
    const end = u.end!;
    // Words end where speech does: audio past the last speech frame (plus a margin for soft word
    // endings) adds nothing, so a partial decode that saw up to there is the final decode. At
    // stop this usually saves a whole decode (trailing silence is shorter than the VAD's
    // minimum silence, so the utterance is still open then).
    const lastSpeech = Math.round(this.segmenter.lastSpeechEndS * SAMPLE_RATE);
    const needTo = lastSpeech >= u.start ? Math.min(end, lastSpeech + TAIL_MARGIN_SAMPLES) : end;
    const running = this.inflight;
    if (running && running.u === u && running.to >= needTo) await running.done;
    let h: UtteranceHypothesis;
    // …unless it also heard the start of the next utterance (a cut at the length limit).
    const next = this.utterances[this.utterances.indexOf(u) + 1];
    if (u.lastHypothesis && u.lastHypothesis.coversTo >= needTo && (!next || next.start >= u.lastHypothesis.coversTo)) h = u.lastHypothesis.h;
    else {
      try {
        h = await this.decode(u, end);
      } catch (err) {
        this.fail(err);
        return;
      }
    }
    u.final = { words: isNoSpeech(h) ? u.agreement.finish('') : u.agreement.finish(h.text), h };
    this.emitPartial();
  }

  private promptBefore(u: Utterance): string {
    const words: string[] = [];
    for (const p of this.utterances) {
      if (p === u) break;
      words.push(...(p.final ? p.final.words : p.agreement.bestSoFar()));
    }
    return words.slice(-40).join(' ');
  }

  private async decode(u: Utterance, end: number): Promise<UtteranceHypothesis> {
    const request: UtteranceRequest = { samples: this.buffer.slice(u.start, end) };
    if (this.opts.audioContext) request.context = this.opts.audioContext;
    // Committed words are never decoded again: the model continues them. A free decode would
    // re-guess them and the merge of its words with the committed ones loses or doubles words
    // (dev clips, balanced: 38.2% WER free vs 35.6% continued, same commits).
    const committed = u.agreement.state().committed.join(' ');
    if (committed) request.prefix = committed;
    const prompt = this.promptBefore(u);
    if (prompt) request.prompt = prompt;
    if (this.opts.language) request.language = this.opts.language;
    const h = await this.opts.decoder.decodeUtterance(request);
    this.stats.decodes++;
    this.stats.decodeMs += h.decodeMs;
    return h;
  }

  /** Starts a partial decode of the open utterance when the cadence says so and none is running. */
  private pumpPartial(): void {
    if (this.partialInFlight || this.stopped || this.failure) return;
    const u = this.utterances.at(-1);
    if (!u || u.end !== null) return;
    // Only audio the VAD has seen: the utterance may end (or be cut) before the rest.
    const to = Math.min(this.buffer.end, Math.round(this.segmenter.processedS * SAMPLE_RATE));
    if (to - Math.max(u.decodedTo, u.start) < this.cadenceSamples) return;
    u.decodedTo = to;
    this.partialInFlight = true;
    const done = this.decode(u, to).then(
      (h) => {
        this.partialInFlight = false;
        if (this.stopped && this.failure) return;
        // A later utterance may already be open; this one may have closed (then its final decode
        // can reuse this hypothesis if it covers the whole utterance).
        if (u.final === null) {
          u.lastHypothesis = { text: h.text, coversTo: to, h };
          if (!isNoSpeech(h)) u.agreement.update(h.text, (to - u.start) / SAMPLE_RATE);
          this.emitPartial();
        }
        this.pumpPartial();
      },
      (err) => {
        this.partialInFlight = false;
        this.fail(err);
      },
    );
    const flight = { u, to, done };
    this.inflight = flight;
    void done.finally(() => {
      if (this.inflight === flight) this.inflight = null;
    });
  }

  /** Committed text = every final utterance, then the committed words of the first one that is
   *  not final; everything after is tentative. So committed text only ever grows. */
  private emitPartial(): void {
    if (!this.opts.onPartial || this.done) return;
    const committed: string[] = [];
    const tentative: string[] = [];
    let open = false;
    for (const u of this.utterances) {
      if (!open && u.final) committed.push(...u.final.words);
      else if (!open) {
        const s = u.agreement.state();
        committed.push(...s.committed);
        tentative.push(...s.tentative);
        open = true;
      } else tentative.push(...u.agreement.bestSoFar());
    }
    const partial = { committed: committed.join(' '), tentative: tentative.join(' ') };
    const key = `${partial.committed}\u0000${partial.tentative}`;
    if (key === this.lastPartial) return;
    this.lastPartial = key;
    this.stats.partials++;
    if (this.stats.firstTextAudioS === null && (partial.committed || partial.tentative)) this.stats.firstTextAudioS = this.audioS;
    this.opts.onPartial(partial);
  }
}
