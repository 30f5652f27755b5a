#include "cdnnl.h"
#include <dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// libgomp's (oneDNN's OpenMP runtime) per-thread team size; declared here so no omp.h is needed.
void omp_set_num_threads(int);
int omp_get_max_threads(void);

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

// What a matmul primitive is made for. A and B are read in their stored orientation with leading
// dimensions lda/ldb; `bias`: a per-column FP32 bias is added to the product; `relu`: oneDNN's
// ReLU follows as a post-op.
typedef struct {
    dnnl_data_type_t dt;
    char transA, transB;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    int bias, relu;
} MatmulKey;

static int same_key(const MatmulKey *x, const MatmulKey *y) {
    return x->dt == y->dt && x->transA == y->transA && x->transB == y->transB && x->m == y->m && x->n == y->n
        && x->k == y->k && x->lda == y->lda && x->ldb == y->ldb && x->ldc == y->ldc && x->alpha == y->alpha
        && x->beta == y->beta && x->bias == y->bias && x->relu == y->relu;
}

// One cached primitive with memory objects whose handles are set per call.
typedef struct {
    int used;
    uint64_t lastUse;
    MatmulKey key;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, bias;
} MatmulEntry;

#define MATMUL_CACHE 64
// oneDNN takes another kernel below 16 rows, whose sums differ in the last bits: products of
// fewer rows of A (not transposed) run padded to 16 (see rows_to_run).
#define MIN_ROWS 16
typedef struct {
    MatmulEntry entries[MATMUL_CACHE];
    uint64_t clock;
    dnnl_stream_t stream;
    void *scratchA, *scratchB, *scratchC;
    size_t capA, capB, capC;
} MatmulThread;

static pthread_key_t matmul_key;
static pthread_once_t matmul_key_once = PTHREAD_ONCE_INIT;
static void entry_release(MatmulEntry *e) {
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->a); dnnl_memory_destroy(e->b); dnnl_memory_destroy(e->c);
    if (e->bias) dnnl_memory_destroy(e->bias);
    memset(e, 0, sizeof(*e));
}
static void matmul_thread_free(void *p) {
    MatmulThread *t = p;
    for (int i = 0; i < MATMUL_CACHE; i++) if (t->entries[i].used) entry_release(&t->entries[i]);
    if (t->stream) dnnl_stream_destroy(t->stream);
    free(t->scratchA); free(t->scratchB); free(t->scratchC); free(t);
}
static void matmul_key_init(void) { pthread_key_create(&matmul_key, matmul_thread_free); }

static void *grow(void **p, size_t *cap, size_t bytes) {
    if (bytes > *cap) { free(*p); *p = malloc(bytes); *cap = *p ? bytes : 0; }
    return *p;
}

static dnnl_status_t entry_create(MatmulEntry *e, const MatmulKey *key) {
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    const MatmulKey *q = key;
    dnnl_dims_t ad = {q->m, q->k}, bd = {q->k, q->n}, cd = {q->m, q->n};
    dnnl_dims_t as = {q->transA == 'T' ? 1 : q->lda, q->transA == 'T' ? q->lda : 1};
    dnnl_dims_t bs = {q->transB == 'T' ? 1 : q->ldb, q->transB == 'T' ? q->ldb : 1};
    dnnl_dims_t cs = {q->ldc, 1};
    dnnl_dims_t biasd = {1, q->n}, biass = {q->n, 1};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&a_md, 2, ad, q->dt, as))) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&b_md, 2, bd, q->dt, bs))) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_f32, cs))) return s;
    if (q->bias && (s = dnnl_memory_desc_init_by_strides(&bias_md, 2, biasd, dnnl_f32, biass))) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &a_md, &b_md, q->bias ? &bias_md : NULL, &c_md))) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr))) return s;
    if (q->alpha != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &q->alpha);
    dnnl_post_ops_t po = NULL;
    if (q->beta != 0.0f || q->relu) {
        dnnl_post_ops_create(&po);
        if (q->beta != 0.0f) dnnl_post_ops_append_sum(po, q->beta);
        if (q->relu) dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
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
    if (q->bias && (s = dnnl_memory_create(&e->bias, &bias_md, matmul_engine, DNNL_MEMORY_NONE))) return s;
    e->key = *key;
    e->used = 1;
    return dnnl_success;
}

