// Handing freed heap pages back to the kernel.
#include "cprocess.h"
#include <malloc.h>

void funnel_release_free_memory(void) { malloc_trim(0); }
