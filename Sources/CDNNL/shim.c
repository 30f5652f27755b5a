#include "cdnnl.h"
#include <dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// libgomp's (oneDNN's OpenMP runtime) per-thread team size; declared here so no omp.h is needed.
void omp_set_num_threads(int);
int omp_get_max_threads(void);

int funnel_dnnl_sgemm(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
    return (int)dnnl_sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int funnel_dnnl_version(void) {
    const dnnl_version_t *v = dnnl_version();
    return v->major * 10000 + v->minor * 100 + v->patch;
}

const char *funnel_dnnl_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "other";
    }
}

// Round to nearest even; a NaN keeps its sign and stays a (quiet) NaN. Branch-free, so the
// compiler vectorises it; an AVX-512 build of the same loop is picked at run time where the CPU
// has it (16 lanes).
#define BF16_LOOP                                                                          \
    const uint32_t *bits = (const uint32_t *)src;                                          \
    for (int64_t i = 0; i < count; i++) {                                                  \
        uint32_t x = bits[i];                                                              \
        uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;                         \
        uint32_t nan = ((x >> 16) | 0x40u) & 0xffffu;                                       \
        dst[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);              \
    }

static void bf16_generic(const float *src, uint16_t *dst, int64_t count) { BF16_LOOP }
__attribute__((target("avx512f,avx512bw"))) static void bf16_avx512(const float *src, uint16_t *dst, int64_t count) { BF16_LOOP }

void funnel_bf16_from_float(const float *src, uint16_t *dst, int64_t count) {
    static int avx512 = -1;
    if (avx512 < 0) avx512 = __builtin_cpu_supports("avx512bw") ? 1 : 0;
    if (avx512) bf16_avx512(src, dst, count); else bf16_generic(src, dst, count);
}

static dnnl_engine_t matmul_engine;
static pthread_once_t matmul_once = PTHREAD_ONCE_INIT;
static dnnl_status_t matmul_engine_status;
static void matmul_engine_init(void) { matmul_engine_status = dnnl_engine_create(&matmul_engine, dnnl_cpu, 0); }

// One cached primitive: its shape key, the primitive, memory objects whose handles are set per call.
typedef struct {
    int used;
    dnnl_data_type_t dt;
    char transA, transB;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    int bias, relu;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, bias_mem;
} MatmulEntry;

#define MATMUL_CACHE 32
typedef struct {
    MatmulEntry entries[MATMUL_CACHE];
    int next;
    dnnl_stream_t stream;
    uint16_t *scratchA, *scratchB;
    size_t capA, capB;
} MatmulThread;

static pthread_key_t matmul_key;
static pthread_once_t matmul_key_once = PTHREAD_ONCE_INIT;
static void entry_release(MatmulEntry *e) {
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->a); dnnl_memory_destroy(e->b); dnnl_memory_destroy(e->c);
    if (e->bias_mem) dnnl_memory_destroy(e->bias_mem);
    memset(e, 0, sizeof(*e));
}
static void matmul_thread_free(void *p) {
    MatmulThread *t = p;
    for (int i = 0; i < MATMUL_CACHE; i++) if (t->entries[i].used) entry_release(&t->entries[i]);
    if (t->stream) dnnl_stream_destroy(t->stream);
    free(t->scratchA); free(t->scratchB); free(t);
}
static void matmul_key_init(void) { pthread_key_create(&matmul_key, matmul_thread_free); }

static uint16_t *grow(uint16_t **p, size_t *cap, size_t need) {
    if (need > *cap) { free(*p); *p = malloc(need * sizeof(uint16_t)); *cap = *p ? need : 0; }
    return *p;
}

// op(A) is m×k, op(B) is k×n, read in their stored orientation with leading dimensions lda/ldb
// (bf16: the dense converted copies, so lda/ldb are their column counts).
// With `bias`, a per-column FP32 bias is added to the product (one addition, as adding the
// product to a C prefilled with the bias would); with `relu`, oneDNN's ReLU follows as a post-op.
static dnnl_status_t matmul_entry(MatmulEntry *e, dnnl_data_type_t dt, char transA, char transB, int64_t m, int64_t n,
                                  int64_t k, float alpha, int64_t lda, int64_t ldb, float beta, int64_t ldc, int bias,
                                  int relu) {
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    dnnl_dims_t ad = {m, k}, bd = {k, n}, cd = {m, n};
    dnnl_dims_t as = {transA == 'T' ? 1 : lda, transA == 'T' ? lda : 1};
    dnnl_dims_t bs = {transB == 'T' ? 1 : ldb, transB == 'T' ? ldb : 1};
    dnnl_dims_t cs = {ldc, 1};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&a_md, 2, ad, dt, as))) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&b_md, 2, bd, dt, bs))) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_f32, cs))) return s;
    dnnl_dims_t biasd = {1, n}, biass = {n, 1};
    if (bias && (s = dnnl_memory_desc_init_by_strides(&bias_md, 2, biasd, dnnl_f32, biass))) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &a_md, &b_md, bias ? &bias_md : NULL, &c_md))) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr))) return s;
    if (alpha != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    dnnl_post_ops_t po = NULL;
    if (beta != 0.0f || relu) {
        dnnl_post_ops_create(&po);
        if (beta != 0.0f) dnnl_post_ops_append_sum(po, beta);
        if (relu) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &desc, attr, matmul_engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    if (s) return s;
    s = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s) return s;
    if ((s = dnnl_memory_create(&e->a, &a_md, matmul_engine, DNNL_MEMORY_NONE))) return s;
    if ((s = dnnl_memory_create(&e->b, &b_md, matmul_engine, DNNL_MEMORY_NONE))) return s;
    if ((s = dnnl_memory_create(&e->c, &c_md, matmul_engine, DNNL_MEMORY_NONE))) return s;
    if (bias && (s = dnnl_memory_create(&e->bias_mem, &bias_md, matmul_engine, DNNL_MEMORY_NONE))) return s;
    e->bias = bias; e->relu = relu;
    e->used = 1; e->dt = dt; e->transA = transA; e->transB = transB; e->m = m; e->n = n; e->k = k;
    e->lda = lda; e->ldb = ldb; e->ldc = ldc; e->alpha = alpha; e->beta = beta;
    return dnnl_success;
}

