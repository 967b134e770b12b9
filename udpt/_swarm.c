/* udpt._core.Swarm: the compiled swarm, a drop-in for udpt/projections/swarms.py's SwarmPy.
 *
 * The Python class is the specification; this one keeps the same four tables
 * (seeders4, leechers4, seeders6, leechers6) with the same order, so replies,
 * snapshots and expiry come out byte for byte alike (tests/property/
 * test_swarm_differential.py). What changes is the memory: a peer is one entry
 * of a packed array, its compact key (the BEP 23 entry) followed by its record
 * in the snapshot's layout, instead of a dict slot and two bytes objects.
 *
 * A table is ordered the way a Python dict is: an announce removes the peer
 * (its entry becomes a gap) and appends it at the end, so each table is ordered
 * by last announce and expiry takes from the front. Gaps are squeezed out when
 * they are a third of the table. Tables of more than INDEXED entries keep an
 * open-addressing index (udpt/_keyhash.h, seed drawn at import) so that a lookup in
 * a big swarm costs no scan; a swarm of INDEXED_SWARM peers or more keeps its
 * peers per source once asked, as the reference does. The swarm holds no Python objects, so it is not
 * tracked by the garbage collector; its arrays come from malloc, away from the
 * Python objects whose reference counts change.
 *
 * write_snapshot_torrents writes the torrents of a snapshot (TrackerState.
 * snapshot_parts is its reference) from the torrent dict, Torrent's slots (their
 * offsets learnt by bind_fold) and these arrays, through borrowed pointers
 * only: the forked snapshot child (udpt/history/snapshot_fork.py) then copies
 * almost none of the daemon's pages.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <structmember.h>
#include <unistd.h>

#include "_keyhash.h"
#include "_swarm.h"
#include "_torrents.h"

#define KEY4 6
#define KEY6 18
#define RECORD 58 /* swarms._RECORD: !20sIqqqqBB */
#define AT_KEY 20
#define AT_LAST_SEEN 24
#define AT_UPLOADED 32
#define AT_DOWNLOADED 40
#define AT_LEFT 48
#define AT_EVENT 56
#define AT_FLAG 57
#define GAP 0xFF /* the flag byte of a removed entry; a live one holds 0 or 1 */
#define INDEXED 12 /* up to 12 keys a scan costs no more than a probe; an index costs 1.5-6 B a key */
#define BIG_TABLE 16 /* tables of this many entries grow by an eighth (table_grow) */
#define EVENT_COMPLETED 1 /* AnnounceEvent.COMPLETED */

/* One table: a header and its entries in one allocation. An empty table is ``no_peers``,
 * shared, so a swarm pays for the tables it uses only (most torrents have one peer). */
typedef struct {
    void *index; /* entry position + 1 per slot, 0 for an empty slot; NULL if small. Slots
                  * are as narrow as the capacity allows (slot_width): 1, 2 or 4 bytes */
    uint32_t used, live, cap, mask;
    unsigned char entries[]; /* used entries of key + record, in the order they were appended */
} Table;

static const Table no_peers; /* read only: a write to it would be a bug, and faults */
#define NO_PEERS ((Table *)&no_peers)

/* Bytes per index slot: the narrowest that holds every position + 1 (a table's index is
 * rebuilt when a new capacity changes its slots or their width). Narrow slots halve or
 * quarter an index, most of a big swarm's cost past its entries. */
static inline size_t width_for(uint32_t cap) {
    return cap < UINT8_MAX ? 1 : cap < UINT16_MAX ? 2 : 4;
}

static inline size_t slot_width(const Table *t) {
    return width_for(t->cap);
}

static inline uint32_t slot_get(const Table *t, uint32_t slot) {
    switch (slot_width(t)) {
    case 1:
        return ((const uint8_t *)t->index)[slot];
    case 2:
        return ((const uint16_t *)t->index)[slot];
    default:
        return ((const uint32_t *)t->index)[slot];
    }
}

static inline void slot_set(Table *t, uint32_t slot, uint32_t value) {
    switch (slot_width(t)) {
    case 1:
        ((uint8_t *)t->index)[slot] = (uint8_t)value;
        break;
    case 2:
        ((uint16_t *)t->index)[slot] = (uint16_t)value;
        break;
    default:
        ((uint32_t *)t->index)[slot] = value;
    }
}

/* The free slot for a new position of ``key``, by linear probing. */
static inline uint32_t free_slot(const Table *t, uint32_t hash) {
    uint32_t slot = hash & t->mask;
    while (slot_get(t, slot))
        slot = (slot + 1) & t->mask;
    return slot;
}

/* Peers per source (an address prefix), kept for big swarms as the reference keeps them:
 * one open-addressing table a family, its slots a prefix (4 or 16 bytes, zero-padded)
 * then a count, the count's top bit set once the slot is taken. A slot whose count fell
 * to 0 stays taken until the next rebuild. Slots are 8 bytes for IPv4, where 24 (one
 * layout for both families) cost 48 to 96 bytes a peer: as much as the peer's entry. */
typedef struct {
    uint32_t mask, occupied, prefix; /* prefix: the key's bytes, 4 or 16 */
    unsigned char slots[];          /* (prefix + 4) bytes a slot */
} SourceTable;

#define TAKEN 0x80000000u

typedef struct {
    Py_ssize_t v4_bytes, v6_bytes; /* the prefixes the counts are for */
    SourceTable *family[2];       /* IPv4, IPv6 */
} Sources;

typedef struct {
    PyObject_HEAD Table *tables[4]; /* seeders4, leechers4, seeders6, leechers6 */
    Sources *sources;              /* NULL: not asked, or fewer than INDEXED_SWARM peers */
} SwarmObject;

#define INDEXED_SWARM 64 /* swarms.INDEXED_SWARM */

/* Whether two compact keys of ``size`` (6 or 18) bytes are equal: fixed-size loads the
 * compiler inlines, where a call to memcmp cost a sixth of a replay. */
static inline int same_key(const unsigned char *a, const unsigned char *b, Py_ssize_t size) {
    uint32_t a4, b4;
    uint16_t a2, b2;
    if (size == KEY6) {
        uint64_t a8[2], b8[2];
        memcpy(a8, a, 16);
        memcpy(b8, b, 16);
        memcpy(&a2, a + 16, 2);
        memcpy(&b2, b + 16, 2);
        return ((a8[0] ^ b8[0]) | (a8[1] ^ b8[1]) | (uint64_t)(a2 ^ b2)) == 0;
    }
    memcpy(&a4, a, 4);
    memcpy(&b4, b, 4);
    memcpy(&a2, a + 4, 2);
    memcpy(&b2, b + 4, 2);
    return ((a4 ^ b4) | (uint32_t)(a2 ^ b2)) == 0;
}

static inline Py_ssize_t key_size(int table) { return table < 2 ? KEY4 : KEY6; }
static inline Py_ssize_t stride(int table) { return key_size(table) + RECORD; }

/* Entry ``position`` of ``t``; writable only when ``t`` is (never ``no_peers``, which has none). */
static inline unsigned char *entry(const Table *t, int table, uint32_t position) {
    return (unsigned char *)t->entries + (size_t)position * stride(table);
}

static inline int is_gap(const unsigned char *e, int table) {
    return e[key_size(table) + AT_FLAG] == GAP;
}

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

