/* udpt._core: the compiled codecs, drop-ins for functions of udpt/wire.py,
 * udpt/events/codec.py and udpt/events/batch.py (docs/DESIGN.md §11).
 *
 * The Python modules stay the reference. Each of them hands this module its own
 * result classes and its pure functions (bind_wire, bind_codec, bind_batch), and
 * the compiled functions take the common path: well-typed arguments and the
 * layouts the encoders write. Anything else (a damaged batch, an argument of an
 * unexpected type, a value out of range) is passed to the pure function, which
 * then raises, or returns, exactly what it always did. The byte work is in
 * _codec.c, which never touches a Python object.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "_batch.h"
#include "_codec.h"
#include "_lane.h"
#include "_hashindex.h"
#include "_hashlist.h"
#include "_recut.h"
#include "_swarm.h"
#include "_torrents.h"

/* -- state set by the bind_* functions ---------------------------------------------- */

static PyTypeObject *ConnectRequest, *AnnounceRequest, *ScrapeRequest, *InvalidRequest;
static PyObject *parse_request_py, *may_be_request_py, *build_connect_py, *build_announce_py,
    *build_scrape_py, *build_error_py;
static PyObject *invalid_port_text, *no_hashes_text;

static PyTypeObject *AnnounceAccepted;
static PyObject *announce_events; /* (AnnounceEvent.NONE, ..., STOPPED) */
static PyObject *DecodeError, *encode_event_py, *decode_event_py;

static PyObject *encode_batch_py, *decode_batch_py;

#define I32_MAX 2147483647LL

static int check_tuple_class(PyObject *cls) {
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "expected a NamedTuple class");
        return -1;
    }
    return 0;
}

static void keep(PyObject **slot, PyObject *value) {
    Py_INCREF(value);
    Py_XSETREF(*slot, value);
}

/* A NamedTuple built as tuple.__new__(cls, items) builds it, without calling __new__. */
static PyObject *new_record(PyTypeObject *cls, Py_ssize_t size) {
    return cls->tp_alloc(cls, size);
}

static PyObject *bytes_of(const uint8_t *data, size_t size) {
    return PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
}

/* The pure function decides: called whenever the compiled path does not apply. */
static PyObject *refer(PyObject *reference, PyObject *const *args, Py_ssize_t nargs) {
    return PyObject_Vectorcall(reference, args, (size_t)nargs, NULL);
}

/* A call with keyword arguments is rare (tests): the reference takes it as it is. */
#define KEYWORDS_TO(reference)                                                              \
    do {                                                                                    \
        if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)                               \
            return keyword_call((reference), args, nargs, kwnames);                         \
    } while (0)

static PyObject *keyword_call(PyObject *reference, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    if (reference == NULL) {
        PyErr_SetString(PyExc_TypeError, "takes no keyword arguments");
        return NULL;
    }
    return PyObject_Vectorcall(reference, args, (size_t)nargs, kwnames);
}

/* An exact int, or a subclass (bool, IntEnum), that fits in 64 signed bits. */
static int as_i64(PyObject *value, int64_t *out) {
    if (!PyLong_Check(value))
        return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    *out = v;
    return 0;
}

/* -- wire: parse -------------------------------------------------------------------- */

static PyObject *bind_wire(PyObject *self, PyObject *args) {
    PyObject *classes[4], *functions[6];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO", &classes[0], &classes[1], &classes[2],
                          &classes[3], &functions[0], &functions[1], &functions[2],
                          &functions[3], &functions[4], &functions[5]))
        return NULL;
    for (int i = 0; i < 4; i++)
        if (check_tuple_class(classes[i]))
            return NULL;
    keep((PyObject **)&ConnectRequest, classes[0]);
    keep((PyObject **)&AnnounceRequest, classes[1]);
    keep((PyObject **)&ScrapeRequest, classes[2]);
    keep((PyObject **)&InvalidRequest, classes[3]);
    keep(&parse_request_py, functions[0]);
    keep(&may_be_request_py, functions[1]);
    keep(&build_connect_py, functions[2]);
    keep(&build_announce_py, functions[3]);
    keep(&build_scrape_py, functions[4]);
    keep(&build_error_py, functions[5]);
    Py_RETURN_NONE;
}

