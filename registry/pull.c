/* registry/pull.c - manifest negotiation, platform selection, verified blob downloads. */
#include <jansson.h>
#include <string.h>
#include <sys/utsname.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

#define _cleanup_json_ _cleanup_(json_decrefp)
#define INDEX_MAX_ENTRIES 1024
#define MANIFEST_MAX_LAYERS 4096

static const char accept_manifests[] = MK_MEDIA_OCI_MANIFEST
    ", " MK_MEDIA_OCI_INDEX ", " REG_MEDIA_DOCKER_MANIFEST ", " REG_MEDIA_DOCKER_LIST;

MK_DEFINE_CLEANUP(struct reg_client, reg_client_free)
MK_DEFINE_CLEANUP(struct mk_blob_writer, layerstore_blob_writer_free)
MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)

struct manifest {
    char *data;
    size_t len;
    char digest[MK_DIGEST_SIZE];
    char *media_type;
    json_t *json;
};

static void manifest_release(struct manifest *m)
{
    free(m->data);
    free(m->media_type);
    json_decref(m->json);
    memset(m, 0, sizeof(*m));
}

/* GETs a manifest by tag or digest; when want is a digest the bytes must hash to it. */
static int fetch_manifest(struct reg_client *c, const char *ref, const char *want,
                          struct manifest *ret, struct mk_error **err)
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
    struct manifest m = {0};
    m.len = resp.body.len;
    m.data = mk_buf_detach(&resp.body);
    mk_sha256_buffer(m.data, m.len, m.digest);
    _cleanup_free_ char *ctype = MK_TAKE_PTR(resp.content_type);
    reg_resp_release(&resp);
    if (want && strcmp(want, m.digest) != 0) {
        mk_error_set(err, MK_ERR_DIGEST, 0, "manifest %s: content digest is %s", want, m.digest);
        manifest_release(&m);
        return -1;
    }
    json_error_t jerr;
    m.json = json_loadb(m.data, m.len, 0, &jerr);
    if (!json_is_object(m.json)) {
        mk_error_set(err, MK_ERR_PARSE, 0, "manifest %s: bad JSON: %s", ref,
                     m.json ? "not an object" : jerr.text);
        manifest_release(&m);
        return -1;
    }
    const char *mt = json_string_value(json_object_get(m.json, "mediaType"));
    if (!mt && ctype) {
        ctype[strcspn(ctype, "; ")] = '\0';
        mt = ctype;
    }
    json_t *sv = json_object_get(m.json, "schemaVersion");
    if ((json_is_integer(sv) && json_integer_value(sv) == 1) ||
        (mt && (strcmp(mt, REG_MEDIA_DOCKER_SCHEMA1) == 0 ||
                strcmp(mt, REG_MEDIA_DOCKER_SCHEMA1_SIGNED) == 0))) {
        mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                     "manifest %s: Docker schema 1 manifests are not supported (deprecated since "
                     "2017; push the image again with a current tool)",
                     ref);
        manifest_release(&m);
        return -1;
    }
    /* An OCI document without mediaType says what it is by its members. */
    if (!mt)
        mt = json_is_array(json_object_get(m.json, "manifests")) ? MK_MEDIA_OCI_INDEX
                                                                 : MK_MEDIA_OCI_MANIFEST;
    m.media_type = mk_xstrdup(mt);
    *ret = m;
    return 0;
}

static bool is_index(const char *mt)
{
    return strcmp(mt, MK_MEDIA_OCI_INDEX) == 0 || strcmp(mt, REG_MEDIA_DOCKER_LIST) == 0;
}

static bool is_image_manifest(const char *mt)
{
    return strcmp(mt, MK_MEDIA_OCI_MANIFEST) == 0 || strcmp(mt, REG_MEDIA_DOCKER_MANIFEST) == 0;
}

struct platform {
    char os[32], arch[32], variant[32];
};

static int platform_parse(const char *s, struct platform *ret, struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    if (!s) {
        snprintf(ret->os, sizeof(ret->os), "linux");
        snprintf(ret->arch, sizeof(ret->arch), "%s", layerstore_host_arch());
        return 0;
    }
    const char *a = strchr(s, '/');
    const char *v = a ? strchr(a + 1, '/') : NULL;
    size_t on = a ? (size_t)(a - s) : 0;
    size_t an = a ? (v ? (size_t)(v - a - 1) : strlen(a + 1)) : 0;
    if (!a || on == 0 || on >= sizeof(ret->os) || an == 0 || an >= sizeof(ret->arch) ||
        (v && (strlen(v + 1) == 0 || strlen(v + 1) >= sizeof(ret->variant) || strchr(v + 1, '/'))))
        return mk_error_set(err, MK_ERR_USAGE, 0,
                            "invalid platform \"%s\" (expected OS/ARCH[/VARIANT])", s);
    memcpy(ret->os, s, on);
    memcpy(ret->arch, a + 1, an);
    if (v)
        snprintf(ret->variant, sizeof(ret->variant), "%s", v + 1);
    return 0;
}

