/* udpt._core.StoredRun: the events of a run of stored batch values, held as the batch
 * encoder takes them, so that compaction (udpt/events/maintenance.py) can cut them into
 * other values without making a Python object per event and field.
 *
 * The reference is batch.StoredRunPy: decode every value, then encode_batch each slice
 * with the log's numbers. stored_run() takes only what it reads exactly as the reference
 * does (batch layouts the encoder writes, hashes the log has numbered); for anything else
 * it returns None and the caller takes the reference, which then decodes, or raises,
 * as it always did.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "_batch.h"
#include "_codec.h"
#include "_hashindex.h"
#include "_hashlist.h"
#include "_recut.h"

#define MAX_RUN_EVENTS (1u << 24) /* far above a compaction run; a damaged count goes back */
#define HASH_SIZE 20
#define PEER_ID_SIZE 20
#define IP_ROOM 16
#define BYTES_PER_ANNOUNCE (HASH_SIZE + IP_ROOM + PEER_ID_SIZE)

typedef struct {
    PyObject_HEAD
    size_t count;
    uint8_t *kinds;                 /* count bytes, 1 = an "other" */
    size_t *announces_before;       /* count + 1: announces among events [0, i) */
    udpt_packed_announce *packed;   /* pointing into bytes */
    uint8_t *bytes;                 /* BYTES_PER_ANNOUNCE per announce */
    PyObject **records;             /* the others' records, as encode_event gives them; NULL
                                     * past those taken so far */
    int64_t *other_ms;
} StoredRunObject;

static void StoredRun_dealloc(StoredRunObject *self) {
    for (size_t i = 0; self->records != NULL && i < self->count; i++)
        Py_XDECREF(self->records[i]);
    PyMem_Free(self->records);
    PyMem_Free(self->other_ms);
    PyMem_Free(self->kinds);
    PyMem_Free(self->announces_before);
    PyMem_Free(self->packed);
    PyMem_Free(self->bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t StoredRun_len(StoredRunObject *self) {
    return (Py_ssize_t)self->count;
}

static PyObject *StoredRun_encode(StoredRunObject *self, PyObject *const *args,
                                  Py_ssize_t nargs) {
    Py_ssize_t start, count;
    if (nargs != 2 || (start = PyLong_AsSsize_t(args[0])) == -1 ||
        (count = PyLong_AsSsize_t(args[1])) == -1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "encode(start, count)");
        return NULL;
    }
    if (start < 0 || count < 1 || (size_t)start + (size_t)count > self->count) {
        PyErr_SetString(PyExc_ValueError, "not a slice of the run");
        return NULL;
    }
    size_t first = (size_t)start, end = first + (size_t)count, last = end - 1;
    size_t a0 = self->announces_before[first], n = self->announces_before[end] - a0;
    int64_t last_ms = self->kinds[last] ? self->other_ms[last - self->announces_before[last]]
                                        : self->packed[self->announces_before[end] - 1].at_ms;
    return udpt_encode_value(self->packed + a0, n, self->records + (first - a0),
                             self->kinds + first, (size_t)count, 1, last_ms, 1);
}

static PyMethodDef StoredRun_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))StoredRun_encode, METH_FASTCALL,
     "The value of events [start, start + count), hashes numbered, compressed."},
    {NULL},
};

static PySequenceMethods StoredRun_sequence = {.sq_length = (lenfunc)StoredRun_len};

static PyTypeObject StoredRunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "udpt._core.StoredRun",
    .tp_basicsize = sizeof(StoredRunObject),
    .tp_dealloc = (destructor)StoredRun_dealloc,
    .tp_as_sequence = &StoredRun_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The events of stored batch values, to encode again in other cuts.",
    .tp_methods = StoredRun_methods,
};

/* The number `numbers` (a HashIndex, or a dict) gives `hash`: 0, or 1 when it has none or
 * it is not an int64. */
static int number_of(PyObject *numbers, const uint8_t *hash, int64_t *out) {
    PyObject *key = PyBytes_FromStringAndSize((const char *)hash, HASH_SIZE);
    if (key != NULL && udpt_is_hash_index(numbers)) {
        Py_ssize_t number;
        int found = udpt_hash_index_number(numbers, key, &number);
        Py_DECREF(key);
        *out = number;
        return found != 1;
    }
    PyObject *number = key ? PyDict_GetItemWithError(numbers, key) : NULL;
    Py_XDECREF(key);
    if (number == NULL || !PyLong_CheckExact(number))
        return 1;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(number, &overflow);
    return overflow || (*out == -1 && PyErr_Occurred());
}