static int set_items(PyObject *record, PyObject **items, Py_ssize_t size) {
    for (Py_ssize_t i = 0; i < size; i++) {
        if (items[i] == NULL) {
            for (Py_ssize_t j = i + 1; j < size; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(record);
            return -1;
        }
        PyTuple_SET_ITEM(record, i, items[i]);
    }
    return 0;
}

/* A record of `size` new references (any NULL: all released, NULL returned). */
static PyObject *make_record(PyTypeObject *cls, PyObject **items, Py_ssize_t size) {
    PyObject *record = new_record(cls, size);
    if (record == NULL) {
        for (Py_ssize_t i = 0; i < size; i++)
            Py_XDECREF(items[i]);
        return NULL;
    }
    return set_items(record, items, size) ? NULL : record;
}

static PyObject *request_value(int kind, const udpt_request *r) {
    switch (kind) {
    case UDPT_CONNECT: {
        PyObject *items[1] = {bytes_of(r->transaction_id, 4)};
        return make_record(ConnectRequest, items, 1);
    }
    case UDPT_ANNOUNCE:
        return udpt_announce_request(AnnounceRequest, r);
    case UDPT_SCRAPE: {
        PyObject *hashes = PyTuple_New((Py_ssize_t)r->hash_count);
        if (hashes == NULL)
            return NULL;
        for (size_t i = 0; i < r->hash_count; i++) {
            PyObject *hash = bytes_of(r->hashes + 20 * i, 20);
            if (hash == NULL) {
                Py_DECREF(hashes);
                return NULL;
            }
            PyTuple_SET_ITEM(hashes, (Py_ssize_t)i, hash);
        }
        PyObject *items[3] = {bytes_of(r->connection_id, 8), bytes_of(r->transaction_id, 4),
                              hashes};
        return make_record(ScrapeRequest, items, 3);
    }
    case UDPT_BAD_PORT:
    case UDPT_NO_HASHES: {
        PyObject *text = kind == UDPT_BAD_PORT ? invalid_port_text : no_hashes_text;
        Py_INCREF(text);
        PyObject *items[3] = {bytes_of(r->connection_id, 8), bytes_of(r->transaction_id, 4),
                              text};
        return make_record(InvalidRequest, items, 3);
    }
    default:
        Py_RETURN_NONE;
    }
}

static PyObject *parse_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(parse_request_py);
    int64_t max_hashes = 74; /* wire.MAX_SCRAPE_HASHES */
    if (ConnectRequest == NULL || nargs < 1 || nargs > 2 || !PyBytes_CheckExact(args[0]))
        goto reference;
    if (nargs == 2) {
        if (!PyLong_Check(args[1]))
            goto reference;
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(args[1], &overflow);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        max_hashes = overflow > 0 ? INT64_MAX : overflow < 0 ? INT64_MIN : value;
    }
    udpt_request request;
    int kind = udpt_parse_request((const uint8_t *)PyBytes_AS_STRING(args[0]),
                                  (size_t)PyBytes_GET_SIZE(args[0]), max_hashes, &request);
    return request_value(kind, &request);
reference:
    if (parse_request_py == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_wire was not called");
        return NULL;
    }
    return refer(parse_request_py, args, nargs);
}

static PyObject *may_be_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(may_be_request_py);
    if (nargs != 1 || !PyBytes_CheckExact(args[0]) || may_be_request_py == NULL) {
        if (may_be_request_py == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_wire was not called");
            return NULL;
        }
        return refer(may_be_request_py, args, nargs);
    }
    return PyBool_FromLong(udpt_may_be_request((const uint8_t *)PyBytes_AS_STRING(args[0]),
                                               (size_t)PyBytes_GET_SIZE(args[0])));
}

/* -- wire: build -------------------------------------------------------------------- */

static int is_bytes_of(PyObject *value, Py_ssize_t size) {
    return PyBytes_CheckExact(value) && PyBytes_GET_SIZE(value) == size;
}

/* min(value, 2**31 - 1) as the reply's i32; -1 where struct would refuse it. */
static int saturated_i32(PyObject *value, int32_t *out) {
    if (!PyLong_Check(value))
        return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (overflow > 0 || v > I32_MAX)
        v = I32_MAX;
    else if (overflow < 0 || v < -I32_MAX - 1)
        return -1;
    *out = (int32_t)v;
    return 0;
}

static PyObject *with_header(uint32_t action, PyObject *transaction_id, Py_ssize_t extra,
                             uint8_t **rest) {
    PyObject *reply = PyBytes_FromStringAndSize(NULL, 8 + extra);
    if (reply == NULL)
        return NULL;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(reply);
    udpt_put_be32(p, action);
    memcpy(p + 4, PyBytes_AS_STRING(transaction_id), 4);
    *rest = p + 8;
    return reply;
}

static PyObject *build_connect_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(build_connect_py);
    if (nargs != 2 || !is_bytes_of(args[0], 4) || !is_bytes_of(args[1], 8))
        return refer(build_connect_py, args, nargs);
    uint8_t *rest;
    PyObject *reply = with_header(0, args[0], 8, &rest);
    if (reply != NULL)
        memcpy(rest, PyBytes_AS_STRING(args[1]), 8);
    return reply;
}

static PyObject *build_announce_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(build_announce_py);
    int32_t numbers[3];
    if (nargs != 5 || !is_bytes_of(args[0], 4) || saturated_i32(args[1], &numbers[0]) ||
        saturated_i32(args[2], &numbers[1]) || saturated_i32(args[3], &numbers[2]) ||
        !PyBytes_CheckExact(args[4]))
        return refer(build_announce_py, args, nargs);
    Py_ssize_t peers = PyBytes_GET_SIZE(args[4]);
    uint8_t *rest;
    PyObject *reply = with_header(1, args[0], 12 + peers, &rest);
    if (reply == NULL)
        return NULL;
    for (int i = 0; i < 3; i++)
        udpt_put_be32(rest + 4 * i, (uint32_t)numbers[i]);
    memcpy(rest + 12, PyBytes_AS_STRING(args[4]), (size_t)peers);
    return reply;
}

static PyObject *build_scrape_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(build_scrape_py);
    if (nargs != 2 || !is_bytes_of(args[0], 4))
        return refer(build_scrape_py, args, nargs);
    /* A list or tuple is read in place; any other iterable is read once, into a list,
     * which the reference is given in its place if it must decide. */
    PyObject *entries = PySequence_Fast(args[1], "entries must be iterable");
    if (entries == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(entries);
    PyObject **items = PySequence_Fast_ITEMS(entries);
    uint8_t *rest;
    PyObject *reply = with_header(2, args[0], 12 * count, &rest);
    if (reply == NULL) {
        Py_DECREF(entries);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *entry = items[i];
        int32_t numbers[3];
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 3 ||
            saturated_i32(PyTuple_GET_ITEM(entry, 0), &numbers[0]) ||
            saturated_i32(PyTuple_GET_ITEM(entry, 1), &numbers[1]) ||
            saturated_i32(PyTuple_GET_ITEM(entry, 2), &numbers[2])) {
            Py_DECREF(reply);
            PyObject *again[2] = {args[0], entries};
            PyObject *result = refer(build_scrape_py, again, 2);
            Py_DECREF(entries);
            return result;
        }
        for (int j = 0; j < 3; j++)
            udpt_put_be32(rest + 12 * i + 4 * j, (uint32_t)numbers[j]);
    }
    Py_DECREF(entries);
    return reply;
}