static inline void store64(unsigned char *p, uint64_t v) {
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

static inline int64_t last_seen(const unsigned char *e, int table) {
    return (int64_t)load64(e + key_size(table) + AT_LAST_SEEN);
}

/* -- one table ----------------------------------------------------------------------- */

static void table_free(Table **slot) {
    if (*slot != NO_PEERS) {
        free((*slot)->index);
        free(*slot);
        *slot = NO_PEERS;
    }
}

/* Index slots for a table of ``cap`` entries: none up to INDEXED, else a power of two at
 * most two thirds full (entries, gaps included, never exceed cap). */
static uint32_t index_slots(uint32_t cap) {
    if (cap <= INDEXED)
        return 0;
    uint32_t slots = 16;
    while (slots < cap + cap / 2)
        slots <<= 1;
    return slots;
}

static int table_reindex(Table *t, int table) {
    free(t->index);
    t->index = NULL;
    t->mask = 0;
    uint32_t slots = index_slots(t->cap);
    if (slots == 0)
        return 0;
    t->index = calloc(slots, slot_width(t));
    if (t->index == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->mask = slots - 1;
    Py_ssize_t size = key_size(table);
    for (uint32_t position = 0; position < t->used; position++) {
        const unsigned char *e = entry(t, table, position);
        if (is_gap(e, table))
            continue;
        slot_set(t, free_slot(t, udpt_keyed_hash(e, size)), position + 1);
    }
    return 0;
}

/* Squeeze the gaps out, keeping the order; the index is rebuilt by the caller. */
static void table_squeeze(Table *t, int table) {
    Py_ssize_t step = stride(table);
    uint32_t kept = 0;
    for (uint32_t position = 0; position < t->used; position++) {
        unsigned char *e = entry(t, table, position);
        if (is_gap(e, table))
            continue;
        if (kept != position)
            memcpy(entry(t, table, kept), e, (size_t)step);
        kept++;
    }
    t->used = kept;
}

static int table_resize(Table **slot, int table, uint32_t cap) {
    Table *old = *slot == NO_PEERS ? NULL : *slot;
    Table *t = realloc(old, sizeof *t + (size_t)cap * stride(table));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (old == NULL)
        memset(t, 0, sizeof *t);
    t->cap = cap;
    *slot = t;
    return table_reindex(t, table);
}

/* After a removal: free an empty table, squeeze one that is a third gaps (shrinking its
 * allocation when it is less than half used), so gaps never cost more than half the live. */
static int table_tidy(Table **slot, int table) {
    Table *t = *slot;
    if (t->live == 0) {
        table_free(slot);
        return 0;
    }
    if (t->used - t->live < t->live / 2 + 1)
        return 0;
    table_squeeze(t, table);
    if (t->live < t->cap / 2)
        return table_resize(slot, table, t->live + t->live / 2 + 1);
    return table_reindex(t, table);
}

static int64_t table_find(const Table *t, int table, const unsigned char *key) {
    Py_ssize_t size = key_size(table);
    if (t->index == NULL) {
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            if (same_key(e, key, size) && !is_gap(e, table))
                return position;
        }
        return -1;
    }
    for (uint32_t slot = udpt_keyed_hash(key, size) & t->mask, held; (held = slot_get(t, slot));
         slot = (slot + 1) & t->mask) {
        uint32_t position = held - 1;
        const unsigned char *e = entry(t, table, position);
        if (same_key(e, key, size) && !is_gap(e, table))
            return position;
    }
    return -1;
}

/* Grow a full table: by a quarter while small (by half, spare room cost up to 33 bytes a
 * peer in swarms of three: BENCHMARKS.md), by an eighth from BIG_TABLE entries on. A big
 * swarm restored from a snapshot is sized exactly and grows at its first newcomer, so the
 * step is what it keeps spare. Entries keep their positions, so an index whose slots and
 * width the new capacity does not change stays true and is not rebuilt: a step costs a
 * realloc. */
static int table_grow(Table **slot, int table) {
    Table *t = *slot;
    uint32_t cap = t->cap + (t->cap < BIG_TABLE ? t->cap / 4 : t->cap / 8) + 1;
    if (t == NO_PEERS || index_slots(cap) != index_slots(t->cap) ||
        width_for(cap) != slot_width(t))
        return table_resize(slot, table, cap);
    t = realloc(t, sizeof *t + (size_t)cap * stride(table));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->cap = cap;
    *slot = t;
    return 0;
}

/* Room for one more entry at the end: squeeze if an eighth is gaps, else grow. */
static int table_make_room(Table **slot, int table) {
    Table *t = *slot;
    if (t->used < t->cap)
        return 0;
    if (t->cap && t->used - t->live >= t->cap / 8 + 1) {
        table_squeeze(t, table);
        return table_reindex(t, table);
    }
    if (t->cap >= UINT32_MAX / 4) {
        PyErr_SetString(PyExc_OverflowError, "swarm table is full");
        return -1;
    }
    return table_grow(slot, table);
}

static unsigned char *table_append(Table **slot, int table, const unsigned char *key) {
    if (table_make_room(slot, table) < 0)
        return NULL;
    Table *t = *slot;
    uint32_t position = t->used++;
    t->live++;
    unsigned char *e = entry(t, table, position);
    memcpy(e, key, (size_t)key_size(table));
    if (t->index != NULL)
        slot_set(t, free_slot(t, udpt_keyed_hash(key, key_size(table))), position + 1);
    return e;
}

static void table_mark_gap(Table *t, int table, uint32_t position) {
    entry(t, table, position)[key_size(table) + AT_FLAG] = GAP;
    t->live--;
}

/* First live entry, or NULL. */
static const unsigned char *table_head(const Table *t, int table) {
    for (uint32_t position = 0; position < t->used; position++) {
        const unsigned char *e = entry(t, table, position);
        if (!is_gap(e, table))
            return e;
    }
    return NULL;
}

/* -- counts per source ----------------------------------------------------------- */

static void sources_free(Sources *sources) {
    if (sources != NULL) {
        free(sources->family[0]);
        free(sources->family[1]);
        free(sources);
    }
}

/* ``ip``'s source: its family's table, and its prefix zero-padded in ``key``. */
static SourceTable *source_key(const Sources *sources, const unsigned char *ip,
                               Py_ssize_t ip_size, unsigned char key[16]) {
    int v6 = ip_size != 4;
    memset(key, 0, 16);
    memcpy(key, ip, (size_t)(v6 ? sources->v6_bytes : sources->v4_bytes));
    return sources->family[v6];
}

/* The slot taken by ``key``, or the free slot for it; ``count`` is what the slot holds. */
static unsigned char *source_slot(const SourceTable *st, const unsigned char key[16],
                                  uint32_t *count) {
    size_t stride = st->prefix + 4;
    for (uint32_t slot = udpt_keyed_hash(key, st->prefix) & st->mask;;
         slot = (slot + 1) & st->mask) {
        unsigned char *found = (unsigned char *)st->slots + slot * stride;
        memcpy(count, found + st->prefix, 4);
        if (!(*count & TAKEN) || memcmp(found, key, st->prefix) == 0)
            return found;
    }
}

static uint32_t source_peek(const Sources *sources, const unsigned char *ip, Py_ssize_t ip_size) {
    unsigned char key[16];
    uint32_t count;
    source_slot(source_key(sources, ip, ip_size, key), key, &count);
    return count & ~TAKEN;
}

/* Add ``change`` to the count of the source of ``peer`` (a compact key of ``size`` bytes). */
static void source_count(Sources *sources, const unsigned char *peer, Py_ssize_t size,
                         int change) {
    unsigned char key[16];
    SourceTable *st = source_key(sources, peer, size - 2, key);
    uint32_t count;
    unsigned char *found = source_slot(st, key, &count);
    if (!(count & TAKEN)) {
        memcpy(found, key, st->prefix);
        count = TAKEN;
        st->occupied++;
    }
    count = TAKEN | ((count & ~TAKEN) + (uint32_t)change);
    memcpy(found + st->prefix, &count, 4);
}

/* Room for twice ``peers`` sources of ``prefix`` bytes: NULL if no memory. */
static SourceTable *source_table(Py_ssize_t peers, uint32_t prefix) {
    uint32_t slots = 16;
    while (slots < 2 * (uint64_t)peers)
        slots <<= 1;
    SourceTable *st = calloc(1, sizeof *st + (size_t)slots * (prefix + 4));
    if (st != NULL) {
        st->mask = slots - 1;
        st->prefix = prefix;
    }
    return st;
}

static Py_ssize_t Swarm_len(SwarmObject *self);

/* Counts for ``prefixes`` built from the tables: NULL if no memory. */
static Sources *sources_build(SwarmObject *self, Py_ssize_t v4_bytes, Py_ssize_t v6_bytes) {
    Sources *sources = calloc(1, sizeof *sources);
    if (sources == NULL)
        return NULL;
    sources->v4_bytes = v4_bytes;
    sources->v6_bytes = v6_bytes;
    sources->family[0] = source_table(self->tables[0]->live + self->tables[1]->live, 4);
    sources->family[1] = source_table(self->tables[2]->live + self->tables[3]->live, 16);
    if (sources->family[0] == NULL || sources->family[1] == NULL) {
        sources_free(sources);
        return NULL;
    }
    for (int table = 0; table < 4; table++) {
        const Table *t = self->tables[table];
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            if (!is_gap(e, table))
                source_count(sources, e, key_size(table), 1);
        }
    }
    return sources;
}

/* After a peer left: count it out, and drop the counts of a swarm grown small again. */
static void sources_forget(SwarmObject *self, const unsigned char *peer, Py_ssize_t size) {
    if (self->sources == NULL)
        return;
    source_count(self->sources, peer, size, -1);
    if (Swarm_len(self) < INDEXED_SWARM / 2) {
        sources_free(self->sources);
        self->sources = NULL;
    }
}

/* After a newcomer: count it in; counts that fill two thirds of their room are rebuilt. */
static void sources_add(SwarmObject *self, const unsigned char *peer, Py_ssize_t size) {
    Sources *sources = self->sources;
    if (sources == NULL)
        return;
    source_count(sources, peer, size, 1);
    const SourceTable *st = sources->family[size != KEY4];
    if ((uint64_t)st->occupied * 3 > 2 * ((uint64_t)st->mask + 1)) {
        self->sources = sources_build(self, sources->v4_bytes, sources->v6_bytes);
        sources_free(sources); /* if the rebuild had no memory, the counts are asked again */
    }
}

/* Take the entry at ``at`` of ``table`` out of the swarm. */
static int swarm_remove_at(SwarmObject *self, int table, uint32_t at) {
    Table *t = self->tables[table];
    sources_forget(self, entry(t, table, at), key_size(table)); /* before the entry moves */
    table_mark_gap(t, table, at);
    return table_tidy(&self->tables[table], table);
}

