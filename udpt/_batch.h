/* udpt/_batch.c, the batch encoder and the reading of stored values: what udpt/_core.c
 * and udpt/_recut.c use of it.
 *
 * An announce to encode is a udpt_packed_announce: plain fields and pointers to its
 * bytes, so that events decoded from stored values (_recut.c) are encoded again
 * without becoming Python objects first. The layout is batch.py's (the reference).
 */
#ifndef UDPT_BATCH_H
#define UDPT_BATCH_H

#include <Python.h>

#include <stdint.h>

typedef struct {
    int64_t at_ms, uploaded, downloaded, left;
    int64_t hash_ref;           /* its number in the log's dictionary (numbered batches) */
    const uint8_t *info_hash;   /* 20 bytes */
    const uint8_t *ip;          /* ip_size bytes: 4 or 16 */
    const uint8_t *peer_id;     /* 20 bytes */
    uint32_t key;
    uint16_t port;
    uint8_t ip_size, event;
} udpt_packed_announce;

/* One batch value of `count` events: the `n` announces and the `others` records (per-event
 * layout, bytes) in the order `kinds` gives (count bytes, 1 = the next other; NULL when only
 * one kind is present). `numbered`: hashes as numbers of the log's dictionary (hash_ref),
 * else a table of their own. `last_ms`: the at_ms of the last event. Compressed when asked
 * and smaller. NULL with an exception set. */
PyObject *udpt_encode_value(const udpt_packed_announce *announces, size_t n,
                            PyObject *const *others, const uint8_t *kinds, size_t count,
                            int numbered, int64_t last_ms, int compress);

/* The body of a stored batch value in a layout the compiled decoder reads: 1, with *owner
 * the decompressed bytes (or NULL) to release after; 0 when it is not one (an exception
 * may be set). */
int udpt_batch_body(PyObject *value, PyObject **owner, const uint8_t **body, size_t *size,
                    uint32_t *count);

/* Imports zlib, whose compress and decompress the batches use (the same calls as
 * batch.py's, so the same bytes); 0, or -1 with an exception set. */
int udpt_batch_init(void);

/* The per-event codec selected by udpt/events/codec.py, for "others" (bind_batch). */
void udpt_batch_bind(PyObject *encode_event, PyObject *decode_event);

/* The selected per-event codec (udpt/events/codec.py's functions or their compiled
 * drop-ins), which "others" go through; NULL before bind_batch. */
PyObject *udpt_encode_event_fn(void);
PyObject *udpt_decode_event_fn(void);

#endif
