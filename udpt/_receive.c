/* udpt._receive: read a socket's queued datagrams in batches, dropping garbage in C.
 *
 * The compiled twin of the receive half of udpt/udp.py's asyncio-dgram endpoint
 * (DgramEndpoint, the reference): the same datagrams reach the handler, as the
 * same (bytes, address) pairs, and what may_be_request (udpt/wire.py) rejects is
 * only counted. Under a flood of garbage the reference pays a loop callback, a
 * queue put and a Python check per datagram; here recvmmsg reads up to 64 at
 * once and a datagram that cannot be a request costs no Python object at all.
 *
 * The GIL is held throughout: the socket is non-blocking, so no call waits, and
 * the one receive area below needs no other lock.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define SLOTS 64              /* datagrams per recvmmsg call */
#define REQUEST_HEADER 16     /* connection id, action, transaction id */
#define MAX_DATAGRAM 65536

static char *area;            /* SLOTS buffers of area_slot bytes */
static Py_ssize_t area_slot;

/* may_be_request: long enough for the header, and an action the parser reads. */
static int
may_be_request(const unsigned char *data, Py_ssize_t length)
{
    if (length < REQUEST_HEADER)
        return 0;
    if (data[8] != 0 || data[9] != 0 || data[10] != 0)
        return 0;
    return data[11] <= 2;     /* connect, announce, scrape */
}

/* The address as Python's socket module gives it: (host, port) or (host, port, flowinfo, scope_id). */
static PyObject *
address_of(const struct sockaddr_storage *from)
{
    char host[INET6_ADDRSTRLEN];
    if (from->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)from;
        if (inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, ntohs(v4->sin_port));
    }
    if (from->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)from;
        if (inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, ntohs(v6->sin6_port),
                             (unsigned int)ntohl(v6->sin6_flowinfo),
                             (unsigned int)v6->sin6_scope_id);
    }
    PyErr_Format(PyExc_OSError, "datagram from address family %d", (int)from->ss_family);
    return NULL;
}

static int
ensure_area(Py_ssize_t slot)
{
    if (area != NULL && area_slot == slot)
        return 0;
    char *fresh = PyMem_RawMalloc((size_t)slot * SLOTS);
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyMem_RawFree(area);
    area = fresh;
    area_slot = slot;
    return 0;
}

/* Append (data, address) to taken; -1 on a Python error. */
static int
take(PyObject *taken, const char *data, Py_ssize_t length, const struct sockaddr_storage *from)
{
    PyObject *address = address_of(from);
    if (address == NULL)
        return -1;
    PyObject *pair = Py_BuildValue("(y#N)", data, length, address);
    if (pair == NULL)
        return -1;
    int failed = PyList_Append(taken, pair);
    Py_DECREF(pair);
    return failed;
}

PyDoc_STRVAR(receive_doc,
"receive(fd, limit, size) -> (taken, rejected, errors)\n\n"
"Read at most ``limit`` queued datagrams from non-blocking socket ``fd``, each cut\n"
"to ``size`` bytes. ``taken``: the (bytes, address) pairs that may be requests, in\n"
"arrival order; ``rejected``: datagrams that cannot be; ``errors``: receive errors\n"
"(an ICMP error reported for an earlier send, say), each skipped. Returns as soon\n"
"as the socket has nothing more.");

static PyObject *
receive(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    Py_ssize_t limit, size;
    if (!PyArg_ParseTuple(args, "inn:receive", &fd, &limit, &size))
        return NULL;
    if (limit < 1 || size < REQUEST_HEADER || size > MAX_DATAGRAM) {
        PyErr_SetString(PyExc_ValueError, "limit must be >= 1 and size within 16..65536");
        return NULL;
    }
    if (ensure_area(size) < 0)
        return NULL;
    PyObject *taken = PyList_New(0);
    if (taken == NULL)
        return NULL;

    struct mmsghdr messages[SLOTS];
    struct iovec vectors[SLOTS];
    struct sockaddr_storage sources[SLOTS];
    Py_ssize_t done = 0, rejected = 0, errors = 0;
    while (done < limit) {
        unsigned int slots = (unsigned int)(limit - done < SLOTS ? limit - done : SLOTS);
        for (unsigned int i = 0; i < slots; i++) {
            vectors[i].iov_base = area + (Py_ssize_t)i * size;
            vectors[i].iov_len = (size_t)size;
            memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
            messages[i].msg_hdr.msg_iov = &vectors[i];
            messages[i].msg_hdr.msg_iovlen = 1;
            messages[i].msg_hdr.msg_name = &sources[i];
            messages[i].msg_hdr.msg_namelen = sizeof sources[i];
        }
        int count = recvmmsg(fd, messages, slots, MSG_DONTWAIT, NULL);
        if (count < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL || errno == EFAULT) {
                Py_DECREF(taken);
                return PyErr_SetFromErrno(PyExc_OSError);
            }
            errors++;         /* EINTR, or a pending error such as ECONNREFUSED: it is cleared */
            done++;           /* and counted against the limit, so the loop ends */
            continue;
        }
        for (int i = 0; i < count; i++) {
            const char *data = vectors[i].iov_base;
            Py_ssize_t length = (Py_ssize_t)messages[i].msg_len;
            if (length > size)
                length = size;
            if (!may_be_request((const unsigned char *)data, length)) {
                rejected++;
                continue;
            }
            if (take(taken, data, length, &sources[i]) < 0) {
                Py_DECREF(taken);
                return NULL;
            }
        }
        done += count;
        if ((unsigned int)count < slots)
            break;            /* the socket had no more */
    }
    return Py_BuildValue("(Nnn)", taken, rejected, errors);
}

static PyMethodDef methods[] = {
    {"receive", receive, METH_VARARGS, receive_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "udpt._receive",
    .m_doc = "Batched datagram receive with the garbage dropped in C (see udpt/udp.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__receive(void)
{
    return PyModule_Create(&module);
}
