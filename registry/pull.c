/* registry/pull.c - manifest negotiation, platform selection, verified blob downloads. */
#include <jansson.h>
#include <string.h>
#include <sys/utsname.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

#define _cleanup_json_ _cleanup_(json_decrefp)

static const char accept_manifests[] = MK_MEDIA_OCI_MANIFEST
    ", " MK_MEDIA_OCI_INDEX ", " REG_MEDIA_DOCKER_MANIFEST ", " REG_MEDIA_DOCKER_LIST;

MK_DEFINE_CLEANUP(struct reg_client, reg_client_free)
MK_DEFINE_CLEANUP(struct mk_blob_writer, layerstore_blob_writer_free)
MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)
MK_DEFINE_CLEANUP(struct mk_layer_stream, layerstore_layer_stream_free)

/* GETs a manifest by tag or digest; when want is a digest the bytes must hash to it. */
static int fetch_manifest(struct reg_client *c, const char *ref, const char *want,
                          struct reg_manifest *ret, struct mk_error **err)
{
    _cleanup_free_ char *path = reg_path(c, "manifests", ref);
    struct reg_req req = {.method = "GET",
                          .url = path,
                          .accept = accept_manifests,
                          .fd = -1,
                          .body_max = REG_JSON_MAX,
                          .follow = true};
    struct reg_resp resp = {0};
    if (reg_request(c, &req, &resp, err) < 0) {
        reg_resp_release(&resp);
        return mk_error_wrap(err, "fetching manifest %s", ref);
    }
    if (resp.status != 200) {
        _cleanup_free_ char *what = mk_xasprintf("fetching manifest %s", ref);
        reg_status_error(&resp, what, err);
        reg_resp_release(&resp);
        return -1;
    }
    size_t len = resp.body.len;
    char *data = mk_buf_detach(&resp.body);
    _cleanup_free_ char *ctype = MK_TAKE_PTR(resp.content_type);
    reg_resp_release(&resp);
    if (reg_manifest_load(data, len, ctype, ref, ret, err) < 0)
        return -1;
    if (want && strcmp(want, ret->digest) != 0) {
        mk_error_set(err, MK_ERR_DIGEST, 0, "manifest %s: content digest is %s", want, ret->digest);
        reg_manifest_release(ret);
        return -1;
    }
    return 0;
}

/* ---- blobs ------------------------------------------------------------------------------ */

struct blob_sink {
    struct mk_blob_writer *w;
    struct mk_error *err;
    uint64_t asked_from; /* the Range start we asked for */
    const struct reg_resp *resp;
    bool started;
};

static int blob_sink(void *ctx, const void *data, size_t n)
{
    struct blob_sink *s = ctx;
    if (!s->started) {
        s->started = true;
        /* The server may ignore Range (200) or answer another range: start over then. */
        bool resumed = s->resp->status == 206 && s->resp->range_start == s->asked_from;
        if (s->asked_from && !resumed && layerstore_blob_writer_reset(s->w, &s->err) < 0)
            return -1;
    }
    return layerstore_blob_writer_write(s->w, data, n, &s->err);
}

static int fetch_blob_once(struct reg_client *c, const char *path, struct mk_blob_writer *w,
                           bool *ret_retry, struct mk_error **err)
{
    struct reg_resp resp = {0};
    struct blob_sink s = {.w = w, .asked_from = layerstore_blob_writer_size(w), .resp = &resp};
    struct reg_req req = {.method = "GET",
                          .url = path,
                          .fd = -1,
                          .follow = true,
                          .range_from = s.asked_from,
                          .sink = blob_sink,
                          .sink_ctx = &s};
    int r = reg_do(c, &req, &resp, ret_retry, err);
    if (s.err) {
        /* The sink's own failure (too many bytes, disk full) is the cause. */
        if (err && *err) {
            mk_error_free(*err);
            *err = NULL;
        }
        *ret_retry = s.err->code == MK_ERR_INVALID; /* too long: a corrupted answer */
        if (err && !*err)
            *err = s.err;
        else
            mk_error_free(s.err);
        r = -1;
    } else if (r == 0 && resp.status != 200 && resp.status != 206) {
        *ret_retry = reg_status_retryable(resp.status);
        _cleanup_free_ char *what = mk_xasprintf("fetching blob %s", strrchr(path, '/') + 1);
        r = reg_status_error(&resp, what, err);
    } else if (r == 0 && resp.status == 206 && !s.started && s.asked_from == 0) {
        r = mk_error_set(err, MK_ERR_FAILED, 0, "unexpected partial content");
    }
    reg_resp_release(&resp);
    return r;
}

