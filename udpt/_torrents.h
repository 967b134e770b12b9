/* udpt/_torrents.c, the torrent table, and what udpt/_swarm.c and udpt/_lane.c use of it. */
#ifndef UDPT_TORRENTS_H
#define UDPT_TORRENTS_H

#include <Python.h>

/* Where a Torrent keeps the key it is held under: the table holds no key objects, only the
 * Torrents, each with its 20-byte info hash inside (udpt/_swarm.c's TorrentObject). */
typedef struct {
    unsigned char info_hash[20];
    char held; /* in a table, under info_hash */
} udpt_torrent_key;

/* Adds the TorrentTable type to ``module``, for Torrents of ``torrent_type`` (which takes
 * no subclasses) whose key is at ``key_offset``; 0, or -1 with an exception set. */
int udpt_torrents_register(PyObject *module, PyTypeObject *torrent_type, Py_ssize_t key_offset);

/* Whether ``object`` is a TorrentTable (or of a subclass). */
int udpt_is_torrent_table(PyObject *object);

/* The Torrent kept under the 20 bytes at ``info_hash``, borrowed; NULL if there is none. */
PyObject *udpt_torrents_find(PyObject *table, const unsigned char *info_hash);

/* The same for an info hash object: NULL, and no error, for anything but 20 bytes. */
PyObject *udpt_torrents_get(PyObject *table, PyObject *info_hash);

/* How many torrents ``table`` holds. */
Py_ssize_t udpt_torrents_count(PyObject *table);

/* Calls ``each`` with every info hash and Torrent (borrowed) of ``table`` in info-hash
 * order, touching no reference count, until it returns non-zero; returns what it last did. */
int udpt_torrents_each(PyObject *table,
                       int (*each)(void *context, const unsigned char *info_hash,
                                   PyObject *torrent),
                       void *context);

#endif