/* The announces of one scanned batch into the run, from announce `at` on: 0, or 1 when
 * the reference must take the run. */
static int take_announces(StoredRunObject *run, size_t at, const udpt_batch *b,
                          PyObject *hashes, PyObject *numbers) {
    if (b->announces == 0) /* the scan fills the announce fields only when there are some */
        return 0;
    uint32_t *positions = PyMem_Malloc((b->peers ? b->peers : 1) * sizeof *positions);
    if (positions == NULL)
        return 1;
    uint32_t next[2] = {0, 0};
    for (size_t k = 0; k < b->peers; k++)
        positions[k] = next[b->families[k] != 0]++;
    int refused = b->hash_mode == 1 && b->max_hash_ref >= (uint64_t)udpt_dictionary_size(hashes);
    int64_t time = b->first_ms;
    for (size_t i = 0; !refused && i < b->announces; i++) {
        udpt_packed_announce *a = &run->packed[at + i];
        uint8_t *bytes = run->bytes + (at + i) * BYTES_PER_ANNOUNCE;
        time = b->times_absolute ? (int64_t)udpt_column_raw(&b->times, i)
                                 : time + (int64_t)udpt_column_raw(&b->times, i);
        uint64_t ref = udpt_column_raw(&b->hash_refs, i);
        if (b->hash_mode == 1) {
            const unsigned char *hash;
            Py_ssize_t size;
            refused = !udpt_dictionary_entry(hashes, (Py_ssize_t)ref, &hash, &size) ||
                      size != HASH_SIZE;
            if (!refused)
                memcpy(bytes, hash, HASH_SIZE);
            a->hash_ref = (int64_t)ref;
        } else {
            memcpy(bytes, b->local_hashes + HASH_SIZE * ref, HASH_SIZE);
            refused = number_of(numbers, bytes, &a->hash_ref);
        }
        size_t peer = b->peer_identity ? i : (size_t)udpt_column_raw(&b->peer_refs, i);
        a->ip_size = b->families[peer] ? 16 : 4;
        udpt_unshuffle_item(b->families[peer] ? b->v6 : b->v4,
                            b->families[peer] ? b->v6_count : b->peers - b->v6_count,
                            a->ip_size, positions[peer], bytes + HASH_SIZE);
        udpt_unshuffle_item(b->peer_ids, b->peers, PEER_ID_SIZE, peer,
                            bytes + HASH_SIZE + IP_ROOM);
        uint64_t up = udpt_column_raw(&b->uploaded, i), down = udpt_column_raw(&b->downloaded, i),
                 left = udpt_column_raw(&b->left, i);
        /* a 'Q' value past 64 signed bits decodes as the reference decodes it, and then
         * does not encode: the reference says so */
        refused = refused || (!b->uploaded.is_signed && up > INT64_MAX) ||
                  (!b->downloaded.is_signed && down > INT64_MAX) ||
                  (!b->left.is_signed && left > INT64_MAX);
        a->at_ms = time;
        a->info_hash = bytes;
        a->ip = bytes + HASH_SIZE;
        a->peer_id = bytes + HASH_SIZE + IP_ROOM;
        a->port = (uint16_t)udpt_column_raw(&b->ports, peer);
        a->key = (uint32_t)udpt_column_raw(&b->keys, peer);
        a->event = (uint8_t)udpt_column_raw(&b->events, i);
        a->uploaded = (int64_t)up;
        a->downloaded = (int64_t)down;
        a->left = (int64_t)left;
    }
    PyMem_Free(positions);
    PyErr_Clear();
    return refused;
}

/* The others of one scanned batch into the run, from other `at` on, each decoded and
 * encoded again (as the reference's decode then encode does): 0, or 1 to refuse. */
static int take_others(StoredRunObject *run, size_t at, const uint8_t *body,
                       const udpt_batch *b, uint32_t count) {
    size_t offset = b->others_offset;
    for (size_t i = 0; i < count - b->announces; i++) {
        const uint8_t *record;
        size_t size;
        udpt_next_other(body, &offset, &record, &size);
        PyObject *raw = PyBytes_FromStringAndSize((const char *)record, (Py_ssize_t)size);
        PyObject *event = raw ? PyObject_CallOneArg(udpt_decode_event_fn(), raw) : NULL;
        PyObject *at_ms = event ? PyObject_GetAttrString(event, "at_ms") : NULL;
        PyObject *encoded = at_ms ? PyObject_CallOneArg(udpt_encode_event_fn(), event) : NULL;
        int overflow = 0;
        long long ms = at_ms && PyLong_Check(at_ms) ? PyLong_AsLongLongAndOverflow(at_ms, &overflow)
                                                    : -1;
        int refused = encoded == NULL || !PyBytes_CheckExact(encoded) || overflow ||
                      PyErr_Occurred();
        Py_XDECREF(raw);
        Py_XDECREF(event);
        Py_XDECREF(at_ms);
        if (refused) {
            Py_XDECREF(encoded);
            PyErr_Clear();
            return 1;
        }
        run->records[at + i] = encoded;
        run->other_ms[at + i] = ms;
    }
    return 0;
}

