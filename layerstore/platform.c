/* layerstore/platform.c - platforms, and names that hold an image per platform.
 *
 * A name (a ref.name in index.json) points at one image manifest while it holds one
 * platform, as it always did, and at an OCI image index blob once it holds several: the
 * index lists one manifest per platform, in the order they were added, each with its
 * platform (os, architecture, variant) taken from the image's config. The index blob is
 * written with fixed key order and no whitespace, so the same images in the same order give
 * the same index digest whether one build or several `manifest add` made it. */
#include <string.h>

#include "layerstore/internal.h"

MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)
MK_DEFINE_CLEANUP(struct mk_error, mk_error_free)

#define INDEX_MAX_MANIFESTS 256

void layerstore_config_platform(const struct mk_image_config *cfg, struct mk_platform *ret)
{
    mk_platform_set(ret, cfg->os && *cfg->os ? cfg->os : "linux",
                    cfg->architecture && *cfg->architecture ? cfg->architecture : "unknown",
                    cfg->variant);
}

/* The platform object of an index entry; false when it has none. */
static bool desc_platform(json_t *desc, struct mk_platform *ret)
{
    json_t *p = json_object_get(desc, "platform");
    const char *os = json_string_value(json_object_get(p, "os"));
    const char *arch = json_string_value(json_object_get(p, "architecture"));
    const char *variant = json_string_value(json_object_get(p, "variant"));
    if (!os || !arch)
        return false;
    mk_platform_set(ret, os, arch, variant);
    return true;
}

/* Loads blob digest when it is an image index (*ret NULL when it is anything else). */
static int index_blob_load(struct mk_store *store, const char *digest, json_t **ret,
                           struct mk_error **err)
{
    *ret = NULL;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (layerstore_blob_read(store, digest, LS_JSON_MAX, &data, &len, err) < 0)
        return -1;
    _cleanup_json_ json_t *j = json_loadb(data, len, 0, NULL);
    json_t *list = json_object_get(j, "manifests");
    if (!json_is_array(list))
        return 0;
    if (json_array_size(list) > INDEX_MAX_MANIFESTS)
        return mk_error_set_at(err, MK_ERR_PARSE, digest, "image index lists too many manifests");
    *ret = MK_TAKE_PTR(j);
    return 0;
}

static void entries_free(struct mk_platform_entry *e)
{
    free(e);
}

/* The manifests of index blob j as entries (entries without a platform are left out: they
 * are attestations and the like, not images). */
static struct mk_platform_entry *index_entries(json_t *j, size_t *ret_n)
{
    json_t *list = json_object_get(j, "manifests");
    struct mk_platform_entry *out = mk_xcalloc(json_array_size(list) + 1, sizeof(*out));
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *d = ls_desc_digest(e);
        const char *mt = json_string_value(json_object_get(e, "mediaType"));
        json_t *size = json_object_get(e, "size");
        struct mk_platform_entry *en = &out[n];
        if (!d || !desc_platform(e, &en->platform) || !json_is_integer(size) ||
            json_integer_value(size) < 0)
            continue;
        memcpy(en->manifest_digest, d, MK_DIGEST_SIZE);
        en->size = (uint64_t)json_integer_value(size);
        en->docker = mt && strcmp(mt, MK_MEDIA_DOCKER_MANIFEST) == 0;
        n++;
    }
    *ret_n = n;
    return out;
}

int ls_index_select(struct mk_store *store, const char *digest, const struct mk_platform *want,
                    char ret_manifest[MK_DIGEST_SIZE], struct mk_error **err)
{
    _cleanup_json_ json_t *j = NULL;
    if (index_blob_load(store, digest, &j, err) < 0)
        return -1;
    if (!j) {
        memcpy(ret_manifest, digest, MK_DIGEST_SIZE);
        return 0;
    }
    struct mk_platform host;
    if (!want) {
        mk_platform_host(&host);
        want = &host;
    }
    size_t n = 0;
    struct mk_platform_entry *e = index_entries(j, &n);
    struct mk_buf have;
    mk_buf_init(&have, 4096);
    for (size_t i = 0; i < n; i++) {
        if (mk_platform_equal(&e[i].platform, want)) {
            memcpy(ret_manifest, e[i].manifest_digest, MK_DIGEST_SIZE);
            entries_free(e);
            mk_buf_release(&have);
            return 0;
        }
        char p[MK_PLATFORM_MAX];
        mk_platform_format(&e[i].platform, p);
        mk_buf_addf(&have, "%s%s", i ? ", " : "", p);
    }
    char w[MK_PLATFORM_MAX];
    mk_platform_format(want, w);
    mk_error_set(err, MK_ERR_NOT_FOUND, 0, "no image for platform %s (the index has %s)", w,
                 n ? have.data : "none");
    entries_free(e);
    mk_buf_release(&have);
    return -1;
}

