// This machine's GEMM peak, measured in the bench's own run (`bench/bench.py` compiles and runs
// it): a pure loop of oneDNN matmul primitives C = A·Wᵀ on the towers' shapes, FP32 and bf16
// inputs (FP32 accumulation and output), after warm-up, in two arrangements at T threads:
//   "one call": each multiplication runs on all T OpenMP threads (how PyTorch calls it);
//   "T workers": T threads each multiply their own rows single-threaded (how Funnel's workers call it).
// Also dnnl_sgemm (the call Funnel makes) in the worker arrangement. Prints one JSON object.
//   gcc -O2 -fopenmp bench/gemm_peak.c -o gemm_peak -ldnnl && ./gemm_peak 2
#include <dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define CHECK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { fprintf(stderr, "%s failed: %d\n", #x, (int)s_); exit(1); } } while (0)

typedef struct { dnnl_primitive_t prim; dnnl_memory_t a, w, c; dnnl_stream_t stream; } MatMul;

// A [m×k] and W [n×k] (row-major, W used transposed) of type `dt`, C [m×n] f32.
static MatMul make(dnnl_engine_t engine, int m, int k, int n, dnnl_data_type_t dt) {
    MatMul mm;
    dnnl_memory_desc_t a_md, w_md, c_md;
    dnnl_dims_t ad = {m, k}, wd = {k, n}, cd = {m, n};
    CHECK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dt, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&w_md, 2, wd, dt, dnnl_ba));
    CHECK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &a_md, &w_md, NULL, &c_md));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
    CHECK(dnnl_primitive_create(&mm.prim, pd));
    CHECK(dnnl_memory_create(&mm.a, &a_md, engine, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&mm.w, &w_md, engine, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&mm.c, &c_md, engine, DNNL_MEMORY_ALLOCATE));
    // Inputs: small values (bf16 and f32 alike start from the same f32 pattern, zero is fine for timing).
    void *p; size_t bytes = (size_t)m * k * (dt == dnnl_f32 ? 4 : 2);
    CHECK(dnnl_memory_get_data_handle(mm.a, &p)); for (size_t i = 0; i < bytes; i++) ((unsigned char *)p)[i] = (unsigned char)(i * 37 % 61);
    bytes = (size_t)n * k * (dt == dnnl_f32 ? 4 : 2);
    CHECK(dnnl_memory_get_data_handle(mm.w, &p)); for (size_t i = 0; i < bytes; i++) ((unsigned char *)p)[i] = (unsigned char)(i * 53 % 59);
    CHECK(dnnl_stream_create(&mm.stream, engine, dnnl_stream_default_flags));
    dnnl_primitive_desc_destroy(pd);
    return mm;
}

static void run(MatMul *mm) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mm->a}, {DNNL_ARG_WEIGHTS, mm->w}, {DNNL_ARG_DST, mm->c}};
    CHECK(dnnl_primitive_execute(mm->prim, mm->stream, 3, args));
    CHECK(dnnl_stream_wait(mm->stream));
}

// GFLOP/s of `threads` OpenMP threads for `seconds`: one call on all threads, or one worker per thread.
static double rate(dnnl_engine_t engine, int m, int k, int n, dnnl_data_type_t dt, int threads, int workers, double seconds) {
    double flops = 0, elapsed = 0;
    if (!workers) {
        omp_set_num_threads(threads);
        MatMul mm = make(engine, m, k, n, dt);
        for (int i = 0; i < 5; i++) run(&mm);
        long reps = 0; double t0 = now();
        while (now() - t0 < seconds) { run(&mm); reps++; }
        elapsed = now() - t0; flops = 2.0 * m * k * n * reps;
    } else {
        long total = 0; double t0 = 0;
        omp_set_num_threads(threads);
        #pragma omp parallel num_threads(threads) reduction(+:total)
        {
            omp_set_num_threads(1);
            MatMul mm;
            #pragma omp critical
            mm = make(engine, m, k, n, dt);
            for (int i = 0; i < 5; i++) run(&mm);
            #pragma omp barrier
            #pragma omp single
            t0 = now();
            long reps = 0;
            while (now() - t0 < seconds) { run(&mm); reps++; }
            total += reps;
        }
        elapsed = now() - t0; flops = 2.0 * m * k * n * total;
    }
    return flops / elapsed / 1e9;
}

static double sgemm_workers(int m, int k, int n, int threads, double seconds) {
    long total = 0; double t0 = 0;
    #pragma omp parallel num_threads(threads) reduction(+:total)
    {
        omp_set_num_threads(1);
        float *a = calloc((size_t)m * k, 4), *w = calloc((size_t)n * k, 4), *c = calloc((size_t)m * n, 4);
        for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)n * k; i++) w[i] = (float)(i % 5) * 0.1f;
        for (int i = 0; i < 5; i++) dnnl_sgemm('N', 'T', m, n, k, 1, a, k, w, k, 0, c, n);
        #pragma omp barrier
        #pragma omp single
        t0 = now();
        long reps = 0;
        while (now() - t0 < seconds) { dnnl_sgemm('N', 'T', m, n, k, 1, a, k, w, k, 0, c, n); reps++; }
        total += reps;
        free(a); free(w); free(c);
    }
    return 2.0 * m * k * n * total / (now() - t0) / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;
    int m = 2000, k = 274, n = 200;  // the towers' first layer at batch 2000
    dnnl_engine_t engine;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    const dnnl_version_t *v = dnnl_version();
    printf("{\"onednn\": \"%d.%d.%d\", \"threads\": %d, \"shape\": [%d, %d, %d], ", v->major, v->minor, v->patch, threads, m, k, n);
    printf("\"fp32_one_call\": %.1f, ", rate(engine, m, k, n, dnnl_f32, threads, 0, seconds));
    printf("\"bf16_one_call\": %.1f, ", rate(engine, m, k, n, dnnl_bf16, threads, 0, seconds));
    printf("\"fp32_workers\": %.1f, ", rate(engine, m, k, n, dnnl_f32, threads, 1, seconds));
    printf("\"bf16_workers\": %.1f, ", rate(engine, m, k, n, dnnl_bf16, threads, 1, seconds));
    printf("\"sgemm_workers\": %.1f}\n", sgemm_workers(m, k, n, threads, seconds));
    return 0;
}
