/*
 * Matrix kernels for inference weights held as f16 or q8, in wasm SIMD (scripts/build-kernels.sh
 * builds matmul.wasm from this file; src/engine/weights/kernels.ts loads it).
 *
 * A weight matrix is stored as rows of its outputs, W[n][k] (a Conv1D weight [in, out] is packed
 * transposed), each row padded with zeros to kp inputs:
 *   f16: kp a multiple of 8, one IEEE half per weight;
 *   q8:  kp a multiple of 32, llama.cpp's q8_0: blocks of 32 weights, each an int8 q and one f16
 *        scale d per block (w = d q, d = max|w| / 127), q in one plane of n·kp bytes and the
 *        scales in another of n·kp/32 halves. Rows go in tiles of four, interleaved block by block
 *        (row 4t's block b, then 4t+1's, 4t+2's, 4t+3's; their four scales likewise), so the
 *        matmul reads one stream and takes the four scales in one load; the n mod 4 last rows
 *        follow in plain row order. q8_at and q8_scale_at say where a row's block is.
 * y[m][n] = sum_k x[m][k] W[n][k] for m rows of x. The q8 kernel quantises x per block of 32 too
 * (as llama.cpp's q8_0 x q8_0 dot does) and multiplies in integers; the f16 kernel converts the
 * weights to float32 exactly, in registers. Nothing here allocates: every pointer comes from the
 * caller, which owns this module's memory (scratch included).
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name))) __attribute__((visibility("default")))

typedef union {
  uint32_t u;
  float f;
} bits32;

/* Half → float, exact for every finite half (subnormals included): the magnitude bits moved to
 * float32's exponent and mantissa fields, then scaled by 2^112 to fix the exponent bias. */
static inline float half_to_float(uint16_t h) {
  bits32 v = {.u = (uint32_t)(h & 0x7fff) << 13};
  v.f *= 0x1p112f;
  v.u |= (uint32_t)(h & 0x8000) << 16;
  return v.f;
}

/* Float → half, rounding to nearest even (as numpy's npy_floatbits_to_halfbits). */
static uint16_t float_to_half(float x) {
  bits32 v = {.f = x};
  uint32_t f = v.u;
  uint32_t sign = (f >> 16) & 0x8000;
  uint32_t exp = f & 0x7f800000;
  if (exp >= 0x47800000) {
    uint32_t sig = f & 0x007fffff;
    if (exp == 0x7f800000 && sig != 0) {
      uint32_t nan = 0x7c00 | (sig >> 13);
      return (uint16_t)(sign | (nan == 0x7c00 ? 0x7e00 : nan));
    }
    return (uint16_t)(sign | 0x7c00);
  }
  if (exp <= 0x38000000) {
    if (exp < 0x33000000) return (uint16_t)sign;
    uint32_t e = exp >> 23;
    uint32_t sig = (0x00800000 + (f & 0x007fffff)) >> (113 - e);
    if ((sig & 0x3fff) != 0x1000 || (f & 0x7ff) != 0) sig += 0x1000;
    return (uint16_t)(sign | (sig >> 13));
  }
  uint32_t hexp = (exp - 0x38000000) >> 13;
  uint32_t sig = f & 0x007fffff;
  if ((sig & 0x3fff) != 0x1000) sig += 0x1000;
  return (uint16_t)(sign | ((sig >> 13) + hexp));
}

/* Float32x4 → four half bit patterns in int32 lanes, rounding to nearest even, subnormals
 * included (the same halves as float_to_half; after F. Giesen's float_to_half_fast3_rtne). */