/* -- the Swarm type ------------------------------------------------------------------ */

static int family_of_peer(Py_ssize_t size) { return size == KEY4 ? 0 : 2; }

static int check_peer(const Py_buffer *peer) {
    if (peer->len != KEY4 && peer->len != KEY6) {
        PyErr_Format(PyExc_ValueError, "a peer is a 6- or 18-byte compact entry, not %zd bytes",
                     peer->len);
        return -1;
    }
    return 0;
}

static PyObject *Swarm_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Swarm() takes no arguments");
        return NULL;
    }
    SwarmObject *self = (SwarmObject *)type->tp_alloc(type, 0);
    if (self != NULL)
        for (int table = 0; table < 4; table++)
            self->tables[table] = NO_PEERS;
    return (PyObject *)self;
}

static void Swarm_dealloc(SwarmObject *self) {
    for (int table = 0; table < 4; table++)
        table_free(&self->tables[table]);
    sources_free(self->sources);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Swarm_len(SwarmObject *self) {
    Table *const *t = self->tables;
    return (Py_ssize_t)t[0]->live + t[1]->live + t[2]->live + t[3]->live;
}

/* The table holding ``key`` of family ``family`` (0 or 2), or -1; its position in *at. */
static int locate(SwarmObject *self, int family, const unsigned char *key, uint32_t *at) {
    for (int table = family; table < family + 2; table++) {
        int64_t position = table_find(self->tables[table], table, key);
        if (position >= 0) {
            *at = (uint32_t)position;
            return table;
        }
    }
    return -1;
}

static int Swarm_contains(SwarmObject *self, PyObject *arg) {
    Py_buffer peer;
    if (PyObject_GetBuffer(arg, &peer, PyBUF_SIMPLE) < 0)
        return -1;
    uint32_t at;
    int found = (peer.len == KEY4 || peer.len == KEY6) &&
                locate(self, family_of_peer(peer.len), peer.buf, &at) >= 0;
    PyBuffer_Release(&peer);
    return found;
}

static PyObject *Swarm_get_seeders(SwarmObject *self, void *closure) {
    return PyLong_FromSize_t((size_t)self->tables[0]->live + self->tables[2]->live);
}

static PyObject *Swarm_get_leechers(SwarmObject *self, void *closure) {
    return PyLong_FromSize_t((size_t)self->tables[1]->live + self->tables[3]->live);
}

static PyObject *Swarm_counts(SwarmObject *self, PyObject *unused) {
    Table *const *t = self->tables;
    return Py_BuildValue("(IIII)", t[0]->live, t[1]->live, t[2]->live, t[3]->live);
}

static int int64_item(PyObject *tuple, Py_ssize_t i, int64_t *out) {
    long long value = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, i));
    if (value == -1 && PyErr_Occurred())
        return -1;
    *out = value;
    return 0;
}

/* An AnnounceAccepted's fields as Swarm.announce reads them; 0, or -1 with an exception. */
static int peer_update_of(PyObject *e, udpt_peer_update *u) {
    if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 10) {
        PyErr_SetString(PyExc_TypeError, "announce() takes an AnnounceAccepted");
        return -1;
    }
    unsigned long key_value = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(e, 5));
    if ((key_value == (unsigned long)-1 && PyErr_Occurred()) || int64_item(e, 0, &u->at_ms) < 0 ||
        int64_item(e, 6, &u->event) < 0 || int64_item(e, 7, &u->uploaded) < 0 ||
        int64_item(e, 8, &u->downloaded) < 0 || int64_item(e, 9, &u->left) < 0)
        return -1;
    if (key_value > UINT32_MAX || u->event < 0 || u->event > 255) {
        PyErr_SetString(PyExc_OverflowError, "announce() field out of range");
        return -1;
    }
    u->key = (uint32_t)key_value;
    PyObject *peer_id = PyTuple_GET_ITEM(e, 4);
    if (!PyBytes_Check(peer_id)) {
        PyErr_SetString(PyExc_TypeError, "peer_id must be bytes");
        return -1;
    }
    u->peer_id = (const unsigned char *)PyBytes_AS_STRING(peer_id);
    u->peer_id_size = (size_t)PyBytes_GET_SIZE(peer_id);
    return 0;
}

/* Swarm.announce on a checked key: 1 if the announce completes, 0 if not, -1 on error. */
static int swarm_announce(SwarmObject *self, const unsigned char *key, Py_ssize_t size,
                          const udpt_peer_update *u) {
    int family = family_of_peer(size);
    uint32_t at;
    int old_table = locate(self, family, key, &at);
    int counted = 0;
    if (old_table >= 0) {
        Table *old = self->tables[old_table];
        counted = entry(old, old_table, at)[size + AT_FLAG] == 1;
        table_mark_gap(old, old_table, at);
        if (table_tidy(&self->tables[old_table], old_table) < 0)
            return -1;
    }
    int completes = !counted && u->left == 0 && u->event == EVENT_COMPLETED;
    int table = family + (u->left != 0);
    unsigned char *record = table_append(&self->tables[table], table, key);
    if (record == NULL)
        return -1;
    record += size;
    /* struct's "20s": the peer id padded with zeros or cut to 20 bytes */
    memset(record, 0, AT_KEY);
    memcpy(record, u->peer_id, u->peer_id_size < AT_KEY ? u->peer_id_size : AT_KEY);
    uint32_t key_be = __builtin_bswap32(u->key);
    memcpy(record + AT_KEY, &key_be, 4);
    store64(record + AT_LAST_SEEN, (uint64_t)u->at_ms);
    store64(record + AT_UPLOADED, (uint64_t)u->uploaded);
    store64(record + AT_DOWNLOADED, (uint64_t)u->downloaded);
    store64(record + AT_LEFT, (uint64_t)u->left);
    record[AT_EVENT] = (unsigned char)u->event;
    record[AT_FLAG] = (unsigned char)(counted || completes);
    if (old_table < 0) /* after the record: a rebuild of the counts reads its flag byte */
        sources_add(self, key, size);
    return completes;
}

static PyObject *Swarm_announce(SwarmObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "announce(peer, event)");
        return NULL;
    }
    Py_buffer peer;
    if (PyObject_GetBuffer(args[0], &peer, PyBUF_SIMPLE) < 0)
        return NULL;
    unsigned char key[KEY6];
    Py_ssize_t size = peer.len;
    int checked = check_peer(&peer);
    if (checked == 0)
        memcpy(key, peer.buf, (size_t)size);
    PyBuffer_Release(&peer);
    if (checked < 0)
        return NULL;
    udpt_peer_update u;
    if (peer_update_of(args[1], &u) < 0)
        return NULL;
    int completes = swarm_announce(self, key, size, &u);
    return completes < 0 ? NULL : PyBool_FromLong(completes);
}

