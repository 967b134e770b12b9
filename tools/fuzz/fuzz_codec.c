/* libFuzzer harness for the byte-level half of udpt's compiled core (udpt/_codec.c).
 * Built by benchmarks/fuzz_core.py with -fsanitize=fuzzer,address,undefined.
 * The first byte picks the target; every field a result points at is read, so an
 * out-of-bounds pointer is caught by AddressSanitizer where it would be used. */
#include <stdint.h>
#include <stdlib.h>

#include "../../udpt/_codec.h"

static volatile uint64_t sink;

static void touch(const uint8_t *p, size_t size) {
    for (size_t i = 0; i < size; i++)
        sink += p[i];
}

static void column(const udpt_column *c) {
    for (size_t i = 0; i < c->count; i++)
        sink += udpt_column_raw(c, i);
}

static void request(const uint8_t *data, size_t size) {
    udpt_request r;
    int64_t limit = size ? (int64_t)data[0] - 8 : 74;
    switch (udpt_parse_request(data, size, limit, &r)) {
    case UDPT_ANNOUNCE:
        touch(r.info_hash, 20), touch(r.peer_id, 20), touch(r.ip, 4);
        touch(r.url_data, r.url_data_size);
        if (r.url_data_size > UDPT_MAX_URL_DATA)
            abort();
        /* fall through */
    case UDPT_CONNECT:
    case UDPT_BAD_PORT:
    case UDPT_NO_HASHES:
        touch(r.connection_id, 8), touch(r.transaction_id, 4);
        break;
    case UDPT_SCRAPE:
        touch(r.hashes, 20 * r.hash_count);
        break;
    }
    sink += udpt_may_be_request(data, size);
}

static void batch(const uint8_t *data, size_t size) {
    if (size < 4)
        return;
    uint32_t count = ((uint32_t)data[0] << 8 | data[1]) % 64; /* small counts reach deep */
    udpt_batch b;
    if (udpt_scan_batch(data + 4, size - 4, count, &b))
        return;
    const uint8_t *body = data + 4, *record;
    size_t offset = b.others_offset, record_size;
    for (uint32_t i = b.announces; i < count; i++) {
        udpt_next_other(body, &offset, &record, &record_size);
        touch(record, record_size);
    }
    if (b.kinds)
        touch(b.kinds, count);
    if (!b.announces)
        return;
    uint8_t item[20];
    column(&b.times), column(&b.hash_refs), column(&b.ports), column(&b.keys);
    column(&b.events), column(&b.uploaded), column(&b.downloaded), column(&b.left);
    if (!b.peer_identity)
        column(&b.peer_refs);
    touch(b.local_hashes, 20 * b.local_count), touch(b.families, b.peers);
    for (size_t i = 0; i < b.peers - b.v6_count; i++)
        udpt_unshuffle_item(b.v4, b.peers - b.v6_count, 4, i, item), touch(item, 4);
    for (size_t i = 0; i < b.v6_count; i++)
        udpt_unshuffle_item(b.v6, b.v6_count, 16, i, item), touch(item, 16);
    for (size_t i = 0; i < b.peers; i++)
        udpt_unshuffle_item(b.peer_ids, b.peers, 20, i, item), touch(item, 20);
}

static void record(const uint8_t *data, size_t size) {
    udpt_announce_record r;
    if (udpt_read_announce_record(data, size, &r) == 0)
        touch(r.info_hash, 20), touch(r.ip, r.ip_size), touch(r.peer_id, 20);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0: request(data + 1, size - 1); break;
    case 1: batch(data + 1, size - 1); break;
    default: record(data + 1, size - 1); break;
    }
    return 0;
}
