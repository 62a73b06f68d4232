/**
 * The f16/q8 kernels (src/engine/weights/kernels/matmul.c): the q8 quantiser against llama.cpp's
 * q8_0 reference and its round-trip error bound, f16 packing against the JS half conversion, both
 * matmuls against the same math in float64, packing a Conv1D weight by input slices against
 * packing its transpose by rows, the allocator, and the committed .wasm against a fresh build.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16 } from '../../../src/engine/checkpoint/safetensors';
import { KernelHeap } from '../../../src/engine/weights/kernels';
import { matmulScratchBytes, WeightStore } from '../../../src/engine/weights/store';
import { randomFloats, tempDir } from '../helpers';

const heap = new KernelHeap();
const stores: WeightStore[] = [];
afterAll(() => stores.forEach((s) => s.dispose()));

function store(format: 'f16' | 'q8'): WeightStore {
  const s = new WeightStore(format, heap);
  stores.push(s);
  return s;
}

/** Rounds to nearest, ties to even (f32x4.nearest, and llama.cpp's SIMD quantisers). */
function roundEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
}

/** llama.cpp's q8_0 for one block (zero-padded to 32), rounding ties to even as its SIMD code. */
function q8Block(x: ArrayLike<number>): { d: number; q: number[] } {
  let amax = 0;
  for (let j = 0; j < x.length; j++) amax = Math.max(amax, Math.abs(x[j]!));
  const d = Math.fround(amax / 127);
  const id = d ? Math.fround(1 / d) : 0;
  const q = Array.from({ length: 32 }, (_, j) => {
    if (j >= x.length) return 0;
    return roundEven(Math.fround(x[j]! * id));
  });
  return { d: f16ToF32(f32ToF16(Float32Array.of(d)))[0]!, q };
}

/** A matrix [n][k] with a wide spread of magnitudes, a zero row and a lone spike. */
function matrix(n: number, k: number, seed: number): Float32Array {
  const w = randomFloats(n * k, seed, 0.05);
  for (let i = 0; i < w.length; i += 97) w[i] = w[i]! * 40;
  w.fill(0, 0, k); // row 0: all zeros
  return w;
}

describe('q8 quantiser', () => {
  it("matches llama.cpp's q8_0 exactly and round-trips within 0.57 · max|w| / 127 per block", () => {
    const [n, k] = [7, 77]; // k not a multiple of 32: a partial last block
    const w = matrix(n, k, 3);
    const s = store('q8');
    s.add('m', n, k);
    s.packRows('m', w, 0);
    const back = s.dequantize('m');
    for (let r = 0; r < n; r++) {
      for (let b = 0; b * 32 < k; b++) {
        const x = w.subarray(r * k + b * 32, r * k + Math.min(k, b * 32 + 32));
        const ref = q8Block(x);
        let amax = 0;
        for (const v of x) amax = Math.max(amax, Math.abs(v));
        for (let j = 0; j < x.length; j++) {
          const got = back[r * k + b * 32 + j]!;
          expect(got + 0).toBe(Math.fround(ref.d * ref.q[j]!) + 0); // +0: -0 and 0 are alike
          expect(Math.abs(got - x[j]!)).toBeLessThanOrEqual((0.57 * amax) / 127 + 1e-12);
        }
      }
    }
    // the zero row stays exactly zero
    expect(Array.from(back.subarray(0, k)).every((v) => v === 0)).toBe(true);
  });

  it('packing a Conv1D weight [in, out] by input slices = packing its transpose by rows', () => {
    for (const format of ['q8', 'f16'] as const) {
      const [kIn, nOut] = [70, 9];
      const conv = matrix(kIn, nOut, 5); // [in][out]
      const t = new Float32Array(nOut * kIn);
      for (let i = 0; i < kIn; i++)
        for (let o = 0; o < nOut; o++) t[o * kIn + i] = conv[i * nOut + o]!;
      const a = store(format);
      a.add('m', nOut, kIn);
      for (const [from, to] of [
        [0, 32],
        [32, 64],
        [64, 70],
      ] as const) {
        a.packInputs('m', conv.subarray(from * nOut, to * nOut), from);
      }
      const b = store(format);
      b.add('m', nOut, kIn);
      b.packRows('m', t, 0);
      expect(Array.from(a.dequantize('m'))).toEqual(Array.from(b.dequantize('m')));
      if (format === 'f16') {
        expect(Array.from(b.dequantize('m'))).toEqual(Array.from(f16ToF32(f32ToF16(t))));
      }
      expect(() => a.packInputs('m', conv.subarray(0, 16 * nOut), 16)).toThrow(/block of 32/);
    }
  });
});

