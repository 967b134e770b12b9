/* udpt/_lane.c, the compiled announce path, and what it uses of udpt/_core.c. */
#ifndef UDPT_LANE_H
#define UDPT_LANE_H

#include <Python.h>

#include "_codec.h"

/* The request NamedTuple udpt.wire.parse_request returns for a parsed datagram. */
PyObject *udpt_request_value(int kind, const udpt_request *r);

/* Adds the Lane type and answer_announce to ``module`` (once its functions are in it);
 * 0, or -1 with an exception set. */
int udpt_lane_register(PyObject *module);

#endif
