/* flood: hostile UDP traffic for benchmarks/torture.py, loopback only.
 *
 * A Python sender cannot reach a flood's rate, so this is C, built like loadgen:
 *     gcc -O2 -Wall -Wextra -o flood flood.c
 *
 * Modes:
 *   garbage   --count N datagrams of random bytes, random lengths 1..200, from one
 *             socket bound to --src, as fast as sendmmsg goes (or --rate R/s).
 *   announce  --sources K sockets bound to --src, --src + 1, ... (K sources); each
 *             connects (BEP 15) and then sends valid-id announces, each for a fresh
 *             random info hash (a random-hash flood), or all for --hash HEX (a
 *             refusal flood on one torrent), at --rate R/s in total for --duration S.
 *             Replies are read and counted: ok (action 1), errors by text.
 *
 * The target must be in 127.0.0.0/8 and so must every source; the run ends after
 * --duration (announce) or --count datagrams (garbage), and alarm() ends it anyway
 * 10 s past that bound. One JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_SOURCES 254
#define MAX_TEXTS 8
#define ANNOUNCE_LEN 98

struct opts {
    const char *mode, *host, *src, *hash_hex;
    int port;
    long count, sources;
    double rate, duration;
    uint64_t seed;
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void rng_fill(uint8_t *p, size_t n)
{
    while (n) {
        uint64_t v = rng_next();
        size_t k = n < 8 ? n : 8;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noreturn)) static void die(const char *what)
{
    fprintf(stderr, "flood: %s\n", what);
    exit(2);
}

static struct in_addr loopback(const char *text)
{
    struct in_addr a;
    if (inet_pton(AF_INET, text, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
        die("addresses must be numeric IPv4 in 127.0.0.0/8");
    return a;
}

/* A socket bound to source address src + k and connected to the target. */
static int open_socket(struct in_addr src, uint32_t k, const struct sockaddr_in *target)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket failed");
    struct sockaddr_in local = {.sin_family = AF_INET};
    local.sin_addr.s_addr = htonl(ntohl(src.s_addr) + k);
    if ((ntohl(local.sin_addr.s_addr) >> 24) != 127)
        die("a source left 127.0.0.0/8");
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0)
        die("bind failed");
    if (connect(fd, (const struct sockaddr *)target, sizeof *target) != 0)
        die("connect failed");
    return fd;
}

/* Send n datagrams of bufs/lens in sendmmsg batches; returns how many the kernel took. */
static long send_batch(int fd, uint8_t bufs[][ANNOUNCE_LEN + 102], const size_t *lens, int n)
{
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = lens[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (sent < 0) {
        if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED)
            return 0;
        die("sendmmsg failed");
    }
    return sent;
}

/* Wait until `due` (rate pacing); never longer than 10 ms at a time. */
static void pace(double due)
{
    double wait = due - now_s();
    if (wait <= 0)
        return;
    if (wait > 0.01)
        wait = 0.01;
    struct timespec ts = {0, (long)(wait * 1e9)};
    nanosleep(&ts, NULL);
}

static int run_garbage(const struct opts *o, const struct sockaddr_in *target)
{
    int fd = open_socket(loopback(o->src), 0, target);
    static uint8_t bufs[BATCH][ANNOUNCE_LEN + 102];
    size_t lens[BATCH];
    long sent = 0, refused = 0;
    double start = now_s();
    while (sent < o->count) {
        int n = (int)(o->count - sent < BATCH ? o->count - sent : BATCH);
        for (int i = 0; i < n; i++) {
            lens[i] = 1 + rng_next() % 200;
            rng_fill(bufs[i], lens[i]);
        }
        long k = send_batch(fd, bufs, lens, n);
        if (k == 0)
            refused++;
        sent += k;
        if (o->rate > 0)
            pace(start + (double)sent / o->rate);
    }
    double seconds = now_s() - start;
    printf("{\"mode\":\"garbage\",\"sent\":%ld,\"seconds\":%.3f,\"per_s\":%.0f,"
           "\"send_retried\":%ld}\n",
           sent, seconds, seconds > 0 ? (double)sent / seconds : 0, refused);
    return 0;
}

