/*
 * loadgen: udpt's BEP 15 (UDP tracker) load generator.
 *
 * Build: gcc -O2 -Wall -Wextra -o loadgen loadgen.c      (Linux, libc only)
 *
 * Why C: a Python client cannot send fast enough to saturate a tracker, so the
 * benchmark would measure the client. One thread drives every simulated client:
 *
 *   - a client is one non-blocking UDP socket connected to the target, so it has
 *     its own source port, exactly like one BitTorrent client behind one address;
 *   - epoll says which sockets have answers; recvmmsg reads them in batches and
 *     sendmmsg sends each client's new requests in one call;
 *   - a client connects first (protocol magic), reuses its connection id for
 *     announces and scrapes, connects again after an error reply and when its id
 *     is --reconnect seconds old (BEP 15 lets a client use an id for 1 minute);
 *   - every reply is checked strictly (docs/PROTOCOL.md §3, §7, §8, §9, §10) and
 *     each kind of violation is counted with a hex dump of its first occurrence;
 *   - the run is bounded: warmup + duration, then at most one timeout of drain.
 *     An alarm() set a few seconds past that ends the process if the loop ever
 *     failed to.
 *
 * Matching: a request's transaction id is a keyed bijection of its client's
 * request sequence number, so it looks random to the tracker yet any reply's id
 * says which request it answers. A reply is matched against the outstanding
 * requests of the socket it arrived on (the window is small, so a linear scan is
 * cheapest); failing that, its sequence number tells a late answer (the request
 * timed out after --timeout-ms and was counted lost) from a second answer to the
 * same request and from an id this client never sent.
 *
 * Timeouts: every request waits the same time, so deadlines come in send order
 * and a FIFO of (deadline, client, slot, generation) finds expired requests in
 * O(1) each; an entry whose slot was answered meanwhile is skipped.
 *
 * Loopback only: the target must be in 127.0.0.0/8 or be ::1. This tool exists to
 * compare trackers on one machine, never to load someone else's server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ limits */

#define MAX_RUN_S 600.0       /* warmup + duration, hard cap */
#define BATCH 32              /* datagrams per sendmmsg / recvmmsg */
#define RECV_ROUNDS 8         /* recvmmsg calls per ready socket per wake-up */
#define RX_BUF 4096           /* > 1220, the largest valid announce reply */
#define TX_BUF 1504           /* scrape of 74 hashes = 16 + 74 * 20 = 1496 */
#define ANNOUNCE_LEN 98       /* BEP 15 announce without BEP 41 options */
#define MAX_SCRAPE_HASHES 74  /* BEP 15: "up to about 74" */
#define MAX_WINDOW 256
#define MAX_ERROR_TEXTS 32    /* distinct error messages kept */
#define ERROR_TEXT_MAX 96
#define DUMP_BYTES 64         /* bytes kept of the first offending datagram */
#define PEER_SET_SIZE 4096    /* > 2 * (RX_BUF / 6) entries, power of two */
#define SEQ_HISTORY 2048      /* per client: timed-out flags of the last N requests */
#define PORT_BASE 1024
#define PORT_SPAN 64512       /* announced ports 1024..65535 */
#define MAX_WAIT_MS 10
#define EPOLL_EVENTS 256

static const uint8_t PROTOCOL_MAGIC[8] = {0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80};
static const char PEER_ID_PREFIX[] = "-UL0001-";

enum req_type { T_CONNECT, T_ANNOUNCE, T_SCRAPE, T_COUNT };
static const char *const TYPE_NAMES[T_COUNT] = {"connect", "announce", "scrape"};

enum { ACTION_ERROR = 3 };

/* BEP 15 event numbers in --events order: started, none, completed, stopped. */
static const uint32_t EVENT_CODES[4] = {2, 0, 1, 3};

enum violation_kind {
    V_SHORT,            /* under 8 bytes: no action and transaction id */
    V_UNKNOWN_TID,      /* an id this client never sent */
    V_DUPLICATE_REPLY,  /* a second answer to an already answered request */
    V_ACTION,           /* action is neither the request's nor 3 */
    V_TRUNCATED,        /* longer than the receive buffer */
    V_CONNECT_LENGTH,   /* connect reply not exactly 16 bytes */
    V_ANNOUNCE_LENGTH,  /* not 20 + k * (6 or 18 by target family) */
    V_INTERVAL,         /* interval <= 0 */
    V_NEGATIVE_COUNT,   /* seeders, leechers or completed < 0 */
    V_TOO_MANY_PEERS,   /* more peers than the request's num_want */
    V_DUPLICATE_PEER,   /* an (ip, port) twice in one reply */
    V_SELF_IN_PEERS,    /* the requester's own (ip, port) */
    V_PEER_PORT_ZERO,
    V_SCRAPE_LENGTH,    /* not exactly 8 + 12 * hashes asked */
    V_COUNT
};
static const char *const VIOLATION_NAMES[V_COUNT] = {
    "short_reply",    "unknown_tid",     "duplicate_reply", "action_mismatch", "truncated",
    "connect_length", "announce_length", "interval",        "negative_count",  "too_many_peers",
    "duplicate_peer", "self_in_peers",   "peer_port_zero",  "scrape_length",
};

/* ------------------------------------------------------------------ config */

struct config {
    const char *host;
    int port;
    double duration_s;
    double warmup_s;
    uint32_t timeout_ms;
    uint32_t sockets;
    uint32_t peers;       /* per socket */
    uint32_t window;      /* requests in flight per socket */
    double rate;          /* total requests/s; 0 = closed loop */
    uint32_t torrents;
    uint32_t peer_torrents;
    uint32_t mix[2];      /* announce : scrape */
    uint32_t scrape_hashes;
    uint32_t events[4];   /* started : none : completed : stopped */
    double seeders;
    int32_t num_want;
    uint64_t seed;
    const char *dump_path;
    bool json;
    double reconnect_s;
    uint32_t src_ips;     /* sockets bound round-robin to 127.0.0.1 .. 127.0.0.N; 0 = no bind */
};

static void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 6969;
    c->duration_s = 10;
    c->timeout_ms = 1000;
    c->sockets = 100;
    c->peers = 100;
    c->window = 8;
    c->torrents = 1000;
    c->mix[0] = 90;
    c->mix[1] = 10;
    c->scrape_hashes = 1;
    c->events[0] = 5;
    c->events[1] = 90;
    c->events[2] = 3;
    c->events[3] = 2;
    c->seeders = 0.3;
    c->num_want = 50;
    c->seed = 1;
    c->reconnect_s = 60;
}

/* --------------------------------------------------------------------- rng */

/* xoshiro256** seeded through splitmix64; each stream gets its own state so the
 * info hashes and peers depend only on --seed and the counts. */
struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_init(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static double rng_unit(struct rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static uint32_t pick_weighted(struct rng *r, const uint32_t *w, uint32_t n)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += w[i];
    uint32_t x = rng_below(r, total);
    for (uint32_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

/* ------------------------------------------------------------------- bytes */

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static uint32_t get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int32_t get_i32(const uint8_t *p) { return (int32_t)get_u32(p); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Transaction id <-> sequence number: xor with the client's key, then two rounds
 * of odd multiply and xorshift; each step is invertible modulo 2^32 (x ^= x >> 16
 * is its own inverse on 32 bits). */
#define TID_MUL1 0x7feb352du
#define TID_MUL2 0x846ca68bu
#define TID_INV1 0x1d69e2a5u /* TID_MUL1 * TID_INV1 == 1 mod 2^32 */
#define TID_INV2 0x43021123u
_Static_assert((uint32_t)(TID_MUL1 * TID_INV1) == 1u, "TID_INV1");
_Static_assert((uint32_t)(TID_MUL2 * TID_INV2) == 1u, "TID_INV2");

static uint32_t tid_of(uint32_t seq, uint32_t key)
{
    uint32_t x = (seq ^ key) * TID_MUL1;
    x ^= x >> 16;
    x *= TID_MUL2;
    return x ^ (x >> 16);
}

static uint32_t seq_of(uint32_t tid, uint32_t key)
{
    uint32_t x = tid ^ (tid >> 16);
    x *= TID_INV2;
    x ^= x >> 16;
    return (x * TID_INV1) ^ key;
}

/* --------------------------------------------------------------- histogram */

/* Log-linear latency histogram in ns: exact below 128 ns, then 64 linear
 * sub-buckets per power of two (worst-case error under 1.6 %). */
#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t max_ns;
    uint64_t bucket[HIST_BUCKETS];
};

static uint32_t hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (uint32_t)v;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
    return (e - HIST_SUB_BITS) * HIST_SUB + (uint32_t)(v >> (e - HIST_SUB_BITS));
}

static uint64_t hist_mid(uint32_t idx)
{
    if (idx < 2 * HIST_SUB)
        return idx;
    uint32_t e = (idx >> HIST_SUB_BITS) + HIST_SUB_BITS - 1;
    uint64_t mantissa = idx - (uint64_t)(e - HIST_SUB_BITS) * HIST_SUB;
    uint64_t width = 1ull << (e - HIST_SUB_BITS);
    return (mantissa << (e - HIST_SUB_BITS)) + width / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->bucket[hist_index(v)]++;
    h->count++;
    if (v > h->max_ns)
        h->max_ns = v;
}

static double hist_percentile_us(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    double exact = p * (double)h->count;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = hist_mid(i);
            return (double)(v < h->max_ns ? v : h->max_ns) / 1000.0;
        }
    }
    return (double)h->max_ns / 1000.0;
}

/* ------------------------------------------------------------------- state */

struct peer {
    uint8_t peer_id[20];
    uint32_t key;
    uint16_t port;
    bool seeder;
};

struct slot {
    uint32_t tid;
    uint32_t generation;  /* bumped on every use; stale timeout entries skip it */
    uint64_t sent_ns;
    uint32_t peer;        /* global peer index (announce) */
    int32_t num_want;
    uint8_t busy;
    uint8_t type;
    uint8_t measured;     /* sent inside the measured window */
    uint8_t hashes;       /* scrape: info hashes asked */
};

struct client {
    int fd;
    uint8_t connection_id[8];
    bool has_id;
    bool connecting;      /* a connect is in flight */
    bool queued;          /* on the retry list */
    uint32_t busy;        /* slots in use */
    uint64_t refresh_at;  /* ns: connect again from here on */
    uint64_t retry_at;    /* ns: after a failed send */
    uint8_t self_ip[16];  /* local address, to spot ourselves in peer lists */
    uint32_t next_seq;    /* sequence number of the next request */
    uint32_t tid_key;
    uint64_t timed_out[SEQ_HISTORY / 64]; /* bit seq % SEQ_HISTORY */
    struct slot *slots;
};

struct timeout_entry {
    uint64_t deadline;
    uint32_t client;
    uint32_t generation;
    uint16_t slot;
};

struct timeout_fifo {
    struct timeout_entry *e;
    size_t cap, head, len;
};

struct type_stats {
    uint64_t sent, ok, error, malformed, timeouts;
    struct hist latency;
};

struct violation {
    uint64_t count;
    size_t first_len;
    uint8_t first[DUMP_BYTES];
};

struct error_text {
    char text[ERROR_TEXT_MAX];
    size_t len;
    uint64_t count;
};

enum phase { WARMUP, MEASURE, DRAIN };

struct run {
    struct config cfg;
    int family;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint32_t ip_len;      /* 4 or 16 */
    uint32_t stride;      /* compact peer size: 6 or 18 */

    uint8_t *hashes;      /* torrents * 20 */
    struct peer *peers;   /* sockets * peers */
    uint32_t *peer_torrents; /* sockets * peers * peer_torrents */
    struct client *clients;
    struct slot *slot_pool;
    struct rng rng;
    int epfd;

    enum phase phase;
    bool sending;
    uint64_t outstanding;
    uint64_t timeout_ns;
    struct timeout_fifo fifo;
    uint32_t *retry;
    uint32_t retry_len;
    double tokens;
    uint64_t pace_last;
    uint32_t pace_cursor;

    struct type_stats types[T_COUNT];
    uint64_t datagrams;          /* every datagram received, any phase */
    uint64_t window_replies;     /* matched to a request, received in the measured window */
    uint64_t window_ok;
    uint64_t late;
    uint64_t ann_peers, ann_empty, ann_seeders, ann_leechers; /* measured ok announces */
    uint64_t scrape_entries;
    uint64_t refresh_age, refresh_error;
    uint64_t refused, socket_other, send_again;
    struct violation violations[V_COUNT];
    struct error_text errors[MAX_ERROR_TEXTS];
    uint32_t error_kinds;
    uint64_t errors_unlisted;

    uint32_t set_stamp;
    uint32_t set_mark[PEER_SET_SIZE];
    uint16_t set_index[PEER_SET_SIZE];

    uint64_t t_measure_start, t_measure_end;
    struct rusage ru_start, ru_end;

    uint8_t tx[BATCH][TX_BUF];
    struct iovec tx_iov[BATCH];
    struct mmsghdr tx_msg[BATCH];
    uint8_t rx[BATCH][RX_BUF];
    struct iovec rx_iov[BATCH];
    struct mmsghdr rx_msg[BATCH];
};

static struct run RUN;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------------- usage */

static void usage(FILE *out)
{
    fputs(
        "usage: loadgen [options]\n"
        "target and time\n"
        "  --host ADDR          numeric IPv4/IPv6, loopback only (default 127.0.0.1)\n"
        "  --port PORT          UDP port (default 6969)\n"
        "  --duration SEC       measured time, > 0 (default 10); warmup + duration <= 600\n"
        "  --warmup SEC         unmeasured time before it (default 0)\n"
        "  --timeout-ms MS      a request unanswered after MS is lost; also the drain\n"
        "                       time after the run (default 1000)\n"
        "clients\n"
        "  --sockets N          simulated clients, one UDP socket each (default 100)\n"
        "  --peers N            peers per socket (default 100)\n"
        "  --window N           requests in flight per socket, 1..256 (default 8)\n"
        "  --rate R             total requests/s; 0 = closed loop (default 0)\n"
        "  --reconnect SEC      connect again when the id is this old (default 60)\n"
        "  --src-ips N          bind socket i to 127.0.0.(1 + i % N), 1..254: N sources\n"
        "                       for per-source quotas (IPv4 only; default: no bind)\n"
        "workload\n"
        "  --torrents N         random 20-byte info hashes from --seed (default 1000)\n"
        "  --peer-torrents K    each peer announces only its own K torrents; 0 = any\n"
        "  --mix A:S            announce:scrape weights (default 90:10)\n"
        "  --scrape-hashes N    info hashes per scrape, 1..74 (default 1)\n"
        "  --events S:N:C:X     started:none:completed:stopped weights (default 5:90:3:2)\n"
        "  --seeders F          fraction of peers announcing left=0 (default 0.3)\n"
        "  --num-want N         num_want in announces; -1 = tracker default (default 50)\n"
        "  --seed N             seed for hashes, peers and choices (default 1)\n"
        "  --dump-hashes FILE   write the info hashes as hex, one a line, and exit ('-' = stdout)\n"
        "output\n"
        "  --json               one JSON object on stdout instead of the text report\n"
        "  --help\n"
        "exit status: 0 run completed, 1 nothing answered or setup failed, 2 usage error\n",
        out);
}

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(try --help)\n", stderr);
    exit(2);
}

