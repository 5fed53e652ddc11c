// The seam between the decoding core and an inference runtime. The engine only needs "load a
// graph file, run it with named float32/int64/int32 tensors, fetch some outputs"; onnxruntime-node on
// the CPU implements it here, CoreML (macOS) or another runtime can implement it later without
// touching decoding or the pipeline.

export interface FeedTensor {
  type: 'float32' | 'int64' | 'int32';
  data: Float32Array | BigInt64Array | Int32Array;
  dims: readonly number[];
}

export interface FetchedTensor {
  data: Float32Array;
  dims: readonly number[];
}

export interface InferenceGraph {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, FeedTensor>, fetch: readonly string[]): Promise<Record<string, FetchedTensor>>;
  close(): Promise<void>;
}

export interface BackendOptions {
  /** Intra-op threads; 0 = the runtime's default (all physical cores). */
  threads: number;
}

export interface Backend {
  readonly name: string;
  load(file: string, opts: BackendOptions): Promise<InferenceGraph>;
}
