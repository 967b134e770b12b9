/* The batch encoder (udpt/events/batch.py's layout, the reference) and the reading of a
 * stored value's body: what udpt/_core.c's encode_batch and decoders and udpt/_recut.c's
 * StoredRun share. See udpt/_batch.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <string.h>

#include "_batch.h"
#include "_codec.h"

#define ZLIB_LEVEL 1 /* batch.ZLIB_LEVEL */

static PyObject *zlib_compress, *zlib_decompress;
static PyObject *encode_event_fn, *decode_event_fn; /* the selected ones, for "others" */

int udpt_batch_init(void) {
    PyObject *zlib = PyImport_ImportModule("zlib");
    if (zlib == NULL)
        return -1;
    zlib_compress = PyObject_GetAttrString(zlib, "compress");
    zlib_decompress = PyObject_GetAttrString(zlib, "decompress");
    Py_DECREF(zlib);
    return zlib_compress == NULL || zlib_decompress == NULL ? -1 : 0;
}

void udpt_batch_bind(PyObject *encode_event, PyObject *decode_event) {
    Py_INCREF(encode_event);
    Py_XSETREF(encode_event_fn, encode_event);
    Py_INCREF(decode_event);
    Py_XSETREF(decode_event_fn, decode_event);
}

typedef struct {
    uint8_t *data;
    size_t size, capacity;
} buffer;

static uint8_t *grow(buffer *b, size_t extra) {
    if (b->size + extra > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 1024;
        while (capacity < b->size + extra)
            capacity *= 2;
        uint8_t *data = PyMem_Realloc(b->data, capacity);
        if (data == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        b->data = data;
        b->capacity = capacity;
    }
    uint8_t *at = b->data + b->size;
    b->size += extra;
    return at;
}

static int put_u32(buffer *b, uint32_t v) {
    uint8_t *p = grow(b, 4);
    if (p == NULL)
        return -1;
    udpt_put_be32(p, v);
    return 0;
}

static int put_bytes(buffer *b, const void *data, size_t size) {
    uint8_t *p = grow(b, size);
    if (p == NULL)
        return -1;
    memcpy(p, data, size);
    return 0;
}

/* batch._fixed_column: the format byte, then the values big-endian and shuffled. */
static int put_column_as(buffer *b, const int64_t *values, size_t count, char code) {
    size_t width = code == 'B' ? 1 : code == 'H' ? 2 : code == 'I' ? 4 : 8;
    uint8_t *p = grow(b, 1 + count * width);
    if (p == NULL)
        return -1;
    *p++ = (uint8_t)code;
    for (size_t i = 0; i < count; i++) {
        uint64_t v = (uint64_t)values[i];
        for (size_t j = 0; j < width; j++)
            p[j * count + i] = (uint8_t)(v >> (8 * (width - 1 - j)));
    }
    return 0;
}

/* batch._column: the narrowest format that holds every value (all fit in 64 signed bits). */
static int put_column(buffer *b, const int64_t *values, size_t count) {
    int64_t low = 0, high = 0;
    for (size_t i = 0; i < count; i++) {
        if (i == 0 || values[i] < low)
            low = values[i];
        if (i == 0 || values[i] > high)
            high = values[i];
    }
    char code = low < 0 ? 'q' : high < 1 << 8 ? 'B' : high < 1 << 16 ? 'H'
                          : high < 1LL << 32 ? 'I' : 'Q';
    return put_column_as(b, values, count, code);
}

static int put_shuffled(buffer *b, const uint8_t *const *blobs, size_t count, size_t width) {
    uint8_t *p = grow(b, count * width);
    if (p == NULL)
        return -1;
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < width; j++)
            p[j * count + i] = blobs[i][j];
    return 0;
}

/* What makes two announces' info hashes, or peers, the same: the keys of the dicts that
 * batch._encode_announces numbers them with. The hash is Python's keyed one (SipHash), so
 * that peers chosen to collide cannot make a batch's encoding quadratic. */
static Py_hash_t info_hash_key(const udpt_packed_announce *a) {
    return _Py_HashBytes(a->info_hash, 20);
}

static int same_info_hash(const udpt_packed_announce *x, const udpt_packed_announce *y) {
    return memcmp(x->info_hash, y->info_hash, 20) == 0;
}

static Py_hash_t peer_key(const udpt_packed_announce *a) {
    uint8_t key[46];
    memcpy(key, a->ip, a->ip_size);
    memcpy(key + a->ip_size, a->peer_id, 20);
    udpt_put_be32(key + a->ip_size + 20, a->key);
    key[a->ip_size + 24] = (uint8_t)(a->port >> 8);
    key[a->ip_size + 25] = (uint8_t)a->port;
    return _Py_HashBytes(key, a->ip_size + 26);
}

static int same_peer(const udpt_packed_announce *x, const udpt_packed_announce *y) {
    return x->ip_size == y->ip_size && x->port == y->port && x->key == y->key &&
           memcmp(x->ip, y->ip, x->ip_size) == 0 && memcmp(x->peer_id, y->peer_id, 20) == 0;
}

