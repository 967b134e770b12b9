/* udpt/_hashindex.c, the log's numbers by info hash, and what udpt/_recut.c uses of it. */
#ifndef UDPT_HASHINDEX_H
#define UDPT_HASHINDEX_H

#include <Python.h>

/* Adds the HashIndex type to ``module``; 0, or -1 with an exception set. */
int udpt_hash_index_register(PyObject *module);

/* Whether ``object`` is a HashIndex. */
int udpt_is_hash_index(PyObject *object);

/* The number ``index`` (a HashIndex) gives ``key``: 1 found, 0 not, -1 on an error. */
int udpt_hash_index_number(PyObject *index, PyObject *key, Py_ssize_t *number);

#endif
