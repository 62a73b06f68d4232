/**
 * A GPT-2's weight matrices held for inference as f16 or q8 (llama.cpp's q8_0: blocks of 32
 * weights, one f16 scale each, weight-only) in the kernels' memory (./kernels.ts): the token
 * embedding W_e [V, C] (also the LM head) and each block's four linear maps. Every matrix is held
 * as rows of its outputs, W[n][k], rows padded to a whole number of blocks: W_e as it is, a Conv1D
 * weight [in, out] transposed as it is packed. Everything else (LayerNorms, biases, W_p) stays
 * float32 beside the store: it is a few MB even for gpt2-xl.
 *
 * Matrices are packed from float32 a slice at a time (packRows, packInputs), so a loader streams
 * a checkpoint through without ever holding a matrix in float32, let alone the model.
 */
import type { GPTConfig } from '../model/config';
import { matrixBytes } from './format';
import { kernelHeap, type KernelHeap } from './kernels';

export type StoredFormat = 'f16' | 'q8';

export interface StoredMatrix {
  /** Outputs (rows) and inputs (the logical row length). */
  n: number;
  k: number;
  /** The row length as stored: k padded to 8 (f16) or 32 (q8). */
  kp: number;
  /** The weights: halves [n][kp] (f16), or n·kp int8 q (q8, in tiles of four rows: matmul.c). */
  w: number;
  /** q8: the scales, n·kp/32 halves (tiled as q); f16: 0. */
  d: number;
  bytes: number;
}

/** The names of the matrices a store holds for `cfg` (the rest of the parameters are small). */
export function storedMatrixNames(cfg: Pick<GPTConfig, 'nLayer'>): string[] {
  const names = ['wte.weight'];
  for (let l = 0; l < cfg.nLayer; l++) {
    for (const m of ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']) {
      names.push(`h.${l}.${m}.weight`);
    }
  }
  return names;
}

/** The padded row length of a k-input matrix. */
export function paddedInputs(format: StoredFormat, k: number): number {
  const unit = format === 'q8' ? 32 : 8;
  return Math.ceil(k / unit) * unit;
}

/** Scratch bytes a matmul of m input rows of up to k inputs needs (see matmul). */
export function matmulScratchBytes(format: StoredFormat, m: number, k: number): number {
  const kp = paddedInputs(format, k);
  return format === 'q8' ? m * kp * 2 + 64 + m * (kp / 32) * 4 : m * kp * 4;
}

export class WeightStore {
  readonly matrices = new Map<string, StoredMatrix>();
  /**
   * The model's other parameters (LayerNorms, biases, W_p) as float32, for whoever runs the
   * model without tfjs (the decoder): a few MB even for gpt2-xl.
   */
  readonly small = new Map<string, Float32Array>();
  private disposed = false;

  constructor(
    readonly format: StoredFormat,
    readonly heap: KernelHeap = kernelHeap(),
  ) {}

  /** Bytes of the stored matrices and the float32 rest. */
  get bytes(): number {
    let n = 0;
    for (const v of this.small.values()) n += v.byteLength;
    for (const m of this.matrices.values()) n += m.bytes;
    return n;
  }

  matrix(name: string): StoredMatrix {
    const m = this.matrices.get(name);
    if (!m) throw new Error(`no stored matrix '${name}'`);
    if (this.disposed) throw new Error('the weight store has been disposed');
    return m;
  }

  /** Room for an n-output, k-input matrix, its padding zeroed; fill it with packRows/packInputs. */
  add(name: string, n: number, k: number): StoredMatrix {
    const kp = paddedInputs(this.format, k);
    const bytes = matrixBytes(this.format, n, k);
    const w = this.heap.alloc(bytes);
    const m: StoredMatrix = { n, k, kp, w, d: this.format === 'q8' ? w + n * kp : 0, bytes };
    if (this.format === 'q8') this.heap.fn.q8_pad(n, k, kp, m.w, m.d);
    else this.heap.fn.f16_pad(n, k, kp, m.w);
    this.matrices.set(name, m);
    return m;
  }

