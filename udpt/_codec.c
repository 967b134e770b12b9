/* The byte-level half of udpt's compiled core; see _codec.h. */
#include "_codec.h"

#include <string.h>

static uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64(const uint8_t *p) { return ((uint64_t)be32(p) << 32) | be32(p + 4); }

/* -- BEP 15 requests ------------------------------------------------------------------ */

static const uint8_t PROTOCOL_ID[8] = {0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80};

int udpt_may_be_request(const uint8_t *data, size_t size) {
    return size >= UDPT_REQUEST_HEADER_SIZE && be32(data + 8) <= 2;
}

/* wire._read_url_data: BEP 41 options after the fixed announce (size > 98). */
static void read_url_data(const uint8_t *data, size_t end, udpt_request *out) {
    size_t offset = UDPT_ANNOUNCE_MIN_SIZE;
    if (data[offset] == 0x02 && end > offset + 1 && end == offset + 2 + data[offset + 1]) {
        out->url_data = data + offset + 2;  /* libtorrent's one option: at most 255 bytes */
        out->url_data_size = end - offset - 2;
        return;
    }
    size_t collected = 0;
    out->url_data = out->url_buffer;
    for (int i = 0; i < UDPT_MAX_ANNOUNCE_OPTIONS; i++) {
        if (offset >= end)
            break;
        uint8_t option = data[offset];
        if (option == 0x00)
            break;
        if (option == 0x01) {
            offset += 1;
            continue;
        }
        if (offset + 1 >= end)
            break;
        size_t start = offset + 2;
        offset = start + data[offset + 1];
        if (offset > end)
            break;
        if (option == 0x02) {
            size_t piece = offset - start;
            size_t room = UDPT_MAX_URL_DATA - collected;
            memcpy(out->url_buffer + collected, data + start, piece < room ? piece : room);
            collected += piece < room ? piece : room;
            if (collected >= UDPT_MAX_URL_DATA)
                break;
        }
    }
    out->url_data_size = collected;
}

static int parse_announce(const uint8_t *data, size_t size, udpt_request *out) {
    if (size < UDPT_ANNOUNCE_MIN_SIZE)  /* R7 */
        return UDPT_DROP;
    out->port = be16(data + 96);
    if (out->port == 0)  /* R8 */
        return UDPT_BAD_PORT;
    out->info_hash = data + 16;
    out->peer_id = data + 36;
    out->downloaded = (int64_t)be64(data + 56);
    out->left = (int64_t)be64(data + 64);
    out->uploaded = (int64_t)be64(data + 72);
    uint32_t event = be32(data + 80);
    out->event = event <= 3 ? event : 0;
    out->ip = data + 84;
    out->key = be32(data + 88);
    out->num_want = (int32_t)be32(data + 92);
    out->url_data = out->url_buffer;
    out->url_data_size = 0;
    if (size > UDPT_ANNOUNCE_MIN_SIZE)
        read_url_data(data, size, out);
    return UDPT_ANNOUNCE;  /* R9 */
}

int udpt_parse_request(const uint8_t *data, size_t size, int64_t max_scrape_hashes,
                       udpt_request *out) {
    if (size < UDPT_REQUEST_HEADER_SIZE)  /* R2 */
        return UDPT_DROP;
    out->connection_id = data;
    out->transaction_id = data + 12;
    switch (be32(data + 8)) {
    case 0:
        return memcmp(data, PROTOCOL_ID, 8) == 0 ? UDPT_CONNECT : UDPT_DROP;  /* R4, R5 */
    case 1:
        return parse_announce(data, size, out);
    case 2: {
        int64_t count = (int64_t)((size - UDPT_REQUEST_HEADER_SIZE) / UDPT_INFO_HASH_SIZE);
        if (max_scrape_hashes < count)
            count = max_scrape_hashes;
        if (count <= 0)  /* R10 */
            return UDPT_NO_HASHES;
        out->hashes = data + UDPT_REQUEST_HEADER_SIZE;  /* R11 */
        out->hash_count = (size_t)count;
        return UDPT_SCRAPE;
    }
    default:  /* R3 */
        return UDPT_DROP;
    }
}

/* -- batch bodies ------------------------------------------------------------------- */

static int take(udpt_cursor *c, uint64_t size, const uint8_t **out) {
    if (size > c->size - c->offset)
        return -1;
    *out = c->data + c->offset;
    c->offset += (size_t)size;
    return 0;
}

static int take_u32(udpt_cursor *c, uint32_t *out) {
    const uint8_t *p;
    if (take(c, 4, &p))
        return -1;
    *out = be32(p);
    return 0;
}

static int take_byte(udpt_cursor *c, uint8_t *out) {
    const uint8_t *p;
    if (take(c, 1, &p))
        return -1;
    *out = *p;
    return 0;
}

static int take_column(udpt_cursor *c, size_t count, udpt_column *out) {
    uint8_t code;
    if (take_byte(c, &code))
        return -1;
    out->is_signed = code == 'q';
    switch (code) {
    case 'B': out->width = 1; break;
    case 'H': out->width = 2; break;
    case 'I': out->width = 4; break;
    case 'Q':
    case 'q': out->width = 8; break;
    default: return -1;
    }
    out->count = count;
    return take(c, (uint64_t)count * out->width, &out->bytes);
}

/* Largest value of an unsigned column; -1 for a signed one (the encoder never signs
 * references, the reference decoder would index from the end). */
