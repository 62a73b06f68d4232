/**
 * Loading a GPT-2 checkpoint for inference at f16 or q8: each matrix streams from the file into
 * the weight store a slice of rows at a time (a Conv1D weight [in, out] 32 input rows at a time,
 * W_e [V, C] by rows), converted as it goes, so the model is never held in float32, in whole or
 * a matrix at a time; the small parameters are read as float32. The same pass can feed the
 * float32 reference forward the numerics are measured with (./reference.ts).
 */
import type { Gpt2WeightsFile } from '../checkpoint/gpt2';
import type { GPTConfig } from '../model/config';
import { paramShapes } from '../model/params';
import { kernelHeap } from './kernels';
import type { ReferenceForward } from './reference';
import { storedMatrixNames, WeightStore, type StoredFormat } from './store';

/**
 * A parameter's next slice: float32 rows first … of its leading axis, and for a matrix the same
 * values staged at `at` in the kernel memory (null for the small parameters).
 */
export type SliceSink = (
  name: string,
  values: Float32Array,
  at: number | null,
  first: number,
) => void;

/** Streams every parameter of an open checkpoint to `sink`, in GPT-2's order. */
export async function streamParameters(
  f: Gpt2WeightsFile,
  cfg: GPTConfig,
  sink: SliceSink,
  signal?: AbortSignal,
): Promise<void> {
  const heap = kernelHeap();
  const matrices = new Set(storedMatrixNames(cfg));
  let stage = { at: 0, bytes: 0 };
  try {
    for (const name of paramShapes(cfg).keys()) {
      signal?.throwIfAborted();
      const raw = f.found.get(name)!;
      if (!matrices.has(name)) {
        sink(name, await f.reader.readFloat32(raw), null, 0);
        continue;
      }
      // a Conv1D weight [in, out] in slices of whole blocks of 32 inputs; W_e [V, C] by rows
      const opts = name === 'wte.weight' ? {} : { rowsMultiple: 32 };
      await f.reader.forEachRows(
        raw,
        (rows, first) => {
          if (stage.bytes < rows.byteLength) {
            if (stage.at) heap.release(stage.at);
            stage = { at: heap.alloc(rows.byteLength), bytes: rows.byteLength };
          }
          heap.f32(stage.at, rows.length).set(rows);
          sink(name, rows, stage.at, first);
        },
        opts,
      );
    }
  } finally {
    if (stage.at) heap.release(stage.at);
  }
}

/**
 * Reads the parameters of an open checkpoint into a new store at `format`, feeding `reference`
 * the same slices when given.
 */
export async function loadWeightStore(
  f: Gpt2WeightsFile,
  cfg: GPTConfig,
  format: StoredFormat,
  opts: { signal?: AbortSignal; reference?: ReferenceForward | null } = {},
): Promise<WeightStore> {
  const store = new WeightStore(format);
  const shapes = paramShapes(cfg);
  try {
    await streamParameters(
      f,
      cfg,
      (name, values, at, first) => {
        if (at === null) {
          store.small.set(name, values);
        } else {
          const [a, b] = shapes.get(name) as [number, number];
          if (name === 'wte.weight') {
            if (first === 0) store.add(name, a, b);
            store.packRowsAt(name, at, values.length / b, first);
          } else {
            // Conv1D [in = a, out = b]: stored as its transpose, b rows of a inputs
            if (first === 0) store.add(name, b, a);
            store.packInputsAt(name, at, values.length / b, first);
          }
        }
        opts.reference?.take(name, values, at, first);
      },
      opts.signal,
    );
  } catch (err) {
    store.dispose();
    throw err;
  }
  return store;
}
