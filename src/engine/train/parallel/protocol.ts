/**
 * What the main thread and a training worker say to each other. The gradients and the weights
 * travel through SharedArrayBuffers (one gradient region per worker, the reduced sum, the
 * weights); everything else by message.
 */
import type { GPTConfig } from '../../model/config';
import type { AdamWOptions } from '../optimizer';
import type { Task } from '../../finetune/tasks';
import type { MlmMasking } from '../../finetune/batch';

/** The parameters in the optimizer's order, flattened one after another. */
export interface Layout {
  names: string[];
  shapes: number[][];
}

export function sizesOf(layout: Layout): number[] {
  return layout.shapes.map((s) => s.reduce((a, b) => a * b, 1));
}

/** Where each parameter starts in a flat vector, and the vector's length. */
export function offsetsOf(layout: Layout): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const size of sizesOf(layout)) {
    offsets.push(total);
    total += size;
  }
  return { offsets, total };
}

/**
 * Which parameters each worker updates: contiguous runs of the layout, [first, end) by index,
 * of about equal element counts. Worker k sums the gradient of its parameters, keeps their AdamW
 * moments and writes their new values for the others.
 */
export function ownership(layout: Layout, workers: number): Array<[number, number]> {
  const sizes = sizesOf(layout);
  const total = sizes.reduce((a, b) => a + b, 0);
  const bounds = [0];
  let seen = 0;
  let k = 1;
  for (const [i, size] of sizes.entries()) {
    seen += size;
    while (k < workers && seen >= (k * total) / workers) {
      bounds.push(i + 1);
      k++;
    }
  }
  while (bounds.length <= workers) bounds.push(sizes.length);
  return Array.from({ length: workers }, (_, j) => [bounds[j]!, bounds[j + 1]!]);
}

/** The index of the stop flag in the control buffer (an Int32Array). */
export const STOP = 0;

export interface WorkerInit {
  backend: string;
  index: number;
  workers: number;
  config: GPTConfig;
  layout: Layout;
  /** Fine-tuning: the classifier's outputs (its weight is [C, outputs]). */
  classifier?: { outputs: number };
  optimizer: AdamWOptions;
  /** AdamW's moments and step count to start from (flat, every parameter's). */
  moments?: { m: Float32Array; v: Float32Array; t: number };
  /** P float32: the weights; each worker writes those it owns after every update. */
  params: SharedArrayBuffer;
  /** workers × P float32: worker k writes its share of the gradient into region k. */
  grads: SharedArrayBuffer;
  /** P float32: the reduced gradient, Σ_k region k in the order k = 0 … workers − 1. */
  sum: SharedArrayBuffer;
  /** Int32 flags: [STOP] set by the main thread to end the current step. */
  control: SharedArrayBuffer;
}

/** Pretraining rows of one micro-batch: ids and next-token targets [rows, T]. */
export interface LmMicro {
  x: Int32Array;
  y: Int32Array;
  rows: number;
  seed: number;
  /** This slice's share of the step's mean: rows / batch / gradAccum. */
  scale: number;
}

/** Fine-tuning examples: their sequences and labels, and their shares of L2's and L1's means. */
export interface FinetuneSlice {
  task: Task;
  sequences: number[][][];
  labels: number[];
  lambda: number;
  clfDropout: number;
  seed: number;
  l2Scale: number;
  l1Scale: number;
  /** A masked-LM's masking for its auxiliary loss (null: a GPT). */
  masking: MlmMasking | null;
}

export type Request =
  | { op: 'lm'; micros: LmMicro[]; blockSize: number }
  | { op: 'finetune'; slice: FinetuneSlice | null }
  /** Sum the owned parameters' gradients over the regions; reply with their Σ g². */
  | { op: 'reduce' }
  /** AdamW on the owned parameters with the global norm, unless the step went non-finite. */
  | { op: 'apply'; lr: number; loss: number; gradNorm: number }
  /** The owned parameters' moments, flat, and the step count. */
  | { op: 'moments' };

export type Reply =
  | { op: 'ready' }
  | { op: 'lm'; losses: number[] }
  | { op: 'finetune'; loss: number; l1: number; l2: number }
  | { op: 'stopped' }
  | { op: 'reduce'; sumSquares: number }
  | { op: 'apply' }
  | { op: 'moments'; m: Float32Array; v: Float32Array; t: number }
  | { op: 'error'; name: string; message: string };