static int matmul(dnnl_data_type_t dt, char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                  const float *bias, int relu) {
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
    pthread_once(&matmul_once, matmul_engine_init);
    if (matmul_engine_status) return (int)matmul_engine_status;
    pthread_once(&matmul_key_once, matmul_key_init);
    MatmulThread *t = pthread_getspecific(matmul_key);
    if (!t) {
        t = calloc(1, sizeof(MatmulThread));
        if (!t) return (int)dnnl_out_of_memory;
        dnnl_status_t s = dnnl_stream_create(&t->stream, matmul_engine, dnnl_stream_default_flags);
        if (s) { free(t); return (int)s; }
        pthread_setspecific(matmul_key, t);
    }
    const void *pa = a, *pb = b;
    if (dt == dnnl_bf16) {
        // Dense bf16 copies of A and B in their stored orientation.
        int64_t aRows = transA == 'T' ? k : m, aCols = transA == 'T' ? m : k;
        int64_t bRows = transB == 'T' ? n : k, bCols = transB == 'T' ? k : n;
        uint16_t *ca = grow(&t->scratchA, &t->capA, (size_t)(aRows * aCols));
        uint16_t *cb = grow(&t->scratchB, &t->capB, (size_t)(bRows * bCols));
        if (!ca || !cb) return (int)dnnl_out_of_memory;
        for (int64_t r = 0; r < aRows; r++) funnel_bf16_from_float(a + r * lda, ca + r * aCols, aCols);
        for (int64_t r = 0; r < bRows; r++) funnel_bf16_from_float(b + r * ldb, cb + r * bCols, bCols);
        pa = ca; pb = cb; lda = aCols; ldb = bCols;
    }
    MatmulEntry *e = NULL;
    for (int i = 0; i < MATMUL_CACHE; i++) {
        MatmulEntry *x = &t->entries[i];
        if (x->used && x->dt == dt && x->transA == transA && x->transB == transB && x->m == m && x->n == n && x->k == k
            && x->lda == lda && x->ldb == ldb && x->ldc == ldc && x->alpha == alpha && x->beta == beta
            && x->bias == (bias != NULL) && x->relu == relu) { e = x; break; }
    }
    if (!e) {
        e = &t->entries[t->next];
        t->next = (t->next + 1) % MATMUL_CACHE;
        if (e->used) entry_release(e);
        dnnl_status_t s = matmul_entry(e, dt, transA, transB, m, n, k, alpha, lda, ldb, beta, ldc, bias != NULL, relu);
        if (s) { memset(e, 0, sizeof(*e)); return (int)s; }
    }
    dnnl_memory_set_data_handle(e->a, (void *)pa);
    dnnl_memory_set_data_handle(e->b, (void *)pb);
    dnnl_memory_set_data_handle(e->c, c);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}, {DNNL_ARG_BIAS, e->bias_mem}};
    if (bias) dnnl_memory_set_data_handle(e->bias_mem, (void *)bias);
    dnnl_status_t s = dnnl_primitive_execute(e->prim, t->stream, bias ? 4 : 3, args);
    if (s) return (int)s;
    return (int)dnnl_stream_wait(t->stream);
}

int funnel_dnnl_gemm_bf16(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    return matmul(dnnl_bf16, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, 0);
}

int funnel_dnnl_matmul_f32(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    return matmul(dnnl_f32, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, 0);
}

int funnel_dnnl_linear(int bf16, int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w, int64_t ldw,
                       const float *bias, int relu, float *y, int64_t ldy) {
    return matmul(bf16 ? dnnl_bf16 : dnnl_f32, 'N', 'T', m, n, k, 1.0f, x, ldx, w, ldw, 0.0f, y, ldy, bias, relu);
}
