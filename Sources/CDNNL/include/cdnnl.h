#ifndef FUNNEL_CDNNL_H
#define FUNNEL_CDNNL_H
// oneDNN's row-major SGEMM for Funnel's GEMM engine (`--gemm onednn`). Funnel runs one GEMM per
// worker thread, each single-threaded (its own workers are the parallelism), so every call pins
// the calling thread's OpenMP team to one thread before entering oneDNN (oneDNN 2.6 runs on OpenMP).
#include <stdint.h>

// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major; transA/transB are 'N' or 'T'.
// Fewer than 16 rows of A (not transposed) run padded to 16, as every product here does: oneDNN
// takes another kernel below 16 rows. Returns oneDNN's status (0 = success).
int funnel_dnnl_sgemm(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
// The same product with A and B rounded to bf16 (round to nearest even) and FP32 accumulation and
// C (`--precision bf16`): a oneDNN matmul primitive per shape, created once per calling thread
// and reused. Returns oneDNN's status (0 = success).
int funnel_dnnl_gemm_bf16(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
// The FP32 product on the same cached matmul primitives (oneDNN's brgemm kernels), A and B read
// in place. Returns oneDNN's status (0 = success).
int funnel_dnnl_matmul_f32(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
// A dense layer's forward on the same primitives: Y[m×n] = X[m×k]·Wᵀ + bias (W stored n×k), then
// ReLU when `relu` (oneDNN's: negative → −0, NaN stays NaN), bias and ReLU fused into the matmul
// as its bias and post-op. `bf16`: X and W rounded to bf16 first. Returns oneDNN's status.
int funnel_dnnl_linear(int bf16, int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w, int64_t ldw,
                       const float *bias, int relu, float *y, int64_t ldy);
// The calling thread's GEMM settings, packed (bit 0: oneDNN, bit 1: bf16, bit 2: row buckets; -1:
// none set). Row buckets on (a server): forward products pad their row count to the next power of
// two (at least 16), so requests of every size share a few cached primitives; off: exact row
// counts (at least 16). Rows never depend on the padding.
int funnel_gemm_thread_settings(void);
void funnel_gemm_set_thread_settings(int settings);
// FP32 → bf16 (round to nearest even; NaN stays NaN), `count` values.
void funnel_bf16_from_float(const float *src, uint16_t *dst, int64_t count);
// oneDNN's version as major·10000 + minor·100 + patch, and the CPU ISA it dispatches to (text).
int funnel_dnnl_version(void);
const char *funnel_dnnl_isa(void);
#endif
