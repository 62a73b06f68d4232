import { isPostLn, type GPTConfig } from './config';
import { countParams } from './params';
import { MODEL_PRESETS, type PresetName } from '../../common/defaults';
import { formatBytes } from '../../common/format';

export type { PresetName };

export const PRESETS = MODEL_PRESETS;

export function presetConfig(name: PresetName, vocabSize: number, dropout = 0): GPTConfig {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown preset "${name}" (choose ${Object.keys(PRESETS).join(', ')})`);
  return {
    vocabSize,
    blockSize: p.blockSize,
    nLayer: p.nLayer,
    nHead: p.nHead,
    nEmbd: p.nEmbd,
    dropout,
    layerNormEpsilon: 1e-5,
    activation: 'gelu_new',
    // GPT-2's layout is a config without the field, as in every older checkpoint
    ...(p.layout === 'gpt1' ? { layout: 'gpt1' as const } : {}),
    bias: true,
  };
}

export interface MemoryEstimate {
  params: number;
  /**
   * Parameter-sized memory at the peak: weights, AdamW's moments,
   * gradients (and, when the optimizer step is the peak, its temporaries), plus the module's own.
   */
  stateBytes: number;
  /** Activations kept for the backward pass plus the largest op's workspace, at the peak. */
  activationBytes: number;
  /** stateBytes + activationBytes: the estimated peak of one training step (and of evaluation). */
  totalBytes: number;
  /** Which phase the peak is in. */
  peak: 'forward/backward' | 'optimizer' | 'evaluation';
}

/** The wasm module's own memory before any tensor: its initial heap (static data, stack). */
export const MODULE_OVERHEAD_BYTES = 16 * 2 ** 20;
const SLACK = 1.15;
const STATE_SLACK = 1.25;

/**
 * AdamW.step runs every parameter's update inside one tf.tidy, so its temporaries (g·clip, β·m,
 * (1−β)·g, g², β₂·v, …, m̂/(√v̂+ε), λ·p, the update; 16 of them, measured) are all held until the
 * step returns: 16 parameter-sized tensors per parameter. Were AdamW.step to tidy each
 * parameter on its own, this term would become 16 × the largest parameter (wte, V·C).
 */
export const OPTIMIZER_TEMPORARIES = 16;

/**
 * The peak memory of pretraining this model with micro-batches of `microBatch` sequences, in
 * bytes: the largest of its three phases (what GPT.lossAndGrads, AdamW.step and evaluate hold),
 * each counted in float32 values and calibrated on the wasm backend (see
 * test/engine/model/memory.test.ts, which checks estimate ≥ the real peak of the wasm heap).
 *
 * With P parameters (W = 4P bytes), L layers, C wide, H heads, context T, vocabulary V,
 * N = B·T tokens per micro-batch, A = B·H·T² attention probabilities per layer:
 *
 *   persistent   = 3W (weights, AdamW m and v; the matmuls pack their operands into a fixed
 *                  1 MiB scratch, ../kernels/gemm.ts, so weights have no packed copies)
 *   grads        = W, or 2W when gradAccum > 1 (the running sum and the new micro-batch's)
 *   cache/layer  = 16NC + A        what a block keeps for its backward: x̂ and 1/σ of both
 *                                  LayerNorms, qkv 3NC, the attention probabilities A, the
 *                                  merged heads NC, the MLP pre-activation and σ(2u) 8NC
 *                                  (14NC + 2N + A counted, 15NC + A measured)
 *                  + 3NC + 2A      with dropout (its keep-masks, and p and p·keep apart)
 *                  + NC            in GPT-1's post-LayerNorm layout (the block's input x)
 *   workspace    = max of         the transients of the largest op sequence, held by its tidy:
 *     block forward   43NC + 4A (+ 9NC + 4.5A with dropout): qkv and its heads, q, k and v,
 *                                  scores, mask, softmax, the MLP (LayerNorm and GELU are one
 *                                  kernel each, ../kernels/fused.ts)
 *     block backward  40NC + 5A + 12C² (+ 2NC + 1.5A): the same in reverse, and the layer's
 *                                  weight gradients
 *     LM head         10NV + 4NC + 2VC: logits, log-softmax, one-hot, dlogits, dW_e and the
 *                                  scattered token rows (W_eᵀ is a matmul flag, not a copy)
 *
 *   forward/backward = persistent + grads + 4·(L·cache + workspace)
 *   optimizer        = persistent + grads + OPTIMIZER_TEMPORARIES·W₁ (AdamW updates one
 *                      parameter at a time: W₁ is the largest one's bytes, wte or c_fc)
 *   evaluation       = persistent + 4·(L·22NC + max(block forward, LM head))  (evaluate's
 *                      tf.tidy keeps every block's outputs until the loss is read)
 *
 *   total = MODULE_OVERHEAD_BYTES + max over the phases of (STATE_SLACK × state + SLACK × acts)
 *           + ½·4·workspace
 *
 * SLACK = 1.15 covers what the counts leave out (small tensors, the heap's growth in steps);
 * STATE_SLACK = 1.25 the parameter-sized part, where emscripten's heap grows by 20% steps (up to
 * 96 MiB) past the request: 12 × 640 at batch 1 measured a 1,228 MiB heap against 1,208 at 1.15.
 * The last term is fragmentation: from the second step on, the weights and moments AdamW
 * reallocates land in the region the workspace freed, so the next step's workspace is placed
 * anew; the wasm heap then settles (after step 2) at the tensors' peak plus up to ~40% of the
 * workspace (measured: up to 1.6× the tensors' own peak when the LM head's logits dominate).
 */
export function estimateTrainingMemory(
  cfg: GPTConfig,
  microBatch: number,
  gradAccum = 1,
): MemoryEstimate {
  const params = countParams(cfg);
  const { nLayer: L, nEmbd: C, nHead: H, blockSize: T, vocabSize: V } = cfg;
  const B = microBatch;
  const drop = cfg.dropout > 0 ? 1 : 0;
  const N = B * T;
  const NC = N * C;
  const A = B * H * T * T;
  const W = params * 4;
  const persistent = 3 * W;
  const grads = gradAccum > 1 ? 2 * W : W;
  // GPT-1's post-LayerNorm block also keeps its input x (its attention reads x itself)
  const cache = 16 * NC + A + drop * (3 * NC + 2 * A) + (isPostLn(cfg) ? NC : 0);
  const forward = 43 * NC + 4 * A + drop * (9 * NC + 4.5 * A);
  const backward = 40 * NC + 5 * A + 12 * C * C + drop * (2 * NC + 1.5 * A);
  const head = 10 * N * V + 4 * NC + 2 * V * C;
  const trainActs = 4 * (L * cache + Math.max(forward, backward, head));
  const evalActs = 4 * (L * 22 * NC + Math.max(forward, head));
  const phases = [
    { peak: 'forward/backward' as const, state: persistent + grads, acts: trainActs },
    {
      peak: 'optimizer' as const,
      state: persistent + grads + OPTIMIZER_TEMPORARIES * 4 * Math.max(V * C, T * C, 4 * C * C),
      acts: 0,
    },
    { peak: 'evaluation' as const, state: persistent, acts: evalActs },
  ];
  const slacked = (p: { state: number; acts: number }) => p.state * STATE_SLACK + p.acts * SLACK;
  const top = phases.reduce((a, b) => (slacked(b) > slacked(a) ? b : a));
  const stateBytes = Math.round(MODULE_OVERHEAD_BYTES + top.state * STATE_SLACK);
  const fragmentation = 0.5 * 4 * Math.max(forward, backward, head);
  const activationBytes = Math.round(top.acts * SLACK + fragmentation);
  return {
    params,
    stateBytes,
    activationBytes,
    totalBytes: stateBytes + activationBytes,
    peak: top.peak,
  };
}

export { formatBytes };

/**
 * Refuses a run that would not fit, naming a configuration that does: a smaller micro-batch with
 * more gradient accumulation (same effective batch), else a shorter context.
 */
export function checkMemory(
  cfg: GPTConfig,
  microBatch: number,
  gradAccum: number,
  limitBytes: number,
  backend: string,
): void {
  const est = estimateTrainingMemory(cfg, microBatch, gradAccum);
  if (est.totalBytes <= limitBytes) return;
  const need = formatBytes(est.totalBytes);
  const have = formatBytes(limitBytes);
  for (let b = Math.floor(microBatch / 2); b >= 1; b = Math.floor(b / 2)) {
    const accum = Math.ceil((microBatch * gradAccum) / b);
    if (estimateTrainingMemory(cfg, b, accum).totalBytes <= limitBytes) {
      throw new Error(
        `This run needs about ${need} but the ${backend} backend has ${have}. ` +
          `Try --batch-size ${b} --grad-accum ${accum} (the same effective batch).`,
      );
    }
  }
  const accum1 = microBatch * gradAccum;
  for (let t = Math.floor(cfg.blockSize / 2); t >= 16; t = Math.floor(t / 2)) {
    if (estimateTrainingMemory({ ...cfg, blockSize: t }, 1, accum1).totalBytes <= limitBytes) {
      throw new Error(
        `This run needs about ${need} but the ${backend} backend has ${have}. ` +
          `Try --batch-size 1 --grad-accum ${accum1} --block-size ${t}.`,
      );
    }
  }
  const one = estimateTrainingMemory(cfg, 1, accum1);
  const why =
    one.peak === 'optimizer'
      ? `, most of it the weights, gradients and AdamW's update of its ${formatCount(one.params)} parameters`
      : '';
  throw new Error(
    `This model needs about ${need} but the ${backend} backend has ${have}, even with a batch of 1 ` +
      `(--batch-size 1 needs about ${formatBytes(one.totalBytes)}${why}). ` +
      `Choose a smaller preset, or fewer layers or a narrower width.`,
  );
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}k`;
  return String(n);
}

/**
 * What to tell a user whose training hit a backend abort: what to lower, and how this
 * configuration's estimate compares with what the backend allows.
 */
export function memoryAdvice(
  cfg: GPTConfig,
  microBatch: number,
  gradAccum: number,
  limitBytes: number | undefined,
  backend: string,
): string {
  const est = estimateTrainingMemory(cfg, microBatch, gradAccum);
  const budget =
    limitBytes && limitBytes > 0 && Number.isFinite(limitBytes)
      ? ` of the ${formatBytes(limitBytes)} the ${backend} backend allows`
      : ` (the ${backend} backend does not say how much it allows)`;
  return (
    'Lower the batch size, block size or model width/depth ' +
    `(the estimate for this configuration was ${formatBytes(est.totalBytes)}${budget}).`
  );
}