/** x [m][k] · W[n][k]ᵀ in float64. */
function reference(x: Float32Array, w: ArrayLike<number>, m: number, n: number, k: number) {
  const y = new Float64Array(m * n);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < n; c++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += x[r * k + j]! * w[c * k + j]!;
      y[r * n + c] = s;
    }
  return y;
}

function runMatmul(s: WeightStore, x: Float32Array, m: number): Float32Array {
  const mat = s.matrix('m');
  const xp = heap.alloc(x.byteLength);
  const yp = heap.alloc(m * mat.n * 4);
  const scratch = heap.alloc(matmulScratchBytes(s.format, m, mat.k));
  try {
    heap.f32(xp, x.length).set(x);
    s.matmul('m', xp, m, yp, scratch);
    return heap.f32(yp, m * mat.n).slice();
  } finally {
    [xp, yp, scratch].forEach((p) => heap.release(p));
  }
}

describe('f16 packing', () => {
  it("gives the JS half conversion's bits: ties to even, subnormals, underflow, overflow, -0", () => {
    const edge = [
      0,
      -0,
      1,
      -2,
      65504,
      65520,
      1e6,
      -1e6,
      6.1e-5,
      6.0e-5,
      1e-7,
      3e-8,
      2.9e-8,
      -5.96e-8,
      1.0009765625 + 2 ** -11,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      0.1,
      -0.3333,
      2049,
      2051,
    ];
    const x = Float32Array.from(
      { length: 64 },
      (_, i) => edge[i % edge.length]! * (i < 32 ? 1 : -1),
    );
    for (const rows of [true, false]) {
      const s = store('f16');
      s.add('m', 2, 32);
      if (rows) s.packRows('m', x, 0);
      else {
        // the same values as a Conv1D weight [32 inputs, 2 outputs]
        const conv = new Float32Array(64);
        for (let o = 0; o < 2; o++) for (let i = 0; i < 32; i++) conv[i * 2 + o] = x[o * 32 + i]!;
        s.packInputs('m', conv, 0);
      }
      // the half bit patterns themselves (W[2][32], no padding)
      const bits = s.heap.u16(s.matrix('m').w, 64);
      expect(Array.from(bits)).toEqual(Array.from(f32ToF16(x)));
    }
  });
});

