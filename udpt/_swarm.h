/* udpt/_swarm.c: the compiled swarm and fold, and what udpt/_core.c uses of them. */
#ifndef UDPT_SWARM_H
#define UDPT_SWARM_H

#include <Python.h>
#include <stdint.h>

/* Adds the Swarm, Torrent, FiledIn and TorrentTable types and the fold's functions to
 * ``module``; 0, or -1 with an exception. */
int udpt_swarm_register(PyObject *module);

/* A compiled Torrent as the announce path reads it: its fields and its peers by kind. */
typedef struct {
    int flagged, registered;
    unsigned long long completed;
    Py_ssize_t seeders, leechers;
} udpt_torrent_fields;

/* ``torrent``'s fields, read in place: 0, or -1 with a TypeError if it is not a Torrent. */
int udpt_torrent_fields_of(PyObject *torrent, udpt_torrent_fields *out);

/* What a swarm keeps of an announce: the record's fields. */
typedef struct {
    int64_t at_ms, event, uploaded, downloaded, left;
    uint32_t key;
    const unsigned char *peer_id;
    size_t peer_id_size;
} udpt_peer_update;

/* What the fold reads of an announce before it touches the peer's record. The info hash
 * is an object, or (info_hash NULL) the 20 bytes at ``hash``: the fold makes the object
 * only if it needs one, to create or file the torrent. */
typedef struct {
    PyObject *at_ms, *info_hash; /* borrowed */
    const unsigned char *hash;
    const unsigned char *ip;
    Py_ssize_t ip_size;
    long port, event;
} udpt_announce_at;

/* A TrackerState being folded into: its tables (new references), and the announces folded
 * since the stats were last brought up to date. */
typedef struct {
    PyObject *state, *torrents, *by_oldest, *idle, *by_kind;
    long long last_seq;
    long long folded;
} udpt_fold_target;

/* Fills ``u`` with the peer's record; 0, or -1 with an exception set. */
typedef int (*udpt_read_update)(void *context, udpt_peer_update *u);

/* The fold of a TrackerState: begin (0 or -1), then for each announce of seq ``seq``
 * udpt_fold_next (is it after last_seq?), udpt_fold_announce and udpt_fold_done; count
 * brings the state's stats and last_seq up to date (before anything else folds into it,
 * and at the end) and resync reads last_seq back after it has; end releases the tables. */
int udpt_fold_begin(udpt_fold_target *t, PyObject *state);
int udpt_fold_next(udpt_fold_target *t, long long seq);
int udpt_fold_announce(const udpt_fold_target *t, const udpt_announce_at *a,
                       udpt_read_update update, void *context);
void udpt_fold_done(udpt_fold_target *t, long long seq);
int udpt_fold_count(udpt_fold_target *t);
int udpt_fold_resync(udpt_fold_target *t); /* last_seq again, after Python folded */
void udpt_fold_end(udpt_fold_target *t);

/* The exception pending, taken (normalised, its traceback attached), to hand to Python;
 * NULL if none. */
PyObject *udpt_take_error(void);

#endif
