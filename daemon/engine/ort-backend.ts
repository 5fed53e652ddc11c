// onnxruntime-node (CPU execution provider). Session options were chosen by measurement on the
// 2-core development machine (bench/engine.ts): full graph optimisation, the CPU memory arena
// on (re-used buffers between decoder steps), sequential execution (the graphs are chains;
// parallel execution only added thread hand-offs), no spinning between runs (the daemon idles
// between requests; spinning burned a core for nothing).
import ort from 'onnxruntime-node';
import { WxError } from '../errors.js';
import type { Backend, BackendOptions, FeedTensor, FetchedTensor, InferenceGraph } from './backend.js';

class OrtGraph implements InferenceGraph {
  constructor(private readonly session: ort.InferenceSession, private readonly file: string) {}
  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }
  async run(feeds: Record<string, FeedTensor>, fetch: readonly string[]): Promise<Record<string, FetchedTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(ortFeeds, fetch as string[]);
    } catch (err) {
      throw new WxError('engine.run_failed', `inference failed in ${this.file}: ${(err as Error).message}`, { file: this.file }, { cause: err });
    }
    const result: Record<string, FetchedTensor> = {};
    for (const name of fetch) {
      const t = out[name]!;
      result[name] = { data: t.data as Float32Array, dims: t.dims };
    }
    return result;
  }
  async close(): Promise<void> {
    await this.session.release();
  }
}

export const ortCpuBackend: Backend = {
  name: 'onnxruntime-cpu',
  async load(file: string, opts: BackendOptions): Promise<InferenceGraph> {
    try {
      const session = await ort.InferenceSession.create(file, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: opts.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        enableCpuMemArena: true,
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      return new OrtGraph(session, file);
    } catch (err) {
      throw new WxError('engine.load_failed', `cannot load ${file}: ${(err as Error).message}`, { file }, { cause: err });
    }
  },
};
