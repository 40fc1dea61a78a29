/* registry/push.c - blobs the repository lacks, streamed from the store, then the manifest. */
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

#define _cleanup_json_ _cleanup_(json_decrefp)
#define MANIFEST_MAX (4u << 20)

MK_DEFINE_CLEANUP(struct reg_client, reg_client_free)
MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)

/* 1 when the repository has the blob, 0 when not. */
static int blob_exists(struct reg_client *c, const char *digest, struct mk_error **err)
{
    _cleanup_free_ char *path = reg_path(c, "blobs", digest);
    struct reg_req req = {.method = "HEAD", .url = path, .fd = -1};
    struct reg_resp resp = {0};
    int r = reg_request(c, &req, &resp, err);
    if (r == 0) {
        if (resp.status == 200)
            r = 1;
        else if (resp.status != 404)
            r = reg_status_error(&resp, "checking for a blob", err);
    }
    reg_resp_release(&resp);
    return r;
}

/* Where PUT goes: the upload URL with "digest=" added. */
static char *upload_url(const char *location, const char *digest)
{
    return mk_xasprintf("%s%cdigest=%s", location, strchr(location, '?') ? '&' : '?', digest);
}

/* Blobs larger than this go up in PATCH chunks of this size; smaller ones in one PUT. */
#define UPLOAD_CHUNK (32ull << 20)
/* How far a layer's compression may run ahead of its streamed upload: the chunk being sent
 * and the next one, no more. A registry slower than the compression (one on the same cores,
 * whose hashing and writing take about a core per 300 MB/s) then gets the CPU that running
 * ahead would take from it. */
#define STREAM_LEAD_MIN (8ull << 20)
static uint64_t stream_lead(uint64_t chunk)
{
    return 2 * chunk > STREAM_LEAD_MIN ? 2 * chunk : STREAM_LEAD_MIN;
}

static uint64_t chunk_size(void)
{
    /* A test knob: small chunks show the chunked path with small images. */
    const char *env = getenv("MKIMG_UPLOAD_CHUNK_SIZE");
    uint64_t v;
    if (env && mk_parse_u64(env, &v) == 0 && v >= 1024)
        return v;
    return UPLOAD_CHUNK;
}

/* One blob upload session (distribution spec: POST, PATCH per chunk, closing PUT). */
struct upload {
    struct reg_client *c;
    int fd;
    const char *digest;
    uint64_t size;
    uint64_t chunk;
    char *loc;     /* the session's current location; NULL = none open */
    uint64_t done; /* bytes the registry holds */
};

static void upload_take_location(struct upload *u, struct reg_resp *resp)
{
    if (resp->location && *resp->location) {
        free(u->loc);
        u->loc = MK_TAKE_PTR(resp->location);
    }
}

/* POST: opens a session, or mounts the blob from mount_from (1: nothing left to send). */
static int upload_start(struct upload *u, const char *mount_from, bool *ret_retry,
                        struct mk_error **err)
{
    struct reg_client *c = u->c;
    /* With mount_from the registry may link the blob from that repository (201) instead of
     * opening an upload session (202). */
    _cleanup_free_ char *post = mount_from ? mk_xasprintf("/v2/%s/blobs/uploads/?mount=%s&from=%s",
                                                          c->repo, u->digest, mount_from)
                                           : mk_xasprintf("/v2/%s/blobs/uploads/", c->repo);
    struct reg_req req = {.method = "POST", .url = post, .fd = -1};
    struct reg_resp resp = {0};
    int r = reg_do(c, &req, &resp, ret_retry, err);
    if (r == 0 && mount_from && resp.status == 201) {
        reg_log(c, "blob %s mounted from %s", u->digest, mount_from);
        reg_resp_release(&resp);
        return 1;
    }
    if (r == 0 && resp.status != 202) {
        *ret_retry = reg_status_retryable(resp.status);
        r = reg_status_error(&resp, "starting an upload", err);
    }
    if (r == 0 && (!resp.location || !*resp.location))
        r = mk_error_set(err, MK_ERR_FAILED, 0, "the registry gave no upload location");
    if (r == 0) {
        upload_take_location(u, &resp);
        u->done = 0;
        /* A registry's minimum chunk, when it has one (OCI-Chunk-Min-Length). */
        if (resp.chunk_min > u->chunk)
            u->chunk = resp.chunk_min;
    }
    reg_resp_release(&resp);
    return r;
}

