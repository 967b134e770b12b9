/* udpt/_recut.c, compaction's StoredRun, and what udpt/_core.c uses of it. */
#ifndef UDPT_RECUT_H
#define UDPT_RECUT_H

#include <Python.h>

/* Adds the StoredRun type and stored_run to ``module``; 0, or -1 with an exception set. */
int udpt_recut_register(PyObject *module);

#endif
