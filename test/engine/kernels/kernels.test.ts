/**
 * The wasm backend's own kernels (src/engine/kernels) against references: BatchMatMul against the
 * cpu backend's matmul on awkward shapes, transposes and batches; GELU against double precision
 * over the whole float range that matters; LayerNorm against the same formulas as tfjs ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import {
  fusedGelu,
  fusedGeluBackward,
  fusedLayerNorm,
  fusedLayerNormBackward,
} from '../../../src/engine/kernels/fused';
import { gemmModule } from '../../../src/engine/kernels/gemm';
import { randomFloats } from '../helpers';

beforeAll(async () => {
  await initBackend('wasm');
});

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** op(a) op(b) on the cpu backend, as the reference. */
async function cpuMatMul(
  a: Float32Array,
  sa: number[],
  b: Float32Array,
  sb: number[],
  ta: boolean,
  tb: boolean,
): Promise<Float32Array> {
  await initBackend('cpu');
  try {
    return tf
      .tidy(() => tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb))
      .dataSync() as Float32Array;
  } finally {
    await initBackend('wasm');
  }
}

describe('BatchMatMul on wasm (gemm.c)', () => {
  it('runs the fused multiply-add build where relaxed SIMD is available', () => {
    expect(['fma', 'simd']).toContain(gemmModule().build);
  });

  const cases: Array<[string, number[], number[], boolean, boolean]> = [
    ['2-D, no edge', [8, 16], [16, 8], false, false],
    ['2-D, edges in M, N and K', [7, 13], [13, 11], false, false],
    ['transposed a', [300, 5], [300, 9], true, false],
    ['transposed b', [5, 300], [1030, 300], false, true],
    ['both transposed, K past one block', [520, 6], [10, 520], true, true],
    ['one row', [1, 33], [33, 17], false, false],
    ['batched', [3, 9, 4], [3, 4, 10], false, false],
    ['batched, transposed b (attention scores)', [4, 12, 8], [4, 12, 8], false, true],
    ['batched, transposed a', [2, 6, 5], [2, 6, 7], true, false],
    ['a batch broadcast against one b', [3, 5, 6], [6, 4], false, false],
    ['one a broadcast against a batch', [5, 6], [3, 6, 4], false, false],
  ];
  for (const [name, sa, sb, ta, tb] of cases) {
    it(name, async () => {
      const a = randomFloats(size(sa), 1);
      const b = randomFloats(size(sb), 2);
      const want = await cpuMatMul(a, sa, b, sb, ta, tb);
      const got = tf.tidy(() => tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb));
      const want3 = tf.tidy(() => tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb).shape);
      expect(got.shape).toEqual(want3);
      const g = got.dataSync();
      got.dispose();
      expect(g.length).toBe(want.length);
      const k = ta ? sa[sa.length - 2]! : sa[sa.length - 1]!;
      for (let i = 0; i < g.length; i++) {
        expect(Math.abs(g[i]! - want[i]!), `element ${i}`).toBeLessThan(1e-5 * Math.sqrt(k) + 1e-6);
      }
    });
  }

  it('an empty inner dimension gives zeros', () => {
    const z = tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]));
    expect([...z.dataSync()]).toEqual(new Array(12).fill(0));
    z.dispose();
  });
});

/** erf in double precision: its Maclaurin series (|x| ≤ 3) or continued fraction (beyond). */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 3) {
    // erfc(x) = e^{−x²}/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …))))
    let f = ax;
    for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
    return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f);
  }
  let term = x;
  let sum = x;
  for (let n = 1; n < 100; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

describe('GELU on wasm (elementwise.c)', () => {
  const xs = Float32Array.from({ length: 4000 }, (_, i) => -12 + (24 * i) / 3999);
  const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
  const geluNew = (x: number) =>
    0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const dGelu = (x: number) =>
    0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp((-x * x) / 2)) / Math.sqrt(2 * Math.PI);
  const dGeluNew = (x: number) => {
    const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3);
    const du = Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * x * x);
    return 0.5 * (1 + Math.tanh(u)) + 0.5 * x * (1 - Math.tanh(u) ** 2) * du;
  };

  for (const [name, exact, f, df] of [
    ['gelu (exact)', true, gelu, dGelu],
    ['gelu_new (tanh)', false, geluNew, dGeluNew],
  ] as const) {
    it(`${name}: forward and backward to float precision on [−12, 12]`, () => {
      const x = tf.tensor1d(xs);
      const dy = tf.onesLike(x);
      const fwd = fusedGelu(x, exact)!;
      expect(fwd).not.toBeNull();
      const dx = fusedGeluBackward(dy, x, fwd.s, exact)!;
      const [y, g] = [fwd.y.dataSync(), dx.dataSync()];
      xs.forEach((v, i) => {
        expect(Math.abs(y[i]! - f(v)), `y(${v})`).toBeLessThan(2e-6 * Math.max(1, Math.abs(v)));
        expect(Math.abs(g[i]! - df(v)), `dy/dx(${v})`).toBeLessThan(2e-6);
      });
      tf.dispose([x, dy, fwd.y, fwd.s, dx]);
    });
  }
});