int reg_mount_blob(struct reg_client *c, const char *digest, const char *from,
                   struct mk_error **err)
{
    struct upload u = {.c = c, .fd = -1, .digest = digest, .chunk = chunk_size()};
    bool retry = false;
    int r = blob_exists(c, digest, err);
    if (r == 0)
        r = upload_start(&u, from, &retry, err);
    /* A session opened instead of the mount is left for the registry to expire. */
    free(u.loc);
    return r;
}

/* PATCH of the next chunk, [done, done + n). 1 when the registry refuses chunked uploads. */
static int upload_patch(struct upload *u, uint64_t n, bool *ret_retry, struct mk_error **err)
{
    _cleanup_free_ char *range =
        mk_xasprintf("Content-Range: %llu-%llu", (unsigned long long)u->done,
                     (unsigned long long)(u->done + n - 1));
    struct reg_req req = {.method = "PATCH",
                          .url = u->loc,
                          .fd = u->fd,
                          .fd_off = u->done,
                          .fd_size = n,
                          .header = range,
                          .content_type = "application/octet-stream"};
    struct reg_resp resp = {0};
    int r = reg_do(u->c, &req, &resp, ret_retry, err);
    if (r == 0 && u->done == 0 && (resp.status == 405 || resp.status == 501)) {
        r = 1;
    } else if (r == 0 && resp.status != 202) {
        /* 416 or 404 (distribution's "blob upload invalid"): the session holds other bytes
         * than we think, typically after a chunk whose answer was lost was sent again. Ask
         * where it stands, or start over when it is gone. */
        *ret_retry = reg_status_retryable(resp.status) || resp.status == 416 || resp.status == 404;
        r = reg_status_error(&resp, "uploading a chunk", err);
    } else if (r == 0 && resp.has_range && resp.range_end != u->done + n - 1) {
        *ret_retry = true;
        r = mk_error_set(err, MK_ERR_FAILED, 0, "the registry holds bytes 0-%llu, not 0-%llu",
                         (unsigned long long)resp.range_end, (unsigned long long)(u->done + n - 1));
    }
    if (r == 0) {
        u->done += n;
        upload_take_location(u, &resp);
    }
    reg_resp_release(&resp);
    return r;
}

/* GET of the session after a failed chunk: where to go on from. */
static int upload_status(struct upload *u, struct mk_error **err)
{
    struct reg_req req = {.method = "GET", .url = u->loc, .fd = -1};
    struct reg_resp resp = {0};
    bool retry;
    int r = reg_do(u->c, &req, &resp, &retry, err);
    if (r == 0 && (resp.status != 204 || !resp.has_range))
        r = reg_status_error(&resp, "checking an upload", err);
    if (r == 0) {
        /* "0-0" is said for both no byte and one: start over at 0 then. */
        u->done = resp.range_end ? resp.range_end + 1 : 0;
        if (u->done > u->size)
            r = mk_error_set(err, MK_ERR_FAILED, 0, "the upload holds more than the blob");
        upload_take_location(u, &resp);
    }
    reg_resp_release(&resp);
    return r;
}

/* The closing PUT ?digest=, carrying the bytes from done on (all of a small blob, none
 * after chunks). */
static int upload_close(struct upload *u, bool *ret_retry, struct mk_error **err)
{
    _cleanup_free_ char *put = upload_url(u->loc, u->digest);
    struct reg_req req = {.method = "PUT",
                          .url = put,
                          .fd = u->fd,
                          .fd_off = u->done,
                          .fd_size = u->size - u->done,
                          .content_type = "application/octet-stream"};
    struct reg_resp resp = {0};
    int r = reg_do(u->c, &req, &resp, ret_retry, err);
    if (r == 0 && resp.status != 201) {
        *ret_retry = reg_status_retryable(resp.status);
        r = reg_status_error(&resp, "uploading", err);
    }
    if (r == 0 && resp.docker_digest && strcmp(resp.docker_digest, u->digest) != 0)
        r = mk_error_set(err, MK_ERR_DIGEST, 0, "the registry stored %s", resp.docker_digest);
    reg_resp_release(&resp);
    return r;
}

