/* layerstore/image.c - images: manifest + config blobs, lookup by name, listing, inspect. */
#include <ctype.h>
#include <string.h>

#include "layerstore/internal.h"

#define MANIFEST_MAX_LAYERS 4096
#define MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

void layerstore_image_free(struct mk_image *img)
{
    if (!img)
        return;
    layerstore_config_release(&img->config);
    for (size_t i = 0; i < img->n_layers; i++)
        free(img->layers[i].media_type);
    free(img->layers);
    mk_strv_release(&img->tags);
    free(img);
}
MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)

static int bad_manifest(struct mk_error **err, const char *digest, const char *why)
{
    return mk_error_set_at(err, MK_ERR_PARSE, digest, "bad image manifest: %s", why);
}

static bool get_size(json_t *desc, uint64_t *ret)
{
    json_t *s = json_object_get(desc, "size");
    if (!json_is_integer(s) || json_integer_value(s) < 0)
        return false;
    *ret = (uint64_t)json_integer_value(s);
    return true;
}

/* Parses the manifest blob; ret_config receives its config digest. */
static int manifest_load(struct mk_store *store, const char *digest, json_t **ret,
                         char ret_config[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (layerstore_blob_read(store, digest, LS_JSON_MAX, &data, &len, err) < 0)
        return -1;
    json_error_t jerr;
    _cleanup_json_ json_t *m = json_loadb(data, len, 0, &jerr);
    if (!m)
        return bad_manifest(err, digest, jerr.text);
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    if (mt && strcmp(mt, MK_MEDIA_OCI_MANIFEST) != 0 && strcmp(mt, MEDIA_DOCKER_MANIFEST) != 0)
        return mk_error_set_at(err, MK_ERR_UNSUPPORTED, digest, "unsupported manifest type \"%s\"",
                               mt);
    const char *cd = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    if (!cd || !mk_digest_valid(cd))
        return bad_manifest(err, digest, "no valid config digest");
    json_t *layers = json_object_get(m, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > MANIFEST_MAX_LAYERS)
        return bad_manifest(err, digest, "no layer list");
    memcpy(ret_config, cd, MK_DIGEST_SIZE);
    if (ret_size)
        *ret_size = len;
    *ret = MK_TAKE_PTR(m);
    return 0;
}

static void collect_tags(json_t *idx, const char *manifest, struct mk_strv *tags)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(idx, "manifests"), i, e)
    {
        const char *r = ls_desc_ref(e);
        const char *d = ls_desc_digest(e);
        if (r && d && strcmp(d, manifest) == 0)
            mk_strv_push(tags, r);
    }
}

static int image_load(struct mk_store *store, json_t *idx, const char *manifest,
                      struct mk_image **ret, struct mk_error **err)
{
    _cleanup_json_ json_t *m = NULL;
    char config[MK_DIGEST_SIZE];
    uint64_t msize = 0;
    if (manifest_load(store, manifest, &m, config, &msize, err) < 0)
        return -1;
    _cleanup_(layerstore_image_freep) struct mk_image *img = mk_xcalloc(1, sizeof(*img));
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    img->docker_manifest = mt && strcmp(mt, MEDIA_DOCKER_MANIFEST) == 0;
    img->manifest_size = msize;
    memcpy(img->manifest_digest, manifest, MK_DIGEST_SIZE);
    memcpy(img->config_digest, config, MK_DIGEST_SIZE);
    _cleanup_free_ char *cdata = NULL;
    size_t clen = 0;
    if (layerstore_blob_read(store, config, LS_JSON_MAX, &cdata, &clen, err) < 0 ||
        layerstore_config_parse(cdata, clen, &img->config, err) < 0)
        return mk_error_set_where(err, manifest);
    json_t *layers = json_object_get(m, "layers");
    if (json_array_size(layers) != img->config.diff_ids.n)
        return bad_manifest(err, manifest, "layer count differs from the config's diff_ids");
    img->layers = mk_xcalloc(json_array_size(layers) + 1, sizeof(*img->layers));
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        struct mk_layer_desc *d = &img->layers[img->n_layers++];
        const char *ld = json_string_value(json_object_get(l, "digest"));
        const char *lt = json_string_value(json_object_get(l, "mediaType"));
        if (!ld || !mk_digest_valid(ld) || !get_size(l, &d->size))
            return bad_manifest(err, manifest, "bad layer descriptor");
        memcpy(d->digest, ld, MK_DIGEST_SIZE);
        memcpy(d->diff_id, img->config.diff_ids.v[i], MK_DIGEST_SIZE);
        d->media_type = mk_xstrdup(lt ? lt : MK_MEDIA_OCI_LAYER);
    }
    collect_tags(idx, manifest, &img->tags);
    *ret = MK_TAKE_PTR(img);
    return 0;
}

