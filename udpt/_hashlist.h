/* udpt/_hashlist.c, the log's dictionary packed, and how the other parts read a dictionary. */
#ifndef UDPT_HASHLIST_H
#define UDPT_HASHLIST_H

#include <Python.h>

/* Adds the HashList type to ``module``; 0, or -1 with an exception set. */
int udpt_hash_list_register(PyObject *module);

/* Whether ``object`` is a HashList. */
int udpt_is_hash_list(PyObject *object);

/* How many entries a dictionary holds: a HashList, or a list (of bytes, as tests and the
 * archive's readers pass); -1 with TypeError for anything else. */
Py_ssize_t udpt_dictionary_size(PyObject *hashes);

/* The bytes of entry ``i`` (in range) of a dictionary, borrowed: 1, or 0 for a list entry
 * that is not exact bytes (never an info hash). */
int udpt_dictionary_entry(PyObject *hashes, Py_ssize_t i, const unsigned char **data,
                          Py_ssize_t *size);

/* Entry ``i`` (in range) of a dictionary as an object: a new reference, or NULL with an
 * exception set. */
PyObject *udpt_dictionary_item(PyObject *hashes, Py_ssize_t i);

#endif