static double parse_double(const char *name, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        usage_error("bad value for %s", name);
    return v;
}

static long long parse_int(const char *name, const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage_error("bad value for %s", name);
    return v;
}

static void parse_weights(const char *name, const char *s, uint32_t *out, int n)
{
    const char *p = s;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || end == p || *p == '-' || v > 1000000)
            usage_error("bad weights for %s", name);
        out[i] = (uint32_t)v;
        total += v;
        if (i < n - 1) {
            if (*end != ':')
                usage_error("bad weights for %s", name);
            p = end + 1;
        } else if (*end) {
            usage_error("bad weights for %s", name);
        }
    }
    if (total == 0)
        usage_error("weights for %s must not all be 0", name);
}

enum {
    O_HOST = 256, O_PORT, O_DURATION, O_WARMUP, O_TIMEOUT, O_SOCKETS, O_PEERS, O_WINDOW,
    O_RATE, O_TORRENTS, O_PEER_TORRENTS, O_MIX, O_SCRAPE_HASHES, O_EVENTS, O_SEEDERS,
    O_NUM_WANT, O_SEED, O_DUMP, O_JSON, O_RECONNECT, O_SRC_IPS, O_HELP
};

static void parse_args(struct config *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"duration", required_argument, 0, O_DURATION},
        {"warmup", required_argument, 0, O_WARMUP},
        {"timeout-ms", required_argument, 0, O_TIMEOUT},
        {"sockets", required_argument, 0, O_SOCKETS},
        {"peers", required_argument, 0, O_PEERS},
        {"window", required_argument, 0, O_WINDOW},
        {"rate", required_argument, 0, O_RATE},
        {"torrents", required_argument, 0, O_TORRENTS},
        {"peer-torrents", required_argument, 0, O_PEER_TORRENTS},
        {"mix", required_argument, 0, O_MIX},
        {"scrape-hashes", required_argument, 0, O_SCRAPE_HASHES},
        {"events", required_argument, 0, O_EVENTS},
        {"seeders", required_argument, 0, O_SEEDERS},
        {"num-want", required_argument, 0, O_NUM_WANT},
        {"seed", required_argument, 0, O_SEED},
        {"dump-hashes", required_argument, 0, O_DUMP},
        {"json", no_argument, 0, O_JSON},
        {"reconnect", required_argument, 0, O_RECONNECT},
        {"src-ips", required_argument, 0, O_SRC_IPS},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int o;
    opterr = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_HOST: c->host = optarg; break;
        case O_PORT: c->port = (int)parse_int("--port", optarg, 1, 65535); break;
        case O_DURATION: c->duration_s = parse_double("--duration", optarg, 0.001, MAX_RUN_S); break;
        case O_WARMUP: c->warmup_s = parse_double("--warmup", optarg, 0, MAX_RUN_S); break;
        case O_TIMEOUT: c->timeout_ms = (uint32_t)parse_int("--timeout-ms", optarg, 1, 60000); break;
        case O_SOCKETS: c->sockets = (uint32_t)parse_int("--sockets", optarg, 1, 100000); break;
        case O_PEERS: c->peers = (uint32_t)parse_int("--peers", optarg, 1, 1000000); break;
        case O_WINDOW: c->window = (uint32_t)parse_int("--window", optarg, 1, MAX_WINDOW); break;
        case O_RATE: c->rate = parse_double("--rate", optarg, 0, 1e8); break;
        case O_TORRENTS: c->torrents = (uint32_t)parse_int("--torrents", optarg, 1, 10000000); break;
        case O_PEER_TORRENTS:
            c->peer_torrents = (uint32_t)parse_int("--peer-torrents", optarg, 0, 1000);
            break;
        case O_MIX: parse_weights("--mix", optarg, c->mix, 2); break;
        case O_SCRAPE_HASHES:
            c->scrape_hashes =
                (uint32_t)parse_int("--scrape-hashes", optarg, 1, MAX_SCRAPE_HASHES);
            break;
        case O_EVENTS: parse_weights("--events", optarg, c->events, 4); break;
        case O_SEEDERS: c->seeders = parse_double("--seeders", optarg, 0, 1); break;
        case O_NUM_WANT:
            c->num_want = (int32_t)parse_int("--num-want", optarg, INT32_MIN, INT32_MAX);
            break;
        case O_SEED: c->seed = (uint64_t)parse_int("--seed", optarg, 0, INT64_MAX); break;
        case O_DUMP: c->dump_path = optarg; break;
        case O_JSON: c->json = true; break;
        case O_RECONNECT: c->reconnect_s = parse_double("--reconnect", optarg, 0.001, 1e6); break;
        case O_SRC_IPS: c->src_ips = (uint32_t)parse_int("--src-ips", optarg, 1, 254); break;
        case O_HELP: usage(stdout); exit(0);
        default: fprintf(stderr, "(try --help)\n"); exit(2);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument: %s", argv[optind]);
    if (c->warmup_s + c->duration_s > MAX_RUN_S)
        usage_error("warmup + duration must not exceed 600 s");
    if ((uint64_t)c->sockets * c->window > 4000000)
        usage_error("--sockets x --window must not exceed 4000000");
    if ((uint64_t)c->sockets * c->peers > 10000000)
        usage_error("--sockets x --peers must not exceed 10000000");
    if ((uint64_t)c->sockets * c->peers * c->peer_torrents > 50000000)
        usage_error("--sockets x --peers x --peer-torrents must not exceed 50000000");
    if (c->peer_torrents > c->torrents)
        usage_error("--peer-torrents must not exceed --torrents");
}

/* Resolve --host (numeric only) and refuse anything but loopback. */
static void resolve_target(struct run *r)
{
    const struct config *c = &r->cfg;
    memset(&r->addr, 0, sizeof r->addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&r->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&r->addr;
    if (inet_pton(AF_INET, c->host, &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
            usage_error("refusing non-loopback target %s (127.0.0.0/8 or ::1 only)", c->host);
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)c->port);
        r->family = AF_INET;
        r->addr_len = sizeof *a4;
        r->ip_len = 4;
        r->stride = 6;
    } else if (inet_pton(AF_INET6, c->host, &a6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
            usage_error("refusing non-loopback target %s (127.0.0.0/8 or ::1 only)", c->host);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)c->port);
        r->family = AF_INET6;
        r->addr_len = sizeof *a6;
        r->ip_len = 16;
        r->stride = 18;
    } else {
        usage_error("--host must be a numeric IPv4 or IPv6 address, not %s", c->host);
    }
}

/* ---------------------------------------------------------------- workload */

