/* builder/step-cache.c - the step cache: a step's key (what decides its result), lookup and
 * store, --explain-cache records, a step's tmpdir and commit, and whole-image reuse. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/internal.h"
#include "builder/rooms.h"
#include "common/fsutil.h"
#include "parser/parser.h"

/* ---- the step cache ----------------------------------------------------------------------- */

/* A step's key: its kind, the chain it starts from, and everything that decides its result
 * (hashed by the caller). Its record (struct mk_step_record) names the resulting layer, or
 * none. */
/* --explain-cache: while a step's key is hashed, its inputs are also recorded as named
 * digests ("env VERSION", "file src/a.c", ...). The record is kept per step position, so on
 * a miss the next build can name the input that changed. One key is computed at a time. */
struct explain {
    bool on;
    bool first_in_stage;
    struct mk_strv parts; /* "NAME\tsha256:..." */
    struct mk_sha256 *cur;
    char *cur_name;
    struct explain *prev; /* the thread's state before this build's */
};
/* The state of the build running on this thread: explain_begin makes one per build and
 * explain_release drops it, so builds in two threads, or one after another, share nothing.
 * The key helpers, called from every room without the build at hand, find it here. */
static __thread struct explain *ex;

static void ex_close_part(void)
{
    if (!ex || !ex->cur)
        return;
    char d[MK_DIGEST_SIZE];
    mk_sha256_final(ex->cur, d);
    mk_sha256_free(ex->cur);
    ex->cur = NULL;
    mk_strv_pushf(&ex->parts, "%s\t%s", ex->cur_name, d);
    free(ex->cur_name);
    ex->cur_name = NULL;
}

/* --explain-cache for this build (on) or not, until explain_release. */
void explain_begin(bool on)
{
    struct explain *e = mk_xcalloc(1, sizeof(*e));
    e->on = on;
    e->prev = ex;
    ex = e;
}

/* The next key is the first of a stage: its chain is the base image's. */
void explain_stage_begin(void)
{
    ex->first_in_stage = true;
}

void explain_release(void)
{
    if (!ex)
        return;
    ex_close_part();
    mk_strv_release(&ex->parts);
    struct explain *e = ex;
    ex = e->prev;
    free(e);
}

/* Starts a named input: what key_add hashes next belongs to it. */
__attribute__((format(printf, 1, 2))) void key_part(const char *fmt, ...)
{
    if (!ex->on)
        return;
    ex_close_part();
    va_list ap;
    va_start(ap, fmt);
    ex->cur_name = mk_xvasprintf(fmt, ap);
    va_end(ap);
    for (char *p = ex->cur_name; *p; p++)
        if (*p == '\t' || *p == '\n')
            *p = ' ';
    ex->cur = mk_sha256_new();
}

/* Strings added at once: len bytes, each string's NUL included, as key_add of each. */
static void key_add_bytes(struct mk_sha256 *h, const char *data, size_t len)
{
    mk_sha256_update(h, data, len);
    if (ex->cur)
        mk_sha256_update(ex->cur, data, len);
}

void key_add(struct mk_sha256 *h, const char *s)
{
    s = s ? s : "";
    mk_sha256_update(h, s, strlen(s) + 1);
    if (ex->cur)
        mk_sha256_update(ex->cur, s, strlen(s) + 1);
}

struct mk_sha256 *key_begin(const struct build *b, const struct stage *s, const char *kind)
{
    struct mk_sha256 *h = mk_sha256_new();
    const char *chain = s->chain[0] ? s->chain : "scratch";
    mk_sha256_update(h, "mkimg-step-v1\n", 14);
    mk_sha256_update(h, kind, strlen(kind) + 1);
    if (ex->on) {
        ex_close_part();
        mk_strv_clear(&ex->parts);
    }
    key_part("%s", ex->first_in_stage ? "base image" : "layers of the earlier steps");
    key_add(h, chain);
    /* The same layers run on another platform (FROM --platform, a scratch stage) give
     * another result. */
    char plat[MK_PLATFORM_MAX];
    mk_platform_format(&s->platform, plat);
    key_part("platform");
    key_add(h, plat);
    /* The epoch clamps the mtimes in the layer: a layer made without it is another layer. */
    if (b->opts->epoch != MK_EPOCH_NONE) {
        char epoch[32];
        snprintf(epoch, sizeof(epoch), "%lld", (long long)b->opts->epoch);
        key_part("build epoch");
        key_add(h, epoch);
    }
    key_part("instruction");
    return h;
}