static MatmulEntry *cached(MatmulThread *t, const MatmulKey *key) {
    for (int i = 0; i < MATMUL_CACHE; i++) {
        MatmulEntry *x = &t->entries[i];
        if (x->used && same_key(&x->key, key)) return x;
    }
    return NULL;
}

// Runs the primitive for `key` (created on a miss, evicting the least recently used).
static int run(MatmulThread *t, const MatmulKey *key, const void *a, const void *b, float *c, const float *bias) {
    MatmulEntry *e = cached(t, key);
    if (!e) {
        e = &t->entries[0];
        for (int i = 0; i < MATMUL_CACHE && e->used; i++) {
            MatmulEntry *x = &t->entries[i];
            if (!x->used || x->lastUse < e->lastUse) e = x;
        }
        if (e->used) entry_release(e);
        dnnl_status_t s = entry_create(e, key);
        if (s) { if (e->prim) entry_release(e); else memset(e, 0, sizeof(*e)); return (int)s; }
    }
    e->lastUse = ++t->clock;
    dnnl_memory_set_data_handle(e->a, (void *)a);
    dnnl_memory_set_data_handle(e->b, (void *)b);
    dnnl_memory_set_data_handle(e->c, c);
    if (bias) dnnl_memory_set_data_handle(e->bias, (void *)bias);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}, {DNNL_ARG_BIAS, e->bias}};
    dnnl_status_t s = dnnl_primitive_execute(e->prim, t->stream, bias ? 4 : 3, args);
    if (s) return (int)s;
    return (int)dnnl_stream_wait(t->stream);
}

// The calling thread's GEMM settings (engine, precision, row buckets), set by the network whose
// call runs on the thread (BLAS.with): settings belong to a network, not to the process, so two
// networks of different precisions can run in one process. -1: none set (the defaults).
static __thread int thread_settings = -1;
int funnel_gemm_thread_settings(void) { return thread_settings; }
void funnel_gemm_set_thread_settings(int settings) { thread_settings = settings; }
#define ROW_BUCKETS_BIT 4

// The rows a product of `m` rows of A (not transposed) runs on. Each row of C depends only on its
// row of A whatever the row count from 16 rows on (oneDNN takes another kernel below; measured and
// tested), so rows can be padded freely: below 16 always to 16; with row buckets (a server, whose
// requests come in every size) to the next power of two, so requests share at most nine primitives
// per layer shape instead of paying ~0.25 ms of primitive creation for each new size; otherwise
// (training and batch predict: a few steady batch sizes) exactly m.
static int64_t rows_to_run(int64_t m) {
    if (m < MIN_ROWS) return MIN_ROWS;
    if (thread_settings < 0 || !(thread_settings & ROW_BUCKETS_BIT)) return m;
    int64_t rows = MIN_ROWS;
    while (rows < m) rows *= 2;
    return rows;
}

// The calling thread's primitives, stream and scratch (created on first use; NULL and `*status`
// set when that fails). Pins the thread's OpenMP team to one thread: Funnel's workers are the
// parallelism.
static MatmulThread *thread_state(int *status) {
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
    pthread_once(&matmul_once, matmul_engine_init);
    if (matmul_engine_status) { *status = (int)matmul_engine_status; return NULL; }
    pthread_once(&matmul_key_once, matmul_key_init);
    MatmulThread *t = pthread_getspecific(matmul_key);
    if (!t) {
        t = calloc(1, sizeof(MatmulThread));
        if (!t) { *status = (int)dnnl_out_of_memory; return NULL; }
        dnnl_status_t s = dnnl_stream_create(&t->stream, matmul_engine, dnnl_stream_default_flags);
        if (s) { free(t); *status = (int)s; return NULL; }
        pthread_setspecific(matmul_key, t);
    }
    return t;
}