static void make_hashes(struct run *r)
{
    struct rng g;
    rng_init(&g, r->cfg.seed, 1);
    r->hashes = xcalloc(r->cfg.torrents, 20);
    for (uint32_t i = 0; i < r->cfg.torrents; i++) {
        for (int k = 0; k < 20; k += 4) {
            uint32_t v = (uint32_t)rng_next(&g);
            memcpy(r->hashes + (size_t)i * 20 + k, &v, 4);
        }
    }
}

static int dump_hashes(const struct run *r, const char *path)
{
    bool to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    if (!f) {
        fprintf(stderr, "loadgen: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (uint32_t i = 0; i < r->cfg.torrents; i++) {
        for (size_t k = 0; k < 20; k++)
            fprintf(f, "%02x", r->hashes[(size_t)i * 20 + k]);
        fputc('\n', f);
    }
    if ((to_stdout ? fflush(f) : fclose(f)) != 0) {
        fprintf(stderr, "loadgen: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* Peer g belongs to socket g / peers. Its announced port is unique among all
 * peers (they share one source address) up to PORT_SPAN peers. */
static void make_peers(struct run *r)
{
    static const char alnum[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    struct rng g;
    rng_init(&g, r->cfg.seed, 2);
    size_t total = (size_t)r->cfg.sockets * r->cfg.peers;
    uint32_t k = r->cfg.peer_torrents;
    r->peers = xcalloc(total, sizeof *r->peers);
    if (k)
        r->peer_torrents = xcalloc(total * k, sizeof *r->peer_torrents);
    for (size_t i = 0; i < total; i++) {
        struct peer *p = &r->peers[i];
        memcpy(p->peer_id, PEER_ID_PREFIX, 8);
        for (int j = 8; j < 20; j++)
            p->peer_id[j] = (uint8_t)alnum[rng_below(&g, sizeof alnum - 1)];
        p->key = (uint32_t)rng_next(&g);
        p->port = (uint16_t)(PORT_BASE + i % PORT_SPAN);
        p->seeder = rng_unit(&g) < r->cfg.seeders;
        for (uint32_t j = 0; j < k; j++)
            r->peer_torrents[i * k + j] = rng_below(&g, r->cfg.torrents);
    }
    if (total > PORT_SPAN && !r->cfg.json)
        fprintf(stderr,
                "loadgen: warning: %zu peers share one address but only %d ports exist; "
                "some peers will look like the same peer to the tracker\n",
                total, PORT_SPAN);
}

static void raise_fd_limit(uint32_t needed)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= needed)
        return;
    rl.rlim_cur = needed < rl.rlim_max ? needed : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Bind fd to 127.0.0.(1 + k), any port: each such address is its own source to the tracker. */
static int bind_source(int fd, uint32_t k)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl((127u << 24) | (1 + k));
    return bind(fd, (struct sockaddr *)&a, sizeof a);
}

static int open_clients(struct run *r)
{
    uint32_t n = r->cfg.sockets;
    raise_fd_limit(n + 64);
    r->clients = xcalloc(n, sizeof *r->clients);
    r->slot_pool = xcalloc((size_t)n * r->cfg.window, sizeof *r->slot_pool);
    r->retry = xcalloc(2 * (size_t)n, sizeof *r->retry); /* see retry_pending */
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        perror("loadgen: epoll_create1");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct client *c = &r->clients[i];
        c->slots = &r->slot_pool[(size_t)i * r->cfg.window];
        c->tid_key = (uint32_t)rng_next(&r->rng);
        c->fd = socket(r->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            fprintf(stderr, "loadgen: socket %u of %u: %s\n", i + 1, n, strerror(errno));
            return -1;
        }
        if (r->cfg.src_ips && bind_source(c->fd, i % r->cfg.src_ips) != 0) {
            fprintf(stderr, "loadgen: bind to 127.0.0.%u: %s\n", 1 + i % r->cfg.src_ips,
                    strerror(errno));
            return -1;
        }
        if (connect(c->fd, (struct sockaddr *)&r->addr, r->addr_len) != 0) {
            fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
            return -1;
        }
        struct sockaddr_storage local;
        socklen_t len = sizeof local;
        if (getsockname(c->fd, (struct sockaddr *)&local, &len) != 0) {
            perror("loadgen: getsockname");
            return -1;
        }
        if (r->family == AF_INET)
            memcpy(c->self_ip, &((struct sockaddr_in *)&local)->sin_addr, 4);
        else
            memcpy(c->self_ip, &((struct sockaddr_in6 *)&local)->sin6_addr, 16);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            perror("loadgen: epoll_ctl");
            return -1;
        }
    }
    for (int i = 0; i < BATCH; i++) {
        r->tx_iov[i].iov_base = r->tx[i];
        r->tx_msg[i].msg_hdr.msg_iov = &r->tx_iov[i];
        r->tx_msg[i].msg_hdr.msg_iovlen = 1;
        r->rx_iov[i].iov_base = r->rx[i];
        r->rx_iov[i].iov_len = RX_BUF;
        r->rx_msg[i].msg_hdr.msg_iov = &r->rx_iov[i];
        r->rx_msg[i].msg_hdr.msg_iovlen = 1;
    }
    return 0;
}

/* ------------------------------------------------------------ timeout FIFO */

static void fifo_push(struct timeout_fifo *f, struct timeout_entry e)
{
    if (f->len == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4096;
        struct timeout_entry *n = xcalloc(cap, sizeof *n);
        for (size_t i = 0; i < f->len; i++)
            n[i] = f->e[(f->head + i) % f->cap];
        free(f->e);
        f->e = n;
        f->cap = cap;
        f->head = 0;
    }
    f->e[(f->head + f->len) % f->cap] = e;
    f->len++;
}

/* ---------------------------------------------------------------- requests */

static bool is_measured(const struct run *r) { return r->phase == MEASURE; }

/* What this client should send next, or -1 for nothing (waiting for a connect). */
static int next_type(struct run *r, const struct client *c, uint64_t now)
{
    if (!c->has_id)
        return c->connecting ? -1 : T_CONNECT;
    if (now >= c->refresh_at && !c->connecting)
        return T_CONNECT;
    return pick_weighted(&r->rng, r->cfg.mix, 2) == 0 ? T_ANNOUNCE : T_SCRAPE;
}

/* Next transaction id of this client; its timed-out flag starts clear. */
static uint32_t issue_tid(struct client *c)
{
    uint32_t seq = c->next_seq++;
    c->timed_out[(seq % SEQ_HISTORY) / 64] &= ~(1ull << (seq % 64));
    return tid_of(seq, c->tid_key);
}

static size_t build_request(struct run *r, uint32_t ci, struct slot *s, int type, uint8_t *b)
{
    struct client *c = &r->clients[ci];
    const struct config *cfg = &r->cfg;
    s->type = (uint8_t)type;
    s->tid = issue_tid(c);
    if (type == T_CONNECT) {
        memcpy(b, PROTOCOL_MAGIC, 8);
        put_u32(b + 8, 0);
        memcpy(b + 12, &s->tid, 4);
        c->connecting = true;
        return 16;
    }
    memcpy(b, c->connection_id, 8);
    put_u32(b + 8, (uint32_t)type);
    memcpy(b + 12, &s->tid, 4);
    if (type == T_SCRAPE) {
        s->hashes = (uint8_t)cfg->scrape_hashes;
        for (uint32_t i = 0; i < cfg->scrape_hashes; i++)
            memcpy(b + 16 + 20 * i, r->hashes + (size_t)rng_below(&r->rng, cfg->torrents) * 20,
                   20);
        return 16 + 20 * (size_t)cfg->scrape_hashes;
    }
    uint32_t g = ci * cfg->peers + rng_below(&r->rng, cfg->peers);
    const struct peer *p = &r->peers[g];
    uint32_t torrent = cfg->peer_torrents
                           ? r->peer_torrents[(size_t)g * cfg->peer_torrents +
                                              rng_below(&r->rng, cfg->peer_torrents)]
                           : rng_below(&r->rng, cfg->torrents);
    uint32_t event = EVENT_CODES[pick_weighted(&r->rng, cfg->events, 4)];
    uint64_t left = (p->seeder || event == 1) ? 0 : 1 + (rng_next(&r->rng) >> 34);
    s->peer = g;
    s->num_want = cfg->num_want;
    memcpy(b + 16, r->hashes + (size_t)torrent * 20, 20);
    memcpy(b + 36, p->peer_id, 20);
    put_u64(b + 56, rng_next(&r->rng) >> 34); /* downloaded */
    put_u64(b + 64, left);
    put_u64(b + 72, rng_next(&r->rng) >> 34); /* uploaded */
    put_u32(b + 80, event);
    put_u32(b + 84, 0);                       /* ip: use the source address */
    put_u32(b + 88, p->key);
    put_u32(b + 92, (uint32_t)cfg->num_want);
    put_u16(b + 96, p->port);
    return ANNOUNCE_LEN;
}

static void release_slot(struct run *r, struct client *c, struct slot *s)
{
    if (s->type == T_CONNECT)
        c->connecting = false;
    s->busy = 0;
    c->busy--;
    r->outstanding--;
}

static void queue_retry(struct run *r, uint32_t ci)
{
    struct client *c = &r->clients[ci];
    if (!c->queued) {
        c->queued = true;
        r->retry[r->retry_len++] = ci;
    }
}

/* Send up to `budget` new requests on one client in one sendmmsg; returns how
 * many went out. Unsent ones are rolled back and the client retried later. */
static uint32_t fill(struct run *r, uint32_t ci, uint32_t budget, uint64_t now)
{
    struct client *c = &r->clients[ci];
    uint16_t used[BATCH];
    uint32_t n = 0;
    if (!r->sending || now < c->retry_at)
        return 0;
    if (budget > BATCH)
        budget = BATCH;
    while (n < budget && c->busy < r->cfg.window) {
        int type = next_type(r, c, now);
        if (type < 0)
            break;
        uint16_t si = 0;
        while (c->slots[si].busy)
            si++;
        struct slot *s = &c->slots[si];
        s->busy = 1;
        c->busy++;
        r->outstanding++;
        r->tx_iov[n].iov_len = build_request(r, ci, s, type, r->tx[n]);
        used[n++] = si;
    }
    if (n == 0)
        return 0;
    int sent = sendmmsg(c->fd, r->tx_msg, n, 0);
    if (sent < 0) {
        if (errno == ECONNREFUSED)
            r->refused++;
        else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            r->send_again++;
        else
            r->socket_other++;
        sent = 0;
    }
    bool measured = is_measured(r);
    for (uint32_t i = 0; i < n; i++) {
        struct slot *s = &c->slots[used[i]];
        if (i >= (uint32_t)sent) {
            release_slot(r, c, s);
            continue;
        }
        s->generation++;
        s->sent_ns = now;
        s->measured = measured;
        if (s->type == T_CONNECT && c->has_id)
            r->refresh_age++;
        if (measured)
            r->types[s->type].sent++;
        fifo_push(&r->fifo, (struct timeout_entry){now + r->timeout_ns, ci, s->generation,
                                                   used[i]});
    }
    if ((uint32_t)sent < n) {
        c->retry_at = now + 10 * 1000000ull;
        if (r->cfg.rate == 0)
            queue_retry(r, ci);
    }
    return (uint32_t)sent;
}

/* --------------------------------------------------------------- replies */

static void violation(struct run *r, enum violation_kind k, const uint8_t *b, size_t len)
{
    struct violation *v = &r->violations[k];
    if (v->count++ == 0) {
        v->first_len = len;
        memcpy(v->first, b, len < DUMP_BYTES ? len : DUMP_BYTES);
    }
}

static void record_error_text(struct run *r, const uint8_t *text, size_t len)
{
    if (len > ERROR_TEXT_MAX)
        len = ERROR_TEXT_MAX;
    for (uint32_t i = 0; i < r->error_kinds; i++) {
        struct error_text *e = &r->errors[i];
        if (e->len == len && memcmp(e->text, text, len) == 0) {
            e->count++;
            return;
        }
    }
    if (r->error_kinds == MAX_ERROR_TEXTS) {
        r->errors_unlisted++;
        return;
    }
    struct error_text *e = &r->errors[r->error_kinds++];
    memcpy(e->text, text, len);
    e->len = len;
    e->count = 1;
}

/* Insert a compact peer into the per-reply set; true if it was already there. */
static bool peer_seen(struct run *r, const uint8_t *base, uint16_t idx)
{
    const uint8_t *entry = base + (size_t)idx * r->stride;
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < r->stride; i++)
        h = (h ^ entry[i]) * 16777619u;
    h ^= h >> 15;
    for (uint32_t at = h & (PEER_SET_SIZE - 1);; at = (at + 1) & (PEER_SET_SIZE - 1)) {
        if (r->set_mark[at] != r->set_stamp) {
            r->set_mark[at] = r->set_stamp;
            r->set_index[at] = idx;
            return false;
        }
        if (memcmp(base + (size_t)r->set_index[at] * r->stride, entry, r->stride) == 0)
            return true;
    }
}

