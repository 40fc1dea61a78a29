/* registry/cache.c - the remote build cache in a registry (docs/remote-cache.md): the layer
 * blobs, the config blob of step records and the artifact manifest under a tag; reading takes
 * the manifest and the config only, layers one by one when the build needs them. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

MK_DEFINE_CLEANUP(struct mk_ref, mk_ref_free)

MK_DEFINE_CLEANUP(struct reg_client, reg_client_free)

/* A client for ref (credentials as push and pull find them); ret_ref is the parsed ref. */
static int cache_client(const char *name, const struct registry_opts *opts, struct mk_ref **ret_ref,
                        struct reg_client **ret, struct mk_error **err)
{
    if (mk_ref_parse(name, ret_ref, err) < 0)
        return -1;
    return reg_push_client(*ret_ref, opts, ret, err);
}

/* The blob that carries each record's layer: the layer itself, or its compressed copy (made
 * once per distinct layer and cached in the store). *ret: n descs, NULL without compression. */
static int cache_blobs(struct mk_store *store, const struct mk_step_record *recs, size_t n,
                       int compression, struct mk_layer_desc **ret, struct mk_error **err)
{
    *ret = NULL;
    if (compression == MK_COMPRESS_NONE)
        return 0;
    struct mk_layer_desc *layers = mk_xcalloc(n ? n : 1, sizeof(*layers));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!recs[i].empty)
            layers[k++] = recs[i].layer;
    struct mk_layer_desc *packed = NULL;
    int r = layerstore_layers_compress(store, layers, k, (enum mk_compression)compression, 0,
                                       &packed, err);
    free(layers);
    if (r < 0)
        return -1;
    struct mk_layer_desc *blobs = mk_xcalloc(n ? n : 1, sizeof(*blobs));
    for (size_t i = 0, j = 0; i < n; i++)
        if (!recs[i].empty) {
            blobs[i] = packed[j];
            blobs[i].media_type = mk_xstrdup(packed[j++].media_type);
        }
    layerstore_layer_descs_free(packed, k);
    *ret = blobs;
    return 0;
}

/* The config blob of recs, then the manifest under tag. */
static int push_manifest(struct reg_client *c, struct mk_store *store, const char *tag,
                         const struct mk_step_record *recs, const struct mk_layer_desc *blobs,
                         size_t n, struct mk_error **err)
{
    _cleanup_free_ char *config = layerstore_cache_config_json(recs, n, err);
    char cdigest[MK_DIGEST_SIZE], mdigest[MK_DIGEST_SIZE];
    /* The config goes up from the store like any blob (prune drops it later). */
    if (!config || layerstore_blob_put_buf(store, config, strlen(config), cdigest, err) < 0 ||
        reg_push_blob(c, store, cdigest, NULL, err) < 0)
        return -1;
    _cleanup_free_ char *manifest =
        layerstore_cache_manifest_json(recs, blobs, n, cdigest, strlen(config));
    mk_sha256_buffer(manifest, strlen(manifest), mdigest);
    /* The tag moves last: a reader sees the old cache or the whole new one. */
    return reg_put_manifest(c, tag, manifest, strlen(manifest), MK_MEDIA_OCI_MANIFEST, mdigest,
                            err);
}

int registry_cache_push(struct mk_store *store, const char *name, const struct registry_opts *opts,
                        const struct mk_step_record *recs, size_t n, int compression,
                        struct mk_error **err)
{
    _cleanup_(mk_ref_freep) struct mk_ref *ref = NULL;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    if (cache_client(name, opts, &ref, &c, err) < 0)
        return -1;
    if (!ref->tag)
        return mk_error_set(err, MK_ERR_USAGE, 0, "a cache ref needs a tag");
    struct mk_layer_desc *blobs = NULL;
    if (cache_blobs(store, recs, n, compression, &blobs, err) < 0)
        return -1;
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++)
        if (!recs[i].empty)
            r = reg_push_blob(c, store, blobs ? blobs[i].digest : recs[i].layer.digest, NULL, err);
    if (r == 0)
        r = push_manifest(c, store, ref->tag, recs, blobs, n, err);
    if (blobs)
        for (size_t i = 0; i < n; i++)
            free(blobs[i].media_type);
    free(blobs);
    return r;
}

