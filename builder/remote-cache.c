/* builder/remote-cache.c - --cache-from and --cache-to (docs/remote-cache.md): step records
 * imported from cache sources decide hits after the local cache missed; their layers are
 * fetched only when the build needs them; the records of the steps a build went through are
 * exported with their layers. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/internal.h"
#include "builder/rooms.h"
#include "common/fsutil.h"

struct rc_source {
    char *spec; /* as given, for messages */
    char *dir;  /* type=local: the OCI layout; type=registry: the ref */
    bool registry;
    struct mk_step_record *recs; /* sorted by key */
    size_t n;
    struct mk_layer_desc *blobs; /* an image's inline cache: its layers as the registry has them */
    size_t n_blobs;
    size_t index; /* in opts->cache_from */
};

struct rc_dest {
    bool cache_mounts; /* cache-mounts=true: the RUN cache mounts go along */
    char *spec;
    char *dir; /* or the ref, as for a source; NULL for type=inline */
    bool registry;
    bool max;
    bool ignore_error;
    int compression; /* enum mk_compression of the layers a registry cache pushes */
};

/* A hit from a source whose layer is not in the store yet. */
struct rc_pending {
    char parent[MK_DIGEST_SIZE]; /* chain it goes on */
    char *snapshot;              /* the lowerdir the stage got for it */
    const struct mk_step_record *rec;
    const struct rc_source *src;
    bool fetched;
};

struct rc_used {
    char key[MK_DIGEST_SIZE];
    size_t stage;
};

/* A RUN --mount=type=cache this build used: its id digest and data dir. */
struct rc_mount {
    char id[MK_DIGEST_SIZE];
    char *dir;
};

struct rcache {
    struct rc_source *src;
    size_t n_src;
    struct rc_dest *dst;
    size_t n_dst;
    struct rc_pending *pending;
    size_t n_pending;
    struct rc_used *used;
    size_t n_used;
    struct rc_mount *mounts;
    size_t n_mounts;
    bool export_mounts;
    /* A source whose layer could not be fetched: its index and what went wrong. */
    int broken;
    char *broken_msg;
};

static void warn(struct build *b, const char *spec, const char *what)
{
    _cleanup_free_ char *line =
        mk_xasprintf("mkimg: warning: cache source \"%s\": %s\n", spec, what);
    mk_write_all(b->opts->log_fd, line, strlen(line), NULL);
}

static int cmp_record(const void *a, const void *c)
{
    return strcmp(((const struct mk_step_record *)a)->key, ((const struct mk_step_record *)c)->key);
}

/* What a --cache-from/--cache-to spec says. */
struct rc_spec {
    char *loc; /* src=/dest= DIR, or ref= */
    bool registry, max, ignore_error, cache_mounts;
    int compression;
};

/* Every key of kv is one of known (NULL-terminated). */
static int check_keys(const char *flag, const char *spec, const struct mk_strv *kv,
                      const char *const *known, struct mk_error **err)
{
    for (size_t i = 0; i < kv->n; i++) {
        size_t kl = (size_t)(strchr(kv->v[i], '=') - kv->v[i]);
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok |= strlen(*k) == kl && strncmp(*k, kv->v[i], kl) == 0;
        if (!ok)
            return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": unknown option \"%.*s\"", flag,
                                spec, (int)kl, kv->v[i]);
    }
    return 0;
}

/* "type=local,src=DIR", "type=registry,ref=REF,mode=max" (BuildKit's syntax): MK_ERR_USAGE
 * for anything else. */