static PyObject *Swarm_remove(SwarmObject *self, PyObject *arg) {
    Py_buffer peer;
    if (PyObject_GetBuffer(arg, &peer, PyBUF_SIMPLE) < 0)
        return NULL;
    uint32_t at;
    int table = (peer.len == KEY4 || peer.len == KEY6)
                    ? locate(self, family_of_peer(peer.len), peer.buf, &at)
                    : -1;
    PyBuffer_Release(&peer);
    if (table < 0)
        Py_RETURN_FALSE;
    if (swarm_remove_at(self, table, at) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *Swarm_clear(SwarmObject *self, PyObject *unused) {
    for (int table = 0; table < 4; table++)
        table_free(&self->tables[table]);
    sources_free(self->sources);
    self->sources = NULL;
    Py_RETURN_NONE;
}

static PyObject *Swarm_record(SwarmObject *self, PyObject *arg) {
    Py_buffer peer;
    if (PyObject_GetBuffer(arg, &peer, PyBUF_SIMPLE) < 0)
        return NULL;
    uint32_t at;
    Py_ssize_t size = peer.len;
    int table = (size == KEY4 || size == KEY6) ? locate(self, family_of_peer(size), peer.buf, &at)
                                               : -1;
    PyBuffer_Release(&peer);
    if (table < 0)
        Py_RETURN_NONE;
    const unsigned char *e = entry(self->tables[table], table, at);
    return Py_BuildValue("(Ny#)", PyBool_FromLong(table % 2 == 0), e + size, (Py_ssize_t)RECORD);
}

static PyObject *Swarm_items(SwarmObject *self, PyObject *unused) {
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return NULL;
    for (int table = 0; table < 4; table++) {
        const Table *t = self->tables[table];
        Py_ssize_t size = key_size(table);
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            if (is_gap(e, table))
                continue;
            PyObject *item = Py_BuildValue("(y#Ny#)", e, size, PyBool_FromLong(table % 2 == 0),
                                           e + size, (Py_ssize_t)RECORD);
            if (item == NULL || PyList_Append(items, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(items);
                return NULL;
            }
            Py_DECREF(item);
        }
    }
    return items;
}

/* Mirrors SwarmPy.peers_from: a small swarm is scanned, a big one keeps counts per source
 * (built on the first question, kept by every change, built again for other prefixes). */
static PyObject *Swarm_peers_from(SwarmObject *self, PyObject *args) {
    Py_buffer ip;
    Py_ssize_t v4_bytes, v6_bytes;
    if (!PyArg_ParseTuple(args, "y*nn:peers_from", &ip, &v4_bytes, &v6_bytes))
        return NULL;
    int family = ip.len == 4 ? 0 : 2;
    Py_ssize_t ip_size = family ? 16 : 4;
    /* the quotas' prefixes are whole bytes of the address; clamped for any other ask */
    v4_bytes = v4_bytes < 0 ? 0 : v4_bytes > 4 ? 4 : v4_bytes;
    v6_bytes = v6_bytes < 0 ? 0 : v6_bytes > 16 ? 16 : v6_bytes;
    Py_ssize_t prefix = family ? v6_bytes : v4_bytes;
    PyObject *result = NULL;
    if (ip.len != ip_size) { /* no peer of the swarm has this address's length */
        result = PyLong_FromLong(0);
        goto done;
    }
    Sources *sources = self->sources;
    if (sources != NULL && (sources->v4_bytes != v4_bytes || sources->v6_bytes != v6_bytes)) {
        sources_free(sources);
        self->sources = sources = NULL;
    }
    if (sources == NULL && Swarm_len(self) >= INDEXED_SWARM)
        self->sources = sources = sources_build(self, v4_bytes, v6_bytes);
    if (sources != NULL) {
        result = PyLong_FromUnsignedLong(source_peek(sources, ip.buf, ip.len));
        goto done;
    }
    size_t count = 0; /* a small swarm, or no memory for counts: scan */
    for (int table = family; table < family + 2; table++) {
        const Table *t = self->tables[table];
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            count += memcmp(e, ip.buf, (size_t)prefix) == 0 && !is_gap(e, table);
        }
    }
    result = PyLong_FromSize_t(count);
done:
    PyBuffer_Release(&ip);
    return result;
}

static PyObject *Swarm_oldest_ms(SwarmObject *self, PyObject *unused) {
    int found = 0;
    int64_t oldest = 0;
    for (int table = 0; table < 4; table++) {
        const unsigned char *head = table_head(self->tables[table], table);
        if (head != NULL && (!found || last_seen(head, table) < oldest)) {
            oldest = last_seen(head, table);
            found = 1;
        }
    }
    if (!found)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(oldest);
}

static PyObject *Swarm_expire(SwarmObject *self, PyObject *arg) {
    long long cutoff = PyLong_AsLongLong(arg);
    if (cutoff == -1 && PyErr_Occurred())
        return NULL;
    size_t removed = 0;
    for (int table = 0; table < 4; table++) {
        Table *t = self->tables[table];
        uint32_t before = t->live;
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            if (is_gap(e, table))
                continue;
            if (last_seen(e, table) >= cutoff)
                break;
            sources_forget(self, e, key_size(table));
            table_mark_gap(t, table, position);
        }
        if (t->live != before) {
            removed += before - t->live;
            if (table_tidy(&self->tables[table], table) < 0)
                return NULL;
        }
    }
    return PyLong_FromSize_t(removed);
}

/* The keys of live entries of ``tables`` (one or two), in order, into *out (count returned). */
static Py_ssize_t gather(SwarmObject *self, int first, int last, const unsigned char ***out) {
    size_t total = 0;
    for (int table = first; table <= last; table++)
        total += self->tables[table]->live;
    const unsigned char **keys = PyMem_Malloc((total ? total : 1) * sizeof *keys);
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t n = 0;
    for (int table = first; table <= last; table++) {
        const Table *t = self->tables[table];
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            if (!is_gap(e, table))
                keys[n++] = e;
        }
    }
    *out = keys;
    return n;
}

/* ``rng.sample(range(n), k)``: the indices the pure code's ``rng.sample(list, k)`` picks. */
static PyObject *sample(PyObject *rng, Py_ssize_t n, Py_ssize_t k) {
    PyObject *population = PyObject_CallFunction((PyObject *)&PyRange_Type, "n", n);
    if (population == NULL)
        return NULL;
    PyObject *chosen = PyObject_CallMethod(rng, "sample", "On", population, k);
    Py_DECREF(population);
    if (chosen != NULL && !PyList_Check(chosen)) {
        Py_DECREF(chosen);
        PyErr_SetString(PyExc_TypeError, "rng.sample() did not return a list");
        return NULL;
    }
    return chosen;
}

/* Mirrors swarms.SwarmPy.select step by step, so the same random source picks the same
 * peers: a seeder gets leechers only; the requester is never returned. */
static PyObject *Swarm_select(SwarmObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "select(requester, is_seeder, count, rng)");
        return NULL;
    }
    Py_buffer requester;
    if (PyObject_GetBuffer(args[0], &requester, PyBUF_SIMPLE) < 0)
        return NULL;
    int is_seeder = PyObject_IsTrue(args[1]);
    Py_ssize_t count = PyLong_AsSsize_t(args[2]);
    PyObject *result = NULL, *chosen = NULL;
    const unsigned char **keys = NULL;
    if (is_seeder < 0 || (count == -1 && PyErr_Occurred()))
        goto done;
    if (count <= 0) {
        result = PyBytes_FromStringAndSize(NULL, 0);
        goto done;
    }
    int family = requester.len == KEY4 ? 0 : 2;
    Py_ssize_t size = key_size(family);
    const unsigned char *me = requester.buf;
    int mine = requester.len == size; /* a key of another length is in no table */
    Py_ssize_t seeders = is_seeder ? 0 : (Py_ssize_t)self->tables[family]->live;
    Py_ssize_t n = gather(self, is_seeder ? family + 1 : family, family + 1, &keys);
    if (n < 0)
        goto done;
    int listed = !is_seeder && mine && table_find(self->tables[family + 1], family + 1, me) >= 0;
    if (n - listed <= count) { /* everybody eligible fits */
        result = PyBytes_FromStringAndSize(NULL, (n - listed) * size);
        if (result == NULL)
            goto done;
        unsigned char *write = (unsigned char *)PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i >= seeders && listed && memcmp(keys[i], me, (size_t)size) == 0)
                continue;
            memcpy(write, keys[i], (size_t)size);
            write += size;
        }
        goto done;
    }
    chosen = sample(args[3], n, is_seeder ? count : count + 1);
    if (chosen == NULL)
        goto done;
    result = PyBytes_FromStringAndSize(NULL, count * size);
    if (result == NULL)
        goto done;
    unsigned char *write = (unsigned char *)PyBytes_AS_STRING(result);
    Py_ssize_t out = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(chosen) && out < count; i++) {
        Py_ssize_t j = PyLong_AsSsize_t(PyList_GET_ITEM(chosen, i));
        if (j < 0 || j >= n) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_IndexError, "rng.sample() gave an index out of range");
            Py_CLEAR(result);
            goto done;
        }
        if (!is_seeder && mine && memcmp(keys[j], me, (size_t)size) == 0)
            continue;
        memcpy(write + out++ * size, keys[j], (size_t)size);
    }
    if (_PyBytes_Resize(&result, out * size) < 0)
        result = NULL;
done:
    Py_XDECREF(chosen);
    PyMem_Free(keys);
    PyBuffer_Release(&requester);
    return result;
}

static PyObject *Swarm_pack(SwarmObject *self, PyObject *unused) {
    Py_ssize_t total = 0;
    for (int table = 0; table < 4; table++)
        total += (Py_ssize_t)self->tables[table]->live * stride(table);
    PyObject *packed = PyBytes_FromStringAndSize(NULL, total);
    if (packed == NULL)
        return NULL;
    unsigned char *write = (unsigned char *)PyBytes_AS_STRING(packed);
    for (int table = 0; table < 4; table++) {
        const Table *t = self->tables[table];
        Py_ssize_t step = stride(table);
        if (t->used == 0)
            continue; /* no array at all */
        if (t->used == t->live) { /* no gaps: one copy */
            memcpy(write, t->entries, (size_t)t->used * step);
            write += (size_t)t->used * step;
            continue;
        }
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            if (!is_gap(e, table)) {
                memcpy(write, e, (size_t)step);
                write += step;
            }
        }
    }
    return packed;
}