  /** Rows first … first+rows−1 of W[n][k] from float32 src [rows][k]. */
  packRows(name: string, src: Float32Array, first: number): void {
    const k = this.matrix(name).k;
    this.withStaged(src, (at) => this.packRowsAt(name, at, src.length / k, first));
  }

  /** packRows from `rows` rows of float32 at `at` in the kernel memory. */
  packRowsAt(name: string, at: number, rows: number, first: number): void {
    const m = this.matrix(name);
    if (!Number.isInteger(rows) || first + rows > m.n) throw new RangeError(`rows out of range`);
    if (this.format === 'q8') {
      this.heap.fn.q8_pack_rows(at, rows, m.k, m.kp, m.w, m.d, m.n, first);
    } else {
      this.heap.fn.f16_pack_rows(at, rows, m.k, m.kp, m.w + first * m.kp * 2);
    }
  }

  /**
   * Inputs first … first+kc−1 of every output, from float32 src [kc][n]: a slice of rows of a
   * Conv1D weight [in, out]. `first` must be a multiple of 32, and so must kc unless the slice
   * ends the inputs.
   */
  packInputs(name: string, src: Float32Array, first: number): void {
    const n = this.matrix(name).n;
    this.withStaged(src, (at) => this.packInputsAt(name, at, src.length / n, first));
  }

  /** packInputs from kc rows of float32 at `at` in the kernel memory. */
  packInputsAt(name: string, at: number, kc: number, first: number): void {
    const m = this.matrix(name);
    if (!Number.isInteger(kc) || first + kc > m.k) throw new RangeError(`inputs out of range`);
    if (first % 32 !== 0 || (kc % 32 !== 0 && first + kc !== m.k)) {
      throw new RangeError(`a slice of inputs must start and end on a block of 32`);
    }
    if (this.format === 'q8') this.heap.fn.q8_pack_cols(at, kc, m.n, first, m.kp, m.w, m.d);
    else this.heap.fn.f16_pack_cols(at, kc, m.n, first, m.kp, m.w);
  }

  /** y[rows][n] = x[rows][k] · Wᵀ, all pointers into the kernel memory (scratch: matmulScratchBytes). */
  matmul(name: string, x: number, rows: number, y: number, scratch: number): void {
    const m = this.matrix(name);
    if (this.format === 'q8') {
      const xd = scratch + Math.ceil((rows * m.kp * 2) / 64) * 64;
      this.heap.fn.q8_matmul(m.w, m.d, m.n, m.k, m.kp, x, rows, y, scratch, xd);
    } else {
      this.heap.fn.f16_matmul(m.w, m.n, m.k, m.kp, x, rows, y, scratch);
    }
  }

  /** Rows first … first+rows−1 of W as float32 [rows][k] at `out` in the kernel memory. */
  dequantizeRows(name: string, first: number, rows: number, out: number): void {
    const m = this.matrix(name);
    if (first < 0 || first + rows > m.n) throw new RangeError(`rows out of range`);
    if (this.format === 'q8') {
      this.heap.fn.q8_dequant(m.w, m.d, m.n, m.k, m.kp, first, rows, out);
    } else {
      this.heap.fn.f16_dequant(m.w + first * m.kp * 2, rows, m.k, m.kp, out);
    }
  }

  /** The whole matrix as float32 W[n][k], in a JS array of its own. */
  dequantize(name: string): Float32Array {
    const m = this.matrix(name);
    const out = new Float32Array(m.n * m.k);
    // a bounded piece at a time, so the kernel memory needs no room for the whole matrix
    const per = Math.max(1, Math.floor(2 ** 22 / m.k));
    const at = this.heap.alloc(Math.min(per, m.n) * m.k * 4);
    try {
      for (let r = 0; r < m.n; r += per) {
        const rows = Math.min(per, m.n - r);
        this.dequantizeRows(name, r, rows, at);
        out.set(this.heap.f32(at, rows * m.k), r * m.k);
      }
    } finally {
      this.heap.release(at);
    }
    return out;
  }

  private withStaged(src: Float32Array, use: (at: number) => void): void {
    const at = this.heap.alloc(src.byteLength);
    try {
      this.heap.f32(at, src.length).set(src);
      use(at);
    } finally {
      this.heap.release(at);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const m of this.matrices.values()) this.heap.release(m.w);
  }
}
