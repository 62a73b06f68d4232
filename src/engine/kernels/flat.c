/*
 * The training workers' arithmetic over flat float32 vectors, in wasm SIMD (scripts/build-kernels.sh
 * builds flat.wasm; src/engine/kernels/flat.ts runs it in a memory of its own, into which the
 * worker copies chunks of the shared buffers):
 *
 *   add_into    acc += x                                  (the all-reduce, region by region)
 *   sum_squares Σ x², accumulated in double precision     (the global gradient norm)
 *   adamw       AdamW on one parameter's elements, in float32 and in the same order of operations
 *               as the tensor AdamW (src/engine/train/optimizer.ts), so both take the same steps:
 *                 g ← g·clip;  m ← m β₁ + g (1 − β₁);  v ← v β₂ + g² (1 − β₂)
 *                 u ← (m · 1/bc₁) / (√(v · 1/bc₂) + ε) + λ p;  p ← p − lr·u
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name))) __attribute__((visibility("default")))

EXPORT(add_into)
void add_into(float *acc, const float *x, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4)
    wasm_v128_store(acc + i, wasm_f32x4_add(wasm_v128_load(acc + i), wasm_v128_load(x + i)));
  for (; i < n; i++) acc[i] += x[i];
}

EXPORT(sum_squares)
double sum_squares(const float *x, int n) {
  v128_t a = wasm_f64x2_splat(0), b = a;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    v128_t lo = wasm_f64x2_promote_low_f32x4(v);
    v128_t hi = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
    a = wasm_f64x2_add(a, wasm_f64x2_mul(lo, lo));
    b = wasm_f64x2_add(b, wasm_f64x2_mul(hi, hi));
  }
  double s = wasm_f64x2_extract_lane(a, 0) + wasm_f64x2_extract_lane(a, 1) +
             wasm_f64x2_extract_lane(b, 0) + wasm_f64x2_extract_lane(b, 1);
  for (; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

static inline float adamw1(float *p, float g, float *m, float *v, float b1, float c1, float b2,
                           float c2, float eps, float wd, float lr, float ibc1, float ibc2) {
  *m = *m * b1 + g * c1;
  *v = *v * b2 + g * g * c2;
  float u = (*m * ibc1) / (__builtin_sqrtf(*v * ibc2) + eps) + *p * wd;
  return *p - u * lr;
}

/* c1 = 1 − β₁, c2 = 1 − β₂, ibc = 1 / (1 − βᵗ), each rounded to float32 by the caller */
EXPORT(adamw)
void adamw(float *p, const float *g, float *m, float *v, int n, float clip, float b1, float c1,
           float b2, float c2, float eps, float wd, float lr, float ibc1, float ibc2) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t gi = wasm_f32x4_mul(wasm_v128_load(g + i), wasm_f32x4_splat(clip));
    v128_t mi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), wasm_f32x4_splat(b1)),
                               wasm_f32x4_mul(gi, wasm_f32x4_splat(c1)));
    v128_t vi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), wasm_f32x4_splat(b2)),
                               wasm_f32x4_mul(wasm_f32x4_mul(gi, gi), wasm_f32x4_splat(c2)));
    wasm_v128_store(m + i, mi);
    wasm_v128_store(v + i, vi);
    v128_t den = wasm_f32x4_add(wasm_f32x4_sqrt(wasm_f32x4_mul(vi, wasm_f32x4_splat(ibc2))),
                                wasm_f32x4_splat(eps));
    v128_t pi = wasm_v128_load(p + i);
    v128_t u = wasm_f32x4_add(wasm_f32x4_div(wasm_f32x4_mul(mi, wasm_f32x4_splat(ibc1)), den),
                              wasm_f32x4_mul(pi, wasm_f32x4_splat(wd)));
    wasm_v128_store(p + i, wasm_f32x4_sub(pi, wasm_f32x4_mul(u, wasm_f32x4_splat(lr))));
  }
  for (; i < n; i++)
    p[i] = adamw1(p + i, g[i] * clip, m + i, v + i, b1, c1, b2, c2, eps, wd, lr, ibc1, ibc2);
}