/* Checks an announce reply (docs/PROTOCOL.md §7.1); returns true if it is valid. */
static bool check_announce(struct run *r, const struct client *c, const struct slot *s,
                           const uint8_t *b, size_t len)
{
    if (len < 20 || (len - 20) % r->stride != 0) {
        violation(r, V_ANNOUNCE_LENGTH, b, len);
        return false;
    }
    bool ok = true;
    if (get_i32(b + 8) <= 0) {
        violation(r, V_INTERVAL, b, len);
        ok = false;
    }
    int32_t leechers = get_i32(b + 12), seeders = get_i32(b + 16);
    if (leechers < 0 || seeders < 0) {
        violation(r, V_NEGATIVE_COUNT, b, len);
        ok = false;
    }
    size_t n = (len - 20) / r->stride;
    if (s->num_want >= 0 && n > (size_t)s->num_want) {
        violation(r, V_TOO_MANY_PEERS, b, len);
        ok = false;
    }
    if (++r->set_stamp == 0) {
        memset(r->set_mark, 0, sizeof r->set_mark);
        r->set_stamp = 1;
    }
    const uint8_t *list = b + 20;
    uint16_t own_port = r->peers[s->peer].port;
    bool dup = false, self = false, port0 = false;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = list + i * r->stride;
        uint16_t port = get_u16(e + r->ip_len);
        port0 |= port == 0;
        self |= port == own_port && memcmp(e, c->self_ip, r->ip_len) == 0;
        dup |= peer_seen(r, list, (uint16_t)i);
    }
    if (dup)
        violation(r, V_DUPLICATE_PEER, b, len);
    if (self)
        violation(r, V_SELF_IN_PEERS, b, len);
    if (port0)
        violation(r, V_PEER_PORT_ZERO, b, len);
    if (!ok || dup || self || port0)
        return false;
    if (s->measured) {
        r->ann_peers += n;
        r->ann_empty += n == 0;
        r->ann_seeders += (uint64_t)seeders;
        r->ann_leechers += (uint64_t)leechers;
    }
    return true;
}

