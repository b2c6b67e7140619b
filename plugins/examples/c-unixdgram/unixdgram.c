/*
 * unixdgram.c: a complete meshpay transport plugin in C, and the template a
 * vendor copies to write their own.
 *
 * It links meshpay nodes on one machine over SOCK_DGRAM Unix sockets (labs,
 * tests). The same link protocol, "unixdgram", is implemented in Rust in
 * plugins/transport-unixdgram/, and the two interoperate.
 *
 * Written only against meshpay_plugin.h (C11 plus POSIX sockets). Read it top
 * to bottom: constants and state, host access, the config parser, the wire
 * format, the socket, and finally the function table and the one exported
 * symbol.
 *
 * ---------------------------------------------------------------------------
 * Wire format (every datagram):
 *
 *     "MPU1" (4 bytes magic) | type (1 byte) | frame (data only)
 *
 *     type 0 = probe: exactly 5 bytes, "I am here".
 *     type 1 = data:  followed by the frame, 0..65000 bytes.
 *
 * Anything else is dropped and counted (logged at debug). The sender is
 * identified by the path its socket is bound to (the kernel reports it as the
 * source address); only configured peers are accepted.
 *
 * Link state: a peer is up as soon as any valid datagram arrives from it, and
 * down after `peer_timeout_ms` without one. Every `probe_interval_ms` each
 * configured peer gets a probe, so two live nodes keep each other up.
 *
 * ---------------------------------------------------------------------------
 * Rules of the ABI this file follows (see meshpay_plugin.h):
 *
 * Threads: this is a POLL_FD transport. The host calls every function in the
 *   table on its host thread, one call at a time per instance, so the
 *   instance needs no locks. The plugin starts no threads; it asks the host
 *   to watch its socket (watch_fd) and does all I/O inside on_fd/on_timer.
 *
 * Ownership: every MpStr/MpBytes the host passes in (config, peer, frame) is
 *   borrowed for the duration of that call only: we copy what we keep. Every
 *   MpStr/MpBytes we pass out (log lines, link events, delivered frames) is
 *   borrowed by the host for that call only: it copies what it keeps, so
 *   stack buffers are fine. The host tables passed to create() stay valid
 *   until destroy() returns. The instance is ours: calloc'd in create(),
 *   freed in destroy(). Nothing is ever freed across the boundary.
 *
 * Strings: MpStr is UTF-8 with a length and NOT NUL-terminated. Never pass
 *   its ptr to a C string function; compare with length + memcmp.
 *
 * Tables: every table from the host starts with struct_size. A host built
 *   against an older header may hand us a shorter table, so each field is
 *   checked with MP_HAS_FIELD before it is read, and a NULL function is
 *   treated as "not supported".
 *
 * Time: only host->now_ms. The host's clock may be virtual (the simulator),
 *   so a plugin never reads a clock of its own.
 */

#define _POSIX_C_SOURCE 200809L

#include "meshpay_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* ======================================================================== */
/* Constants                                                                */
/* ======================================================================== */

#define UDG_MAGIC "MPU1"
#define UDG_MAGIC_LEN 4
#define UDG_HEADER_LEN 5 /* magic + type */
#define UDG_TYPE_PROBE 0
#define UDG_TYPE_DATA 1

/* Largest frame carried, reported as the link MTU. A datagram is the header
 * plus at most this many bytes. */
#define UDG_MTU 65000u

/* Receive buffer: anything longer than a valid datagram is invalid, so a
 * buffer a bit larger than the largest valid datagram is enough to tell
 * (a longer datagram is truncated by the kernel and then refused). */
#define UDG_RX_BUF (UDG_HEADER_LEN + UDG_MTU + 1)

/* A bound socket path: sun_path holds 108 bytes including the NUL. */
#define UDG_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define UDG_MAX_PEERS 64
#define UDG_MAX_KEY 64 /* longest config key we bother to read, with NUL */
#define UDG_DEFAULT_PROBE_MS 1000u
#define UDG_DEFAULT_TIMEOUT_MS 3500u

/* Our one timer id (ids are per instance, chosen by the plugin). */
#define UDG_PROBE_TIMER 1u

/* on_fd reads at most this many datagrams per call, then returns MP_OK
 * ("call me again"), so a flooding peer cannot starve the host's loop. */
#define UDG_RX_BUDGET 64

/* A static MpStr from a string literal. (The header's MP_STR is a compound
 * literal, which strict C11 does not allow in a static initializer.) */
#define UDG_STATIC_STR(lit) { (lit), sizeof(lit) - 1 }

/* ======================================================================== */
/* State                                                                    */
/* ======================================================================== */

/* The host functions we use, resolved once in create(). A field is NULL when
 * the host's table is too short to hold it or the host left it NULL. */