static int parse_spec(const char *flag, const char *spec, bool to, struct rc_spec *ret,
                      struct mk_error **err)
{
    _cleanup_(mk_strv_release) struct mk_strv kv = MK_STRV_INIT;
    split_kv(spec, &kv);
    const char *type = mk_strv_env_get(&kv, "type");
    const char *mode = mk_strv_env_get(&kv, "mode");
    const char *ign = mk_strv_env_get(&kv, "ignore-error");
    const char *cm = mk_strv_env_get(&kv, "cache-mounts");
    const char *comp = mk_strv_env_get(&kv, "compression");
    bool reg = type && strcmp(type, "registry") == 0;
    if (to && type && strcmp(type, "inline") == 0 && kv.n == 1) {
        memset(ret, 0, sizeof(*ret));
        return 0;
    }
    if (!to && !strchr(spec, '=')) {
        /* A bare --cache-from IMAGE: type=registry,ref=IMAGE, as BuildKit takes it. */
        *ret = (struct rc_spec){.loc = mk_xstrdup(spec), .registry = true};
        return 0;
    }
    if (!type || (!reg && strcmp(type, "local") != 0))
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": type= takes local, registry%s", flag,
                            spec, to ? " or inline (alone)" : "");
    const char *key = reg ? "ref" : to ? "dest" : "src";
    const char *loc = mk_strv_env_get(&kv, key);
    if (!loc || !*loc)
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": needs %s=%s", flag, spec, key,
                            reg ? "HOST/REPO:TAG" : "DIR");
    if (mode && strcmp(mode, "min") != 0 && strcmp(mode, "max") != 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": mode= takes min or max", flag, spec);
    if ((ign && strcmp(ign, "true") != 0 && strcmp(ign, "false") != 0) ||
        (cm && strcmp(cm, "true") != 0 && strcmp(cm, "false") != 0))
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": %s= takes true or false", flag, spec,
                            cm && strcmp(cm, "true") != 0 && strcmp(cm, "false") != 0
                                ? "cache-mounts"
                                : "ignore-error");
    /* compression= (gzip, zstd, uncompressed: BuildKit's names) is for what goes to a
     * registry; a local cache keeps the store's plain tars. */
    int c = !comp                               ? MK_COMPRESS_NONE
            : strcmp(comp, "uncompressed") == 0 ? MK_COMPRESS_NONE
                                                : layerstore_compression_parse(comp);
    if (c < 0 || (comp && !reg))
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": compression= takes %s", flag, spec,
                            reg ? "gzip, zstd or uncompressed" : "nothing with type=local");
    static const char *const known_to[] = {"type",         "dest",         "ref",         "mode",
                                           "ignore-error", "cache-mounts", "compression", NULL};
    static const char *const known_from[] = {"type", "src", "ref", NULL};
    if (check_keys(flag, spec, &kv, to ? known_to : known_from, err) < 0)
        return -1;
    ret->loc = mk_xstrdup(loc);
    ret->registry = reg;
    ret->max = mode && strcmp(mode, "max") == 0;
    ret->ignore_error = ign && strcmp(ign, "true") == 0;
    ret->cache_mounts = cm && strcmp(cm, "true") == 0;
    ret->compression = c;
    return 0;
}

/* A source's records: from its layout or its registry. */
static int read_source(struct build *b, struct rc_source *s, struct mk_error **err)
{
    if (s->registry)
        return registry_cache_records(s->dir, b->opts->registry, &s->recs, &s->n, &s->blobs,
                                      &s->n_blobs, err);
    return layerstore_cache_layout_read(s->dir, &s->recs, &s->n, err);
}