/* Numbers the distinct keys of a[0..n) in order of first use, as dict.setdefault does:
 * refs[i] is announce i's, first_use[k] the first announce with key k. How many are
 * distinct, or -1 (no memory). */
static Py_ssize_t number_first_uses(const udpt_packed_announce *a, size_t n,
                                    Py_hash_t (*key)(const udpt_packed_announce *),
                                    int (*same)(const udpt_packed_announce *,
                                                const udpt_packed_announce *),
                                    int64_t *refs, size_t *first_use) {
    size_t slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    size_t *table = PyMem_Calloc(slots, sizeof(size_t)); /* announce + 1; 0: empty */
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t slot = (size_t)key(&a[i]) & (slots - 1);
        while (table[slot] && !same(&a[table[slot] - 1], &a[i]))
            slot = (slot + 1) & (slots - 1);
        if (table[slot]) {
            refs[i] = refs[table[slot] - 1];
        } else {
            table[slot] = i + 1;
            refs[i] = (int64_t)distinct;
            first_use[distinct++] = i;
        }
    }
    PyMem_Free(table);
    return (Py_ssize_t)distinct;
}

/* The column of the counter at ``offset`` (uploaded, downloaded, left) of each announce. */
static int put_counter(buffer *b, int64_t *values, const udpt_packed_announce *a, size_t n,
                       size_t offset) {
    for (size_t i = 0; i < n; i++)
        memcpy(&values[i], (const char *)&a[i] + offset, sizeof values[i]);
    return put_column(b, values, n);
}

