/* registry/manifest.c - manifest and index documents: media types, schema 1 refusal, platform
 * selection, descriptor checks. Pure code over bytes (the manifest fuzz target drives it). */
#include <jansson.h>
#include <string.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

#define INDEX_MAX_ENTRIES 1024
#define MANIFEST_MAX_LAYERS 4096

void reg_manifest_release(struct reg_manifest *m)
{
    free(m->data);
    free(m->media_type);
    json_decref(m->json);
    memset(m, 0, sizeof(*m));
}

int reg_manifest_load(char *data, size_t len, const char *content_type, const char *ref,
                      struct reg_manifest *ret, struct mk_error **err)
{
    struct reg_manifest m = {0};
    m.data = data;
    m.len = len;
    mk_sha256_buffer(m.data, m.len, m.digest);
    json_error_t jerr;
    m.json = json_loadb(m.data, m.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(m.json)) {
        mk_error_set(err, MK_ERR_PARSE, 0, "manifest %s: bad JSON: %s", ref,
                     m.json ? "not an object" : jerr.text);
        reg_manifest_release(&m);
        return -1;
    }
    _cleanup_free_ char *ctype = content_type ? mk_xstrdup(content_type) : NULL;
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
        reg_manifest_release(&m);
        return -1;
    }
    /* An OCI document without mediaType says what it is by its members. */
    if (!mt || !*mt)
        mt = json_is_array(json_object_get(m.json, "manifests")) ? MK_MEDIA_OCI_INDEX
                                                                 : MK_MEDIA_OCI_MANIFEST;
    m.media_type = mk_xstrdup(mt);
    *ret = m;
    return 0;
}

bool reg_is_index(const char *mt)
{
    return strcmp(mt, MK_MEDIA_OCI_INDEX) == 0 || strcmp(mt, REG_MEDIA_DOCKER_LIST) == 0;
}

bool reg_is_image_manifest(const char *mt)
{
    return strcmp(mt, MK_MEDIA_OCI_MANIFEST) == 0 || strcmp(mt, REG_MEDIA_DOCKER_MANIFEST) == 0;
}

/* The digest of the index entry for the platform. */
int reg_index_select(const struct reg_manifest *idx, const struct mk_platform *want,
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
        /* Both sides normalized: arm64/v8 is arm64, arm is arm/v7. */
        struct mk_platform have;
        mk_platform_set(&have, os, arch, variant);
        if (strcmp(have.os, want->os) != 0 || strcmp(have.arch, want->arch) != 0)
            continue;
        if (want->variant[0] && strcmp(have.variant, want->variant) != 0)
            continue;
        if (mt && !reg_is_image_manifest(mt))
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

static int desc_get(json_t *d, struct reg_blob_desc *ret)
{
    const char *dg = json_string_value(json_object_get(d, "digest"));
    json_t *s = json_object_get(d, "size");
    if (!dg || !mk_digest_valid(dg) || !json_is_integer(s) || json_integer_value(s) < 0)
        return -1;
    ret->digest = dg;
    ret->size = (uint64_t)json_integer_value(s);
    return 0;
}

int reg_manifest_blobs(const struct reg_manifest *m, struct reg_blob_desc *ret_config,
                       struct reg_blob_desc **ret_layers, size_t *ret_n, struct mk_error **err)
{
    struct reg_blob_desc config;
    if (desc_get(json_object_get(m->json, "config"), &config) < 0)
        return mk_error_set_at(err, MK_ERR_PARSE, m->digest, "bad config descriptor");
    if (config.size > REG_JSON_MAX)
        return mk_error_set_at(err, MK_ERR_INVALID, m->digest, "image config too large");
    json_t *layers = json_object_get(m->json, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > MANIFEST_MAX_LAYERS)
        return mk_error_set_at(err, MK_ERR_PARSE, m->digest, "bad layer list");
    struct reg_blob_desc *out = mk_xcalloc(json_array_size(layers) + 1, sizeof(*out));
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        if (desc_get(l, &out[i]) < 0) {
            free(out);
            return mk_error_set_at(err, MK_ERR_PARSE, m->digest, "bad layer descriptor");
        }
        if (mt && !layer_type_ok(mt)) {
            free(out);
            return mk_error_set_at(err, MK_ERR_UNSUPPORTED, m->digest,
                                   "layer %zu has unsupported media type \"%s\"", i + 1, mt);
        }
    }
    *ret_config = config;
    *ret_layers = out;
    *ret_n = json_array_size(layers);
    return 0;
}
