/* layerstore/cache-records.c - the small typed cache records (steps, explain, images,
 * compressed copies, registry blob sources): a header line, then one JSON object.
 *
 * JSON because a step record is what a remote cache exports: the same object goes into the
 * cache manifest's config blob as it is. Unknown members are ignored, so a later format
 * may add some without a version change. */
#include <errno.h>
#include <string.h>

#include "layerstore/internal.h"

/* ---- reading and writing one JSON record ------------------------------------------------ */

static int write_json(struct mk_store *store, enum ls_cache_kind kind, const char *key,
                      json_t *body, struct mk_error **err)
{
    _cleanup_free_ char *json = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (!json)
        MK_BUG("json_dumps failed");
    _cleanup_free_ char *head = ls_cache_header(kind, key);
    _cleanup_free_ char *data = mk_xasprintf("%s%s\n", head, json);
    return ls_cache_write(store, kind, key, data, strlen(data), err);
}

/* The body of a record's bytes: an object, else MK_ERR_PARSE. */
static json_t *parse_body(enum ls_cache_kind kind, const char *key, const char *data, size_t len,
                          struct mk_error **err)
{
    const char *body;
    if (strlen(data) != len || !ls_cache_header_ok(kind, key, data, &body)) {
        mk_error_set(err, MK_ERR_PARSE, 0, "not a %s record of this key and format",
                     ls_cache_dirs[kind]);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        mk_error_set(err, MK_ERR_PARSE, 0, "bad %s record: %s", ls_cache_dirs[kind],
                     j ? "not an object" : je.text);
        return NULL;
    }
    return j;
}

/* A stored record as its JSON body; anything but a whole record of this kind and key is a
 * miss (MK_ERR_NOT_FOUND). */
static json_t *read_json(struct mk_store *store, enum ls_cache_kind kind, const char *key,
                         struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (ls_cache_read(store, kind, key, &data, &len, err) < 0)
        return NULL;
    struct mk_error *e = NULL;
    json_t *j = parse_body(kind, key, data, len, &e);
    if (!j) {
        mk_error_set(err, MK_ERR_NOT_FOUND, 0, "cache record %s: %s", key, e->msg);
        mk_error_free(e);
    }
    return j;
}

/* A member that must be a digest: 0 and out filled, or -1. */
static int get_digest(json_t *o, const char *name, char out[MK_DIGEST_SIZE])
{
    const char *s = json_string_value(json_object_get(o, name));
    if (!s || !mk_digest_valid(s))
        return -1;
    memcpy(out, s, MK_DIGEST_SIZE);
    return 0;
}

static int get_u64(json_t *o, const char *name, uint64_t *ret)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

static char *get_str(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s ? mk_xstrdup(s) : NULL;
}

static int bad(struct mk_error **err, enum ls_cache_kind kind, const char *what)
{
    return mk_error_set(err, MK_ERR_PARSE, 0, "bad %s record: %s", ls_cache_dirs[kind], what);
}

/* ---- steps ------------------------------------------------------------------------------- */

static json_t *history_json(const struct mk_history *h)
{
    json_t *o = json_object();
    if (h->created_by)
        json_object_set_new(o, "created_by", json_string(h->created_by));
    if (h->author)
        json_object_set_new(o, "author", json_string(h->author));
    if (h->comment)
        json_object_set_new(o, "comment", json_string(h->comment));
    if (h->empty_layer)
        json_object_set_new(o, "empty_layer", json_true());
    return o;
}

json_t *ls_step_record_json(const struct mk_step_record *rec, struct mk_error **err)
{
    _cleanup_json_ json_t *o = json_object();
    if (!rec->empty) {
        const struct mk_layer_desc *l = &rec->layer;
        if (!mk_digest_valid(l->digest) || !mk_digest_valid(l->diff_id) ||
            !mk_digest_valid(rec->chain_id))
            return mk_error_set(err, MK_ERR_INVALID, 0, "step record without a valid layer"), NULL;
        json_object_set_new(o, "layer",
                            json_pack("{s:s, s:s, s:s, s:I}", "mediaType",
                                      l->media_type ? l->media_type : MK_MEDIA_OCI_LAYER, "digest",
                                      l->digest, "diffID", l->diff_id, "size",
                                      (json_int_t)l->size));
        json_object_set_new(o, "chainID", json_string(rec->chain_id));
    }
    json_object_set_new(o, "history", history_json(&rec->history));
    json_t *cfg = json_object();
    for (size_t i = 0; i < rec->config.n; i++) {
        const char *eq = strchr(rec->config.v[i], '=');
        _cleanup_free_ char *k = eq ? mk_xstrndup(rec->config.v[i], (size_t)(eq - rec->config.v[i]))
                                    : mk_xstrdup(rec->config.v[i]);
        json_object_set_new(cfg, k, json_string(eq ? eq + 1 : ""));
    }
    json_object_set_new(o, "config", cfg);
    return MK_TAKE_PTR(o);
}

int layerstore_step_record_put(struct mk_store *store, const struct mk_step_record *rec,
                               struct mk_error **err)
{
    _cleanup_json_ json_t *o = ls_step_record_json(rec, err);
    return o ? write_json(store, LS_CACHE_STEPS, rec->key, o, err) : -1;
}

