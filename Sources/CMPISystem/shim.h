// Open MPI's C interface (through pkg-config `ompi-c`). Swift does not import it directly: the
// CMPI target wraps what Funnel uses (MPI_COMM_WORLD and the datatypes are macros).
#include <mpi.h>
