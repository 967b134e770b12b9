/* The byte-level half of udpt's compiled core: no Python, no allocation.
 *
 * Everything here reads attacker-controlled bytes (datagrams from the network,
 * batch values from a log that may be damaged), so every read is preceded by a
 * length check, and the functions only ever point into the caller's buffer.
 * udpt/_core.c turns the results into Python values; tools/fuzz/fuzz_codec.c
 * drives these same functions under AddressSanitizer and UBSan.
 *
 * The rules are those of udpt/wire.py and udpt/events/batch.py, which stay the
 * reference (docs/DESIGN.md §11).
 */
#ifndef UDPT_CODEC_H
#define UDPT_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* -- BEP 15 requests (udpt/wire.py) ------------------------------------------------ */

#define UDPT_REQUEST_HEADER_SIZE 16
#define UDPT_ANNOUNCE_MIN_SIZE 98
#define UDPT_MAX_URL_DATA 1024
#define UDPT_MAX_ANNOUNCE_OPTIONS 64
#define UDPT_INFO_HASH_SIZE 20

enum udpt_request_kind {
    UDPT_DROP = 0,       /* parse_request returns None */
    UDPT_CONNECT,
    UDPT_ANNOUNCE,
    UDPT_SCRAPE,
    UDPT_BAD_PORT,       /* InvalidRequest "invalid port" */
    UDPT_NO_HASHES,      /* InvalidRequest "no info hashes" */
};

typedef struct {
    const uint8_t *connection_id;  /* 8 bytes */
    const uint8_t *transaction_id; /* 4 bytes */
    /* announce */
    const uint8_t *info_hash;      /* 20 */
    const uint8_t *peer_id;        /* 20 */
    const uint8_t *ip;             /* 4 */
    int64_t downloaded, left, uploaded;
    uint32_t event, key;
    int32_t num_want;
    uint16_t port;
    const uint8_t *url_data;       /* into the datagram or into url_buffer */
    size_t url_data_size;
    uint8_t url_buffer[UDPT_MAX_URL_DATA];
    /* scrape: hash_count hashes of 20 bytes, back to back */
    const uint8_t *hashes;
    size_t hash_count;
} udpt_request;

/* One of enum udpt_request_kind; fills the fields that kind has. */
int udpt_parse_request(const uint8_t *data, size_t size, int64_t max_scrape_hashes,
                       udpt_request *out);

/* 0 when parse_request would certainly drop the datagram (R2, R3). */
int udpt_may_be_request(const uint8_t *data, size_t size);

/* -- batch bodies (udpt/events/batch.py) -------------------------------------------- */

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
} udpt_cursor;

/* A column: `count` values of `width` bytes, big-endian, shuffled (byte j of value i
 * is bytes[j * count + i]). `is_signed` for the 'q' format. */
typedef struct {
    const uint8_t *bytes;
    size_t count;
    uint8_t width;
    uint8_t is_signed;
} udpt_column;

typedef struct {
    uint32_t announces;       /* n */
    const uint8_t *kinds;     /* count bytes, or NULL when only one kind is present */
    size_t others_offset;     /* first "other": u32 length + record, count - n of them */
    /* the announces (n > 0) */
    int64_t first_ms;
    udpt_column times;        /* deltas unless times_absolute */
    int times_absolute;
    uint8_t hash_mode;        /* 0: local table, 1: the log's dictionary */
    const uint8_t *local_hashes;
    size_t local_count;
    udpt_column hash_refs;
    uint64_t max_hash_ref;    /* for the caller's check against the log's dictionary */
    uint32_t peers;           /* p */
    int peer_identity;        /* peer i is announce i */
    udpt_column peer_refs;
    const uint8_t *families;  /* p bytes, 1 = IPv6 */
    size_t v6_count;
    const uint8_t *v4;        /* (p - v6_count) * 4, shuffled */
    const uint8_t *v6;        /* v6_count * 16, shuffled */
    udpt_column ports;
    const uint8_t *peer_ids;  /* p * 20, shuffled */
    udpt_column keys;
    udpt_column events, uploaded, downloaded, left;
} udpt_batch;

/* Check the whole layout of a batch body holding `count` events, as the encoder
 * writes it. 0: every column and reference is in bounds (hash references in mode 1
 * are checked by the caller, against max_hash_ref); -1: anything else, including
 * layouts the reference decoder accepts but the encoder never writes, which the
 * caller hands to the reference. Reads nothing outside body[0, size). */
int udpt_scan_batch(const uint8_t *body, size_t size, uint32_t count, udpt_batch *out);

/* The next "other" record of a scanned batch: its bytes and size. */
void udpt_next_other(const uint8_t *body, size_t *offset, const uint8_t **record, size_t *size);

static inline uint64_t udpt_column_raw(const udpt_column *column, size_t i) {
    uint64_t value = 0;
    for (size_t j = 0; j < column->width; j++)
        value = (value << 8) | column->bytes[j * column->count + i];
    return value;
}

/* Byte j of item i of a shuffled blob of count items of `width` bytes. */
static inline void udpt_unshuffle_item(const uint8_t *blob, size_t count, size_t width,
                                       size_t i, uint8_t *out) {
    for (size_t j = 0; j < width; j++)
        out[j] = blob[j * count + i];
}

/* -- writing ---------------------------------------------------------------------------- */

static inline void udpt_put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void udpt_put_be64(uint8_t *p, uint64_t v) {
    udpt_put_be32(p, (uint32_t)(v >> 32));
    udpt_put_be32(p + 4, (uint32_t)v);
}

/* -- per-event announce records (udpt/events/codec.py) ------------------------------ */

typedef struct {
    int64_t at_ms;
    const uint8_t *info_hash, *ip, *peer_id;
    size_t ip_size;
    uint16_t port;
    uint32_t key;
    uint8_t event;
    int wide;
    int64_t uploaded, downloaded, left; /* unsigned 32-bit values in the narrow layouts */
} udpt_announce_record;

/* 0 when `data` is an announce record (tags 0x01, 0x02, 0x04, 0x05) of the right
 * size with an event in 0..3; -1 otherwise (the reference decides). */
int udpt_read_announce_record(const uint8_t *data, size_t size, udpt_announce_record *out);

#endif
