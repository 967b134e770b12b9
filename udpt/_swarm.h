/* udpt/_swarm.c's entry point for the _core module's initialisation. */
#ifndef UDPT_SWARM_H
#define UDPT_SWARM_H

#include <Python.h>

/* Adds the Swarm type to ``module``; 0, or -1 with an exception set. */
int udpt_swarm_register(PyObject *module);

#endif
