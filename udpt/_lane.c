/* udpt._core.Lane: the announce path of udpt/udp.py's UdpEndpoint.handle, compiled.
 *
 * An accepted announce is most of a tracker's traffic, and its way through the
 * pure Python (handle, Tracker.decide, _announce, refusal, _no_room, the
 * connection-id check, Commit, intake) costs more than all the C it calls. A Lane
 * takes that way for a datagram that is an announce with a connection id the
 * ConnectionIds cache holds for the current window or the one before, and that no rule
 * refuses (and a scrape with such an id):
 * everything the reference would read is read first, nothing is changed before it
 * is known that the lane can finish, and any other datagram (a connect, a scrape,
 * garbage, an id to recompute, a refusal, a window boundary) goes to the reference
 * handle whole. Past that point it changes what the reference changes, in the same
 * order: the request counter, the quotas (through their Python methods), the
 * torrents being created, and the Commit handed to the intake, which is answered
 * by answer_announce, the compiled Tracker.announce_reply. A source over a quota
 * gets what the reference gives it (Tracker._over_quota, UdpEndpoint._dispatch).
 *
 * The commits taken from one read go to the intake together (Intake.submit_all), and
 * before the reference handles anything, so the log's order stays the reference's.
 * Their answers, and the scrapes', are queued for the endpoint's flush as
 * BatchEndpoint._send queues them (lane_send), with no Python frame per reply.
 *
 * tests/property/test_lane_differential.py puts the same datagrams through a
 * Lane and through the reference handle and compares replies, counters, quotas
 * and logs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <string.h>

#include "_lane.h"
#include "_swarm.h"
#include "_torrents.h"

#define EVENT_STOPPED 3 /* AnnounceEvent.STOPPED; parse_request maps others to 0..3 */

/* Set by bind_lane: udpt.tracker's Commit, udpt.events.types' AnnounceAccepted and its
 * AnnounceEvent values, the over-quota texts, the flagged refusal's text; _core's
 * reply builders. */
static PyTypeObject *CommitType, *AcceptedType;
static PyObject *announce_events, *over_quota_text, *new_torrents_text, *flagged_text;
static PyObject *build_announce, *build_error, *build_scrape, *AnnounceRequestType;
static PyObject *one;
static PyObject *lane_source; /* who a failure of the commits handed over together is from */

static PyObject *bind_lane(PyObject *module, PyObject *args) {
    PyObject *commit, *accepted, *events, *over, *new_torrents, *flagged, *request;
    if (!PyArg_ParseTuple(args, "O!O!O!UUUO!:bind_lane", &PyType_Type, &commit, &PyType_Type,
                          &accepted, &PyTuple_Type, &events, &over, &new_torrents, &flagged,
                          &PyType_Type, &request))
        return NULL;
    if (PyTuple_GET_SIZE(events) != 4) {
        PyErr_SetString(PyExc_ValueError, "bind_lane() takes the four AnnounceEvent values");
        return NULL;
    }
    Py_XSETREF(CommitType, (PyTypeObject *)Py_NewRef(commit));
    Py_XSETREF(AcceptedType, (PyTypeObject *)Py_NewRef(accepted));
    Py_XSETREF(announce_events, Py_NewRef(events));
    Py_XSETREF(over_quota_text, Py_NewRef(over));
    Py_XSETREF(new_torrents_text, Py_NewRef(new_torrents));
    Py_XSETREF(flagged_text, Py_NewRef(flagged));
    Py_XSETREF(AnnounceRequestType, Py_NewRef(request));
    Py_RETURN_NONE;
}

/* -- small helpers ------------------------------------------------------------------ */

/* ``name`` as an interned str, made once: PyObject_GetAttrString would decode and hash a
 * new str at every call, and the lane asks for a dozen attributes a datagram. The names
 * are string literals, so a literal's address is its key. A borrowed reference. */
static PyObject *name_of(const char *name) {
    static struct {
        const char *text;
        PyObject *str;
    } known[64];
    static int count;
    for (int i = 0; i < count; i++)
        if (known[i].text == name)
            return known[i].str;
    PyObject *str = PyUnicode_InternFromString(name);
    if (str == NULL || count == 64) {
        if (str != NULL) /* never: the lane asks for fewer names than that */
            PyErr_SetString(PyExc_SystemError, "the lane's table of names is full");
        Py_XDECREF(str);
        return NULL;
    }
    known[count].text = name;
    known[count].str = str;
    return known[count++].str;
}

static PyObject *attr(PyObject *object, const char *name) {
    PyObject *str = name_of(name);
    return str ? PyObject_GetAttr(object, str) : NULL;
}

/* object.name(*args) */
static PyObject *call_method(PyObject *object, const char *name, PyObject **args, size_t count) {
    PyObject *str = name_of(name);
    if (str == NULL)
        return NULL;
    PyObject *stack[5] = {object};
    for (size_t i = 0; i < count && i < 4; i++)
        stack[i + 1] = args[i];
    return PyObject_VectorcallMethod(str, stack, count + 1, NULL);
}

