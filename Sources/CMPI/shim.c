#include "cmpi.h"
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// A collective whose other ranks do not answer within this many seconds returns
// FUNNEL_MPI_TIMEOUT instead of waiting forever (a stopped or hung rank).
static double timeout_seconds = 600;

void funnel_mpi_set_timeout(double seconds) { timeout_seconds = seconds > 0 ? seconds : 600; }
double funnel_mpi_timeout(void) { return timeout_seconds; }

// Every collective is started non-blocking and waited for here: MPI_Test in a loop, spinning
// (with sched_yield) for the first 10 ms as a blocking collective would, then sleeping with a
// backoff up to 1 ms — so ranks waiting on a stopped one idle instead of spinning a core — until
// the request completes or the timeout passes.
static int wait_for(MPI_Request *request) {
    double start = MPI_Wtime();
    long pause_ns = 1000;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return rc;
        if (done) return MPI_SUCCESS;
        double waited = MPI_Wtime() - start;
        if (waited > timeout_seconds) return FUNNEL_MPI_TIMEOUT;
        if (waited < 0.01) { sched_yield(); continue; }
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 1000000) pause_ns *= 2;
    }
}

int funnel_mpi_init(void) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int funnel_mpi_is_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}

int funnel_mpi_finalize(void) { return MPI_Finalize(); }

int funnel_mpi_rank(void) {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int funnel_mpi_size(void) {
    int n = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

// MPI counts are int: larger buffers go in INT_MAX-element pieces.
#define CHUNKED(TYPE, MPITYPE, OP)                                                                 \
    for (int64_t done = 0; done < count;) {                                                         \
        int n = count - done > INT_MAX ? INT_MAX : (int)(count - done);                            \
        MPI_Request request;                                                                        \
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buffer + done, n, MPITYPE, OP, MPI_COMM_WORLD, &request); \
        if (rc == MPI_SUCCESS) rc = wait_for(&request);                                             \
        if (rc != MPI_SUCCESS) return rc;                                                           \
        done += n;                                                                                  \
    }                                                                                               \
    return MPI_SUCCESS;

int funnel_mpi_allreduce_sum_float(float *buffer, int64_t count) { CHUNKED(float, MPI_FLOAT, MPI_SUM) }

// The one started all-reduce (later collectives overlap it; their waits drive its progress too).
static MPI_Request started_request = MPI_REQUEST_NULL;

int funnel_mpi_start_allreduce_sum_float(float *buffer, int64_t count) {
    if (count > INT_MAX) return MPI_ERR_COUNT;
    if (started_request != MPI_REQUEST_NULL) return MPI_ERR_PENDING;
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &started_request);
}

int funnel_mpi_finish_started(void) {
    if (started_request == MPI_REQUEST_NULL) return MPI_SUCCESS;
    return wait_for(&started_request);  // a completed request is set to MPI_REQUEST_NULL
}
int funnel_mpi_allreduce_sum_double(double *buffer, int64_t count) { CHUNKED(double, MPI_DOUBLE, MPI_SUM) }
int funnel_mpi_allreduce_max_int64(int64_t *buffer, int64_t count) { CHUNKED(int64_t, MPI_INT64_T, MPI_MAX) }
int funnel_mpi_allreduce_min_int64(int64_t *buffer, int64_t count) { CHUNKED(int64_t, MPI_INT64_T, MPI_MIN) }

int funnel_mpi_allgather_int64(const int64_t *values, int64_t count, int64_t *out) {
    if (count > INT_MAX) return MPI_ERR_COUNT;
    MPI_Request request;
    int rc = MPI_Iallgather(values, (int)count, MPI_INT64_T, out, (int)count, MPI_INT64_T, MPI_COMM_WORLD, &request);
    return rc == MPI_SUCCESS ? wait_for(&request) : rc;
}

int funnel_mpi_allgatherv_bytes(const void *send, int64_t sendCount, void *out, const int64_t *counts, const int64_t *displacements) {
    int size = funnel_mpi_size();
    int c[size], d[size];
    for (int r = 0; r < size; r++) {
        if (counts[r] > INT_MAX || displacements[r] > INT_MAX) return MPI_ERR_COUNT;
        c[r] = (int)counts[r];
        d[r] = (int)displacements[r];
    }
    if (sendCount > INT_MAX) return MPI_ERR_COUNT;
    MPI_Request request;
    int rc = MPI_Iallgatherv(send, (int)sendCount, MPI_BYTE, out, c, d, MPI_BYTE, MPI_COMM_WORLD, &request);
    return rc == MPI_SUCCESS ? wait_for(&request) : rc;
}