struct udg_host {
    void *ctx;
    void (*log)(void *ctx, MpLogLevel level, MpStr message);
    uint64_t (*now_ms)(void *ctx);
    MpStatus (*set_timer)(void *ctx, uint64_t timer_id, uint64_t delay_ms);
    MpStatus (*cancel_timer)(void *ctx, uint64_t timer_id); /* optional */
    MpStatus (*watch_fd)(void *ctx, int32_t fd, uint32_t events);
    MpStatus (*unwatch_fd)(void *ctx, int32_t fd);
    /* From MpTransportHost, which has its own ctx. */
    void *transport_ctx;
    MpStatus (*deliver)(void *ctx, MpStr peer, MpBytes frame);
    MpStatus (*link_event)(void *ctx, const MpLinkEvent *event);
};

/* A socket path, NUL-terminated here for the kernel; `len` excludes the NUL. */
struct udg_path {
    char s[UDG_PATH_MAX + 1];
    size_t len;
};

/* The parsed configuration, see udg_parse_config(). */
struct udg_config {
    struct udg_path path;
    struct udg_path peers[UDG_MAX_PEERS];
    size_t n_peers;
    uint32_t probe_interval_ms;
    uint32_t peer_timeout_ms;
};

/* Link state of one configured peer. */
struct udg_peer {
    const struct udg_path *path; /* points into udg.config */
    bool up;
    uint64_t last_seen_ms; /* host clock, valid while up */
};

/* One instance: what create() returns as the opaque `void *instance`. */
struct udg {
    struct udg_host host;
    struct udg_config config;
    struct udg_peer peers[UDG_MAX_PEERS]; /* config.n_peers used */
    int fd;                               /* -1 while stopped */
    uint64_t dropped;                     /* invalid datagrams, ever */
    uint8_t rx[UDG_RX_BUF];               /* in the instance, not on the stack */
};

/* ======================================================================== */
/* UTF-8                                                                    */
/* ======================================================================== */

/* Length of the longest valid UTF-8 prefix of buf[0..len). Used to check
 * config strings (they become MpStr peer names, which must be UTF-8) and to
 * cut a log line that snprintf truncated in the middle of a character. */
static size_t udg_utf8_prefix(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07u;
        } else {
            break; /* continuation byte or invalid lead byte */
        }
        if (len - i < n)
            break;
        size_t k;
        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                break;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (k < n)
            break;
        /* Overlong forms, surrogates, and values past U+10FFFF. */
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            break;
        i += n;
    }
    return i;
}

/* ======================================================================== */
/* Host access                                                              */
/* ======================================================================== */

/* Copies the host functions we use out of the host's tables, honouring
 * struct_size: a field the host's table does not reach reads as NULL.
 * The tables themselves stay owned by the host. */
static void udg_resolve_host(const MpHost *host, const MpTransportHost *transport_host,
                             struct udg_host *out)
{
    memset(out, 0, sizeof *out);
#define UDG_TAKE(table, type, field, dest)       \
    if (MP_HAS_FIELD(table, type, field))         \
        out->dest = (table)->field;
    UDG_TAKE(host, MpHost, ctx, ctx)
    UDG_TAKE(host, MpHost, log, log)
    UDG_TAKE(host, MpHost, now_ms, now_ms)
    UDG_TAKE(host, MpHost, set_timer, set_timer)
    UDG_TAKE(host, MpHost, cancel_timer, cancel_timer)
    UDG_TAKE(host, MpHost, watch_fd, watch_fd)
    UDG_TAKE(host, MpHost, unwatch_fd, unwatch_fd)
    UDG_TAKE(transport_host, MpTransportHost, ctx, transport_ctx)
    UDG_TAKE(transport_host, MpTransportHost, deliver, deliver)
    UDG_TAKE(transport_host, MpTransportHost, link_event, link_event)
#undef UDG_TAKE
}

/* printf-style log line through the host (thread-safe host function). The
 * line is formatted into a stack buffer, which the host only borrows for the
 * call. Without a host log function the line is dropped. */
__attribute__((format(printf, 3, 4)))
static void udg_log(const struct udg_host *h, MpLogLevel level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    if (!h->log)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    /* MpStr must be UTF-8: cut at the last whole character (truncation may
     * have split one). */
    len = udg_utf8_prefix(line, len);
    h->log(h->ctx, level, (MpStr){ line, len });
}

/* Which required host functions are missing, or NULL if none. */
static const char *udg_missing_host_function(const struct udg_host *h)
{
    if (!h->now_ms)
        return "now_ms";
    if (!h->set_timer)
        return "set_timer";
    if (!h->watch_fd)
        return "watch_fd";
    if (!h->unwatch_fd)
        return "unwatch_fd";
    if (!h->deliver)
        return "deliver";
    if (!h->link_event)
        return "link_event";
    return NULL;
}

/* ======================================================================== */
/* Configuration: a tiny strict JSON reader                                 */
/* ======================================================================== */
/*
 * The config is UTF-8 JSON, borrowed for the create() call:
 *
 *     {"path": "/run/x/a.sock", "peers": ["/run/x/b.sock"],
 *      "probe_interval_ms": 1000, "peer_timeout_ms": 3500}
 *
 * The reader accepts exactly one object with these keys and value types and
 * refuses everything else (unknown or repeated keys, other types, trailing
 * bytes). It never recurses and checks every read against the end of the
 * buffer, so malformed input cannot crash it. Errors are one line naming the
 * key, written into `err`.
 */