/* GET of a small document: a manifest (by tag) or a blob (by digest, verified). */
static int get_small(struct reg_client *c, const char *kind, const char *what, const char *accept,
                     char **ret, size_t *ret_len, struct mk_error **err)
{
    _cleanup_free_ char *path = reg_path(c, kind, what);
    struct reg_req req = {.method = "GET",
                          .url = path,
                          .accept = accept,
                          .fd = -1,
                          .body_max = REG_JSON_MAX,
                          .follow = true};
    struct reg_resp resp = {0};
    int r = reg_request(c, &req, &resp, err);
    if (r == 0 && resp.status != 200) {
        _cleanup_free_ char *msg = mk_xasprintf("fetching %s", what);
        r = reg_status_error(&resp, msg, err);
    }
    if (r == 0) {
        *ret_len = resp.body.len;
        *ret = mk_buf_detach(&resp.body);
    }
    reg_resp_release(&resp);
    return r;
}

/* A layer descriptor's media type (what a push of a lazy layer names), if a known one. */
static void blob_media_type(struct mk_layer_desc *d, json_t *l)
{
    const char *mt = json_string_value(json_object_get(l, "mediaType"));
    if (mt && strlen(mt) < 256 && strncmp(mt, "application/", 12) == 0)
        d->media_type = mk_xstrdup(mt);
}

/* An image with an inline cache: its records from the annotation, and its layers (as the
 * registry holds them) with their diff IDs from its config, for the fetches. */
static int inline_records(struct reg_client *c, json_t *m, const char *records,
                          struct mk_step_record **ret, size_t *ret_n,
                          struct mk_layer_desc **ret_blobs, size_t *ret_nblobs,
                          struct mk_error **err)
{
    const char *cdigest =
        json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    _cleanup_free_ char *cdata = NULL;
    size_t clen = 0;
    char d[MK_DIGEST_SIZE];
    if (!cdigest || !mk_digest_valid(cdigest))
        return mk_error_set(err, MK_ERR_PARSE, 0, "an image without a valid config digest");
    if (get_small(c, "blobs", cdigest, NULL, &cdata, &clen, err) < 0)
        return -1;
    mk_sha256_buffer(cdata, clen, d);
    if (strcmp(d, cdigest) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "blob %s does not match its digest", cdigest);
    _cleanup_(json_decrefp) json_t *cfg = json_loadb(cdata, clen, 0, NULL);
    json_t *diff_ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    json_t *layers = json_object_get(m, "layers");
    size_t n = json_array_size(layers);
    if (!json_is_array(diff_ids) || json_array_size(diff_ids) != n)
        return mk_error_set(err, MK_ERR_PARSE, 0, "the image's config and layers disagree");
    struct mk_layer_desc *blobs = mk_xcalloc(n ? n : 1, sizeof(*blobs));
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(layers, i);
        const char *dg = json_string_value(json_object_get(l, "digest"));
        const char *di = json_string_value(json_array_get(diff_ids, i));
        json_int_t size = json_integer_value(json_object_get(l, "size"));
        if (!dg || !di || !mk_digest_valid(dg) || !mk_digest_valid(di) || size < 0) {
            layerstore_layer_descs_free(blobs, i);
            return mk_error_set(err, MK_ERR_PARSE, 0, "a layer without a valid digest");
        }
        memcpy(blobs[i].digest, dg, MK_DIGEST_SIZE);
        memcpy(blobs[i].diff_id, di, MK_DIGEST_SIZE);
        blobs[i].size = (uint64_t)size;
        blob_media_type(&blobs[i], l);
    }
    if (layerstore_cache_config_parse(records, strlen(records), ret, ret_n, err) < 0) {
        layerstore_layer_descs_free(blobs, n);
        return -1;
    }
    *ret_blobs = blobs;
    *ret_nblobs = n;
    return 0;
}

/* The layers of a cache manifest whose descriptor names its diff ID (all that mkimg writes):
 * a compressed blob is found by the diff ID of the record it carries. */