static PyObject *Swarm_load(SwarmObject *self, PyObject *args) {
    Py_buffer data;
    unsigned int sizes[4];
    if (!PyArg_ParseTuple(args, "y*(IIII):load", &data, &sizes[0], &sizes[1], &sizes[2],
                          &sizes[3]))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t expected = 0;
    for (int table = 0; table < 4; table++)
        expected += (Py_ssize_t)sizes[table] * stride(table);
    if (Swarm_len(self) != 0) {
        PyErr_SetString(PyExc_ValueError, "load() fills an empty swarm");
        goto done;
    }
    if (data.len != expected) {
        PyErr_SetString(PyExc_ValueError, "peer records do not fill the tables");
        goto done;
    }
    const unsigned char *read = data.buf;
    for (int table = 0; table < 4; table++) /* every flag first, as the reference checks */
        for (uint32_t i = 0; i < sizes[table]; i++, read += stride(table))
            if (read[key_size(table) + AT_FLAG] > 1) {
                PyErr_SetString(PyExc_ValueError, "a peer record has a bad completion flag");
                goto done;
            }
    read = data.buf;
    for (int table = 0; table < 4; table++) {
        Table **t = &self->tables[table];
        Py_ssize_t step = stride(table);
        if (sizes[table] == 0)
            continue;
        if (table_resize(t, table, sizes[table]) < 0)
            goto failed;
        for (uint32_t i = 0; i < sizes[table]; i++, read += step) {
            uint32_t at;
            if (locate(self, table & 2, read, &at) >= 0) {
                PyErr_SetString(PyExc_ValueError, "a peer is in the swarm twice");
                goto failed;
            }
            unsigned char *e = table_append(t, table, read);
            if (e == NULL)
                goto failed;
            memcpy(e, read, (size_t)step);
        }
    }
    result = Py_NewRef(Py_None);
    goto done;
failed:
    Swarm_clear(self, NULL);
done:
    PyBuffer_Release(&data);
    return result;
}

static PyObject *Swarm_sizeof(SwarmObject *self, PyObject *unused) {
    size_t total = (size_t)Py_TYPE(self)->tp_basicsize; /* a Torrent's fields too */
    for (int table = 0; table < 4; table++) {
        const Table *t = self->tables[table];
        if (t != NO_PEERS)
            total += sizeof *t + (size_t)t->cap * stride(table) +
                     (t->index ? (size_t)(t->mask + 1) * slot_width(t) : 0);
    }
    return PyLong_FromSize_t(total);
}

static PyMethodDef Swarm_methods[] = {
    {"announce", (PyCFunction)(void (*)(void))Swarm_announce, METH_FASTCALL, NULL},
    {"remove", (PyCFunction)Swarm_remove, METH_O, NULL},
    {"clear", (PyCFunction)Swarm_clear, METH_NOARGS, NULL},
    {"counts", (PyCFunction)Swarm_counts, METH_NOARGS, NULL},
    {"record", (PyCFunction)Swarm_record, METH_O, NULL},
    {"items", (PyCFunction)Swarm_items, METH_NOARGS, NULL},
    {"peers_from", (PyCFunction)Swarm_peers_from, METH_VARARGS, NULL},
    {"oldest_ms", (PyCFunction)Swarm_oldest_ms, METH_NOARGS, NULL},
    {"expire", (PyCFunction)Swarm_expire, METH_O, NULL},
    {"select", (PyCFunction)(void (*)(void))Swarm_select, METH_FASTCALL, NULL},
    {"pack", (PyCFunction)Swarm_pack, METH_NOARGS, NULL},
    {"load", (PyCFunction)Swarm_load, METH_VARARGS, NULL},
    {"__sizeof__", (PyCFunction)Swarm_sizeof, METH_NOARGS, NULL},
    {NULL},
};

static PyGetSetDef Swarm_getset[] = {
    {"seeders", (getter)Swarm_get_seeders, NULL, NULL, NULL},
    {"leechers", (getter)Swarm_get_leechers, NULL, NULL, NULL},
    {NULL},
};

static PySequenceMethods Swarm_as_sequence = {
    .sq_length = (lenfunc)Swarm_len,
    .sq_contains = (objobjproc)Swarm_contains,
};

static PyTypeObject SwarmType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.Swarm",
    .tp_doc = "The live peers of one torrent (udpt/projections/swarms.py's SwarmPy, compiled).",
    .tp_basicsize = sizeof(SwarmObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = Swarm_new,
    .tp_dealloc = (destructor)Swarm_dealloc,
    .tp_methods = Swarm_methods,
    .tp_getset = Swarm_getset,
    .tp_as_sequence = &Swarm_as_sequence,
};

/* -- the Torrent type ----------------------------------------------------------------- */

/* udpt/projections/torrents.py's TorrentPy, compiled: its fields in the object, and the
 * object its own swarm. TorrentPy is four slots and a Swarm: two objects, an int for the
 * last announce's time, a GC header; this is one object of 96 bytes. It also holds the
 * bucket each of the state's two time indexes files it under (FiledIn, below), where a
 * dict by info hash cost a slot of about 50 bytes a torrent. */
typedef struct {
    SwarmObject peers; /* first: a Torrent is a Swarm, and ``torrent.swarm is torrent`` */
    unsigned long long completed;
    long long last_announce_ms;
    long long filed[2]; /* a bucket, or NOT_FILED */
    udpt_torrent_key key; /* where a TorrentTable keeps it (udpt/_torrents.c) */
    char flagged, registered;
} TorrentObject;

#define NOT_FILED LLONG_MIN /* no bucket: ms // 60000 of an int64 time never reaches it */

static PyObject *Torrent_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"flagged", "registered", "completed", "last_announce_ms", NULL};
    int flagged = 0, registered = 0;
    unsigned long long completed = 0;
    long long last_announce_ms = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$ppKL:Torrent", names, &flagged,
                                     &registered, &completed, &last_announce_ms))
        return NULL;
    TorrentObject *self = (TorrentObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    for (int table = 0; table < 4; table++)
        self->peers.tables[table] = NO_PEERS;
    self->filed[0] = self->filed[1] = NOT_FILED;
    self->flagged = (char)flagged;
    self->registered = (char)registered;
    self->completed = completed;
    self->last_announce_ms = last_announce_ms;
    return (PyObject *)self;
}

static PyObject *Torrent_get_swarm(PyObject *self, void *unused) { return Py_NewRef(self); }

/* flagged and registered take any truth value, as TorrentPy's slots do. */
static int Torrent_set_flag(TorrentObject *self, PyObject *value, void *which) {
    int truth = value == NULL ? -1 : PyObject_IsTrue(value);
    if (truth < 0) {
        if (value == NULL)
            PyErr_SetString(PyExc_AttributeError, "a Torrent's flags cannot be deleted");
        return -1;
    }
    *(which ? &self->registered : &self->flagged) = (char)truth;
    return 0;
}

static PyObject *Torrent_get_flag(TorrentObject *self, void *which) {
    return PyBool_FromLong(which ? self->registered : self->flagged);
}

/* TorrentPy.is_forgettable: nothing left to remember, in dynamic mode, at expiry. */
static PyObject *Torrent_is_forgettable(TorrentObject *self, PyObject *arg) {
    long long cutoff = PyLong_AsLongLong(arg);
    if (cutoff == -1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(!self->flagged && !self->registered &&
                           Swarm_len(&self->peers) == 0 && self->last_announce_ms < cutoff);
}

static PyMethodDef Torrent_methods[] = {
    {"is_forgettable", (PyCFunction)Torrent_is_forgettable, METH_O, NULL},
    {NULL},
};

static PyMemberDef Torrent_members[] = {
    {"completed", T_ULONGLONG, offsetof(TorrentObject, completed), 0, NULL},
    {"last_announce_ms", T_LONGLONG, offsetof(TorrentObject, last_announce_ms), 0, NULL},
    {NULL},
};

static PyGetSetDef Torrent_getset[] = {
    {"swarm", Torrent_get_swarm, NULL, "The torrent itself: its peers are its tables.", NULL},
    {"flagged", (getter)Torrent_get_flag, (setter)Torrent_set_flag, NULL, NULL},
    {"registered", (getter)Torrent_get_flag, (setter)Torrent_set_flag, NULL, (void *)1},
    {NULL},
};

static PyTypeObject TorrentType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.Torrent",
    .tp_doc = "One info hash and its peers (udpt/projections/torrents.py's TorrentPy, compiled).",
    .tp_basicsize = sizeof(TorrentObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_base = &SwarmType,
    .tp_new = Torrent_new,
    .tp_methods = Torrent_methods,
    .tp_members = Torrent_members,
    .tp_getset = Torrent_getset,
};

/* -- FiledIn: a time index's buckets, kept in the torrents ------------------------ */

/* time_index.py's ``_bucket_of`` for one of the state's two indexes: a mapping of info
 * hash to bucket whose values live in the torrents of ``torrents`` (a TorrentTable).
 * Only a torrent in the table can be filed: setting the bucket of any other key raises
 * KeyError, and a key whose torrent is gone is not filed. The state unfiles a torrent
 * before it takes it out of the table. */
typedef struct {
    PyObject_HEAD PyObject *torrents;
    int which; /* 0: by oldest peer, 1: idle */
} FiledInObject;

static PyTypeObject FiledInType;

static PyObject *FiledIn_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"torrents", "which", NULL};
    PyObject *torrents;
    int which;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi:FiledIn", names, &torrents, &which))
        return NULL;
    if (!udpt_is_torrent_table(torrents)) {
        PyErr_SetString(PyExc_TypeError, "FiledIn(torrents, which): torrents is a TorrentTable");
        return NULL;
    }
    if (which != 0 && which != 1) {
        PyErr_SetString(PyExc_ValueError, "FiledIn(torrents, which): which is 0 or 1");
        return NULL;
    }
    FiledInObject *self = (FiledInObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->torrents = Py_NewRef(torrents);
    self->which = which;
    return (PyObject *)self;
}

