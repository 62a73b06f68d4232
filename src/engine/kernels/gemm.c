/*
 * Single-precision matrix products for the wasm backend's BatchMatMul, in wasm SIMD
 * (scripts/build-kernels.sh builds gemm.wasm and gemm-relaxed.wasm from this file;
 * src/engine/kernels/gemm.ts loads one of them into tfjs-wasm's own memory).
 *
 *   C[g] = op(A[g]) op(B[g]),  op(A) [M, K], op(B) [K, N], C [M, N], all row-major,
 *
 * op = transpose when asked. GotoBLAS's blocking: a KC × NC block of op(B) is packed into panels
 * of NR columns (k-major), an MC × KC block of op(A) into panels of MR rows (k-major), and an
 * MR × NR microkernel keeps its tile of C in registers while it walks k. Packing is where the
 * transposes happen, so a transposed operand costs no more than a plain one.
 *
 * MR × NR = 4 × 8: eight accumulators, two B vectors and one broadcast A value fit x64's sixteen
 * SIMD registers, so the compiled loop never spills. gemm-relaxed.wasm multiplies and adds with
 * relaxed SIMD's fused multiply-add (f32x4.relaxed_madd: one rounding where hardware fuses,
 * otherwise two); gemm.wasm with a multiply and an add.
 *
 * Nothing here allocates or touches the stack: every pointer comes from the caller, which owns
 * the memory (the scratch for the packed blocks and an MR × NR edge tile included).
 */
#include <stdint.h>
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name))) __attribute__((visibility("default")))

#ifdef RELAXED
#define MADD(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#endif

#define MR 4
#define NR 8
#define KC 256
#define MC 128
#define NC 1024

static inline int min(int a, int b) { return a < b ? a : b; }

/* op(A)[m0 : m0+mc, k0 : k0+kc] → panels of MR rows, each k-major (ap[k·MR + r]), zero-padded. */
static void pack_a(const float *a, int lda, int trans, int m0, int mc, int k0, int kc, float *ap) {
  for (int i = 0; i < mc; i += MR, ap += kc * MR) {
    int mr = min(MR, mc - i);
    if (trans && mr == MR) {
      for (int k = 0; k < kc; k++)
        wasm_v128_store(ap + k * MR, wasm_v128_load(a + (k0 + k) * lda + m0 + i));
      continue;
    }
    for (int k = 0; k < kc; k++) {
      for (int r = 0; r < mr; r++)
        ap[k * MR + r] = trans ? a[(k0 + k) * lda + m0 + i + r] : a[(m0 + i + r) * lda + k0 + k];
      for (int r = mr; r < MR; r++) ap[k * MR + r] = 0;
    }
  }
}

/* op(B)[k0 : k0+kc, n0 : n0+nc] → panels of NR columns, each k-major (bp[k·NR + c]), zero-padded. */
static void pack_b(const float *b, int ldb, int trans, int n0, int nc, int k0, int kc, float *bp) {
  for (int j = 0; j < nc; j += NR, bp += kc * NR) {
    int nr = min(NR, nc - j);
    if (!trans && nr == NR) {
      for (int k = 0; k < kc; k++) {
        const float *s = b + (k0 + k) * ldb + n0 + j;
        wasm_v128_store(bp + k * NR, wasm_v128_load(s));
        wasm_v128_store(bp + k * NR + 4, wasm_v128_load(s + 4));
      }
      continue;
    }
    for (int k = 0; k < kc; k++) {
      for (int c = 0; c < nr; c++)
        bp[k * NR + c] = trans ? b[(n0 + j + c) * ldb + k0 + k] : b[(k0 + k) * ldb + n0 + j + c];
      for (int c = nr; c < NR; c++) bp[k * NR + c] = 0;
    }
  }
}

/* The MR × NR tile at c (row stride ldc) ← (accumulate ? itself : 0) + Σ_k ap[k] bp[k]ᵀ. */
static void microkernel(int kc, const float *ap, const float *bp, float *c, int ldc, int accumulate) {
  v128_t lo[MR], hi[MR];
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) lo[r] = hi[r] = wasm_f32x4_splat(0);
  for (int k = 0; k < kc; k++, ap += MR, bp += NR) {
    v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
#pragma clang loop unroll(full)
    for (int r = 0; r < MR; r++) {
      v128_t a = wasm_v128_load32_splat(ap + r);
      lo[r] = MADD(a, b0, lo[r]);
      hi[r] = MADD(a, b1, hi[r]);
    }
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < MR; r++) {
    float *p = c + r * ldc;
    if (accumulate) {
      lo[r] = wasm_f32x4_add(lo[r], wasm_v128_load(p));
      hi[r] = wasm_f32x4_add(hi[r], wasm_v128_load(p + 4));
    }
    wasm_v128_store(p, lo[r]);
    wasm_v128_store(p + 4, hi[r]);
  }
}

static void gemm(int M, int N, int K, const float *a, int ta, const float *b, int tb, float *c,
                 float *scratch) {
  float *ap = scratch, *bp = scratch + MC * KC, *edge = bp + KC * NC;
  int lda = ta ? M : K, ldb = tb ? K : N;
  if (K == 0) {
    for (int i = 0; i < M * N; i++) c[i] = 0;
    return;
  }
  for (int jc = 0; jc < N; jc += NC) {
    int nc = min(NC, N - jc);
    for (int pc = 0; pc < K; pc += KC) {
      int kc = min(KC, K - pc);
      pack_b(b, ldb, tb, jc, nc, pc, kc, bp);
      for (int ic = 0; ic < M; ic += MC) {
        int mc = min(MC, M - ic);
        pack_a(a, lda, ta, ic, mc, pc, kc, ap);
        for (int jr = 0; jr < nc; jr += NR) {
          int nr = min(NR, nc - jr);
          for (int ir = 0; ir < mc; ir += MR) {
            int mr = min(MR, mc - ir);
            float *cp = c + (ic + ir) * N + jc + jr;
            if (mr == MR && nr == NR) {
              microkernel(kc, ap + ir * kc, bp + jr * kc, cp, N, pc > 0);
              continue;
            }
            microkernel(kc, ap + ir * kc, bp + jr * kc, edge, NR, 0);
            for (int r = 0; r < mr; r++)
              for (int q = 0; q < nr; q++)
                cp[r * N + q] = (pc > 0 ? cp[r * N + q] : 0) + edge[r * NR + q];
          }
        }
      }
    }
  }
}

/* The scratch gemm needs, in floats. */
EXPORT(gemm_scratch_floats)
int gemm_scratch_floats(void) { return MC * KC + KC * NC + MR * NR; }

/* batch products: A[g] at a + g·sa, B[g] at b + g·sb (a stride 0 broadcasts), C[g] at c + g·M·N. */
EXPORT(sgemm)
void sgemm(int batch, int M, int N, int K, const float *a, int sa, int ta, const float *b, int sb,
           int tb, float *c, float *scratch) {
  for (int g = 0; g < batch; g++)
    gemm(M, N, K, a + g * sa, ta, b + g * sb, tb, c + g * M * N, scratch);
}
