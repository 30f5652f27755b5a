// Descriptors 0-2 made safe before anything else in the process opens a file.
#include "cprocess.h"
#include <fcntl.h>
#include <unistd.h>

static int closed_mask;

// Runs before Swift's main: a closed descriptor 0, 1 or 2 is reopened on /dev/null read-only,
// so writes to it fail (and are reported as "closed") and no later open() — Foundation's,
// Dispatch's, a model file's — reuses the number, which would send results into that file.
__attribute__((constructor)) static void reopen_closed_standard_streams(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1) continue;
        closed_mask |= 1 << fd;
        int opened = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (opened >= 0 && opened != fd) { dup2(opened, fd); close(opened); }
    }
}

int funnel_standard_streams_closed_at_start(void) { return closed_mask; }