/* A read position in the borrowed config buffer. */
struct json {
    const unsigned char *p;
    const unsigned char *end;
};

/* The one reason string compared by identity (to add the limit to it). */
static const char UDG_TOO_LONG[] = "is too long";

static void json_ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Skips whitespace, then consumes `c` if it comes next. */
static bool json_take(struct json *j, char c)
{
    json_ws(j);
    if (j->p < j->end && *j->p == (unsigned char)c) {
        j->p++;
        return true;
    }
    return false;
}

/* Reads 4 hex digits of a \u escape. */
static bool json_hex4(struct json *j, uint32_t *out)
{
    uint32_t v = 0;
    if (j->end - j->p < 4)
        return false;
    for (int i = 0; i < 4; i++) {
        unsigned char c = *j->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

/* Appends one byte to out[0..cap), keeping room for the NUL. */
static bool json_put(char *out, size_t cap, size_t *n, unsigned char c)
{
    if (*n + 1 >= cap)
        return false;
    out[(*n)++] = (char)c;
    return true;
}

/* Appends code point `cp` as UTF-8. */
static bool json_put_utf8(char *out, size_t cap, size_t *n, uint32_t cp)
{
    if (cp < 0x80)
        return json_put(out, cap, n, (unsigned char)cp);
    if (cp < 0x800)
        return json_put(out, cap, n, (unsigned char)(0xC0 | (cp >> 6))) &&
               json_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
    if (cp < 0x10000)
        return json_put(out, cap, n, (unsigned char)(0xE0 | (cp >> 12))) &&
               json_put(out, cap, n, (unsigned char)(0x80 | ((cp >> 6) & 0x3F))) &&
               json_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
    return json_put(out, cap, n, (unsigned char)(0xF0 | (cp >> 18))) &&
           json_put(out, cap, n, (unsigned char)(0x80 | ((cp >> 12) & 0x3F))) &&
           json_put(out, cap, n, (unsigned char)(0x80 | ((cp >> 6) & 0x3F))) &&
           json_put(out, cap, n, (unsigned char)(0x80 | (cp & 0x3F)));
}

/* Reads the code point of a \u escape (the "\u" already consumed), joining
 * a UTF-16 surrogate pair. Returns a reason on error, NULL on success. */
static const char *json_unicode_escape(struct json *j, uint32_t *cp)
{
    uint32_t lo;
    if (!json_hex4(j, cp))
        return "has a bad \\u escape";
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return "has a lone UTF-16 surrogate";
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
            return "has a lone UTF-16 surrogate";
        j->p += 2;
        if (!json_hex4(j, &lo))
            return "has a bad \\u escape";
        if (lo < 0xDC00 || lo > 0xDFFF)
            return "has a lone UTF-16 surrogate";
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (*cp == 0)
        return "contains a NUL character";
    return NULL;
}

/* Reads a JSON string into out[0..cap) (NUL-terminated, length in *len).
 * Returns NULL on success or a reason such as "must be a string", phrased to
 * follow the name of what was being read. */
static const char *json_string(struct json *j, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    uint32_t cp;
    const char *why;

    if (!json_take(j, '"'))
        return "must be a string";
    for (;;) {
        if (j->p >= j->end)
            return "is an unterminated string";
        unsigned char c = *j->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return "contains a raw control character";
        if (c != '\\') {
            if (!json_put(out, cap, &n, c))
                return UDG_TOO_LONG;
            continue;
        }
        if (j->p >= j->end)
            return "is an unterminated string";
        c = *j->p++;
        switch (c) {
        case '"': case '\\': case '/': break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u':
            why = json_unicode_escape(j, &cp);
            if (why)
                return why;
            if (!json_put_utf8(out, cap, &n, cp))
                return UDG_TOO_LONG;
            continue;
        default:
            return "has a bad escape";
        }
        if (!json_put(out, cap, &n, c))
            return UDG_TOO_LONG;
    }
    out[n] = '\0';
    *len = n;
    if (udg_utf8_prefix(out, n) != n)
        return "is not valid UTF-8";
    return NULL;
}

/* Reads a non-negative JSON integer that fits 32 bits. */
static const char *json_u32(struct json *j, uint32_t *out)
{
    static const char why[] = "must be an integer from 0 to 4294967295";
    uint64_t v = 0;

    json_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return why;
    if (*j->p == '0' && j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9')
        return why; /* JSON has no leading zeros */
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        v = v * 10 + (uint64_t)(*j->p++ - '0');
        if (v > UINT32_MAX)
            return why;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return why;
    *out = (uint32_t)v;
    return NULL;
}

/* Formats the config error into err[0..cap) and returns MP_ERR_INVALID. */
__attribute__((format(printf, 3, 4)))
static MpStatus udg_config_error(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return MP_ERR_INVALID;
}

/* Reads a socket path value for `what` ("path", "peers"[3]). */
static MpStatus udg_read_path(struct json *j, struct udg_path *out, const char *what, char *err,
                              size_t errcap)
{
    const char *why = json_string(j, out->s, sizeof out->s, &out->len);
    if (why == UDG_TOO_LONG)
        return udg_config_error(err, errcap, "config: %s is too long (a socket path holds %zu bytes)",
                                what, (size_t)UDG_PATH_MAX);
    if (why)
        return udg_config_error(err, errcap, "config: %s %s", what, why);
    if (out->len == 0)
        return udg_config_error(err, errcap, "config: %s must not be empty", what);
    return MP_OK;
}

/* Reads the "peers" array of paths. */
static MpStatus udg_read_peers(struct json *j, struct udg_config *cfg, char *err, size_t errcap)
{
    char what[32];
    MpStatus st;

    if (!json_take(j, '['))
        return udg_config_error(err, errcap, "config: \"peers\" must be an array of strings");
    if (json_take(j, ']'))
        return MP_OK;
    for (;;) {
        if (cfg->n_peers == UDG_MAX_PEERS)
            return udg_config_error(err, errcap, "config: \"peers\" lists more than %d sockets",
                                    UDG_MAX_PEERS);
        snprintf(what, sizeof what, "\"peers\"[%zu]", cfg->n_peers);
        st = udg_read_path(j, &cfg->peers[cfg->n_peers], what, err, errcap);
        if (st != MP_OK)
            return st;
        cfg->n_peers++;
        if (json_take(j, ']'))
            return MP_OK;
        if (!json_take(j, ','))
            return udg_config_error(err, errcap, "config: \"peers\" must be an array of strings");
    }
}

/* Reads one integer value for `key`. */
static MpStatus udg_read_u32(struct json *j, uint32_t *out, const char *key, char *err,
                             size_t errcap)
{
    const char *why = json_u32(j, out);
    if (why)
        return udg_config_error(err, errcap, "config: \"%s\" %s", key, why);
    return MP_OK;
}

/* Rules across keys, checked once the whole object is read. */
static MpStatus udg_check_config(const struct udg_config *cfg, char *err, size_t errcap)
{
    if (cfg->probe_interval_ms == 0)
        return udg_config_error(err, errcap, "config: \"probe_interval_ms\" must be at least 1");
    if (cfg->peer_timeout_ms <= cfg->probe_interval_ms)
        return udg_config_error(err, errcap,
                                "config: \"peer_timeout_ms\" must be larger than \"probe_interval_ms\"");
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const struct udg_path *p = &cfg->peers[i];
        if (p->len == cfg->path.len && memcmp(p->s, cfg->path.s, p->len) == 0)
            return udg_config_error(err, errcap, "config: \"peers\"[%zu] is this node's own \"path\"", i);
        for (size_t k = 0; k < i; k++)
            if (p->len == cfg->peers[k].len && memcmp(p->s, cfg->peers[k].s, p->len) == 0)
                return udg_config_error(err, errcap, "config: \"peers\"[%zu] repeats \"peers\"[%zu]",
                                        i, k);
    }
    return MP_OK;
}

/* Which key a member is, by name. */
enum udg_key { KEY_PATH, KEY_PEERS, KEY_PROBE, KEY_TIMEOUT, KEY_COUNT, KEY_UNKNOWN = -1 };
static const char *const udg_key_names[KEY_COUNT] = {
    "path", "peers", "probe_interval_ms", "peer_timeout_ms",
};

static enum udg_key udg_lookup_key(const char *key, size_t len)
{
    for (int k = 0; k < KEY_COUNT; k++)
        if (strlen(udg_key_names[k]) == len && memcmp(udg_key_names[k], key, len) == 0)
            return (enum udg_key)k;
    return KEY_UNKNOWN;
}

/* Reads the value of one known key. */
static MpStatus udg_read_value(struct json *j, enum udg_key key, struct udg_config *cfg, char *err,
                               size_t errcap)
{
    switch (key) {
    case KEY_PATH: return udg_read_path(j, &cfg->path, "\"path\"", err, errcap);
    case KEY_PEERS: return udg_read_peers(j, cfg, err, errcap);
    case KEY_PROBE: return udg_read_u32(j, &cfg->probe_interval_ms, "probe_interval_ms", err, errcap);
    case KEY_TIMEOUT: return udg_read_u32(j, &cfg->peer_timeout_ms, "peer_timeout_ms", err, errcap);
    default: return udg_config_error(err, errcap, "config: internal error");
    }
}

/* Parses the config (borrowed bytes) into *cfg. On error returns
 * MP_ERR_INVALID with a one-line reason naming the key in err. */
static MpStatus udg_parse_config(const unsigned char *buf, size_t len, struct udg_config *cfg,
                                 char *err, size_t errcap)
{
    struct json j = { buf, buf + len };
    bool seen[KEY_COUNT] = { false };
    char key[UDG_MAX_KEY];
    size_t key_len;
    const char *why;
    MpStatus st;

    memset(cfg, 0, sizeof *cfg);
    cfg->probe_interval_ms = UDG_DEFAULT_PROBE_MS;
    cfg->peer_timeout_ms = UDG_DEFAULT_TIMEOUT_MS;

    if (!json_take(&j, '{'))
        return udg_config_error(err, errcap, "config: expected a JSON object");
    if (!json_take(&j, '}')) {
        for (;;) {
            why = json_string(&j, key, sizeof key, &key_len);
            if (why)
                return udg_config_error(err, errcap, "config: a key %s", why);
            enum udg_key k = udg_lookup_key(key, key_len);
            if (k == KEY_UNKNOWN)
                return udg_config_error(err, errcap, "config: unknown key \"%s\"", key);
            if (seen[k])
                return udg_config_error(err, errcap, "config: duplicate key \"%s\"", key);
            seen[k] = true;
            if (!json_take(&j, ':'))
                return udg_config_error(err, errcap, "config: expected ':' after \"%s\"", key);
            st = udg_read_value(&j, k, cfg, err, errcap);
            if (st != MP_OK)
                return st;
            if (json_take(&j, '}'))
                break;
            if (!json_take(&j, ','))
                return udg_config_error(err, errcap, "config: expected ',' or '}' after \"%s\"", key);
        }
    }
    json_ws(&j);
    if (j.p != j.end)
        return udg_config_error(err, errcap, "config: unexpected bytes after the JSON object");
    if (!seen[KEY_PATH])
        return udg_config_error(err, errcap, "config: missing key \"path\"");
    if (!seen[KEY_PEERS])
        return udg_config_error(err, errcap, "config: missing key \"peers\"");
    return udg_check_config(cfg, err, errcap);
}

/* ======================================================================== */
/* Wire format                                                              */
/* ======================================================================== */

/* Checks a received datagram. Returns NULL and sets *type when valid, or the
 * reason it is dropped. */
static const char *udg_check_datagram(const uint8_t *buf, size_t n, int *type)
{
    if (n < UDG_HEADER_LEN)
        return "shorter than the header";
    if (memcmp(buf, UDG_MAGIC, UDG_MAGIC_LEN) != 0)
        return "bad magic";
    if (n > UDG_HEADER_LEN + UDG_MTU)
        return "longer than the MTU";
    *type = buf[UDG_MAGIC_LEN];
    if (*type == UDG_TYPE_PROBE && n != UDG_HEADER_LEN)
        return "probe with a payload";
    if (*type != UDG_TYPE_PROBE && *type != UDG_TYPE_DATA)
        return "unknown type";
    return NULL;
}

/* Fills a sockaddr_un for `path`; returns its length. */
static socklen_t udg_sockaddr(const struct udg_path *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path->s, path->len); /* len <= UDG_PATH_MAX, NUL follows */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path->len + 1);
}