/* object.name as a C long long; -1 with an exception on failure. */
static int attr_ll(PyObject *object, const char *name, long long *out) {
    PyObject *value = attr(object, name);
    if (value == NULL)
        return -1;
    *out = PyLong_AsLongLong(value);
    Py_DECREF(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* bool(object.name): 0 or 1, -1 with an exception. */
static int attr_true(PyObject *object, const char *name) {
    PyObject *value = attr(object, name);
    if (value == NULL)
        return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* A NamedTuple of ``type`` with ``items`` (references stolen), without calling __new__. */
static PyObject *record(PyTypeObject *type, PyObject **items, Py_ssize_t size) {
    PyObject *made = type->tp_alloc(type, size);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (items[i] == NULL || made == NULL) {
            for (Py_ssize_t j = i; j < size; j++)
                Py_XDECREF(items[j]);
            Py_XDECREF(made);
            return NULL;
        }
        PyTuple_SET_ITEM(made, i, items[i]);
    }
    return made;
}

PyObject *udpt_announce_request(PyTypeObject *type, const udpt_request *r) {
    PyObject *items[13] = {
        PyBytes_FromStringAndSize((const char *)r->connection_id, 8),
        PyBytes_FromStringAndSize((const char *)r->transaction_id, 4),
        PyBytes_FromStringAndSize((const char *)r->info_hash, 20),
        PyBytes_FromStringAndSize((const char *)r->peer_id, 20),
        PyLong_FromLongLong(r->downloaded),
        PyLong_FromLongLong(r->left),
        PyLong_FromLongLong(r->uploaded),
        PyLong_FromUnsignedLong(r->event),
        PyBytes_FromStringAndSize((const char *)r->ip, 4),
        PyLong_FromUnsignedLong(r->key),
        PyLong_FromLong(r->num_want),
        PyLong_FromLong(r->port),
        PyBytes_FromStringAndSize((const char *)r->url_data, (Py_ssize_t)r->url_data_size),
    };
    return record(type, items, 13);
}

/* counter[key] += 1, for a collections.Counter (a dict whose missing keys count 0). */
static int count_one(PyObject *counter, PyObject *key) {
    PyObject *count = PyDict_GetItemWithError(counter, key);
    if (count == NULL && PyErr_Occurred())
        return -1;
    PyObject *more = count == NULL ? Py_NewRef(one) : PyNumber_Add(count, one);
    if (more == NULL)
        return -1;
    int stored = PyDict_SetItem(counter, key, more);
    Py_DECREF(more);
    return stored;
}

/* udpt.addresses.canonical_ip of a recvfrom host string into ip[16]: its size (4 or 16),
 * or 0 when the reference must say what is wrong with it. */
static Py_ssize_t canonical_ip(PyObject *host, unsigned char ip[16]) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    Py_ssize_t size;
    const char *text = PyUnicode_Check(host) ? PyUnicode_AsUTF8AndSize(host, &size) : NULL;
    if (text == NULL || size >= INET6_ADDRSTRLEN || memchr(text, '\0', (size_t)size)) {
        PyErr_Clear();
        return 0;
    }
    if (memchr(text, ':', (size_t)size) == NULL)
        return inet_pton(AF_INET, text, ip) == 1 ? 4 : 0;
    char plain[INET6_ADDRSTRLEN];
    const char *scope = memchr(text, '%', (size_t)size);
    size_t length = scope ? (size_t)(scope - text) : (size_t)size;
    memcpy(plain, text, length);
    plain[length] = '\0';
    if (inet_pton(AF_INET6, plain, ip) != 1)
        return 0;
    if (memcmp(ip, mapped, 12) == 0) {
        memmove(ip, ip + 12, 4);
        return 4;
    }
    return 16;
}

/* hmac.compare_digest of two 8-byte ids: no early exit. */
static int same_id(const unsigned char *a, const unsigned char *b) {
    unsigned char differ = 0;
    for (int i = 0; i < 8; i++)
        differ |= a[i] ^ b[i];
    return differ == 0;
}

/* -- the lane ----------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *tracker, *handle, *dispatch, *submit_all, *report, *requests, *answer;
    PyObject *request_keys[4]; /* the request counter's keys: announce, scrape; IPv4, IPv6 */
    PyObject *accepted_result; /* the responses counter's key for an accepted announce */
    PyObject *scraped_result;  /* and for a scrape answered */
    PyObject *endpoint;        /* a BatchEndpoint: its _outbox and _results, as _send fills them */
    PyObject *flush, *call_soon; /* its _flush, its loop's call_soon */
    PyObject *deliver;         /* this lane's deliver: UdpEndpoint._deliver, compiled */
    PyObject *commits;         /* (event, (commit, deliver, to)) taken, not yet handed over */
    Py_ssize_t receive_buffer;
    long long handled;
} LaneObject;

/* What one pass of handle_all reads once: the policy and the tables it decides on. */
typedef struct {
    int dynamic, announce_quota, new_torrent_quota;
    long long max_scrape_hashes, max_torrents, max_peers, max_ports;
    long long window_ms, current_window, cache_limit;
    PyObject *torrents, *creating, *quotas, *current_ids, *previous_ids;
} Pass;

