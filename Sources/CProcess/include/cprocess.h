#ifndef FUNNEL_CPROCESS_H
#define FUNNEL_CPROCESS_H

#include <stddef.h>

/// Process-level safety nets Swift cannot express: signal handlers that must be
/// async-signal-safe (no allocation, no locks, no Swift runtime), and Linux system calls the
/// Swift Glibc overlay does not expose.

// MARK: Temporaries removed on SIGINT / SIGTERM

/// Remembers `path` (copied here, outside any signal handler) as a temporary of this process:
/// on SIGINT or SIGTERM it is removed (a file with unlink, a directory with rmdir after the
/// files registered inside it), then the signal's default action runs. Installs the handlers
/// on first use, and only where the signal still has its default disposition (a server that
/// handles SIGTERM itself keeps its own). Returns a slot for `funnel_temporary_forget`, or -1
/// when the table is full (the temporary is then only cleaned by the next run).
int funnel_temporary_register(const char *path, int is_directory);

/// The temporary in `slot` was renamed into place or removed: forget it.
void funnel_temporary_forget(int slot);

// MARK: Memory-mapped inputs

/// Remembers that [base, base + length) maps the file `path`. A SIGBUS inside such a range (the
/// file was truncated while mapped) prints "funnel: error: PATH: the file changed (it was cut
/// short) while being read" and exits with status 1 instead of dying on the signal. Returns a
/// slot for `funnel_mapping_forget`, or -1 when the table is full.
int funnel_mapping_register(const void *base, size_t length, const char *path);

/// The mapping in `slot` was released: forget it.
void funnel_mapping_forget(int slot);

// MARK: Replacing a directory

/// Exchanges `from` and `to` atomically (Linux renameat2 RENAME_EXCHANGE): both must exist.
/// Returns 0, or -1 with errno set (EINVAL or ENOSYS where the file system or kernel lacks it).
int funnel_rename_exchange(const char *from, const char *to);

// MARK: Standard streams

/// Which of descriptors 0, 1, 2 were closed when the process started (bit k for descriptor k).
/// A constructor reopened them on /dev/null read-only before anything else could open a file
/// under their numbers.
int funnel_standard_streams_closed_at_start(void);

// MARK: Memory

/// Returns freed heap memory to the kernel (glibc malloc_trim): after a storm of connections
/// the allocator otherwise keeps its high-water mark resident for good.
void funnel_release_free_memory(void);

#endif