/* Sends one datagram: the header of `type` plus frame[0..len), without
 * copying the frame (two iovecs). Returns 0 or an errno value. */
static int udg_send_datagram(int fd, const struct udg_path *to, uint8_t type, const uint8_t *frame,
                             size_t len)
{
    uint8_t header[UDG_HEADER_LEN] = { 'M', 'P', 'U', '1', type };
    struct sockaddr_un sa;
    struct iovec iov[2] = {
        { .iov_base = header, .iov_len = sizeof header },
        { .iov_base = (void *)frame, .iov_len = len },
    };
    struct msghdr msg = {
        .msg_name = &sa,
        .msg_namelen = udg_sockaddr(to, &sa),
        .msg_iov = iov,
        .msg_iovlen = len ? 2 : 1,
    };
    ssize_t sent;

    do
        sent = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0)
        return errno;
    return (size_t)sent == sizeof header + len ? 0 : EMSGSIZE;
}

/* ======================================================================== */
/* Peers and link events                                                    */
/* ======================================================================== */

/* Reports a link change for `peer` (the event is borrowed by the host). */
static void udg_report(struct udg *u, const struct udg_peer *peer, uint32_t kind)
{
    MpLinkEvent ev = {
        .struct_size = sizeof ev,
        .kind = kind,
        .peer = { peer->path->s, peer->path->len },
        .metric = MP_METRIC_UNKNOWN,
        .signal_dbm = MP_SIGNAL_UNKNOWN,
        .mtu = UDG_MTU,
        .reserved = 0,
    };
    u->host.link_event(u->host.transport_ctx, &ev);
}