static PyObject *build_error_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(build_error_py);
    if (nargs != 2 || !is_bytes_of(args[0], 4) || !PyUnicode_CheckExact(args[1]))
        return refer(build_error_py, args, nargs);
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(args[1], &size);
    if (text == NULL) { /* lone surrogates: the reference raises UnicodeEncodeError */
        PyErr_Clear();
        return refer(build_error_py, args, nargs);
    }
    if (size > 64) { /* wire.MAX_ERROR_MESSAGE_BYTES, cut on a character boundary */
        size = 64;
        while (size > 0 && ((uint8_t)text[size] & 0xC0) == 0x80)
            size--;
    }
    uint8_t *rest;
    PyObject *reply = with_header(3, args[0], size, &rest);
    if (reply != NULL)
        memcpy(rest, text, (size_t)size);
    return reply;
}

/* -- per-event records -------------------------------------------------------------- */

static PyObject *bind_codec(PyObject *self, PyObject *args) {
    PyObject *cls, *members, *error, *encode, *decode;
    if (!PyArg_ParseTuple(args, "OOOOO", &cls, &members, &error, &encode, &decode))
        return NULL;
    if (check_tuple_class(cls))
        return NULL;
    if (!PyTuple_CheckExact(members) || PyTuple_GET_SIZE(members) != 4) {
        PyErr_SetString(PyExc_TypeError, "expected the four AnnounceEvent members");
        return NULL;
    }
    keep((PyObject **)&AnnounceAccepted, cls);
    keep(&announce_events, members);
    keep(&DecodeError, error);
    keep(&encode_event_py, encode);
    keep(&decode_event_py, decode);
    Py_RETURN_NONE;
}

/* The fields of an AnnounceAccepted the compiled encoders take: the ranges of its
 * per-event layout, every bytes field exact and of its size. */
typedef struct {
    int64_t at_ms, uploaded, downloaded, left;
    PyObject *info_hash, *ip, *peer_id; /* borrowed */
    uint16_t port;
    uint32_t key;
    uint8_t event;
} announce_fields;

static int read_announce(PyObject *event, announce_fields *f) {
    PyObject **items = ((PyTupleObject *)event)->ob_item;
    int64_t port, key, code;
    if (PyTuple_GET_SIZE(event) != 10 || as_i64(items[0], &f->at_ms) ||
        !is_bytes_of(items[1], 20) || !PyBytes_CheckExact(items[2]) ||
        (PyBytes_GET_SIZE(items[2]) != 4 && PyBytes_GET_SIZE(items[2]) != 16) ||
        as_i64(items[3], &port) || port < 0 || port > 65535 || !is_bytes_of(items[4], 20) ||
        as_i64(items[5], &key) || key < 0 || key > 0xFFFFFFFFLL || as_i64(items[6], &code) ||
        code < 0 || code > 3 || as_i64(items[7], &f->uploaded) ||
        as_i64(items[8], &f->downloaded) || as_i64(items[9], &f->left))
        return -1;
    f->info_hash = items[1];
    f->ip = items[2];
    f->peer_id = items[4];
    f->port = (uint16_t)port;
    f->key = (uint32_t)key;
    f->event = (uint8_t)code;
    return 0;
}

static PyObject *encode_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(encode_event_py);
    announce_fields f;
    if (nargs != 1 || AnnounceAccepted == NULL || Py_TYPE(args[0]) != AnnounceAccepted ||
        read_announce(args[0], &f)) {
        if (encode_event_py == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_codec was not called");
            return NULL;
        }
        return refer(encode_event_py, args, nargs);
    }
    Py_ssize_t ip_size = PyBytes_GET_SIZE(f.ip);
    int narrow = f.uploaded >= 0 && f.uploaded <= 0xFFFFFFFFLL && f.downloaded >= 0 &&
                 f.downloaded <= 0xFFFFFFFFLL && f.left >= 0 && f.left <= 0xFFFFFFFFLL;
    PyObject *record = PyBytes_FromStringAndSize(NULL, 56 + ip_size + (narrow ? 12 : 24));
    if (record == NULL)
        return NULL;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(record);
    p[0] = ip_size == 4 ? (narrow ? 0x01 : 0x04) : (narrow ? 0x02 : 0x05);
    udpt_put_be64(p + 1, (uint64_t)f.at_ms);
    memcpy(p + 9, PyBytes_AS_STRING(f.info_hash), 20);
    memcpy(p + 29, PyBytes_AS_STRING(f.ip), (size_t)ip_size);
    p += 29 + ip_size;
    p[0] = (uint8_t)(f.port >> 8);
    p[1] = (uint8_t)f.port;
    memcpy(p + 2, PyBytes_AS_STRING(f.peer_id), 20);
    udpt_put_be32(p + 22, f.key);
    p[26] = f.event;
    p += 27;
    if (narrow) {
        udpt_put_be32(p, (uint32_t)f.uploaded);
        udpt_put_be32(p + 4, (uint32_t)f.downloaded);
        udpt_put_be32(p + 8, (uint32_t)f.left);
    } else {
        udpt_put_be64(p, (uint64_t)f.uploaded);
        udpt_put_be64(p + 8, (uint64_t)f.downloaded);
        udpt_put_be64(p + 16, (uint64_t)f.left);
    }
    return record;
}

