/* udpt._core.TorrentTable: Torrents by info hash, kept in info-hash order, compiled.
 *
 * The reference is udpt/projections/torrents.py's TorrentTablePy: a dict of info hash
 * to Torrent with its keys also in a SortedList, for paging. That costs a torrent a
 * dict slot (about 52 bytes at 200,000), a 20-byte bytes object (56) and a list slot
 * (about 9): as much as the Torrent itself. Here the info hash lives inside the
 * Torrent (udpt_torrent_key, 21 bytes in what was the object's padding and one more
 * 16-byte step), and the table holds only pointers to the Torrents: an open-addressing
 * set of them by keyed hash (8-byte slots, at most three quarters full) for lookups,
 * and blocks of them in info-hash order for paging and for the snapshot, which then
 * needs no sort. A torrent costs about 35 bytes of table instead of about 117.
 *
 * A Torrent is held by one table under one info hash at a time: storing it under
 * another raises ValueError (the reference would keep the same object twice; no caller
 * does). Keys are exact bytes of 20, which every info hash of the wire, the log and the
 * API is; any other key is simply not there. The table holds only Torrents, which hold
 * no Python objects, so it is not tracked by the garbage collector.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_keyhash.h"
#include "_torrents.h"

#define HASH_SIZE 20
#define BLOCK 256 /* Torrents a block of the ordered list holds at most */
#define MIN_SLOTS 8

typedef struct {
    uint32_t count;
    PyObject *torrents[BLOCK]; /* in info-hash order */
} Block;

typedef struct {
    PyObject_HEAD PyObject **slots; /* a Torrent or NULL; linear probing, no tombstones */
    size_t mask;                    /* slots - 1 */
    Py_ssize_t count;
    Block **blocks; /* every block holds at least one Torrent */
    size_t block_count, block_room;
    uint64_t version; /* changes with every torrent added or removed, for iterators */
} TorrentTableObject;

static PyTypeObject TorrentTableType;

/* The Torrent type and where its key lies, as udpt/_swarm.c registered them. */
static PyTypeObject *torrent_type;
static Py_ssize_t key_offset;

static inline int is_torrent(PyObject *object) { return Py_IS_TYPE(object, torrent_type); }

static inline udpt_torrent_key *key_of(PyObject *torrent) {
    return (udpt_torrent_key *)((char *)torrent + key_offset);
}

static inline const unsigned char *hash_of(PyObject *torrent) {
    return key_of(torrent)->info_hash;
}

static inline int order(const unsigned char *a, const unsigned char *b) {
    return memcmp(a, b, HASH_SIZE);
}

/* -- the set by hash ----------------------------------------------------------------- */

/* The slot holding the Torrent of ``info_hash``, or the free slot where it would go. */
static size_t slot_of(const TorrentTableObject *self, const unsigned char *info_hash) {
    size_t slot = udpt_keyed_hash(info_hash, HASH_SIZE) & self->mask;
    for (PyObject *held; (held = self->slots[slot]) != NULL; slot = (slot + 1) & self->mask)
        if (order(hash_of(held), info_hash) == 0)
            break;
    return slot;
}

/* Rebuilds the set with ``size`` slots (a power of two); -1 with MemoryError. */
static int resize(TorrentTableObject *self, size_t size) {
    PyObject **old = self->slots;
    size_t old_size = old ? self->mask + 1 : 0;
    PyObject **slots = calloc(size, sizeof *slots);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->slots = slots;
    self->mask = size - 1;
    for (size_t i = 0; i < old_size; i++)
        if (old[i] != NULL)
            slots[slot_of(self, hash_of(old[i]))] = old[i];
    free(old);
    return 0;
}

/* The slots for ``count`` torrents: at most three quarters full. */
static size_t slots_for(Py_ssize_t count) {
    size_t size = MIN_SLOTS;
    while ((size_t)count > size / 4 * 3)
        size <<= 1;
    return size;
}

/* Empties ``slot`` and moves back the entries after it that probed past it, so that every
 * probe still finds its key without tombstones. */
static void unset_slot(TorrentTableObject *self, size_t slot) {
    size_t free_at = slot;
    self->slots[free_at] = NULL;
    for (size_t at = (slot + 1) & self->mask; self->slots[at] != NULL; at = (at + 1) & self->mask) {
        size_t home = udpt_keyed_hash(hash_of(self->slots[at]), HASH_SIZE) & self->mask;
        /* movable when its home is not in (free_at, at], cyclically */
        if (((at - home) & self->mask) >= ((at - free_at) & self->mask)) {
            self->slots[free_at] = self->slots[at];
            self->slots[at] = NULL;
            free_at = at;
        }
    }
}