struct source {
    int fd;
    uint8_t connection_id[8];
    bool connected;
    double connect_sent;
};

struct tally {
    long sent, ok, errors, other;
    long text_count[MAX_TEXTS];
    char texts[MAX_TEXTS][64];
    long untexted;
};

static void count_error(struct tally *t, const uint8_t *msg, size_t len)
{
    if (len > 63)
        len = 63;
    for (int i = 0; i < MAX_TEXTS; i++) {
        if (t->texts[i][0] == 0) {
            memcpy(t->texts[i], msg, len);
            t->texts[i][len] = 0;
        }
        if (strlen(t->texts[i]) == len && memcmp(t->texts[i], msg, len) == 0) {
            t->text_count[i]++;
            return;
        }
    }
    t->untexted++;
}

static void send_connect(struct source *s)
{
    uint8_t req[16];
    uint64_t magic = 0x41727101980ull;
    for (int i = 0; i < 8; i++)
        req[i] = (uint8_t)(magic >> (56 - 8 * i));
    memset(req + 8, 0, 4);
    rng_fill(req + 12, 4);
    if (send(s->fd, req, sizeof req, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED)
        die("send failed");
    s->connect_sent = now_s();
}

/* Read every reply waiting on s: connect replies give the id, the rest are tallied. */
static void drain(struct source *s, struct tally *t)
{
    uint8_t buf[2048];
    for (;;) {
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n < 0)
            return;
        uint32_t action = n >= 4 ? ntohl(*(uint32_t *)buf) : 99;
        if (action == 0 && n >= 16) {
            memcpy(s->connection_id, buf + 8, 8);
            s->connected = true;
        } else if (action == 1) {
            t->ok++;
        } else if (action == 3 && n >= 8) {
            t->errors++;
            count_error(t, buf + 8, (size_t)n - 8);
        } else {
            t->other++;
        }
    }
}

static void fill_announce(uint8_t *p, const struct source *s, const uint8_t *hash)
{
    memcpy(p, s->connection_id, 8);
    uint32_t one = htonl(1);
    memcpy(p + 8, &one, 4);
    rng_fill(p + 12, 4); /* transaction id */
    if (hash)
        memcpy(p + 16, hash, 20);
    else
        rng_fill(p + 16, 20);
    memcpy(p + 36, "-FL0001-", 8);
    rng_fill(p + 44, 12);
    memset(p + 56, 0, 24);     /* downloaded, left, uploaded */
    p[71] = 1;                 /* left = 1: a leecher */
    uint32_t started = htonl(2);
    memcpy(p + 80, &started, 4);
    memset(p + 84, 0, 4);      /* ip 0 */
    rng_fill(p + 88, 4);       /* key */
    uint32_t want = htonl(0);
    memcpy(p + 92, &want, 4);  /* num_want 0: small replies */
    uint16_t port = htons((uint16_t)(1024 + rng_next() % 60000));
    memcpy(p + 96, &port, 2);
}