static PyObject *announce_value(const udpt_announce_record *r) {
    PyObject *event = PyTuple_GET_ITEM(announce_events, r->event);
    Py_INCREF(event);
    PyObject *items[10] = {
        PyLong_FromLongLong(r->at_ms),      bytes_of(r->info_hash, 20),
        bytes_of(r->ip, r->ip_size),        PyLong_FromLong(r->port),
        bytes_of(r->peer_id, 20),           PyLong_FromUnsignedLong(r->key),
        event,                              PyLong_FromLongLong(r->uploaded),
        PyLong_FromLongLong(r->downloaded), PyLong_FromLongLong(r->left),
    };
    return make_record(AnnounceAccepted, items, 10);
}

static PyObject *decode_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(decode_event_py);
    if (nargs != 1 || AnnounceAccepted == NULL || !PyObject_CheckBuffer(args[0]))
        goto reference;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        goto reference;
    }
    udpt_announce_record record;
    int readable = udpt_read_announce_record(view.buf, (size_t)view.len, &record) == 0;
    PyObject *event = readable ? announce_value(&record) : NULL;
    PyBuffer_Release(&view);
    if (readable)
        return event;
reference:
    if (decode_event_py == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_codec was not called");
        return NULL;
    }
    return refer(decode_event_py, args, nargs);
}

/* -- batches: encode ---------------------------------------------------------------- */

static PyObject *bind_batch(PyObject *self, PyObject *args) {
    PyObject *encode_event_selected, *decode_event_selected, *encode, *decode;
    if (!PyArg_ParseTuple(args, "OOOO", &encode_event_selected, &decode_event_selected,
                          &encode, &decode))
        return NULL;
    udpt_batch_bind(encode_event_selected, decode_event_selected);
    keep(&encode_batch_py, encode);
    keep(&decode_batch_py, decode);
    Py_RETURN_NONE;
}

/* The records of the events that are not accepted announces, in order (new references),
 * and kinds[i] = 1 for each; NULL with an exception set. */
static PyObject **other_records(PyObject **items, size_t count, size_t others, uint8_t *kinds) {
    PyObject **records = PyMem_Calloc(others ? others : 1, sizeof(PyObject *));
    if (records == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    size_t next = 0;
    for (size_t i = 0; i < count; i++) {
        kinds[i] = Py_TYPE(items[i]) != AnnounceAccepted;
        if (!kinds[i])
            continue;
        PyObject *record = PyObject_CallOneArg(udpt_encode_event_fn(), items[i]);
        if (record != NULL && !PyBytes_Check(record)) {
            Py_CLEAR(record);
            PyErr_SetString(PyExc_TypeError, "encode_event gave no bytes");
        }
        if (record == NULL) {
            for (size_t j = 0; j < next; j++)
                Py_DECREF(records[j]);
            PyMem_Free(records);
            return NULL;
        }
        records[next++] = record;
    }
    return records;
}

/* The announce read_announce took, as the encoder takes it (pointing into its bytes). */
static void pack(const announce_fields *f, udpt_packed_announce *out) {
    out->at_ms = f->at_ms;
    out->uploaded = f->uploaded;
    out->downloaded = f->downloaded;
    out->left = f->left;
    out->hash_ref = 0;
    out->info_hash = (const uint8_t *)PyBytes_AS_STRING(f->info_hash);
    out->ip = (const uint8_t *)PyBytes_AS_STRING(f->ip);
    out->ip_size = (uint8_t)PyBytes_GET_SIZE(f->ip);
    out->peer_id = (const uint8_t *)PyBytes_AS_STRING(f->peer_id);
    out->key = f->key;
    out->port = f->port;
    out->event = f->event;
}

/* Each announce's number from ``intern`` (batch.HashIntern), in order. */
static int intern_all(PyObject *intern, const announce_fields *fields,
                      udpt_packed_announce *packed, size_t n) {
    for (size_t i = 0; i < n; i++) {
        PyObject *number = PyObject_CallOneArg(intern, fields[i].info_hash);
        if (number == NULL)
            return -1;
        int bad = as_i64(number, &packed[i].hash_ref);
        Py_DECREF(number);
        if (bad) {
            PyErr_SetString(PyExc_ValueError, "intern gave a number beyond 64 signed bits");
            return -1;
        }
    }
    return 0;
}

static PyObject *encode_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(encode_batch_py);
    if (encode_batch_py == NULL || AnnounceAccepted == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_batch was not called");
        return NULL;
    }
    PyObject *intern = nargs >= 2 ? args[1] : Py_None;
    if (nargs < 1 || nargs > 3 || !(PyList_CheckExact(args[0]) || PyTuple_CheckExact(args[0])) ||
        (nargs == 3 && !PyBool_Check(args[2])))
        return refer(encode_batch_py, args, nargs);
    int compress = nargs < 3 || args[2] == Py_True;
    PyObject *events = args[0];
    Py_ssize_t count = PySequence_Fast_GET_SIZE(events);
    PyObject **items = PySequence_Fast_ITEMS(events);
    if (count == 0 || count > 0xFFFFFFFFLL)
        return refer(encode_batch_py, args, nargs);

    PyObject *result = NULL, **others = NULL;
    announce_fields *fields = PyMem_Malloc(sizeof(announce_fields) * (size_t)count);
    udpt_packed_announce *packed = PyMem_Malloc(sizeof(udpt_packed_announce) * (size_t)count);
    uint8_t *kinds = PyMem_Malloc((size_t)count);
    if (fields == NULL || packed == NULL || kinds == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Every announce must be one the compiled path takes, before any callback runs. */
    size_t n = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (Py_TYPE(items[i]) != AnnounceAccepted)
            continue;
        if (read_announce(items[i], &fields[n])) {
            result = refer(encode_batch_py, args, nargs);
            goto done;
        }
        pack(&fields[n], &packed[n]);
        n++;
    }
    if ((others = other_records(items, (size_t)count, (size_t)count - n, kinds)) == NULL)
        goto done;
    if (intern != Py_None && intern_all(intern, fields, packed, n))
        goto done;
    int64_t last_ms;
    PyObject *last = items[count - 1];
    if (Py_TYPE(last) == AnnounceAccepted) {
        last_ms = packed[n - 1].at_ms;
    } else {
        PyObject *at = PyObject_GetAttrString(last, "at_ms");
        if (at == NULL)
            goto done;
        int bad = as_i64(at, &last_ms);
        Py_DECREF(at);
        if (bad) { /* encode_event took it, so this is not reached; the reference decides */
            result = refer(encode_batch_py, args, nargs);
            goto done;
        }
    }
    result = udpt_encode_value(packed, n, others, kinds, (size_t)count, intern != Py_None,
                               last_ms, compress);
done:
    if (others != NULL)
        for (size_t i = 0; i < (size_t)count - n; i++)
            Py_DECREF(others[i]);
    PyMem_Free(others);
    PyMem_Free(fields);
    PyMem_Free(packed);
    PyMem_Free(kinds);
    return result;
}