/* One try: a session (unless one is open to go on with), the chunks it lacks, the PUT.
 * Blobs up to one chunk go in the closing PUT alone. */
static int upload_once(struct upload *u, const char *mount_from, bool *ret_retry,
                       struct mk_error **err)
{
    *ret_retry = false;
    if (!u->loc) {
        int r = upload_start(u, mount_from, ret_retry, err);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    bool chunked = u->size > u->chunk;
    while (chunked && u->done < u->size) {
        uint64_t n = u->size - u->done < u->chunk ? u->size - u->done : u->chunk;
        int r = upload_patch(u, n, ret_retry, err);
        if (r < 0)
            return -1;
        if (r == 1) {
            reg_log(u->c, "the registry takes no chunks: uploading %s in one request", u->digest);
            break;
        }
    }
    return upload_close(u, ret_retry, err);
}

/* Sends the blob u describes (u->digest, u->size, bytes at u->fd), going on with u's open
 * session if it has one, retrying within the budget. */
static int upload_blob(struct upload *u, struct mk_store *store, const char *mount_from,
                       struct mk_error **err)
{
    struct reg_client *c = u->c;
    int r = 0;
    for (int attempt = 1;; attempt++) {
        struct mk_error *e = NULL;
        bool retry = false;
        if (upload_once(u, mount_from, &retry, &e) == 0) {
            reg_blob_seen(store, c, u->digest);
            break;
        }
        if (!retry || attempt > c->retries || !reg_backoff(c, attempt)) {
            if (err && !*err)
                *err = e;
            else
                mk_error_free(e);
            r = mk_error_wrap(err, "pushing blob %s", u->digest);
            break;
        }
        /* A broken chunk: the session may live on, holding what came before. */
        if (u->loc && upload_status(u, NULL) == 0) {
            reg_log(c, "resuming the upload of %s at byte %llu (%s)", u->digest,
                    (unsigned long long)u->done, e->msg);
        } else {
            reg_log(c, "retrying upload of %s (%s)", u->digest, e->msg);
            free(u->loc);
            u->loc = NULL;
        }
        mk_error_free(e);
    }
    free(u->loc);
    u->loc = NULL;
    return r;
}

int reg_push_blob(struct reg_client *c, struct mk_store *store, const char *digest,
                  const char *mount_from, struct mk_error **err)
{
    int ex = blob_exists(c, digest, err);
    if (ex < 0)
        return mk_error_wrap(err, "pushing blob %s", digest);
    if (ex == 1) {
        reg_log(c, "blob %s already in the repository", digest);
        reg_blob_seen(store, c, digest);
        return 0;
    }
    /* Else a repository it was pushed to or pulled from before. */
    _cleanup_free_ char *seen_in = mount_from ? NULL : reg_blob_source(store, c, digest);
    if (seen_in)
        mount_from = seen_in;
    _cleanup_close_ int fd = layerstore_blob_open(store, digest, err);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mk_error_errno(err, "stat of blob %s", digest);
    reg_log(c, "uploading blob %s (%llu bytes)", digest, (unsigned long long)st.st_size);
    struct upload u = {
        .c = c, .fd = fd, .digest = digest, .size = (uint64_t)st.st_size, .chunk = chunk_size()};
    reg_progress_begin(c, true, digest, u.size);
    int r = upload_blob(&u, store, mount_from, err);
    if (r == 0)
        reg_progress_end(c);
    return r;
}

/* An uncompressed layer whose compressed copy is not made yet: its chunks go up while the
 * compressor writes them (the digest, needed only by the closing PUT, comes last). What the
 * stream cannot do (a failed chunk, a registry without chunks) is left to the ordinary
 * upload of the finished copy. */
static int push_layer_streamed(struct reg_client *c, struct mk_store *store,
                               const struct mk_layer_desc *src, enum mk_compression comp,
                               const char *mount_from, struct mk_layer_desc *ret,
                               struct mk_error **err)
{
    struct mk_compress_stream *s = NULL;
    uint64_t chunk = chunk_size();
    if (layerstore_compress_stream_start(store, src, comp, stream_lead(chunk), &s, err) < 0)
        return mk_error_wrap(err, "pushing layer %s", src->digest);
    bool ended = false;
    layerstore_compress_stream_wait(s, 0, &ended);
    if (ended) {
        /* The copy was there already: the usual HEAD, mount or upload. */
        int r = layerstore_compress_stream_finish(s, false, ret, err);
        layerstore_compress_stream_free(s);
        return r < 0 ? -1 : reg_push_blob(c, store, ret->digest, mount_from, err);
    }
    reg_log(c, "compressing layer %s and uploading it on the way", src->diff_id);
    struct upload u = {.c = c, .fd = layerstore_compress_stream_fd(s), .chunk = chunk};
    struct mk_error *e = NULL;
    bool retry = false;
    int r = upload_start(&u, NULL, &retry, &e);
    while (r == 0 && !reg_cancelled(c)) {
        layerstore_compress_stream_allow(s, u.done + stream_lead(u.chunk));
        layerstore_compress_stream_wait(s, u.done + u.chunk, &ended);
        if (ended)
            break;
        r = upload_patch(&u, u.chunk, &retry, &e);
    }
    /* The rest is uploaded from the finished copy (or it all, after a failed chunk). */
    layerstore_compress_stream_allow(s, UINT64_MAX);
    if (r != 0) {
        reg_log(c, "uploading layer %s once compressed (%s)", src->diff_id,
                e ? e->msg : "the registry takes no chunks");
        mk_error_free(e);
        free(u.loc);
        u.loc = NULL;
    }
    /* The rest goes up (the closing PUT needs only the digest) while the copy is stored in
     * the store (its fsync): the finish below waits for both. */
    bool stop = reg_cancelled(c);
    char digest[MK_DIGEST_SIZE];
    bool compressed = !stop && layerstore_compress_stream_digest(s, digest, &u.size) == 0;
    int up = 0;
    if (compressed) {
        u.digest = digest;
        up = upload_blob(&u, store, NULL, err);
    }
    /* After a failed upload the copy is not wanted and the upload's error is the one told;
     * else finish tells why the compressor failed or the copy could not be stored. */
    struct mk_error *unused = NULL;
    r = layerstore_compress_stream_finish(s, stop || up < 0, ret, up < 0 ? &unused : err);
    mk_error_free(unused);
    if (up < 0)
        r = -1;
    free(u.loc);
    layerstore_compress_stream_free(s);
    return r;
}

int reg_put_manifest(struct reg_client *c, const char *ref, const char *data, size_t len,
                     const char *media_type, const char *digest, struct mk_error **err)
{
    _cleanup_free_ char *path = reg_path(c, "manifests", ref);
    struct reg_req req = {.method = "PUT",
                          .url = path,
                          .data = data,
                          .len = len,
                          .fd = -1,
                          .content_type = media_type};
    struct reg_resp resp = {0};
    int r = reg_request(c, &req, &resp, err);
    if (r == 0 && resp.status != 201 && resp.status != 200)
        r = reg_status_error(&resp, "pushing the manifest", err);
    if (r == 0 && resp.docker_digest && strcmp(resp.docker_digest, digest) != 0)
        r = mk_error_set(err, MK_ERR_DIGEST, 0, "the registry stored the manifest as %s, not %s",
                         resp.docker_digest, digest);
    reg_resp_release(&resp);
    return r;
}

/* The blobs of one push, each a job of the pool: layers 0 .. n-1 (compressed on the way
 * when needed), then the config. */
struct push_jobs {
    struct mk_store *store;
    const struct mk_image *img;
    enum mk_compression comp;
    const char *mount_from;
    const struct registry_opts *opts;
    struct mk_layer_desc *out; /* the layers as pushed */
};

static int push_job(void *ctx, struct reg_client *c, size_t i, struct mk_error **err)
{
    struct push_jobs *j = ctx;
    const struct mk_image *img = j->img;
    if (i == img->n_layers)
        return reg_push_blob(c, j->store, img->config_digest, j->mount_from, err);
    /* A layer listed twice goes once; its descriptor is copied when all are done. */
    for (size_t k = 0; k < i; k++)
        if (strcmp(img->layers[k].digest, img->layers[i].digest) == 0)
            return 0;
    const struct mk_layer_desc *src = &img->layers[i];
    /* A lazy image's layer goes as the registry cache holds it (mount.c). */
    if (reg_layer_lazy(j->store, src))
        return reg_push_lazy(c, j->store, src, j->opts, &j->out[i], err);
    if (strcmp(src->digest, src->diff_id) == 0 && j->comp != MK_COMPRESS_NONE) {
        /* Compression does not watch the pool's flag: do not start one for nothing. */
        if (reg_cancelled(c))
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "cancelled");
        return push_layer_streamed(c, j->store, src, j->comp, j->mount_from, &j->out[i], err);
    }
    /* Compressed already (pulled), or pushed as it is stored. */
    j->out[i] = *src;
    j->out[i].media_type = mk_xstrdup(src->media_type ? src->media_type : MK_MEDIA_OCI_LAYER);
    return reg_push_blob(c, j->store, src->digest, j->mount_from, err);
}

