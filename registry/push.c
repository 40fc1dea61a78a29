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

/* One upload: POST for a session, PUT of the whole blob with its digest. */
static int upload_once(struct reg_client *c, int fd, const char *digest, uint64_t size,
                       const char *mount_from, bool *ret_retry, struct mk_error **err)
{
    /* With mount_from the registry may link the blob from that repository (201) instead of
     * opening an upload session (202). */
    _cleanup_free_ char *post = mount_from ? mk_xasprintf("/v2/%s/blobs/uploads/?mount=%s&from=%s",
                                                          c->repo, digest, mount_from)
                                           : mk_xasprintf("/v2/%s/blobs/uploads/", c->repo);
    struct reg_req req = {.method = "POST", .url = post, .fd = -1};
    struct reg_resp resp = {0};
    *ret_retry = false;
    int r = reg_do(c, &req, &resp, ret_retry, err);
    if (r == 0 && mount_from && resp.status == 201) {
        reg_log(c, "blob %s mounted from %s", digest, mount_from);
        reg_resp_release(&resp);
        return 0;
    }
    if (r == 0 && resp.status != 202) {
        *ret_retry = reg_status_retryable(resp.status);
        r = reg_status_error(&resp, "starting an upload", err);
    }
    if (r == 0 && (!resp.location || !*resp.location))
        r = mk_error_set(err, MK_ERR_FAILED, 0, "the registry gave no upload location");
    _cleanup_free_ char *loc = resp.location ? mk_xstrdup(resp.location) : NULL;
    reg_resp_release(&resp);
    if (r < 0)
        return -1;
    _cleanup_free_ char *put = upload_url(loc, digest);
    struct reg_req preq = {.method = "PUT",
                           .url = put,
                           .fd = fd,
                           .fd_size = size,
                           .content_type = "application/octet-stream"};
    r = reg_do(c, &preq, &resp, ret_retry, err);
    if (r == 0 && resp.status != 201) {
        *ret_retry = reg_status_retryable(resp.status);
        r = reg_status_error(&resp, "uploading", err);
    }
    if (r == 0 && resp.docker_digest && strcmp(resp.docker_digest, digest) != 0)
        r = mk_error_set(err, MK_ERR_DIGEST, 0, "the registry stored %s", resp.docker_digest);
    reg_resp_release(&resp);
    return r;
}

static int push_blob(struct reg_client *c, struct mk_store *store, const char *digest,
                     const char *mount_from, struct mk_error **err)
{
    int ex = blob_exists(c, digest, err);
    if (ex < 0)
        return mk_error_wrap(err, "pushing blob %s", digest);
    if (ex == 1) {
        reg_log(c, "blob %s already in the repository", digest);
        return 0;
    }
    _cleanup_close_ int fd = layerstore_blob_open(store, digest, err);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mk_error_errno(err, "stat of blob %s", digest);
    reg_log(c, "uploading blob %s (%llu bytes)", digest, (unsigned long long)st.st_size);
    for (int attempt = 1;; attempt++) {
        struct mk_error *e = NULL;
        bool retry = false;
        if (upload_once(c, fd, digest, (uint64_t)st.st_size, mount_from, &retry, &e) == 0)
            return 0;
        if (!retry || attempt > c->retries || !reg_backoff(attempt)) {
            if (err && !*err)
                *err = e;
            else
                mk_error_free(e);
            return mk_error_wrap(err, "pushing blob %s", digest);
        }
        reg_log(c, "retrying upload of %s (%s)", digest, e->msg);
        mk_error_free(e);
    }
}