/* -- batches: decode ---------------------------------------------------------------- */

static PyObject *column_value(const udpt_column *column, size_t i) {
    uint64_t raw = udpt_column_raw(column, i);
    return column->is_signed ? PyLong_FromLongLong((int64_t)raw)
                             : PyLong_FromUnsignedLongLong(raw);
}

/* `list` = [expression for i in range(count)]; on a failure, goto done. */
#define BUILD_LIST(list, count, expression)                                                \
    do {                                                                                   \
        list = PyList_New((Py_ssize_t)(count));                                            \
        if (list == NULL)                                                                  \
            goto done;                                                                     \
        for (size_t i = 0; i < (size_t)(count); i++) {                                     \
            PyObject *item_ = (expression);                                                \
            if (item_ == NULL)                                                             \
                goto done;                                                                 \
            PyList_SET_ITEM(list, (Py_ssize_t)i, item_);                                   \
        }                                                                                  \
    } while (0)

static PyObject *unshuffled(const uint8_t *blob, size_t count, size_t width, size_t i) {
    PyObject *item = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)width);
    if (item != NULL)
        udpt_unshuffle_item(blob, count, width, i, (uint8_t *)PyBytes_AS_STRING(item));
    return item;
}

static PyObject *borrowed(PyObject *item) {
    Py_INCREF(item);
    return item;
}

/* table[ref]: the batch's own table or the log's dictionary (a HashList or a list, or
 * the part of it an archive file holds); the caller checked ref < len(table). */
static PyObject *info_hash_at(PyObject *table, uint64_t ref) {
    if (PyList_CheckExact(table) || udpt_is_hash_list(table))
        return udpt_dictionary_item(table, (Py_ssize_t)ref);
    PyObject *number = PyLong_FromUnsignedLongLong(ref);
    PyObject *info_hash = number ? PyObject_GetItem(table, number) : NULL;
    Py_XDECREF(number);
    return info_hash;
}

/* The announces of a scanned batch; NULL with an exception set, or NULL without one
 * when the reference must decide. */
static PyObject *decode_announces(const udpt_batch *b, PyObject *hashes) {
    size_t n = b->announces, p = b->peers, v6 = b->v6_count;
    PyObject *result = NULL, *table = NULL, *ips = NULL, *ports = NULL, *ids = NULL,
             *keys = NULL;
    if (b->hash_mode == 0) {
        BUILD_LIST(table, b->local_count, bytes_of(b->local_hashes + 20 * i, 20));
    } else {
        Py_ssize_t known = PyObject_Size(hashes);
        if (known < 0 || b->max_hash_ref >= (uint64_t)known) {
            PyErr_Clear();
            goto done;
        }
        table = hashes;
        Py_INCREF(table);
    }
    size_t next4 = 0, next6 = 0;
    BUILD_LIST(ips, p,
               b->families[i] ? unshuffled(b->v6, v6, 16, next6++)
                              : unshuffled(b->v4, p - v6, 4, next4++));
    BUILD_LIST(ports, p, column_value(&b->ports, i));
    BUILD_LIST(ids, p, unshuffled(b->peer_ids, p, 20, i));
    BUILD_LIST(keys, p, column_value(&b->keys, i));

    int64_t at = b->first_ms;
    result = PyList_New((Py_ssize_t)n);
    if (result == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (b->times_absolute)
            at = (int64_t)udpt_column_raw(&b->times, i);
        else
            at += (int64_t)udpt_column_raw(&b->times, i); /* the scan checked the sum */
        size_t peer = b->peer_identity ? i : (size_t)udpt_column_raw(&b->peer_refs, i);
        PyObject *fields[10] = {
            PyLong_FromLongLong(at),
            info_hash_at(table, udpt_column_raw(&b->hash_refs, i)),
            borrowed(PyList_GET_ITEM(ips, peer)),
            borrowed(PyList_GET_ITEM(ports, peer)),
            borrowed(PyList_GET_ITEM(ids, peer)),
            borrowed(PyList_GET_ITEM(keys, peer)),
            borrowed(PyTuple_GET_ITEM(announce_events, udpt_column_raw(&b->events, i))),
            column_value(&b->uploaded, i),
            column_value(&b->downloaded, i),
            column_value(&b->left, i),
        };
        PyObject *event = make_record(AnnounceAccepted, fields, 10);
        if (event == NULL)
            goto done;
        PyList_SET_ITEM(result, (Py_ssize_t)i, event);
    }
    Py_XDECREF(table);
    Py_XDECREF(ips);
    Py_XDECREF(ports);
    Py_XDECREF(ids);
    Py_XDECREF(keys);
    return result;
done:
    Py_XDECREF(result);
    Py_XDECREF(table);
    Py_XDECREF(ips);
    Py_XDECREF(ports);
    Py_XDECREF(ids);
    Py_XDECREF(keys);
    return NULL;
}

