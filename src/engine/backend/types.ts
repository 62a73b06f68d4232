/** What a backend selection reports: the names, each attempt's outcome, and the selected one. */
export type BackendName = 'node-gpu' | 'webgpu' | 'node' | 'wasm' | 'cpu';
export type BackendPreference = BackendName | 'auto';

export type AttemptStatus = 'selected' | 'not-installed' | 'no-adapter' | 'failed' | 'not-tried';

export interface BackendAttempt {
  name: BackendName;
  status: AttemptStatus;
  /** Why: the error message, the adapter that was skipped, or what was selected. */
  detail: string;
}

export interface BackendReport {
  name: BackendName;
  /** `tf.getBackend()` after selection: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu'. */
  tfBackend: string;
  /** Auto mode: every backend in order (those after the selected one are 'not-tried').
   * Explicit preference: just that one. */
  attempts: BackendAttempt[];
  /** CPU threads doing the math: 1 for wasm in Node (upstream disables wasm threads there) and
   * for cpu; the TensorFlow intra-op pool size for node; 1 (the JS thread) for GPU backends. */
  threads: number;
  /** WASM SIMD in use (wasm only; false for the other backends). */
  simd: boolean;
  /** Rough memory budget for tensors, in bytes. wasm: the 4 GiB wasm32 heap cap; cpu: half of
   * system RAM; node: system RAM; webgpu: the device's maxBufferSize (WebGPU exposes no total);
   * node-gpu: 0 = unknown (tfjs-node-gpu does not expose GPU memory). */
  memoryLimitBytes: number;
  /** webgpu only: the largest single tensor (bytes) a kernel can bind — the device's
   * maxStorageBufferBindingSize, 128 MiB on lavapipe. Larger tensors make Dawn reject the bind
   * group, and tfjs then returns stale data instead of throwing, so the engine must stay below. */
  maxTensorBytes?: number;
  /** What runs the math, in words: the GPU adapter, "CPU (TensorFlow C)", "CPU (wasm)". */
  device: string;
  /**
   * The data-parallel training workers this backend defaults to: the physical cores on wasm and
   * cpu (one thread each), 1 on the backends that thread themselves.
   */
  trainWorkers?: number;
  /** Caveats worth showing to a user (e.g. why threads = 1, per-tensor size caps). */
  notes: string[];
  /** One human line, e.g. "wasm (SIMD, 1 thread) — node-gpu: not installed; webgpu: no GPU adapter". */
  summary: string;
}

export interface InitBackendOptions {
  log?: (msg: string) => void;
}

/** Thrown by an explicit preference that cannot be satisfied. */
export class BackendInitError extends Error {
  readonly attempt: BackendAttempt;
  constructor(attempt: BackendAttempt) {
    super(`backend '${attempt.name}' ${STATUS_WORDS[attempt.status]}: ${attempt.detail}`);
    this.name = 'BackendInitError';
    this.attempt = attempt;
  }
}

export const AUTO_ORDER: readonly BackendName[] = ['node-gpu', 'webgpu', 'node', 'wasm', 'cpu'];

const STATUS_WORDS: Record<AttemptStatus, string> = {
  selected: 'selected',
  'not-installed': 'is not installed',
  'no-adapter': 'has no usable device',
  failed: 'failed to load',
  'not-tried': 'was not tried',
};