describe('LayerNorm on wasm (elementwise.c)', () => {
  it('forward and backward match the formulas run as tfjs ops', () => {
    const [n, c] = [6, 12];
    const x = tf.tensor2d(randomFloats(n * c, 3, 3), [n, c]);
    const g = tf.tensor1d(randomFloats(c, 4));
    const b = tf.tensor1d(randomFloats(c, 5));
    const dy = tf.tensor2d(randomFloats(n * c, 6), [n, c]);
    const f = fusedLayerNorm(x, g, b, 1e-5)!;
    const [dx, dg, db] = fusedLayerNormBackward(dy, f.xhat, f.rstd, g)!;
    const ref = tf.tidy(() => {
      const mu = tf.mean(x, -1, true);
      const xc = tf.sub(x, mu);
      const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), 1e-5));
      const xhat = tf.mul(xc, rstd);
      const d = tf.mul(dy, g);
      const rdx = tf.mul(
        rstd,
        tf.sub(tf.sub(d, tf.mean(d, -1, true)), tf.mul(xhat, tf.mean(tf.mul(d, xhat), -1, true))),
      );
      return [tf.add(tf.mul(xhat, g), b), rstd, rdx, tf.sum(tf.mul(dy, xhat), 0), tf.sum(dy, 0)];
    });
    const close = (a: tf.Tensor, e: tf.Tensor, label: string) => {
      expect(a.shape, label).toEqual(e.shape);
      const [p, q] = [a.dataSync(), e.dataSync()];
      p.forEach((v, i) => expect(Math.abs(v - q[i]!), `${label}[${i}]`).toBeLessThan(1e-5));
    };
    close(f.y, ref[0]!, 'y');
    close(f.rstd, ref[1]!, '1/σ');
    close(dx, ref[2]!, 'dx');
    close(dg, ref[3]!, 'dg');
    close(db, ref[4]!, 'db');
    tf.dispose([x, g, b, dy, f.y, f.xhat, f.rstd, dx, dg, db, ...ref]);
  });

  it('leaves widths that are not a multiple of 4, and other backends, to tfjs ops', async () => {
    const x = tf.zeros([2, 6]) as tf.Tensor2D;
    expect(fusedLayerNorm(x, tf.ones([6]), tf.zeros([6]), 1e-5)).toBeNull();
    x.dispose();
    await initBackend('cpu');
    try {
      const y = tf.zeros([2, 8]);
      expect(fusedGelu(y, true)).toBeNull();
      y.dispose();
    } finally {
      await initBackend('wasm');
    }
  });
});

describe('Slice on wasm', () => {
  it('contiguous runs (one memcpy) and strided ones (the stock kernel) both cut right', () => {
    const x = tf.tensor3d(
      Float32Array.from({ length: 4 * 3 * 5 }, (_, i) => i),
      [4, 3, 5],
    );
    const at = (b: number[], s: number[]) => [...tf.slice(x, b, s).dataSync()];
    const want = (b: number[], s: number[]) => {
      const out: number[] = [];
      for (let i = b[0]!; i < b[0]! + s[0]!; i++)
        for (let j = b[1]!; j < b[1]! + s[1]!; j++)
          for (let k = b[2]!; k < b[2]! + s[2]!; k++) out.push(i * 15 + j * 5 + k);
      return out;
    };
    for (const [b, s] of [
      [
        [1, 0, 0],
        [2, 3, 5],
      ], // leading rows
      [
        [2, 1, 0],
        [1, 2, 5],
      ], // rows of one plane
      [
        [3, 2, 1],
        [1, 1, 3],
      ], // part of one row
      [
        [0, 1, 0],
        [4, 1, 5],
      ], // strided: the stock kernel
      [
        [0, 0, 2],
        [4, 3, 2],
      ], // strided: the stock kernel
    ]) {
      expect(at(b!, s!), `${b} ${s}`).toEqual(want(b!, s!));
    }
    expect([...tf.slice(x, [1, 0, 0], [-1, -1, -1]).dataSync()]).toEqual(
      want([1, 0, 0], [3, 3, 5]),
    );
    x.dispose();
  });
});