/* Sends a probe; "not there yet" (ENOENT, ECONNREFUSED) and "busy" are
 * expected and only logged at trace. */
static void udg_probe(struct udg *u, const struct udg_peer *peer)
{
    int e = udg_send_datagram(u->fd, peer->path, UDG_TYPE_PROBE, NULL, 0);
    if (e)
        udg_log(&u->host, MP_LOG_TRACE, "probe to %s: %s", peer->path->s, strerror(e));
}

/* A valid datagram came from `peer`: it is up. On the transition we probe it
 * back at once, so it learns about us without waiting for our next tick. */
static void udg_seen(struct udg *u, struct udg_peer *peer)
{
    peer->last_seen_ms = u->host.now_ms(u->host.ctx);
    if (!peer->up) {
        peer->up = true;
        udg_report(u, peer, MP_LINK_UP);
        udg_probe(u, peer);
    }
}

/* Reports down every up peer that has been silent for peer_timeout_ms. */
static void udg_expire(struct udg *u)
{
    uint64_t now = u->host.now_ms(u->host.ctx);
    for (size_t i = 0; i < u->config.n_peers; i++) {
        struct udg_peer *p = &u->peers[i];
        if (p->up && now - p->last_seen_ms >= u->config.peer_timeout_ms) {
            p->up = false;
            udg_report(u, p, MP_LINK_DOWN);
        }
    }
}