int ls_step_record_from_json(json_t *o, const char *key, struct mk_step_record *ret,
                             struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->key, key, MK_DIGEST_SIZE);
    json_t *layer = json_object_get(o, "layer");
    ret->empty = layer == NULL;
    if (layer && (get_digest(layer, "digest", ret->layer.digest) < 0 ||
                  get_digest(layer, "diffID", ret->layer.diff_id) < 0 ||
                  get_u64(layer, "size", &ret->layer.size) < 0 ||
                  !json_is_string(json_object_get(layer, "mediaType")) ||
                  get_digest(o, "chainID", ret->chain_id) < 0))
        return bad(err, LS_CACHE_STEPS, "incomplete layer");
    json_t *h = json_object_get(o, "history");
    if (!json_is_object(h))
        return bad(err, LS_CACHE_STEPS, "no history entry");
    ret->layer.media_type = layer ? get_str(layer, "mediaType") : NULL;
    ret->history.created_by = get_str(h, "created_by");
    ret->history.author = get_str(h, "author");
    ret->history.comment = get_str(h, "comment");
    ret->history.empty_layer = json_is_true(json_object_get(h, "empty_layer"));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(o, "config"), k, v)
    {
        if (json_is_string(v))
            mk_strv_pushf(&ret->config, "%s=%s", k, json_string_value(v));
    }
    return 0;
}

int layerstore_step_record_get(struct mk_store *store, const char *key, struct mk_step_record *ret,
                               struct mk_error **err)
{
    _cleanup_json_ json_t *o = read_json(store, LS_CACHE_STEPS, key, err);
    if (!o)
        return -1;
    struct mk_error *e = NULL;
    if (ls_step_record_from_json(o, key, ret, &e) < 0) {
        layerstore_step_record_release(ret);
        mk_error_set(err, MK_ERR_NOT_FOUND, 0, "cache record %s: %s", key, e->msg);
        mk_error_free(e);
        return -1;
    }
    return 0;
}

void layerstore_step_record_release(struct mk_step_record *rec)
{
    if (!rec)
        return;
    free(rec->layer.media_type);
    free(rec->history.created);
    free(rec->history.created_by);
    free(rec->history.author);
    free(rec->history.comment);
    mk_strv_release(&rec->config);
    memset(rec, 0, sizeof(*rec));
}

/* ---- explain ----------------------------------------------------------------------------- */

void layerstore_explain_add(struct mk_explain_record *rec, const char *name, const char *digest)
{
    rec->inputs = mk_xreallocarray(rec->inputs, rec->n + 1, sizeof(*rec->inputs));
    rec->inputs[rec->n].name = mk_xstrdup(name);
    snprintf(rec->inputs[rec->n].digest, MK_DIGEST_SIZE, "%s", digest);
    rec->n++;
}

void layerstore_explain_release(struct mk_explain_record *rec)
{
    if (!rec)
        return;
    for (size_t i = 0; i < rec->n; i++)
        free(rec->inputs[i].name);
    free(rec->inputs);
    rec->inputs = NULL;
    rec->n = 0;
}

int layerstore_explain_put(struct mk_store *store, const char *key,
                           const struct mk_explain_record *rec, struct mk_error **err)
{
    _cleanup_json_ json_t *o = json_object();
    json_t *list = json_array();
    for (size_t i = 0; i < rec->n; i++)
        json_array_append_new(list,
                              json_pack("[s, s]", rec->inputs[i].name, rec->inputs[i].digest));
    json_object_set_new(o, "inputs", list);
    return write_json(store, LS_CACHE_EXPLAIN, key, o, err);
}

static int explain_from_json(json_t *o, struct mk_explain_record *ret, struct mk_error **err)
{
    json_t *list = json_object_get(o, "inputs");
    if (!json_is_array(list))
        return bad(err, LS_CACHE_EXPLAIN, "no inputs");
    size_t i;
    json_t *in;
    json_array_foreach(list, i, in)
    {
        const char *name = json_string_value(json_array_get(in, 0));
        const char *digest = json_string_value(json_array_get(in, 1));
        if (!name || !digest || !mk_digest_valid(digest))
            return bad(err, LS_CACHE_EXPLAIN, "bad input");
        if (ret)
            layerstore_explain_add(ret, name, digest);
    }
    return 0;
}

int layerstore_explain_get(struct mk_store *store, const char *key, struct mk_explain_record *ret,
                           struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_json_ json_t *o = read_json(store, LS_CACHE_EXPLAIN, key, err);
    if (!o)
        return -1;
    struct mk_error *e = NULL;
    if (explain_from_json(o, ret, &e) < 0) {
        layerstore_explain_release(ret);
        mk_error_set(err, MK_ERR_NOT_FOUND, 0, "cache record %s: %s", key, e->msg);
        mk_error_free(e);
        return -1;
    }
    return 0;
}

/* ---- images, compressed copies, registry blob sources ----------------------------------- */

