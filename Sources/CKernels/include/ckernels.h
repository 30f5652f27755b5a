#ifndef FUNNEL_CKERNELS_H
#define FUNNEL_CKERNELS_H

/// Small CPU intrinsics Swift does not expose. `static inline`, so Swift's optimiser inlines
/// them into the calling loop (no call per use).

/// Asks the CPU to start loading the cache lines of `bytes` bytes at `p` for writing. Used where
/// the next rows to touch are known but scattered (embedding rows in sparse Adam), which no
/// hardware prefetcher can predict; it never faults, whatever `p` is.
static inline void funnel_prefetch_for_write(const void *p, long bytes) {
    const char *c = (const char *)p;
    for (long o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 1, 3);
    __builtin_prefetch(c + bytes - 1, 1, 3);
}

/// The same for reading (an embedding row a few batch rows ahead of the gather).
static inline void funnel_prefetch_for_read(const void *p, long bytes) {
    const char *c = (const char *)p;
    for (long o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 3);
    __builtin_prefetch(c + bytes - 1, 0, 3);
}

#endif