/* Checks a scrape reply (docs/PROTOCOL.md §8); returns true if it is valid. */
static bool check_scrape(struct run *r, const struct slot *s, const uint8_t *b, size_t len)
{
    if (len != 8 + 12 * (size_t)s->hashes) {
        violation(r, V_SCRAPE_LENGTH, b, len);
        return false;
    }
    for (size_t i = 8; i < len; i += 4) {
        if (get_i32(b + i) < 0) {
            violation(r, V_NEGATIVE_COUNT, b, len);
            return false;
        }
    }
    if (s->measured)
        r->scrape_entries += s->hashes;
    return true;
}

static struct slot *find_outstanding(struct run *r, struct client *c, uint32_t tid)
{
    for (uint32_t i = 0; i < r->cfg.window; i++)
        if (c->slots[i].busy && c->slots[i].tid == tid)
            return &c->slots[i];
    return NULL;
}

/* A reply that answers no outstanding request: late if its request timed out
 * (beyond SEQ_HISTORY requests ago, late is assumed), a violation otherwise. */
static void on_unmatched(struct run *r, struct client *c, uint32_t tid, const uint8_t *b,
                         size_t len)
{
    uint32_t seq = seq_of(tid, c->tid_key);
    uint32_t age = c->next_seq - seq; /* 1 = the latest request */
    if (age == 0 || age > c->next_seq) {
        violation(r, V_UNKNOWN_TID, b, len);
        return;
    }
    uint64_t *word = &c->timed_out[(seq % SEQ_HISTORY) / 64];
    uint64_t bit = 1ull << (seq % 64);
    if (age > SEQ_HISTORY || (*word & bit)) {
        *word &= ~bit;
        r->late++;
        return;
    }
    violation(r, V_DUPLICATE_REPLY, b, len);
}

static void on_reply(struct run *r, uint32_t ci, const uint8_t *b, size_t len, bool truncated,
                     uint64_t now)
{
    struct client *c = &r->clients[ci];
    r->datagrams++;
    if (len < 8) {
        violation(r, V_SHORT, b, len);
        return;
    }
    uint32_t tid;
    memcpy(&tid, b + 4, 4);
    struct slot *s = find_outstanding(r, c, tid);
    if (!s) {
        on_unmatched(r, c, tid, b, len);
        return;
    }
    if (r->phase == MEASURE)
        r->window_replies++;
    struct type_stats *st = &r->types[s->type];
    int type = s->type;
    bool measured = s->measured;
    if (measured)
        hist_add(&st->latency, now - s->sent_ns);
    uint32_t action = get_u32(b);
    bool ok;
    if (truncated) {
        violation(r, V_TRUNCATED, b, len);
        ok = false;
    } else if (action == ACTION_ERROR) {
        record_error_text(r, b + 8, len - 8);
        release_slot(r, c, s);
        if (c->has_id)
            r->refresh_error++;
        c->has_id = false;
        if (measured)
            st->error++;
        return;
    } else if (action != (uint32_t)type) {
        violation(r, V_ACTION, b, len);
        ok = false;
    } else if (type == T_CONNECT) {
        ok = len == 16;
        if (ok) {
            memcpy(c->connection_id, b + 8, 8);
            c->has_id = true;
            /* Spread refreshes over 10 % of the period so clients do not
             * reconnect in lockstep. */
            uint64_t period = (uint64_t)(r->cfg.reconnect_s * 1e9);
            c->refresh_at = now + period - (uint64_t)(rng_unit(&r->rng) * (double)period * 0.1);
        } else {
            violation(r, V_CONNECT_LENGTH, b, len);
        }
    } else if (type == T_ANNOUNCE) {
        ok = check_announce(r, c, s, b, len);
    } else {
        ok = check_scrape(r, s, b, len);
    }
    release_slot(r, c, s);
    if (ok && r->phase == MEASURE)
        r->window_ok++;
    if (measured) {
        if (ok)
            st->ok++;
        else
            st->malformed++;
    }
}

static void on_readable(struct run *r, uint32_t ci)
{
    struct client *c = &r->clients[ci];
    for (int round = 0; round < RECV_ROUNDS; round++) {
        int n = recvmmsg(c->fd, r->rx_msg, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            if (errno == ECONNREFUSED) {
                r->refused++;
                continue;
            }
            r->socket_other++;
            break;
        }
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++)
            on_reply(r, ci, r->rx[i], r->rx_msg[i].msg_len,
                     (r->rx_msg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, now);
        if (n < BATCH)
            break;
    }
    if (r->cfg.rate == 0)
        fill(r, ci, r->cfg.window, now_ns());
}

static void expire(struct run *r, uint64_t now)
{
    struct timeout_fifo *f = &r->fifo;
    while (f->len && f->e[f->head].deadline <= now) {
        struct timeout_entry e = f->e[f->head];
        f->head = (f->head + 1) % f->cap;
        f->len--;
        struct client *c = &r->clients[e.client];
        struct slot *s = &c->slots[e.slot];
        if (!s->busy || s->generation != e.generation)
            continue;
        if (s->measured)
            r->types[s->type].timeouts++;
        uint32_t seq = seq_of(s->tid, c->tid_key);
        if (c->next_seq - seq <= SEQ_HISTORY)
            c->timed_out[(seq % SEQ_HISTORY) / 64] |= 1ull << (seq % 64);
        release_slot(r, c, s);
        if (r->cfg.rate == 0)
            fill(r, e.client, r->cfg.window, now);
    }
}

/* Clients whose send failed (full socket buffer, ICMP error) try again once
 * their back-off has passed. fill() may append a client again while this runs;
 * such an entry has a future retry_at and is kept. */
static void retry_pending(struct run *r, uint64_t now)
{
    uint32_t keep = 0;
    for (uint32_t i = 0; i < r->retry_len; i++) {
        uint32_t ci = r->retry[i];
        struct client *c = &r->clients[ci];
        if (now < c->retry_at) {
            r->retry[keep++] = ci;
            continue;
        }
        c->queued = false;
        fill(r, ci, r->cfg.window, now);
    }
    r->retry_len = keep;
}

/* Open loop: a token bucket spreads --rate requests/s over the clients, one
 * request per client in turn, skipping clients whose window is full. */
static void pace(struct run *r, uint64_t now)
{
    double cap = r->cfg.rate * 0.05 > 1 ? r->cfg.rate * 0.05 : 1;
    r->tokens += (double)(now - r->pace_last) * 1e-9 * r->cfg.rate;
    r->pace_last = now;
    if (r->tokens > cap)
        r->tokens = cap;
    uint32_t misses = 0;
    while (r->tokens >= 1 && misses < r->cfg.sockets) {
        uint32_t ci = r->pace_cursor;
        r->pace_cursor = (r->pace_cursor + 1) % r->cfg.sockets;
        if (fill(r, ci, 1, now) == 1) {
            r->tokens -= 1;
            misses = 0;
        } else {
            misses++;
        }
    }
}