static void pass_release(Pass *p) {
    Py_CLEAR(p->torrents);
    Py_CLEAR(p->creating);
    Py_CLEAR(p->quotas);
    Py_CLEAR(p->current_ids);
    Py_CLEAR(p->previous_ids);
}

/* The connection ids' window and caches, read together: the reference may move them on
 * (a new window, new dicts) while it handles a datagram the lane passed to it. */
static int pass_read_ids(LaneObject *self, Pass *p) {
    Py_CLEAR(p->current_ids);
    Py_CLEAR(p->previous_ids);
    PyObject *ids = attr(self->tracker, "connection_ids");
    long long window_s = 0;
    int ok = ids && attr_ll(ids, "_window_s", &window_s) == 0 &&
             attr_ll(ids, "_current_window", &p->current_window) == 0 &&
             attr_ll(ids, "CACHE_LIMIT", &p->cache_limit) == 0 &&
             (p->current_ids = attr(ids, "_current")) != NULL &&
             (p->previous_ids = attr(ids, "_previous")) != NULL;
    Py_XDECREF(ids);
    if (ok && (!PyDict_Check(p->current_ids) || !PyDict_Check(p->previous_ids) || window_s <= 0)) {
        PyErr_SetString(PyExc_TypeError, "Lane: unexpected connection ids");
        ok = 0;
    }
    p->window_ms = window_s * 1000;
    return ok ? 0 : -1;
}

static int pass_read(LaneObject *self, Pass *p) {
    memset(p, 0, sizeof *p);
    PyObject *policy = attr(self->tracker, "policy");
    p->quotas = attr(self->tracker, "quotas");
    PyObject *quota_policy = p->quotas ? attr(p->quotas, "policy") : NULL; /* what it applies */
    PyObject *state = attr(self->tracker, "state");
    int ok = policy && quota_policy && state &&
             (p->dynamic = attr_true(policy, "dynamic")) >= 0 &&
             attr_ll(policy, "max_scrape_hashes", &p->max_scrape_hashes) == 0 &&
             attr_ll(policy, "max_torrents", &p->max_torrents) == 0 &&
             attr_ll(policy, "max_peers_per_torrent", &p->max_peers) == 0 &&
             attr_ll(policy, "max_ports_per_source", &p->max_ports) == 0 &&
             (p->announce_quota = attr_true(quota_policy, "announces_per_s")) >= 0 &&
             (p->new_torrent_quota = attr_true(quota_policy, "new_torrents_per_min")) >= 0 &&
             pass_read_ids(self, p) == 0 &&
             (p->torrents = attr(state, "torrents")) != NULL &&
             (p->creating = attr(self->tracker, "creating")) != NULL;
    Py_XDECREF(policy);
    Py_XDECREF(quota_policy);
    Py_XDECREF(state);
    if (ok && (!udpt_is_torrent_table(p->torrents) || !PyDict_Check(p->creating))) {
        PyErr_SetString(PyExc_TypeError, "Lane: an unexpected tracker");
        ok = 0;
    }
    if (!ok)
        pass_release(p);
    return ok ? 0 : -1;
}

/* Whether nothing the reference would check refuses the announce: 1 if the lane may take
 * it, 0 if the reference must, -1 on error. ``creates``: it will create its torrent. */
static int nothing_refuses(const Pass *p, PyObject *info_hash, const unsigned char *peer,
                           Py_ssize_t peer_size, int stopped, int *creates) {
    PyObject *torrent = udpt_torrents_get(p->torrents, info_hash); /* borrowed */
    int creating = PyDict_Contains(p->creating, info_hash);
    if (creating < 0)
        return -1;
    *creates = torrent == NULL && !stopped && !creating;
    udpt_torrent_fields known = {0};
    if (torrent != NULL && udpt_torrent_fields_of(torrent, &known) < 0)
        return -1;
    if (!p->dynamic && !known.registered)
        return 0;
    if (torrent == NULL)
        return !(*creates && udpt_torrents_count(p->torrents) + PyDict_GET_SIZE(p->creating) >=
                                 p->max_torrents);
    if (known.flagged || stopped)
        return !known.flagged;
    Py_ssize_t peers = known.seeders + known.leechers;
    if (peers < p->max_peers && peers < p->max_ports)
        return 1;
    /* a peer already in the swarm (the torrent is its own) is never refused; a newcomer may
     * be: ask the reference, which counts its source */
    PyObject *key = PyBytes_FromStringAndSize((const char *)peer, peer_size);
    int result = key ? PySequence_Contains(torrent, key) : -1;
    Py_XDECREF(key);
    return result;
}

/* The commits taken so far to the intake (Intake.submit_all), in the order taken: before
 * anything the reference does, so that the log's order is the reference's. */
