/*
 * The training step's element-wise and row-wise ops for the wasm backend, fused, in wasm SIMD
 * (scripts/build-kernels.sh builds elementwise.wasm; src/engine/kernels/fused.ts runs it in
 * tfjs-wasm's own memory). Each replaces a chain of tfjs kernels that would each read and write
 * the whole tensor (GELU and its gradient are 6–9 of them, with tfjs-wasm's scalar exp and erf).
 *
 *   GELU (gelu_new, GPT-2's): y = x σ(2u), u = √(2/π) (x + 0.044715 x³), s = σ(2u) kept;
 *        dx = dy (s + x s (1 − s) 2u'(x)),  u'(x) = √(2/π) (1 + 3·0.044715 x²)
 *   GELU (gelu, exact):       y = x Φ(x), Φ(x) = ½ (1 + erf(x/√2)), s = Φ(x) kept;
 *        dx = dy (Φ(x) + x φ(x)),  φ(x) = e^(−x²/2) / √(2π)
 *   LayerNorm over rows of C: x̂ = (x − μ) / √(σ² + ε), y = x̂ g + b (x̂ and 1/σ kept);
 *        dx = (1/σ) (d − mean(d) − x̂ mean(d x̂)), d = dy g;  dg = Σ_rows dy x̂,  db = Σ_rows dy
 *
 * exp is Cephes' expf (a degree-5 polynomial after reduction by ln 2, ~1 ulp) and erf the rational
 * approximation Eigen and XLA use for float32 (~2 ulp); test/engine/kernels checks both against
 * double precision. No allocation, no stack: the caller passes every pointer.
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name))) __attribute__((visibility("default")))

typedef v128_t f4;
#define SPLAT wasm_f32x4_splat
#define ADD wasm_f32x4_add
#define SUB wasm_f32x4_sub
#define MUL wasm_f32x4_mul
#define DIV wasm_f32x4_div

static inline f4 exp4(f4 x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, SPLAT(-87.33654f)), SPLAT(88.72283f));
  f4 n = wasm_f32x4_nearest(MUL(x, SPLAT(1.44269504088896341f)));
  /* r = x − n ln 2, ln 2 split in two so that n·C1 is exact */
  f4 r = SUB(SUB(x, MUL(n, SPLAT(0.693359375f))), MUL(n, SPLAT(-2.12194440e-4f)));
  f4 p = SPLAT(1.9875691500e-4f);
  p = ADD(MUL(p, r), SPLAT(1.3981999507e-3f));
  p = ADD(MUL(p, r), SPLAT(8.3334519073e-3f));
  p = ADD(MUL(p, r), SPLAT(4.1665795894e-2f));
  p = ADD(MUL(p, r), SPLAT(1.6666665459e-1f));
  p = ADD(MUL(p, r), SPLAT(5.0000001201e-1f));
  p = ADD(ADD(MUL(MUL(p, r), r), r), SPLAT(1.0f));
  /* × 2^n, n in [−126, 128]: two halves, so that neither exponent field overflows */
  v128_t ni = wasm_i32x4_trunc_sat_f32x4(n);
  v128_t h1 = wasm_i32x4_shr(ni, 1);
  v128_t h2 = wasm_i32x4_sub(ni, h1);
  f4 s1 = wasm_i32x4_shl(wasm_i32x4_add(h1, wasm_i32x4_splat(127)), 23);
  f4 s2 = wasm_i32x4_shl(wasm_i32x4_add(h2, wasm_i32x4_splat(127)), 23);
  return MUL(MUL(p, s1), s2);
}

static inline f4 erf4(f4 x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, SPLAT(-4.f)), SPLAT(4.f));
  f4 x2 = MUL(x, x);
  f4 p = SPLAT(-2.72614225801306e-10f);
  p = ADD(MUL(p, x2), SPLAT(2.77068142495902e-08f));
  p = ADD(MUL(p, x2), SPLAT(-2.10102402082508e-06f));
  p = ADD(MUL(p, x2), SPLAT(-5.69250639462346e-05f));
  p = ADD(MUL(p, x2), SPLAT(-7.34990630326855e-04f));
  p = ADD(MUL(p, x2), SPLAT(-2.95459980854025e-03f));
  p = ADD(MUL(p, x2), SPLAT(-1.60960333262415e-02f));
  p = MUL(p, x);
  f4 q = SPLAT(-1.45660718464996e-05f);
  q = ADD(MUL(q, x2), SPLAT(-2.13374055278905e-04f));
  q = ADD(MUL(q, x2), SPLAT(-1.68282697438203e-03f));
  q = ADD(MUL(q, x2), SPLAT(-7.37332916720468e-03f));
  q = ADD(MUL(q, x2), SPLAT(-1.42647390514189e-02f));
  return DIV(p, q);
}

static inline f4 sigmoid4(f4 z) { return DIV(SPLAT(1.f), ADD(SPLAT(1.f), exp4(wasm_f32x4_neg(z)))); }

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2PI 0.3989422804014327f

