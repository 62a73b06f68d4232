/**
 * The wasm decoder's kernels: plain loops over rows of Float32Arrays (views of the wasm heap),
 * for the parts of a token's forward that are too small to pay tfjs's per-op dispatch.
 * Sums run in double precision.
 */

/**
 * out[r] = LayerNorm(x[r]) for `rows` rows of n values (x̂ g + b, ε inside the root), in double
 * precision. `out` may be `x`.
 */
export function layerNormRows(
  x: Float32Array,
  out: Float32Array,
  rows: number,
  n: number,
  g: Float32Array,
  b: Float32Array,
  eps: number,
  xOff = 0,
  outOff = 0,
): void {
  for (let r = 0; r < rows; r++) {
    const xo = xOff + r * n;
    const oo = outOff + r * n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[xo + i]!;
    const mu = sum / n;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const d = x[xo + i]! - mu;
      sq += d * d;
    }
    const rstd = 1 / Math.sqrt(sq / n + eps);
    for (let i = 0; i < n; i++) out[oo + i] = (x[xo + i]! - mu) * rstd * g[i]! + b[i]!;
  }
}

/**
 * erfc(z) with a relative error below 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit).
 */
export function erfc(z: number): number {
  const a = Math.abs(z);
  const t = 1 / (1 + 0.5 * a);
  const r =
    t *
    Math.exp(
      -a * a -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return z >= 0 ? r : 2 - r;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * x[i] = act(x[i] + bias[i mod n]) in place over `rows` rows of n: 'gelu' is the exact
 * x Φ(x) = x erfc(−x/√2) / 2, 'gelu_new' GPT-2's tanh form written as x σ(2u).
 */
export function biasGeluRows(
  x: Float32Array,
  rows: number,
  n: number,
  bias: Float32Array,
  kind: 'gelu' | 'gelu_new',
): void {
  if (kind === 'gelu') {
    for (let r = 0, o = 0; r < rows; r++, o += n) {
      for (let i = 0; i < n; i++) {
        const v = x[o + i]! + bias[i]!;
        x[o + i] = 0.5 * v * erfc(-v * Math.SQRT1_2);
      }
    }
  } else {
    for (let r = 0, o = 0; r < rows; r++, o += n) {
      for (let i = 0; i < n; i++) {
        const v = x[o + i]! + bias[i]!;
        const u2 = 2 * SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
        x[o + i] = v / (1 + Math.exp(-u2));
      }
    }
  }
}

/**
 * Causal attention of `rows` new queries at positions past … past+rows−1 over a head-major cache.
 * q: rows × C (row r at qOff + r·qStride, head h at + h·hs), already biased; kc, vc: the layer's
 * keys and values, [nHead, blockSize, hs] from kOff / vOff, holding positions 0 … past+rows−1;
 * y: rows × C. Query r sees positions ≤ past + r.
 */
export function attendRows(
  q: Float32Array,
  qOff: number,
  qStride: number,
  cache: Float32Array,
  kOff: number,
  vOff: number,
  y: Float32Array,
  rows: number,
  past: number,
  nHead: number,
  hs: number,
  block: number,
  scratch: Float64Array,
): void {
  const scale = 1 / Math.sqrt(hs);
  const C = nHead * hs;
  const hs4 = hs & ~3;
  // (the loops are unrolled by four with separate sums: about twice as fast in V8)
  for (let r = 0; r < rows; r++) {
    const len = past + r + 1;
    for (let h = 0; h < nHead; h++) {
      const qo = qOff + r * qStride + h * hs;
      const kb = kOff + h * block * hs;
      const vb = vOff + h * block * hs;
      // scores q·k_j / √hs and their max
      let max = -Infinity;
      for (let j = 0, ko = kb; j < len; j++, ko += hs) {
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let d = 0;
        for (; d < hs4; d += 4) {
          s0 += q[qo + d]! * cache[ko + d]!;
          s1 += q[qo + d + 1]! * cache[ko + d + 1]!;
          s2 += q[qo + d + 2]! * cache[ko + d + 2]!;
          s3 += q[qo + d + 3]! * cache[ko + d + 3]!;
        }
        for (; d < hs; d++) s0 += q[qo + d]! * cache[ko + d]!;
        const s = (s0 + s1 + (s2 + s3)) * scale;
        scratch[j] = s;
        if (s > max) max = s;
      }
      // softmax numerators
      let sum = 0;
      for (let j = 0; j < len; j++) {
        const e = Math.exp(scratch[j]! - max);
        scratch[j] = e;
        sum += e;
      }
      // y = Σ_j p_j v_j, four output dimensions at a time
      const inv = 1 / sum;
      const yo = r * C + h * hs;
      let d = 0;
      for (; d < hs4; d += 4) {
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        let a3 = 0;
        for (let j = 0, vo = vb + d; j < len; j++, vo += hs) {
          const p = scratch[j]!;
          a0 += p * cache[vo]!;
          a1 += p * cache[vo + 1]!;
          a2 += p * cache[vo + 2]!;
          a3 += p * cache[vo + 3]!;
        }
        y[yo + d] = a0 * inv;
        y[yo + d + 1] = a1 * inv;
        y[yo + d + 2] = a2 * inv;
        y[yo + d + 3] = a3 * inv;
      }
      for (; d < hs; d++) {
        let a0 = 0;
        for (let j = 0, vo = vb + d; j < len; j++, vo += hs) a0 += scratch[j]! * cache[vo]!;
        y[yo + d] = a0 * inv;
      }
    }
  }
}

/** x[r] += a[r] + bias for `rows` rows of n. */
export function addRows(
  x: Float32Array,
  a: Float32Array,
  bias: Float32Array,
  rows: number,
  n: number,
) {
  for (let r = 0, o = 0; r < rows; r++, o += n) {
    for (let i = 0; i < n; i++) x[o + i] = x[o + i]! + (a[o + i]! + bias[i]!);
  }
}