/* Every blob of img, several at once; *ret gets the layers as pushed. */
static int push_blobs(struct reg_client *c, struct mk_store *store, const struct mk_image *img,
                      enum mk_compression comp, const char *mount_from,
                      const struct registry_opts *opts, struct mk_layer_desc **ret,
                      struct mk_error **err)
{
    size_t n = img->n_layers;
    struct push_jobs j = {.store = store,
                          .img = img,
                          .comp = comp,
                          .mount_from = mount_from,
                          .opts = opts,
                          .out = mk_xcalloc(n + 1, sizeof(struct mk_layer_desc))};
    struct reg_pool *pool = NULL;
    int r = reg_pool_start(c, n + 1, REG_PARALLEL, push_job, &j, &pool, err);
    if (r == 0)
        r = reg_pool_finish(pool, false, err);
    for (size_t i = 0; r == 0 && i < n; i++)
        for (size_t k = 0; k < i; k++)
            if (strcmp(img->layers[k].digest, img->layers[i].digest) == 0) {
                j.out[i] = j.out[k];
                j.out[i].media_type = mk_xstrdup(j.out[k].media_type);
                break;
            }
    if (r < 0) {
        layerstore_layer_descs_free(j.out, n);
        return -1;
    }
    *ret = j.out;
    return 0;
}