static int hand_over(LaneObject *self) {
    Py_ssize_t count = PyList_GET_SIZE(self->commits);
    if (count == 0)
        return 0;
    PyObject *commits = self->commits;
    self->commits = PyList_New(0);
    if (self->commits == NULL) {
        self->commits = commits;
        return -1;
    }
    PyObject *done = PyObject_CallOneArg(self->submit_all, commits);
    Py_DECREF(commits);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* BatchEndpoint._send(reply, addr, result): queued for the flush at the end of this pass
 * of the loop, which is scheduled by the first reply queued. */
static int lane_send(LaneObject *self, PyObject *reply, PyObject *addr, PyObject *result) {
    PyObject *outbox = attr(self->endpoint, "_outbox");
    PyObject *results = outbox ? attr(self->endpoint, "_results") : NULL;
    PyObject *message = results ? PyTuple_Pack(2, reply, addr) : NULL;
    int ok = message != NULL && PyList_Check(outbox) && PyList_Check(results);
    if (message != NULL && !ok)
        PyErr_SetString(PyExc_TypeError, "Lane: an endpoint without an outbox");
    if (ok && PyList_GET_SIZE(outbox) == 0) {
        PyObject *scheduled = PyObject_CallOneArg(self->call_soon, self->flush);
        ok = scheduled != NULL;
        Py_XDECREF(scheduled);
    }
    ok = ok && PyList_Append(outbox, message) == 0 && PyList_Append(results, result) == 0;
    Py_XDECREF(message);
    Py_XDECREF(outbox);
    Py_XDECREF(results);
    return ok ? 0 : -1;
}

/* deliver(to, outcome): UdpEndpoint._deliver, the answer to a commit the lane took; ``to`` is
 * (addr, result). A NotRecorded outcome was counted by the intake and gets no reply. */
static PyObject *Lane_deliver(LaneObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) != 2) {
        PyErr_SetString(PyExc_TypeError, "deliver((addr, result), outcome)");
        return NULL;
    }
    if (self->endpoint == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this lane's endpoint is gone");
        return NULL;
    }
    if (PyBytes_CheckExact(args[1]) &&
        lane_send(self, args[1], PyTuple_GET_ITEM(args[0], 0), PyTuple_GET_ITEM(args[0], 1)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The reference's answer to a source over a quota: Tracker._over_quota, then dispatch. */
static int over_quota(LaneObject *self, PyObject *request, PyObject *ip, PyObject *now_ms,
                      PyObject *text, PyObject *addr, PyObject *silenced) {
    if (hand_over(self) < 0)
        return -1;
    PyObject *args[4] = {PyTuple_GET_ITEM(request, 1), ip, now_ms, text};
    PyObject *decision = call_method(self->tracker, "_over_quota", args, 4);
    if (decision == NULL)
        return -1;
    PyObject *done = PyObject_CallFunctionObjArgs(self->dispatch, AnnounceRequestType, decision,
                                                  addr, silenced, NULL);
    Py_DECREF(decision);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* A quota's verdict: quotas.<method>(ip, now_ms) (1 within it, 0 over, -1 error). */
static int take(PyObject *quotas, const char *method, PyObject *ip, PyObject *now_ms) {
    PyObject *args[2] = {ip, now_ms};
    PyObject *taken = call_method(quotas, method, args, 2);
    if (taken == NULL)
        return -1;
    int truth = PyObject_IsTrue(taken);
    Py_DECREF(taken);
    return truth;
}

/* The request past the checks: counted, quotas taken, its Commit submitted. */
static int take_announce(LaneObject *self, const Pass *p, PyObject *request, PyObject *ip,
                         PyObject *addr, PyObject *now_ms, int creates) {
    Py_ssize_t family = PyBytes_GET_SIZE(ip) == 4 ? 0 : 1;
    self->handled++;
    if (count_one(self->requests, self->request_keys[family]) < 0)
        return -1;
    PyObject *silenced = NULL;
    int result = -1;
    if (p->announce_quota || (creates && p->new_torrent_quota)) {
        silenced = attr(p->quotas, "silenced");
        if (silenced == NULL)
            return -1;
    }
    if (p->announce_quota) {
        int within = take(p->quotas, "take_announce", ip, now_ms);
        if (within <= 0) {
            result = within < 0 ? -1
                                : over_quota(self, request, ip, now_ms, over_quota_text, addr,
                                             silenced);
            goto done;
        }
    }
    if (creates && p->new_torrent_quota) {
        int within = take(p->quotas, "take_new_torrent", ip, now_ms);
        if (within <= 0) {
            result = within < 0 ? -1
                                : over_quota(self, request, ip, now_ms, new_torrents_text, addr,
                                             silenced);
            goto done;
        }
    }
    PyObject *info_hash = PyTuple_GET_ITEM(request, 2);
    long event = PyLong_AsLong(PyTuple_GET_ITEM(request, 7));
    if (event < 0 || event > 3) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "an announce event out of range");
        goto done;
    }
    PyObject *fields[10] = {
        Py_NewRef(now_ms),
        Py_NewRef(info_hash),
        Py_NewRef(ip),
        Py_NewRef(PyTuple_GET_ITEM(request, 11)),            /* port */
        Py_NewRef(PyTuple_GET_ITEM(request, 3)),             /* peer_id */
        Py_NewRef(PyTuple_GET_ITEM(request, 9)),             /* key */
        Py_NewRef(PyTuple_GET_ITEM(announce_events, event)), /* event */
        Py_NewRef(PyTuple_GET_ITEM(request, 6)),             /* uploaded */
        Py_NewRef(PyTuple_GET_ITEM(request, 4)),             /* downloaded */
        Py_NewRef(PyTuple_GET_ITEM(request, 5)),             /* left */
    };
    PyObject *accepted = record(AcceptedType, fields, 10);
    PyObject *context = accepted ? PyTuple_Pack(2, request, ip) : NULL;
    PyObject *items[3] = {accepted, Py_XNewRef(self->answer), context};
    PyObject *commit = record(CommitType, items, 3);
    PyObject *to = commit ? PyTuple_Pack(2, addr, self->accepted_result) : NULL;
    if (to == NULL)
        goto submitted;
    if (creates) {
        PyObject *known = PyDict_GetItemWithError(p->creating, info_hash);
        PyObject *more = known ? PyNumber_Add(known, one)
                               : PyErr_Occurred() ? NULL : Py_NewRef(one);
        int stored = more ? PyDict_SetItem(p->creating, info_hash, more) : -1;
        Py_XDECREF(more);
        if (stored < 0)
            goto submitted;
    }
    PyObject *payload = PyTuple_Pack(3, commit, self->deliver, to);
    /* (event, payload): the writer's submit_all item as it is */
    PyObject *item = payload ? PyTuple_Pack(2, accepted, payload) : NULL;
    if (item != NULL && PyList_Append(self->commits, item) == 0)
        result = 0;
    Py_XDECREF(payload);
    Py_XDECREF(item);
submitted:
    Py_XDECREF(commit);
    Py_XDECREF(to);
done:
    Py_XDECREF(silenced);
    return result;
}

/* A scrape with a valid id: counted, answered (Tracker.scrape, then UdpEndpoint._send). */
static int scrape(LaneObject *self, const Pass *p, const udpt_request *r, PyObject *ip,
                  PyObject *addr) {
    self->handled++;
    if (count_one(self->requests, self->request_keys[2 + (PyBytes_GET_SIZE(ip) != 4)]) < 0)
        return -1;
    PyObject *entries = PyList_New((Py_ssize_t)r->hash_count);
    for (size_t i = 0; entries != NULL && i < r->hash_count; i++) {
        PyObject *torrent = udpt_torrents_find(p->torrents, r->hashes + 20 * i); /* borrowed */
        udpt_torrent_fields known = {0}; /* unknown: zeros */
        PyObject *entry = NULL;
        if (torrent == NULL || udpt_torrent_fields_of(torrent, &known) == 0)
            entry = Py_BuildValue("(nKn)", known.seeders, known.completed, known.leechers);
        if (entry == NULL)
            Py_CLEAR(entries);
        else
            PyList_SET_ITEM(entries, (Py_ssize_t)i, entry);
    }
    PyObject *transaction_id = entries ? PyBytes_FromStringAndSize(
                                             (const char *)r->transaction_id, 4)
                                       : NULL;
    PyObject *parts[2] = {transaction_id, entries};
    PyObject *reply = transaction_id ? PyObject_Vectorcall(build_scrape, parts, 2, NULL) : NULL;
    Py_XDECREF(transaction_id);
    Py_XDECREF(entries);
    if (reply == NULL)
        return -1;
    int sent = lane_send(self, reply, addr, self->scraped_result);
    Py_DECREF(reply);
    return sent;
}

/* One datagram: 0 taken (or answered), 1 for the reference, -1 on error. */
static int lane_one(LaneObject *self, const Pass *p, PyObject *data, PyObject *addr,
                    PyObject *now_ms, long long now) {
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) > self->receive_buffer ||
        !PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2)
        return 1;
    long source_port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (source_port <= 0) {
        PyErr_Clear();
        return 1; /* port 0, R1, is the reference's to count */
    }
    udpt_request r;
    int kind = udpt_parse_request((const uint8_t *)PyBytes_AS_STRING(data),
                                  (size_t)PyBytes_GET_SIZE(data), p->max_scrape_hashes, &r);
    if (kind != UDPT_ANNOUNCE && kind != UDPT_SCRAPE)
        return 1;
    unsigned char peer[18];
    Py_ssize_t ip_size = canonical_ip(PyTuple_GET_ITEM(addr, 0), peer);
    /* The id of the current window, from the cache, and no window boundary within 2 ms
     * (where the reference's float arithmetic is the one to trust). */
    long long in_window = now % p->window_ms;
    if (ip_size == 0 || now < 0 || now / p->window_ms != p->current_window || in_window < 2 ||
        in_window > p->window_ms - 2 || PyDict_GET_SIZE(p->current_ids) >= p->cache_limit)
        return 1;
    PyObject *ip = PyBytes_FromStringAndSize((const char *)peer, ip_size);
    if (ip == NULL)
        return -1;
    int result = 1;
    /* The id of the current window or, cached too, of the one before (ConnectionIds) */
    int valid = 0;
    for (int w = 0; w < 2 && !valid; w++) {
        PyObject *known = PyDict_GetItemWithError(w ? p->previous_ids : p->current_ids, ip);
        if (known == NULL && PyErr_Occurred()) {
            result = -1;
            goto done;
        }
        valid = known != NULL && PyBytes_Check(known) && PyBytes_GET_SIZE(known) == 8 &&
                same_id((const unsigned char *)PyBytes_AS_STRING(known), r.connection_id);
    }
    if (!valid)
        goto done;
    if (kind == UDPT_SCRAPE) {
        result = scrape(self, p, &r, ip, addr);
        goto done;
    }
    peer[ip_size] = (unsigned char)(r.port >> 8);
    peer[ip_size + 1] = (unsigned char)r.port;
    PyObject *request = udpt_announce_request((PyTypeObject *)AnnounceRequestType, &r);
    if (request == NULL) {
        result = -1;
        goto done;
    }
    int creates = 0;
    int free_to_take = nothing_refuses(p, PyTuple_GET_ITEM(request, 2), peer, ip_size + 2,
                                       r.event == EVENT_STOPPED, &creates);
    if (free_to_take == 1)
        result = take_announce(self, p, request, ip, addr, now_ms, creates);
    else
        result = free_to_take < 0 ? -1 : 1;
    Py_DECREF(request);