static int annotated_blobs(json_t *m, struct mk_layer_desc **ret, size_t *ret_n,
                           struct mk_error **err)
{
    json_t *layers = json_object_get(m, "layers");
    size_t n = json_array_size(layers), k = 0;
    struct mk_layer_desc *blobs = mk_xcalloc(n ? n : 1, sizeof(*blobs));
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(layers, i);
        const char *dg = json_string_value(json_object_get(l, "digest"));
        const char *di = json_string_value(
            json_object_get(json_object_get(l, "annotations"), MK_ANNOTATION_CACHE_DIFF_ID));
        json_int_t size = json_integer_value(json_object_get(l, "size"));
        if (!di)
            continue;
        if (!dg || !mk_digest_valid(dg) || !mk_digest_valid(di) || size < 0) {
            layerstore_layer_descs_free(blobs, k);
            return mk_error_set(err, MK_ERR_PARSE, 0, "a cache layer without a valid digest");
        }
        memcpy(blobs[k].digest, dg, MK_DIGEST_SIZE);
        memcpy(blobs[k].diff_id, di, MK_DIGEST_SIZE);
        blobs[k].size = (uint64_t)size;
        blob_media_type(&blobs[k++], l);
    }
    *ret = blobs;
    *ret_n = k;
    return 0;
}

int registry_cache_records(const char *name, const struct registry_opts *opts,
                           struct mk_step_record **ret, size_t *ret_n,
                           struct mk_layer_desc **ret_blobs, size_t *ret_nblobs,
                           struct mk_error **err)
{
    *ret_blobs = NULL;
    *ret_nblobs = 0;
    _cleanup_(mk_ref_freep) struct mk_ref *ref = NULL;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    if (cache_client(name, opts, &ref, &c, err) < 0)
        return -1;
    _cleanup_free_ char *mdata = NULL, *cdata = NULL;
    size_t mlen = 0, clen = 0;
    if (get_small(c, "manifests", ref->digest ? ref->digest : ref->tag, MK_MEDIA_OCI_MANIFEST,
                  &mdata, &mlen, err) < 0)
        return -1;
    char d[MK_DIGEST_SIZE];
    mk_sha256_buffer(mdata, mlen, d);
    if (ref->digest && strcmp(d, ref->digest) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "manifest %s: content digest is %s", ref->digest,
                            d);
    _cleanup_(json_decrefp) json_t *m = json_loadb(mdata, mlen, 0, NULL);
    const char *at = json_string_value(json_object_get(m, "artifactType"));
    json_t *cfg = json_object_get(m, "config");
    const char *cmt = json_string_value(json_object_get(cfg, "mediaType"));
    const char *cdigest = json_string_value(json_object_get(cfg, "digest"));
    const char *in = json_string_value(
        json_object_get(json_object_get(m, "annotations"), MK_ANNOTATION_CACHE_INLINE));
    if ((!at || strcmp(at, MK_MEDIA_CACHE_ARTIFACT) != 0) && in)
        return inline_records(c, m, in, ret, ret_n, ret_blobs, ret_nblobs, err);
    if (!at || strcmp(at, MK_MEDIA_CACHE_ARTIFACT) != 0 || !cmt ||
        strcmp(cmt, MK_MEDIA_CACHE_CONFIG) != 0 || !cdigest || !mk_digest_valid(cdigest))
        return mk_error_set(err, MK_ERR_PARSE, 0,
                            "%s is neither a %s manifest nor an image with "
                            "an inline cache",
                            name, MK_MEDIA_CACHE_ARTIFACT);
    if (get_small(c, "blobs", cdigest, NULL, &cdata, &clen, err) < 0)
        return -1;
    mk_sha256_buffer(cdata, clen, d);
    if (strcmp(d, cdigest) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "blob %s does not match its digest", cdigest);
    if (layerstore_cache_config_parse(cdata, clen, ret, ret_n, err) < 0)
        return -1;
    if (annotated_blobs(m, ret_blobs, ret_nblobs, err) < 0) {
        layerstore_step_records_free(*ret, *ret_n);
        *ret = NULL;
        return -1;
    }
    return 0;
}

int registry_cache_fetch_layer(struct mk_store *store, const char *name,
                               const struct registry_opts *opts, const struct mk_layer_desc *layer,
                               struct mk_error **err)
{
    if (layerstore_blob_exists(store, layer->digest))
        return 0;
    _cleanup_(mk_ref_freep) struct mk_ref *ref = NULL;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    if (cache_client(name, opts, &ref, &c, err) < 0)
        return -1;
    return reg_fetch_blob(c, store, layer->digest, layer->size, err);
}