/* The stored manifest with the layer descriptors replaced; everything else kept. */
static char *manifest_with_layers(json_t *m, const struct mk_layer_desc *layers, size_t n)
{
    _cleanup_json_ json_t *copy = json_deep_copy(m);
    json_t *jl = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(jl, json_pack("{s:s, s:s, s:I}", "mediaType", layers[i].media_type,
                                            "digest", layers[i].digest, "size",
                                            (json_int_t)layers[i].size));
    json_object_set_new(copy, "layers", jl);
    char *s = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    return s;
}

/* Another repository of the destination registry that the image came from or went to (one
 * of its local names), whose blobs the registry can mount instead of receiving them. */
static char *mount_source(const struct mk_image *img, const struct mk_ref *dest)
{
    for (size_t i = 0; i < img->tags.n; i++) {
        struct mk_ref *r = NULL;
        if (mk_ref_parse(img->tags.v[i], &r, NULL) < 0)
            continue;
        char *from = NULL;
        if (strcmp(r->domain, dest->domain) == 0 && strcmp(r->path, dest->path) != 0)
            from = mk_xstrdup(r->path);
        mk_ref_free(r);
        if (from)
            return from;
    }
    return NULL;
}

int registry_push(struct mk_store *store, const char *image, const char *dest,
                  const struct registry_opts *opts, char ret_digest[MK_DIGEST_SIZE],
                  struct mk_error **err)
{
    /* A name holding several platforms goes out as an index of them (push-index.c). */
    if (!mk_digest_valid(image) && layerstore_ref_is_index(store, image))
        return reg_push_index(store, image, dest, opts, ret_digest, err);
    _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
    if (layerstore_image_get(store, image, &img, err) < 0)
        return -1;
    const char *target = dest ? dest : image;
    struct mk_ref *ref = NULL;
    if (mk_ref_parse(target, &ref, err) < 0)
        return -1;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    int r = reg_push_client(ref, opts, &c, err);
    if (r == 0)
        r = reg_push_image(c, store, img, image, ref, opts, false, ret_digest, NULL, err);
    mk_ref_free(ref);
    if (r < 0)
        return mk_error_set_where(err, target);
    return 0;
}

