/* udpt/_keyhash.h's seed, drawn once when udpt._core is imported. */
#include "_keyhash.h"

#include <sys/random.h>

uint64_t udpt_hash_seed;

int udpt_keyhash_init(void) {
    if (getrandom(&udpt_hash_seed, sizeof udpt_hash_seed, 0) != sizeof udpt_hash_seed) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}