int rcache_open(struct build *b, uint64_t skip, struct mk_error **err)
{
    const struct mk_build_opts *o = b->opts;
    if (o->cache_from.n == 0 && o->cache_to.n == 0)
        return 0;
    struct rcache *rc = b->rc = mk_xcalloc(1, sizeof(*rc));
    rc->broken = -1;
    rc->dst = mk_xcalloc(o->cache_to.n + 1, sizeof(*rc->dst));
    for (size_t i = 0; i < o->cache_to.n; i++) {
        struct rc_dest *d = &rc->dst[rc->n_dst];
        struct rc_spec p;
        if (parse_spec("--cache-to", o->cache_to.v[i], true, &p, err) < 0)
            return -1;
        *d = (struct rc_dest){.spec = mk_xstrdup(o->cache_to.v[i]),
                              .dir = p.loc,
                              .registry = p.registry,
                              .max = p.max,
                              .ignore_error = p.ignore_error,
                              .cache_mounts = p.cache_mounts,
                              .compression = p.compression};
        rc->export_mounts |= p.cache_mounts;
        rc->n_dst++;
    }
    rc->src = mk_xcalloc(o->cache_from.n + 1, sizeof(*rc->src));
    for (size_t i = 0; i < o->cache_from.n; i++) {
        struct rc_spec p;
        if (parse_spec("--cache-from", o->cache_from.v[i], false, &p, err) < 0)
            return -1;
        if (i < 64 && (skip & (UINT64_C(1) << i))) {
            free(p.loc);
            continue;
        }
        struct rc_source *s = &rc->src[rc->n_src];
        *s = (struct rc_source){.dir = p.loc, .registry = p.registry, .index = i};
        struct mk_error *e = NULL;
        if (read_source(b, s, &e) < 0) {
            warn(b, o->cache_from.v[i], e->msg);
            mk_error_free(e);
            free(s->dir);
            *s = (struct rc_source){0};
            continue;
        }
        qsort(s->recs, s->n, sizeof(*s->recs), cmp_record);
        s->spec = mk_xstrdup(o->cache_from.v[i]);
        rc->n_src++;
    }
    return 0;
}

void rcache_free(struct rcache *rc)
{
    if (!rc)
        return;
    for (size_t i = 0; i < rc->n_src; i++) {
        free(rc->src[i].spec);
        free(rc->src[i].dir);
        layerstore_step_records_free(rc->src[i].recs, rc->src[i].n);
        layerstore_layer_descs_free(rc->src[i].blobs, rc->src[i].n_blobs);
    }
    for (size_t i = 0; i < rc->n_dst; i++) {
        free(rc->dst[i].spec);
        free(rc->dst[i].dir);
    }
    for (size_t i = 0; i < rc->n_pending; i++)
        free(rc->pending[i].snapshot);
    free(rc->src);
    free(rc->dst);
    free(rc->pending);
    free(rc->used);
    for (size_t i = 0; i < rc->n_mounts; i++)
        free(rc->mounts[i].dir);
    free(rc->mounts);
    free(rc->broken_msg);
    free(rc);
}

void rcache_note(struct build *b, const struct stage *s, const char *key)
{
    struct rcache *rc = b->rc;
    if (!rc || rc->n_dst == 0)
        return;
    for (size_t i = 0; i < rc->n_used; i++)
        if (strcmp(rc->used[i].key, key) == 0)
            return;
    rc->used = mk_xreallocarray(rc->used, rc->n_used + 1, sizeof(*rc->used));
    memcpy(rc->used[rc->n_used].key, key, MK_DIGEST_SIZE);
    rc->used[rc->n_used].stage = s->index;
    rc->n_used++;
}

/* The record of key in a source whose layer (if any) goes on s's chain. */
static const struct mk_step_record *find(struct rcache *rc, const struct stage *s, const char *key,
                                         const struct rc_source **ret_src)
{
    struct mk_step_record probe;
    memcpy(probe.key, key, MK_DIGEST_SIZE);
    for (size_t i = 0; i < rc->n_src; i++) {
        const struct mk_step_record *r =
            bsearch(&probe, rc->src[i].recs, rc->src[i].n, sizeof(probe), cmp_record);
        if (!r)
            continue;
        char expect[MK_DIGEST_SIZE];
        mk_chain_id(s->chain, r->layer.diff_id, expect);
        if (r->empty || strcmp(expect, r->chain_id) == 0) {
            *ret_src = &rc->src[i];
            return r;
        }
    }
    return NULL;
}