/* -- the blocks in order ----------------------------------------------------------- */

/* The block where ``info_hash`` is or would go: the first whose last hash is not below it,
 * else the last block. The table must hold a block. */
static size_t block_for(const TorrentTableObject *self, const unsigned char *info_hash) {
    size_t low = 0, high = self->block_count - 1;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        const Block *b = self->blocks[mid];
        if (order(hash_of(b->torrents[b->count - 1]), info_hash) < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

/* The position in ``b`` of the first Torrent whose hash is not below ``info_hash``. */
static uint32_t position_in(const Block *b, const unsigned char *info_hash) {
    uint32_t low = 0, high = b->count;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2;
        if (order(hash_of(b->torrents[mid]), info_hash) < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

/* Room for a new block at ``at`` (NULL there); -1 with MemoryError. */
static int open_block(TorrentTableObject *self, size_t at) {
    if (self->block_count == self->block_room) {
        size_t room = self->block_room ? self->block_room * 2 : 4;
        Block **grown = realloc(self->blocks, room * sizeof *grown);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->blocks = grown;
        self->block_room = room;
    }
    memmove(self->blocks + at + 1, self->blocks + at,
            (self->block_count - at) * sizeof *self->blocks);
    self->blocks[at] = NULL;
    self->block_count++;
    return 0;
}

static void close_block(TorrentTableObject *self, size_t at) {
    free(self->blocks[at]);
    memmove(self->blocks + at, self->blocks + at + 1,
            (self->block_count - at - 1) * sizeof *self->blocks);
    self->block_count--;
}

/* A new block at ``at`` holding ``count`` Torrents from ``torrents``; -1 with MemoryError. */
static int add_block(TorrentTableObject *self, size_t at, PyObject *const *torrents,
                     uint32_t count) {
    Block *b = malloc(sizeof *b);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (open_block(self, at) < 0) {
        free(b);
        return -1;
    }
    b->count = count;
    memcpy(b->torrents, torrents, count * sizeof *torrents);
    self->blocks[at] = b;
    return 0;
}

/* Puts ``torrent`` (not in the order yet) in its place in the order; -1 with MemoryError. */
static int order_in(TorrentTableObject *self, PyObject *torrent) {
    const unsigned char *info_hash = hash_of(torrent);
    if (self->block_count == 0)
        return add_block(self, 0, &torrent, 1);
    size_t at = block_for(self, info_hash);
    Block *b = self->blocks[at];
    uint32_t position = position_in(b, info_hash);
    if (position == BLOCK && at == self->block_count - 1) /* past the last: a snapshot's next */
        return add_block(self, at + 1, &torrent, 1);
    if (b->count == BLOCK) { /* split in halves, then go into one of them */
        uint32_t half = BLOCK / 2;
        if (add_block(self, at + 1, b->torrents + half, BLOCK - half) < 0)
            return -1;
        b->count = half;
        if (position > half) {
            b = self->blocks[at + 1];
            position -= half;
        }
    }
    memmove(b->torrents + position + 1, b->torrents + position,
            (b->count - position) * sizeof *b->torrents);
    b->torrents[position] = torrent;
    b->count++;
    return 0;
}

/* Moves the Torrents of block ``at + 1`` to the end of block ``at`` and closes it. */
static void merge_next(TorrentTableObject *self, size_t at) {
    Block *b = self->blocks[at];
    const Block *next = self->blocks[at + 1];
    memcpy(b->torrents + b->count, next->torrents, next->count * sizeof *next->torrents);
    b->count += next->count;
    close_block(self, at + 1);
}

/* Takes the Torrent of ``info_hash`` (in the table) out of the order. A block merges with
 * a neighbour when the two fit in half a block, so that torrents forgotten at random
 * (expiry after a flood) leave no blocks of a few Torrents each behind: any two
 * neighbours hold more than half a block, and the blocks cost at most 32 bytes a
 * torrent. */
static void order_out(TorrentTableObject *self, const unsigned char *info_hash) {
    size_t at = block_for(self, info_hash);
    Block *b = self->blocks[at];
    uint32_t position = position_in(b, info_hash);
    b->count--;
    memmove(b->torrents + position, b->torrents + position + 1,
            (b->count - position) * sizeof *b->torrents);
    if (b->count == 0)
        close_block(self, at);
    else if (at + 1 < self->block_count && b->count + self->blocks[at + 1]->count <= BLOCK / 2)
        merge_next(self, at);
    else if (at > 0 && self->blocks[at - 1]->count + b->count <= BLOCK / 2)
        merge_next(self, at - 1);
}

/* -- keeping and forgetting ---------------------------------------------------------- */

/* The 20 bytes of ``key`` if it is an info hash (exact bytes of 20), else NULL. */
static const unsigned char *info_hash_of(PyObject *key) {
    if (!PyBytes_CheckExact(key) || PyBytes_GET_SIZE(key) != HASH_SIZE)
        return NULL;
    return (const unsigned char *)PyBytes_AS_STRING(key);
}

static void release(PyObject *torrent) {
    key_of(torrent)->held = 0;
    Py_DECREF(torrent);
}

/* Forgets the Torrent in ``slot`` and releases it. */
static void forget(TorrentTableObject *self, size_t slot) {
    PyObject *torrent = self->slots[slot];
    order_out(self, hash_of(torrent));
    unset_slot(self, slot);
    self->count--;
    self->version++;
    if (self->mask + 1 > MIN_SLOTS && (size_t)self->count < (self->mask + 1) / 8 &&
        resize(self, slots_for(self->count)) < 0)
        PyErr_Clear(); /* the bigger set it keeps works as well */
    release(torrent);
}

/* Keeps ``torrent`` (not held) under ``info_hash``, which the table does not hold. */
static int keep(TorrentTableObject *self, const unsigned char *info_hash, PyObject *torrent) {
    if ((size_t)self->count + 1 > (self->mask + 1) / 4 * 3 &&
        resize(self, (self->mask + 1) * 2) < 0)
        return -1;
    udpt_torrent_key *key = key_of(torrent);
    memcpy(key->info_hash, info_hash, HASH_SIZE);
    if (order_in(self, torrent) < 0)
        return -1;
    key->held = 1;
    self->slots[slot_of(self, info_hash)] = Py_NewRef(torrent);
    self->count++;
    self->version++;
    return 0;
}

/* table[key] = torrent: a Torrent not held elsewhere, under a 20-byte info hash. */
static int store(TorrentTableObject *self, PyObject *key, PyObject *torrent) {
    const unsigned char *info_hash = info_hash_of(key);
    if (info_hash == NULL) {
        PyErr_SetString(PyExc_TypeError, "a TorrentTable's keys are 20-byte info hashes");
        return -1;
    }
    if (!is_torrent(torrent)) {
        PyErr_SetString(PyExc_TypeError, "a TorrentTable holds Torrents only");
        return -1;
    }
    size_t slot = slot_of(self, info_hash);
    PyObject *held = self->slots[slot];
    if (held == torrent)
        return 0;
    if (key_of(torrent)->held) {
        PyErr_SetString(PyExc_ValueError, "the Torrent is already in a table");
        return -1;
    }
    if (held == NULL)
        return keep(self, info_hash, torrent);
    /* another Torrent under this hash: the new one takes its place in both structures */
    size_t at = block_for(self, info_hash);
    Block *b = self->blocks[at];
    b->torrents[position_in(b, info_hash)] = torrent;
    self->slots[slot] = Py_NewRef(torrent);
    udpt_torrent_key *taking = key_of(torrent);
    memcpy(taking->info_hash, info_hash, HASH_SIZE);
    taking->held = 1;
    self->version++;
    release(held);
    return 0;
}

/* -- the C interface ----------------------------------------------------------------- */

int udpt_is_torrent_table(PyObject *object) {
    return PyObject_TypeCheck(object, &TorrentTableType);
}

PyObject *udpt_torrents_find(PyObject *table, const unsigned char *info_hash) {
    const TorrentTableObject *self = (const TorrentTableObject *)table;
    return self->count ? self->slots[slot_of(self, info_hash)] : NULL;
}

PyObject *udpt_torrents_get(PyObject *table, PyObject *info_hash) {
    const unsigned char *bytes = info_hash_of(info_hash);
    return bytes ? udpt_torrents_find(table, bytes) : NULL;
}

Py_ssize_t udpt_torrents_count(PyObject *table) {
    return ((const TorrentTableObject *)table)->count;
}

int udpt_torrents_each(PyObject *table,
                       int (*each)(void *context, const unsigned char *info_hash,
                                   PyObject *torrent),
                       void *context) {
    const TorrentTableObject *self = (const TorrentTableObject *)table;
    for (size_t at = 0; at < self->block_count; at++) {
        const Block *b = self->blocks[at];
        for (uint32_t i = 0; i < b->count; i++) {
            int result = each(context, hash_of(b->torrents[i]), b->torrents[i]);
            if (result)
                return result;
        }
    }
    return 0;
}

/* -- the Python type ----------------------------------------------------------------- */

static PyObject *TorrentTable_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "TorrentTable() takes no arguments");
        return NULL;
    }
    TorrentTableObject *self = (TorrentTableObject *)type->tp_alloc(type, 0);
    if (self != NULL && resize(self, MIN_SLOTS) < 0)
        Py_CLEAR(self);
    return (PyObject *)self;
}

static void TorrentTable_dealloc(TorrentTableObject *self) {
    for (size_t at = 0; at < self->block_count; at++) {
        Block *b = self->blocks[at];
        for (uint32_t i = 0; i < b->count; i++)
            release(b->torrents[i]);
        free(b);
    }
    free(self->blocks);
    free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t TorrentTable_len(TorrentTableObject *self) { return self->count; }

static PyObject *TorrentTable_subscript(TorrentTableObject *self, PyObject *key) {
    PyObject *torrent = udpt_torrents_get((PyObject *)self, key);
    if (torrent == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return Py_NewRef(torrent);
}

static int TorrentTable_ass_subscript(TorrentTableObject *self, PyObject *key,
                                      PyObject *torrent) {
    if (torrent != NULL)
        return store(self, key, torrent);
    const unsigned char *info_hash = info_hash_of(key);
    size_t slot = info_hash && self->count ? slot_of(self, info_hash) : 0;
    if (info_hash == NULL || self->slots[slot] == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    forget(self, slot);
    return 0;
}

static int TorrentTable_contains(TorrentTableObject *self, PyObject *key) {
    return udpt_torrents_get((PyObject *)self, key) != NULL;
}

static PyObject *TorrentTable_get(TorrentTableObject *self, PyObject *const *args,
                                  Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(info_hash, default=None)");
        return NULL;
    }
    PyObject *torrent = udpt_torrents_get((PyObject *)self, args[0]);
    return Py_NewRef(torrent ? torrent : nargs == 2 ? args[1] : Py_None);
}

static PyObject *key_object(PyObject *torrent) {
    return PyBytes_FromStringAndSize((const char *)hash_of(torrent), HASH_SIZE);
}

/* page(offset, limit): the info hashes from position ``offset`` of the order, at most
 * ``limit`` of them; ints of any size, as the API passes them on. Finding the offset
 * walks the blocks' counts, not the torrents. */
static PyObject *TorrentTable_page(TorrentTableObject *self, PyObject *args) {
    PyObject *offset_object, *limit_object;
    if (!PyArg_ParseTuple(args, "O!O!:page", &PyLong_Type, &offset_object, &PyLong_Type,
                          &limit_object))
        return NULL;
    Py_ssize_t offset = PyNumber_AsSsize_t(offset_object, NULL); /* clipped, never raises */
    Py_ssize_t limit = PyNumber_AsSsize_t(limit_object, NULL);
    PyObject *page = PyList_New(0);
    size_t at = 0;
    if (offset < 0)
        offset = 0;
    for (; page != NULL && at < self->block_count && offset >= self->blocks[at]->count; at++)
        offset -= self->blocks[at]->count;
    for (; page != NULL && at < self->block_count && PyList_GET_SIZE(page) < limit; at++) {
        const Block *b = self->blocks[at];
        for (uint32_t i = (uint32_t)offset; i < b->count && PyList_GET_SIZE(page) < limit; i++) {
            PyObject *key = key_object(b->torrents[i]);
            if (key == NULL || PyList_Append(page, key) < 0)
                Py_CLEAR(page);
            Py_XDECREF(key);
            if (page == NULL)
                break;
        }
        offset = 0;
    }
    return page;
}

static PyObject *TorrentTable_sizeof(TorrentTableObject *self, PyObject *unused) {
    size_t size = Py_TYPE(self)->tp_basicsize + (self->mask + 1) * sizeof(PyObject *) +
                  self->block_room * sizeof(Block *) + self->block_count * sizeof(Block);
    return PyLong_FromSize_t(size);
}

/* -- iterators ----------------------------------------------------------------------- */

enum { KEYS, VALUES, ITEMS };

typedef struct {
    PyObject_HEAD TorrentTableObject *table;
    size_t block;
    uint32_t position;
    uint64_t version;
    int what;
} TorrentIterObject;

static PyTypeObject TorrentIterType;

static PyObject *iterate(TorrentTableObject *self, int what) {
    TorrentIterObject *it = PyObject_New(TorrentIterObject, &TorrentIterType);
    if (it == NULL)
        return NULL;
    it->table = (TorrentTableObject *)Py_NewRef(self);
    it->block = 0;
    it->position = 0;
    it->version = self->version;
    it->what = what;
    return (PyObject *)it;
}

static PyObject *TorrentTable_iter(TorrentTableObject *self) { return iterate(self, KEYS); }

static PyObject *TorrentTable_values(TorrentTableObject *self, PyObject *unused) {
    return iterate(self, VALUES);
}

static PyObject *TorrentTable_items(TorrentTableObject *self, PyObject *unused) {
    return iterate(self, ITEMS);
}

static void TorrentIter_dealloc(TorrentIterObject *it) {
    Py_DECREF(it->table);
    PyObject_Free(it);
}

static PyObject *TorrentIter_next(TorrentIterObject *it) {
    const TorrentTableObject *table = it->table;
    if (it->version != table->version) {
        PyErr_SetString(PyExc_RuntimeError, "the torrent table changed during iteration");
        return NULL;
    }
    if (it->block >= table->block_count)
        return NULL;
    const Block *b = table->blocks[it->block];
    PyObject *torrent = b->torrents[it->position];
    if (++it->position == b->count) {
        it->block++;
        it->position = 0;
    }
    if (it->what == VALUES)
        return Py_NewRef(torrent);
    PyObject *key = key_object(torrent);
    if (it->what == KEYS || key == NULL)
        return key;
    PyObject *pair = PyTuple_Pack(2, key, torrent);
    Py_DECREF(key);
    return pair;
}

static PyTypeObject TorrentIterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.TorrentIterator",
    .tp_basicsize = sizeof(TorrentIterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)TorrentIter_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)TorrentIter_next,
};

static PyMethodDef TorrentTable_methods[] = {
    {"get", (PyCFunction)(void (*)(void))TorrentTable_get, METH_FASTCALL, NULL},
    {"page", (PyCFunction)TorrentTable_page, METH_VARARGS, NULL},
    {"values", (PyCFunction)TorrentTable_values, METH_NOARGS,
     "An iterator of the Torrents, in info-hash order."},
    {"items", (PyCFunction)TorrentTable_items, METH_NOARGS,
     "An iterator of (info hash, Torrent), in info-hash order."},
    {"__sizeof__", (PyCFunction)TorrentTable_sizeof, METH_NOARGS, NULL},
    {NULL},
};

static PyMappingMethods TorrentTable_mapping = {
    .mp_length = (lenfunc)TorrentTable_len,
    .mp_subscript = (binaryfunc)TorrentTable_subscript,
    .mp_ass_subscript = (objobjargproc)TorrentTable_ass_subscript,
};

static PySequenceMethods TorrentTable_sequence = {
    .sq_contains = (objobjproc)TorrentTable_contains,
};

static PyTypeObject TorrentTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.TorrentTable",
    .tp_doc = "Torrents by info hash, in info-hash order (torrents.py's TorrentTablePy, "
              "compiled).",
    .tp_basicsize = sizeof(TorrentTableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = TorrentTable_new,
    .tp_dealloc = (destructor)TorrentTable_dealloc,
    .tp_iter = (getiterfunc)TorrentTable_iter,
    .tp_methods = TorrentTable_methods,
    .tp_as_mapping = &TorrentTable_mapping,
    .tp_as_sequence = &TorrentTable_sequence,
};

int udpt_torrents_register(PyObject *module, PyTypeObject *torrent, Py_ssize_t offset) {
    torrent_type = torrent;
    key_offset = offset;
    if (PyType_Ready(&TorrentIterType) < 0) /* not in the module: values() and the like */
        return -1;
    return PyModule_AddType(module, &TorrentTableType);
}