static inline v128_t floats_to_halves(v128_t f) {
  v128_t sign = wasm_v128_and(f, wasm_i32x4_splat((int32_t)0x80000000));
  v128_t x = wasm_v128_xor(f, sign);
  /* subnormal or zero halves: adding 0.5 aligns the 10 bits at the bottom, rounding as it goes */
  const v128_t magic = wasm_i32x4_splat(126 << 23);
  v128_t sub = wasm_i32x4_sub(wasm_f32x4_add(x, magic), magic);
  /* normal halves: rebias the exponent and round the mantissa to nearest even */
  v128_t odd = wasm_v128_and(wasm_u32x4_shr(x, 13), wasm_i32x4_splat(1));
  v128_t norm = wasm_u32x4_shr(
      wasm_i32x4_add(wasm_i32x4_add(x, wasm_i32x4_splat((int32_t)(0xc8000000u + 0xfffu)) /* (15 − 127) << 23, + 0xfff */), odd), 13);
  v128_t h = wasm_v128_bitselect(sub, norm, wasm_u32x4_lt(x, wasm_i32x4_splat(0x38800000)));
  /* overflow to infinity (weights are finite: no NaN payloads to keep) */
  h = wasm_v128_bitselect(wasm_i32x4_splat(0x7c00), h, wasm_u32x4_ge(x, wasm_i32x4_splat(0x47800000)));
  return wasm_v128_or(h, wasm_u32x4_shr(sign, 16));
}

/* max |x| over 32 floats. */
static inline float amax32(const float *x) {
  v128_t m = wasm_f32x4_abs(wasm_v128_load(x));
  for (int i = 4; i < 32; i += 4) m = wasm_f32x4_max(m, wasm_f32x4_abs(wasm_v128_load(x + i)));
  m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 2, 3, 0, 1));
  m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(m, 0);
}

/* 32 floats times `inv`, rounded to nearest (even), as eight int32x4. */
static inline void scaled32(const float *x, float inv, v128_t *r) {
  v128_t s = wasm_f32x4_splat(inv);
  for (int i = 0; i < 8; i++) {
    r[i] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(x + 4 * i), s)));
  }
}

/*
 * One q8_0 block of 32 floats: d = max|x| / 127 (stored as a half), q = round(x / d). Rounding
 * is to nearest, ties to even, as llama.cpp's SIMD quantisers do (its scalar reference rounds
 * ties away from zero; an exact tie of x / d is rare, and either way the error is ≤ d / 2).
 */
static inline void quantize32(const float *x, int8_t *q, uint16_t *d) {
  float scale = amax32(x) / 127.0f;
  *d = float_to_half(scale);
  v128_t r[8];
  scaled32(x, scale != 0.0f ? 1.0f / scale : 0.0f, r);
  wasm_v128_store(q, wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(r[0], r[1]),
                                             wasm_i16x8_narrow_i32x4(r[2], r[3])));
  wasm_v128_store(q + 16, wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(r[4], r[5]),
                                                  wasm_i16x8_narrow_i32x4(r[6], r[7])));
}

/* n (≤ 32) floats at stride `stride`, zero-padded to 32, into `tmp`. */
static inline const float *gather32(const float *x, int n, int stride, float *tmp) {
  if (n == 32 && stride == 1) return x;
  for (int j = 0; j < n; j++) tmp[j] = x[j * stride];
  for (int j = n; j < 32; j++) tmp[j] = 0.0f;
  return tmp;
}

/* ─── packing (at load) ─────────────────────────────────────────────────────────────────── */

/* Where row r's block b is in the q plane, and its scale in the scale plane (see the top). */
static inline int q8_at(int n, int kp, int r, int b) {
  int tiled = n & ~3;
  return r < tiled ? (r & ~3) * kp + b * 128 + (r & 3) * 32 : r * kp + b * 32;
}
static inline int q8_scale_at(int n, int nb, int r, int b) {
  int tiled = n & ~3;
  return r < tiled ? (r & ~3) * nb + b * 4 + (r & 3) : r * nb + b;
}

/* Rows first … first+rows−1 of the n-row q8 matrix (wq, wd) from float32 src [rows][k]. */
EXPORT(q8_pack_rows)
void q8_pack_rows(const float *src, int rows, int k, int kp, int8_t *wq, uint16_t *wd, int n,
                  int first) {
  int nb = kp / 32;
  for (int i = 0; i < rows; i++) {
    int r = first + i;
    for (int b = 0; b < nb; b++) {
      int len = k - b * 32;
      if (len > 32) len = 32;
      if (len < 0) len = 0;
      float tmp[32];
      quantize32(gather32(src + i * k + b * 32, len, 1, tmp), wq + q8_at(n, kp, r, b),
                 wd + q8_scale_at(n, nb, r, b));
    }
  }
}