// A's first m rows (leading dimension lda) into a dense copy of `rows` rows whose extra rows are
// zero (rounded to bf16 on the way with `bf16`), and C's m rows (read when beta is not 0) into a
// `rows` × n scratch: a product on more rows than asked. `unpad_rows` copies the m rows back.
static int pad_rows(MatmulThread *t, int bf16, int64_t m, int64_t rows, int64_t n, int64_t k, const float *a, int64_t lda,
                    float beta, const float *c, int64_t ldc, void **pa, float **pc) {
    size_t es = bf16 ? 2 : 4;
    void *sa = grow(&t->scratchA, &t->capA, (size_t)(rows * k) * es);
    float *sc = grow(&t->scratchC, &t->capC, (size_t)(rows * n) * sizeof(float));
    if (!sa || !sc) return (int)dnnl_out_of_memory;
    for (int64_t r = 0; r < m; r++) {
        if (bf16) funnel_bf16_from_float(a + r * lda, (uint16_t *)sa + r * k, k);
        else memcpy((float *)sa + r * k, a + r * lda, (size_t)k * sizeof(float));
    }
    memset((char *)sa + (size_t)(m * k) * es, 0, (size_t)((rows - m) * k) * es);
    if (beta != 0.0f) for (int64_t r = 0; r < m; r++) memcpy(sc + r * n, c + r * ldc, (size_t)n * sizeof(float));
    memset(sc + m * n, 0, (size_t)((rows - m) * n) * sizeof(float));
    *pa = sa;
    *pc = sc;
    return 0;
}

static void unpad_rows(int64_t m, int64_t n, const float *pc, float *c, int64_t ldc) {
    for (int64_t r = 0; r < m; r++) memcpy(c + r * ldc, pc + r * n, (size_t)n * sizeof(float));
}

int funnel_dnnl_sgemm(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    int s = 0;
    MatmulThread *t = thread_state(&s);
    if (!t) return s;
    if (transA == 'N' && m < MIN_ROWS) {
        void *pa;
        float *pc;
        if ((s = pad_rows(t, 0, m, MIN_ROWS, n, k, a, lda, beta, c, ldc, &pa, &pc))) return s;
        if ((s = (int)dnnl_sgemm(transA, transB, MIN_ROWS, n, k, alpha, pa, k, b, ldb, beta, pc, n))) return s;
        unpad_rows(m, n, pc, c, ldc);
        return 0;
    }
    return (int)dnnl_sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static int matmul(dnnl_data_type_t dt, char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                  const float *bias, int relu) {
    int status = 0;
    MatmulThread *t = thread_state(&status);
    if (!t) return status;
    size_t es = dt == dnnl_bf16 ? 2 : 4;
    // bf16 reads dense converted copies; A's rows are independent only when it is not transposed.
    int64_t aRows = transA == 'T' ? k : m, aCols = transA == 'T' ? m : k;
    int64_t bRows = transB == 'T' ? n : k, bCols = transB == 'T' ? k : n;
    MatmulKey key = {dt, transA, transB, m, n, k, dt == dnnl_bf16 ? aCols : lda, dt == dnnl_bf16 ? bCols : ldb, ldc,
                     alpha, beta, bias != NULL, relu};
    int64_t rows = transA == 'N' ? rows_to_run(m) : m;
    const void *pa = a, *pb = b;
    float *pc = c;
    if (rows != m) {
        void *sa;
        if ((status = pad_rows(t, dt == dnnl_bf16, m, rows, n, k, a, lda, beta, c, ldc, &sa, &pc))) return status;
        pa = sa;
        key.m = rows; key.lda = k; key.ldc = n;
    } else if (dt == dnnl_bf16) {
        uint16_t *ca = grow(&t->scratchA, &t->capA, (size_t)(aRows * aCols) * es);
        if (!ca) return (int)dnnl_out_of_memory;
        for (int64_t r = 0; r < aRows; r++) funnel_bf16_from_float(a + r * lda, ca + r * aCols, aCols);
        pa = ca;
    }
    if (dt == dnnl_bf16) {
        uint16_t *cb = grow(&t->scratchB, &t->capB, (size_t)(bRows * bCols) * es);
        if (!cb) return (int)dnnl_out_of_memory;
        for (int64_t r = 0; r < bRows; r++) funnel_bf16_from_float(b + r * ldb, cb + r * bCols, bCols);
        pb = cb;
    }
    if ((status = run(t, &key, pa, pb, pc, bias))) return status;
    if (rows != m) unpad_rows(m, n, pc, c, ldc);
    return 0;
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