/* batch._encode_announces. */
static int put_announces(buffer *b, const udpt_packed_announce *a, size_t n, int numbered) {
    int result = -1;
    int64_t *values = PyMem_Malloc(sizeof(int64_t) * (n ? n : 1));
    size_t *first_use = PyMem_Malloc(sizeof(size_t) * (n ? n : 1));
    const uint8_t **blobs = PyMem_Malloc(sizeof(uint8_t *) * (n ? n : 1));
    if (values == NULL || first_use == NULL || blobs == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    uint8_t *p = grow(b, 8);
    if (p == NULL)
        goto done;
    udpt_put_be64(p, (uint64_t)a[0].at_ms);
    int deltas_fit = 1;
    values[0] = 0;
    for (size_t i = 1; i < n; i++) {
        __int128 delta = (__int128)a[i].at_ms - a[i - 1].at_ms;
        if (delta < 0 || delta >= (__int128)1 << 32)
            deltas_fit = 0;
        values[i] = (int64_t)delta;
    }
    if (!deltas_fit)
        for (size_t i = 0; i < n; i++)
            values[i] = a[i].at_ms;
    if (deltas_fit ? put_column(b, values, n) : put_column_as(b, values, n, 'q'))
        goto done;

    Py_ssize_t local = 0;
    if (numbered) {
        for (size_t i = 0; i < n; i++)
            values[i] = a[i].hash_ref;
    } else {
        local = number_first_uses(a, n, info_hash_key, same_info_hash, values, first_use);
        if (local < 0)
            goto done;
    }
    uint8_t mode = numbered ? 1 : 0;
    if (put_bytes(b, &mode, 1) || put_u32(b, (uint32_t)local))
        goto done;
    for (Py_ssize_t k = 0; k < local; k++)
        if (put_bytes(b, a[first_use[k]].info_hash, 20))
            goto done;
    if (put_column(b, values, n))
        goto done;

    Py_ssize_t found = number_first_uses(a, n, peer_key, same_peer, values, first_use);
    if (found < 0)
        goto done;
    size_t distinct = (size_t)found;
    uint8_t identity = distinct == n;
    if (put_u32(b, (uint32_t)distinct) || put_bytes(b, &identity, 1) ||
        (!identity && put_column(b, values, n)))
        goto done;
    size_t v4 = 0, v6 = 0;
    uint8_t *families = grow(b, distinct);
    if (families == NULL)
        goto done;
    for (size_t k = 0; k < distinct; k++) {
        families[k] = a[first_use[k]].ip_size == 16;
        if (!families[k])
            blobs[v4++] = a[first_use[k]].ip;
    }
    if (put_shuffled(b, blobs, v4, 4))
        goto done;
    for (size_t k = 0; k < distinct; k++)
        if (a[first_use[k]].ip_size == 16)
            blobs[v6++] = a[first_use[k]].ip;
    if (put_shuffled(b, blobs, v6, 16))
        goto done;
    for (size_t k = 0; k < distinct; k++)
        values[k] = a[first_use[k]].port;
    if (put_column_as(b, values, distinct, 'H'))
        goto done;
    for (size_t k = 0; k < distinct; k++)
        blobs[k] = a[first_use[k]].peer_id;
    if (put_shuffled(b, blobs, distinct, 20))
        goto done;
    for (size_t k = 0; k < distinct; k++)
        values[k] = a[first_use[k]].key;
    if (put_column_as(b, values, distinct, 'I'))
        goto done;

    for (size_t i = 0; i < n; i++)
        values[i] = a[i].event;
    result = put_column(b, values, n) ||
             put_counter(b, values, a, n, offsetof(udpt_packed_announce, uploaded)) ||
             put_counter(b, values, a, n, offsetof(udpt_packed_announce, downloaded)) ||
             put_counter(b, values, a, n, offsetof(udpt_packed_announce, left))
                 ? -1
                 : 0;
done:
    PyMem_Free(values);
    PyMem_Free(first_use);
    PyMem_Free(blobs);
    return result;
}

/* The whole value: header, then the body, compressed by Python's zlib module (the same
 * call as batch._encode, so the same bytes) when asked to and that is smaller. */
static PyObject *finish_batch(const buffer *body, size_t count, int64_t last_ms, int compress) {
    PyObject *raw = PyBytes_FromStringAndSize((const char *)body->data, (Py_ssize_t)body->size);
    if (raw == NULL)
        return NULL;
    PyObject *compressed = raw;
    Py_INCREF(compressed);
    if (compress) {
        Py_SETREF(compressed, PyObject_CallFunction(zlib_compress, "Oi", raw, ZLIB_LEVEL));
        if (compressed == NULL) {
            Py_DECREF(raw);
            return NULL;
        }
    }
    int smaller = PyBytes_GET_SIZE(compressed) < PyBytes_GET_SIZE(raw);
    PyObject *payload = smaller ? compressed : raw;
    PyObject *value = PyBytes_FromStringAndSize(NULL, 13 + PyBytes_GET_SIZE(payload));
    if (value != NULL) {
        uint8_t *p = (uint8_t *)PyBytes_AS_STRING(value);
        p[0] = smaller ? 0xB1 : 0xB0;
        udpt_put_be32(p + 1, (uint32_t)count);
        udpt_put_be64(p + 5, (uint64_t)last_ms);
        memcpy(p + 13, PyBytes_AS_STRING(payload), (size_t)PyBytes_GET_SIZE(payload));
    }
    Py_DECREF(raw);
    Py_DECREF(compressed);
    return value;
}

PyObject *udpt_encode_value(const udpt_packed_announce *announces, size_t n,
                            PyObject *const *others, const uint8_t *kinds, size_t count,
                            int numbered, int64_t last_ms, int compress) {
    buffer body = {NULL, 0, 0};
    PyObject *result = NULL;
    if (put_u32(&body, (uint32_t)n))
        goto done;
    if (n != count) {
        if (n && put_bytes(&body, kinds, count))
            goto done;
        for (size_t i = 0; i < count - n; i++)
            if (put_u32(&body, (uint32_t)PyBytes_GET_SIZE(others[i])) ||
                put_bytes(&body, PyBytes_AS_STRING(others[i]),
                          (size_t)PyBytes_GET_SIZE(others[i])))
                goto done;
    }
    if (n && put_announces(&body, announces, n, numbered))
        goto done;
    result = finish_batch(&body, count, last_ms, compress);
done:
    PyMem_Free(body.data);
    return result;
}

PyObject *udpt_encode_event_fn(void) {
    return encode_event_fn;
}

PyObject *udpt_decode_event_fn(void) {
    return decode_event_fn;
}

/* The body of a batch value in a layout the compiled decoder reads: 1, with *owner the
 * decompressed bytes (or NULL) to release after; 0 when it is not one (an exception may be
 * set: the reference decides what to say). */
int udpt_batch_body(PyObject *value, PyObject **owner, const uint8_t **body, size_t *size,
                    uint32_t *count) {
    *owner = NULL;
    if (!PyBytes_CheckExact(value) || PyBytes_GET_SIZE(value) < 13)
        return 0;
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(value);
    *count = ((uint32_t)data[1] << 24) | ((uint32_t)data[2] << 16) | ((uint32_t)data[3] << 8) |
             data[4];
    if (data[0] == 0xB0) {
        *body = data + 13;
        *size = (size_t)PyBytes_GET_SIZE(value) - 13;
        return 1;
    }
    if (data[0] != 0xB1)
        return 0;
    PyObject *payload = PyMemoryView_FromMemory(
        (char *)data + 13, PyBytes_GET_SIZE(value) - 13, PyBUF_READ);
    PyObject *decompressed = payload ? PyObject_CallOneArg(zlib_decompress, payload) : NULL;
    Py_XDECREF(payload);
    if (decompressed == NULL || !PyBytes_Check(decompressed)) {
        Py_XDECREF(decompressed);
        return 0;
    }
    *owner = decompressed;
    *body = (const uint8_t *)PyBytes_AS_STRING(decompressed);
    *size = (size_t)PyBytes_GET_SIZE(decompressed);
    return 1;
}
