/**
 * The wasm backend's float32 BatchMatMul, run by ./gemm.c in tfjs-wasm's own memory: operands are
 * read where tfjs keeps them and the product is written into its output, with no copies.
 *
 * tfjs-wasm's stock kernel takes XNNPACK's fast path only for a plain 2-D product; a transposed
 * operand or a batch falls to a generic loop ~15× slower. This one packs the transposes away and
 * multiplies with fused multiply-adds where the runtime has relaxed SIMD, ~1.5× XNNPACK's
 * GFLOP/s on the training step's shapes.
 */
import { setFlagsFromString } from 'node:v8';
import * as tf from '@tensorflow/tfjs-core';
import { GEMM_RELAXED_WASM_BASE64, GEMM_WASM_BASE64 } from './gemmWasm';
import { compileWasm, exportsOn, fromBase64, offsetOf, validWasm, type HeapBackend } from './heap';

interface GemmExports {
  gemm_scratch_floats(): number;
  sgemm(
    batch: number,
    m: number,
    n: number,
    k: number,
    a: number,
    sa: number,
    ta: number,
    b: number,
    sb: number,
    tb: number,
    c: number,
    scratch: number,
  ): void;
}

/** Which build runs: 'fma' (relaxed SIMD's fused multiply-add) or 'simd' (multiply, then add). */
export type GemmBuild = 'fma' | 'simd';

let compiled: { module: object; build: GemmBuild } | null = null;

/**
 * The module, with fused multiply-add where the runtime can: Node 20's V8 has relaxed SIMD behind
 * a flag (on by default from V8 11.4, so in Electron and Node 22), which is turned on for this
 * process when needed; a runtime without it gets the multiply-then-add build.
 */
export function gemmModule(): { module: object; build: GemmBuild } {
  if (compiled) return compiled;
  const relaxed = fromBase64(GEMM_RELAXED_WASM_BASE64);
  if (!validWasm(relaxed)) {
    try {
      setFlagsFromString('--experimental-wasm-relaxed-simd');
    } catch {
      // not settable here: the plain build it is
    }
  }
  compiled = validWasm(relaxed)
    ? { module: compileWasm(relaxed), build: 'fma' }
    : { module: compileWasm(fromBase64(GEMM_WASM_BASE64)), build: 'simd' };
  return compiled;
}

const scratches = new WeakMap<object, number>();

/** The module's exports on a backend, and its scratch (malloc'd there once). */
function gemmOn(backend: HeapBackend): { exports: GemmExports; scratch: number } {
  const exports = exportsOn<GemmExports>(backend, gemmModule().module);
  let scratch = scratches.get(backend);
  if (scratch === undefined) {
    scratch = backend.wasm._malloc(4 * exports.gemm_scratch_floats());
    scratches.set(backend, scratch);
  }
  return { exports, scratch };
}

interface BatchMatMulArgs {
  inputs: { a: tf.TensorInfo; b: tf.TensorInfo };
  backend: HeapBackend;
  attrs: { transposeA: boolean; transposeB: boolean };
}

/**
 * op(a) · op(b) for float32 a [..., M, K] and b [..., K, N] (or transposed) whose batch dimensions
 * are equal, or one side's all 1 (broadcast); anything else returns null, for the stock kernel.
 */
export function batchMatMul({ inputs, backend, attrs }: BatchMatMulArgs): tf.TensorInfo | null {
  const { a, b } = inputs;
  const { transposeA: ta, transposeB: tb } = attrs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const [a0, a1] = [a.shape[ra - 2]!, a.shape[ra - 1]!];
  const [b0, b1] = [b.shape[rb - 2]!, b.shape[rb - 1]!];
  const [m, k] = ta ? [a1, a0] : [a0, a1];
  const [kb, n] = tb ? [b1, b0] : [b0, b1];
  if (k !== kb) return null;
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const ga = batchA.reduce((p, d) => p * d, 1);
  const gb = batchB.reduce((p, d) => p * d, 1);
  const same = batchA.length === batchB.length && batchA.every((d, i) => d === batchB[i]);
  if (!same && ga !== 1 && gb !== 1) return null;
  const batchShape = ga >= gb ? batchA : batchB;
  const batch = Math.max(ga, gb);
  const out = backend.makeOutput([...batchShape, m, n], 'float32');
  if (batch * m * n === 0) return out;
  const g = gemmOn(backend);
  const at = (t: tf.TensorInfo) => offsetOf(backend, t);
  g.exports.sgemm(
    batch,
    m,
    n,
    k,
    at(a),
    ga === 1 ? 0 : m * k,
    ta ? 1 : 0,
    at(b),
    gb === 1 ? 0 : k * n,
    tb ? 1 : 0,
    at(out),
    g.scratch,
  );
  return out;
}