done:
    Py_DECREF(ip);
    return result;
}

/* The error being handled, reported as the reference's except clause reports it, for a
 * datagram from ``source`` (a str): 0 once reported. */
static int report(LaneObject *self, PyObject *source) {
    PyObject *value = udpt_take_error();
    PyObject *reported = source ? PyObject_CallFunctionObjArgs(self->report, source,
                                                               value ? value : Py_None, NULL)
                                : NULL;
    Py_XDECREF(value);
    Py_XDECREF(reported);
    return reported == NULL ? -1 : 0;
}

/* handle_all(taken, now_ms): UdpEndpoint.handle(data, addr, now_ms) of each (data, addr). */
static PyObject *Lane_handle_all(LaneObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "handle_all(taken: list, now_ms: int)");
        return NULL;
    }
    long long now = PyLong_AsLongLong(args[1]);
    if (now == -1 && PyErr_Occurred())
        return NULL;
    if (self->tracker == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this lane's endpoint is gone");
        return NULL;
    }
    Pass p;
    if (pass_read(self, &p) < 0)
        return NULL;
    PyObject *taken = args[0];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(taken); i++) {
        PyObject *item = PyList_GET_ITEM(taken, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "handle_all() takes (data, addr) pairs");
            pass_release(&p);
            return NULL;
        }
        PyObject *data = PyTuple_GET_ITEM(item, 0), *addr = PyTuple_GET_ITEM(item, 1);
        int outcome = lane_one(self, &p, data, addr, args[1], now);
        if (outcome == 1 && hand_over(self) < 0 && report(self, lane_source) < 0)
            outcome = -2;
        if (outcome == 1) {
            PyObject *done = PyObject_CallFunctionObjArgs(self->handle, data, addr, args[1], NULL);
            /* the reference reports its own errors: a failure here is worse */
            Py_XDECREF(done);
            if (done == NULL || pass_read_ids(self, &p) < 0)
                outcome = -2;
        } else if (outcome == -1) { /* as the reference's except clause: report, go on */
            PyObject *host = PyObject_Str(PyTuple_Check(addr) && PyTuple_GET_SIZE(addr)
                                              ? PyTuple_GET_ITEM(addr, 0)
                                              : addr);
            if (report(self, host) < 0)
                outcome = -2;
            Py_XDECREF(host);
        }
        if (outcome == -2) { /* what was taken still goes to the intake */
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            if (hand_over(self) < 0)
                PyErr_Clear();
            PyErr_Restore(type, value, traceback);
            pass_release(&p);
            return NULL;
        }
    }
    pass_release(&p);
    if (hand_over(self) < 0 && report(self, lane_source) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Lane_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *endpoint, *keys, *accepted_result, *scraped_result, *answer;
    static char *names[] = {"endpoint", "request_keys", "accepted_result", "scraped_result",
                            "answer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!O!O:Lane", names, &endpoint,
                                     &PyTuple_Type, &keys, &PyTuple_Type, &accepted_result,
                                     &PyTuple_Type, &scraped_result, &answer))
        return NULL;
    if (CommitType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_lane() first");
        return NULL;
    }
    if (PyTuple_GET_SIZE(keys) != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "request_keys: announce's IPv4 and IPv6 keys, then scrape's");
        return NULL;
    }
    LaneObject *self = (LaneObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    PyObject *counters = attr(endpoint, "counters");
    PyObject *intake = attr(endpoint, "intake");
    PyObject *errors = attr(endpoint, "_errors");
    PyObject *loop = NULL;
    long long receive_buffer = 0;
    self->endpoint = Py_NewRef(endpoint);
    int ok = counters && intake && errors &&
             (self->tracker = attr(endpoint, "tracker")) != NULL &&
             (self->handle = attr(endpoint, "handle")) != NULL &&
             (self->dispatch = attr(endpoint, "_dispatch")) != NULL &&
             (self->flush = attr(endpoint, "_flush")) != NULL &&
             (loop = attr(endpoint, "_loop")) != NULL &&
             (self->call_soon = attr(loop, "call_soon")) != NULL &&
             (self->deliver = attr((PyObject *)self, "deliver")) != NULL &&
             (self->commits = PyList_New(0)) != NULL &&
             (self->submit_all = attr(intake, "submit_all")) != NULL &&
             (self->report = attr(errors, "report")) != NULL &&
             (self->requests = attr(counters, "requests")) != NULL &&
             attr_ll(endpoint, "receive_buffer", &receive_buffer) == 0;
    Py_XDECREF(counters);
    Py_XDECREF(intake);
    Py_XDECREF(errors);
    Py_XDECREF(loop);
    if (ok && !PyDict_Check(self->requests)) {
        PyErr_SetString(PyExc_TypeError, "Lane: the request counter is not a Counter");
        ok = 0;
    }
    if (!ok) {
        Py_DECREF(self);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        self->request_keys[i] = Py_NewRef(PyTuple_GET_ITEM(keys, i));
    self->accepted_result = Py_NewRef(accepted_result);
    self->scraped_result = Py_NewRef(scraped_result);
    self->answer = Py_NewRef(answer);
    self->receive_buffer = (Py_ssize_t)receive_buffer;
    return (PyObject *)self;
}

/* The lane holds its endpoint's bound methods, and the endpoint holds the lane: a cycle
 * for the garbage collector to break when the endpoint goes. */
static int Lane_traverse(LaneObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->tracker);
    Py_VISIT(self->handle);
    Py_VISIT(self->dispatch);
    Py_VISIT(self->submit_all);
    Py_VISIT(self->endpoint);
    Py_VISIT(self->flush);
    Py_VISIT(self->call_soon);
    Py_VISIT(self->deliver);
    Py_VISIT(self->commits);
    Py_VISIT(self->report);
    Py_VISIT(self->requests);
    Py_VISIT(self->answer);
    for (int i = 0; i < 4; i++)
        Py_VISIT(self->request_keys[i]);
    Py_VISIT(self->accepted_result);
    Py_VISIT(self->scraped_result);
    return 0;
}

