// The kernels are `static inline` in include/ckernels.h; SwiftPM needs one source file per C target.
#include "ckernels.h"