describe('matmuls', () => {
  // n = 11: two tiles of four outputs and a tail of three; k = 100: padded inputs
  const [m, n, k] = [5, 11, 100];
  const w = matrix(n, k, 7);
  const x = randomFloats(m * k, 8, 2);
  x[3] = 300; // a large activation

  it('f16: the f16-rounded weights times x, to float32 rounding', () => {
    const s = store('f16');
    s.add('m', n, k);
    s.packRows('m', w, 0);
    const y = runMatmul(s, x, m);
    const want = reference(x, f16ToF32(f32ToF16(w)), m, n, k);
    for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - want[i]!)).toBeLessThan(2e-4);
  });

  it('q8: integer dots of q8 weights and q8-quantised inputs, then within q8 error of f32', () => {
    const s = store('q8');
    s.add('m', n, k);
    s.packRows('m', w, 0);
    const y = runMatmul(s, x, m);
    // the same computation in float64: x quantised per block as the kernel does
    const xq = new Float32Array(m * k);
    for (let r = 0; r < m; r++)
      for (let b = 0; b * 32 < k; b++) {
        const blk = x.subarray(r * k + b * 32, r * k + Math.min(k, b * 32 + 32));
        let amax = 0;
        for (const v of blk) amax = Math.max(amax, Math.abs(v));
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        blk.forEach((v, j) => {
          const t = Math.fround(v * id);
          xq[r * k + b * 32 + j] = d * roundEven(t);
        });
      }
    const exact = reference(xq, s.dequantize('m'), m, n, k);
    for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - exact[i]!)).toBeLessThan(1e-3);
    const f32 = reference(x, w, m, n, k);
    let scale = 0;
    for (const v of f32) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - f32[i]!)).toBeLessThan(0.02 * scale);
  });
});

describe('the kernel heap', () => {
  it('reuses and coalesces released memory, and refuses more than 4 GiB', () => {
    const h = new KernelHeap();
    const a = h.alloc(1000);
    const b = h.alloc(1000);
    const c = h.alloc(1000);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(a % 64).toBe(0);
    h.release(a);
    h.release(b);
    expect(h.alloc(2000)).toBe(a); // a and b coalesced
    h.release(c);
    expect(h.bytesInUse).toBe(2048);
    expect(() => h.alloc(5 * 2 ** 30)).toThrow(/past wasm32's 4 GiB/);
  });
});

const CLANG = spawnSync('clang-19', ['--version']).status === 0;

describe('the committed kernels', () => {
  const src = path.join(__dirname, '../../../src/engine');
  /** Each .ts of base64 and the .wasm files it holds, by export name. */
  const built: Array<{ dir: string; ts: string; wasm: Record<string, string> }> = [
    { dir: 'weights/kernels', ts: 'matmulWasm.ts', wasm: { MATMUL_WASM_BASE64: 'matmul.wasm' } },
    {
      dir: 'kernels',
      ts: 'gemmWasm.ts',
      wasm: { GEMM_WASM_BASE64: 'gemm.wasm', GEMM_RELAXED_WASM_BASE64: 'gemm-relaxed.wasm' },
    },
    {
      dir: 'kernels',
      ts: 'elementwiseWasm.ts',
      wasm: { ELEMENTWISE_WASM_BASE64: 'elementwise.wasm' },
    },
    { dir: 'kernels', ts: 'flatWasm.ts', wasm: { FLAT_WASM_BASE64: 'flat.wasm' } },
  ];

  it('each *Wasm.ts holds its .wasm files', () => {
    for (const { dir, ts, wasm } of built) {
      const text = readFileSync(path.join(src, dir, ts), 'utf8');
      for (const [name, file] of Object.entries(wasm)) {
        const b64 = new RegExp(`${name} =\\s*'([A-Za-z0-9+/=]+)'`).exec(text)?.[1];
        expect(b64, `${ts}: ${name}`).toBeDefined();
        const bytes = readFileSync(path.join(src, dir, file));
        expect(Buffer.from(b64!, 'base64').equals(bytes), `${ts}: ${name} = ${file}`).toBe(true);
      }
    }
  });

  it.skipIf(!CLANG)('match a fresh build of their C sources (clang-19 present)', async () => {
    const out = await tempDir('gpt-studio-kernels-');
    try {
      const r = spawnSync(path.join(__dirname, '../../../scripts/build-kernels.sh'), [out]);
      expect(r.status, r.stderr.toString()).toBe(0);
      for (const { dir, ts, wasm } of built) {
        for (const f of [ts, ...Object.values(wasm)]) {
          expect(
            readFileSync(path.join(out, f)).equals(readFileSync(path.join(src, dir, f))),
            f,
          ).toBe(true);
        }
      }
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
  });
});