static int Lane_clear(LaneObject *self) {
    Py_CLEAR(self->tracker);
    Py_CLEAR(self->handle);
    Py_CLEAR(self->dispatch);
    Py_CLEAR(self->submit_all);
    Py_CLEAR(self->endpoint);
    Py_CLEAR(self->flush);
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->deliver);
    Py_CLEAR(self->commits);
    Py_CLEAR(self->report);
    Py_CLEAR(self->requests);
    Py_CLEAR(self->answer);
    for (int i = 0; i < 4; i++)
        Py_CLEAR(self->request_keys[i]);
    Py_CLEAR(self->accepted_result);
    Py_CLEAR(self->scraped_result);
    return 0;
}

static void Lane_dealloc(LaneObject *self) {
    PyObject_GC_UnTrack(self);
    Lane_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Lane_get_handled(LaneObject *self, void *unused) {
    return PyLong_FromLongLong(self->handled);
}

static PyMethodDef Lane_methods[] = {
    {"handle_all", (PyCFunction)(void (*)(void))Lane_handle_all, METH_FASTCALL,
     "UdpEndpoint.handle(data, addr, now_ms) of each (data, addr) of a list."},
    {"deliver", (PyCFunction)(void (*)(void))Lane_deliver, METH_FASTCALL,
     "UdpEndpoint._deliver(to, outcome) for the commits the lane takes."},
    {NULL},
};

static PyGetSetDef Lane_getset[] = {
    {"handled", (getter)Lane_get_handled, NULL, "Datagrams the lane took itself.", NULL},
    {NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "udpt._core.Lane",
    .tp_doc = "The announce path of one UdpEndpoint, compiled (udpt/_lane.c).",
    .tp_basicsize = sizeof(LaneObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Lane_new,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_traverse = (traverseproc)Lane_traverse,
    .tp_clear = (inquiry)Lane_clear,
    .tp_methods = Lane_methods,
    .tp_getset = Lane_getset,
};

/* -- the answer ----------------------------------------------------------------------- */

/* answer_announce(tracker, (request, ip)): Tracker.announce_reply, compiled. */
static PyObject *answer_announce(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 2 ||
        !PyTuple_Check(PyTuple_GET_ITEM(args[1], 0)) ||
        PyTuple_GET_SIZE(PyTuple_GET_ITEM(args[1], 0)) != 13 ||
        !PyBytes_Check(PyTuple_GET_ITEM(args[1], 1))) {
        PyErr_SetString(PyExc_TypeError, "answer_announce(tracker, (AnnounceRequest, ip))");
        return NULL;
    }
    PyObject *tracker = args[0], *request = PyTuple_GET_ITEM(args[1], 0),
             *ip = PyTuple_GET_ITEM(args[1], 1);
    PyObject *transaction_id = PyTuple_GET_ITEM(request, 1);
    PyObject *policy = attr(tracker, "policy"), *state = attr(tracker, "state");
    PyObject *torrents = state ? attr(state, "torrents") : NULL;
    PyObject *interval = policy ? attr(policy, "interval") : NULL;
    PyObject *torrent = NULL, *peers = NULL;
    PyObject *reply = NULL;
    if (torrents == NULL || interval == NULL)
        goto done;
    if (!udpt_is_torrent_table(torrents)) {
        PyErr_SetString(PyExc_TypeError, "answer_announce: an unexpected tracker");
        goto done;
    }
    torrent = Py_XNewRef(udpt_torrents_get(torrents, PyTuple_GET_ITEM(request, 2)));
    if (torrent == NULL) {
        PyObject *zero = PyLong_FromLong(0), *none = PyBytes_FromStringAndSize(NULL, 0);
        if (zero && none) {
            PyObject *parts[5] = {transaction_id, interval, zero, zero, none};
            reply = PyObject_Vectorcall(build_announce, parts, 5, NULL);
        }
        Py_XDECREF(zero);
        Py_XDECREF(none);
        goto done;
    }
    long event = PyLong_AsLong(PyTuple_GET_ITEM(request, 7));
    udpt_torrent_fields known;
    if ((event == -1 && PyErr_Occurred()) || udpt_torrent_fields_of(torrent, &known) < 0)
        goto done;
    if (known.flagged && event != EVENT_STOPPED) {
        PyObject *parts[2] = {transaction_id, flagged_text};
        reply = PyObject_Vectorcall(build_error, parts, 2, NULL);
        goto done;
    }
    if (event == EVENT_STOPPED) {
        peers = PyBytes_FromStringAndSize(NULL, 0);
    } else {
        long long wanted, cap, port;
        wanted = PyLong_AsLongLong(PyTuple_GET_ITEM(request, 10));
        if (wanted == -1 && PyErr_Occurred())
            goto done;
        if (wanted < 0 && attr_ll(policy, "default_numwant", &wanted) < 0)
            goto done;
        if (attr_ll(policy, PyBytes_GET_SIZE(ip) == 4 ? "max_numwant_v4" : "max_numwant_v6",
                    &cap) < 0)
            goto done;
        port = PyLong_AsLongLong(PyTuple_GET_ITEM(request, 11));
        if (port < 0 || port > 65535) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_OverflowError, "int too big to convert");
            goto done;
        }
        unsigned char peer[18];
        Py_ssize_t size = PyBytes_GET_SIZE(ip);
        if (size > 16) {
            PyErr_SetString(PyExc_ValueError, "not a packed IP");
            goto done;
        }
        memcpy(peer, PyBytes_AS_STRING(ip), (size_t)size);
        peer[size] = (unsigned char)(port >> 8);
        peer[size + 1] = (unsigned char)port;
        long long left = PyLong_AsLongLong(PyTuple_GET_ITEM(request, 5));
        if (left == -1 && PyErr_Occurred())
            goto done;
        PyObject *rng = attr(tracker, "_rng");
        PyObject *peer_bytes = PyBytes_FromStringAndSize((const char *)peer, size + 2);
        PyObject *count = PyLong_FromLongLong(wanted < cap ? wanted : cap);
        if (rng && peer_bytes && count) {
            PyObject *select[4] = {peer_bytes, left == 0 ? Py_True : Py_False, count, rng};
            peers = call_method(torrent, "select", select, 4); /* the torrent is its swarm */
        }
        Py_XDECREF(rng);
        Py_XDECREF(peer_bytes);
        Py_XDECREF(count);
    }
    PyObject *leechers = peers ? PyLong_FromSsize_t(known.leechers) : NULL;
    PyObject *seeders = leechers ? PyLong_FromSsize_t(known.seeders) : NULL;
    if (seeders != NULL) {
        PyObject *parts[5] = {transaction_id, interval, leechers, seeders, peers};
        reply = PyObject_Vectorcall(build_announce, parts, 5, NULL);
    }
    Py_XDECREF(leechers);
    Py_XDECREF(seeders);
done:
    Py_XDECREF(policy);
    Py_XDECREF(state);
    Py_XDECREF(torrents);
    Py_XDECREF(interval);
    Py_XDECREF(torrent);
    Py_XDECREF(peers);
    return reply;
}

static PyMethodDef lane_functions[] = {
    {"bind_lane", bind_lane, METH_VARARGS,
     "Hand over the classes and texts the compiled announce path makes its values of."},
    {"answer_announce", (PyCFunction)(void (*)(void))answer_announce, METH_FASTCALL,
     "tracker.Tracker.announce_reply(context), compiled: answer_announce(tracker, context)."},
    {NULL},
};

int udpt_lane_register(PyObject *module) {
    build_announce = PyObject_GetAttrString(module, "build_announce_response");
    build_error = PyObject_GetAttrString(module, "build_error_response");
    build_scrape = PyObject_GetAttrString(module, "build_scrape_response");
    one = PyLong_FromLong(1);
    lane_source = PyUnicode_FromString("the sources of the announces read together");
    if (build_announce == NULL || build_error == NULL || build_scrape == NULL || one == NULL ||
        lane_source == NULL || PyModule_AddType(module, &LaneType) < 0)
        return -1;
    return PyModule_AddFunctions(module, lane_functions);
}