/* The entries of what digest is: an index's, or the one image's. */
static int digest_entries(struct mk_store *store, const char *digest, const char *name,
                          struct mk_platform_entry **ret, size_t *ret_n, struct mk_error **err)
{
    _cleanup_json_ json_t *j = NULL;
    if (index_blob_load(store, digest, &j, err) < 0)
        return mk_error_set_where(err, name);
    if (j) {
        *ret = index_entries(j, ret_n);
        return 0;
    }
    _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
    if (layerstore_image_get(store, digest, &img, err) < 0)
        return mk_error_set_where(err, name);
    struct mk_platform_entry *out = mk_xcalloc(1, sizeof(*out));
    layerstore_image_platform_entry(img, out);
    *ret = out;
    *ret_n = 1;
    return 0;
}

int layerstore_ref_platforms(struct mk_store *store, const char *name,
                             struct mk_platform_entry **ret, size_t *ret_n, struct mk_error **err)
{
    _cleanup_free_ char *ref = mk_ref_local_name(name, err);
    if (!ref)
        return -1;
    char digest[MK_DIGEST_SIZE];
    if (ls_index_ref_digest(store, ref, digest, err) < 0)
        return -1;
    return digest_entries(store, digest, name, ret, ret_n, err);
}

void layerstore_platform_entries_free(struct mk_platform_entry *e)
{
    entries_free(e);
}

int layerstore_index_write(struct mk_store *store, const struct mk_platform_entry *e, size_t n,
                           char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                           struct mk_error **err)
{
    _cleanup_json_ json_t *idx = json_object();
    json_object_set_new(idx, "schemaVersion", json_integer(2));
    json_object_set_new(idx, "mediaType", json_string(MK_MEDIA_OCI_INDEX));
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *p =
            json_pack("{s:s, s:s}", "architecture", e[i].platform.arch, "os", e[i].platform.os);
        if (e[i].platform.variant[0])
            json_object_set_new(p, "variant", json_string(e[i].platform.variant));
        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:I, s:o}", "mediaType",
                      e[i].docker ? MK_MEDIA_DOCKER_MANIFEST : MK_MEDIA_OCI_MANIFEST, "digest",
                      e[i].manifest_digest, "size", (json_int_t)e[i].size, "platform", p));
    }
    json_object_set_new(idx, "manifests", list);
    _cleanup_free_ char *s = json_dumps(idx, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    if (layerstore_blob_put_buf(store, s, strlen(s), ret_digest, err) < 0)
        return mk_error_wrap(err, "writing the image index");
    if (ret_size)
        *ret_size = strlen(s);
    return 0;
}

/* Points ref at e (see layerstore_tag_entries); with expect, only while ref still names
 * expect ("": nothing), else returns 1 and changes nothing. */
static int tag_entries(struct mk_store *store, const struct mk_platform_entry *e, size_t n,
                       const char *ref, bool index_always, const char *expect,
                       char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < i; k++)
            if (mk_platform_equal(&e[i].platform, &e[k].platform)) {
                char p[MK_PLATFORM_MAX];
                mk_platform_format(&e[i].platform, p);
                return mk_error_set_at(err, MK_ERR_INVALID, ref, "two images for platform %s", p);
            }
    _cleanup_free_ char *name = mk_ref_local_name(ref, err);
    if (!name)
        return -1;
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
    const char *media;
    if (n == 1 && !index_always) {
        memcpy(digest, e[0].manifest_digest, MK_DIGEST_SIZE);
        size = e[0].size;
        media = e[0].docker ? MK_MEDIA_DOCKER_MANIFEST : MK_MEDIA_OCI_MANIFEST;
    } else {
        if (layerstore_index_write(store, e, n, digest, &size, err) < 0)
            return -1;
        media = MK_MEDIA_OCI_INDEX;
    }
    int r = ls_index_tag_desc(store, name, media, digest, size, expect, err);
    if (r == 0 && ret_digest)
        memcpy(ret_digest, digest, MK_DIGEST_SIZE);
    return r;
}