static bool is_hex_prefix(const char *s)
{
    size_t n = strlen(s);
    if (n < 4 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    return true;
}

/* Finds the manifest whose config digest (or, when full, manifest digest) matches. */
static int find_by_id(struct mk_store *store, json_t *idx, const char *name,
                      char ret_manifest[MK_DIGEST_SIZE], struct mk_error **err)
{
    bool full = mk_digest_valid(name);
    const char *hex = full ? mk_digest_hex(name) : name;
    size_t hn = strlen(hex);
    char found_config[MK_DIGEST_SIZE] = "";
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(idx, "manifests"), i, e)
    {
        const char *d = ls_desc_digest(e);
        if (!d)
            continue;
        if (full && strcmp(d, name) == 0) {
            memcpy(ret_manifest, d, MK_DIGEST_SIZE);
            return 1;
        }
        _cleanup_json_ json_t *m = NULL;
        char config[MK_DIGEST_SIZE];
        if (manifest_load(store, d, &m, config, NULL, NULL) < 0)
            continue;
        if (strncmp(mk_digest_hex(config), hex, hn) != 0)
            continue;
        if (found_config[0] && strcmp(found_config, config) != 0)
            return mk_error_set_at(err, MK_ERR_INVALID, name,
                                   "ambiguous image ID prefix (matches %s and %s)", found_config,
                                   config);
        if (!found_config[0])
            memcpy(ret_manifest, d, MK_DIGEST_SIZE);
        memcpy(found_config, config, MK_DIGEST_SIZE);
    }
    return found_config[0] ? 1 : 0;
}

int layerstore_image_get(struct mk_store *store, const char *name, struct mk_image **ret,
                         struct mk_error **err)
{
    return ls_image_get(store, name, NULL, ret, err);
}

int ls_image_get(struct mk_store *store, const char *name, const struct mk_platform *platform,
                 struct mk_image **ret, struct mk_error **err)
{
    _cleanup_json_ json_t *idx = NULL;
    if (ls_index_load(store, &idx, err) < 0)
        return -1;
    char manifest[MK_DIGEST_SIZE] = "";
    if (mk_digest_valid(name)) {
        int r = find_by_id(store, idx, name, manifest, err);
        if (r < 0)
            return -1;
        /* An untagged manifest blob (e.g. just written by a build) is found by digest too. */
        if (r == 0 && layerstore_blob_exists(store, name)) {
            _cleanup_json_ json_t *m = NULL;
            char config[MK_DIGEST_SIZE];
            if (manifest_load(store, name, &m, config, NULL, NULL) == 0)
                memcpy(manifest, name, MK_DIGEST_SIZE);
        }
    } else {
        _cleanup_free_ char *ref = mk_ref_local_name(name, NULL);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(idx, "manifests"), i, e)
        {
            const char *r = ls_desc_ref(e);
            const char *d = ls_desc_digest(e);
            if (ref && r && d && strcmp(r, ref) == 0) {
                memcpy(manifest, d, MK_DIGEST_SIZE);
                break;
            }
        }
        /* name@digest names content: any manifest with that digest will do. */
        const char *at = ref ? strchr(ref, '@') : NULL;
        if (!manifest[0] && at && find_by_id(store, idx, at + 1, manifest, err) < 0)
            return -1;
        if (!manifest[0] && is_hex_prefix(name) && find_by_id(store, idx, name, manifest, err) < 0)
            return -1;
    }
    if (!manifest[0])
        return mk_error_set_at(err, MK_ERR_NOT_FOUND, name, "image not known");
    if (ls_index_select(store, manifest, platform, manifest, err) < 0)
        return mk_error_set_where(err, name);
    return image_load(store, idx, manifest, ret, err);
}

int layerstore_image_write(struct mk_store *store, const struct mk_image_config *cfg,
                           const struct mk_layer_desc *layers, size_t n_layers,
                           struct mk_image **ret, struct mk_error **err)
{
    return layerstore_image_write_annotated(store, cfg, layers, n_layers, NULL, ret, err);
}