int funnel_mpi_alltoallv_bytes(const void *send, const int64_t *sendCounts, const int64_t *sendDisplacements,
                               void *recv, const int64_t *recvCounts, const int64_t *recvDisplacements) {
    int size = funnel_mpi_size();
    int sc[size], sd[size], rc[size], rd[size];
    for (int r = 0; r < size; r++) {
        if (sendCounts[r] > INT_MAX || sendDisplacements[r] > INT_MAX || recvCounts[r] > INT_MAX || recvDisplacements[r] > INT_MAX)
            return MPI_ERR_COUNT;
        sc[r] = (int)sendCounts[r];
        sd[r] = (int)sendDisplacements[r];
        rc[r] = (int)recvCounts[r];
        rd[r] = (int)recvDisplacements[r];
    }
    MPI_Request request;
    int status = MPI_Ialltoallv(send, sc, sd, MPI_BYTE, recv, rc, rd, MPI_BYTE, MPI_COMM_WORLD, &request);
    return status == MPI_SUCCESS ? wait_for(&request) : status;
}

void funnel_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void funnel_mpi_error_string(int code, char *out, int capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (code == FUNNEL_MPI_TIMEOUT) {
        len = snprintf(text, sizeof text, "no answer in %g s from the other ranks (--collective-timeout): a rank is stopped, hung or cut off",
                       timeout_seconds);
    } else if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
    if (capacity <= 0) return;
    int n = len < capacity - 1 ? len : capacity - 1;
    memcpy(out, text, (size_t)n);
    out[n] = 0;
}

// LightGBM's types (include/LightGBM/meta.h): comm_size_t is int32_t; the reducer is a function
// pointer passed by C++ reference, i.e. a pointer to it; it adds `input` into `output`.
typedef void (*lgbm_reduce_function)(const char *input, char *output, int type_size, int32_t array_size);

static void lgbm_fail(const char *what, int rc) {
    char text[MPI_MAX_ERROR_STRING];
    funnel_mpi_error_string(rc, text, (int)sizeof text);
    int len = (int)strlen(text);
    fprintf(stderr, "funnel: error: rank %d: LightGBM's %s over MPI failed: %.*s\n", funnel_mpi_rank(), what, len, text);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

// Block j of `input` (block_start[j], block_len[j]) is summed over the ranks into rank j's `output`:
// an all-to-all sends every block to its rank, which adds the ranks' copies in rank order.
static void lgbm_reduce_scatter(char *input, int32_t input_size, int type_size, const int32_t *block_start,
                                const int32_t *block_len, int num_block, char *output, int32_t output_size,
                                const lgbm_reduce_function *reducer) {
    (void)input_size; (void)output_size;
    int rank = funnel_mpi_rank();
    int mine = block_len[rank];
    int *send_counts = malloc(sizeof(int) * num_block), *send_displs = malloc(sizeof(int) * num_block);
    int *recv_counts = malloc(sizeof(int) * num_block), *recv_displs = malloc(sizeof(int) * num_block);
    char *received = malloc((size_t)mine * (size_t)num_block + 1);
    if (!send_counts || !send_displs || !recv_counts || !recv_displs || !received) {
        fprintf(stderr, "funnel: error: rank %d: out of memory in LightGBM's reduce-scatter\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int j = 0; j < num_block; j++) {
        send_counts[j] = block_len[j];
        send_displs[j] = block_start[j];
        recv_counts[j] = mine;
        recv_displs[j] = j * mine;
    }
    MPI_Request request;
    int rc = MPI_Ialltoallv(input, send_counts, send_displs, MPI_BYTE, received, recv_counts, recv_displs, MPI_BYTE, MPI_COMM_WORLD,
                            &request);
    if (rc == MPI_SUCCESS) rc = wait_for(&request);
    if (rc != MPI_SUCCESS) lgbm_fail("reduce-scatter", rc);
    memcpy(output, received, (size_t)mine);
    for (int j = 1; j < num_block; j++) (*reducer)(received + (size_t)j * (size_t)mine, output, type_size, mine);
    free(send_counts); free(send_displs); free(recv_counts); free(recv_displs); free(received);
}

static void lgbm_allgather(char *input, int32_t input_size, const int32_t *block_start, const int32_t *block_len,
                           int num_block, char *output, int32_t output_size) {
    (void)output_size; (void)num_block;
    MPI_Request request;
    int rc = MPI_Iallgatherv(input, input_size, MPI_BYTE, output, block_len, block_start, MPI_BYTE, MPI_COMM_WORLD, &request);
    if (rc == MPI_SUCCESS) rc = wait_for(&request);
    if (rc != MPI_SUCCESS) lgbm_fail("all-gather", rc);
}

void *funnel_lgbm_reduce_scatter_function(void) { return (void *)lgbm_reduce_scatter; }
void *funnel_lgbm_allgather_function(void) { return (void *)lgbm_allgather; }