/* The digest of the index entry for the platform. */
static int select_platform(const struct manifest *idx, const struct platform *want,
                           char ret[MK_DIGEST_SIZE], struct mk_error **err)
{
    json_t *list = json_object_get(idx->json, "manifests");
    if (!json_is_array(list) || json_array_size(list) > INDEX_MAX_ENTRIES)
        return mk_error_set(err, MK_ERR_PARSE, 0, "index %s: bad manifest list", idx->digest);
    size_t i;
    json_t *e;
    struct mk_buf seen = MK_BUF_INIT;
    json_array_foreach(list, i, e)
    {
        json_t *p = json_object_get(e, "platform");
        const char *os = json_string_value(json_object_get(p, "os"));
        const char *arch = json_string_value(json_object_get(p, "architecture"));
        const char *variant = json_string_value(json_object_get(p, "variant"));
        const char *d = json_string_value(json_object_get(e, "digest"));
        const char *mt = json_string_value(json_object_get(e, "mediaType"));
        if (!os || !arch || !d)
            continue;
        if (seen.len < 512)
            mk_buf_addf(&seen, "%s%s/%s%s%s", seen.len ? ", " : "", os, arch, variant ? "/" : "",
                        variant ? variant : "");
        if (strcmp(os, want->os) != 0 || strcmp(arch, want->arch) != 0)
            continue;
        if (want->variant[0] && (!variant || strcmp(variant, want->variant) != 0))
            continue;
        if (mt && !is_image_manifest(mt))
            continue;
        if (!mk_digest_valid(d))
            break;
        memcpy(ret, d, MK_DIGEST_SIZE);
        mk_buf_release(&seen);
        return 0;
    }
    mk_error_set(err, MK_ERR_NOT_FOUND, 0, "no image for %s/%s%s%s in the index (it has: %s)",
                 want->os, want->arch, want->variant[0] ? "/" : "", want->variant,
                 seen.len ? seen.data : "nothing");
    mk_buf_release(&seen);
    return -1;
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

/* Downloads a blob into the store unless it is there: resumes with Range after a broken
 * connection, starts over after a corrupted answer, gives up after the retry budget. */
static int fetch_blob(struct reg_client *c, struct mk_store *store, const char *digest,
                      uint64_t size, struct mk_error **err)
{
    if (layerstore_blob_exists(store, digest)) {
        reg_log(c, "blob %s already present", digest);
        return 0;
    }
    reg_log(c, "fetching blob %s (%llu bytes)", digest, (unsigned long long)size);
    _cleanup_free_ char *path = reg_path(c, "blobs", digest);
    _cleanup_(layerstore_blob_writer_freep) struct mk_blob_writer *w = NULL;
    for (int attempt = 1;; attempt++) {
        if (!w && layerstore_blob_writer_new(store, digest, size, &w, err) < 0)
            return -1;
        struct mk_error *e = NULL;
        bool retry = false;
        int r = fetch_blob_once(c, path, w, &retry, &e);
        if (r == 0) {
            r = layerstore_blob_writer_commit(w, &e);
            if (r == 0)
                return 0;
            /* Corrupted on the way (or cut short without notice): fetch it whole again. */
            retry = e->code == MK_ERR_DIGEST;
            layerstore_blob_writer_free(w);
            w = NULL;
        }
        if (!retry || attempt > c->retries || !reg_backoff(attempt)) {
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

static bool layer_type_ok(const char *mt)
{
    static const char *const ok[] = {
        MK_MEDIA_OCI_LAYER,
        MK_MEDIA_OCI_LAYER_GZIP,
        MK_MEDIA_OCI_LAYER_ZSTD,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
    };
    for (size_t i = 0; i < MK_ARRAY_SIZE(ok); i++)
        if (strcmp(mt, ok[i]) == 0)
            return true;
    return false;
}

static int desc_get(json_t *d, const char **ret_digest, uint64_t *ret_size)
{
    const char *dg = json_string_value(json_object_get(d, "digest"));
    json_t *s = json_object_get(d, "size");
    if (!dg || !mk_digest_valid(dg) || !json_is_integer(s) || json_integer_value(s) < 0)
        return -1;
    *ret_digest = dg;
    *ret_size = (uint64_t)json_integer_value(s);
    return 0;
}

/* Fetches the config and every layer of an image manifest, unpacking each layer. */
static int pull_image(struct reg_client *c, struct mk_store *store, const struct manifest *m,
                      struct mk_error **err)
{
    const char *cd;
    uint64_t csize;
    if (desc_get(json_object_get(m->json, "config"), &cd, &csize) < 0)
        return mk_error_set_at(err, MK_ERR_PARSE, m->digest, "bad config descriptor");
    if (csize > REG_JSON_MAX)
        return mk_error_set_at(err, MK_ERR_INVALID, m->digest, "image config too large");
    json_t *layers = json_object_get(m->json, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > MANIFEST_MAX_LAYERS)
        return mk_error_set_at(err, MK_ERR_PARSE, m->digest, "bad layer list");
    if (fetch_blob(c, store, cd, csize, err) < 0)
        return -1;
    _cleanup_free_ char *cdata = NULL;
    size_t clen = 0;
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (layerstore_blob_read(store, cd, REG_JSON_MAX, &cdata, &clen, err) < 0 ||
        layerstore_config_parse(cdata, clen, &cfg, err) < 0)
        return mk_error_set_where(err, cd);
    int r = 0;
    if (cfg.diff_ids.n != json_array_size(layers))
        r = mk_error_set_at(err, MK_ERR_INVALID, m->digest,
                            "the manifest has %zu layers but its config %zu diff_ids",
                            json_array_size(layers), cfg.diff_ids.n);
    char chain[MK_DIGEST_SIZE] = "";
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        if (r < 0)
            break;
        const char *ld;
        uint64_t lsize;
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        if (desc_get(l, &ld, &lsize) < 0) {
            r = mk_error_set_at(err, MK_ERR_PARSE, m->digest, "bad layer descriptor");
            break;
        }
        if (mt && !layer_type_ok(mt)) {
            r = mk_error_set_at(err, MK_ERR_UNSUPPORTED, m->digest,
                                "layer %zu has unsupported media type \"%s\"", i + 1, mt);
            break;
        }
        char next[MK_DIGEST_SIZE];
        r = fetch_blob(c, store, ld, lsize, err);
        if (r == 0)
            r = layerstore_layer_unpack(store, ld, cfg.diff_ids.v[i], chain, next, err);
        if (r == 0)
            memcpy(chain, next, MK_DIGEST_SIZE);
    }
    layerstore_config_release(&cfg);
    return r;
}

int registry_pull(struct mk_store *store, const char *name, const struct registry_opts *opts,
                  struct mk_image **ret, struct mk_error **err)
{
    _cleanup_free_ char *local = layerstore_normalize_ref(name, err);
    if (!local)
        return -1;
    struct mk_ref *ref = NULL;
    if (registry_ref_parse(name, &ref, err) < 0)
        return -1;
    struct platform want;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    int r = platform_parse(opts ? opts->platform : NULL, &want, err);
    if (r == 0)
        r = reg_client_new(ref, opts, &c, err);
    if (r == 0 && opts && opts->creds)
        c->creds = mk_xstrdup(opts->creds);
    else if (r == 0)
        r = registry_auth_lookup(opts ? opts->authfile : NULL, c->host, &c->creds, err) < 0 ? -1
                                                                                            : 0;
    const char *what = ref->digest ? ref->digest : ref->tag;
    struct manifest m = {0};
    if (r == 0) {
        reg_log(c, "pulling %s/%s %s", c->host, c->repo, what);
        r = fetch_manifest(c, what, ref->digest, &m, err);
    }
    if (r == 0 && is_index(m.media_type)) {
        char sel[MK_DIGEST_SIZE];
        struct manifest im = {0};
        r = select_platform(&m, &want, sel, err);
        if (r == 0)
            r = fetch_manifest(c, sel, sel, &im, err);
        /* The index is not stored: the local tag names the platform's image. */
        manifest_release(&m);
        m = im;
        if (r == 0 && !is_image_manifest(m.media_type))
            r = mk_error_set_at(err, MK_ERR_UNSUPPORTED, sel, "the index entry is a \"%s\"",
                                m.media_type);
    } else if (r == 0 && !is_image_manifest(m.media_type)) {
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
        r = layerstore_tag(store, img, local, err);
    if (r == 0) {
        mk_strv_push(&img->tags, local);
        reg_log(c, "stored %s as %s", m.digest, local);
    }
    manifest_release(&m);
    registry_ref_free(ref);
    if (r < 0)
        return mk_error_set_where(err, name);
    if (ret)
        *ret = MK_TAKE_PTR(img);
    return 0;
}