/* reg_fetch_blob, its bytes also sent to tee (a layer unpacked as it arrives) when not
 * NULL. */
static int fetch_blob_tee(struct reg_client *c, struct mk_store *store, const char *digest,
                          uint64_t size, struct mk_layer_stream *tee, struct mk_error **err)
{
    if (layerstore_blob_exists(store, digest)) {
        reg_log(c, "blob %s already present", digest);
        reg_blob_seen(store, c, digest);
        return 0;
    }
    reg_log(c, "fetching blob %s (%llu bytes)", digest, (unsigned long long)size);
    reg_progress_begin(c, false, digest, size);
    _cleanup_free_ char *path = reg_path(c, "blobs", digest);
    _cleanup_(layerstore_blob_writer_freep) struct mk_blob_writer *w = NULL;
    for (int attempt = 1;; attempt++) {
        bool fresh = !w;
        if (!w && layerstore_blob_writer_new(store, digest, size, &w, err) < 0)
            return -1;
        /* A resumed download goes on feeding the stream; one started over breaks it (the
         * writer's reset does that when the server ignores Range). */
        if (tee && fresh && attempt == 1)
            layerstore_blob_writer_tee(w, tee);
        else if (tee && fresh)
            layerstore_layer_stream_break(tee);
        struct mk_error *e = NULL;
        bool retry = false;
        int r = fetch_blob_once(c, path, w, &retry, &e);
        if (r == 0) {
            r = layerstore_blob_writer_commit(w, &e);
            if (r == 0) {
                reg_progress_end(c);
                reg_blob_seen(store, c, digest);
                return 0;
            }
            /* Corrupted on the way (or cut short without notice): fetch it whole again. */
            if (!e)
                MK_BUG("blob commit failed without an error");
            retry = e->code == MK_ERR_DIGEST;
            layerstore_blob_writer_free(w);
            w = NULL;
        }
        if (!retry || attempt > c->retries || !reg_backoff(c, attempt)) {
            if (err && !*err)
                *err = e;
            else
                mk_error_free(e);
            return mk_error_wrap(err, "fetching blob %s", digest);
        }
        reg_log(c, "retrying blob %s from byte %llu (%s)", digest,
                (unsigned long long)(w ? layerstore_blob_writer_size(w) : 0), e->msg);
        mk_error_free(e);
    }
}

/* Downloads a blob into the store unless it is there: resumes with Range after a broken
 * connection, starts over after a corrupted answer, gives up after the retry budget. */
int reg_fetch_blob(struct reg_client *c, struct mk_store *store, const char *digest, uint64_t size,
                   struct mk_error **err)
{
    return fetch_blob_tee(c, store, digest, size, NULL, err);
}

struct layer_jobs {
    struct mk_store *store;
    const struct reg_blob_desc *layers;
    char (*chains)[MK_DIGEST_SIZE]; /* chains[i]: the chain below layer i ("" for the first) */
    const struct mk_strv *diff_ids;
    struct mk_layer_stream **streams; /* set by job i, read after reg_pool_wait(i) */
};

static int fetch_layer_job(void *ctx, struct reg_client *c, size_t i, struct mk_error **err)
{
    const struct layer_jobs *j = ctx;
    /* A layer listed twice is fetched once, by its first job: unpacking goes in order, so
     * it has waited for that job before it needs this layer. */
    for (size_t k = 0; k < i; k++)
        if (strcmp(j->layers[k].digest, j->layers[i].digest) == 0)
            return 0;
    /* Unpacked while it downloads (a blob there already is unpacked from the store). */
    if (!layerstore_blob_exists(j->store, j->layers[i].digest) &&
        layerstore_layer_stream_new(j->store, j->layers[i].digest, j->diff_ids->v[i], j->chains[i],
                                    &j->streams[i], err) < 0)
        return -1;
    return fetch_blob_tee(c, j->store, j->layers[i].digest, j->layers[i].size, j->streams[i], err);
}

/* Fetches the config and every layer of an image manifest, unpacking each layer. Layers
 * download in parallel, each unpacked by a thread of its own as its bytes arrive (the
 * chain ids are known from the config's diff_ids); a snapshot gets its name, in order,
 * when its blob is stored and verified and it unpacked to its diff_id. */