const char *rcache_lookup(struct build *b, struct stage *s, const char *key, const char *created_by)
{
    struct rcache *rc = b->rc;
    const struct rc_source *src = NULL;
    const struct mk_step_record *r = rc ? find(rc, s, key, &src) : NULL;
    if (!r)
        return NULL;
    if (r->empty) {
        history(b, s, created_by, true);
        layerstore_step_record_put(b->store, r, NULL);
        return src->spec;
    }
    struct rc_pending p = {.rec = r, .src = src};
    memcpy(p.parent, s->chain, MK_DIGEST_SIZE);
    p.snapshot = layerstore_snapshot_path(b->store, r->chain_id);
    stage_add_layer(s, &r->layer, r->chain_id, p.snapshot);
    history(b, s, created_by, false);
    rc->pending = mk_xreallocarray(rc->pending, rc->n_pending + 1, sizeof(p));
    rc->pending[rc->n_pending++] = p;
    return src->spec;
}

/* The blob a registry source has for a record's layer: an inline cache's image layer or a
 * cache layer (compressed or not) found by diff ID, else the record's own. */
static const struct mk_layer_desc *registry_blob(const struct rc_pending *p)
{
    const struct mk_layer_desc *want = &p->rec->layer;
    for (size_t i = 0; i < p->src->n_blobs; i++)
        if (strcmp(p->src->blobs[i].diff_id, want->diff_id) == 0)
            want = &p->src->blobs[i];
    return want;
}

/* A registry source's layer: its blob (registry_blob) into the store, then unpacked and
 * checked against the record. */
static int fetch_registry(struct build *b, const struct rc_pending *p, struct mk_error **err)
{
    const struct mk_layer_desc *want = registry_blob(p);
    if (registry_cache_fetch_layer(b->store, p->src->dir, b->opts->registry, want, err) < 0)
        return -1;
    _cleanup_close_ int fd = layerstore_blob_open(b->store, want->digest, err);
    return fd < 0 ? -1 : layerstore_cache_layer_import(b->store, fd, p->rec, p->parent, err);
}

static int fetch(struct build *b, struct rc_pending *p, struct mk_error **err)
{
    if (p->fetched)
        return 0;
    int r = 0;
    if (!p->src->registry)
        r = layerstore_cache_layout_fetch(b->store, p->src->dir, p->rec, p->parent, err);
    else if (!layerstore_snapshot_exists(b->store, p->rec->chain_id) ||
             !layerstore_blob_exists(b->store, p->rec->layer.digest))
        r = fetch_registry(b, p, err);
    if (r < 0) {
        struct rcache *rc = b->rc;
        if (rc->broken < 0) {
            rc->broken = (int)p->src->index;
            rc->broken_msg = mk_xstrdup(err && *err ? (*err)->msg : "a layer could not be fetched");
        }
        return mk_error_wrap(err, "cache source \"%s\"", p->src->spec);
    }
    /* Now a local hit for the next build. */
    layerstore_step_record_put(b->store, p->rec, NULL);
    p->fetched = true;
    return 0;
}

int rcache_fetch(struct build *b, const struct mk_strv *lowerdirs, struct mk_error **err)
{
    struct rcache *rc = b->rc;
    for (size_t i = 0; rc && i < rc->n_pending; i++)
        if (!rc->pending[i].fetched && strv_has(lowerdirs, rc->pending[i].snapshot) &&
            fetch(b, &rc->pending[i], err) < 0)
            return -1;
    return 0;
}