static bool parse_hash(const char *hex, uint8_t out[20])
{
    if (strlen(hex) != 40)
        return false;
    for (int i = 0; i < 20; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

static void print_tally(const struct tally *t, double seconds, long sources, long connected)
{
    printf("{\"mode\":\"announce\",\"sources\":%ld,\"connected\":%ld,\"sent\":%ld,"
           "\"seconds\":%.3f,\"per_s\":%.0f,\"ok\":%ld,\"errors\":%ld,\"other\":%ld,\"texts\":{",
           sources, connected, t->sent, seconds, seconds > 0 ? (double)t->sent / seconds : 0,
           t->ok, t->errors, t->other);
    for (int i = 0; i < MAX_TEXTS && t->texts[i][0]; i++)
        printf("%s\"%s\":%ld", i ? "," : "", t->texts[i], t->text_count[i]);
    printf("},\"untexted\":%ld}\n", t->untexted);
}

/* Connect every source (resend each second until answered, at most 5 s). */
static long connect_all(struct source *src, long n, struct tally *t)
{
    double until = now_s() + 5;
    long connected = 0;
    while (connected < n && now_s() < until) {
        connected = 0;
        for (long i = 0; i < n; i++) {
            if (!src[i].connected && now_s() - src[i].connect_sent > 1)
                send_connect(&src[i]);
            drain(&src[i], t);
            connected += src[i].connected;
        }
        pace(now_s() + 0.001);
    }
    return connected;
}

static int run_announce(const struct opts *o, const struct sockaddr_in *target)
{
    static struct source src[MAX_SOURCES];
    static uint8_t bufs[BATCH][ANNOUNCE_LEN + 102];
    size_t lens[BATCH];
    uint8_t hash[20];
    bool fixed = o->hash_hex != NULL;
    if (fixed && !parse_hash(o->hash_hex, hash))
        die("--hash needs 40 hex digits");
    struct in_addr first = loopback(o->src);
    struct tally t = {0};
    for (long i = 0; i < o->sources; i++) {
        src[i].fd = open_socket(first, (uint32_t)i, target);
        src[i].connect_sent = -10;
    }
    long connected = connect_all(src, o->sources, &t);
    double start = now_s(), reconnect_at = start + 60;
    long turn = 0;
    while (now_s() - start < o->duration) {
        struct source *s = &src[turn++ % o->sources];
        if (s->connected) {
            for (int i = 0; i < BATCH; i++) {
                fill_announce(bufs[i], s, fixed ? hash : NULL);
                lens[i] = ANNOUNCE_LEN;
            }
            t.sent += send_batch(s->fd, bufs, lens, BATCH);
        }
        drain(s, &t);
        if (now_s() > reconnect_at) { /* ids live 120 s by default: refresh at 60 */
            for (long i = 0; i < o->sources; i++)
                send_connect(&src[i]);
            reconnect_at += 60;
        }
        if (o->rate > 0)
            pace(start + (double)t.sent / o->rate);
    }
    double seconds = now_s() - start;
    double until = now_s() + 0.3; /* the last replies */
    while (now_s() < until) {
        for (long i = 0; i < o->sources; i++)
            drain(&src[i], &t);
        pace(now_s() + 0.005);
    }
    print_tally(&t, seconds, o->sources, connected);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.host = "127.0.0.1", .port = 6969, .count = 1000000, .sources = 1,
                     .duration = 10, .src = "127.0.0.250", .seed = 1};
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},   {"port", required_argument, 0, 'p'},
        {"src", required_argument, 0, 's'},    {"sources", required_argument, 0, 'k'},
        {"count", required_argument, 0, 'n'},  {"rate", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'}, {"hash", required_argument, 0, 'H'},
        {"seed", required_argument, 0, 'S'},   {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 's': o.src = optarg; break;
        case 'k': o.sources = atol(optarg); break;
        case 'n': o.count = atol(optarg); break;
        case 'r': o.rate = atof(optarg); break;
        case 'd': o.duration = atof(optarg); break;
        case 'H': o.hash_hex = optarg; break;
        case 'S': o.seed = strtoull(optarg, NULL, 10); break;
        default: die("usage: flood garbage|announce [--host A] [--port P] [--src A] ...");
        }
    }
    if (optind != argc - 1)
        die("usage: flood garbage|announce [options]");
    o.mode = argv[optind];
    if (o.sources < 1 || o.sources > MAX_SOURCES || o.port < 1 || o.port > 65535)
        die("--sources is 1..254, --port 1..65535");
    if (o.duration <= 0 || o.duration > 600 || o.count < 0 || o.count > 100000000)
        die("--duration is (0, 600], --count at most 1e8");
    /* The source address is part of the seed: two floods from different sources never
     * send the same "random" hashes (a second one would re-announce the first's torrents,
     * which exist, and look like it beat its new-torrent quota). */
    rng_state ^= (o.seed + ntohl(loopback(o.src).s_addr)) * 0xD1B54A32D192ED03ull;
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    target.sin_addr = loopback(o.host);
    alarm((unsigned)(strcmp(o.mode, "garbage") == 0 ? 120 : o.duration + 10));
    if (strcmp(o.mode, "garbage") == 0)
        return run_garbage(&o, &target);
    if (strcmp(o.mode, "announce") == 0)
        return run_announce(&o, &target);
    die("mode is garbage or announce");
}