static void FiledIn_dealloc(FiledInObject *self) {
    Py_XDECREF(self->torrents);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The torrent of ``key``, borrowed; NULL if the table has none. A key is an info hash, or
 * the handle of one (its Torrent, what the index's lists hold): a handle whose torrent
 * has left the table is filed nowhere. */
static TorrentObject *filed_torrent(FiledInObject *self, PyObject *key) {
    if (Py_IS_TYPE(key, &TorrentType))
        return ((TorrentObject *)key)->key.held ? (TorrentObject *)key : NULL;
    return (TorrentObject *)udpt_torrents_get(self->torrents, key);
}

/* handle(info_hash): what the index's lists hold for a key filed (its Torrent, so that no
 * bytes object is kept for it); KeyError for a key whose torrent is not in the table. */
static PyObject *FiledIn_handle(FiledInObject *self, PyObject *key) {
    TorrentObject *torrent = filed_torrent(self, key);
    if (torrent == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return Py_NewRef((PyObject *)torrent);
}

/* key_of(handle): the info hash of a handle, the one its Torrent was last held under. */
static PyObject *FiledIn_key_of(FiledInObject *self, PyObject *handle) {
    if (!Py_IS_TYPE(handle, &TorrentType)) {
        PyErr_SetString(PyExc_TypeError, "key_of() takes a handle (a Torrent)");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)((TorrentObject *)handle)->key.info_hash, 20);
}

/* The bucket ``key`` is filed under, or NOT_FILED. */
static long long filed_bucket(FiledInObject *self, PyObject *key) {
    TorrentObject *torrent = filed_torrent(self, key);
    return torrent == NULL ? NOT_FILED : torrent->filed[self->which];
}

static PyObject *FiledIn_get(FiledInObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    long long bucket = filed_bucket(self, args[0]);
    if (bucket != NOT_FILED)
        return PyLong_FromLongLong(bucket);
    return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

static PyObject *FiledIn_subscript(FiledInObject *self, PyObject *key) {
    long long bucket = filed_bucket(self, key);
    if (bucket == NOT_FILED) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return PyLong_FromLongLong(bucket);
}

static int FiledIn_ass_subscript(FiledInObject *self, PyObject *key, PyObject *value) {
    TorrentObject *torrent = filed_torrent(self, key);
    if (torrent == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    if (value == NULL) {
        if (torrent->filed[self->which] == NOT_FILED) {
            PyErr_SetObject(PyExc_KeyError, key);
            return -1;
        }
        torrent->filed[self->which] = NOT_FILED;
        return 0;
    }
    long long bucket = PyLong_AsLongLong(value);
    if (bucket == -1 && PyErr_Occurred())
        return -1;
    if (bucket == NOT_FILED) {
        PyErr_SetString(PyExc_OverflowError, "a bucket out of range");
        return -1;
    }
    torrent->filed[self->which] = bucket;
    return 0;
}

static int FiledIn_contains(FiledInObject *self, PyObject *key) {
    return filed_bucket(self, key) != NOT_FILED;
}

static PyMethodDef FiledIn_methods[] = {
    {"handle", (PyCFunction)FiledIn_handle, METH_O, NULL},
    {"key_of", (PyCFunction)FiledIn_key_of, METH_O, NULL},
    {"get", (PyCFunction)(void (*)(void))FiledIn_get, METH_FASTCALL, NULL},
    {NULL},
};

static PyMappingMethods FiledIn_mapping = {
    .mp_subscript = (binaryfunc)FiledIn_subscript,
    .mp_ass_subscript = (objobjargproc)FiledIn_ass_subscript,
};

static PySequenceMethods FiledIn_sequence = {.sq_contains = (objobjproc)FiledIn_contains};

static PyTypeObject FiledInType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.FiledIn",
    .tp_doc = "A time index's bucket of each torrent, kept in the torrent (time_index.py).",
    .tp_basicsize = sizeof(FiledInObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = FiledIn_new,
    .tp_dealloc = (destructor)FiledIn_dealloc,
    .tp_methods = FiledIn_methods,
    .tp_as_mapping = &FiledIn_mapping,
    .tp_as_sequence = &FiledIn_sequence,
};

int udpt_torrent_fields_of(PyObject *torrent, udpt_torrent_fields *out) {
    if (!Py_IS_TYPE(torrent, &TorrentType)) {
        PyErr_SetString(PyExc_TypeError, "a torrent table value that is not a Torrent");
        return -1;
    }
    const TorrentObject *known = (const TorrentObject *)torrent;
    Table *const *t = known->peers.tables;
    *out = (udpt_torrent_fields){
        .flagged = known->flagged,
        .registered = known->registered,
        .completed = known->completed,
        .seeders = (Py_ssize_t)t[0]->live + t[2]->live,
        .leechers = (Py_ssize_t)t[1]->live + t[3]->live,
    };
    return 0;
}

/* -- the torrents of a snapshot, written without touching a reference count ---------- */

/* What bind_fold learnt: the AnnounceAccepted class, and time_index.py's TimeIndex and the
 * offset of its _bucket_of. */
static PyTypeObject *AnnounceType, *TimeIndexType;
static Py_ssize_t at_bucket_of;

/* The offset of cls's slot ``name`` (a member descriptor holding an object), or -1. */
static Py_ssize_t slot_offset(PyObject *cls, const char *name) {
    PyObject *slot = PyObject_GetAttrString(cls, name);
    if (slot == NULL)
        return -1;
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(slot, &PyMemberDescr_Type) &&
        ((PyMemberDescrObject *)slot)->d_member->type == T_OBJECT_EX)
        offset = ((PyMemberDescrObject *)slot)->d_member->offset;
    else
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", ((PyTypeObject *)cls)->tp_name,
                     name);
    Py_DECREF(slot);
    return offset;
}

static PyObject *bind_fold(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "bind_fold(AnnounceAccepted, TimeIndex)");
        return NULL;
    }
    if ((at_bucket_of = slot_offset(args[1], "_bucket_of")) < 0)
        return NULL;
    Py_XSETREF(AnnounceType, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(TimeIndexType, (PyTypeObject *)Py_NewRef(args[1]));
    Py_RETURN_NONE;
}


typedef struct {
    int fd;
    size_t used;
    unsigned char data[1 << 20];
} Output;

static int output_flush(Output *out) {
    size_t done = 0;
    while (done < out->used) {
        ssize_t wrote = write(out->fd, out->data + done, out->used - done);
        if (wrote < 0 && errno == EINTR)
            continue;
        if (wrote < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        done += (size_t)wrote;
    }
    out->used = 0;
    return 0;
}

static int output_put(Output *out, const void *data, size_t size) {
    while (size) {
        size_t room = sizeof out->data - out->used, step = size < room ? size : room;
        memcpy(out->data + out->used, data, step);
        out->used += step;
        data = (const unsigned char *)data + step;
        size -= step;
        if (out->used == sizeof out->data && output_flush(out) < 0)
            return -1;
    }
    return 0;
}

static inline PyObject *slot(PyObject *object, Py_ssize_t offset) {
    return *(PyObject **)((char *)object + offset);
}

/* The announce's info hash as an object: the one it came with, or one made from its bytes
 * the first time it is asked for and kept in ``*made`` (the caller's to release). */
static PyObject *info_hash_object(const udpt_announce_at *a, PyObject **made) {
    if (a->info_hash != NULL)
        return a->info_hash;
    if (*made == NULL)
        *made = PyBytes_FromStringAndSize((const char *)a->hash, 20);
    return *made;
}

/* ``key in index``, where ``torrent`` is the torrent of the announce's info hash in
 * ``torrents``; for a TimeIndex, straight in its _bucket_of (its __contains__ is a Python
 * call): the torrent's own field when the index files the torrents of that table, or a
 * dict. */
static int index_holds(PyObject *index, PyObject *torrents, const udpt_announce_at *a,
                       PyObject **made, const TorrentObject *torrent) {
    PyObject *bucket_of = Py_IS_TYPE(index, TimeIndexType) ? slot(index, at_bucket_of) : NULL;
    if (bucket_of != NULL && Py_IS_TYPE(bucket_of, &FiledInType) &&
        ((FiledInObject *)bucket_of)->torrents == torrents)
        return torrent->filed[((FiledInObject *)bucket_of)->which] != NOT_FILED;
    PyObject *key = info_hash_object(a, made);
    if (key == NULL)
        return -1;
    if (bucket_of != NULL && PyDict_Check(bucket_of))
        return PyDict_Contains(bucket_of, key);
    return PySequence_Contains(index, key);
}

/* One torrent's part of the snapshot: state._TORRENT (!20sBQq4I), then swarm.pack(). */
static int write_torrent(void *output, const unsigned char *info_hash, PyObject *torrent) {
    Output *out = output;
    const TorrentObject *known = (const TorrentObject *)torrent;
    const SwarmObject *peers = &known->peers;
    unsigned char head[53];
    memcpy(head, info_hash, 20);
    head[20] = (unsigned char)((known->flagged ? 1 : 0) | (known->registered ? 2 : 0));
    store64(head + 21, known->completed);
    store64(head + 29, (uint64_t)known->last_announce_ms);
    for (int table = 0; table < 4; table++) {
        uint32_t live = __builtin_bswap32(peers->tables[table]->live);
        memcpy(head + 37 + 4 * table, &live, 4);
    }
    if (output_put(out, head, sizeof head) < 0)
        return -1;
    for (int table = 0; table < 4; table++) {
        const Table *t = peers->tables[table];
        size_t step = (size_t)stride(table);
        if (t->used == t->live) {
            if (output_put(out, t->entries, t->used * step) < 0)
                return -1;
            continue;
        }
        for (uint32_t position = 0; position < t->used; position++) {
            const unsigned char *e = entry(t, table, position);
            if (!is_gap(e, table) && output_put(out, e, step) < 0)
                return -1;
        }
    }
    return 0;
}

/* The torrents of TrackerState.snapshot(), by info hash, written to a file descriptor. It
 * reads the table, in its order, and the Torrents through borrowed pointers only: in a
 * forked child, a reference count written is a page copied. */
static PyObject *write_snapshot_torrents(PyObject *module, PyObject *args) {
    PyObject *torrents;
    int fd;
    if (!PyArg_ParseTuple(args, "Oi:write_snapshot_torrents", &torrents, &fd))
        return NULL;
    if (!udpt_is_torrent_table(torrents)) {
        PyErr_SetString(PyExc_TypeError, "write_snapshot_torrents() takes a TorrentTable");
        return NULL;
    }
    Output *out = malloc(sizeof *out);
    if (out == NULL)
        return PyErr_NoMemory();
    out->fd = fd;
    out->used = 0;
    int written = udpt_torrents_each(torrents, write_torrent, out) == 0 && output_flush(out) == 0;
    free(out);
    if (!written)
        return NULL;
    Py_RETURN_NONE;
}

/* -- the fold of an announce ------------------------------------------------------- */

#define MAX_COMPLETED 0xFFFFFFFFFFFFFFFFULL /* the snapshot holds 64 bits */
#define EVENT_STOPPED 3                     /* AnnounceEvent.STOPPED */

static int call_file(PyObject *index, PyObject *info_hash, PyObject *at_ms) {
    PyObject *none = PyObject_CallMethod(index, "file", "OO", info_hash, at_ms);
    Py_XDECREF(none);
    return none == NULL ? -1 : 0;
}

/* TrackerState._announced (udpt/projections/state.py), the reference, step by step, for
 * the announce ``a`` into ``t``'s tables. Torrents are made by calling the Torrent type and
 * stored through the table's __setitem__ (it keeps their order). The peer's record is read
 * by ``update`` only where the reference packs it, so that a record that cannot be read
 * fails at the same step. */
int udpt_fold_announce(const udpt_fold_target *t, const udpt_announce_at *a,
                       udpt_read_update update, void *context) {
    if ((a->ip_size != 4 && a->ip_size != 16) || a->port < 0 || a->port > 65535) {
        PyErr_SetString(PyExc_ValueError, "an announce with no valid peer address");
        return -1;
    }
    unsigned char key[KEY6];
    Py_ssize_t size = a->ip_size + 2;
    memcpy(key, a->ip, (size_t)a->ip_size);
    key[size - 2] = (unsigned char)(a->port >> 8);
    key[size - 1] = (unsigned char)a->port;
    PyObject *torrent = a->info_hash ? udpt_torrents_get(t->torrents, a->info_hash)
                                     : udpt_torrents_find(t->torrents, a->hash); /* borrowed */
    TorrentObject *known = (TorrentObject *)torrent;
    PyObject *made = NULL, *made_hash = NULL, *info_hash;
    int result = -1;
    if (a->event == EVENT_STOPPED) {
        uint32_t at;
        int table = torrent ? locate(&known->peers, family_of_peer(size), key, &at) : -1;
        if (table < 0)
            return 0;
        if (swarm_remove_at(&known->peers, table, at) < 0)
            return -1;
        if (Swarm_len(&known->peers) != 0)
            return 0;
        PyObject *last = PyLong_FromLongLong(known->last_announce_ms);
        info_hash = last ? info_hash_object(a, &made_hash) : NULL;
        result = info_hash ? call_file(t->idle, info_hash, last) : -1;
        Py_XDECREF(last);
        goto done;
    }
    if (torrent == NULL) {
        made = PyObject_CallNoArgs((PyObject *)&TorrentType);
        info_hash = made ? info_hash_object(a, &made_hash) : NULL;
        if (info_hash == NULL || PyObject_SetItem(t->torrents, info_hash, made) < 0)
            goto done;
        known = (TorrentObject *)made; /* the table holds it now; our reference goes at the end */
    } else if (known->flagged) {
        return 0; /* flagged between decision and commit: the flag wins */
    }
    udpt_peer_update u;
    int filed = index_holds(t->by_oldest, t->torrents, a, &made_hash, known);
    if (filed < 0)
        goto done;
    if (!filed && ((info_hash = info_hash_object(a, &made_hash)) == NULL ||
                   call_file(t->by_oldest, info_hash, a->at_ms) < 0))
        goto done;
    /* the member's type, as the reference sets it (PyLong_AsLongLong takes a slow way for a
     * time of today, an int of two digits) */
    int overflow = 0;
    long long at_ms = PyLong_AsLongLongAndOverflow(a->at_ms, &overflow);
    if (overflow)
        PyErr_SetString(PyExc_OverflowError, "int too big to convert");
    if (at_ms == -1 && PyErr_Occurred())
        goto done;
    known->last_announce_ms = at_ms;
    if (update(context, &u) < 0)
        goto done;
    int completes = swarm_announce(&known->peers, key, size, &u);
    if (completes < 0)
        goto done;
    if (completes && known->completed < MAX_COMPLETED)
        known->completed++;
    result = 0;
done:
    Py_XDECREF(made);
    Py_XDECREF(made_hash);
    return result;
}

static int update_of_tuple(void *e, udpt_peer_update *u) {
    return peer_update_of((PyObject *)e, u);
}

/* fold_announce's work on one AnnounceAccepted tuple. */
static int fold_one(const udpt_fold_target *t, PyObject *e) {
    if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 10) {
        PyErr_SetString(PyExc_TypeError, "fold_announce() takes an AnnounceAccepted");
        return -1;
    }
    PyObject *ip = PyTuple_GET_ITEM(e, 2);
    udpt_announce_at a = {
        .at_ms = PyTuple_GET_ITEM(e, 0),
        .info_hash = PyTuple_GET_ITEM(e, 1),
        .port = PyLong_AsLong(PyTuple_GET_ITEM(e, 3)),
        .event = PyLong_AsLong(PyTuple_GET_ITEM(e, 6)),
    };
    if (PyErr_Occurred())
        return -1;
    if (!PyBytes_Check(ip)) {
        PyErr_SetString(PyExc_ValueError, "an announce with no valid peer address");
        return -1;
    }
    a.ip = (const unsigned char *)PyBytes_AS_STRING(ip);
    a.ip_size = PyBytes_GET_SIZE(ip);
    return udpt_fold_announce(t, &a, update_of_tuple, e);
}

static PyObject *fold_announce(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !udpt_is_torrent_table(args[0])) {
        PyErr_SetString(PyExc_TypeError, "fold_announce(torrents, by_oldest, idle, event)");
        return NULL;
    }
    if (AnnounceType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_fold() first");
        return NULL;
    }
    udpt_fold_target t = {.torrents = args[0], .by_oldest = args[1], .idle = args[2]};
    if (fold_one(&t, args[3]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

int udpt_fold_begin(udpt_fold_target *t, PyObject *state) {
    if (AnnounceType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_fold() first");
        return -1;
    }
    t->state = state;
    t->torrents = PyObject_GetAttrString(state, "torrents");
    t->by_oldest = PyObject_GetAttrString(state, "_by_oldest_peer");
    t->idle = PyObject_GetAttrString(state, "_idle");
    PyObject *stats = PyObject_GetAttrString(state, "stats");
    t->by_kind = stats ? PyObject_GetAttrString(stats, "by_kind") : NULL;
    Py_XDECREF(stats);
    t->folded = 0;
    if (!t->torrents || !t->by_oldest || !t->idle || !t->by_kind || udpt_fold_resync(t) < 0)
        return -1;
    if (!udpt_is_torrent_table(t->torrents) || !PyDict_Check(t->by_kind)) {
        PyErr_SetString(PyExc_TypeError, "the compiled fold takes a TrackerState");
        return -1;
    }
    return 0;
}

int udpt_fold_next(udpt_fold_target *t, long long seq) {
    if (seq <= t->last_seq) {
        PyErr_Format(PyExc_ValueError, "event %lld applied after %lld", seq, t->last_seq);
        return -1;
    }
    return 0;
}

void udpt_fold_done(udpt_fold_target *t, long long seq) {
    t->last_seq = seq;
    t->folded++;
}

/* As apply() counts, for every announce folded since the last call: the stats and last_seq.
 * An exception already set is kept; 0, or -1 (with the exception of the update). */
int udpt_fold_count(udpt_fold_target *t) {
    if (t->folded == 0)
        return 0;
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *name = PyUnicode_FromString("AnnounceAccepted");
    PyObject *count = name ? PyDict_GetItemWithError(t->by_kind, name) : NULL;
    PyObject *more =
        count ? PyLong_FromLongLong(PyLong_AsLongLong(count) + t->folded) : NULL;
    PyObject *seq = PyLong_FromLongLong(t->last_seq);
    int stored = more && seq && PyDict_SetItem(t->by_kind, name, more) == 0 &&
                 PyObject_SetAttrString(t->state, "last_seq", seq) == 0;
    Py_XDECREF(name);
    Py_XDECREF(more);
    Py_XDECREF(seq);
    t->folded = 0;
    if (!stored) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return -1;
    }
    PyErr_Restore(type, value, traceback);
    return 0;
}

int udpt_fold_resync(udpt_fold_target *t) {
    PyObject *last_value = PyObject_GetAttrString(t->state, "last_seq");
    t->last_seq = last_value ? PyLong_AsLongLong(last_value) : -1;
    Py_XDECREF(last_value);
    return PyErr_Occurred() ? -1 : 0;
}

void udpt_fold_end(udpt_fold_target *t) {
    Py_CLEAR(t->torrents);
    Py_CLEAR(t->by_oldest);
    Py_CLEAR(t->idle);
    Py_CLEAR(t->by_kind);
}

/* TrackerState.apply of events[start], events[start + 1], ... (seq first_seq + index) while
 * they are announces: fold_announces(state, first_seq, events, start) -> the index reached.
 * The stats and last_seq are brought up to date once, at the end, also when an announce
 * fails (its error is raised then, last_seq naming the event before it). */
static PyObject *fold_announces(PyObject *module, PyObject *args) {
    PyObject *state, *events;
    long long first_seq;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OLO!n:fold_announces", &state, &first_seq, &PyList_Type, &events,
                          &start))
        return NULL;
    udpt_fold_target t = {0};
    PyObject *result = NULL;
    Py_ssize_t index = start;
    if (udpt_fold_begin(&t, state) < 0)
        goto done;
    for (; index < PyList_GET_SIZE(events); index++) {
        PyObject *e = PyList_GET_ITEM(events, index);
        if (!Py_IS_TYPE(e, AnnounceType))
            break;
        if (udpt_fold_next(&t, first_seq + index) < 0 || fold_one(&t, e) < 0)
            break;
        udpt_fold_done(&t, first_seq + index);
    }
    if (udpt_fold_count(&t) == 0 && !PyErr_Occurred())
        result = PyLong_FromSsize_t(index);
done:
    udpt_fold_end(&t);
    return result;
}