int layerstore_image_write_annotated(struct mk_store *store, const struct mk_image_config *cfg,
                                     const struct mk_layer_desc *layers, size_t n_layers,
                                     const struct mk_strv *annotations, struct mk_image **ret,
                                     struct mk_error **err)
{
    if (cfg->diff_ids.n != n_layers)
        return mk_error_set(err, MK_ERR_INVALID, 0,
                            "image config lists %zu layers but the image has %zu", cfg->diff_ids.n,
                            n_layers);
    for (size_t i = 0; i < n_layers; i++)
        if (strcmp(cfg->diff_ids.v[i], layers[i].diff_id) != 0)
            return mk_error_set(err, MK_ERR_INVALID, 0,
                                "layer %zu: diff_id %s differs from the config's %s", i + 1,
                                layers[i].diff_id, cfg->diff_ids.v[i]);
    _cleanup_free_ char *cjson = layerstore_config_serialize(cfg);
    char config[MK_DIGEST_SIZE];
    if (layerstore_blob_put_buf(store, cjson, strlen(cjson), config, err) < 0)
        return mk_error_wrap(err, "writing the image config");
    _cleanup_json_ json_t *m = json_object();
    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(MK_MEDIA_OCI_MANIFEST));
    json_object_set_new(m, "config",
                        json_pack("{s:s, s:s, s:I}", "mediaType", MK_MEDIA_OCI_CONFIG, "digest",
                                  config, "size", (json_int_t)strlen(cjson)));
    json_t *jl = json_array();
    for (size_t i = 0; i < n_layers; i++)
        json_array_append_new(
            jl, json_pack("{s:s, s:s, s:I}", "mediaType",
                          layers[i].media_type ? layers[i].media_type : MK_MEDIA_OCI_LAYER,
                          "digest", layers[i].digest, "size", (json_int_t)layers[i].size));
    json_object_set_new(m, "layers", jl);
    if (annotations && annotations->n) {
        json_t *ja = json_object();
        for (size_t i = 0; i < annotations->n; i++) {
            const char *eq = strchr(annotations->v[i], '=');
            if (!eq)
                continue;
            _cleanup_free_ char *k =
                mk_xstrndup(annotations->v[i], (size_t)(eq - annotations->v[i]));
            json_object_set_new(ja, k, json_string(eq + 1));
        }
        json_object_set_new(m, "annotations", ja);
    }
    _cleanup_free_ char *mjson = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!mjson)
        MK_BUG("json_dumps failed");
    char manifest[MK_DIGEST_SIZE];
    if (layerstore_blob_put_buf(store, mjson, strlen(mjson), manifest, err) < 0)
        return mk_error_wrap(err, "writing the image manifest");
    if (!ret)
        return 0;
    struct mk_image *img = mk_xcalloc(1, sizeof(*img));
    memcpy(img->manifest_digest, manifest, MK_DIGEST_SIZE);
    memcpy(img->config_digest, config, MK_DIGEST_SIZE);
    img->manifest_size = strlen(mjson);
    layerstore_config_copy(&img->config, cfg);
    img->layers = mk_xcalloc(n_layers + 1, sizeof(*img->layers));
    for (size_t i = 0; i < n_layers; i++) {
        img->layers[i] = layers[i];
        img->layers[i].media_type =
            mk_xstrdup(layers[i].media_type ? layers[i].media_type : MK_MEDIA_OCI_LAYER);
    }
    img->n_layers = n_layers;
    *ret = img;
    return 0;
}

/* One listing row for manifest d under ref; platform "" when unreadable. */
static void list_entry(struct mk_store *store, json_t *idx, const char *ref, const char *d,
                       struct mk_image_entry *en)
{
    en->ref = ref ? mk_xstrdup(ref) : NULL;
    memcpy(en->manifest_digest, d, MK_DIGEST_SIZE);
    /* A broken or foreign entry still lists, with what could be read. */
    _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
    if (image_load(store, idx, d, &img, NULL) < 0)
        return;
    memcpy(en->config_digest, img->config_digest, MK_DIGEST_SIZE);
    for (size_t l = 0; l < img->n_layers; l++)
        en->size += img->layers[l].size;
    en->created = img->config.created ? mk_xstrdup(img->config.created) : NULL;
    struct mk_platform p;
    layerstore_config_platform(&img->config, &p);
    mk_platform_format(&p, en->platform);
}