/* Inputs k0 … k0+kc−1 of every output (src [kc][n], a slice of a Conv1D [in][out] weight) into
 * the n-row q8 matrix: k0 a multiple of 32, kc too unless the slice ends the input. */
EXPORT(q8_pack_cols)
void q8_pack_cols(const float *src, int kc, int n, int k0, int kp, int8_t *wq, uint16_t *wd) {
  int nb = kp / 32;
  for (int c = 0; c < n; c++) {
    for (int j = 0; j < kc; j += 32) {
      int len = kc - j < 32 ? kc - j : 32;
      int b = (k0 + j) / 32;
      float tmp[32];
      quantize32(gather32(src + j * n + c, len, n, tmp), wq + q8_at(n, kp, c, b),
                 wd + q8_scale_at(n, nb, c, b));
    }
  }
}

/* Zeros the q8 blocks from input k on (a row tail no slice reaches). */
EXPORT(q8_pad)
void q8_pad(int n, int k, int kp, int8_t *wq, uint16_t *wd) {
  int nb = kp / 32;
  for (int c = 0; c < n; c++) {
    for (int b = (k + 31) / 32; b < nb; b++) {
      int8_t *q = wq + q8_at(n, kp, c, b);
      for (int j = 0; j < 32; j++) q[j] = 0;
      wd[q8_scale_at(n, nb, c, b)] = 0;
    }
  }
}

/* Eight floats as eight halves, stored. */
static inline void halves8(const float *x, uint16_t *h) {
  wasm_v128_store(h, wasm_u16x8_narrow_i32x4(floats_to_halves(wasm_v128_load(x)),
                                             floats_to_halves(wasm_v128_load(x + 4))));
}

EXPORT(f16_pack_rows)
void f16_pack_rows(const float *src, int rows, int k, int kp, uint16_t *w) {
  for (int r = 0; r < rows; r++) {
    const float *x = src + r * k;
    uint16_t *h = w + r * kp;
    int j = 0;
    for (; j + 8 <= k; j += 8) halves8(x + j, h + j);
    for (; j < k; j++) h[j] = float_to_half(x[j]);
    for (; j < kp; j++) h[j] = 0;
  }
}

EXPORT(f16_pack_cols)
void f16_pack_cols(const float *src, int kc, int n, int k0, int kp, uint16_t *w) {
  float tmp[8];
  for (int c = 0; c < n; c++) {
    uint16_t *h = w + c * kp + k0;
    int j = 0;
    for (; j + 8 <= kc; j += 8) {
      for (int i = 0; i < 8; i++) tmp[i] = src[(j + i) * n + c];
      halves8(tmp, h + j);
    }
    for (; j < kc; j++) h[j] = float_to_half(src[j * n + c]);
  }
}

EXPORT(f16_pad)
void f16_pad(int n, int k, int kp, uint16_t *w) {
  for (int c = 0; c < n; c++)
    for (int j = k; j < kp; j++) w[c * kp + j] = 0;
}

/* ─── dequantising (embedding rows, the batched path) ────────────────────────────────────── */

/* Rows first … first+rows−1 of the n-row q8 matrix as float32 [rows][k]. */
EXPORT(q8_dequant)
void q8_dequant(const int8_t *wq, const uint16_t *wd, int n, int k, int kp, int first, int rows,
                float *out) {
  int nb = kp / 32;
  for (int i = 0; i < rows; i++) {
    int r = first + i;
    for (int b = 0; b * 32 < k; b++) {
      float d = half_to_float(wd[q8_scale_at(n, nb, r, b)]);
      const int8_t *q = wq + q8_at(n, kp, r, b);
      int len = k - b * 32 < 32 ? k - b * 32 : 32;
      for (int j = 0; j < len; j++) out[i * k + b * 32 + j] = d * (float)q[j];
    }
  }
}