int layerstore_tag_entries(struct mk_store *store, const struct mk_platform_entry *e, size_t n,
                           const char *ref, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    if (n == 0)
        MK_BUG("tagging an empty list of images");
    return tag_entries(store, e, n, ref, false, NULL, ret_digest, err);
}

int layerstore_tag_index(struct mk_store *store, const struct mk_platform_entry *e, size_t n,
                         const char *ref, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    return tag_entries(store, e, n, ref, true, NULL, ret_digest, err);
}

bool layerstore_ref_is_index(struct mk_store *store, const char *name)
{
    _cleanup_free_ char *ref = mk_ref_local_name(name, NULL);
    char digest[MK_DIGEST_SIZE];
    if (!ref || ls_index_ref_digest(store, ref, digest, NULL) < 0)
        return false;
    _cleanup_json_ json_t *j = NULL;
    return index_blob_load(store, digest, &j, NULL) == 0 && j;
}

void layerstore_image_platform_entry(const struct mk_image *img, struct mk_platform_entry *ret)
{
    memset(ret, 0, sizeof(*ret));
    layerstore_config_platform(&img->config, &ret->platform);
    memcpy(ret->manifest_digest, img->manifest_digest, MK_DIGEST_SIZE);
    ret->size = img->manifest_size;
    ret->docker = img->docker_manifest;
}

/* Read, modify, and write only if nobody moved the name meanwhile (two `pull --platform` or
 * `import --platform` of one name at once keep both); else read again. */
#define ADD_PLATFORM_ATTEMPTS 100

static int add_platform(struct mk_store *store, const struct mk_image *img, const char *ref,
                        bool index_always, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    _cleanup_free_ char *name = mk_ref_local_name(ref, err);
    if (!name)
        return -1;
    struct mk_platform_entry add;
    layerstore_image_platform_entry(img, &add);
    for (int attempt = 0; attempt < ADD_PLATFORM_ATTEMPTS; attempt++) {
        char cur[MK_DIGEST_SIZE] = "";
        struct mk_platform_entry *e = NULL;
        size_t n = 0;
        _cleanup_json_ json_t *j = NULL;
        if (ls_index_ref_digest(store, name, cur, NULL) == 0 &&
            (index_blob_load(store, cur, &j, err) < 0 ||
             digest_entries(store, cur, ref, &e, &n, err) < 0))
            return -1;
        e = mk_xreallocarray(e, n + 1, sizeof(*e));
        size_t i = 0;
        while (i < n && !mk_platform_equal(&e[i].platform, &add.platform))
            i++;
        e[i] = add;
        if (i == n)
            n++;
        int r = tag_entries(store, e, n, name, index_always || j, cur, ret_digest, err);
        entries_free(e);
        if (r <= 0)
            return r;
    }
    return mk_error_set_at(err, MK_ERR_FAILED, ref, "the name kept changing while adding to it");
}

int layerstore_tag_add_platform(struct mk_store *store, const struct mk_image *img, const char *ref,
                                char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    return add_platform(store, img, ref, false, ret_digest, err);
}

int layerstore_manifest_add(struct mk_store *store, const struct mk_image *img, const char *list,
                            char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    return add_platform(store, img, list, true, ret_digest, err);
}

int layerstore_image_get_platform(struct mk_store *store, const char *name,
                                  const struct mk_platform *platform, struct mk_image **ret,
                                  struct mk_error **err)
{
    _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
    if (ls_image_get(store, name, platform, &img, err) < 0)
        return -1;
    if (platform) {
        struct mk_platform have;
        layerstore_config_platform(&img->config, &have);
        if (!mk_platform_equal(&have, platform)) {
            char w[MK_PLATFORM_MAX], h[MK_PLATFORM_MAX];
            mk_platform_format(platform, w);
            mk_platform_format(&have, h);
            return mk_error_set_at(err, MK_ERR_NOT_FOUND, name,
                                   "no image for platform %s (the image is %s)", w, h);
        }
    }
    *ret = MK_TAKE_PTR(img);
    return 0;
}