int reg_push_client(const struct mk_ref *ref, const struct registry_opts *opts,
                    struct reg_client **ret, struct mk_error **err)
{
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    int r = reg_client_new(ref, opts, &c, err);
    if (r == 0 && opts && opts->creds)
        c->creds = mk_xstrdup(opts->creds);
    else if (r == 0)
        r = registry_auth_lookup(opts ? opts->authfile : NULL, c->host, &c->creds, err) < 0 ? -1
                                                                                            : 0;
    if (r == 0)
        *ret = MK_TAKE_PTR(c);
    return r;
}

int reg_push_image(struct reg_client *c, struct mk_store *store, const struct mk_image *img,
                   const char *image, const struct mk_ref *ref, const struct registry_opts *opts,
                   bool by_digest, char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                   struct mk_error **err)
{
    int r = 0;
    /* The stored manifest goes out byte for byte, so the digest is the local one. */
    _cleanup_free_ char *mdata = NULL;
    size_t mlen = 0;
    if (r == 0)
        r = layerstore_blob_read(store, img->manifest_digest, MANIFEST_MAX, &mdata, &mlen, err);
    json_error_t jerr;
    _cleanup_json_ json_t *m = r == 0 ? json_loadb(mdata, mlen, 0, &jerr) : NULL;
    if (r == 0 && !json_is_object(m))
        r = mk_error_set_at(err, MK_ERR_PARSE, img->manifest_digest, "bad manifest JSON");
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    if (r == 0 && !mt)
        mt = MK_MEDIA_OCI_MANIFEST;
    int comp = MK_COMPRESS_GZIP;
    if (opts && opts->compression && (comp = layerstore_compression_parse(opts->compression)) < 0)
        r = mk_error_set(err, MK_ERR_USAGE, 0, "unknown compression \"%s\" (gzip, zstd or none)",
                         opts->compression);
    /* Uncompressed layers get compressed: the manifest pushed is then a new one. */
    bool changed = false;
    for (size_t i = 0; comp != MK_COMPRESS_NONE && i < img->n_layers; i++)
        if (strcmp(img->layers[i].digest, img->layers[i].diff_id) == 0)
            changed = true;
    for (size_t i = 0; i < img->n_layers; i++)
        changed |= reg_layer_lazy(store, &img->layers[i]); /* pushed as the cache has it */
    if (r == 0 && !ref->tag && !by_digest && changed)
        r = mk_error_set(err, MK_ERR_INVALID, 0,
                         "pushing by digest needs the image as stored: use --compression-format "
                         "none or a tag");
    if (r == 0)
        reg_log(c, "pushing %s to %s/%s", image, c->host, c->repo);
    _cleanup_free_ char *mount_from = r == 0 ? mount_source(img, ref) : NULL;
    struct mk_layer_desc *layers = NULL;
    if (r == 0)
        r = push_blobs(c, store, img, (enum mk_compression)comp, mount_from, opts, &layers, err);
    if (r == 0 && changed) {
        /* A new manifest for the compressed layers; the local image stays as it is. */
        free(mdata);
        mdata = manifest_with_layers(m, layers, img->n_layers);
        mlen = strlen(mdata);
    }
    char digest[MK_DIGEST_SIZE] = "";
    if (r == 0)
        mk_sha256_buffer(mdata, mlen, digest);
    const char *tag = by_digest ? digest : ref->tag ? ref->tag : ref->digest;
    if (r == 0)
        r = reg_put_manifest(c, tag, mdata, mlen, mt, digest, err);
    layerstore_layer_descs_free(layers, img->n_layers);
    if (r < 0)
        return -1;
    reg_log(c, "pushed %s", digest);
    if (ret_digest)
        memcpy(ret_digest, digest, MK_DIGEST_SIZE);
    if (ret_size)
        *ret_size = mlen;
    return 0;
}