EXPORT(f16_dequant)
void f16_dequant(const uint16_t *w, int rows, int k, int kp, float *out) {
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < k; j++) out[r * k + j] = half_to_float(w[r * kp + j]);
}

/* ─── matmuls ──────────────────────────────────────────────────────────────────────────────── */

/* [s0, s1, s2, s3]: the lane sums of four accumulators. */
static inline v128_t hsum4(v128_t a0, v128_t a1, v128_t a2, v128_t a3) {
  v128_t t0 = wasm_f32x4_add(wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7));
  v128_t t1 = wasm_f32x4_add(wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5), wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7));
  return wasm_f32x4_add(wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5), wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
}

/* The same for int32 lanes. */
static inline v128_t hsum4_i32(v128_t a0, v128_t a1, v128_t a2, v128_t a3) {
  v128_t t0 = wasm_i32x4_add(wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7));
  v128_t t1 = wasm_i32x4_add(wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5), wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5), wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
}

static inline float hsum(v128_t a) {
  return wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1) +
         wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3);
}

/* Four halves as float32x4, exactly (see half_to_float). */
static inline v128_t halves4(const uint16_t *h) {
  v128_t v = wasm_u32x4_load16x4(h);
  v128_t mag = wasm_i32x4_shl(wasm_v128_and(v, wasm_i32x4_splat(0x7fff)), 13);
  v128_t f = wasm_f32x4_mul(mag, wasm_f32x4_splat(0x1p112f));
  return wasm_v128_or(f, wasm_i32x4_shl(wasm_v128_and(v, wasm_i32x4_splat(0x8000)), 16));
}

/* The integer dot of one q8 block of weights with one block of quantised inputs (as int16). */
static inline v128_t block_dot_i32(const int8_t *w, v128_t a0, v128_t a1, v128_t a2, v128_t a3) {
  /* (load8x8: eight int8 loaded as int16, one instruction) */
  v128_t s = wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w), a0);
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w + 8), a1));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w + 16), a2));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w + 24), a3));
}

/* Quantises m rows of x [m][k] into xs [m][kp] (int16 values of int8 q) and xd [m][kp/32], as
 * quantize32 does (the scale kept in float32). */
static void quantize_inputs(const float *x, int m, int k, int kp, int16_t *xs, float *xd) {
  int nb = kp / 32;
  float tmp[32];
  for (int r = 0; r < m; r++) {
    for (int b = 0; b < nb; b++) {
      int len = k - b * 32 < 32 ? k - b * 32 : 32;
      const float *v = gather32(x + r * k + b * 32, len, 1, tmp);
      float d = amax32(v) / 127.0f;
      xd[r * nb + b] = d;
      v128_t q[8];
      scaled32(v, d != 0.0f ? 1.0f / d : 0.0f, q);
      int16_t *out = xs + r * kp + b * 32;
      for (int i = 0; i < 4; i++) {
        wasm_v128_store(out + 8 * i, wasm_i16x8_narrow_i32x4(q[2 * i], q[2 * i + 1]));
      }
    }
  }
}

/*
 * y[m][n] = x[m][k] · W[n][kp]ᵀ for q8 W. Scratch: xs (m·kp int16), xd (m·kp/32 floats).
 * Outputs go a tile of four rows at a time, all m input rows against each tile, so a weight is
 * read from memory once per call; a tile's four integer dots are summed across lanes together
 * and scaled by its four scales at once.
 */