int layerstore_image_record_get(struct mk_store *store, const char *key,
                                char ret_manifest[MK_DIGEST_SIZE], struct mk_error **err)
{
    _cleanup_json_ json_t *o = read_json(store, LS_CACHE_IMAGES, key, err);
    if (!o)
        return -1;
    if (get_digest(o, "manifest", ret_manifest) < 0)
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "cache record %s: no manifest", key);
    return 0;
}

int layerstore_image_record_put(struct mk_store *store, const char *key, const char *manifest,
                                struct mk_error **err)
{
    if (!mk_digest_valid(manifest))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid manifest digest");
    _cleanup_json_ json_t *o = json_pack("{s:s}", "manifest", manifest);
    return write_json(store, LS_CACHE_IMAGES, key, o, err);
}

int ls_compressed_get(struct mk_store *store, const char *key, struct ls_compressed_record *ret,
                      struct mk_error **err)
{
    _cleanup_json_ json_t *o = read_json(store, LS_CACHE_COMPRESSED, key, err);
    if (!o)
        return -1;
    if (get_digest(o, "diffID", ret->diff_id) < 0 || get_digest(o, "blob", ret->blob) < 0 ||
        get_u64(o, "size", &ret->size) < 0)
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "cache record %s: incomplete", key);
    return 0;
}

int ls_compressed_put(struct mk_store *store, const char *key,
                      const struct ls_compressed_record *rec, struct mk_error **err)
{
    _cleanup_json_ json_t *o = json_pack("{s:s, s:s, s:I}", "diffID", rec->diff_id, "blob",
                                         rec->blob, "size", (json_int_t)rec->size);
    return write_json(store, LS_CACHE_COMPRESSED, key, o, err);
}

static void blob_source_key(const char *host, const char *digest, char ret[MK_DIGEST_SIZE])
{
    _cleanup_free_ char *k = mk_xasprintf("registry-blob %s %s", host, digest);
    mk_sha256_buffer(k, strlen(k), ret);
}

int layerstore_blob_source_put(struct mk_store *store, const char *host, const char *repo,
                               const char *digest, struct mk_error **err)
{
    char key[MK_DIGEST_SIZE];
    blob_source_key(host, digest, key);
    _cleanup_json_ json_t *o =
        json_pack("{s:s, s:s, s:s}", "host", host, "repository", repo, "digest", digest);
    return write_json(store, LS_CACHE_REGISTRY, key, o, err);
}

char *layerstore_blob_source_get(struct mk_store *store, const char *host, const char *digest)
{
    char key[MK_DIGEST_SIZE];
    blob_source_key(host, digest, key);
    _cleanup_json_ json_t *o = read_json(store, LS_CACHE_REGISTRY, key, NULL);
    const char *h = json_string_value(json_object_get(o, "host"));
    const char *d = json_string_value(json_object_get(o, "digest"));
    if (!h || !d || strcmp(h, host) != 0 || strcmp(d, digest) != 0)
        return NULL;
    return get_str(o, "repository");
}

/* ---- what prune and fsck read ------------------------------------------------------------ */

static int record_refs(enum ls_cache_kind kind, const char *key, json_t *o,
                       struct ls_cache_refs *ret, struct mk_error **err)
{
    switch (kind) {
    case LS_CACHE_STEPS: {
        struct mk_step_record rec;
        int r = ls_step_record_from_json(o, key, &rec, err);
        if (r == 0 && !rec.empty) {
            memcpy(ret->blob, rec.layer.digest, MK_DIGEST_SIZE);
            memcpy(ret->chain, rec.chain_id, MK_DIGEST_SIZE);
        }
        layerstore_step_record_release(&rec);
        return r;
    }
    case LS_CACHE_EXPLAIN:
        return explain_from_json(o, NULL, err);
    case LS_CACHE_IMAGES:
        return get_digest(o, "manifest", ret->blob) < 0 ? bad(err, kind, "no manifest") : 0;
    case LS_CACHE_COMPRESSED:
        if (get_digest(o, "diffID", ret->layer) < 0 || get_digest(o, "blob", ret->blob) < 0 ||
            get_u64(o, "size", &ret->blob_size) < 0)
            return bad(err, kind, "incomplete");
        return 0;
    case LS_CACHE_REGISTRY: {
        char d[MK_DIGEST_SIZE];
        if (!json_is_string(json_object_get(o, "host")) ||
            !json_is_string(json_object_get(o, "repository")) || get_digest(o, "digest", d) < 0)
            return bad(err, kind, "incomplete");
        return 0;
    }
    default:
        MK_BUG("not a JSON cache kind");
    }
}

int ls_cache_record_refs(enum ls_cache_kind kind, const char *key, const char *data, size_t len,
                         struct ls_cache_refs *ret, struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    if (kind == LS_CACHE_CONTEXT) {
        const char *body;
        if (strlen(data) != len || !ls_cache_header_ok(kind, key, data, &body))
            return mk_error_set(err, MK_ERR_PARSE, 0,
                                "not a context record of this key and format");
        return 0;
    }
    _cleanup_json_ json_t *o = parse_body(kind, key, data, len, err);
    if (!o)
        return -1;
    return record_refs(kind, key, o, ret, err);
}