int rcache_defer(struct build *b, const struct mk_image *img, struct mk_error **err)
{
    struct rcache *rc = b->rc;
    const struct mk_strv *lowers = &b->stages[b->target].lowerdirs;
    int lazy = 0;
    for (size_t i = 0; rc && i < rc->n_pending; i++) {
        struct rc_pending *p = &rc->pending[i];
        if (p->fetched || !strv_has(lowers, p->snapshot))
            continue;
        bool have = layerstore_snapshot_exists(b->store, p->rec->chain_id) &&
                    layerstore_blob_exists(b->store, p->rec->layer.digest);
        if (!p->src->registry || have) {
            /* A local source costs no download: the image stays whole. */
            if (fetch(b, p, err) < 0)
                return -1;
            continue;
        }
        const struct mk_layer_desc *blob = registry_blob(p);
        struct mk_lazy_layer l = {.media_type = blob->media_type ? blob->media_type
                                                                 : p->rec->layer.media_type,
                                  .size = blob->size,
                                  .source = p->src->dir};
        memcpy(l.digest, blob->digest, MK_DIGEST_SIZE);
        memcpy(l.diff_id, p->rec->layer.diff_id, MK_DIGEST_SIZE);
        memcpy(l.chain_id, p->rec->chain_id, MK_DIGEST_SIZE);
        memcpy(l.parent, p->parent, MK_DIGEST_SIZE);
        if (layerstore_lazy_layer_put(b->store, &l, err) < 0)
            return -1;
    }
    /* Every layer of the image: in the store, or lazy (just recorded, or by an earlier build
     * whose image this one reuses). */
    for (size_t i = 0; i < img->n_layers; i++) {
        struct mk_lazy_layer l;
        if (layerstore_blob_exists(b->store, img->layers[i].digest))
            continue;
        if (layerstore_lazy_layer_get(b->store, img->layers[i].diff_id, &l, err) < 0)
            return -1;
        layerstore_lazy_layer_release(&l);
        lazy = 1;
    }
    return lazy;
}

/* One lazy layer into the store: its blob from the registry cache, unpacked on its parent
 * chain and checked against its diff ID and chain ID. */
static int lazy_fetch(struct mk_store *store, const struct mk_lazy_layer *l,
                      const struct registry_opts *ropts, struct mk_error **err)
{
    struct mk_layer_desc blob = {.size = l->size, .media_type = l->media_type};
    memcpy(blob.digest, l->digest, MK_DIGEST_SIZE);
    if (registry_cache_fetch_layer(store, l->source, ropts, &blob, err) < 0)
        return -1;
    struct mk_step_record rec;
    memset(&rec, 0, sizeof(rec));
    memcpy(rec.layer.digest, l->diff_id, MK_DIGEST_SIZE);
    memcpy(rec.layer.diff_id, l->diff_id, MK_DIGEST_SIZE);
    memcpy(rec.chain_id, l->chain_id, MK_DIGEST_SIZE);
    _cleanup_close_ int fd = layerstore_blob_open(store, l->digest, err);
    if (fd < 0 || layerstore_cache_layer_import(store, fd, &rec, l->parent, err) < 0)
        return -1;
    return 0;
}

int builder_lazy_complete(struct mk_store *store, const char *name,
                          const struct registry_opts *ropts, struct mk_error **err)
{
    char manifest[MK_DIGEST_SIZE];
    if (layerstore_lazy_ref_get(store, name, manifest) < 0)
        return 0;
    struct mk_image *img = NULL;
    if (layerstore_image_get(store, manifest, &img, err) < 0)
        return mk_error_set_where(err, name);
    int r = 0;
    for (size_t i = 0; r == 0 && i < img->n_layers; i++) {
        const struct mk_layer_desc *d = &img->layers[i];
        if (layerstore_blob_exists(store, d->digest))
            continue;
        struct mk_lazy_layer l;
        if (layerstore_lazy_layer_get(store, d->diff_id, &l, err) < 0) {
            r = mk_error_wrap(err, "layer %s", d->diff_id);
            break;
        }
        if (lazy_fetch(store, &l, ropts, err) < 0)
            r = mk_error_wrap(err, "fetching layer %s from cache source \"%s\"", d->diff_id,
                              l.source);
        layerstore_lazy_layer_release(&l);
    }
    /* Whole now: named in index.json (the lazy layer records stay, harmless, for other lazy
     * images on them). */
    if (r == 0 && (r = layerstore_tag(store, img, name, err)) == 0)
        layerstore_lazy_untag(store, name);
    layerstore_image_free(img);
    return r < 0 ? mk_error_set_where(err, name) : 0;
}

