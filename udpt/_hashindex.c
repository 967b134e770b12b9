/* udpt._core.HashIndex: the number of each info hash of the log's dictionary, compiled.
 *
 * The reference is udpt/events/hash_index.py's HashIndexPy: a number is a position in
 * the dictionary's list (EventLog._hashes), and entries appended to the list are indexed
 * at the next question. The reference keeps a dict of hash -> int, about 62 bytes an
 * info hash (a slot and an int object of its own); this keeps 4-byte positions in an
 * open-addressing table, 6 to 12 bytes an info hash. The keys stay in the dictionary (a
 * HashList, udpt/_hashlist.c, or a list), hashed by udpt/_keyhash.h's keyed hash, so one host
 * cannot make the probes long. Only exact bytes are indexed or found: info hashes are,
 * from the wire and from the log, and so no probe runs Python code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>

#include "_hashindex.h"
#include "_hashlist.h"
#include "_keyhash.h"

typedef struct {
    PyObject_HEAD
    PyObject *hashes;  /* the dictionary indexed: a HashList or a list */
    Py_ssize_t indexed; /* its first entries, indexed */
    uint32_t *slots;    /* position + 1, 0 for a free slot */
    size_t mask;        /* slots - 1; 0 before the first entry */
} HashIndexObject;

static void HashIndex_dealloc(HashIndexObject *self) {
    Py_XDECREF(self->hashes);
    free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The slot holding the entry of ``size`` bytes at ``key``, or the free slot for it. Only
 * exact bytes are indexed and found (info hashes from the wire and the log are): no
 * comparison runs Python code, so nothing can change the dictionary during a probe. */
static size_t slot_of(const HashIndexObject *self, const unsigned char *key, Py_ssize_t size) {
    size_t slot = udpt_keyed_hash(key, size) & self->mask;
    for (uint32_t held; (held = self->slots[slot]) != 0; slot = (slot + 1) & self->mask) {
        const unsigned char *data;
        Py_ssize_t length;
        if (udpt_dictionary_entry(self->hashes, held - 1, &data, &length) && length == size &&
            memcmp(data, key, (size_t)size) == 0)
            break;
    }
    return slot;
}

/* Index every position from ``from`` on; the last of equal hashes wins, as a dict built
 * from the list would have it. */
static void index_from(HashIndexObject *self, Py_ssize_t from, Py_ssize_t count) {
    for (Py_ssize_t position = from; position < count; position++) {
        const unsigned char *data;
        Py_ssize_t size;
        if (udpt_dictionary_entry(self->hashes, position, &data, &size))
            self->slots[slot_of(self, data, size)] = (uint32_t)position + 1;
    }
}

/* Index the entries appended since the last question (all of them again if the table
 * must grow, or if the list is shorter than what was indexed). */
static int catch_up(HashIndexObject *self) {
    Py_ssize_t count = udpt_dictionary_size(self->hashes);
    if (count == self->indexed)
        return 0;
    if (count >= (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "too many info hashes to index");
        return -1;
    }
    size_t slots = self->mask + 1, from = (size_t)self->indexed;
    if (self->slots == NULL || count < self->indexed || (size_t)count * 3 > slots * 2) {
        for (slots = 16; slots * 2 < (size_t)count * 3; slots <<= 1)
            ;
        uint32_t *fresh = calloc(slots, sizeof *fresh);
        if (fresh == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        free(self->slots);
        self->slots = fresh;
        self->mask = slots - 1;
        from = 0;
    }
    index_from(self, (Py_ssize_t)from, count);
    self->indexed = count;
    return 0;
}

/* ``key``'s number: 1 found, 0 not, -1 on an error. */
static int lookup(HashIndexObject *self, PyObject *key, Py_ssize_t *number) {
    if (catch_up(self) < 0)
        return -1;
    if (self->indexed == 0 || !PyBytes_CheckExact(key))
        return 0;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(key);
    *number = (Py_ssize_t)self->slots[slot_of(self, data, PyBytes_GET_SIZE(key))] - 1;
    return *number >= 0;
}

int udpt_hash_index_number(PyObject *index, PyObject *key, Py_ssize_t *number) {
    return lookup((HashIndexObject *)index, key, number);
}

static PyObject *HashIndex_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"hashes", NULL};
    PyObject *hashes;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:HashIndex", names, &hashes) ||
        udpt_dictionary_size(hashes) < 0)
        return NULL;
    HashIndexObject *self = (HashIndexObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    Py_INCREF(hashes);
    self->hashes = hashes;
    return (PyObject *)self;
}

static PyObject *HashIndex_get(HashIndexObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(info_hash, default=None)");
        return NULL;
    }
    Py_ssize_t number;
    int found = lookup(self, args[0], &number);
    if (found < 0)
        return NULL;
    if (found)
        return PyLong_FromSsize_t(number);
    PyObject *missing = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(missing);
    return missing;
}

static PyObject *HashIndex_subscript(HashIndexObject *self, PyObject *key) {
    Py_ssize_t number;
    int found = lookup(self, key, &number);
    if (found < 0)
        return NULL;
    if (!found) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return PyLong_FromSsize_t(number);
}

static Py_ssize_t HashIndex_length(HashIndexObject *self) {
    return catch_up(self) < 0 ? -1 : self->indexed;
}

static int HashIndex_contains(HashIndexObject *self, PyObject *key) {
    Py_ssize_t number;
    return lookup(self, key, &number);
}

static PyObject *HashIndex_sizeof(HashIndexObject *self, PyObject *unused) {
    size_t slots = self->slots == NULL ? 0 : self->mask + 1;
    return PyLong_FromSize_t(sizeof *self + slots * sizeof *self->slots);
}

static PyMethodDef HashIndex_methods[] = {
    {"get", (PyCFunction)(void (*)(void))HashIndex_get, METH_FASTCALL, NULL},
    {"__sizeof__", (PyCFunction)HashIndex_sizeof, METH_NOARGS, NULL},
    {NULL},
};

static PyMappingMethods HashIndex_as_mapping = {
    .mp_length = (lenfunc)HashIndex_length,
    .mp_subscript = (binaryfunc)HashIndex_subscript,
};

static PySequenceMethods HashIndex_as_sequence = {
    .sq_contains = (objobjproc)HashIndex_contains,
};

static PyTypeObject HashIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.HashIndex",
    .tp_basicsize = sizeof(HashIndexObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The number of each info hash of a list: its position; entries appended "
              "later are indexed at the next question.",
    .tp_new = HashIndex_new,
    .tp_dealloc = (destructor)HashIndex_dealloc,
    .tp_methods = HashIndex_methods,
    .tp_as_mapping = &HashIndex_as_mapping,
    .tp_as_sequence = &HashIndex_as_sequence,
};

int udpt_is_hash_index(PyObject *object) {
    return Py_IS_TYPE(object, &HashIndexType);
}

int udpt_hash_index_register(PyObject *module) {
    return PyModule_AddType(module, &HashIndexType);
}
