/* udpt._core.HashList: the log's dictionary of info hashes, packed.
 *
 * The reference is a list of bytes (EventLog._hashes with the pure core): the
 * dictionary by number, which only grows. It holds every info hash the log has ever
 * numbered, the torrents long gone included, so it grows for as long as a tracker
 * runs: a list slot and a 20-byte bytes object are 64 bytes a hash. Here the hashes are
 * 20 bytes each, back to back, in chunks of 4,096 (no chunk moves when the list grows),
 * and ``list[number]`` makes the bytes object when it is asked for.
 *
 * An entry that is not 20 bytes can only come from a damaged log; it is kept as given,
 * beside the chunks, so that a damaged dictionary reads as it would as a list.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_hashlist.h"

#define HASH_SIZE 20
#define CHUNK 4096 /* entries a chunk: 80 KiB */

typedef struct {
    PyObject_HEAD unsigned char **chunks;
    Py_ssize_t count, chunk_room;
    PyObject *odd; /* number -> the bytes of an entry that is not 20 bytes; NULL: none */
} HashListObject;

static PyTypeObject HashListType;

static inline unsigned char *slot(const HashListObject *self, Py_ssize_t i) {
    return self->chunks[i / CHUNK] + (size_t)(i % CHUNK) * HASH_SIZE;
}

/* The odd entry ``i``, borrowed, or NULL if it is a packed one. */
static PyObject *odd_entry(const HashListObject *self, Py_ssize_t i) {
    if (self->odd == NULL)
        return NULL;
    PyObject *number = PyLong_FromSsize_t(i);
    PyObject *entry = number ? PyDict_GetItemWithError(self->odd, number) : NULL;
    Py_XDECREF(number);
    if (entry == NULL && PyErr_Occurred())
        PyErr_Clear(); /* an int key fails only for memory: the zeros it packed are read */
    return entry;
}

