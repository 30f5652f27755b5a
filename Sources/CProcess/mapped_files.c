// Memory-mapped inputs, so a SIGBUS from a file cut short under us becomes a located error.
#define _GNU_SOURCE
#include "cprocess.h"
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOTS = 64 };

struct mapping {
    _Atomic(uintptr_t) base;  // 0: free
    size_t length;
    char message[512];        // formatted at registration: the handler only writes it
};

static struct mapping table[SLOTS];
static atomic_int installed;

static void on_bus(int sig, siginfo_t *info, void *context) {
    (void)context;
    uintptr_t at = (uintptr_t)info->si_addr;
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t base = atomic_load_explicit(&table[i].base, memory_order_acquire);
        if (base && at >= base && at < base + table[i].length) {
            size_t n = strlen(table[i].message);
            ssize_t ignored = write(2, table[i].message, n);
            (void)ignored;
            _exit(1);
        }
    }
    signal(sig, SIG_DFL);  // not one of ours: the default action (core dump) as before
    raise(sig);
}

static void install(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

int funnel_mapping_register(const void *base, size_t length, const char *path) {
    if (!base || length == 0) return -1;
    install();
    for (int i = 0; i < SLOTS; i++) {
        uintptr_t expected = 0;
        // Claim the slot with a marker that no address matches, fill it, then publish the base.
        if (!atomic_compare_exchange_strong(&table[i].base, &expected, (uintptr_t)1)) continue;
        table[i].length = 0;
        snprintf(table[i].message, sizeof table[i].message,
                 "funnel: error: %s: the file changed (it was cut short) while being read\n", path);
        table[i].length = length;
        atomic_store_explicit(&table[i].base, (uintptr_t)base, memory_order_release);
        return i;
    }
    return -1;
}

void funnel_mapping_forget(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    atomic_store_explicit(&table[slot].base, (uintptr_t)0, memory_order_release);
}