/* Calls fn(args...) and drops the result; 0, or -1 with the exception. */
static int call_for_effect(PyObject *fn, PyObject *const *args, size_t count) {
    PyObject *result = PyObject_Vectorcall(fn, args, count, NULL);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

PyObject *udpt_take_error(void) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
}

/* Intake._fold's loop (udpt/intake.py), the reference, for the run of announces from
 * batch[start] on: fold_answered(state, first_seq, batch, start, tracker, failed,
 * answer_failed) -> the index of the first event that is not an AnnounceAccepted (or
 * len(batch)). Each (event, record, payload) is folded as apply_committed folds it (a
 * failing fold: failed(seq, event, error)); when the tracker counts creations and the
 * event has a payload, tracker.settled(info_hash); then, with the state's stats and
 * last_seq up to date, its payload (commit, deliver, to) is answered:
 * deliver(to, commit.answer(commit.context)), a failure told to answer_failed(seq, error). */
static PyObject *fold_answered(PyObject *module, PyObject *args) {
    PyObject *state, *batch, *tracker, *failed, *answer_failed;
    long long first_seq;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OLO!nOOO:fold_answered", &state, &first_seq, &PyList_Type,
                          &batch, &start, &tracker, &failed, &answer_failed))
        return NULL;
    udpt_fold_target t = {0};
    PyObject *creating = NULL, *settled = NULL, *result = NULL;
    Py_ssize_t index = start;
    if (udpt_fold_begin(&t, state) < 0 || (creating = PyObject_GetAttrString(tracker,
                                                                            "creating")) == NULL)
        goto done;
    for (; index < PyList_GET_SIZE(batch); index++) {
        PyObject *item = PyList_GET_ITEM(batch, index);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 ||
            !Py_IS_TYPE(PyTuple_GET_ITEM(item, 0), AnnounceType))
            break;
        PyObject *event = PyTuple_GET_ITEM(item, 0), *payload = PyTuple_GET_ITEM(item, 2);
        long long seq = first_seq + index;
        if (udpt_fold_next(&t, seq) == 0 && fold_one(&t, event) == 0) {
            udpt_fold_done(&t, seq);
        } else {
            if (udpt_fold_count(&t) < 0)
                goto done;
            PyObject *error = udpt_take_error();
            PyObject *number = PyLong_FromLongLong(seq);
            PyObject *told[3] = {number, event, error ? error : Py_None};
            int ok = number != NULL && call_for_effect(failed, told, 3) == 0;
            Py_XDECREF(number);
            Py_XDECREF(error);
            if (!ok || udpt_fold_resync(&t) < 0)
                goto done;
        }
        if (payload == Py_None)
            continue;
        if (PyDict_Check(creating) && PyDict_GET_SIZE(creating) > 0) {
            if (settled == NULL && (settled = PyObject_GetAttrString(tracker, "settled")) == NULL)
                goto done;
            PyObject *info_hash = PyTuple_GET_ITEM(event, 1);
            if (call_for_effect(settled, &info_hash, 1) < 0)
                goto done;
        }
        if (udpt_fold_count(&t) < 0) /* the answer sees the state as the reference's does */
            goto done;
        PyObject *commit = PyTuple_Check(payload) && PyTuple_GET_SIZE(payload) == 3
                               ? PyTuple_GET_ITEM(payload, 0)
                               : NULL;
        if (commit == NULL || !PyTuple_Check(commit) || PyTuple_GET_SIZE(commit) != 3) {
            PyErr_SetString(PyExc_TypeError, "a payload that is not (commit, deliver, to)");
        } else {
            PyObject *context = PyTuple_GET_ITEM(commit, 2);
            PyObject *outcome = PyObject_Vectorcall(PyTuple_GET_ITEM(commit, 1), &context, 1,
                                                    NULL);
            if (outcome != NULL) {
                PyObject *delivered[2] = {PyTuple_GET_ITEM(payload, 2), outcome};
                call_for_effect(PyTuple_GET_ITEM(payload, 1), delivered, 2);
                Py_DECREF(outcome);
            }
        }
        if (PyErr_Occurred()) {
            PyObject *error = udpt_take_error();
            PyObject *number = PyLong_FromLongLong(seq);
            PyObject *told[2] = {number, error ? error : Py_None};
            int ok = number != NULL && call_for_effect(answer_failed, told, 2) == 0;
            Py_XDECREF(number);
            Py_XDECREF(error);
            if (!ok)
                goto done;
        }
    }
    if (udpt_fold_count(&t) == 0)
        result = PyLong_FromSsize_t(index);
done:
    udpt_fold_end(&t);
    Py_XDECREF(creating);
    Py_XDECREF(settled);
    return result;
}

static PyMethodDef snapshot_methods[] = {
    {"bind_fold", (PyCFunction)(void (*)(void))bind_fold, METH_FASTCALL, NULL},
    {"write_snapshot_torrents", (PyCFunction)write_snapshot_torrents, METH_VARARGS, NULL},
    {"fold_announce", (PyCFunction)(void (*)(void))fold_announce, METH_FASTCALL, NULL},
    {"fold_announces", (PyCFunction)fold_announces, METH_VARARGS, NULL},
    {"fold_answered", (PyCFunction)fold_answered, METH_VARARGS, NULL},
    {NULL},
};

int udpt_swarm_register(PyObject *module) {
    if (udpt_keyhash_init() < 0 ||
        udpt_torrents_register(module, &TorrentType, offsetof(TorrentObject, key)) < 0 ||
        PyModule_AddType(module, &SwarmType) < 0 || PyModule_AddType(module, &TorrentType) < 0 ||
        PyModule_AddType(module, &FiledInType) < 0)
        return -1;
    return PyModule_AddFunctions(module, snapshot_methods);
}
