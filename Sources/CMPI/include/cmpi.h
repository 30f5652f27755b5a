#ifndef FUNNEL_CMPI_H
#define FUNNEL_CMPI_H
// The few MPI calls Funnel's data-parallel training uses, on MPI_COMM_WORLD, with plain C types
// (MPI_COMM_WORLD, MPI_FLOAT and friends are macros Swift cannot import). Every function returns
// MPI_SUCCESS (0) or an MPI error code; errors return rather than abort (MPI_ERRORS_RETURN), so
// the caller can name the rank and the cause before ending the job.
#include <stddef.h>
#include <stdint.h>

// Returned by a collective whose other ranks gave no answer within the timeout.
#define FUNNEL_MPI_TIMEOUT (-7701)
// Seconds a collective waits for the other ranks (default 600); `--collective-timeout`.
void funnel_mpi_set_timeout(double seconds);
double funnel_mpi_timeout(void);

int funnel_mpi_init(void);
int funnel_mpi_is_initialized(void);
int funnel_mpi_finalize(void);
int funnel_mpi_rank(void);
int funnel_mpi_size(void);
// In place: buffer[i] = Σ over ranks of buffer[i].
int funnel_mpi_allreduce_sum_float(float *buffer, int64_t count);
int funnel_mpi_allreduce_sum_double(double *buffer, int64_t count);
// Starts an in-place float sum (count ≤ INT_MAX; one at a time) that the collectives called
// before funnel_mpi_finish_started overlap; funnel_mpi_finish_started waits for it.
int funnel_mpi_start_allreduce_sum_float(float *buffer, int64_t count);
int funnel_mpi_finish_started(void);
int funnel_mpi_allreduce_max_int64(int64_t *buffer, int64_t count);
int funnel_mpi_allreduce_min_int64(int64_t *buffer, int64_t count);
// Every rank's `count` int64 values, rank after rank, into `out` (size × count).
int funnel_mpi_allgather_int64(const int64_t *values, int64_t count, int64_t *out);
// Variable-length byte blocks: `counts[r]` bytes from rank r, placed at `displacements[r]` of `out`.
int funnel_mpi_allgatherv_bytes(const void *send, int64_t sendCount, void *out, const int64_t *counts, const int64_t *displacements);
// Personalised exchange: `sendCounts[r]` bytes at `sendDisplacements[r]` go to rank r;
// `recvCounts[r]` bytes from rank r land at `recvDisplacements[r]` of `recv`.
int funnel_mpi_alltoallv_bytes(const void *send, const int64_t *sendCounts, const int64_t *sendDisplacements,
                               void *recv, const int64_t *recvCounts, const int64_t *recvDisplacements);
// LightGBM's external network functions (LGBM_NetworkInitWithFunctions) over MPI_COMM_WORLD:
// its data-parallel tree learner reduce-scatters histograms and all-gathers splits through
// these. They cannot return an error to LightGBM: on an MPI failure they end the job.
void *funnel_lgbm_reduce_scatter_function(void);
void *funnel_lgbm_allgather_function(void);
void funnel_mpi_abort(int code);
// The error text of an MPI error code.
void funnel_mpi_error_string(int code, char *out, int capacity);
#endif