void key_add_strv(struct mk_sha256 *h, const struct mk_strv *l)
{
    char n[32];
    snprintf(n, sizeof(n), "%zu", l->n);
    key_add(h, n);
    for (size_t i = 0; i < l->n; i++)
        key_add(h, l->v[i]);
}

void key_add_lowers(struct mk_sha256 *h, const struct mk_strv *lowerdirs)
{
    char n[32];
    snprintf(n, sizeof(n), "%zu", lowerdirs->n);
    key_add(h, n);
    for (size_t i = 0; i < lowerdirs->n; i++) {
        const char *name = strrchr(lowerdirs->v[i], '/');
        key_add(h, name ? name + 1 : lowerdirs->v[i]);
    }
}

static int cmp_part(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Compares this step's inputs with the record of the last build's step at the same
 * position, prints what changed, and keeps the new record. */
static void explain_step(struct build *b, bool hit, const char *from)
{
    ex_close_part();
    _cleanup_free_ char *id_text = mk_xasprintf("mkimg-explain-v1\n%s\n%zu", b->df_abs, b->step);
    char id[MK_DIGEST_SIZE];
    mk_sha256_buffer(id_text, strlen(id_text), id);
    qsort(ex->parts.v, ex->parts.n, sizeof(char *), cmp_part);
    if (hit && b->rc)
        logf_(b, " => cache hit: %s%s%s\n", from ? "from \"" : "local", from ? from : "",
              from ? "\"" : "");
    if (!hit && !b->opts->no_cache) {
        struct mk_explain_record old;
        struct mk_error *e = NULL;
        if (layerstore_explain_get(b->store, id, &old, &e) < 0) {
            logf_(b, " => cache miss: no earlier build of this step\n");
        } else {
            struct mk_strv o = MK_STRV_INIT, changed = MK_STRV_INIT;
            /* In the order they were recorded: sorted like ex->parts. */
            for (size_t k = 0; k < old.n; k++)
                mk_strv_pushf(&o, "%s\t%s", old.inputs[k].name, old.inputs[k].digest);
            layerstore_explain_release(&old);
            size_t i = 0, j = 0;
            while (i < ex->parts.n || j < o.n) {
                const char *a = i < ex->parts.n ? ex->parts.v[i] : NULL;
                const char *c = j < o.n ? o.v[j] : NULL;
                size_t an = a ? (size_t)(strchr(a, '\t') - a) : 0;
                size_t cn = c ? (size_t)(strchr(c, '\t') - c) : 0;
                int cmp = !a ? 1 : !c ? -1 : strncmp(a, c, an > cn ? an : cn);
                if (cmp == 0) {
                    if (strcmp(a + an, c + cn) != 0)
                        mk_strv_push_take(&changed, mk_xasprintf("%.*s changed", (int)an, a));
                    i++, j++;
                } else if (cmp < 0) {
                    mk_strv_push_take(&changed, mk_xasprintf("%.*s is new", (int)an, a));
                    i++;
                } else {
                    mk_strv_push_take(&changed, mk_xasprintf("%.*s is gone", (int)cn, c));
                    j++;
                }
            }
            struct mk_buf msg = MK_BUF_INIT;
            for (size_t k = 0; k < changed.n && k < 5; k++)
                mk_buf_addf(&msg, "%s%s", k ? "; " : "", changed.v[k]);
            if (changed.n > 5)
                mk_buf_addf(&msg, "; and %zu more", changed.n - 5);
            logf_(b, " => cache miss: %s\n",
                  changed.n ? msg.data : "the cached layer is gone from the store");
            mk_buf_release(&msg);
            mk_strv_release(&o);
            mk_strv_release(&changed);
        }
        mk_error_free(e);
    }
    struct mk_explain_record rec = {0};
    for (size_t k = 0; k < ex->parts.n; k++) {
        char *tab = strrchr(ex->parts.v[k], '\t');
        *tab = '\0';
        layerstore_explain_add(&rec, ex->parts.v[k], tab + 1);
        *tab = '\t';
    }
    layerstore_explain_put(b->store, id, &rec, NULL);
    layerstore_explain_release(&rec);
    mk_strv_clear(&ex->parts);
}

/* ---- snapshots not in the store ------------------------------------------------------------
 * A snapshot is derived data: its layer's blob unpacks to it. A step's tree is committed to
 * its blob at once but becomes a snapshot only when something mounts it (a later step, a
 * COPY --from, a RUN --mount from=), or when the stages are built. Then the tree of a big
 * layer that nothing mounted is removed instead: on ext4 or xfs (delayed allocation) data
 * written and deleted before writeback is never written, so the last COPY of a 1 GiB file
 * writes 1 GiB (its blob), not 2. The price comes later and once: `mkimg run` of the image,
 * a build FROM it or a step on top of that layer from the cache unpacks the blob (about what
 * the copy cost). Small layers keep their snapshot (DROP_MIN): there the disk writes cost
 * little and `mkimg run` stays instant. A --jobs helper keeps everything (its stages are
 * what other stages use), and so does a build whose output is a root file system
 * (-o type=local|tar reads the snapshots). The last step of the target that can add a layer
 * (nothing after it mounts what it adds) goes further, when nothing keeps its tree: its
 * commit consumes the tree (MK_COMMIT_CONSUME), emptying each big file as the blob is
 * written, so its dirty pages are dropped as the blob's pile up instead of being written
 * back with them (on a loop device or a slow disk, writeback started under the dirty limits
 * reached them before the end of the build). */
#define DROP_MIN (64ull << 20)

static struct pending_snap *snap_pending_find(struct build *b, const char *chain)
{
    for (size_t i = 0; i < b->n_snaps; i++)
        if (strcmp(b->snaps[i].chain, chain) == 0)
            return &b->snaps[i];
    return NULL;
}

/* tmp (taken) holds the tree in upper/; NULL: the layer's blob is unpacked when needed. */
static void snap_pending_add(struct build *b, const char *parent, const struct mk_layer_desc *d,
                             const char *chain, const char *path, char *tmp)
{
    struct pending_snap *p = snap_pending_find(b, chain);
    if (p && !p->done) {
        /* The same layer twice in one build: the first tree serves. */
        if (tmp) {
            layerstore_tmpdir_remove(b->store, tmp, NULL);
            free(tmp);
        }
        return;
    }
    b->snaps = mk_xreallocarray(b->snaps, b->n_snaps + 1, sizeof(*b->snaps));
    p = &b->snaps[b->n_snaps++];
    memset(p, 0, sizeof(*p));
    memcpy(p->chain, chain, MK_DIGEST_SIZE);
    memcpy(p->parent, parent, MK_DIGEST_SIZE);
    memcpy(p->diff_id, d->diff_id, MK_DIGEST_SIZE);
    p->size = d->size;
    p->path = mk_xstrdup(path);
    p->tmp = tmp;
}

static int snap_settle(struct build *b, struct pending_snap *p, bool keep, struct mk_error **err)
{
    int r = 0;
    if (p->tmp) {
        _cleanup_free_ char *upper = mk_xasprintf("%s/upper", p->tmp);
        r = layerstore_snapshot_settle(b->store, upper, p->chain, keep, err);
        layerstore_tmpdir_remove(b->store, p->tmp, NULL);
        free(p->tmp);
        p->tmp = NULL;
    } else if (keep) {
        /* Our own layers: the blob's digest is the diff ID. */
        r = layerstore_layer_unpack(b->store, p->diff_id, p->diff_id, p->parent, NULL, err);
    }
    p->done = true;
    return r;
}

int snapshots_ensure(struct build *b, const struct mk_strv *lowerdirs, struct mk_error **err)
{
    for (size_t i = 0; i < b->n_snaps; i++) {
        struct pending_snap *p = &b->snaps[i];
        if (!p->done && (!lowerdirs || strv_has(lowerdirs, p->path)) &&
            snap_settle(b, p, true, err) < 0)
            return -1;
    }
    return 0;
}

void snapshots_settle(struct build *b, bool drop)
{
    for (size_t i = 0; i < b->n_snaps; i++) {
        struct pending_snap *p = &b->snaps[i];
        /* A cache hit's snapshot that nothing mounted stays missing. */
        if (!p->done && p->tmp)
            snap_settle(b, p, !drop || p->size < DROP_MIN, NULL);
    }
}

void snapshots_forget_trees(struct build *b)
{
    for (size_t i = 0; i < b->n_snaps; i++)
        if (b->snaps[i].tmp) {
            free(b->snaps[i].tmp);
            b->snaps[i].tmp = NULL;
            b->snaps[i].done = true;
        }
}

void snapshots_release(struct build *b)
{
    snapshots_settle(b, false);
    for (size_t i = 0; i < b->n_snaps; i++)
        free(b->snaps[i].path);
    free(b->snaps);
    b->snaps = NULL;
    b->n_snaps = 0;
}

/* On a hit the stage gets the cached layer (or nothing for "empty") and its history entry;
 * *ret_hit tells. A broken entry is a miss. */
static bool cache_lookup_local(struct build *b, struct stage *s, const char *key,
                               const char *created_by);

/* A local hit, else one from a --cache-from source (from names it). */
int cache_lookup(struct build *b, struct stage *s, const char *key, const char *created_by,
                 bool *ret_hit)
{
    const char *from = NULL;
    bool hit = false;
    if (!b->opts->no_cache || strv_has(&b->fresh_keys, key)) {
        hit = cache_lookup_local(b, s, key, created_by);
        if (!hit && !b->opts->no_cache)
            hit = (from = rcache_lookup(b, s, key, created_by)) != NULL;
    }
    *ret_hit = hit;
    if (hit) {
        b->cached_steps++;
        rcache_note(b, s, key);
        if (!b->silent)
            builder_progress_done(b->ui, "CACHED");
    }
    if (ex->on && !b->probing)
        explain_step(b, hit, from);
    ex->first_in_stage = false;
    return 0;
}

static bool cache_lookup_local(struct build *b, struct stage *s, const char *key,
                               const char *created_by)
{
    struct mk_step_record rec;
    struct mk_error *e = NULL;
    if (layerstore_step_record_get(b->store, key, &rec, &e) < 0) {
        mk_error_free(e);
        return false;
    }
    bool hit = rec.empty;
    if (rec.empty) {
        history(b, s, created_by, true);
    } else {
        /* A record of a layer on other layers, or whose layer is gone, is a miss. */
        char expect[MK_DIGEST_SIZE];
        mk_chain_id(s->chain, rec.layer.diff_id, expect);
        struct mk_layer_desc d;
        if (strcmp(expect, rec.chain_id) == 0 &&
            layerstore_layer_lookup(b->store, rec.layer.diff_id, rec.chain_id, &d, &e) == 0) {
            _cleanup_free_ char *snap = layerstore_snapshot_path(b->store, rec.chain_id);
            if (!layerstore_snapshot_exists(b->store, rec.chain_id))
                snap_pending_add(b, s->chain, &d, rec.chain_id, snap, NULL);
            stage_add_layer(s, &d, rec.chain_id, snap);
            free(d.media_type);
            history(b, s, created_by, false);
            hit = true;
        }
        mk_error_free(e);
    }
    layerstore_step_record_release(&rec);
    return hit;
}

void cache_store(struct build *b, const struct stage *s, const char *key, bool empty)
{
    /* Borrows the stage's layer and history entry (the record carries no time). */
    struct mk_step_record rec;
    memset(&rec, 0, sizeof(rec));
    memcpy(rec.key, key, MK_DIGEST_SIZE);
    rec.empty = empty;
    if (!empty) {
        rec.layer = s->layers[s->n_layers - 1];
        memcpy(rec.chain_id, s->chain, MK_DIGEST_SIZE);
    }
    if (s->config.n_history) {
        rec.history = s->config.history[s->config.n_history - 1];
        rec.history.created = NULL;
    }
    /* A cache that cannot be written only costs speed next time. */
    layerstore_step_record_put(b->store, &rec, NULL);
    rcache_note(b, s, key);
    if (b->result_fd >= 0) {
        _cleanup_free_ char *line = mk_xasprintf("key %s\n", key);
        mk_write_all(b->result_fd, line, strlen(line), NULL);
    }
}

/* ---- steps that produce a layer ----------------------------------------------------------- */

/* A fresh tmpdir with upper/ and work/ for one step of s, whose lowerdirs are made to fit
 * one overlay mount. */
int step_begin(struct build *b, struct stage *s, char **ret_upper, char **ret_work,
               struct mk_error **err)
{
    if (b->probing)
        return probe_stop(err);
    struct mk_workspace ws;
    if (snapshots_ensure(b, &s->lowerdirs, err) < 0 || rcache_fetch(b, &s->lowerdirs, err) < 0 ||
        builder_fit_lowerdirs(b->store, &s->lowerdirs, err) < 0 ||
        builder_workspace_new(b->store, "step-", &ws, err) < 0)
        return -1;
    b->tmp = MK_TAKE_PTR(ws.tmp);
    *ret_upper = MK_TAKE_PTR(ws.upper);
    *ret_work = MK_TAKE_PTR(ws.work);
    return 0;
}

void step_end(struct build *b)
{
    if (b->tmp) {
        layerstore_tmpdir_remove(b->store, b->tmp, NULL);
        free(b->tmp);
        b->tmp = NULL;
    }
}

int step_commit(struct build *b, struct stage *s, const char *upper, const char *created_by,
                struct mk_error **err)
{
    return step_commit_like(b, s, upper, created_by, NULL, err);
}

int step_commit_like(struct build *b, struct stage *s, const char *upper, const char *created_by,
                     const char *like_chain, struct mk_error **err)
{
    struct mk_layer_desc d;
    memset(&d, 0, sizeof(d));
    char chain[MK_DIGEST_SIZE];
    /* The tree may stay in the step's tmpdir (upper/ of b->tmp, step_begin's) until
     * something mounts it. */
    size_t tl = b->tmp ? strlen(b->tmp) : 0;
    bool may_defer = tl && strncmp(upper, b->tmp, tl) == 0 && strcmp(upper + tl, "/upper") == 0;
    /* The last layer of the target, in a build that keeps nothing of it: a big file of it
     * is emptied as the blob is written (its pages dropped, never written back, even
     * while the blob's pile up) and the tree removed (snapshots_settle would drop it). */
    bool consume = may_defer && b->last_layer_step && !b->opts->export_rootfs && !b->opts->squash &&
                   b->result_fd < 0;
    enum mk_commit_mode mode = consume     ? MK_COMMIT_CONSUME
                               : may_defer ? MK_COMMIT_DEFER
                                           : MK_COMMIT_SNAPSHOT;
    bool deferred = false;
    if (layerstore_layer_commit_blob(b->store, upper, &s->lowerdirs, s->chain, b->opts->epoch,
                                     like_chain, mode, &d, chain, &deferred, err) < 0)
        return -1;
    _cleanup_free_ char *snap = layerstore_snapshot_path(b->store, chain);
    if (deferred)
        snap_pending_add(b, s->chain, &d, chain, snap, MK_TAKE_PTR(b->tmp));
    else if (!layerstore_snapshot_exists(b->store, chain))
        snap_pending_add(b, s->chain, &d, chain, snap, NULL); /* consumed */
    stage_add_layer(s, &d, chain, snap);
    free(d.media_type);
    history(b, s, created_by, false);
    return 0;
}

/* Feeds what COPY would copy into the step key: paths, types, modes and content. */
int copy_key_visit(const char *rel, const struct stat *st, const char *dest, void *arg,
                   struct mk_error **err)
{
    struct copy_key *k = arg;
    key_part("file %s", rel);
    /* rel, dest, the mode in octal and for a file its digest, each with its NUL, as key_add
     * would add them: one update, not four (a COPY of a big tree has one line per file). */
    char buf[1024];
    size_t rl = strlen(rel) + 1, dl = strlen(dest) + 1;
    _cleanup_free_ char *heap = rl + dl + 16 + MK_DIGEST_SIZE > sizeof(buf)
                                    ? mk_xmalloc(rl + dl + 16 + MK_DIGEST_SIZE)
                                    : NULL;
    char *line = heap ? heap : buf, *p = line;
    memcpy(p, rel, rl);
    memcpy(p += rl, dest, dl);
    p += dl;
    char oct[16];
    size_t o = sizeof(oct);
    oct[--o] = '\0';
    unsigned mode = (unsigned)st->st_mode;
    do {
        oct[--o] = (char)('0' + (mode & 7));
        mode >>= 3;
    } while (mode);
    memcpy(p, oct + o, sizeof(oct) - o);
    p += sizeof(oct) - o;
    if (S_ISREG(st->st_mode)) {
        char d[MK_DIGEST_SIZE];
        if (k->srcfd >= 0) {
            /* COPY --from: the source's content is named by its layers (in the key). */
            snprintf(d, sizeof(d), "%llu", (unsigned long long)st->st_size);
        } else if (k->file_digest) {
            if (k->file_digest(k, rel, st, dest, d, err) < 0)
                return -1;
        } else if (builder_hashcache_file(k->b->hc, builder_context_dirfd(k->b->ctx), rel, st, d,
                                          err) < 0)
            return -1;
        size_t len = strlen(d) + 1;
        memcpy(p, d, len);
        p += len;
    }
    key_add_bytes(k->h, line, (size_t)(p - line));
    if (S_ISLNK(st->st_mode)) {
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int pfd = mk_open_parent_in_root(
            k->srcfd >= 0 ? k->srcfd : builder_context_dirfd(k->b->ctx), rel, false, &name, err);
        if (pfd < 0)
            return -1;
        char target[4096];
        ssize_t n = readlinkat(pfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return mk_error_errno(err, "reading link \"%s\"", rel);
        target[n] = '\0';
        key_add(k->h, target);
    }
    return 0;
}

static int key_tree_visit(const char *relpath, const struct stat *st, void *arg,
                          struct mk_error **err)
{
    return copy_key_visit(relpath, st, "", arg, err);
}

int key_context_tree(struct build *b, struct mk_sha256 *h, const char *rel, struct mk_error **err)
{
    if (!b->hc && builder_hashcache_open(b->store, b->opts->context_dir, &b->hc, err) < 0)
        return -1;
    struct copy_key k = {.b = b, .h = h, .srcfd = -1};
    return builder_context_walk(b->ctx, rel, key_tree_visit, &k, err);
}

void image_reuse_key(const struct stage *t, const struct mk_strv *notes, int64_t epoch,
                     char out[MK_DIGEST_SIZE])
{
    struct mk_image_config c;
    memset(&c, 0, sizeof(c));
    layerstore_config_copy(&c, &t->config);
    free(c.created);
    c.created = NULL;
    for (size_t i = 0; i < c.n_history; i++) {
        free(c.history[i].created);
        c.history[i].created = NULL;
    }
    _cleanup_free_ char *json = layerstore_config_serialize(&c);
    layerstore_config_release(&c);
    struct mk_sha256 *h = mk_sha256_new();
    mk_sha256_update(h, "mkimg-image-v1\n", 15);
    mk_sha256_update(h, json, strlen(json) + 1);
    for (size_t i = 0; i < t->n_layers; i++)
        mk_sha256_update(h, t->layers[i].digest, strlen(t->layers[i].digest) + 1);
    for (size_t i = 0; i < notes->n; i++)
        mk_sha256_update(h, notes->v[i], strlen(notes->v[i]) + 1);
    /* Timestamps are left out, but an epoch's are what was asked for: an image made with one
     * is not the image of a build without it (or with another), even on the same layers. */
    if (epoch != MK_EPOCH_NONE) {
        char e[48];
        snprintf(e, sizeof(e), "epoch=%lld", (long long)epoch);
        mk_sha256_update(h, e, strlen(e) + 1);
    }
    mk_sha256_final(h, out);
    mk_sha256_free(h);
}

void image_reuse_lookup(struct build *b, const char *key, struct mk_image **ret)
{
    char manifest[MK_DIGEST_SIZE];
    struct mk_error *e = NULL;
    if (layerstore_image_record_get(b->store, key, manifest, &e) == 0 &&
        layerstore_image_get(b->store, manifest, ret, &e) == 0)
        return;
    mk_error_free(e);
    *ret = NULL;
}