/* The batch's events that are not announces, in order, or NULL (an exception may be set). */
static PyObject *other_events(const uint8_t *body, const udpt_batch *b, uint32_t count) {
    size_t others_count = count - b->announces, offset = b->others_offset;
    PyObject *others = PyList_New((Py_ssize_t)others_count);
    for (size_t i = 0; others != NULL && i < others_count; i++) {
        const uint8_t *record;
        size_t record_size;
        udpt_next_other(body, &offset, &record, &record_size);
        PyObject *raw = bytes_of(record, record_size);
        PyObject *event = raw ? PyObject_CallOneArg(udpt_decode_event_fn(), raw) : NULL;
        Py_XDECREF(raw);
        if (event == NULL)
            Py_CLEAR(others);
        else
            PyList_SET_ITEM(others, (Py_ssize_t)i, event);
    }
    return others;
}

/* The events of a batch body; NULL with an exception, or NULL without one when the
 * reference must decide (the layout is not one the encoder writes). */
static PyObject *decode_body(const uint8_t *body, size_t size, uint32_t count,
                             PyObject *hashes) {
    udpt_batch b;
    if (udpt_scan_batch(body, size, count, &b))
        return NULL;
    size_t n = b.announces;
    PyObject *others = NULL, *announces = NULL, *events = NULL;
    if (count > n && (others = other_events(body, &b, count)) == NULL)
        return NULL;
    if (n) {
        announces = decode_announces(&b, hashes);
        if (announces == NULL) {
            Py_XDECREF(others);
            return NULL;
        }
    }
    if (others == NULL)
        return announces;
    if (announces == NULL)
        return others;
    events = PyList_New(count);
    if (events != NULL) {
        size_t next_announce = 0, next_other = 0;
        for (size_t i = 0; i < count; i++) {
            PyObject *event = b.kinds[i] ? PyList_GET_ITEM(others, next_other++)
                                         : PyList_GET_ITEM(announces, next_announce++);
            Py_INCREF(event);
            PyList_SET_ITEM(events, (Py_ssize_t)i, event);
        }
    }
    Py_DECREF(others);
    Py_DECREF(announces);
    return events;
}

static PyObject *decode_compiled(PyObject *value, PyObject *hashes) {
    PyObject *owner;
    const uint8_t *body;
    size_t size;
    uint32_t count;
    if (!udpt_batch_body(value, &owner, &body, &size, &count))
        return NULL;
    PyObject *events = decode_body(body, size, count, hashes);
    Py_XDECREF(owner);
    return events;
}

static int parse_decode_args(PyObject *const *args, Py_ssize_t nargs, PyObject **hashes) {
    static PyObject *no_hashes;
    if (no_hashes == NULL && (no_hashes = PyTuple_New(0)) == NULL)
        return -1;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "decode_batch(value, hashes=())");
        return -1;
    }
    *hashes = nargs == 2 ? args[1] : no_hashes;
    return 0;
}

static PyObject *decode_batch(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(decode_batch_py);
    PyObject *hashes;
    if (decode_batch_py == NULL || AnnounceAccepted == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_batch was not called");
        return NULL;
    }
    if (parse_decode_args(args, nargs, &hashes))
        return NULL;
    PyObject *events = decode_compiled(args[0], hashes);
    if (events != NULL)
        return events;
    PyErr_Clear(); /* whatever went wrong, the reference says what and how */
    return refer(decode_batch_py, args, nargs);
}

static PyObject *decode_batch_compiled_only(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames) {
    KEYWORDS_TO(NULL);
    PyObject *hashes;
    if (parse_decode_args(args, nargs, &hashes))
        return NULL;
    PyObject *events = decode_compiled(args[0], hashes);
    if (events == NULL && !PyErr_Occurred())
        PyErr_SetString(DecodeError, "not a layout the compiled decoder reads");
    return events;
}

/* -- batches: decoded and folded in one pass ---------------------------------------- */

/* Where an announce's peer is in a scanned batch, for reading its record (update_at). */
typedef struct {
    const udpt_batch *b;
    size_t announce, peer;
    int64_t at_ms;
    uint8_t peer_id[20];
} columns_at;

static int signed_at(const udpt_column *column, size_t i, int64_t *out) {
    uint64_t raw = udpt_column_raw(column, i);
    if (!column->is_signed && raw > (uint64_t)INT64_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a value of the record does not fit 64 bits");
        return -1;
    }
    *out = (int64_t)raw;
    return 0;
}