static int column_max(const udpt_column *column, uint64_t *out) {
    if (column->is_signed)
        return -1;
    uint64_t high = 0;
    for (size_t i = 0; i < column->count; i++) {
        uint64_t value = udpt_column_raw(column, i);
        if (value > high)
            high = value;
    }
    *out = high;
    return 0;
}

static int scan_announces(udpt_cursor *c, size_t n, udpt_batch *b) {
    const uint8_t *p;
    uint32_t u;
    uint64_t high;
    if (take(c, 8, &p))
        return -1;
    b->first_ms = (int64_t)be64(p);
    if (take_column(c, n, &b->times))
        return -1;
    b->times_absolute = b->times.is_signed;
    if (!b->times_absolute) {  /* the running sum must stay in 64 signed bits */
        int64_t at = b->first_ms;
        for (size_t i = 0; i < n; i++) {
            uint64_t delta = udpt_column_raw(&b->times, i);
            if (delta > INT64_MAX || __builtin_add_overflow(at, (int64_t)delta, &at))
                return -1;
        }
    }

    if (take_byte(c, &b->hash_mode) || take_u32(c, &u) || take(c, (uint64_t)u * 20, &p))
        return -1;
    b->local_hashes = p;
    b->local_count = u;
    if (take_column(c, n, &b->hash_refs) || column_max(&b->hash_refs, &high))
        return -1;
    b->max_hash_ref = high;
    if (b->hash_mode == 0) {
        if (high >= b->local_count)
            return -1;
    } else if (b->hash_mode != 1 || b->local_count != 0) {
        return -1;
    }

    uint8_t identity;
    if (take_u32(c, &b->peers) || take_byte(c, &identity))
        return -1;
    b->peer_identity = identity != 0;
    if (b->peer_identity) {
        if (b->peers != n)
            return -1;
    } else if (take_column(c, n, &b->peer_refs) || column_max(&b->peer_refs, &high) ||
               high >= b->peers) {
        return -1;
    }
    if (take(c, b->peers, &b->families))
        return -1;
    b->v6_count = 0;
    for (size_t i = 0; i < b->peers; i++) {
        if (b->families[i] > 1)
            return -1;
        b->v6_count += b->families[i];
    }
    if (take(c, (uint64_t)(b->peers - b->v6_count) * 4, &b->v4) ||
        take(c, (uint64_t)b->v6_count * 16, &b->v6) || take_column(c, b->peers, &b->ports) ||
        take(c, (uint64_t)b->peers * 20, &b->peer_ids) || take_column(c, b->peers, &b->keys))
        return -1;
    if (take_column(c, n, &b->events) || column_max(&b->events, &high) || high > 3)
        return -1;
    return take_column(c, n, &b->uploaded) || take_column(c, n, &b->downloaded) ||
                   take_column(c, n, &b->left)
               ? -1
               : 0;
}

int udpt_scan_batch(const uint8_t *body, size_t size, uint32_t count, udpt_batch *out) {
    udpt_cursor c = {body, size, 0};
    const uint8_t *p;
    uint32_t n, length;
    if (take_u32(&c, &n) || n > count)
        return -1;
    out->announces = n;
    out->kinds = NULL;
    if (n > 0 && n < count) {
        if (take(&c, count, &out->kinds))
            return -1;
        size_t announces = 0;
        for (size_t i = 0; i < count; i++) {
            if (out->kinds[i] > 1)  /* the reference reads any non-zero as "other" */
                return -1;
            announces += out->kinds[i] == 0;
        }
        if (announces != n)
            return -1;
    }
    out->others_offset = c.offset;
    for (uint32_t i = n; i < count; i++)
        if (take_u32(&c, &length) || take(&c, length, &p))
            return -1;
    if (n > 0 && scan_announces(&c, n, out))
        return -1;
    return c.offset == size ? 0 : -1;
}

void udpt_next_other(const uint8_t *body, size_t *offset, const uint8_t **record, size_t *size) {
    *size = be32(body + *offset);
    *record = body + *offset + 4;
    *offset += 4 + *size;
}

/* -- per-event announce records ------------------------------------------------------ */

int udpt_read_announce_record(const uint8_t *data, size_t size, udpt_announce_record *out) {
    if (size == 0)
        return -1;
    switch (data[0]) {
    case 0x01: out->ip_size = 4; out->wide = 0; break;
    case 0x02: out->ip_size = 16; out->wide = 0; break;
    case 0x04: out->ip_size = 4; out->wide = 1; break;
    case 0x05: out->ip_size = 16; out->wide = 1; break;
    default: return -1;
    }
    size_t counters = out->wide ? 24 : 12;
    if (size != 56 + out->ip_size + counters)
        return -1;
    const uint8_t *p = data + 1;
    out->at_ms = (int64_t)be64(p);
    out->info_hash = p + 8;
    out->ip = p + 28;
    p += 28 + out->ip_size;
    out->port = be16(p);
    out->peer_id = p + 2;
    out->key = be32(p + 22);
    out->event = p[26];
    if (out->event > 3)
        return -1;
    p += 27;
    if (out->wide) {
        out->uploaded = (int64_t)be64(p);
        out->downloaded = (int64_t)be64(p + 8);
        out->left = (int64_t)be64(p + 16);
    } else {
        out->uploaded = be32(p);
        out->downloaded = be32(p + 4);
        out->left = be32(p + 8);
    }
    return 0;
}
