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

static dnnl_engine_t bf16_engine;
static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static dnnl_status_t bf16_engine_status;
static void bf16_engine_init(void) { bf16_engine_status = dnnl_engine_create(&bf16_engine, dnnl_cpu, 0); }

// One cached primitive: its shape key, the primitive, memory objects whose handles are set per call.
typedef struct {
    int used;
    char transA, transB;
    int64_t m, n, k, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} Bf16Entry;

#define BF16_CACHE 24
typedef struct {
    Bf16Entry entries[BF16_CACHE];
    int next;
    dnnl_stream_t stream;
    uint16_t *scratchA, *scratchB;
    size_t capA, capB;
} Bf16Thread;

static pthread_key_t bf16_key;
static pthread_once_t bf16_key_once = PTHREAD_ONCE_INIT;
static void bf16_thread_free(void *p) {
    Bf16Thread *t = p;
    for (int i = 0; i < BF16_CACHE; i++) {
        if (!t->entries[i].used) continue;
        dnnl_primitive_destroy(t->entries[i].prim);
        dnnl_memory_destroy(t->entries[i].a); dnnl_memory_destroy(t->entries[i].b); dnnl_memory_destroy(t->entries[i].c);
    }
    if (t->stream) dnnl_stream_destroy(t->stream);
    free(t->scratchA); free(t->scratchB); free(t);
}
static void bf16_key_init(void) { pthread_key_create(&bf16_key, bf16_thread_free); }

static uint16_t *grow(uint16_t **p, size_t *cap, size_t need) {
    if (need > *cap) { free(*p); *p = malloc(need * sizeof(uint16_t)); *cap = *p ? need : 0; }
    return *p;
}

// op(A) is m×k, op(B) is k×n; A and B are converted to dense bf16 in their stored orientation.
static dnnl_status_t bf16_entry(Bf16Thread *t, Bf16Entry *e, char transA, char transB, int64_t m, int64_t n, int64_t k,
                                float alpha, float beta, int64_t ldc) {
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t ad = {m, k}, bd = {k, n}, cd = {m, n};
    dnnl_dims_t as = {transA == 'T' ? 1 : k, transA == 'T' ? m : 1};
    dnnl_dims_t bs = {transB == 'T' ? 1 : n, transB == 'T' ? k : 1};
    dnnl_dims_t cs = {ldc, 1};
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&a_md, 2, ad, dnnl_bf16, as))) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&b_md, 2, bd, dnnl_bf16, bs))) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_f32, cs))) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md))) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr))) return s;
    if (alpha != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    dnnl_post_ops_t po = NULL;
    if (beta != 0.0f) {
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, beta);
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &desc, attr, bf16_engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    if (s) return s;
    s = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s) return s;
    if ((s = dnnl_memory_create(&e->a, &a_md, bf16_engine, DNNL_MEMORY_NONE))) return s;
    if ((s = dnnl_memory_create(&e->b, &b_md, bf16_engine, DNNL_MEMORY_NONE))) return s;
    if ((s = dnnl_memory_create(&e->c, &c_md, bf16_engine, DNNL_MEMORY_NONE))) return s;
    e->used = 1; e->transA = transA; e->transB = transB; e->m = m; e->n = n; e->k = k; e->ldc = ldc;
    e->alpha = alpha; e->beta = beta;
    (void)t;
    return dnnl_success;
}

int funnel_dnnl_gemm_bf16(char transA, char transB, int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
    pthread_once(&bf16_once, bf16_engine_init);
    if (bf16_engine_status) return (int)bf16_engine_status;
    pthread_once(&bf16_key_once, bf16_key_init);
    Bf16Thread *t = pthread_getspecific(bf16_key);
    if (!t) {
        t = calloc(1, sizeof(Bf16Thread));
        if (!t) return (int)dnnl_out_of_memory;
        dnnl_status_t s = dnnl_stream_create(&t->stream, bf16_engine, dnnl_stream_default_flags);
        if (s) { free(t); return (int)s; }
        pthread_setspecific(bf16_key, t);
    }
    // Dense bf16 copies of A and B in their stored orientation.
    int64_t aRows = transA == 'T' ? k : m, aCols = transA == 'T' ? m : k;
    int64_t bRows = transB == 'T' ? n : k, bCols = transB == 'T' ? k : n;
    uint16_t *pa = grow(&t->scratchA, &t->capA, (size_t)(aRows * aCols));
    uint16_t *pb = grow(&t->scratchB, &t->capB, (size_t)(bRows * bCols));
    if (!pa || !pb) return (int)dnnl_out_of_memory;
    for (int64_t r = 0; r < aRows; r++) funnel_bf16_from_float(a + r * lda, pa + r * aCols, aCols);
    for (int64_t r = 0; r < bRows; r++) funnel_bf16_from_float(b + r * ldb, pb + r * bCols, bCols);
    Bf16Entry *e = NULL;
    for (int i = 0; i < BF16_CACHE; i++) {
        Bf16Entry *x = &t->entries[i];
        if (x->used && x->transA == transA && x->transB == transB && x->m == m && x->n == n && x->k == k && x->ldc == ldc
            && x->alpha == alpha && x->beta == beta) { e = x; break; }
    }
    if (!e) {
        e = &t->entries[t->next];
        t->next = (t->next + 1) % BF16_CACHE;
        if (e->used) {
            dnnl_primitive_destroy(e->prim);
            dnnl_memory_destroy(e->a); dnnl_memory_destroy(e->b); dnnl_memory_destroy(e->c);
            memset(e, 0, sizeof(*e));
        }
        dnnl_status_t s = bf16_entry(t, e, transA, transB, m, n, k, alpha, beta, ldc);
        if (s) { memset(e, 0, sizeof(*e)); return (int)s; }
    }
    dnnl_memory_set_data_handle(e->a, pa);
    dnnl_memory_set_data_handle(e->b, pb);
    dnnl_memory_set_data_handle(e->c, c);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    dnnl_status_t s = dnnl_primitive_execute(e->prim, t->stream, 3, args);
    if (s) return (int)s;
    return (int)dnnl_stream_wait(t->stream);
}