static int pull_image(struct reg_client *c, struct mk_store *store, const struct reg_manifest *m,
                      struct mk_error **err)
{
    struct reg_blob_desc config;
    _cleanup_free_ struct reg_blob_desc *layers = NULL;
    size_t n = 0;
    if (reg_manifest_blobs(m, &config, &layers, &n, err) < 0 ||
        reg_fetch_blob(c, store, config.digest, config.size, err) < 0)
        return -1;
    _cleanup_free_ char *cdata = NULL;
    size_t clen = 0;
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (layerstore_blob_read(store, config.digest, REG_JSON_MAX, &cdata, &clen, err) < 0 ||
        layerstore_config_parse(cdata, clen, &cfg, err) < 0)
        return mk_error_set_where(err, config.digest);
    int r = 0;
    if (cfg.diff_ids.n != n)
        r = mk_error_set_at(err, MK_ERR_INVALID, m->digest,
                            "the manifest has %zu layers but its config %zu diff_ids", n,
                            cfg.diff_ids.n);
    _cleanup_free_ char(*chains)[MK_DIGEST_SIZE] = mk_xcalloc(n + 1, MK_DIGEST_SIZE);
    _cleanup_free_ struct mk_layer_stream **streams = mk_xcalloc(n + 1, sizeof(*streams));
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (!mk_digest_valid(cfg.diff_ids.v[i]))
            r = mk_error_set(err, MK_ERR_INVALID, 0, "invalid diff_id \"%s\"", cfg.diff_ids.v[i]);
        else if (i + 1 < n)
            mk_chain_id(chains[i], cfg.diff_ids.v[i], chains[i + 1]);
    }
    struct layer_jobs jobs = {.store = store,
                              .layers = layers,
                              .chains = chains,
                              .diff_ids = &cfg.diff_ids,
                              .streams = streams};
    struct reg_pool *pool = NULL;
    /* In a window of deferred durability the download threads' blobs are not fsynced; its
     * marker is made now, not by the first of them to finish (nothing to download, none). */
    bool fetching = false;
    for (size_t i = 0; i < n; i++)
        fetching |= !layerstore_blob_exists(store, layers[i].digest);
    if (r == 0 && fetching)
        r = layerstore_sync_begin(store, err);
    if (r == 0 && n > 0)
        r = reg_pool_start(c, n, REG_PARALLEL, fetch_layer_job, &jobs, &pool, err);
    char chain[MK_DIGEST_SIZE] = "";
    for (size_t i = 0; r == 0 && i < n; i++) {
        char next[MK_DIGEST_SIZE];
        if (reg_pool_wait(pool, i) < 0) {
            r = reg_pool_finish(pool, true, err);
            pool = NULL;
            break;
        }
        if (streams[i])
            r = layerstore_layer_stream_finish(streams[i], next, err);
        else
            r = layerstore_layer_unpack(store, layers[i].digest, cfg.diff_ids.v[i], chain, next,
                                        err);
        if (r == 0)
            memcpy(chain, next, MK_DIGEST_SIZE);
    }
    /* After a failure here, the downloads still running are stopped; their blobs, verified,
     * may stay in the store for the next pull. Unpacks not installed are removed. */
    if (reg_pool_finish(pool, r < 0, err) < 0)
        r = -1;
    for (size_t i = 0; i < n; i++)
        layerstore_layer_stream_free(streams[i]);
    layerstore_config_release(&cfg);
    return r;
}

