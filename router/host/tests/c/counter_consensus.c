/*
 * counter_consensus.c: a small consensus plugin in C for the host's ABI 1.1
 * tests (router/host/tests/consensus_batch.rs). It is built twice, against
 * the golden 1.0 header and against the current one, always as
 * `meshpay_plugin.h`.
 *
 * A bundle's payload is a key: `on_bundle` writes it to table "seen" and
 * emits a bundle to dtn://sink/echo carrying it. A payload starting with
 * "bad" is refused, but only after writing and emitting, so that a host that
 * does not undo a refused bundle's effects is caught.
 *
 * Built against 1.0, the function table is followed in memory by two
 * non-NULL "trap" pointers, exactly where 1.1 appended `on_bundles` and
 * `prepare_bundles`: a host that reads past `struct_size` calls them, and
 * they log "TRAP". Built against 1.1, the table has real `on_bundles` and
 * `prepare_bundles`.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "meshpay_plugin.h"

typedef struct {
    const MpHost *host;
    const MpConsensusHost *kv;
    uint32_t seen;
} Counter;

static void say(const MpHost *host, const char *text) {
    MpStr s = { text, strlen(text) };
    host->log(host->ctx, MP_LOG_INFO, s);
}

static MpStatus create(const MpHost *host, const MpConsensusHost *kv, MpBytes config, void **out) {
    (void)config;
    Counter *c = calloc(1, sizeof *c);
    if (!c) return MP_ERR_FAILED;
    c->host = host;
    c->kv = kv;
    MpStatus st = kv->kv_open(kv->ctx, MP_STR("seen"), &c->seen);
    if (st != MP_OK) {
        free(c);
        return st;
    }
    *out = c;
    return MP_OK;
}

static void destroy(void *instance) { free(instance); }

static int is_bad(const MpBundleInfo *b) {
    return b->payload.len >= 3 && memcmp(b->payload.ptr, "bad", 3) == 0;
}

static MpStatus accept_bundle(Counter *c, const MpBundleInfo *b) {
    MpBytes one = { (const uint8_t *)"1", 1 };
    MpStatus st = c->kv->kv_put(c->kv->ctx, c->seen, b->payload, one);
    if (st != MP_OK) return st;
    MpOutBundle out = {
        .struct_size = sizeof(MpOutBundle),
        .priority = 1,
        .destination = MP_STR("dtn://sink/echo"),
        .source_service = MP_STR("counter"),
        .payload = b->payload,
        .lifetime_ms = 0,
    };
    return c->host->emit_bundle(c->host->ctx, &out);
}

static MpStatus on_bundle(void *instance, const MpBundleInfo *b) {
    Counter *c = instance;
    say(c->host, "on_bundle");
    MpStatus st = accept_bundle(c, b);
    if (st != MP_OK) return st;
    return is_bad(b) ? MP_ERR_INVALID : MP_OK;
}

#if MP_ABI_MINOR >= 1

static atomic_uint prepared;

static MpStatus on_bundles(void *instance, const MpBundleInfo *const *bundles, size_t count,
                           MpStatus *statuses) {
    Counter *c = instance;
    say(c->host, "on_bundles");
    for (size_t i = 0; i < count; i++) {
        /* A refused bundle must leave nothing behind: check first. */
        if (is_bad(bundles[i])) {
            statuses[i] = MP_ERR_INVALID;
            continue;
        }
        MpStatus st = accept_bundle(c, bundles[i]);
        if (st != MP_OK) return st;
        statuses[i] = MP_OK;
    }
    return MP_OK;
}

/* Thread-safe: only the log, and an atomic counter. */
static MpStatus prepare_bundles(void *instance, const MpBundleInfo *const *bundles, size_t count) {
    Counter *c = instance;
    (void)bundles;
    atomic_fetch_add(&prepared, (unsigned)count);
    say(c->host, "prepare_bundles");
    return MP_OK;
}

static const MpConsensusV1 TABLE = {
    .struct_size = sizeof(MpConsensusV1),
    .create = create,
    .destroy = destroy,
    .on_bundle = on_bundle,
    .on_bundles = on_bundles,
    .prepare_bundles = prepare_bundles,
};
#define TABLE_PTR (&TABLE)

#else /* built against the 1.0 header */

/* With the 1.1 signatures, but a 1.0 plugin knows nothing of them. */
static MpStatus trap_on_bundles(void *instance, const MpBundleInfo *const *bundles, size_t count,
                                MpStatus *statuses) {
    (void)bundles;
    for (size_t i = 0; i < count; i++) statuses[i] = MP_OK;
    say(((Counter *)instance)->host, "TRAP: on_bundles read past struct_size");
    return MP_OK;
}

static MpStatus trap_prepare(void *instance, const MpBundleInfo *const *bundles, size_t count) {
    (void)bundles;
    (void)count;
    say(((Counter *)instance)->host, "TRAP: prepare_bundles read past struct_size");
    return MP_OK;
}

static const struct {
    MpConsensusV1 table;
    MpStatus (*after_on_bundles)(void *, const MpBundleInfo *const *, size_t, MpStatus *);
    MpStatus (*after_prepare)(void *, const MpBundleInfo *const *, size_t);
} TABLE = {
    .table = {
        .struct_size = sizeof(MpConsensusV1),
        .create = create,
        .destroy = destroy,
        .on_bundle = on_bundle,
    },
    .after_on_bundles = trap_on_bundles,
    .after_prepare = trap_prepare,
};
#define TABLE_PTR (&TABLE.table)

#endif

static const void *get_interface(MpStr id) {
    const char *want = MP_INTERFACE_CONSENSUS_V1;
    if (id.len == strlen(want) && memcmp(id.ptr, want, id.len) == 0) return TABLE_PTR;
    return NULL;
}

static const MpPluginEntry ENTRY = {
    .struct_size = sizeof(MpPluginEntry),
    .abi = { MP_ABI_MAJOR, MP_ABI_MINOR },
    .kinds = MP_KIND_CONSENSUS,
    .id = MP_STR_INIT("org.meshpay.test.counter"),
    .name = MP_STR_INIT("counter"),
    .version = MP_STR_INIT("0"),
    .vendor = MP_STR_INIT("tests"),
    .description = MP_STR_INIT(""),
    .get_interface = get_interface,
};

MP_EXPORT const struct MpPluginEntry *meshpay_plugin_entry(void) { return &ENTRY; }
