// Temporaries of this process, removed when SIGINT or SIGTERM ends it.
#define _GNU_SOURCE
#include "cprocess.h"
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOTS = 256 };

// A slot holds a strdup'ed path; the handler only reads it. Writers publish with a release
// store, the handler reads with acquire, so it never sees a half-written entry.
static _Atomic(char *) paths[SLOTS];
static atomic_int directories[SLOTS];
static atomic_int installed;

static void remove_all(int directories_pass) {
    for (int i = SLOTS - 1; i >= 0; i--) {
        char *p = atomic_load_explicit(&paths[i], memory_order_acquire);
        if (!p || atomic_load(&directories[i]) != directories_pass) continue;
        if (directories_pass) rmdir(p); else unlink(p);
    }
}

static void on_signal(int sig) {
    remove_all(0);  // files first, so the directories holding them are empty
    remove_all(1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return;
    int sigs[2] = {SIGINT, SIGTERM};
    for (int k = 0; k < 2; k++) {
        struct sigaction old;
        if (sigaction(sigs[k], NULL, &old) != 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[k], &sa, NULL);
    }
}

int funnel_temporary_register(const char *path, int is_directory) {
    install();
    char *copy = strdup(path);
    if (!copy) return -1;
    for (int i = 0; i < SLOTS; i++) {
        char *expected = NULL;
        atomic_store(&directories[i], is_directory ? 1 : 0);
        if (atomic_compare_exchange_strong_explicit(&paths[i], &expected, copy, memory_order_acq_rel, memory_order_relaxed))
            return i;
    }
    free(copy);
    return -1;
}

void funnel_temporary_forget(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    char *p = atomic_exchange(&paths[slot], NULL);
    free(p);  // a handler running now on another thread may still read it: signals end the process
}