int layerstore_list(struct mk_store *store, struct mk_image_entry **ret, size_t *ret_n,
                    struct mk_error **err)
{
    _cleanup_json_ json_t *idx = NULL;
    if (ls_index_load(store, &idx, err) < 0)
        return -1;
    json_t *list = json_object_get(idx, "manifests");
    struct mk_image_entry *out = mk_xcalloc(json_array_size(list) + 1, sizeof(*out));
    size_t n = 0, alloc = json_array_size(list) + 1;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *d = ls_desc_digest(e);
        if (!d)
            continue;
        const char *r = ls_desc_ref(e);
        struct mk_platform_entry *pe = NULL;
        size_t np = 0;
        const char *mt = json_string_value(json_object_get(e, "mediaType"));
        if (r && mt && strcmp(mt, MK_MEDIA_OCI_INDEX) == 0 &&
            layerstore_ref_platforms(store, r, &pe, &np, NULL) == 0 && np > 0) {
            out = mk_xreallocarray(out, alloc += np, sizeof(*out));
            for (size_t k = 0; k < np; k++) {
                memset(&out[n], 0, sizeof(*out));
                list_entry(store, idx, r, pe[k].manifest_digest, &out[n++]);
            }
            layerstore_platform_entries_free(pe);
            continue;
        }
        layerstore_platform_entries_free(pe);
        memset(&out[n], 0, sizeof(*out));
        list_entry(store, idx, r, d, &out[n++]);
    }
    *ret = out;
    *ret_n = n;
    return 0;
}

void layerstore_list_free(struct mk_image_entry *entries, size_t n)
{
    if (!entries)
        return;
    for (size_t i = 0; i < n; i++) {
        free(entries[i].ref);
        free(entries[i].created);
    }
    free(entries);
}

int layerstore_rmi(struct mk_store *store, const char *name, struct mk_error **err)
{
    /* A name holding several platforms names an index: the tag goes, with all of them. */
    if (!mk_digest_valid(name)) {
        _cleanup_free_ char *ref = mk_ref_local_name(name, NULL);
        char d[MK_DIGEST_SIZE];
        if (ref && ls_index_ref_digest(store, ref, d, NULL) == 0)
            return layerstore_untag(store, ref, err);
    }
    _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
    if (layerstore_image_get(store, name, &img, err) < 0)
        return -1;
    _cleanup_free_ char *ref = mk_digest_valid(name) ? NULL : mk_ref_local_name(name, NULL);
    for (size_t i = 0; ref && i < img->tags.n; i++)
        if (strcmp(img->tags.v[i], ref) == 0)
            return layerstore_untag(store, ref, err);
    if (ls_index_remove_manifest(store, img->manifest_digest, err) < 0)
        return mk_error_set_where(err, name);
    return 0;
}

char *layerstore_image_inspect_json(struct mk_store *store, const struct mk_image *img)
{
    (void)store;
    const struct mk_image_config *cfg = &img->config;
    _cleanup_json_ json_t *o = json_object();
    json_object_set_new(o, "Id", json_string(img->config_digest));
    json_object_set_new(o, "Digest", json_string(img->manifest_digest));
    json_object_set_new(o, "RepoTags", ls_strv_json(&img->tags));
    json_object_set_new(o, "Created", cfg->created ? json_string(cfg->created) : json_null());
    json_object_set_new(o, "Author", json_string(cfg->author ? cfg->author : ""));
    json_object_set_new(o, "Architecture", json_string(cfg->architecture ? cfg->architecture : ""));
    if (cfg->variant)
        json_object_set_new(o, "Variant", json_string(cfg->variant));
    json_object_set_new(o, "Os", json_string(cfg->os ? cfg->os : ""));
    json_object_set_new(o, "Config", ls_config_exec_json(cfg));
    json_t *rootfs = json_object();
    json_object_set_new(rootfs, "Type", json_string("layers"));
    json_object_set_new(rootfs, "Layers", ls_strv_json(&cfg->diff_ids));
    json_object_set_new(o, "RootFS", rootfs);
    json_object_set_new(o, "History", ls_history_json(cfg));
    json_t *layers = json_array();
    uint64_t size = 0;
    for (size_t i = 0; i < img->n_layers; i++) {
        json_array_append_new(layers, json_string(img->layers[i].digest));
        size += img->layers[i].size;
    }
    json_object_set_new(o, "Layers", layers);
    json_object_set_new(o, "Size", json_integer((json_int_t)size));
    json_object_set_new(o, "ManifestType", json_string(MK_MEDIA_OCI_MANIFEST));
    char *s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    return s;
}

void layerstore_image_chain_id(const struct mk_image *img, size_t n, char out[MK_DIGEST_SIZE])
{
    out[0] = '\0';
    for (size_t i = 0; i < n && i < img->n_layers; i++) {
        char next[MK_DIGEST_SIZE];
        mk_chain_id(out, img->layers[i].diff_id, next);
        memcpy(out, next, MK_DIGEST_SIZE);
    }
}