static int put_manifest(struct reg_client *c, const char *ref, const char *data, size_t len,
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

/* The layers as pushed: uncompressed ones compressed (cached in the store), compressed ones
 * (pulled) as they are. *ret_changed says whether any differs from the stored manifest. */
static int push_layers(struct mk_store *store, const struct mk_image *img, enum mk_compression comp,
                       struct mk_layer_desc **ret, bool *ret_changed, struct mk_error **err)
{
    size_t n = img->n_layers, k = 0;
    struct mk_layer_desc *plain = mk_xcalloc(n + 1, sizeof(*plain));
    size_t *where = mk_xcalloc(n + 1, sizeof(*where));
    for (size_t i = 0; i < n; i++)
        if (strcmp(img->layers[i].digest, img->layers[i].diff_id) == 0) {
            plain[k] = img->layers[i];
            where[k++] = i;
        }
    struct mk_layer_desc *packed = NULL;
    int r = 0;
    if (k && comp != MK_COMPRESS_NONE)
        r = layerstore_layers_compress(store, plain, k, comp, 0, &packed, err);
    struct mk_layer_desc *out = NULL;
    if (r == 0) {
        out = mk_xcalloc(n + 1, sizeof(*out));
        for (size_t i = 0; i < n; i++) {
            out[i] = img->layers[i];
            out[i].media_type = mk_xstrdup(img->layers[i].media_type ? img->layers[i].media_type
                                                                     : MK_MEDIA_OCI_LAYER);
        }
        for (size_t j = 0; packed && j < k; j++) {
            struct mk_layer_desc *d = &out[where[j]];
            free(d->media_type);
            *d = packed[j];
            d->media_type = mk_xstrdup(packed[j].media_type);
        }
    }
    *ret_changed = packed != NULL;
    layerstore_layer_descs_free(packed, k);
    free(plain);
    free(where);
    if (r < 0)
        return -1;
    *ret = out;
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
        if (registry_ref_parse(img->tags.v[i], &r, NULL) < 0)
            continue;
        char *from = NULL;
        if (strcmp(r->domain, dest->domain) == 0 && strcmp(r->path, dest->path) != 0)
            from = mk_xstrdup(r->path);
        registry_ref_free(r);
        if (from)
            return from;
    }
    return NULL;
}

int registry_push(struct mk_store *store, const char *image, const char *dest,
                  const struct registry_opts *opts, char ret_digest[MK_DIGEST_SIZE],
                  struct mk_error **err)
{
    _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
    if (layerstore_image_get(store, image, &img, err) < 0)
        return -1;
    const char *target = dest ? dest : image;
    struct mk_ref *ref = NULL;
    if (registry_ref_parse(target, &ref, err) < 0)
        return -1;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    int r = reg_client_new(ref, opts, &c, err);
    if (r == 0 && opts && opts->creds)
        c->creds = mk_xstrdup(opts->creds);
    else if (r == 0)
        r = registry_auth_lookup(opts ? opts->authfile : NULL, c->host, &c->creds, err) < 0 ? -1
                                                                                            : 0;
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
    struct mk_layer_desc *layers = NULL;
    bool changed = false;
    if (r == 0)
        r = push_layers(store, img, (enum mk_compression)comp, &layers, &changed, err);
    if (r == 0 && changed) {
        /* A new manifest for the compressed layers; the local image stays as it is. */
        free(mdata);
        mdata = manifest_with_layers(m, layers, img->n_layers);
        mlen = strlen(mdata);
    }
    char digest[MK_DIGEST_SIZE] = "";
    if (r == 0) {
        mk_sha256_buffer(mdata, mlen, digest);
        reg_log(c, "pushing %s to %s/%s", image, c->host, c->repo);
    }
    _cleanup_free_ char *mount_from = r == 0 ? mount_source(img, ref) : NULL;
    for (size_t i = 0; r == 0 && i < img->n_layers; i++)
        r = push_blob(c, store, layers[i].digest, mount_from, err);
    if (r == 0)
        r = push_blob(c, store, img->config_digest, mount_from, err);
    const char *tag = ref->tag ? ref->tag : ref->digest;
    if (r == 0 && !ref->tag && changed)
        r = mk_error_set(err, MK_ERR_INVALID, 0,
                         "pushing by digest needs the image as stored: use --compression-format "
                         "none or a tag");
    if (r == 0)
        r = put_manifest(c, tag, mdata, mlen, mt, digest, err);
    layerstore_layer_descs_free(layers, img->n_layers);
    registry_ref_free(ref);
    if (r < 0)
        return mk_error_set_where(err, target);
    reg_log(c, "pushed %s", digest);
    if (ret_digest)
        memcpy(ret_digest, digest, MK_DIGEST_SIZE);
    return 0;
}