/* n a multiple of 4 (the caller handles the tail with the scalar path of the same formulas) */
EXPORT(gelu_forward)
void gelu_forward(const float *x, float *y, float *s, int n, int exact) {
  for (int i = 0; i < n; i += 4) {
    f4 v = wasm_v128_load(x + i), k;
    if (exact) {
      k = MUL(ADD(erf4(MUL(v, SPLAT(0.7071067811865476f))), SPLAT(1.f)), SPLAT(0.5f));
    } else {
      f4 u2 = MUL(MUL(v, ADD(MUL(MUL(v, v), SPLAT(0.044715f)), SPLAT(1.f))), SPLAT(2 * SQRT_2_OVER_PI));
      k = sigmoid4(u2);
    }
    wasm_v128_store(s + i, k);
    wasm_v128_store(y + i, MUL(v, k));
  }
}

EXPORT(gelu_backward)
void gelu_backward(const float *dy, const float *x, const float *s, float *dx, int n, int exact) {
  for (int i = 0; i < n; i += 4) {
    f4 v = wasm_v128_load(x + i), k = wasm_v128_load(s + i), d;
    if (exact) {
      f4 pdf = MUL(exp4(MUL(MUL(v, v), SPLAT(-0.5f))), SPLAT(INV_SQRT_2PI));
      d = ADD(k, MUL(v, pdf));
    } else {
      f4 du = MUL(ADD(MUL(MUL(v, v), SPLAT(3 * 0.044715f)), SPLAT(1.f)), SPLAT(2 * SQRT_2_OVER_PI));
      d = ADD(k, MUL(MUL(MUL(v, k), SUB(SPLAT(1.f), k)), du));
    }
    wasm_v128_store(dx + i, MUL(wasm_v128_load(dy + i), d));
  }
}

static inline float hsum(f4 v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) +
         wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3);
}

/* rows of c (a multiple of 4); y, xhat [rows, c], rstd [rows] */
EXPORT(layernorm_forward)
void layernorm_forward(const float *x, const float *g, const float *b, float *y, float *xhat,
                       float *rstd, int rows, int c, float eps) {
  float inv_c = 1.f / (float)c;
  for (int r = 0; r < rows; r++, x += c, y += c, xhat += c) {
    f4 acc = SPLAT(0);
    for (int i = 0; i < c; i += 4) acc = ADD(acc, wasm_v128_load(x + i));
    f4 mu = SPLAT(hsum(acc) * inv_c);
    f4 sq = SPLAT(0);
    for (int i = 0; i < c; i += 4) {
      f4 d = SUB(wasm_v128_load(x + i), mu);
      sq = ADD(sq, MUL(d, d));
    }
    float rs = 1.f / __builtin_sqrtf(hsum(sq) * inv_c + eps);
    rstd[r] = rs;
    f4 rsv = SPLAT(rs);
    for (int i = 0; i < c; i += 4) {
      f4 h = MUL(SUB(wasm_v128_load(x + i), mu), rsv);
      wasm_v128_store(xhat + i, h);
      wasm_v128_store(y + i, ADD(MUL(h, wasm_v128_load(g + i)), wasm_v128_load(b + i)));
    }
  }
}

/* dx [rows, c]; dg, db [c] are written (not accumulated) */
EXPORT(layernorm_backward)
void layernorm_backward(const float *dy, const float *xhat, const float *rstd, const float *g,
                        float *dx, float *dg, float *db, int rows, int c) {
  float inv_c = 1.f / (float)c;
  for (int i = 0; i < c; i += 4) {
    wasm_v128_store(dg + i, SPLAT(0));
    wasm_v128_store(db + i, SPLAT(0));
  }
  for (int r = 0; r < rows; r++, dy += c, xhat += c, dx += c) {
    f4 s1 = SPLAT(0), s2 = SPLAT(0);
    for (int i = 0; i < c; i += 4) {
      f4 d = MUL(wasm_v128_load(dy + i), wasm_v128_load(g + i));
      s1 = ADD(s1, d);
      s2 = ADD(s2, MUL(d, wasm_v128_load(xhat + i)));
    }
    f4 m1 = SPLAT(hsum(s1) * inv_c), m2 = SPLAT(hsum(s2) * inv_c), rs = SPLAT(rstd[r]);
    for (int i = 0; i < c; i += 4) {
      f4 gy = wasm_v128_load(dy + i), h = wasm_v128_load(xhat + i);
      f4 d = MUL(gy, wasm_v128_load(g + i));
      wasm_v128_store(dx + i, MUL(rs, SUB(SUB(d, m1), MUL(h, m2))));
      wasm_v128_store(dg + i, ADD(wasm_v128_load(dg + i), MUL(gy, h)));
      wasm_v128_store(db + i, ADD(wasm_v128_load(db + i), gy));
    }
  }
}