/* --------------------------------------------------------------- main loop */

static void begin_measure(struct run *r, uint64_t now)
{
    r->phase = MEASURE;
    r->t_measure_start = now;
    getrusage(RUSAGE_SELF, &r->ru_start);
}

static void end_measure(struct run *r, uint64_t now)
{
    r->phase = DRAIN;
    r->sending = false;
    r->t_measure_end = now;
    getrusage(RUSAGE_SELF, &r->ru_end);
}

static int ms_until(uint64_t now, uint64_t t, int cap)
{
    if (t <= now)
        return 0;
    uint64_t ms = (t - now + 999999) / 1000000;
    return ms < (uint64_t)cap ? (int)ms : cap;
}

/* Warmup, measured window, then drain until every request is answered or has
 * timed out. Every wait is at most MAX_WAIT_MS, so the phase deadlines hold. */
static void run_loop(struct run *r)
{
    const struct config *cfg = &r->cfg;
    struct epoll_event events[EPOLL_EVENTS];
    uint64_t start = now_ns();
    uint64_t warm_end = start + (uint64_t)(cfg->warmup_s * 1e9);
    uint64_t measure_end = warm_end + (uint64_t)(cfg->duration_s * 1e9);
    uint64_t drain_end = UINT64_MAX;

    r->timeout_ns = (uint64_t)cfg->timeout_ms * 1000000ull;
    r->sending = true;
    r->pace_last = start;
    if (cfg->warmup_s > 0)
        r->phase = WARMUP;
    else
        begin_measure(r, start);
    if (cfg->rate == 0)
        for (uint32_t i = 0; i < cfg->sockets; i++)
            fill(r, i, cfg->window, start);

    for (;;) {
        uint64_t now = now_ns();
        if (r->phase == WARMUP && (now >= warm_end || stop_requested))
            begin_measure(r, now);
        if (r->phase == MEASURE && (now >= measure_end || stop_requested)) {
            end_measure(r, now);
            drain_end = now + r->timeout_ns;
        }
        if (r->phase == DRAIN && (r->outstanding == 0 || now >= drain_end))
            break;
        expire(r, now);
        if (r->sending && r->retry_len)
            retry_pending(r, now);
        if (r->sending && cfg->rate > 0)
            pace(r, now);

        int wait = (cfg->rate > 0 || r->retry_len) ? 1 : MAX_WAIT_MS;
        if (r->fifo.len)
            wait = ms_until(now, r->fifo.e[r->fifo.head].deadline, wait);
        wait = ms_until(now, r->phase == WARMUP ? warm_end
                             : r->phase == MEASURE ? measure_end
                                                   : drain_end,
                        wait);
        int n = epoll_wait(r->epfd, events, EPOLL_EVENTS, wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("loadgen: epoll_wait");
            if (r->phase != DRAIN)
                end_measure(r, now_ns());
            break;
        }
        for (int i = 0; i < n; i++)
            on_readable(r, events[i].data.u32);
    }

    /* Whatever is still unanswered after the drain is lost. */
    for (uint32_t ci = 0; ci < cfg->sockets; ci++) {
        struct client *c = &r->clients[ci];
        for (uint32_t i = 0; i < cfg->window; i++) {
            struct slot *s = &c->slots[i];
            if (!s->busy)
                continue;
            if (s->measured)
                r->types[s->type].timeouts++;
            release_slot(r, c, s);
        }
    }
}

/* ------------------------------------------------------------------ report */

struct summary {
    double seconds;
    double cpu_percent;
    struct type_stats total; /* latency unused */
    uint64_t lost;
};

static double tv_seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static void summarize(const struct run *r, struct summary *sum)
{
    memset(sum, 0, sizeof *sum);
    sum->seconds = (double)(r->t_measure_end - r->t_measure_start) / 1e9;
    double cpu = tv_seconds(r->ru_end.ru_utime) - tv_seconds(r->ru_start.ru_utime) +
                 tv_seconds(r->ru_end.ru_stime) - tv_seconds(r->ru_start.ru_stime);
    sum->cpu_percent = 100 * ratio(cpu, sum->seconds);
    for (int t = 0; t < T_COUNT; t++) {
        const struct type_stats *s = &r->types[t];
        sum->total.sent += s->sent;
        sum->total.ok += s->ok;
        sum->total.error += s->error;
        sum->total.malformed += s->malformed;
        sum->total.timeouts += s->timeouts;
    }
    sum->lost = sum->total.timeouts;
}

static void print_escaped(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
}

static void print_hex(FILE *f, const uint8_t *b, size_t len)
{
    for (size_t i = 0; i < len && i < DUMP_BYTES; i++)
        fprintf(f, "%02x", b[i]);
}

static void report_text(const struct run *r, const struct summary *sum)
{
    const struct config *c = &r->cfg;
    FILE *f = stdout;
    fprintf(f, "loadgen -> %s port %d: %.2f s measured after %.2f s warmup\n", c->host, c->port,
            sum->seconds, c->warmup_s);
    fprintf(f, "%u sockets x %u peers, window %u, ", c->sockets, c->peers, c->window);
    if (c->rate > 0)
        fprintf(f, "rate %.0f/s", c->rate);
    else
        fprintf(f, "closed loop");
    fprintf(f, ", %u torrents, mix %u:%u, num_want %d\n\n", c->torrents, c->mix[0], c->mix[1],
            c->num_want);
    fprintf(f, "%-9s %11s %11s %9s %9s %9s %9s %9s %9s %10s\n", "type", "sent", "ok", "error",
            "malformed", "timeouts", "p50 us", "p90 us", "p99 us", "max us");
    for (int t = 0; t < T_COUNT; t++) {
        const struct type_stats *s = &r->types[t];
        fprintf(f, "%-9s %11" PRIu64 " %11" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
                   " %9.1f %9.1f %9.1f %10.1f\n",
                TYPE_NAMES[t], s->sent, s->ok, s->error, s->malformed, s->timeouts,
                hist_percentile_us(&s->latency, 0.50), hist_percentile_us(&s->latency, 0.90),
                hist_percentile_us(&s->latency, 0.99), (double)s->latency.max_ns / 1000.0);
    }
    fprintf(f, "%-9s %11" PRIu64 " %11" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64 "\n\n",
            "total", sum->total.sent, sum->total.ok, sum->total.error, sum->total.malformed,
            sum->total.timeouts);
    fprintf(f, "responses/s    %.1f (ok %.1f/s), requests/s %.1f\n",
            ratio((double)r->window_replies, sum->seconds),
            ratio((double)r->window_ok, sum->seconds),
            ratio((double)sum->total.sent, sum->seconds));
    fprintf(f, "lost replies   %" PRIu64 " (timeouts), late replies %" PRIu64 "\n", sum->lost,
            r->late);
    double ok_ann = (double)r->types[T_ANNOUNCE].ok;
    fprintf(f, "announces      avg peers %.2f, empty lists %" PRIu64
               ", avg seeders %.2f, avg leechers %.2f\n",
            ratio((double)r->ann_peers, ok_ann), r->ann_empty,
            ratio((double)r->ann_seeders, ok_ann), ratio((double)r->ann_leechers, ok_ann));
    fprintf(f, "connections    refreshed %" PRIu64 " by age, %" PRIu64 " after an error reply\n",
            r->refresh_age, r->refresh_error);
    fprintf(f, "sockets        refused %" PRIu64 ", send retried %" PRIu64 ", other errors %" PRIu64
               "\n",
            r->refused, r->send_again, r->socket_other);
    fprintf(f, "cpu            %.1f %% of one core (loadgen itself)\n", sum->cpu_percent);
    fprintf(f, "error replies ");
    if (r->error_kinds == 0)
        fprintf(f, " none\n");
    else
        fputc('\n', f);
    for (uint32_t i = 0; i < r->error_kinds; i++) {
        fprintf(f, "  \"");
        print_escaped(f, r->errors[i].text, r->errors[i].len);
        fprintf(f, "\": %" PRIu64 "\n", r->errors[i].count);
    }
    if (r->errors_unlisted)
        fprintf(f, "  (other messages): %" PRIu64 "\n", r->errors_unlisted);
    bool any = false;
    for (int k = 0; k < V_COUNT; k++)
        any |= r->violations[k].count > 0;
    fprintf(f, "violations    %s\n", any ? "" : " none");
    for (int k = 0; k < V_COUNT; k++) {
        const struct violation *v = &r->violations[k];
        if (!v->count)
            continue;
        fprintf(f, "  %s: %" PRIu64 ", first (%zu bytes): ", VIOLATION_NAMES[k], v->count,
                v->first_len);
        print_hex(f, v->first, v->first_len);
        fprintf(f, "%s\n", v->first_len > DUMP_BYTES ? "..." : "");
    }
}

