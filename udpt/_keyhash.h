/* udpt/_keyhash.c: the keyed hash every compiled table probes by (swarms, torrents, the
 * log's numbers), its seed drawn at import so that one host cannot choose keys that make
 * a table's probes long. Inline here: the swarm hashes on every announce. */
#ifndef UDPT_KEYHASH_H
#define UDPT_KEYHASH_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

extern uint64_t udpt_hash_seed;

/* Draws the seed; 0, or -1 with OSError set. */
int udpt_keyhash_init(void);

static inline uint64_t udpt_mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* The keyed hash of the ``size`` bytes at ``key``. */
static inline uint32_t udpt_keyed_hash(const unsigned char *key, Py_ssize_t size) {
    uint64_t h = udpt_hash_seed ^ (uint64_t)size;
    Py_ssize_t i = 0;
    for (; i + 8 <= size; i += 8) {
        uint64_t word;
        memcpy(&word, key + i, 8);
        h = udpt_mix(h ^ word);
    }
    uint64_t rest = 0;
    memcpy(&rest, key + i, (size_t)(size - i));
    return (uint32_t)udpt_mix(h ^ rest);
}

#endif
