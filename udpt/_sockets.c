/* udpt._sockets: datagrams in and out in batches, garbage dropped in C.
 *
 * The compiled twin of the socket half of udpt/udp.py's asyncio-dgram endpoint
 * (DgramEndpoint, the reference): the same datagrams reach the handler, as the
 * same (bytes, address) pairs, and what may_be_request (udpt/wire.py) rejects is
 * only counted. Under a flood of garbage the reference pays a loop callback, a
 * queue put and a Python check per datagram; here recvmmsg reads up to 64 at
 * once and a datagram that cannot be a request costs no Python object at all.
 * Replies leave by sendmmsg, their addresses parsed with inet_pton rather than
 * the resolver that socket.sendto consults for every host string.
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
#include <stdint.h>
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
receive_datagrams(PyObject *Py_UNUSED(module), PyObject *args)
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

/* The sockaddr for a (host, port[, flowinfo, scope_id]) tuple; 0, or -1 with no Python error
 * set when it names no address (that message is counted as an error, not raised). */
static int
sockaddr_of(PyObject *address, struct sockaddr_storage *to, socklen_t *length)
{
    if (!PyTuple_Check(address) || PyTuple_GET_SIZE(address) < 2)
        return -1;
    const char *host = PyUnicode_Check(PyTuple_GET_ITEM(address, 0))
        ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(address, 0)) : NULL;
    if (host == NULL) {
        PyErr_Clear();
        return -1;
    }
    long port = PyLong_AsLong(PyTuple_GET_ITEM(address, 1));
    if (port < 0 || port > 65535) {
        PyErr_Clear();
        return -1;
    }
    memset(to, 0, sizeof *to);
    if (strchr(host, ':') == NULL) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)to;
        if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
            return -1;
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *length = sizeof *v4;
        return 0;
    }
    char bare[INET6_ADDRSTRLEN];
    size_t cut = strcspn(host, "%");   /* a %scope suffix: the tuple's scope_id says it */
    if (cut >= sizeof bare)
        return -1;
    memcpy(bare, host, cut);
    bare[cut] = '\0';
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)to;
    if (inet_pton(AF_INET6, bare, &v6->sin6_addr) != 1)
        return -1;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    if (PyTuple_GET_SIZE(address) >= 4) {
        unsigned long flowinfo = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(address, 2));
        unsigned long scope = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(address, 3));
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        v6->sin6_flowinfo = htonl((uint32_t)flowinfo);
        v6->sin6_scope_id = (uint32_t)scope;
    }
    *length = sizeof *v6;
    return 0;
}

enum { SENT = 0, WOULD_BLOCK = 1, FAILED = 2 };

PyDoc_STRVAR(send_doc,
"send(fd, messages) -> statuses\n\n"
"Send each (bytes, address) of the list ``messages`` from non-blocking socket ``fd``,\n"
"in order. ``statuses`` has one byte per message: 0 sent, 1 not sent because the\n"
"socket's buffer was full (then none after it is tried), 2 failed (a bad address,\n"
"or an error the kernel gave for it; the next message is tried).");

static PyObject *
send_messages(PyObject *Py_UNUSED(module), PyObject *args)
{
    int fd;
    PyObject *messages;
    if (!PyArg_ParseTuple(args, "iO!:send", &fd, &PyList_Type, &messages))
        return NULL;
    Py_ssize_t total = PyList_GET_SIZE(messages);
    PyObject *statuses = PyBytes_FromStringAndSize(NULL, total);
    if (statuses == NULL)
        return NULL;
    char *status = PyBytes_AS_STRING(statuses);

    struct mmsghdr batch[SLOTS];
    struct iovec vectors[SLOTS];
    struct sockaddr_storage targets[SLOTS];
    Py_ssize_t index[SLOTS];
    Py_ssize_t next = 0;
    while (next < total) {
        unsigned int slots = 0;
        while (next < total && slots < SLOTS) {   /* gather up to SLOTS well-formed messages */
            PyObject *message = PyList_GET_ITEM(messages, next);
            socklen_t length = 0;
            if (!PyTuple_Check(message) || PyTuple_GET_SIZE(message) != 2
                || !PyBytes_Check(PyTuple_GET_ITEM(message, 0))
                || sockaddr_of(PyTuple_GET_ITEM(message, 1), &targets[slots], &length) < 0) {
                status[next++] = FAILED;
                continue;
            }
            PyObject *data = PyTuple_GET_ITEM(message, 0);
            vectors[slots].iov_base = PyBytes_AS_STRING(data);
            vectors[slots].iov_len = (size_t)PyBytes_GET_SIZE(data);
            memset(&batch[slots].msg_hdr, 0, sizeof batch[slots].msg_hdr);
            batch[slots].msg_hdr.msg_iov = &vectors[slots];
            batch[slots].msg_hdr.msg_iovlen = 1;
            batch[slots].msg_hdr.msg_name = &targets[slots];
            batch[slots].msg_hdr.msg_namelen = length;
            index[slots++] = next++;
        }
        unsigned int done = 0;
        while (done < slots) {
            int count = sendmmsg(fd, batch + done, slots - done, MSG_DONTWAIT);
            if (count < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                    for (unsigned int i = done; i < slots; i++)
                        status[index[i]] = WOULD_BLOCK;
                    for (Py_ssize_t i = next; i < total; i++)
                        status[i] = WOULD_BLOCK;
                    return statuses;
                }
                status[index[done++]] = FAILED;   /* this one; the rest are tried again */
                continue;
            }
            for (int i = 0; i < count; i++)
                status[index[done + (unsigned int)i]] = SENT;
            done += (unsigned int)count;
        }
    }
    return statuses;
}

static PyMethodDef methods[] = {
    {"receive", receive_datagrams, METH_VARARGS, receive_doc},
    {"send", send_messages, METH_VARARGS, send_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "udpt._sockets",
    .m_doc = "Datagrams in and out in batches, garbage dropped in C (see udpt/udp.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__sockets(void)
{
    return PyModule_Create(&module);
}