static void json_type(FILE *f, const char *name, const struct type_stats *s, bool latency)
{
    fprintf(f, "\"%s\":{\"sent\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"error\":%" PRIu64
               ",\"malformed\":%" PRIu64 ",\"timeouts\":%" PRIu64,
            name, s->sent, s->ok, s->error, s->malformed, s->timeouts);
    if (latency)
        fprintf(f, ",\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f}",
                hist_percentile_us(&s->latency, 0.50), hist_percentile_us(&s->latency, 0.90),
                hist_percentile_us(&s->latency, 0.99), (double)s->latency.max_ns / 1000.0);
    fputc('}', f);
}

static void report_json(const struct run *r, const struct summary *sum)
{
    const struct config *c = &r->cfg;
    FILE *f = stdout;
    double ok_ann = (double)r->types[T_ANNOUNCE].ok;
    fprintf(f, "{\"target\":{\"host\":\"");
    print_escaped(f, c->host, strlen(c->host));
    fprintf(f, "\",\"port\":%d},", c->port);
    fprintf(f,
            "\"config\":{\"duration_s\":%g,\"warmup_s\":%g,\"timeout_ms\":%u,\"sockets\":%u,"
            "\"peers\":%u,\"window\":%u,\"rate\":%g,\"torrents\":%u,\"peer_torrents\":%u,"
            "\"mix\":[%u,%u],\"scrape_hashes\":%u,\"events\":[%u,%u,%u,%u],\"seeders\":%g,"
            "\"num_want\":%d,\"seed\":%" PRIu64 ",\"reconnect_s\":%g},",
            c->duration_s, c->warmup_s, c->timeout_ms, c->sockets, c->peers, c->window, c->rate,
            c->torrents, c->peer_torrents, c->mix[0], c->mix[1], c->scrape_hashes, c->events[0],
            c->events[1], c->events[2], c->events[3], c->seeders, c->num_want, c->seed,
            c->reconnect_s);
    fprintf(f, "\"measured_s\":%.6f,\"types\":{", sum->seconds);
    for (int t = 0; t < T_COUNT; t++) {
        if (t)
            fputc(',', f);
        json_type(f, TYPE_NAMES[t], &r->types[t], true);
    }
    fprintf(f, "},");
    json_type(f, "totals", &sum->total, false);
    fprintf(f,
            ",\"responses\":%" PRIu64 ",\"responses_per_s\":%.1f,\"ok_per_s\":%.1f,"
            "\"requests_per_s\":%.1f,\"lost\":%" PRIu64 ",\"late\":%" PRIu64
            ",\"datagrams\":%" PRIu64 ",",
            r->window_replies, ratio((double)r->window_replies, sum->seconds),
            ratio((double)r->window_ok, sum->seconds),
            ratio((double)sum->total.sent, sum->seconds), sum->lost, r->late, r->datagrams);
    fprintf(f,
            "\"announce\":{\"avg_peers\":%.3f,\"empty\":%" PRIu64
            ",\"avg_seeders\":%.3f,\"avg_leechers\":%.3f},"
            "\"scrape\":{\"entries\":%" PRIu64 "},"
            "\"reconnects\":{\"age\":%" PRIu64 ",\"error\":%" PRIu64 "},"
            "\"socket_errors\":{\"refused\":%" PRIu64 ",\"send_retried\":%" PRIu64
            ",\"other\":%" PRIu64 "},\"cpu_percent\":%.1f,",
            ratio((double)r->ann_peers, ok_ann), r->ann_empty,
            ratio((double)r->ann_seeders, ok_ann), ratio((double)r->ann_leechers, ok_ann),
            r->scrape_entries, r->refresh_age, r->refresh_error, r->refused, r->send_again,
            r->socket_other, sum->cpu_percent);
    fprintf(f, "\"errors\":{");
    for (uint32_t i = 0; i < r->error_kinds; i++) {
        fprintf(f, "%s\"", i ? "," : "");
        print_escaped(f, r->errors[i].text, r->errors[i].len);
        fprintf(f, "\":%" PRIu64, r->errors[i].count);
    }
    fprintf(f, "},\"errors_unlisted\":%" PRIu64 ",\"violations\":{", r->errors_unlisted);
    bool first = true;
    for (int k = 0; k < V_COUNT; k++) {
        const struct violation *v = &r->violations[k];
        if (!v->count)
            continue;
        fprintf(f, "%s\"%s\":{\"count\":%" PRIu64 ",\"first_len\":%zu,\"first_hex\":\"",
                first ? "" : ",", VIOLATION_NAMES[k], v->count, v->first_len);
        print_hex(f, v->first, v->first_len);
        fprintf(f, "\"}");
        first = false;
    }
    fprintf(f, "}}\n");
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    struct run *r = &RUN;
    config_defaults(&r->cfg);
    parse_args(&r->cfg, argc, argv);
    resolve_target(r);
    if (r->cfg.src_ips && r->family != AF_INET)
        usage_error("--src-ips needs an IPv4 target");
    make_hashes(r);
    if (r->cfg.dump_path)
        return dump_hashes(r, r->cfg.dump_path);
    make_peers(r);
    rng_init(&r->rng, r->cfg.seed, 3);
    if (open_clients(r) != 0)
        return 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Safety net for the time bound: the loop ends by itself at warmup +
     * duration + timeout; if it somehow did not, SIGALRM ends the process. */
    alarm((unsigned)(r->cfg.warmup_s + r->cfg.duration_s + r->cfg.timeout_ms / 1000.0) + 5);

    run_loop(r);
    alarm(0);

    struct summary sum;
    summarize(r, &sum);
    if (r->cfg.json)
        report_json(r, &sum);
    else
        report_text(r, &sum);
    fflush(stdout);
    if (r->datagrams == 0) {
        fprintf(stderr, "loadgen: nothing answered (is a tracker listening on %s port %d?)\n",
                r->cfg.host, r->cfg.port);
        return 1;
    }
    return 0;
}