/* The configured peer whose bound path is `from`, or NULL (unnamed or
 * abstract sockets and strangers). */
static struct udg_peer *udg_find_sender(struct udg *u, const struct sockaddr_un *from,
                                        socklen_t from_len)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if ((size_t)from_len <= off || from->sun_path[0] == '\0')
        return NULL;
    size_t max = (size_t)from_len - off;
    if (max > sizeof from->sun_path)
        max = sizeof from->sun_path;
    size_t len = strnlen(from->sun_path, max);
    for (size_t i = 0; i < u->config.n_peers; i++) {
        const struct udg_path *p = u->peers[i].path;
        if (p->len == len && memcmp(p->s, from->sun_path, len) == 0)
            return &u->peers[i];
    }
    return NULL;
}

/* Counts and logs (at debug) a datagram we refuse. */
static void udg_drop(struct udg *u, const char *from, const char *why)
{
    u->dropped++;
    udg_log(&u->host, MP_LOG_DEBUG, "dropped datagram from %s: %s (%llu dropped so far)", from, why,
            (unsigned long long)u->dropped);
}

/* Handles one received datagram of n bytes in u->rx. */
static void udg_handle_datagram(struct udg *u, size_t n, const struct sockaddr_un *from,
                                socklen_t from_len)
{
    int type = -1;
    struct udg_peer *peer = udg_find_sender(u, from, from_len);
    if (!peer) {
        udg_drop(u, "an unknown socket", "not a configured peer");
        return;
    }
    const char *why = udg_check_datagram(u->rx, n, &type);
    if (why) {
        udg_drop(u, peer->path->s, why);
        return;
    }
    udg_seen(u, peer);
    if (type == UDG_TYPE_DATA) {
        /* The frame is borrowed by the host for the call; it copies it. */
        MpBytes frame = { u->rx + UDG_HEADER_LEN, n - UDG_HEADER_LEN };
        MpStatus st = u->host.deliver(u->host.transport_ctx,
                                      (MpStr){ peer->path->s, peer->path->len }, frame);
        if (st != MP_OK)
            udg_log(&u->host, MP_LOG_DEBUG, "deliver from %s: status %d", peer->path->s, (int)st);
    }
}

/* ======================================================================== */
/* Socket lifecycle                                                         */
/* ======================================================================== */

/* Removes a socket file left behind by a previous run. Refuses to remove
 * anything that is not a socket (a typo in the config must not delete a
 * regular file). */
static MpStatus udg_remove_stale(struct udg *u)
{
    struct stat st;
    if (lstat(u->config.path.s, &st) != 0)
        return MP_OK; /* nothing there */
    if (!S_ISSOCK(st.st_mode)) {
        udg_log(&u->host, MP_LOG_ERROR, "%s exists and is not a socket", u->config.path.s);
        return MP_ERR_FAILED;
    }
    if (unlink(u->config.path.s) != 0 && errno != ENOENT) {
        udg_log(&u->host, MP_LOG_ERROR, "cannot remove stale %s: %s", u->config.path.s,
                strerror(errno));
        return MP_ERR_FAILED;
    }
    return MP_OK;
}

/* Creates the socket, close-on-exec and non-blocking, bound to our path.
 * Returns the fd, or -1 after logging. */