/* The peer's record, as udpt_peer_update_of would read the decoded AnnounceAccepted. */
static int update_at(void *context, udpt_peer_update *u) {
    columns_at *c = context;
    const udpt_batch *b = c->b;
    int64_t key;
    if (signed_at(&b->keys, c->peer, &key) < 0 || signed_at(&b->uploaded, c->announce,
                                                              &u->uploaded) < 0 ||
        signed_at(&b->downloaded, c->announce, &u->downloaded) < 0 ||
        signed_at(&b->left, c->announce, &u->left) < 0)
        return -1;
    if (key < 0 || key > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "announce() field out of range");
        return -1;
    }
    u->key = (uint32_t)key;
    u->at_ms = c->at_ms;
    u->event = (int64_t)udpt_column_raw(&b->events, c->announce);
    udpt_unshuffle_item(b->peer_ids, b->peers, 20, c->peer, c->peer_id);
    u->peer_id = c->peer_id;
    u->peer_id_size = 20;
    return 0;
}

/* For each peer of a batch with announces, its place among the peers of its family. */
static uint32_t *family_positions(const udpt_batch *b) {
    uint32_t *positions = PyMem_Malloc(b->peers * sizeof *positions);
    if (positions == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    uint32_t next[2] = {0, 0};
    for (size_t i = 0; i < b->peers; i++)
        positions[i] = next[b->families[i] != 0]++;
    return positions;
}

/* A failed announce, told as apply_failed tells one: failed(seq, event, error), the event
 * decoded the reference's way. The error is the one pending; NULL if telling failed. */
static PyObject *tell_failure(PyObject *failed, long long seq, const uint8_t *body, size_t size,
                              uint32_t count, size_t index, PyObject *hashes) {
    PyObject *value = udpt_take_error();
    PyObject *events = decode_body(body, size, count, hashes);
    PyObject *told = NULL;
    if (events != NULL && value != NULL)
        told = PyObject_CallFunction(failed, "LOO", seq, PyList_GET_ITEM(events, index), value);
    else if (!PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "a failed announce could not be decoded again");
    Py_XDECREF(events);
    Py_XDECREF(value);
    return told;
}

/* fold_batch(state, first_seq, value, hashes, start, stop, apply_other, failed): the events
 * start..stop-1 of a stored batch value (event i is seq first_seq + i), applied to state
 * as history/apply.apply_batch applies the decoded events: announces straight from the
 * batch's columns (no event object made), each other event by apply_other(seq, event);
 * an announce that fails is passed to failed(seq, event, error). True, or False when the
 * value is not in a layout the compiled decoder reads (nothing is folded then: the caller
 * decodes it the reference's way, which says what is wrong). */
static PyObject *fold_batch(PyObject *self, PyObject *args) {
    PyObject *state, *value, *hashes, *apply_other, *failed;
    long long first_seq;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OLOOnnOO:fold_batch", &state, &first_seq, &value, &hashes,
                          &start, &stop, &apply_other, &failed))
        return NULL;
    if (AnnounceAccepted == NULL || udpt_decode_event_fn() == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_batch was not called");
        return NULL;
    }
    PyObject *owner, *others = NULL, *table = NULL, *result = NULL, *at_object = NULL;
    uint32_t *positions = NULL;
    const uint8_t *body;
    size_t size;
    uint32_t count;
    udpt_batch b;
    udpt_fold_target t = {0};
    if (!udpt_batch_body(value, &owner, &body, &size, &count) ||
        udpt_scan_batch(body, size, count, &b) != 0)
        goto not_ours;
    if (b.announces && b.hash_mode == 0) {
        BUILD_LIST(table, b.local_count, bytes_of(b.local_hashes + 20 * i, 20));
    } else if (b.announces) {
        Py_ssize_t known = PyObject_Size(hashes);
        if (known < 0 || b.max_hash_ref >= (uint64_t)known)
            goto not_ours;
        table = Py_NewRef(hashes);
    }
    if (count > b.announces && (others = other_events(body, &b, count)) == NULL)
        goto not_ours;
    if ((b.announces && (positions = family_positions(&b)) == NULL) ||
        udpt_fold_begin(&t, state) < 0)
        goto done;
    size_t next_announce = 0, next_other = 0;
    int64_t at = b.first_ms;
    columns_at c = {.b = &b, .at_ms = INT64_MIN};
    for (size_t i = 0; i < count; i++) {
        long long seq = first_seq + (long long)i;
        int in_range = (Py_ssize_t)i >= start && (Py_ssize_t)i < stop;
        if (b.kinds ? b.kinds[i] : b.announces == 0) {
            PyObject *event = PyList_GET_ITEM(others, next_other++);
            if (!in_range)
                continue;
            if (udpt_fold_count(&t) < 0)
                goto done;
            PyObject *applied = PyObject_CallFunction(apply_other, "LO", seq, event);
            if (applied == NULL)
                goto done;
            Py_DECREF(applied);
            if (udpt_fold_resync(&t) < 0)
                goto done;
            continue;
        }
        size_t announce = next_announce++;
        at = b.times_absolute ? (int64_t)udpt_column_raw(&b.times, announce)
                              : at + (int64_t)udpt_column_raw(&b.times, announce);
        if (!in_range)
            continue;
        if (at != c.at_ms || at_object == NULL) {
            Py_XSETREF(at_object, PyLong_FromLongLong(at));
            if (at_object == NULL)
                goto done;
            c.at_ms = at;
        }
        c.announce = announce;
        c.peer = b.peer_identity ? announce : (size_t)udpt_column_raw(&b.peer_refs, announce);
        uint8_t ip[16];
        int v6 = b.families[c.peer] != 0;
        if (v6)
            udpt_unshuffle_item(b.v6, b.v6_count, 16, positions[c.peer], ip);
        else
            udpt_unshuffle_item(b.v4, b.peers - b.v6_count, 4, positions[c.peer], ip);
        uint64_t port = udpt_column_raw(&b.ports, c.peer);
        /* from the packed dictionary, the hash's bytes: the fold makes an object of them
         * only when it creates or files the torrent */
        uint64_t ref = udpt_column_raw(&b.hash_refs, announce);
        const unsigned char *raw = NULL;
        Py_ssize_t raw_size = 0;
        PyObject *info_hash = NULL;
        if (!udpt_is_hash_list(table) ||
            !udpt_dictionary_entry(table, (Py_ssize_t)ref, &raw, &raw_size) || raw_size != 20) {
            raw = NULL;
            if ((info_hash = info_hash_at(table, ref)) == NULL)
                goto done;
        }
        udpt_announce_at a = {
            .at_ms = at_object,
            .info_hash = info_hash,
            .hash = raw,
            .ip = ip,
            .ip_size = v6 ? 16 : 4,
            .port = port > 65535 ? -1 : (long)port,
            .event = (long)udpt_column_raw(&b.events, announce),
        };
        int folded = udpt_fold_next(&t, seq) == 0 && udpt_fold_announce(&t, &a, update_at, &c) == 0;
        Py_XDECREF(info_hash);
        if (folded) {
            udpt_fold_done(&t, seq);
            continue;
        }
        if (udpt_fold_count(&t) < 0)
            goto done;
        PyObject *told = tell_failure(failed, seq, body, size, count, i, hashes);
        if (told == NULL)
            goto done;
        Py_DECREF(told);
        if (udpt_fold_resync(&t) < 0)
            goto done;
    }
    if (udpt_fold_count(&t) == 0)
        result = Py_NewRef(Py_True);
    goto done;