EXPORT(q8_matmul)
void q8_matmul(const int8_t *wq, const uint16_t *wd, int n, int k, int kp, const float *x, int m,
               float *y, int16_t *xs, float *xd) {
  int nb = kp / 32;
  quantize_inputs(x, m, k, kp, xs, xd);
  int tiled = n & ~3;
  for (int c = 0; c < tiled; c += 4) {
    const int8_t *wt = wq + c * kp;
    const uint16_t *dt = wd + c * nb;
    for (int r = 0; r < m; r++) {
      const int16_t *a = xs + r * kp;
      const float *ad = xd + r * nb;
      v128_t acc = wasm_f32x4_splat(0);
      for (int b = 0; b < nb; b++) {
        const int16_t *ab = a + b * 32;
        v128_t a0 = wasm_v128_load(ab), a1 = wasm_v128_load(ab + 8);
        v128_t a2 = wasm_v128_load(ab + 16), a3 = wasm_v128_load(ab + 24);
        const int8_t *wb = wt + b * 128;
        v128_t s = hsum4_i32(block_dot_i32(wb, a0, a1, a2, a3), block_dot_i32(wb + 32, a0, a1, a2, a3),
                             block_dot_i32(wb + 64, a0, a1, a2, a3), block_dot_i32(wb + 96, a0, a1, a2, a3));
        v128_t d = wasm_f32x4_mul(halves4(dt + b * 4), wasm_f32x4_splat(ad[b]));
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s), d));
      }
      wasm_v128_store(y + r * n + c, acc);
    }
  }
  for (int c = tiled; c < n; c++) {
    const int8_t *w0 = wq + c * kp;
    const uint16_t *d0 = wd + c * nb;
    for (int r = 0; r < m; r++) {
      const int16_t *a = xs + r * kp;
      const float *ad = xd + r * nb;
      v128_t acc = wasm_f32x4_splat(0);
      for (int b = 0; b < nb; b++) {
        const int16_t *ab = a + b * 32;
        v128_t s = block_dot_i32(w0 + b * 32, wasm_v128_load(ab), wasm_v128_load(ab + 8),
                                 wasm_v128_load(ab + 16), wasm_v128_load(ab + 24));
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(s),
                                                 wasm_f32x4_splat(half_to_float(d0[b]) * ad[b])));
      }
      y[r * n + c] = hsum(acc);
    }
  }
}

/* Four halves as float32x4, each 2^-112 times the half's value (exact): loaded sign-extended to
 * int32 (one instruction), the magnitude bits shifted into place, the sign's copies cleared. */
static inline v128_t halves_scaled(const uint16_t *h) {
  const v128_t mask = wasm_i32x4_splat((int32_t)0x8fffffff);
  return wasm_v128_and(wasm_i32x4_shl(wasm_i32x4_load16x4(h), 13), mask);
}

/*
 * y[m][n] = x[m][k] · W[n][kp]ᵀ for f16 W. Scratch: xs (m·kp floats), x scaled by 2^100 and
 * zero-padded, so that (w 2^-112)(x 2^100) stays far from float32's underflow; y is scaled back
 * by 2^12.
 */