int registry_pull(struct mk_store *store, const char *name, const struct registry_opts *opts,
                  struct mk_image **ret, struct mk_error **err)
{
    _cleanup_free_ char *local = mk_ref_local_name(name, err);
    if (!local)
        return -1;
    struct mk_ref *ref = NULL;
    if (mk_ref_parse(name, &ref, err) < 0)
        return -1;
    struct mk_platform want;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    int r = mk_platform_parse(opts ? opts->platform : NULL, &want, err);
    if (r == 0)
        r = reg_client_new(ref, opts, &c, err);
    if (r == 0 && opts && opts->creds)
        c->creds = mk_xstrdup(opts->creds);
    else if (r == 0)
        r = registry_auth_lookup(opts ? opts->authfile : NULL, c->host, &c->creds, err) < 0 ? -1
                                                                                            : 0;
    const char *what = ref->digest ? ref->digest : ref->tag;
    struct reg_manifest m = {0};
    if (r == 0) {
        reg_log(c, "pulling %s/%s %s", c->host, c->repo, what);
        r = fetch_manifest(c, what, ref->digest, &m, err);
    }
    if (r == 0 && reg_is_index(m.media_type)) {
        char sel[MK_DIGEST_SIZE];
        struct reg_manifest im = {0};
        r = reg_index_select(&m, &want, sel, err);
        if (r == 0)
            r = fetch_manifest(c, sel, sel, &im, err);
        /* The index is not stored: the local tag names the platform's image. */
        reg_manifest_release(&m);
        m = im;
        if (r == 0 && !reg_is_image_manifest(m.media_type))
            r = mk_error_set_at(err, MK_ERR_UNSUPPORTED, sel, "the index entry is a \"%s\"",
                                m.media_type);
    } else if (r == 0 && !reg_is_image_manifest(m.media_type)) {
        r = mk_error_set(err, MK_ERR_UNSUPPORTED, 0, "unsupported manifest type \"%s\"",
                         m.media_type);
    }
    if (r == 0)
        r = pull_image(c, store, &m, err);
    /* Last, so a stored manifest never names a missing blob. */
    char digest[MK_DIGEST_SIZE];
    if (r == 0)
        r = layerstore_blob_put_buf(store, m.data, m.len, digest, err);
    _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
    if (r == 0)
        r = layerstore_image_get(store, m.digest, &img, err);
    if (r == 0)
        r = opts && opts->add_platform ? layerstore_tag_add_platform(store, img, local, NULL, err)
                                       : layerstore_tag(store, img, local, err);
    if (r == 0) {
        mk_strv_push(&img->tags, local);
        reg_log(c, "stored %s as %s", m.digest, local);
    }
    reg_manifest_release(&m);
    mk_ref_free(ref);
    if (r < 0)
        return mk_error_set_where(err, name);
    if (ret)
        *ret = MK_TAKE_PTR(img);
    return 0;
}

int registry_pull_policy_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "missing") == 0)
        return REGISTRY_PULL_MISSING;
    if (strcmp(s, "always") == 0 || strcmp(s, "true") == 0)
        return REGISTRY_PULL_ALWAYS;
    if (strcmp(s, "never") == 0 || strcmp(s, "false") == 0)
        return REGISTRY_PULL_NEVER;
    return -1;
}

int registry_image_get(struct mk_store *store, const char *name, enum registry_pull_policy policy,
                       const struct registry_opts *opts, struct mk_image **ret,
                       struct mk_error **err)
{
    if (policy != REGISTRY_PULL_ALWAYS) {
        struct mk_error *e = NULL;
        struct mk_platform want;
        bool by_platform = opts && opts->platform;
        if (by_platform && mk_platform_parse(opts->platform, &want, err) < 0)
            return -1;
        if (layerstore_image_get_platform(store, name, by_platform ? &want : NULL, ret, &e) == 0)
            return 0;
        /* The name is there, but not for this platform: that is the reason to give. */
        struct mk_platform_entry *pe = NULL;
        size_t np = 0;
        bool named = e->code == MK_ERR_NOT_FOUND && by_platform && !mk_digest_valid(name) &&
                     layerstore_ref_platforms(store, name, &pe, &np, NULL) == 0;
        layerstore_platform_entries_free(pe);
        if (policy == REGISTRY_PULL_NEVER && named) {
            if (err && !*err)
                *err = e;
            else
                mk_error_free(e);
            return -1;
        }
        bool missing = e->code == MK_ERR_NOT_FOUND;
        if (!missing) {
            if (err && !*err)
                *err = e;
            else
                mk_error_free(e);
            return -1;
        }
        if (policy == REGISTRY_PULL_NEVER) {
            mk_error_free(e);
            return mk_error_set_at(err, MK_ERR_NOT_FOUND, name,
                                   "image not in the store, and pulling is off (--pull=never)");
        }
        /* Held locally for other platforms only: a failed pull says that first. */
        if (named && registry_pull(store, name, opts, ret, err) < 0) {
            mk_error_wrap(err, "%s; pulling it", e->msg);
            mk_error_free(e);
            return -1;
        }
        mk_error_free(e);
        if (named)
            return 0;
    }
    return registry_pull(store, name, opts, ret, err);
}