not_ours:
    PyErr_Clear(); /* the reference says what is wrong with the value */
    result = Py_NewRef(Py_False);
done:
    udpt_fold_end(&t);
    PyMem_Free(positions);
    Py_XDECREF(at_object);
    Py_XDECREF(table);
    Py_XDECREF(others);
    Py_XDECREF(owner);
    return result;
}

/* -- the module --------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"bind_wire", bind_wire, METH_VARARGS, "Hand over udpt.wire's classes and pure functions."},
    {"bind_codec", bind_codec, METH_VARARGS, "Hand over udpt.events.codec's classes and functions."},
    {"bind_batch", bind_batch, METH_VARARGS, "Hand over udpt.events.batch's functions."},
    {"parse_request", (PyCFunction)(void (*)(void))parse_request, METH_FASTCALL | METH_KEYWORDS,
     "wire.parse_request"},
    {"may_be_request", (PyCFunction)(void (*)(void))may_be_request, METH_FASTCALL | METH_KEYWORDS,
     "wire.may_be_request"},
    {"build_connect_response", (PyCFunction)(void (*)(void))build_connect_response,
     METH_FASTCALL | METH_KEYWORDS, "wire.build_connect_response"},
    {"build_announce_response", (PyCFunction)(void (*)(void))build_announce_response,
     METH_FASTCALL | METH_KEYWORDS, "wire.build_announce_response"},
    {"build_scrape_response", (PyCFunction)(void (*)(void))build_scrape_response,
     METH_FASTCALL | METH_KEYWORDS, "wire.build_scrape_response"},
    {"build_error_response", (PyCFunction)(void (*)(void))build_error_response, METH_FASTCALL | METH_KEYWORDS,
     "wire.build_error_response"},
    {"encode_event", (PyCFunction)(void (*)(void))encode_event, METH_FASTCALL | METH_KEYWORDS,
     "codec.encode_event"},
    {"decode_event", (PyCFunction)(void (*)(void))decode_event, METH_FASTCALL | METH_KEYWORDS,
     "codec.decode_event"},
    {"encode_batch", (PyCFunction)(void (*)(void))encode_batch, METH_FASTCALL | METH_KEYWORDS,
     "batch.encode_batch"},
    {"decode_batch", (PyCFunction)(void (*)(void))decode_batch, METH_FASTCALL | METH_KEYWORDS,
     "batch.decode_batch"},
    {"decode_batch_compiled_only", (PyCFunction)(void (*)(void))decode_batch_compiled_only,
     METH_FASTCALL | METH_KEYWORDS,
     "decode_batch without handing unusual layouts to the reference (for tests)."},
    {"fold_batch", fold_batch, METH_VARARGS,
     "history.apply.apply_batch of a stored batch value, decoded and folded in one pass."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "udpt._core", "udpt's compiled codecs and swarm (see udpt/core.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (udpt_batch_init() < 0)
        return NULL;
    invalid_port_text = PyUnicode_InternFromString("invalid port");
    no_hashes_text = PyUnicode_InternFromString("no info hashes");
    if (invalid_port_text == NULL || no_hashes_text == NULL)
        return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created != NULL && (udpt_swarm_register(created) < 0 || udpt_lane_register(created) < 0 ||
                            udpt_recut_register(created) < 0 ||
                            udpt_hash_list_register(created) < 0 ||
                            udpt_hash_index_register(created) < 0))
        Py_CLEAR(created);
    return created;
}
