/* udpt/_lane.c, the compiled announce path, and what udpt/_core.c uses of it. */
#ifndef UDPT_LANE_H
#define UDPT_LANE_H

#include <Python.h>

#include "_codec.h"

/* The AnnounceRequest (``type``, udpt.wire's) that parse_request returns for ``r``. */
PyObject *udpt_announce_request(PyTypeObject *type, const udpt_request *r);

/* Adds the Lane type and answer_announce to ``module`` (once its functions are in it);
 * 0, or -1 with an exception set. */
int udpt_lane_register(PyObject *module);

#endif