EXPORT(f16_matmul)
void f16_matmul(const uint16_t *w, int n, int k, int kp, const float *x, int m, float *y,
                float *xs) {
  for (int r = 0; r < m; r++) {
    for (int j = 0; j < k; j++) xs[r * kp + j] = x[r * k + j] * 0x1p100f;
    for (int j = k; j < kp; j++) xs[r * kp + j] = 0.0f;
  }
  const v128_t back = wasm_f32x4_splat(0x1p12f);
  int c = 0;
  for (; c + 4 <= n; c += 4) {
    const uint16_t *w0 = w + c * kp;
    for (int r = 0; r < m; r++) {
      const float *a = xs + r * kp;
      v128_t acc0 = wasm_f32x4_splat(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      for (int j = 0; j < kp; j += 8) {
        v128_t alo = wasm_v128_load(a + j), ahi = wasm_v128_load(a + j + 4);
        const uint16_t *w1 = w0 + kp, *w2 = w0 + 2 * kp, *w3 = w0 + 3 * kp;
        acc0 = wasm_f32x4_add(acc0, wasm_f32x4_add(wasm_f32x4_mul(halves_scaled(w0 + j), alo),
                                                   wasm_f32x4_mul(halves_scaled(w0 + j + 4), ahi)));
        acc1 = wasm_f32x4_add(acc1, wasm_f32x4_add(wasm_f32x4_mul(halves_scaled(w1 + j), alo),
                                                   wasm_f32x4_mul(halves_scaled(w1 + j + 4), ahi)));
        acc2 = wasm_f32x4_add(acc2, wasm_f32x4_add(wasm_f32x4_mul(halves_scaled(w2 + j), alo),
                                                   wasm_f32x4_mul(halves_scaled(w2 + j + 4), ahi)));
        acc3 = wasm_f32x4_add(acc3, wasm_f32x4_add(wasm_f32x4_mul(halves_scaled(w3 + j), alo),
                                                   wasm_f32x4_mul(halves_scaled(w3 + j + 4), ahi)));
      }
      wasm_v128_store(y + r * n + c, wasm_f32x4_mul(hsum4(acc0, acc1, acc2, acc3), back));
    }
  }
  for (; c < n; c++) {
    const uint16_t *w0 = w + c * kp;
    for (int r = 0; r < m; r++) {
      const float *a = xs + r * kp;
      v128_t acc = wasm_f32x4_splat(0);
      for (int j = 0; j < kp; j += 8) {
        acc = wasm_f32x4_add(acc, wasm_f32x4_add(wasm_f32x4_mul(halves_scaled(w0 + j), wasm_v128_load(a + j)),
                                                 wasm_f32x4_mul(halves_scaled(w0 + j + 4), wasm_v128_load(a + j + 4))));
      }
      y[r * n + c] = hsum(acc) * 0x1p12f;
    }
  }
}

/* ─── float32 (the reference the f16/q8 numerics are measured against) ───────────────────── */

/*
 * y[m][n] += x[m][0 … kc) · w[kc][n]: x's rows at stride `xs`, w a slice of kc input rows of a
 * Conv1D weight [in][out]. Four input rows at a time, every x row against them while they are
 * in cache.
 */
EXPORT(f32_acc_rows)
void f32_acc_rows(const float *x, int m, int xs, const float *w, int kc, int n, float *y) {
  int j = 0;
  for (; j + 4 <= kc; j += 4) {
    const float *w0 = w + j * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
    for (int r = 0; r < m; r++) {
      const float *xr = x + r * xs + j;
      float *yr = y + r * n;
      v128_t a0 = wasm_f32x4_splat(xr[0]), a1 = wasm_f32x4_splat(xr[1]);
      v128_t a2 = wasm_f32x4_splat(xr[2]), a3 = wasm_f32x4_splat(xr[3]);
      int c = 0;
      for (; c + 4 <= n; c += 4) {
        v128_t s = wasm_f32x4_add(wasm_f32x4_mul(a0, wasm_v128_load(w0 + c)),
                                  wasm_f32x4_mul(a1, wasm_v128_load(w1 + c)));
        s = wasm_f32x4_add(s, wasm_f32x4_add(wasm_f32x4_mul(a2, wasm_v128_load(w2 + c)),
                                             wasm_f32x4_mul(a3, wasm_v128_load(w3 + c))));
        wasm_v128_store(yr + c, wasm_f32x4_add(wasm_v128_load(yr + c), s));
      }
      for (; c < n; c++) yr[c] += xr[0] * w0[c] + xr[1] * w1[c] + xr[2] * w2[c] + xr[3] * w3[c];
    }
  }
  for (; j < kc; j++) {
    for (int r = 0; r < m; r++) {
      float a = x[r * xs + j];
      for (int c = 0; c < n; c++) y[r * n + c] += a * w[j * n + c];
    }
  }
}

/* y[m][rows] = x[m][k] · w[rows][k]ᵀ (w rows of W_e: the LM head on a slice of the vocabulary). */
EXPORT(f32_dot_rows)
void f32_dot_rows(const float *x, int m, int k, const float *w, int rows, float *y) {
  for (int c = 0; c < rows; c++) {
    const float *wc = w + c * k;
    for (int r = 0; r < m; r++) {
      const float *xr = x + r * k;
      v128_t acc = wasm_f32x4_splat(0);
      int j = 0;
      for (; j + 4 <= k; j += 4) {
        acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(xr + j), wasm_v128_load(wc + j)));
      }
      float s = hsum(acc);
      for (; j < k; j++) s += xr[j] * wc[j];
      y[r * rows + c] = s;
    }
  }
}