/* Events in the values' headers; 0 when one is not a batch value or they are too many. */
static size_t header_counts(PyObject *values) {
    size_t total = 0;
    for (Py_ssize_t v = 0; v < PyList_GET_SIZE(values); v++) {
        PyObject *value = PyList_GET_ITEM(values, v);
        if (!PyBytes_CheckExact(value) || PyBytes_GET_SIZE(value) < 13)
            return 0;
        const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(value);
        if (data[0] != 0xB0 && data[0] != 0xB1)
            return 0;
        total += ((size_t)data[1] << 24) | ((size_t)data[2] << 16) | ((size_t)data[3] << 8) |
                 data[4];
        if (total > MAX_RUN_EVENTS)
            return 0;
    }
    return total;
}

/* Every value into the run: 0, or 1 when the reference must take it. */
static int take_values(StoredRunObject *run, PyObject *values, PyObject *hashes,
                       PyObject *numbers) {
    size_t event = 0, announce = 0;
    for (Py_ssize_t v = 0; v < PyList_GET_SIZE(values); v++) {
        PyObject *owner;
        const uint8_t *body;
        size_t size;
        uint32_t count;
        udpt_batch b;
        if (!udpt_batch_body(PyList_GET_ITEM(values, v), &owner, &body, &size, &count)) {
            PyErr_Clear();
            return 1;
        }
        int refused = udpt_scan_batch(body, size, count, &b) != 0 ||
                      take_announces(run, announce, &b, hashes, numbers) ||
                      take_others(run, event - announce, body, &b, count);
        for (size_t i = 0, next = 0; !refused && i < count; i++) {
            uint8_t other = b.kinds ? b.kinds[i] != 0 : b.announces == 0;
            run->kinds[event + i] = other;
            run->announces_before[event + i] = announce + next;
            next += !other;
        }
        Py_XDECREF(owner);
        if (refused)
            return 1;
        event += count;
        announce += b.announces;
    }
    run->announces_before[event] = announce;
    return 0;
}

static PyObject *stored_run(PyObject *module, PyObject *args) {
    PyObject *values, *hashes, *numbers;
    if (!PyArg_ParseTuple(args, "O!OO", &PyList_Type, &values, &hashes, &numbers) ||
        udpt_dictionary_size(hashes) < 0)
        return NULL;
    if (!PyDict_Check(numbers) && !udpt_is_hash_index(numbers)) {
        PyErr_SetString(PyExc_TypeError, "stored_run: numbers must be a HashIndex or a dict");
        return NULL;
    }
    if (udpt_decode_event_fn() == NULL || udpt_encode_event_fn() == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "udpt._core.bind_batch was not called");
        return NULL;
    }
    size_t total = header_counts(values);
    if (total == 0)
        Py_RETURN_NONE;
    StoredRunObject *run = PyObject_New(StoredRunObject, &StoredRunType);
    if (run == NULL)
        return NULL;
    run->count = total;
    run->kinds = PyMem_Malloc(total);
    run->announces_before = PyMem_Malloc((total + 1) * sizeof(size_t));
    run->packed = PyMem_Malloc(total * sizeof(udpt_packed_announce));
    run->bytes = PyMem_Malloc(total * BYTES_PER_ANNOUNCE);
    run->records = PyMem_Calloc(total, sizeof(PyObject *));
    run->other_ms = PyMem_Malloc(total * sizeof(int64_t));
    if (run->kinds == NULL || run->announces_before == NULL || run->packed == NULL ||
        run->bytes == NULL || run->records == NULL || run->other_ms == NULL) {
        Py_DECREF(run);
        return PyErr_NoMemory();
    }
    if (take_values(run, values, hashes, numbers)) {
        Py_DECREF(run);
        Py_RETURN_NONE;
    }
    return (PyObject *)run;
}

static PyMethodDef recut_functions[] = {
    {"stored_run", stored_run, METH_VARARGS,
     "stored_run(values, hashes, numbers): their StoredRun, or None for the reference."},
    {NULL},
};

int udpt_recut_register(PyObject *module) {
    if (PyModule_AddType(module, &StoredRunType) < 0)
        return -1;
    return PyModule_AddFunctions(module, recut_functions);
}