/* cache-mounts=true: a record per cache mount this build used, keyed by its id digest (never
 * a step key: another hash domain), its layer the tar of its data. */
static int add_mounts(struct build *b, struct mk_step_record **recs, size_t *n,
                      struct mk_error **err)
{
    struct rcache *rc = b->rc;
    *recs = mk_xreallocarray(*recs, *n + rc->n_mounts + 1, sizeof(**recs));
    for (size_t i = 0; i < rc->n_mounts; i++) {
        struct stat st;
        if (stat(rc->mounts[i].dir, &st) < 0)
            continue;
        struct mk_step_record *r = &(*recs)[*n];
        memset(r, 0, sizeof(*r));
        if (layerstore_dir_to_blob(b->store, rc->mounts[i].dir, &r->layer, err) < 0)
            return mk_error_wrap(err, "cache mount \"%s\"", rc->mounts[i].dir);
        memcpy(r->key, rc->mounts[i].id, MK_DIGEST_SIZE);
        mk_chain_id("", r->layer.diff_id, r->chain_id);
        r->history.created_by = mk_xstrdup("cache mount");
        (*n)++;
    }
    return 0;
}

/* The records of the steps dest asks for, their layers in the store. */
static int collect(struct build *b, const struct rc_dest *d, struct mk_step_record **ret,
                   size_t *ret_n, struct mk_error **err)
{
    struct rcache *rc = b->rc;
    struct mk_step_record *recs = mk_xcalloc(rc->n_used + 1, sizeof(*recs));
    size_t n = 0;
    for (size_t i = 0; i < rc->n_used; i++) {
        if (!d->max && rc->used[i].stage != b->target)
            continue;
        for (size_t k = 0; k < rc->n_pending; k++)
            if (strcmp(rc->pending[k].rec->key, rc->used[i].key) == 0 &&
                fetch(b, &rc->pending[k], err) < 0) {
                layerstore_step_records_free(recs, n);
                return -1;
            }
        struct mk_error *e = NULL;
        if (layerstore_step_record_get(b->store, rc->used[i].key, &recs[n], &e) == 0 &&
            (recs[n].empty || layerstore_blob_exists(b->store, recs[n].layer.digest)))
            n++;
        else
            layerstore_step_record_release(&recs[n]);
        mk_error_free(e);
    }
    if (d->cache_mounts && add_mounts(b, &recs, &n, err) < 0) {
        layerstore_step_records_free(recs, n);
        return -1;
    }
    *ret = recs;
    *ret_n = n;
    return 0;
}

int rcache_export(struct build *b, struct mk_error **err)
{
    struct rcache *rc = b->rc;
    for (size_t i = 0; rc && i < rc->n_dst; i++) {
        const struct rc_dest *d = &rc->dst[i];
        if (!d->dir)
            continue; /* inline: in the image already */
        struct mk_step_record *recs = NULL;
        size_t n = 0;
        int r = collect(b, d, &recs, &n, err);
        if (r == 0 && d->registry)
            r = registry_cache_push(b->store, d->dir, b->opts->registry, recs, n, d->compression,
                                    err);
        else if (r == 0)
            r = layerstore_cache_layout_write(b->store, d->dir, recs, n, err);
        layerstore_step_records_free(recs, n);
        if (r < 0 && d->ignore_error) {
            _cleanup_free_ char *line =
                mk_xasprintf("mkimg: warning: --cache-to \"%s\": %s\n", d->spec, (*err)->msg);
            mk_write_all(b->opts->log_fd, line, strlen(line), NULL);
            mk_error_free(*err);
            *err = NULL;
        } else if (r < 0) {
            return mk_error_wrap(err, "--cache-to \"%s\"", d->spec);
        }
    }
    return 0;
}