static int udg_open_socket(struct udg *u)
{
    struct sockaddr_un sa;
    socklen_t sa_len = udg_sockaddr(&u->config.path, &sa);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0) {
        udg_log(&u->host, MP_LOG_ERROR, "socket: %s", strerror(errno));
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || flags < 0 ||
        fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        udg_log(&u->host, MP_LOG_ERROR, "fcntl: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)&sa, sa_len) != 0) {
        udg_log(&u->host, MP_LOG_ERROR, "bind %s: %s", u->config.path.s, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Undoes udg_open_socket and watch_fd: unwatch (the host must stop polling
 * an fd before it is closed), close, remove the socket file. */
static void udg_close_socket(struct udg *u)
{
    if (u->fd < 0)
        return;
    u->host.unwatch_fd(u->host.ctx, u->fd);
    close(u->fd);
    u->fd = -1;
    unlink(u->config.path.s);
}

/* ======================================================================== */
/* The MpTransportV1 functions                                              */
/* ======================================================================== */

static void udg_destroy(void *instance);

/* create: parse and check the config, resolve the host functions. No I/O
 * yet; that starts in start(). `config` is borrowed for this call. */
static MpStatus udg_create(const MpHost *host, const MpTransportHost *transport_host,
                           MpBytes config, void **instance_out)
{
    struct udg_host h;
    char err[256];
    const char *missing;

    if (!host || !transport_host || !instance_out || (!config.ptr && config.len))
        return MP_ERR_INVALID;
    udg_resolve_host(host, transport_host, &h);
    if (MP_HAS_FIELD(host, MpHost, abi) && host->abi.major != MP_ABI_MAJOR) {
        udg_log(&h, MP_LOG_ERROR, "host ABI major %u, plugin built for %u", host->abi.major,
                MP_ABI_MAJOR);
        return MP_ERR_UNSUPPORTED;
    }
    missing = udg_missing_host_function(&h);
    if (missing) {
        udg_log(&h, MP_LOG_ERROR, "the host does not provide %s", missing);
        return MP_ERR_UNSUPPORTED;
    }

    struct udg *u = calloc(1, sizeof *u);
    if (!u) {
        udg_log(&h, MP_LOG_ERROR, "out of memory");
        return MP_ERR_FAILED;
    }
    u->host = h;
    u->fd = -1;
    if (udg_parse_config(config.ptr, config.len, &u->config, err, sizeof err) != MP_OK) {
        udg_log(&h, MP_LOG_ERROR, "%s", err);
        free(u);
        return MP_ERR_INVALID;
    }
    for (size_t i = 0; i < u->config.n_peers; i++)
        u->peers[i].path = &u->config.peers[i];
    *instance_out = u;
    return MP_OK;
}

/* destroy: frees the instance. The host calls stop() first; if it did not,
 * the socket is closed here too (without link events). */
static void udg_destroy(void *instance)
{
    struct udg *u = instance;
    if (!u)
        return;
    udg_close_socket(u);
    free(u);
}

/* start: bind, watch the socket, arm the probe timer, probe everyone. */
static MpStatus udg_start(void *instance)
{
    struct udg *u = instance;
    MpStatus st;

    if (!u)
        return MP_ERR_INVALID;
    if (u->fd >= 0) {
        udg_log(&u->host, MP_LOG_ERROR, "start: already started");
        return MP_ERR_INVALID;
    }
    st = udg_remove_stale(u);
    if (st != MP_OK)
        return st;
    int fd = udg_open_socket(u);
    if (fd < 0)
        return MP_ERR_FAILED;
    st = u->host.watch_fd(u->host.ctx, fd, MP_FD_READABLE);
    if (st != MP_OK) {
        udg_log(&u->host, MP_LOG_ERROR, "watch_fd: status %d", (int)st);
        close(fd);
        unlink(u->config.path.s);
        return st;
    }
    u->fd = fd;
    st = u->host.set_timer(u->host.ctx, UDG_PROBE_TIMER, u->config.probe_interval_ms);
    if (st != MP_OK) {
        udg_log(&u->host, MP_LOG_ERROR, "set_timer: status %d", (int)st);
        udg_close_socket(u);
        return st;
    }
    for (size_t i = 0; i < u->config.n_peers; i++) {
        u->peers[i].up = false;
        udg_probe(u, &u->peers[i]);
    }
    udg_log(&u->host, MP_LOG_INFO, "listening on %s, %zu peers", u->config.path.s,
            u->config.n_peers);
    return MP_OK;
}

/* stop: every up peer goes down, then the socket goes away. No deliver or
 * link_event happens after this returns. */
static MpStatus udg_stop(void *instance)
{
    struct udg *u = instance;
    if (!u)
        return MP_ERR_INVALID;
    if (u->fd < 0)
        return MP_OK;
    if (u->host.cancel_timer)
        u->host.cancel_timer(u->host.ctx, UDG_PROBE_TIMER);
    for (size_t i = 0; i < u->config.n_peers; i++) {
        if (u->peers[i].up) {
            u->peers[i].up = false;
            udg_report(u, &u->peers[i], MP_LINK_DOWN);
        }
    }
    udg_close_socket(u);
    return MP_OK;
}

/* send: one frame (borrowed for the call) to a configured peer, without
 * blocking. */
static MpStatus udg_send(void *instance, MpStr peer, MpBytes frame)
{
    struct udg *u = instance;
    struct udg_peer *p = NULL;

    if (!u || (!peer.ptr && peer.len) || (!frame.ptr && frame.len))
        return MP_ERR_INVALID;
    for (size_t i = 0; i < u->config.n_peers && !p; i++)
        if (u->peers[i].path->len == peer.len && memcmp(u->peers[i].path->s, peer.ptr, peer.len) == 0)
            p = &u->peers[i];
    if (!p) {
        udg_log(&u->host, MP_LOG_ERROR, "send: \"%.*s\" is not a configured peer",
                (int)(peer.len > 200 ? 200 : peer.len), peer.ptr ? peer.ptr : "");
        return MP_ERR_INVALID;
    }
    if (frame.len > UDG_MTU) {
        udg_log(&u->host, MP_LOG_ERROR, "send: frame of %zu bytes exceeds the MTU (%u)", frame.len,
                UDG_MTU);
        return MP_ERR_INVALID;
    }
    if (u->fd < 0) {
        udg_log(&u->host, MP_LOG_ERROR, "send: not started");
        return MP_ERR_FAILED;
    }
    int e = udg_send_datagram(u->fd, p->path, UDG_TYPE_DATA, frame.ptr, frame.len);
    if (e == 0)
        return MP_OK;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS)
        return MP_ERR_AGAIN; /* busy: the host retries later */
    udg_log(&u->host, MP_LOG_WARN, "send to %s: %s", p->path->s, strerror(e));
    return MP_ERR_FAILED;
}

/* on_fd: the socket is readable. Read until EAGAIN (then MP_ERR_AGAIN: "I am
 * drained") or until the budget is used (then MP_OK: "call me again"). */
static MpStatus udg_on_fd(void *instance, int32_t fd, uint32_t events)
{
    struct udg *u = instance;
    (void)events;

    if (!u)
        return MP_ERR_INVALID;
    if (u->fd < 0 || fd != u->fd)
        return MP_ERR_AGAIN; /* not ours (any more) */
    for (int i = 0; i < UDG_RX_BUDGET; i++) {
        struct sockaddr_un from;
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(u->fd, u->rx, sizeof u->rx, 0, (struct sockaddr *)&from, &from_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return MP_ERR_AGAIN;
            udg_log(&u->host, MP_LOG_WARN, "recv on %s: %s", u->config.path.s, strerror(errno));
            return MP_ERR_FAILED;
        }
        udg_handle_datagram(u, (size_t)n, &from, from_len);
    }
    return MP_OK;
}

/* on_timer: the probe tick. Expire silent peers, probe everyone, re-arm
 * (host timers fire once). */
static MpStatus udg_on_timer(void *instance, uint64_t timer_id)
{
    struct udg *u = instance;
    if (!u)
        return MP_ERR_INVALID;
    if (timer_id != UDG_PROBE_TIMER || u->fd < 0)
        return MP_OK; /* a late tick after stop() */
    udg_expire(u);
    for (size_t i = 0; i < u->config.n_peers; i++)
        udg_probe(u, &u->peers[i]);
    MpStatus st = u->host.set_timer(u->host.ctx, UDG_PROBE_TIMER, u->config.probe_interval_ms);
    if (st != MP_OK)
        udg_log(&u->host, MP_LOG_ERROR, "set_timer: status %d", (int)st);
    return st;
}

/* ======================================================================== */
/* Function table, descriptor and the one exported symbol                   */
/* ======================================================================== */

/* Static and owned by the plugin, as the ABI requires. */
static const MpTransportV1 udg_transport = {
    .struct_size = sizeof(MpTransportV1),
    .flags = MP_TRANSPORT_POLL_FD,
    .create = udg_create,
    .destroy = udg_destroy,
    .start = udg_start,
    .stop = udg_stop,
    .send = udg_send,
    .on_fd = udg_on_fd,
    .on_timer = udg_on_timer,
};

/* get_interface: thread-safe, does nothing but look up. `interface_id` is
 * borrowed and not NUL-terminated. */
static const void *udg_get_interface(MpStr interface_id)
{
    static const char transport[] = MP_INTERFACE_TRANSPORT_V1;
    if (interface_id.len == sizeof transport - 1 && interface_id.ptr &&
        memcmp(interface_id.ptr, transport, interface_id.len) == 0)
        return &udg_transport;
    return NULL;
}

static const MpPluginEntry udg_entry = {
    .struct_size = sizeof(MpPluginEntry),
    .abi = { MP_ABI_MAJOR, MP_ABI_MINOR },
    .kinds = MP_KIND_TRANSPORT,
    .id = UDG_STATIC_STR("org.meshpay.example.c-unixdgram"),
    .name = UDG_STATIC_STR("Unix datagram transport (C example)"),
    .version = UDG_STATIC_STR("0.1.0"),
    .vendor = UDG_STATIC_STR("meshpay"),
    .description = UDG_STATIC_STR("Links meshpay nodes on one machine over SOCK_DGRAM Unix sockets"),
    .get_interface = udg_get_interface,
};

/* The library's only exported symbol (MP_EXPORT overrides
 * -fvisibility=hidden; the version script hides everything else). It only
 * returns the static descriptor: the host calls it before checking the ABI
 * version. */
MP_EXPORT const MpPluginEntry *meshpay_plugin_entry(void)
{
    return &udg_entry;
}
