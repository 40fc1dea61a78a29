/* builder/remote-cache.c - --cache-from and --cache-to (docs/remote-cache.md): step records
 * imported from cache sources decide hits after the local cache missed; their layers are
 * fetched only when the build needs them; the records of the steps a build went through are
 * exported with their layers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/internal.h"
#include "builder/rooms.h"
#include "common/fsutil.h"

struct rc_source {
    char *spec; /* as given, for messages */
    char *dir;
    struct mk_step_record *recs; /* sorted by key */
    size_t n;
};

struct rc_dest {
    char *spec;
    char *dir;
    bool max;
    bool ignore_error;
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

struct rcache {
    struct rc_source *src;
    size_t n_src;
    struct rc_dest *dst;
    size_t n_dst;
    struct rc_pending *pending;
    size_t n_pending;
    struct rc_used *used;
    size_t n_used;
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

/* "type=local,src=DIR" and the like: the type, the directory (src= or dest=), the mode and
 * ignore-error. MK_ERR_USAGE for anything else. */
static int parse_spec(const char *flag, const char *spec, bool to, char **ret_dir, bool *ret_max,
                      bool *ret_ignore, struct mk_error **err)
{
    _cleanup_(mk_strv_release) struct mk_strv kv = MK_STRV_INIT;
    split_kv(spec, &kv);
    const char *type = mk_strv_env_get(&kv, "type");
    const char *dir = mk_strv_env_get(&kv, to ? "dest" : "src");
    const char *mode = mk_strv_env_get(&kv, "mode");
    const char *ign = mk_strv_env_get(&kv, "ignore-error");
    if (!type || strcmp(type, "local") != 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": %s", flag, spec,
                            type ? "only type=local is supported yet" : "needs type=local");
    if (!dir || !*dir)
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": needs %s=DIR", flag, spec,
                            to ? "dest" : "src");
    if (mode && strcmp(mode, "min") != 0 && strcmp(mode, "max") != 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": mode= takes min or max", flag, spec);
    if (ign && strcmp(ign, "true") != 0 && strcmp(ign, "false") != 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": ignore-error= takes true or false",
                            flag, spec);
    static const char *const known_to[] = {"type", "dest", "mode", "ignore-error", NULL};
    static const char *const known_from[] = {"type", "src", NULL};
    for (size_t i = 0; i < kv.n; i++) {
        const char *eq = strchr(kv.v[i], '=');
        size_t kl = eq ? (size_t)(eq - kv.v[i]) : strlen(kv.v[i]);
        bool ok = false;
        for (const char *const *k = to ? known_to : known_from; *k; k++)
            ok |= strlen(*k) == kl && strncmp(*k, kv.v[i], kl) == 0;
        if (!ok)
            return mk_error_set(err, MK_ERR_USAGE, 0, "%s \"%s\": unknown option \"%.*s\"", flag,
                                spec, (int)kl, kv.v[i]);
    }
    *ret_dir = mk_xstrdup(dir);
    *ret_max = mode && strcmp(mode, "max") == 0;
    *ret_ignore = ign && strcmp(ign, "true") == 0;
    return 0;
}

int rcache_open(struct build *b, struct mk_error **err)
{
    const struct mk_build_opts *o = b->opts;
    if (o->cache_from.n == 0 && o->cache_to.n == 0)
        return 0;
    struct rcache *rc = b->rc = mk_xcalloc(1, sizeof(*rc));
    rc->dst = mk_xcalloc(o->cache_to.n + 1, sizeof(*rc->dst));
    for (size_t i = 0; i < o->cache_to.n; i++) {
        struct rc_dest *d = &rc->dst[rc->n_dst];
        if (parse_spec("--cache-to", o->cache_to.v[i], true, &d->dir, &d->max, &d->ignore_error,
                       err) < 0)
            return -1;
        d->spec = mk_xstrdup(o->cache_to.v[i]);
        rc->n_dst++;
    }
    rc->src = mk_xcalloc(o->cache_from.n + 1, sizeof(*rc->src));
    for (size_t i = 0; i < o->cache_from.n; i++) {
        _cleanup_free_ char *dir = NULL;
        bool max, ign;
        if (parse_spec("--cache-from", o->cache_from.v[i], false, &dir, &max, &ign, err) < 0)
            return -1;
        struct rc_source *s = &rc->src[rc->n_src];
        struct mk_error *e = NULL;
        if (layerstore_cache_layout_read(dir, &s->recs, &s->n, &e) < 0) {
            warn(b, o->cache_from.v[i], e->msg);
            mk_error_free(e);
            continue;
        }
        qsort(s->recs, s->n, sizeof(*s->recs), cmp_record);
        s->spec = mk_xstrdup(o->cache_from.v[i]);
        s->dir = MK_TAKE_PTR(dir);
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

static int fetch(struct build *b, struct rc_pending *p, struct mk_error **err)
{
    if (p->fetched)
        return 0;
    if (layerstore_cache_layout_fetch(b->store, p->src->dir, p->rec, p->parent, err) < 0)
        return mk_error_wrap(err, "cache source \"%s\"", p->src->spec);
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
    *ret = recs;
    *ret_n = n;
    return 0;
}

int rcache_export(struct build *b, struct mk_error **err)
{
    struct rcache *rc = b->rc;
    for (size_t i = 0; rc && i < rc->n_dst; i++) {
        const struct rc_dest *d = &rc->dst[i];
        struct mk_step_record *recs = NULL;
        size_t n = 0;
        int r = collect(b, d, &recs, &n, err);
        if (r == 0)
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