/* Appends ``entry`` (any object with bytes in it); 0, or -1 with an exception set. */
static int append(HashListObject *self, PyObject *entry) {
    Py_buffer view;
    if (PyObject_GetBuffer(entry, &view, PyBUF_SIMPLE) < 0)
        return -1;
    int result = -1;
    Py_ssize_t i = self->count;
    if (i % CHUNK == 0) {
        if (i / CHUNK == self->chunk_room) {
            Py_ssize_t room = self->chunk_room ? self->chunk_room * 2 : 4;
            unsigned char **grown = realloc(self->chunks, (size_t)room * sizeof *grown);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            self->chunks = grown;
            self->chunk_room = room;
        }
        if ((self->chunks[i / CHUNK] = malloc((size_t)CHUNK * HASH_SIZE)) == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    if (view.len == HASH_SIZE) {
        memcpy(slot(self, i), view.buf, HASH_SIZE);
    } else {
        memset(slot(self, i), 0, HASH_SIZE);
        PyObject *number = PyLong_FromSsize_t(i);
        PyObject *kept = PyBytes_FromStringAndSize(view.buf, view.len);
        if (self->odd == NULL)
            self->odd = PyDict_New();
        int stored = number && kept && self->odd && PyDict_SetItem(self->odd, number, kept) == 0;
        Py_XDECREF(number);
        Py_XDECREF(kept);
        if (!stored)
            goto done;
    }
    self->count++;
    result = 0;
done:
    PyBuffer_Release(&view);
    return result;
}

/* -- how the other parts read a dictionary ------------------------------------------ */

int udpt_is_hash_list(PyObject *object) { return Py_IS_TYPE(object, &HashListType); }

Py_ssize_t udpt_dictionary_size(PyObject *hashes) {
    if (udpt_is_hash_list(hashes))
        return ((HashListObject *)hashes)->count;
    if (PyList_Check(hashes))
        return PyList_GET_SIZE(hashes);
    PyErr_SetString(PyExc_TypeError, "a dictionary is a HashList or a list");
    return -1;
}

int udpt_dictionary_entry(PyObject *hashes, Py_ssize_t i, const unsigned char **data,
                          Py_ssize_t *size) {
    PyObject *entry;
    if (udpt_is_hash_list(hashes)) {
        const HashListObject *self = (const HashListObject *)hashes;
        if ((entry = odd_entry(self, i)) == NULL) {
            *data = slot(self, i);
            *size = HASH_SIZE;
            return 1;
        }
    } else {
        entry = PyList_GET_ITEM(hashes, i);
    }
    if (!PyBytes_CheckExact(entry))
        return 0;
    *data = (const unsigned char *)PyBytes_AS_STRING(entry);
    *size = PyBytes_GET_SIZE(entry);
    return 1;
}

PyObject *udpt_dictionary_item(PyObject *hashes, Py_ssize_t i) {
    if (!udpt_is_hash_list(hashes))
        return Py_NewRef(PyList_GET_ITEM(hashes, i));
    const HashListObject *self = (const HashListObject *)hashes;
    PyObject *odd = odd_entry(self, i);
    if (odd != NULL)
        return Py_NewRef(odd);
    return PyBytes_FromStringAndSize((const char *)slot(self, i), HASH_SIZE);
}

/* -- the Python type ----------------------------------------------------------------- */

static PyObject *HashList_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "HashList() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static void HashList_dealloc(HashListObject *self) {
    for (Py_ssize_t c = 0; c * CHUNK < self->count; c++)
        free(self->chunks[c]);
    free(self->chunks);
    Py_XDECREF(self->odd);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t HashList_len(HashListObject *self) { return self->count; }

static PyObject *HashList_item(HashListObject *self, Py_ssize_t i) {
    if (i < 0 || i >= self->count) {
        PyErr_SetString(PyExc_IndexError, "HashList index out of range");
        return NULL;
    }
    return udpt_dictionary_item((PyObject *)self, i);
}

static PyObject *HashList_append(HashListObject *self, PyObject *entry) {
    if (append(self, entry) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* extend(entries): one at a time, so that a generator's objects go as they come. */
static PyObject *HashList_extend(HashListObject *self, PyObject *entries) {
    PyObject *iterator = PyObject_GetIter(entries);
    if (iterator == NULL)
        return NULL;
    PyObject *entry;
    int ok = 1;
    while (ok && (entry = PyIter_Next(iterator)) != NULL) {
        ok = append(self, entry) == 0;
        Py_DECREF(entry);
    }
    Py_DECREF(iterator);
    if (!ok || PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *HashList_sizeof(HashListObject *self, PyObject *unused) {
    Py_ssize_t chunks = (self->count + CHUNK - 1) / CHUNK;
    size_t size = sizeof *self + (size_t)self->chunk_room * sizeof *self->chunks +
                  (size_t)chunks * CHUNK * HASH_SIZE;
    return PyLong_FromSize_t(size);
}

static PyMethodDef HashList_methods[] = {
    {"append", (PyCFunction)HashList_append, METH_O, NULL},
    {"extend", (PyCFunction)HashList_extend, METH_O, NULL},
    {"__sizeof__", (PyCFunction)HashList_sizeof, METH_NOARGS, NULL},
    {NULL},
};

static PySequenceMethods HashList_sequence = {
    .sq_length = (lenfunc)HashList_len,
    .sq_item = (ssizeargfunc)HashList_item,
};

static PyTypeObject HashListType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.HashList",
    .tp_doc = "The log's dictionary of info hashes, 20 bytes each (a list of bytes, packed).",
    .tp_basicsize = sizeof(HashListObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = HashList_new,
    .tp_dealloc = (destructor)HashList_dealloc,
    .tp_methods = HashList_methods,
    .tp_as_sequence = &HashList_sequence,
};

int udpt_hash_list_register(PyObject *module) {
    return PyModule_AddType(module, &HashListType);
}