int rcache_inline_annotation(struct build *b, struct mk_strv *notes, struct mk_error **err)
{
    struct rcache *rc = b->rc;
    bool inl = false;
    for (size_t i = 0; rc && i < rc->n_dst; i++)
        inl |= rc->dst[i].dir == NULL;
    if (!inl)
        return 0;
    struct rc_dest min = {.max = false};
    struct mk_step_record *recs = NULL;
    size_t n = 0;
    if (collect(b, &min, &recs, &n, err) < 0)
        return -1;
    _cleanup_free_ char *json = layerstore_cache_config_json(recs, n, err);
    layerstore_step_records_free(recs, n);
    if (!json)
        return -1;
    mk_strv_pushf(notes, "%s=%s", MK_ANNOTATION_CACHE_INLINE, json);
    return 0;
}

int rcache_broken(const struct rcache *rc, const struct mk_build_opts *opts)
{
    if (!rc || rc->broken < 0)
        return -1;
    _cleanup_free_ char *line =
        mk_xasprintf("mkimg: warning: cache source \"%s\": %s; building without it\n",
                     opts->cache_from.v[rc->broken], rc->broken_msg);
    mk_write_all(opts->log_fd, line, strlen(line), NULL);
    return rc->broken;
}

/* A source's record of a cache mount, restored into dir (which does not exist). */
static int restore_mount(struct build *b, const struct rc_source *src,
                         const struct mk_step_record *r, const char *dir, struct mk_error **err)
{
    _cleanup_close_ int fd = -1;
    if (src->registry) {
        if (registry_cache_fetch_layer(b->store, src->dir, b->opts->registry, &r->layer, err) < 0)
            return -1;
        fd = layerstore_blob_open(b->store, r->layer.digest, err);
    } else {
        _cleanup_free_ char *path =
            mk_xasprintf("%s/blobs/sha256/%s", src->dir, mk_digest_hex(r->layer.digest));
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            return mk_error_errno(err, "opening \"%s\"", path);
    }
    return fd < 0 ? -1 : layerstore_tar_unpack_new_dir(b->store, fd, r->layer.digest, dir, err);
}

void rcache_mount_note(struct build *b, const char *id, const char *dir)
{
    struct rcache *rc = b->rc;
    if (!rc || !rc->export_mounts || !mk_digest_valid(id))
        return;
    for (size_t i = 0; i < rc->n_mounts; i++)
        if (strcmp(rc->mounts[i].id, id) == 0)
            return;
    rc->mounts = mk_xreallocarray(rc->mounts, rc->n_mounts + 1, sizeof(*rc->mounts));
    memcpy(rc->mounts[rc->n_mounts].id, id, MK_DIGEST_SIZE);
    rc->mounts[rc->n_mounts++].dir = mk_xstrdup(dir);
    /* A --jobs helper process: the parent exports, so it hears of the mount too
     * (workers.c). */
    if (b->result_fd >= 0) {
        _cleanup_free_ char *line = mk_xasprintf("cache-mount %s\t%s\n", id, dir);
        mk_write_all(b->result_fd, line, strlen(line), NULL);
    }
}

void rcache_mount(struct build *b, const char *id, const char *dir)
{
    struct rcache *rc = b->rc;
    if (!rc)
        return;
    rcache_mount_note(b, id, dir);
    struct stat st;
    if (stat(dir, &st) == 0)
        return; /* this runner's own cache comes first */
    struct mk_step_record probe;
    memcpy(probe.key, id, MK_DIGEST_SIZE);
    for (size_t i = 0; i < rc->n_src; i++) {
        const struct mk_step_record *r =
            bsearch(&probe, rc->src[i].recs, rc->src[i].n, sizeof(probe), cmp_record);
        if (!r || r->empty)
            continue;
        struct mk_error *e = NULL;
        if (restore_mount(b, &rc->src[i], r, dir, &e) == 0)
            return;
        /* A cache mount only saves time: an empty one will do. */
        warn(b, rc->src[i].spec, e->msg);
        mk_error_free(e);
    }
}
