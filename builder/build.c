/* builder/build.c - the build driver: Dockerfile stages and instructions -> image.
 *
 * One stage at a time, one instruction at a time. Metadata instructions change the stage's
 * image config and add an empty_layer history entry; RUN, COPY, ADD and WORKDIR (when it
 * creates the directory) run against an overlay of the stage's snapshots and their upperdir
 * becomes the next layer and snapshot, with no extraction.
 */
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
#include "common/fsutil.h"
#include "parser/parser.h"

#define DOCKERFILE_MAX (16u << 20)

struct stage {
    char *name; /* AS name (lowercase) or NULL */
    size_t index;
    size_t first, end; /* nodes [first, end) of the Dockerfile, first is the FROM */
    bool needed;
    bool built;
    /* result */
    struct mk_image_config config;
    struct mk_layer_desc *layers;
    size_t n_layers;
    char chain[MK_DIGEST_SIZE]; /* chain id of all layers, "" for none */
    struct mk_strv lowerdirs;   /* snapshot dirs, top-most first */
    struct mk_strv args;        /* declared ARGs "K=V" (stage scope) */
    struct mk_strv arg_names;   /* every ARG the stage declared, valued or not, in order */
    bool cmd_set;
    char *base_name; /* the FROM image as written after expansion */
    /* The external image the stage's chain of FROMs starts at (fully qualified) and its
     * manifest digest, for the base.name/base.digest annotations; NULL for scratch. */
    char *base_ref;
    char base_digest[MK_DIGEST_SIZE];
    /* How many layers and history entries come from that external image (--squash keeps
     * them and merges the rest). */
    size_t n_base_layers, n_base_history;
    size_t step0;  /* steps of the needed stages before this one (for "[step/n]") */
    bool prebuilt; /* --jobs: built by a helper process; this pass only collects it */
    size_t *deps;  /* the stages this one uses (FROM, --from, --mount from=) */
    size_t n_deps;
    struct mk_platform platform; /* what it runs on: FROM --platform, its base stage's, or
                                  * the target platform */
    bool pinned;                 /* its platform is FROM --platform's (or its base stage's) */
};

struct build {
    struct mk_store *store;
    const struct mk_build_opts *opts;
    struct mk_df *df;
    char *df_name; /* for error locations: "Dockerfile" as the user named it */
    struct mk_context *ctx;
    struct mk_strv meta_args;  /* global ARGs (before the first FROM), "K=V" */
    struct mk_strv build_args; /* --build-arg, resolved "K=V" */
    struct mk_strv used_build_args;
    struct stage *stages;
    size_t n_stages;
    size_t target;
    size_t step, n_steps;
    char *created;
    char *tmp; /* current step's tmpdir, removed on every path */
    struct mk_hashcache *hc;
    size_t cached_steps;
    char *df_abs; /* the Dockerfile's absolute path: names step positions for --explain-cache */
    struct mk_progress_ui *ui;
    bool silent; /* collecting a stage a helper process built and showed already */
    /* --jobs: a helper process reports the cache keys it stored on result_fd; the parent
     * keeps them in fresh_keys, the entries this build made (hits even with --no-cache). */
    int result_fd;
    struct mk_strv fresh_keys;
    struct mk_platform target_platform; /* --platform, else the host's (TARGETPLATFORM) */
};

static const char *const default_path_env =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/* ---- small helpers ------------------------------------------------------------------------ */

static char *where_of(struct build *b, const struct mk_df_node *n)
{
    return mk_xasprintf("%s:%d", b->df_name, n->start_line);
}

__attribute__((format(printf, 4, 5))) static int
node_error(struct build *b, const struct mk_df_node *n, struct mk_error **err, const char *fmt, ...)
{
    _cleanup_free_ char *where = where_of(b, n);
    if (err && *err) {
        /* Keep the cause, add the context; the Dockerfile line is where the user looks, so
         * it replaces a callee's location (an image name the context names anyway). */
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *ctx = mk_xvasprintf(fmt, ap);
        va_end(ap);
        mk_error_wrap(err, "%s", ctx);
        if ((*err)->where && !mk_str_has_prefix((*err)->where, b->df_name)) {
            free((*err)->where);
            (*err)->where = NULL;
        }
        return mk_error_set_where(err, where);
    }
    va_list ap;
    va_start(ap, fmt);
    mk_error_setv(err, MK_ERR_INVALID, 0, fmt, ap);
    va_end(ap);
    return mk_error_set_where(err, where);
}

/* Adds the instruction's location to an error a callee set. */
static int node_where(struct build *b, const struct mk_df_node *n, struct mk_error **err)
{
    _cleanup_free_ char *where = where_of(b, n);
    return mk_error_set_where(err, where);
}

static void logf_(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct build *b, const char *fmt, ...)
{
    if (b->silent)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = mk_xvasprintf(fmt, ap);
    va_end(ap);
    builder_progress_log(b->ui, s);
}

static char *upper_keyword(const char *kw)
{
    char *s = mk_xstrdup(kw);
    for (char *p = s; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return s;
}

/* The instruction text after the keyword and flags, as written (for history and logs). */
static const char *node_rest(const struct mk_df_node *n)
{
    const char *p = n->original;
    while (*p == ' ' || *p == '\t')
        p++;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != ' ' && *p != '\t')
                p++;
            continue;
        }
        return p;
    }
}

/* Expansion environment of a stage: ARGs first, ENV after (ENV wins, as in BuildKit). */
static void stage_expand_env(const struct stage *s, struct mk_strv *env)
{
    mk_strv_copy(env, &s->args);
    mk_strv_copy(env, &s->config.env);
}

static int expand_word(struct build *b, const struct stage *s, const struct mk_df_node *n,
                       const char *word, char **ret, struct mk_error **err)
{
    struct mk_strv env = MK_STRV_INIT;
    stage_expand_env(s, &env);
    int r = mk_shell_word(word, &env, b->df->escape, ret, err);
    mk_strv_release(&env);
    if (r < 0)
        return node_where(b, n, err);
    return 0;
}

static void history(struct build *b, struct stage *s, const char *created_by, bool empty)
{
    layerstore_config_add_history(&s->config, b->created, created_by,
                                  empty ? NULL : "buildkit.dockerfile.v0", empty);
}

static void stage_release(struct stage *s)
{
    free(s->name);
    free(s->base_name);
    free(s->base_ref);
    layerstore_config_release(&s->config);
    for (size_t i = 0; i < s->n_layers; i++)
        free(s->layers[i].media_type);
    free(s->layers);
    mk_strv_release(&s->lowerdirs);
    mk_strv_release(&s->args);
    mk_strv_release(&s->arg_names);
    free(s->deps);
}

static void stage_add_layer(struct stage *s, const struct mk_layer_desc *d, const char *chain,
                            const char *snapshot)
{
    s->layers = mk_xreallocarray(s->layers, s->n_layers + 1, sizeof(*s->layers));
    s->layers[s->n_layers] = *d;
    s->layers[s->n_layers].media_type =
        mk_xstrdup(d->media_type ? d->media_type : MK_MEDIA_OCI_LAYER);
    s->n_layers++;
    mk_strv_push(&s->config.diff_ids, d->diff_id);
    memcpy(s->chain, chain, MK_DIGEST_SIZE);
    /* lowerdirs are top-most first */
    struct mk_strv nl = MK_STRV_INIT;
    mk_strv_push(&nl, snapshot);
    mk_strv_copy(&nl, &s->lowerdirs);
    mk_strv_release(&s->lowerdirs);
    s->lowerdirs = nl;
}

/* ---- the step cache ----------------------------------------------------------------------- */

/* A step's key: its kind, the chain it starts from, and everything that decides its result
 * (hashed by the caller). The value names the resulting layer, or "empty". */
/* --explain-cache: while a step's key is hashed, its inputs are also recorded as named
 * digests ("env VERSION", "file src/a.c", ...). The record is kept per step position, so on
 * a miss the next build can name the input that changed. One key is computed at a time. */
static struct {
    bool on;
    bool first_in_stage;
    struct mk_strv parts; /* "NAME\tsha256:..." */
    struct mk_sha256 *cur;
    char *cur_name;
} ex;

static void ex_close_part(void)
{
    if (!ex.cur)
        return;
    char d[MK_DIGEST_SIZE];
    mk_sha256_final(ex.cur, d);
    mk_sha256_free(ex.cur);
    ex.cur = NULL;
    mk_strv_pushf(&ex.parts, "%s\t%s", ex.cur_name, d);
    free(ex.cur_name);
    ex.cur_name = NULL;
}

/* Starts a named input: what key_add hashes next belongs to it. */
__attribute__((format(printf, 1, 2))) static void key_part(const char *fmt, ...)
{
    if (!ex.on)
        return;
    ex_close_part();
    va_list ap;
    va_start(ap, fmt);
    ex.cur_name = mk_xvasprintf(fmt, ap);
    va_end(ap);
    for (char *p = ex.cur_name; *p; p++)
        if (*p == '\t' || *p == '\n')
            *p = ' ';
    ex.cur = mk_sha256_new();
}

static void key_add(struct mk_sha256 *h, const char *s)
{
    s = s ? s : "";
    mk_sha256_update(h, s, strlen(s) + 1);
    if (ex.cur)
        mk_sha256_update(ex.cur, s, strlen(s) + 1);
}

static struct mk_sha256 *key_begin(const struct stage *s, const char *kind)
{
    struct mk_sha256 *h = mk_sha256_new();
    const char *chain = s->chain[0] ? s->chain : "scratch";
    mk_sha256_update(h, "mkimg-step-v1\n", 14);
    mk_sha256_update(h, kind, strlen(kind) + 1);
    if (ex.on) {
        ex_close_part();
        mk_strv_clear(&ex.parts);
    }
    key_part("%s", ex.first_in_stage ? "base image" : "layers of the earlier steps");
    key_add(h, chain);
    /* The same layers run on another platform (FROM --platform, a scratch stage) give
     * another result. */
    char plat[MK_PLATFORM_MAX];
    layerstore_platform_format(&s->platform, plat);
    key_part("platform");
    key_add(h, plat);
    /* The epoch clamps the mtimes in the layer: a layer made without it is another layer. */
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        key_part("SOURCE_DATE_EPOCH");
        key_add(h, sde);
    }
    key_part("instruction");
    return h;
}

static void key_add_strv(struct mk_sha256 *h, const struct mk_strv *l)
{
    char n[32];
    snprintf(n, sizeof(n), "%zu", l->n);
    key_add(h, n);
    for (size_t i = 0; i < l->n; i++)
        key_add(h, l->v[i]);
}

static int cmp_part(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Compares this step's inputs with the record of the last build's step at the same
 * position, prints what changed, and keeps the new record. */
static void explain_step(struct build *b, bool hit)
{
    ex_close_part();
    _cleanup_free_ char *id_text = mk_xasprintf("mkimg-explain-v1\n%s\n%zu", b->df_abs, b->step);
    char id[MK_DIGEST_SIZE];
    mk_sha256_buffer(id_text, strlen(id_text), id);
    qsort(ex.parts.v, ex.parts.n, sizeof(char *), cmp_part);
    if (!hit && !b->opts->no_cache) {
        _cleanup_free_ char *old = NULL;
        struct mk_error *e = NULL;
        if (layerstore_cache_get(b->store, id, &old, &e) < 0) {
            logf_(b, " => cache miss: no earlier build of this step\n");
        } else {
            struct mk_strv o = MK_STRV_INIT, changed = MK_STRV_INIT;
            char *save = NULL;
            for (char *l = strtok_r(old, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                mk_strv_push(&o, l);
            size_t i = 0, j = 0;
            while (i < ex.parts.n || j < o.n) {
                const char *a = i < ex.parts.n ? ex.parts.v[i] : NULL;
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
    struct mk_buf rec = MK_BUF_INIT;
    for (size_t k = 0; k < ex.parts.n; k++)
        mk_buf_addf(&rec, "%s\n", ex.parts.v[k]);
    if (rec.len < (60u << 20))
        layerstore_cache_put(b->store, id, rec.data ? rec.data : "", NULL);
    mk_buf_release(&rec);
    mk_strv_clear(&ex.parts);
}

static bool strv_has(const struct mk_strv *l, const char *v)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], v) == 0)
            return true;
    return false;
}

/* On a hit the stage gets the cached layer (or nothing for "empty") and its history entry;
 * *ret_hit tells. A broken entry is a miss. */
static int cache_lookup_inner(struct build *b, struct stage *s, const char *key,
                              const char *created_by, bool *ret_hit);

static int cache_lookup(struct build *b, struct stage *s, const char *key, const char *created_by,
                        bool *ret_hit)
{
    int r = cache_lookup_inner(b, s, key, created_by, ret_hit);
    if (ex.on)
        explain_step(b, *ret_hit);
    ex.first_in_stage = false;
    return r;
}

static int cache_lookup_inner(struct build *b, struct stage *s, const char *key,
                              const char *created_by, bool *ret_hit)
{
    *ret_hit = false;
    if (b->opts->no_cache && !strv_has(&b->fresh_keys, key))
        return 0;
    _cleanup_free_ char *value = NULL;
    struct mk_error *e = NULL;
    if (layerstore_cache_get(b->store, key, &value, &e) < 0) {
        mk_error_free(e);
        return 0;
    }
    if (strcmp(value, "empty\n") == 0) {
        history(b, s, created_by, true);
    } else {
        char diff[MK_DIGEST_SIZE], chain[MK_DIGEST_SIZE];
        if (strlen(value) != 2 * MK_DIGEST_LEN + 8 || strncmp(value, "layer ", 6) != 0)
            return 0;
        memcpy(diff, value + 6, MK_DIGEST_LEN);
        diff[MK_DIGEST_LEN] = '\0';
        memcpy(chain, value + 7 + MK_DIGEST_LEN, MK_DIGEST_LEN);
        chain[MK_DIGEST_LEN] = '\0';
        char expect[MK_DIGEST_SIZE];
        mk_chain_id(s->chain, diff, expect);
        struct mk_layer_desc d;
        if (strcmp(expect, chain) != 0 ||
            layerstore_layer_lookup(b->store, diff, chain, &d, &e) < 0) {
            mk_error_free(e);
            return 0;
        }
        _cleanup_free_ char *snap = layerstore_snapshot_path(b->store, chain);
        stage_add_layer(s, &d, chain, snap);
        free(d.media_type);
        history(b, s, created_by, false);
    }
    *ret_hit = true;
    b->cached_steps++;
    if (!b->silent)
        builder_progress_done(b->ui, "CACHED");
    return 0;
}

static void cache_store(struct build *b, const struct stage *s, const char *key, bool empty)
{
    _cleanup_free_ char *value =
        empty ? mk_xstrdup("empty\n")
              : mk_xasprintf("layer %s %s\n", s->layers[s->n_layers - 1].diff_id, s->chain);
    /* A cache that cannot be written only costs speed next time. */
    layerstore_cache_put(b->store, key, value, NULL);
    if (b->result_fd >= 0) {
        _cleanup_free_ char *line = mk_xasprintf("key %s\n", key);
        mk_write_all(b->result_fd, line, strlen(line), NULL);
    }
}

/* ---- steps that produce a layer ----------------------------------------------------------- */

/* A fresh tmpdir with upper/ and work/ for one step of s, whose lowerdirs are made to fit
 * one overlay mount. */
static int step_begin(struct build *b, struct stage *s, char **ret_upper, char **ret_work,
                      struct mk_error **err)
{
    struct mk_workspace ws;
    if (builder_fit_lowerdirs(b->store, &s->lowerdirs, err) < 0 ||
        builder_workspace_new(b->store, "step-", &ws, err) < 0)
        return -1;
    b->tmp = MK_TAKE_PTR(ws.tmp);
    *ret_upper = MK_TAKE_PTR(ws.upper);
    *ret_work = MK_TAKE_PTR(ws.work);
    return 0;
}

static void step_end(struct build *b)
{
    if (b->tmp) {
        layerstore_tmpdir_remove(b->store, b->tmp, NULL);
        free(b->tmp);
        b->tmp = NULL;
    }
}

static int step_commit(struct build *b, struct stage *s, const char *upper, const char *created_by,
                       struct mk_error **err)
{
    struct mk_layer_desc d;
    memset(&d, 0, sizeof(d));
    char chain[MK_DIGEST_SIZE];
    if (layerstore_layer_commit_dir(b->store, upper, &s->lowerdirs, s->chain, &d, chain, err) < 0)
        return -1;
    _cleanup_free_ char *snap = layerstore_snapshot_path(b->store, chain);
    stage_add_layer(s, &d, chain, snap);
    free(d.media_type);
    history(b, s, created_by, false);
    return 0;
}

static void sandbox_spec_init(struct mk_sandbox_spec *spec, struct stage *s, const char *upper,
                              const char *work)
{
    memset(spec, 0, sizeof(*spec));
    spec->lowerdirs = &s->lowerdirs;
    spec->upperdir = upper;
    spec->workdir = work;
    spec->stdout_fd = -1;
    spec->stderr_fd = -1;
}

struct src_root {
    char *tmp;
    int fd;
};
static int src_root_open(struct build *b, const struct mk_strv *lowerdirs, struct src_root *r,
                         struct mk_error **err);
static void src_root_release(struct build *b, struct src_root *r);
static int from_lowerdirs(struct build *b, struct stage *s, const struct mk_df_node *n,
                          const char *from, struct mk_strv *ret, struct mk_error **err);

/* ---- RUN --mount ---------------------------------------------------------------------------- */

struct run_mounts {
    struct mk_sandbox_mount *m;
    size_t n;
    struct mk_strv strings;   /* owned sources and targets */
    struct mk_strv lowers[8]; /* lowerdirs of the overlay mounts (from=, rw, masked) */
    size_t n_lowers;
    int locks[8]; /* flock()ed lock files of the cache mounts in use (sharing=) */
    size_t n_locks;
    int fds[8]; /* context sources, resolved once and handed to the sandbox as fds */
    size_t n_fds;
    struct mk_strv env; /* "K=V" of secrets given as environment variables (env=) */
};

static void run_mounts_release(struct build *b, struct run_mounts *rm);

/* Splits "k=v,k2=v2,flag" into a KEY=VALUE list ("flag" alone = "flag="). */
static void split_kv(const char *spec, struct mk_strv *out)
{
    _cleanup_free_ char *copy = mk_xstrdup(spec);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const char *eq = strchr(t, '=');
        if (eq) {
            _cleanup_free_ char *k = mk_xstrndup(t, (size_t)(eq - t));
            for (char *p = k; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            mk_strv_pushf(out, "%s=%s", k, eq + 1);
        } else {
            mk_strv_pushf(out, "%s=", t);
        }
    }
}

static bool kv_bool(const struct mk_strv *kv, const char *key)
{
    const char *v = mk_strv_env_get(kv, key);
    return v && (!*v || strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static const char *keep(struct run_mounts *rm, char *s)
{
    mk_strv_push_take(&rm->strings, s);
    return s;
}

static void add_mount(struct run_mounts *rm, enum mk_sandbox_mount_type type, const char *source,
                      const char *target, bool readonly)
{
    rm->m = mk_xreallocarray(rm->m, rm->n + 1, sizeof(*rm->m));
    memset(&rm->m[rm->n], 0, sizeof(rm->m[rm->n]));
    rm->m[rm->n].type = type;
    rm->m[rm->n].source = source;
    rm->m[rm->n].target = target;
    rm->m[rm->n].readonly = readonly;
    rm->n++;
}

/* A read-only bind of a source the caller resolved (rm keeps the fd). */
static void add_bind_fd(struct run_mounts *rm, int fd, const char *name, const char *target)
{
    add_mount(rm, MK_MOUNT_BIND, name, target, true);
    rm->m[rm->n - 1].has_source_fd = true;
    rm->m[rm->n - 1].source_fd = fd;
}

/* An overlay mount of lowers (a slot of rm->lowers) over upper/work, showing subpath. */
static void add_overlay(struct run_mounts *rm, const struct mk_strv *lowers, const char *upper,
                        const char *work, const char *subpath, const char *target, bool readonly)
{
    add_mount(rm, MK_MOUNT_OVERLAY, NULL, target, readonly);
    struct mk_sandbox_mount *m = &rm->m[rm->n - 1];
    m->lowerdirs = lowers;
    m->upperdir = upper;
    m->workdir = work;
    m->subpath = subpath;
}

static struct mk_strv *lowers_slot(struct run_mounts *rm)
{
    return rm->n_lowers < MK_ARRAY_SIZE(rm->lowers) ? &rm->lowers[rm->n_lowers++] : NULL;
}

/* upper/ and work/ for one overlay mount: below dir (created), so they go with it. */
static int overlay_dirs(struct run_mounts *rm, const char *dir, const char **ret_upper,
                        const char **ret_work, struct mk_error **err)
{
    const char *upper = keep(rm, mk_xasprintf("%s/upper", dir));
    const char *work = keep(rm, mk_xasprintf("%s/work", dir));
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || (mkdir(upper, 0755) < 0 && errno != EEXIST) ||
        (mkdir(work, 0700) < 0 && errno != EEXIST))
        return mk_error_errno(err, "creating \"%s\"", dir);
    *ret_upper = upper;
    *ret_work = work;
    return 0;
}

/* A mount's source= inside the context or a stage, as BuildKit's path.Join("/", source). */
static char *mount_source_rel(const char *source)
{
    return builder_path_clean(source ? source : "", true);
}

/* The lowerdirs of a from= mount, in a slot of rm. */
static struct mk_strv *from_lowers(struct build *b, struct stage *s, const struct mk_df_node *n,
                                   struct run_mounts *rm, const char *from, struct mk_error **err)
{
    struct mk_strv *lowers = lowers_slot(rm);
    if (!lowers) {
        node_error(b, n, err, "too many --mount options that need an overlay");
        return NULL;
    }
    if (from_lowerdirs(b, s, n, from, lowers, err) < 0) {
        node_error(b, n, err, "--mount from=%s", from);
        return NULL;
    }
    return lowers;
}

/* A context bind: read-only straight from the context when .dockerignore hides nothing in
 * it, else (and for rw) an overlay with the mask on top and a private upper, so nothing the
 * RUN writes reaches the context. */
static int context_bind(struct build *b, const struct mk_df_node *n, struct run_mounts *rm,
                        const char *source, const char *target, bool rw, const char *tmp,
                        struct mk_error **err)
{
    _cleanup_free_ char *rel = mount_source_rel(source);
    if (strcmp(rel, ".") != 0 && builder_context_excluded(b->ctx, rel))
        return node_error(b, n, err, "--mount source \"%s\" is excluded by .dockerignore", rel);
    /* Resolved once, inside the context; from here on the source is this fd (the sandbox
     * clones the mount tree from it), never its path, which a concurrent step could swap. */
    if (rm->n_fds == MK_ARRAY_SIZE(rm->fds))
        return node_error(b, n, err, "too many --mount options from the build context");
    _cleanup_close_ int fd = mk_open_in_root(builder_context_dirfd(b->ctx), rel, O_PATH, 0, NULL);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int saved = errno;
        _cleanup_free_ char *where = where_of(b, n);
        if (saved == ENOENT)
            return mk_error_set_at(err, MK_ERR_NOT_FOUND, where,
                                   "--mount source \"%s\" not found in the build context", rel);
        mk_error_errno(err, "--mount source \"%s\"", rel);
        return node_where(b, n, err);
    }
    int src = rm->fds[rm->n_fds++] = MK_TAKE_FD(fd);
    const char *name = keep(rm, mk_xasprintf("context:%s", rel));
    const char *dir = keep(rm, mk_xasprintf("%s/mount-%zu", tmp, rm->n));
    if (!S_ISDIR(st.st_mode)) {
        if (!rw) {
            add_bind_fd(rm, src, name, target);
            return 0;
        }
        /* A writable single file: a private copy. */
        const char *copy = keep(rm, mk_xasprintf("%s-file", dir));
        char fdp[64];
        snprintf(fdp, sizeof(fdp), "/proc/self/fd/%d", src);
        _cleanup_close_ int in = open(fdp, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int out =
            open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
        char buf[65536];
        ssize_t r = in < 0 || out < 0 ? mk_error_errno(err, "copying \"%s\"", rel) : 1;
        while (r > 0 && (r = mk_read_some(in, buf, sizeof(buf), err)) > 0)
            if (mk_write_all(out, buf, (size_t)r, err) < 0)
                r = -1;
        if (r < 0)
            return node_where(b, n, err);
        add_mount(rm, MK_MOUNT_BIND, copy, target, false);
        return 0;
    }
    const char *mask = keep(rm, mk_xasprintf("%s/mask", dir));
    const char *upper, *work;
    bool hidden = false;
    if (overlay_dirs(rm, dir, &upper, &work, err) < 0 || mkdir(mask, 0700) < 0 ||
        builder_context_mask(b->ctx, rel, mask, &hidden, err) < 0) {
        if (err && !*err)
            mk_error_errno(err, "creating \"%s\"", mask);
        return node_error(b, n, err, "--mount source \"%s\"", rel);
    }
    if (!hidden && !rw) {
        add_bind_fd(rm, src, name, target);
        return 0;
    }
    struct mk_strv *lowers = lowers_slot(rm);
    if (!lowers)
        return node_error(b, n, err, "too many --mount options that need an overlay");
    if (hidden)
        mk_strv_push(lowers, mask);
    add_overlay(rm, lowers, upper, work, NULL, target, !rw);
    rm->m[rm->n - 1].has_lower_fd = true;
    rm->m[rm->n - 1].lower_fd = src;
    rm->m[rm->n - 1].source = name;
    return 0;
}

static int parse_mode(const char *v, mode_t def, mode_t *ret)
{
    if (!v)
        return *ret = def, 0;
    uint64_t m = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '7')
            return -1;
        m = m * 8 + (uint64_t)(*p - '0');
    }
    if (!*v || m > 07777)
        return -1;
    *ret = (mode_t)m;
    return 0;
}

static const char *secret_source(struct build *b, const char *id, bool *ret_env)
{
    for (size_t i = 0; i < b->opts->secrets.n; i++) {
        struct mk_strv kv = MK_STRV_INIT;
        split_kv(b->opts->secrets.v[i], &kv);
        const char *sid = mk_strv_env_get(&kv, "id");
        bool match = sid && strcmp(sid, id) == 0;
        const char *src = mk_strv_env_get(&kv, "src");
        if (!src)
            src = mk_strv_env_get(&kv, "source");
        const char *env = mk_strv_env_get(&kv, "env");
        const char *result = NULL;
        if (match) {
            *ret_env = env && !src;
            result = *ret_env ? env : src;
            /* The value lives on in opts; find it there again to return a stable pointer. */
            result = result ? strstr(b->opts->secrets.v[i], result) : NULL;
        }
        mk_strv_release(&kv);
        if (match)
            return result;
    }
    return NULL;
}

/* A cache mount's sharing= (BuildKit): "shared" users hold the cache's lock file shared and
 * run together; "locked" holds it exclusively, so it waits for every other user; "private"
 * takes the first instance (DIR, DIR-1, DIR-2, ...) nobody uses. Builds with --jobs and
 * concurrent builds on one store meet here. overlay: the cache is an overlay's upper, which
 * one mount at a time may use, so "shared" locks exclusively too. *ret_dir is the
 * directory to use (caller frees); the lock is held until run_mounts_release. */
static int cache_lock(struct build *b, const struct mk_df_node *n, struct run_mounts *rm,
                      const char *dir, const char *sharing, bool overlay, char **ret_dir,
                      struct mk_error **err)
{
    sharing = sharing ? sharing : "shared";
    bool private = strcmp(sharing, "private") == 0;
    if (!private && strcmp(sharing, "shared") != 0 && strcmp(sharing, "locked") != 0)
        return node_error(b, n, err, "--mount sharing=%s: unknown mode (shared, private or locked)",
                          sharing);
    if (rm->n_locks == MK_ARRAY_SIZE(rm->locks))
        return node_error(b, n, err, "too many cache mounts in one RUN");
    int how = strcmp(sharing, "shared") == 0 && !overlay ? LOCK_SH : LOCK_EX;
    for (unsigned k = 0; k <= (private ? 16u : 0u); k++) {
        bool last = k == (private ? 16u : 0u);
        _cleanup_free_ char *d = k ? mk_xasprintf("%s-%u", dir, k) : mk_xstrdup(dir);
        _cleanup_free_ char *lock = mk_xasprintf("%s.lock", d);
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT) {
            _cleanup_free_ char *parent = mk_xstrdup(dir);
            *strrchr(parent, '/') = '\0';
            if (mk_mkdir_p(parent, 0755, NULL) == 0)
                fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        }
        if (fd < 0)
            return node_error(b, n, err, "locking the cache mount: %s", strerror(errno));
        /* private: an instance in use is skipped; with all 17 in use, wait for the last. */
        while (flock(fd, how | (private && !last ? LOCK_NB : 0)) < 0) {
            if (errno == EINTR && !mk_interrupted)
                continue;
            int e = errno;
            close(fd);
            fd = -1;
            if (e == EWOULDBLOCK)
                break;
            if (e == EINTR)
                return node_error(b, n, err, "interrupted");
            return node_error(b, n, err, "locking the cache mount: %s", strerror(e));
        }
        if (fd < 0)
            continue;
        rm->locks[rm->n_locks++] = fd;
        *ret_dir = MK_TAKE_PTR(d);
        return 0;
    }
    return node_error(b, n, err, "no free cache instance");
}

static int one_mount(struct build *b, struct stage *s, const struct mk_df_node *n, const char *flag,
                     struct run_mounts *rm, const char *tmp, struct mk_error **err)
{
    struct mk_strv kv = MK_STRV_INIT;
    split_kv(flag, &kv);
    int ret = -1;
    const char *type = mk_strv_env_get(&kv, "type");
    type = type ? type : "bind";
    const char *target = mk_strv_env_get(&kv, "target");
    if (!target)
        target = mk_strv_env_get(&kv, "dst");
    if (!target)
        target = mk_strv_env_get(&kv, "destination");
    const char *source = mk_strv_env_get(&kv, "source");
    if (!source)
        source = mk_strv_env_get(&kv, "src");
    const char *from = mk_strv_env_get(&kv, "from");
    bool ro = kv_bool(&kv, "readonly") || kv_bool(&kv, "ro");
    bool rw = kv_bool(&kv, "rw") || kv_bool(&kv, "readwrite");
    _cleanup_free_ char *abs_target = NULL;
    if (target && *target)
        abs_target =
            target[0] == '/'
                ? mk_xstrdup(target)
                : mk_xasprintf("%s/%s", s->config.working_dir ? s->config.working_dir : "", target);
    if (strcmp(type, "bind") && strcmp(type, "cache") && strcmp(type, "tmpfs") &&
        strcmp(type, "secret")) {
        node_error(b, n, err,
                   "--mount type \"%s\" is not supported (use bind, cache, tmpfs or "
                   "secret)",
                   type);
        goto out;
    }
    if (strcmp(type, "secret") != 0 && !abs_target) {
        node_error(b, n, err, "--mount=%s: target is required", flag);
        goto out;
    }
    if (abs_target && abs_target[strspn(abs_target, "/.")] == '\0') {
        node_error(b, n, err, "invalid mount target \"%s\"", abs_target);
        goto out;
    }
    if (strcmp(type, "tmpfs") == 0) {
        add_mount(rm, MK_MOUNT_TMPFS, NULL, keep(rm, MK_TAKE_PTR(abs_target)), false);
    } else if (strcmp(type, "cache") == 0 && from) {
        /* BuildKit: the stage's (or image's) tree is the cache's starting point. The cache
         * is the upper of an overlay on it, kept per id and per source tree, so it persists
         * as long as that tree does not change. */
        const char *id = mk_strv_env_get(&kv, "id");
        struct mk_strv *lowers = from_lowers(b, s, n, rm, from, err);
        if (!lowers)
            goto out;
        struct mk_buf material = MK_BUF_INIT;
        mk_buf_addf(&material, "cache-mount-from\n%s\n", id ? id : abs_target);
        for (size_t i = 0; i < lowers->n; i++)
            mk_buf_addf(&material, "%s\n", lowers->v[i]);
        char d[MK_DIGEST_SIZE];
        mk_sha256_buffer(material.data, material.len, d);
        mk_buf_release(&material);
        _cleanup_free_ char *base =
            mk_xasprintf("%s/mounts/cache/%s", layerstore_root(b->store), mk_digest_hex(d));
        _cleanup_free_ char *dir = NULL;
        const char *upper, *work;
        if (cache_lock(b, n, rm, base, mk_strv_env_get(&kv, "sharing"), true, &dir, err) < 0)
            goto out;
        if (mk_mkdir_p(dir, 0700, err) < 0 || overlay_dirs(rm, dir, &upper, &work, err) < 0) {
            node_where(b, n, err);
            goto out;
        }
        add_overlay(rm, lowers, upper, work, keep(rm, mount_source_rel(source)),
                    keep(rm, MK_TAKE_PTR(abs_target)), ro);
    } else if (strcmp(type, "cache") == 0) {
        const char *id = mk_strv_env_get(&kv, "id");
        _cleanup_free_ char *material = mk_xasprintf("cache-mount\n%s", id ? id : abs_target);
        char d[MK_DIGEST_SIZE];
        mk_sha256_buffer(material, strlen(material), d);
        _cleanup_free_ char *base =
            mk_xasprintf("%s/mounts/cache/%s", layerstore_root(b->store), mk_digest_hex(d));
        char *dir = NULL;
        if (cache_lock(b, n, rm, base, mk_strv_env_get(&kv, "sharing"), false, &dir, err) < 0) {
            node_where(b, n, err);
            goto out;
        }
        keep(rm, dir);
        mode_t mode;
        uint64_t uid = 0, gid = 0;
        const char *u = mk_strv_env_get(&kv, "uid"), *g = mk_strv_env_get(&kv, "gid");
        if (parse_mode(mk_strv_env_get(&kv, "mode"), 0755, &mode) < 0 ||
            (u && mk_parse_u64(u, &uid) < 0) || (g && mk_parse_u64(g, &gid) < 0)) {
            node_error(b, n, err, "--mount=%s: invalid mode, uid or gid", flag);
            goto out;
        }
        struct stat st;
        if (stat(dir, &st) < 0) {
            if (mk_mkdir_p(dir, 0755, err) < 0 || chmod(dir, mode) < 0 ||
                chown(dir, (uid_t)uid, (gid_t)gid) < 0) {
                if (err && !*err)
                    mk_error_errno(err, "preparing the cache mount \"%s\"", dir);
                node_where(b, n, err);
                goto out;
            }
        }
        add_mount(rm, MK_MOUNT_BIND, dir, keep(rm, MK_TAKE_PTR(abs_target)), ro);
    } else if (strcmp(type, "bind") == 0) {
        const char *tgt = keep(rm, MK_TAKE_PTR(abs_target));
        if (!from) {
            if (context_bind(b, n, rm, source, tgt, rw && !ro, tmp, err) < 0)
                goto out;
        } else {
            /* A stage's or image's tree through an overlay with a private upper: rw writes
             * land there and go with the step's tmpdir, never in the source. */
            struct mk_strv *lowers = from_lowers(b, s, n, rm, from, err);
            const char *upper, *work;
            if (!lowers)
                goto out;
            _cleanup_free_ char *dir = mk_xasprintf("%s/mount-%zu", tmp, rm->n);
            if (overlay_dirs(rm, dir, &upper, &work, err) < 0) {
                node_where(b, n, err);
                goto out;
            }
            add_overlay(rm, lowers, upper, work, keep(rm, mount_source_rel(source)), tgt,
                        !(rw && !ro));
        }
    } else if (strcmp(type, "secret") == 0) {
        const char *id = mk_strv_env_get(&kv, "id");
        if (!id && target) {
            const char *slash = strrchr(target, '/');
            id = slash ? slash + 1 : target;
        }
        if (!id || !*id) {
            node_error(b, n, err, "--mount=%s: a secret needs an id or a target", flag);
            goto out;
        }
        /* BuildKit: env= puts the secret in that variable instead; a file too only when a
         * target is also given. */
        const char *env_name = mk_strv_env_get(&kv, "env");
        if (env_name && !*env_name) {
            node_error(b, n, err, "--mount=%s: env= needs a variable name", flag);
            goto out;
        }
        if (!abs_target && !env_name)
            abs_target = mk_xasprintf("/run/secrets/%s", id);
        bool from_env = false;
        const char *src = secret_source(b, id, &from_env);
        _cleanup_free_ char *srcdup = NULL;
        if (src) {
            const char *end = strchr(src, ',');
            srcdup = end ? mk_xstrndup(src, (size_t)(end - src)) : mk_xstrdup(src);
        }
        const char *value = srcdup && from_env ? getenv(srcdup) : NULL;
        if (!srcdup || (from_env && !value)) {
            if (kv_bool(&kv, "required")) {
                node_error(b, n, err,
                           "secret \"%s\" is required but was not given (--secret "
                           "id=%s,src=PATH)",
                           id, id);
                goto out;
            }
            ret = 0; /* BuildKit skips a missing optional secret */
            goto out;
        }
        if (env_name) {
            _cleanup_free_ char *v = NULL;
            if (from_env) {
                v = mk_xstrdup(value);
            } else if (mk_read_file_at(AT_FDCWD, srcdup, 1u << 20, &v, NULL, err) < 0) {
                mk_error_wrap(err, "secret \"%s\"", id);
                node_where(b, n, err);
                goto out;
            }
            mk_strv_env_set(&rm->env, env_name, v);
            if (!abs_target) {
                ret = 0;
                goto out;
            }
        }
        /* The secret goes to a file in the step's tmpdir (never into the upperdir), bound
         * read-only; its content is never part of a cache key or history. */
        char *file = mk_xasprintf("%s/secret-%zu", tmp, rm->n);
        keep(rm, file);
        _cleanup_close_ int out = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
        if (out < 0) {
            mk_error_errno(err, "creating secret file");
            node_where(b, n, err);
            goto out;
        }
        if (from_env) {
            if (mk_write_all(out, value, strlen(value), err) < 0) {
                node_where(b, n, err);
                goto out;
            }
        } else {
            _cleanup_close_ int in = open(srcdup, O_RDONLY | O_CLOEXEC);
            char buf[65536];
            ssize_t r;
            if (in < 0) {
                mk_error_set(err, MK_ERR_NOT_FOUND, errno, "secret \"%s\": opening \"%s\"", id,
                             srcdup);
                node_where(b, n, err);
                goto out;
            }
            while ((r = mk_read_some(in, buf, sizeof(buf), err)) > 0)
                if (mk_write_all(out, buf, (size_t)r, err) < 0)
                    break;
            if (err && *err) {
                node_where(b, n, err);
                goto out;
            }
        }
        mode_t mode;
        uint64_t uid = 0, gid = 0;
        const char *u = mk_strv_env_get(&kv, "uid"), *g = mk_strv_env_get(&kv, "gid");
        if (parse_mode(mk_strv_env_get(&kv, "mode"), 0400, &mode) < 0 ||
            (u && mk_parse_u64(u, &uid) < 0) || (g && mk_parse_u64(g, &gid) < 0) ||
            fchmod(out, mode) < 0 || fchown(out, (uid_t)uid, (gid_t)gid) < 0) {
            node_error(b, n, err, "--mount=%s: invalid mode, uid or gid", flag);
            goto out;
        }
        add_mount(rm, MK_MOUNT_BIND, file, keep(rm, MK_TAKE_PTR(abs_target)), true);
    } else {
        node_error(b, n, err,
                   "--mount type \"%s\" is not supported (use bind, cache, tmpfs or "
                   "secret)",
                   type);
        goto out;
    }
    ret = 0;
out:
    mk_strv_release(&kv);
    return ret;
}

static int run_mounts_prepare(struct build *b, struct stage *s, const struct mk_df_node *n,
                              const char *tmp, struct run_mounts *rm, struct mk_error **err)
{
    for (size_t i = 0; i < n->flags.n; i++) {
        const char *f = n->flags.v[i];
        if (!mk_str_has_prefix(f, "--mount="))
            continue;
        _cleanup_free_ char *exp = NULL;
        if (expand_word(b, s, n, f + 8, &exp, err) < 0)
            return -1;
        if (one_mount(b, s, n, exp, rm, tmp, err) < 0)
            return -1;
    }
    return 0;
}

static void run_mounts_release(struct build *b, struct run_mounts *rm)
{
    (void)b;
    for (size_t i = 0; i < rm->n_lowers; i++)
        mk_strv_release(&rm->lowers[i]);
    for (size_t i = 0; i < rm->n_locks; i++)
        close(rm->locks[i]);
    for (size_t i = 0; i < rm->n_fds; i++)
        close(rm->fds[i]);
    for (size_t i = 0; i < rm->env.n; i++) /* secret values: not left in freed memory */
        explicit_bzero(rm->env.v[i], strlen(rm->env.v[i]));
    mk_strv_release(&rm->env);
    free(rm->m);
    mk_strv_release(&rm->strings);
    memset(rm, 0, sizeof(*rm));
}

/* RUN */
/* A heredoc's body as the command reads it: with "<<-", leading tabs stripped. */
static void heredoc_body(struct mk_buf *out, const struct mk_df_heredoc *h)
{
    if (!h->chomp) {
        mk_buf_adds(out, h->content);
        return;
    }
    for (const char *p = h->content; *p;) {
        p += strspn(p, "\t");
        size_t len = strcspn(p, "\n");
        mk_buf_add(out, p, len + (p[len] == '\n'));
        p += len + (p[len] == '\n');
    }
}

struct copy_key;
static int copy_key_visit(const char *rel, const struct stat *st, const char *dest, void *arg,
                          struct mk_error **err);
static int key_context_tree(struct build *b, struct mk_sha256 *h, const char *rel,
                            struct mk_error **err);

/* What the mounts bring in belongs to the key: a stage's or image's layers (from=), the
 * context files a bind shows (as COPY hashes them). Cache contents and secrets do not. */
static int run_mounts_key(struct build *b, struct stage *s, const struct mk_df_node *n,
                          struct mk_sha256 *h, struct mk_error **err)
{
    for (size_t i = 0; i < n->flags.n; i++) {
        if (!mk_str_has_prefix(n->flags.v[i], "--mount="))
            continue;
        _cleanup_free_ char *exp = NULL;
        if (expand_word(b, s, n, n->flags.v[i] + 8, &exp, err) < 0)
            return -1;
        _cleanup_(mk_strv_release) struct mk_strv kv = MK_STRV_INIT;
        split_kv(exp, &kv);
        const char *type = mk_strv_env_get(&kv, "type");
        const char *from = mk_strv_env_get(&kv, "from");
        const char *source = mk_strv_env_get(&kv, "source");
        if (!source)
            source = mk_strv_env_get(&kv, "src");
        type = type ? type : "bind";
        if (from && (strcmp(type, "bind") == 0 || strcmp(type, "cache") == 0)) {
            _cleanup_(mk_strv_release) struct mk_strv lowers = MK_STRV_INIT;
            if (from_lowerdirs(b, s, n, from, &lowers, err) < 0)
                return node_error(b, n, err, "--mount from=%s", from);
            key_part("mount from %s", from);
            key_add_strv(h, &lowers);
        } else if (strcmp(type, "bind") == 0) {
            _cleanup_free_ char *rel = mount_source_rel(source);
            _cleanup_close_ int fd =
                mk_open_in_root(builder_context_dirfd(b->ctx), rel, O_PATH, 0, NULL);
            if (fd < 0 || (strcmp(rel, ".") != 0 && builder_context_excluded(b->ctx, rel)))
                continue; /* one_mount says why */
            if (key_context_tree(b, h, rel, err) < 0)
                return node_error(b, n, err, "--mount source \"%s\"", rel);
        }
    }
    return 0;
}

/* The proxy ARGs docker predefines: a --build-arg of one reaches every RUN without an ARG
 * line, yet stays out of the history, the config and the cache key (a declared one is an
 * ordinary ARG). */
static const char *const proxy_args[] = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                                         "FTP_PROXY",  "ftp_proxy",  "NO_PROXY",    "no_proxy",
                                         "ALL_PROXY",  "all_proxy"};

/* env NULL: only marks them used (a cached RUN still consumes them). */
static void add_proxy_env(struct build *b, const struct stage *s, struct mk_strv *env)
{
    for (size_t i = 0; i < MK_ARRAY_SIZE(proxy_args); i++) {
        const char *v = mk_strv_env_get(&b->build_args, proxy_args[i]);
        if (!v || mk_strv_env_get(&s->args, proxy_args[i]))
            continue;
        if (env && !mk_strv_env_get(env, proxy_args[i])) /* ENV wins, as for any ARG */
            mk_strv_env_set(env, proxy_args[i], v);
        bool used = false;
        for (size_t u = 0; u < b->used_build_args.n && !used; u++)
            used = strcmp(b->used_build_args.v[u], proxy_args[i]) == 0;
        if (!used)
            mk_strv_push(&b->used_build_args, proxy_args[i]);
    }
}

/* BuildKit's "|N K=V ..." prefix of a RUN history line (runCommandString): every ARG the
 * stage declared, with its value in the step's environment (ENV winning), empty when unset. */
static void run_history_args(const struct stage *s, struct mk_buf *cb)
{
    if (!s->arg_names.n)
        return;
    mk_buf_addf(cb, "|%zu", s->arg_names.n);
    for (size_t i = 0; i < s->arg_names.n; i++) {
        const char *k = s->arg_names.v[i];
        const char *v = mk_strv_env_get(&s->config.env, k);
        if (!v)
            v = mk_strv_env_get(&s->args, k);
        mk_buf_addf(cb, " %s=%s", k, v ? v : "");
    }
    mk_buf_addc(cb, ' ');
}

static int do_run(struct build *b, struct stage *s, const struct mk_df_node *n,
                  struct mk_error **err)
{
    struct mk_strv argv = MK_STRV_INIT;
    struct mk_strv env = MK_STRV_INIT;
    _cleanup_free_ char *upper = NULL, *work = NULL, *created_by = NULL;
    struct mk_buf script = MK_BUF_INIT;
    struct run_mounts mounts;
    memset(&mounts, 0, sizeof(mounts));
    int ret = -1;

    const char *net = NULL;
    if (mk_df_node_flag(n, "network", &net) && net && strcmp(net, "default") != 0 &&
        strcmp(net, "none") != 0 && strcmp(net, "host") != 0) {
        node_error(b, n, err, "unknown network mode \"%s\" (use default, none or host)", net);
        goto out;
    }
    const char *security = NULL;
    bool insecure = false;
    if (mk_df_node_flag(n, "security", &security) && security) {
        insecure = strcmp(security, "insecure") == 0;
        if (!insecure && strcmp(security, "sandbox") != 0) {
            node_error(b, n, err, "unknown security mode \"%s\" (use sandbox or insecure)",
                       security);
            goto out;
        }
        if (insecure && !b->opts->allow_insecure) {
            node_error(b, n, err,
                       "RUN --security=insecure needs the entitlement: build with --allow "
                       "security.insecure");
            goto out;
        }
    }

    if (n->json) {
        mk_strv_copy(&argv, &n->args);
    } else {
        const char *cmd = n->args.n ? n->args.v[0] : "";
        bool bare = n->n_heredocs == 1 && cmd[0] == '<' && cmd[1] == '<' && !strpbrk(cmd, " \t");
        if (bare)
            heredoc_body(&script, &n->heredocs[0]);
        if (bare && script.data && mk_str_has_prefix(script.data, "#!")) {
            /* As BuildKit: a body with a "#!" line is a script its interpreter runs. The
             * shell only hands it over, as a file descriptor, so nothing lands in the rootfs. */
            const char *nl = strchr(script.data, '\n');
            _cleanup_free_ char *line = mk_xstrndup(
                script.data + 2, nl ? (size_t)(nl - script.data - 2) : strlen(script.data + 2));
            char *interp = line + strspn(line, " \t");
            char *arg = interp + strcspn(interp, " \t");
            if (*arg)
                *arg++ = '\0';
            arg += strspn(arg, " \t");
            const char *delim = "MKIMG_HEREDOC_END";
            struct mk_buf sh = MK_BUF_INIT;
            mk_buf_addf(&sh, "exec \"$0\" %s /dev/fd/3 3<<'%s'\n%s%s%s\n", *arg ? "\"$1\"" : "",
                        delim, script.data, mk_str_has_suffix(script.data, "\n") ? "" : "\n",
                        delim);
            mk_strv_push(&argv, "/bin/sh");
            mk_strv_push(&argv, "-c");
            mk_strv_push(&argv, sh.data);
            mk_strv_push(&argv, interp);
            if (*arg)
                mk_strv_push(&argv, arg);
            mk_buf_release(&sh);
        } else if (bare) {
            /* RUN <<EOF ... EOF: the body is the script. */
        } else {
            /* Heredoc bodies go to the shell as written: it runs them as heredocs itself. */
            mk_buf_adds(&script, cmd);
            for (size_t i = 0; i < n->n_heredocs; i++) {
                mk_buf_addc(&script, '\n');
                mk_buf_adds(&script, n->heredocs[i].content);
                mk_buf_adds(&script, n->heredocs[i].name);
            }
        }
        if (argv.n) {
            /* the "#!" script above */
        } else if (s->config.shell.n) {
            mk_strv_copy(&argv, &s->config.shell);
            mk_strv_push(&argv, script.data ? script.data : "");
        } else {
            mk_strv_push(&argv, "/bin/sh");
            mk_strv_push(&argv, "-c");
            mk_strv_push(&argv, script.data ? script.data : "");
        }
    }
    if (argv.n == 0) {
        node_error(b, n, err, "RUN needs a command");
        goto out;
    }

    /* The command's environment: declared ARGs, then ENV (which wins). */
    mk_strv_copy(&env, &s->args);
    for (size_t i = 0; i < s->config.env.n; i++) {
        const char *eq = strchr(s->config.env.v[i], '=');
        _cleanup_free_ char *k =
            eq ? mk_xstrndup(s->config.env.v[i], (size_t)(eq - s->config.env.v[i]))
               : mk_xstrdup(s->config.env.v[i]);
        mk_strv_env_set(&env, k, eq ? eq + 1 : "");
    }
    if (!mk_strv_env_get(&env, "PATH"))
        mk_strv_push(&env, default_path_env);

    {
        struct mk_buf cb = MK_BUF_INIT;
        mk_buf_adds(&cb, "RUN ");
        run_history_args(s, &cb);
        for (size_t i = 0; i < argv.n; i++)
            mk_buf_addf(&cb, "%s%s", i ? " " : "", argv.v[i]);
        mk_buf_adds(&cb, " # buildkit");
        created_by = mk_buf_detach(&cb);
    }

    enum mk_network network = b->opts->network;
    if (net && strcmp(net, "none") == 0)
        network = MK_NET_NONE;
    if (net && strcmp(net, "host") == 0)
        network = MK_NET_HOST;
    const char *cwd = s->config.working_dir && *s->config.working_dir ? s->config.working_dir : "/";
    const char *user = s->config.user && *s->config.user ? s->config.user : NULL;
    char key[MK_DIGEST_SIZE];
    {
        struct mk_sha256 *h = key_begin(s, "RUN");
        key_part("command");
        key_add_strv(h, &argv);
        char count[32];
        snprintf(count, sizeof(count), "%zu", env.n);
        key_part("number of environment variables");
        key_add(h, count);
        for (size_t i = 0; i < env.n; i++) {
            const char *eq = strchr(env.v[i], '=');
            key_part("env %.*s", eq ? (int)(eq - env.v[i]) : (int)strlen(env.v[i]), env.v[i]);
            key_add(h, env.v[i]);
        }
        key_part("working directory");
        key_add(h, cwd);
        key_part("user");
        key_add(h, user);
        key_part("network");
        key_add(h, network == MK_NET_NONE ? "none" : "host");
        if (insecure) {
            key_part("security");
            key_add(h, "insecure");
        }
        key_part("mounts");
        /* Mount specs (not cache contents or secret values) belong to the key. */
        for (size_t i = 0; i < n->flags.n; i++)
            if (mk_str_has_prefix(n->flags.v[i], "--mount="))
                key_add(h, n->flags.v[i]);
        int kr = run_mounts_key(b, s, n, h, err);
        mk_sha256_final(h, key);
        mk_sha256_free(h);
        if (kr < 0)
            goto out;
    }
    bool hit = false;
    add_proxy_env(b, s, NULL);
    cache_lookup(b, s, key, created_by, &hit);
    if (hit) {
        ret = 0;
        goto out;
    }

    add_proxy_env(b, s, &env);
    if (step_begin(b, s, &upper, &work, err) < 0 ||
        run_mounts_prepare(b, s, n, b->tmp, &mounts, err) < 0)
        goto out;
    for (size_t i = 0; i < mounts.env.n; i++) {
        const char *eq = strchr(mounts.env.v[i], '=');
        _cleanup_free_ char *k = mk_xstrndup(mounts.env.v[i], (size_t)(eq - mounts.env.v[i]));
        mk_strv_env_set(&env, k, eq + 1);
    }
    struct mk_sandbox_spec spec;
    sandbox_spec_init(&spec, s, upper, work);
    spec.mounts = mounts.m;
    spec.n_mounts = mounts.n;
    spec.argv = argv.v;
    spec.env = &env;
    spec.cwd = cwd;
    spec.user = user;
    spec.network = network;
    spec.insecure = insecure;
    spec.stdout_fd = spec.stderr_fd = b->silent ? -1 : builder_progress_output_begin(b->ui);
    int status = 0;
    int sr = builder_sandbox_run(&spec, &status, err);
    builder_progress_output_end(b->ui);
    if (sr < 0) {
        node_error(b, n, err, "RUN");
        goto out;
    }
    if (status != 0) {
        _cleanup_free_ char *where = where_of(b, n);
        const char *shown = n->json ? node_rest(n) : script.data;
        mk_error_set_at(err, MK_ERR_RUN, where, "RUN %s%s%s: exit status %d", n->json ? "" : "\"",
                        shown ? shown : "", n->json ? "" : "\"", status);
        (*err)->status = status;
        goto out;
    }
    if (step_commit(b, s, upper, created_by, err) < 0)
        goto out;
    cache_store(b, s, key, false);
    ret = 0;
out:
    run_mounts_release(b, &mounts);
    step_end(b);
    mk_strv_release(&argv);
    mk_strv_release(&env);
    mk_buf_release(&script);
    return ret;
}

/* WORKDIR: creates the directory (a layer) only when it does not exist yet. */
struct workdir_arg {
    const struct mk_strv *paths;
    const char *user; /* owner of the directories created; NULL = root */
    bool created;
};

static int workdir_fn(int rootfd, void *arg, struct mk_error **err)
{
    struct workdir_arg *a = arg;
    uid_t uid = 0;
    gid_t gid = 0;
    /* A USER the image cannot resolve yet leaves the directory to root. */
    if (a->user && builder_resolve_user(rootfd, a->user, &uid, &gid, NULL) < 0) {
        uid = 0;
        gid = 0;
    }
    for (size_t i = 0; i < a->paths->n; i++) {
        int fd = builder_mkdir_follow(rootfd, a->paths->v[i], 0755, uid, gid, NULL, err);
        if (fd < 0)
            return -1;
        close(fd);
    }
    return 0;
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return true;
    struct dirent *de;
    bool empty = true;
    while (empty && (de = readdir(d)))
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* WORKDIR and VOLUME: creates the missing directories (through symlinks), a layer only when
 * something was created. */
static int make_dirs_step(struct build *b, struct stage *s, const struct mk_df_node *n,
                          const struct mk_strv *paths, const char *user, const char *created_by,
                          struct mk_error **err)
{
    char key[MK_DIGEST_SIZE];
    struct mk_sha256 *h = key_begin(s, n->keyword);
    key_add_strv(h, paths);
    key_add(h, user);
    mk_sha256_final(h, key);
    mk_sha256_free(h);
    bool hit = false;
    cache_lookup(b, s, key, created_by, &hit);
    if (hit)
        return 0;

    _cleanup_free_ char *upper = NULL, *work = NULL;
    int ret = -1;
    if (step_begin(b, s, &upper, &work, err) < 0)
        goto out;
    struct mk_sandbox_spec spec;
    sandbox_spec_init(&spec, s, upper, work);
    struct workdir_arg a = {.paths = paths, .user = user, .created = false};
    if (builder_sandbox_call(&spec, workdir_fn, &a, err) < 0) {
        node_error(b, n, err, "%s", created_by);
        goto out;
    }
    /* fn ran in a child: what it created shows in the upper dir. */
    a.created = !dir_is_empty(upper);
    if (a.created)
        ret = step_commit(b, s, upper, created_by, err);
    else {
        history(b, s, created_by, true);
        ret = 0;
    }
    if (ret == 0)
        cache_store(b, s, key, !a.created);
out:
    step_end(b);
    return ret;
}

static int do_workdir(struct build *b, struct stage *s, const struct mk_df_node *n,
                      struct mk_error **err)
{
    if (n->args.n != 1)
        return node_error(b, n, err, "WORKDIR requires exactly one argument");
    _cleanup_free_ char *w = NULL;
    if (expand_word(b, s, n, n->args.v[0], &w, err) < 0)
        return -1;
    /* As BuildKit (system.NormalizePath): an absolute path is kept as written, a relative
     * one is joined to the current one and cleaned (path.Join). */
    char *path;
    if (w[0] == '/') {
        path = mk_xstrdup(w);
    } else {
        _cleanup_free_ char *joined = mk_xasprintf(
            "%s/%s", s->config.working_dir && *s->config.working_dir ? s->config.working_dir : "",
            w);
        _cleanup_free_ char *clean = builder_path_clean(joined, true);
        path = mk_xasprintf("/%s", strcmp(clean, ".") == 0 ? "" : clean);
    }
    free(s->config.working_dir);
    s->config.working_dir = path;
    _cleanup_free_ char *created_by = mk_xasprintf("WORKDIR %s", path);
    _cleanup_(mk_strv_release) struct mk_strv paths = MK_STRV_INIT;
    mk_strv_push(&paths, path);
    /* As BuildKit: a missing WORKDIR is created owned by the current USER. */
    const char *user = s->config.user && *s->config.user ? s->config.user : NULL;
    return make_dirs_step(b, s, n, &paths, user, created_by, err);
}

/* ---- metadata instructions ---------------------------------------------------------------- */

/* ENV and LABEL nodes come in (key, value, sep) triples. */
static int do_keyvalues(struct build *b, struct stage *s, const struct mk_df_node *n,
                        struct mk_strv *target, const char *kw, struct mk_error **err)
{
    if (n->args.n == 0 || n->args.n % 3 != 0)
        return node_error(b, n, err, "%s requires at least one argument", kw);
    /* As BuildKit (one expansion of the whole instruction before it is dispatched): every
     * pair expands with the values from before the instruction, so "ENV E=new F=${E}-f"
     * sees the old E. */
    struct mk_strv kv = MK_STRV_INIT;
    for (size_t i = 0; i + 2 < n->args.n; i += 3) {
        char *k = NULL, *v = NULL;
        if (expand_word(b, s, n, n->args.v[i], &k, err) < 0 ||
            expand_word(b, s, n, n->args.v[i + 1], &v, err) < 0) {
            free(k);
            mk_strv_release(&kv);
            return -1;
        }
        mk_strv_push_take(&kv, k);
        mk_strv_push_take(&kv, v);
        if (!*k) {
            mk_strv_release(&kv);
            return node_error(b, n, err, "%s names must not be empty", kw);
        }
    }
    struct mk_buf cb = MK_BUF_INIT;
    mk_buf_adds(&cb, kw);
    for (size_t i = 0; i + 1 < kv.n; i += 2) {
        mk_strv_env_set(target, kv.v[i], kv.v[i + 1]);
        mk_buf_addf(&cb, " %s=%s", kv.v[i], kv.v[i + 1]);
    }
    history(b, s, cb.data, true);
    mk_buf_release(&cb);
    mk_strv_release(&kv);
    return 0;
}

static int do_arg(struct build *b, struct stage *s, struct mk_strv *scope,
                  const struct mk_df_node *n, struct mk_error **err)
{
    if (n->args.n == 0)
        return node_error(b, n, err, "ARG requires at least one argument");
    /* BuildKit's history line: each name with the value it got, if any. */
    struct mk_buf hist = MK_BUF_INIT;
    mk_buf_adds(&hist, "ARG");
    for (size_t i = 0; i < n->args.n; i++) {
        const char *word = n->args.v[i];
        const char *eq = strchr(word, '=');
        _cleanup_free_ char *name = eq ? mk_xstrndup(word, (size_t)(eq - word)) : mk_xstrdup(word);
        _cleanup_free_ char *def = NULL;
        bool has_default = eq != NULL;
        if (eq) {
            struct mk_strv env = MK_STRV_INIT;
            if (s)
                stage_expand_env(s, &env);
            else
                mk_strv_copy(&env, scope);
            int r = mk_shell_word(eq + 1, &env, b->df->escape, &def, err);
            mk_strv_release(&env);
            if (r < 0) {
                mk_buf_release(&hist);
                return node_where(b, n, err);
            }
        }
        const char *given = mk_strv_env_get(&b->build_args, name);
        const char *value = NULL;
        if (given) {
            value = given;
            mk_strv_push(&b->used_build_args, name);
        } else if (has_default) {
            value = def;
        } else if (s) {
            /* A stage ARG without a default inherits the global value of the same name. */
            value = mk_strv_env_get(&b->meta_args, name);
        }
        /* As BuildKit (dispatchArg): an ARG without a value is not set at all, so RUN and
         * ${NAME+set} see it unset, and an earlier value stays. */
        if (value)
            mk_strv_env_set(scope, name, value);
        if (s && !strv_has(&s->arg_names, name))
            mk_strv_push(&s->arg_names, name);
        mk_buf_addf(&hist, " %s", name);
        if (value)
            mk_buf_addf(&hist, "=%s", value);
    }
    if (s)
        history(b, s, hist.data, true);
    mk_buf_release(&hist);
    return 0;
}

static int do_cmd_like(struct build *b, struct stage *s, const struct mk_df_node *n,
                       struct mk_strv *target, bool *has, struct mk_error **err)
{
    (void)b;
    (void)err;
    mk_strv_clear(target);
    if (n->json) {
        mk_strv_copy(target, &n->args);
    } else if (n->args.n) {
        if (s->config.shell.n)
            mk_strv_copy(target, &s->config.shell);
        else {
            mk_strv_push(target, "/bin/sh");
            mk_strv_push(target, "-c");
        }
        mk_strv_push(target, n->args.v[0]);
    }
    *has = true;
    return 0;
}

/* A list as Go's fmt prints a []string in BuildKit's history lines: %v gives
 * "[a b]", %q gives "[\"a\" \"b\"]" (strconv.Quote escapes). */
static char *go_list(const struct mk_strv *l, bool quote)
{
    struct mk_buf out = MK_BUF_INIT;
    mk_buf_addc(&out, '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            mk_buf_addc(&out, ' ');
        if (!quote) {
            mk_buf_adds(&out, l->v[i]);
            continue;
        }
        mk_buf_addc(&out, '"');
        for (const unsigned char *p = (const unsigned char *)l->v[i]; *p; p++) {
            static const char named[] = "abtnvfr";
            if (*p == '"' || *p == '\\') {
                mk_buf_addc(&out, '\\');
                mk_buf_addc(&out, (char)*p);
            } else if (*p >= 7 && *p <= 13) {
                mk_buf_addc(&out, '\\');
                mk_buf_addc(&out, named[*p - 7]);
            } else if (*p < 0x20 || *p == 0x7f) {
                mk_buf_addf(&out, "\\x%02x", *p);
            } else {
                mk_buf_addc(&out, (char)*p);
            }
        }
        mk_buf_addc(&out, '"');
    }
    mk_buf_addc(&out, ']');
    return mk_buf_detach(&out);
}

static void strv_add_unique(struct mk_strv *l, const char *v)
{
    if (!strv_has(l, v))
        mk_strv_push(l, v);
}

/* One port number of EXPOSE: decimal, 0-65535. */
static bool expose_port_number(const char *s, size_t len, unsigned *ret)
{
    if (!len || len > 5 || strspn(s, "0123456789") < len)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    if (v > 65535)
        return false;
    *ret = v;
    return true;
}

/* One EXPOSE word as BuildKit's portSpecs.parsePort reads it: [[ip:]host:]port[-end][/proto],
 * every port of a range listed, the protocol lowercased (tcp when absent). NULL with a reason
 * in *ret_why when it is not a port. */
static const char *expose_parse(const char *raw, struct mk_strv *out, char **ret_why)
{
    const char *cport = strrchr(raw, ':') ? strrchr(raw, ':') + 1 : raw;
    const char *slash = strchr(cport, '/');
    size_t plen = slash ? (size_t)(slash - cport) : strlen(cport);
    _cleanup_free_ char *proto = mk_xstrdup(slash ? slash + 1 : "");
    for (char *p = proto; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!plen) {
        *ret_why = mk_xstrdup("no port specified");
        return NULL;
    }
    if (*proto && strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 &&
        strcmp(proto, "sctp") != 0) {
        *ret_why = mk_xasprintf("invalid proto \"%s\"", slash + 1);
        return NULL;
    }
    const char *dash = memchr(cport, '-', plen);
    unsigned start, end;
    if (!expose_port_number(cport, dash ? (size_t)(dash - cport) : plen, &start) ||
        (dash && !expose_port_number(dash + 1, plen - (size_t)(dash + 1 - cport), &end)) ||
        (dash && end < start)) {
        *ret_why = mk_xasprintf("invalid containerPort: %.*s", (int)plen, cport);
        return NULL;
    }
    if (!dash)
        end = start;
    for (unsigned p = start; p <= end; p++)
        mk_strv_pushf(out, "%u/%s", p, *proto ? proto : "tcp");
    return raw;
}

static int do_expose(struct build *b, struct stage *s, const struct mk_df_node *n,
                     struct mk_error **err)
{
    struct mk_strv env = MK_STRV_INIT, words = MK_STRV_INIT, ports = MK_STRV_INIT;
    stage_expand_env(s, &env);
    int r = 0;
    for (size_t i = 0; i < n->args.n && r == 0; i++)
        if (mk_shell_words(n->args.v[i], &env, b->df->escape, &words, err) < 0)
            r = node_where(b, n, err);
    for (size_t w = 0; w < words.n && r == 0; w++) {
        _cleanup_free_ char *why = NULL;
        if (!expose_parse(words.v[w], &ports, &why))
            r = node_error(b, n, err, "EXPOSE: invalid port \"%s\": %s", words.v[w], why);
    }
    if (r == 0) {
        for (size_t i = 0; i < ports.n; i++)
            strv_add_unique(&s->config.exposed_ports, ports.v[i]);
        /* BuildKit's history line is fmt's %v of the port list. */
        _cleanup_free_ char *list = go_list(&ports, false);
        _cleanup_free_ char *h = mk_xasprintf("EXPOSE %s", list);
        history(b, s, h, true);
    }
    mk_strv_release(&env);
    mk_strv_release(&words);
    mk_strv_release(&ports);
    return r;
}

static int parse_duration(const char *s, int64_t *ret)
{
    /* Go durations as HEALTHCHECK takes them: 30s, 1m30s, 500ms, 1h. */
    int64_t total = 0;
    const char *p = s;
    if (!*p)
        return -1;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno)
            return -1;
        p = end;
        int64_t unit;
        if (mk_str_has_prefix(p, "ns")) {
            unit = 1;
            p += 2;
        } else if (mk_str_has_prefix(p, "us")) {
            unit = 1000;
            p += 2;
        } else if (mk_str_has_prefix(p, "ms")) {
            unit = 1000000;
            p += 2;
        } else if (*p == 's') {
            unit = 1000000000;
            p++;
        } else if (*p == 'm') {
            unit = 60LL * 1000000000;
            p++;
        } else if (*p == 'h') {
            unit = 3600LL * 1000000000;
            p++;
        } else {
            return -1;
        }
        total += (int64_t)(v * (double)unit);
    }
    *ret = total;
    return 0;
}

static int do_healthcheck(struct build *b, struct stage *s, const struct mk_df_node *n,
                          struct mk_error **err)
{
    struct mk_healthcheck *h = &s->config.healthcheck;
    mk_strv_release(&h->test);
    memset(h, 0, sizeof(*h));
    h->set = true;
    if (n->args.n == 0)
        return node_error(b, n, err, "HEALTHCHECK requires an argument");
    _cleanup_free_ char *kind = upper_keyword(n->args.v[0]);
    if (strcmp(kind, "NONE") == 0) {
        if (n->args.n > 1 || n->flags.n)
            return node_error(b, n, err, "HEALTHCHECK NONE takes no arguments");
        mk_strv_push(&h->test, "NONE");
    } else if (strcmp(kind, "CMD") == 0) {
        if (n->json) {
            mk_strv_push(&h->test, "CMD");
            for (size_t i = 1; i < n->args.n; i++)
                mk_strv_push(&h->test, n->args.v[i]);
        } else {
            mk_strv_push(&h->test, "CMD-SHELL");
            mk_strv_push(&h->test, n->args.n > 1 ? n->args.v[1] : "");
        }
        struct {
            const char *name;
            int64_t *field;
        } durs[] = {{"interval", &h->interval},
                    {"timeout", &h->timeout},
                    {"start-period", &h->start_period},
                    {"start-interval", &h->start_interval}};
        for (size_t i = 0; i < MK_ARRAY_SIZE(durs); i++) {
            const char *v = NULL;
            if (mk_df_node_flag(n, durs[i].name, &v) &&
                (!v || parse_duration(v, durs[i].field) < 0 || *durs[i].field < 0))
                return node_error(b, n, err, "invalid --%s value \"%s\"", durs[i].name, v ? v : "");
        }
        const char *r = NULL;
        if (mk_df_node_flag(n, "retries", &r) &&
            (!r || mk_parse_int(r, &h->retries) < 0 || h->retries < 0))
            return node_error(b, n, err, "invalid --retries value \"%s\"", r ? r : "");
    } else {
        return node_error(b, n, err, "unknown type \"%s\" in HEALTHCHECK (try CMD)", n->args.v[0]);
    }
    history(b, s, n->original, true);
    return 0;
}

/* ---- COPY / ADD --------------------------------------------------------------------------- */

struct copy_call {
    const struct mk_copy_spec *spec;     /* local sources (context, stage, heredocs) */
    const struct mk_copy_spec *url_spec; /* ADD <url>: the downloads, or NULL */
};

struct copy_key {
    struct build *b;
    struct mk_sha256 *h;
    int srcfd; /* -1: the build context */
};

/* Feeds what COPY would copy into the step key: paths, types, modes and content. */
static int copy_key_visit(const char *rel, const struct stat *st, const char *dest, void *arg,
                          struct mk_error **err)
{
    struct copy_key *k = arg;
    char line[64];
    snprintf(line, sizeof(line), "%o", (unsigned)st->st_mode);
    key_part("file %s", rel);
    key_add(k->h, rel);
    key_add(k->h, dest);
    key_add(k->h, line);
    if (S_ISREG(st->st_mode)) {
        char d[MK_DIGEST_SIZE];
        if (k->srcfd >= 0) {
            /* COPY --from: the source's content is named by its layers (in the key). */
            snprintf(d, sizeof(d), "%llu", (unsigned long long)st->st_size);
        } else if (builder_hashcache_file(k->b->hc, builder_context_dirfd(k->b->ctx), rel, st, d,
                                          err) < 0)
            return -1;
        key_add(k->h, d);
    } else if (S_ISLNK(st->st_mode)) {
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

static int key_context_tree(struct build *b, struct mk_sha256 *h, const char *rel,
                            struct mk_error **err)
{
    if (!b->hc && builder_hashcache_open(b->store, b->opts->context_dir, &b->hc, err) < 0)
        return -1;
    struct copy_key k = {.b = b, .h = h, .srcfd = -1};
    return builder_context_walk(b->ctx, rel, key_tree_visit, &k, err);
}

static int copy_fn(int rootfd, void *arg, struct mk_error **err)
{
    struct copy_call *c = arg;
    if (c->spec->sources->n && builder_copy_into(rootfd, c->spec, err) < 0)
        return -1;
    return c->url_spec ? builder_copy_into(rootfd, c->url_spec, err) : 0;
}

/* A boolean flag: absent = def, bare or "true" (any case) = true. */
static bool flag_bool(const struct mk_df_node *n, const char *name, bool def)
{
    const char *v = NULL;
    if (!mk_df_node_flag(n, name, &v))
        return def;
    return !v || strcasecmp(v, "true") == 0;
}

/* ADD <url>: the downloads live in a store tmpdir, one subdirectory per URL so that two
 * URLs with the same file name do not collide; it is the source root of a second copy. */
struct url_sources {
    struct mk_strv urls, rel, digests; /* rel: "0/name"; digests: "" until downloaded */
    struct src_root root;
};

static void url_sources_release(struct build *b, struct url_sources *u);

static int url_download(struct build *b, const struct mk_df_node *n, struct url_sources *u,
                        size_t i, const char *checksum, struct mk_error **err)
{
    char d[MK_DIGEST_SIZE];
    if (builder_url_fetch(u->urls.v[i], b->opts->registry, u->root.fd, u->rel.v[i], d, err) < 0)
        return node_where(b, n, err);
    if (checksum && strcmp(d, checksum) != 0) {
        _cleanup_free_ char *where = where_of(b, n);
        return mk_error_set_at(err, MK_ERR_DIGEST, where,
                               "downloading \"%s\": checksum mismatch: got %s, want %s",
                               u->urls.v[i], d, checksum);
    }
    free(u->digests.v[i]);
    u->digests.v[i] = mk_xstrdup(d);
    return 0;
}

static struct stage *find_stage(struct build *b, const char *name, size_t before);

/* COPY --from: the source stage's or image's root, mounted read-only-in-practice by a
 * sandbox child that hands an fd of it back over a socket. The mount outlives the child's
 * mount namespace as long as the fd is open (like a lazy unmount), and disappears with it. */
static int send_root_fn(int rootfd, void *arg, struct mk_error **err)
{
    int sock = *(int *)arg;
    char byte = 'r';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &rootfd, sizeof(int));
    if (sendmsg(sock, &msg, 0) != 1)
        return mk_error_errno(err, "handing over the source root");
    return 0;
}

static int recv_fd(int sock, struct mk_error **err)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    if (recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
        return mk_error_errno(err, "receiving the source root");
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return mk_error_set(err, MK_ERR_IO, 0, "receiving the source root: no descriptor");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

static void src_root_release(struct build *b, struct src_root *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->tmp) {
        layerstore_tmpdir_remove(b->store, r->tmp, NULL);
        free(r->tmp);
        r->tmp = NULL;
    }
}

static int src_root_open(struct build *b, const struct mk_strv *lowerdirs, struct src_root *r,
                         struct mk_error **err)
{
    r->fd = -1;
    struct mk_workspace ws;
    if (builder_workspace_new(b->store, "src-", &ws, err) < 0)
        return -1;
    r->tmp = MK_TAKE_PTR(ws.tmp);
    _cleanup_free_ char *upper = MK_TAKE_PTR(ws.upper);
    _cleanup_free_ char *work = MK_TAKE_PTR(ws.work);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
        return mk_error_errno(err, "socketpair");
    struct mk_sandbox_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.lowerdirs = lowerdirs;
    spec.upperdir = upper;
    spec.workdir = work;
    spec.stdout_fd = spec.stderr_fd = -1;
    int rc = builder_sandbox_call(&spec, send_root_fn, &sv[1], err);
    if (rc == 0)
        r->fd = recv_fd(sv[0], err);
    close(sv[0]);
    close(sv[1]);
    return rc < 0 || r->fd < 0 ? -1 : 0;
}

/* The image name for the stage's platform (FROM, COPY --from, RUN --mount from=): from a
 * name that holds several, or pulled for it. For the host's platform a plain image of any
 * platform is taken, as before there were platforms. */
static int stage_image_get(struct build *b, const struct stage *s, const char *name,
                           struct mk_image **ret, struct mk_error **err)
{
    struct registry_opts ropts;
    if (b->opts->registry)
        ropts = *b->opts->registry;
    else
        memset(&ropts, 0, sizeof(ropts));
    char plat[MK_PLATFORM_MAX];
    layerstore_platform_format(&s->platform, plat);
    struct mk_platform host;
    layerstore_platform_host(&host);
    if (!layerstore_platform_equal(&s->platform, &host))
        ropts.platform = plat;
    /* A pulled base joins the platforms the name holds: the next platform's build finds
     * it, and this one's stays. */
    ropts.add_platform = true;
    return registry_image_get(b->store, name, b->opts->pull, &ropts, ret, err);
}

/* Lowerdirs of a --from value: an earlier stage (by name or index) or an image. */
static int from_lowerdirs(struct build *b, struct stage *s, const struct mk_df_node *n,
                          const char *from, struct mk_strv *ret, struct mk_error **err)
{
    struct stage *src = find_stage(b, from, s->index);
    if (src) {
        if (!src->built)
            return node_error(b, n, err, "stage \"%s\" was not built", from);
        mk_strv_copy(ret, &src->lowerdirs);
        return 0;
    }
    struct mk_image *img = NULL;
    if (stage_image_get(b, s, from, &img, err) < 0) {
        if (*err && (*err)->code == MK_ERR_NOT_FOUND && b->opts->pull == REGISTRY_PULL_NEVER) {
            mk_error_free(*err);
            *err = NULL;
            return node_error(b, n, err,
                              "--from=%s names no earlier stage and no image in the store", from);
        }
        return node_error(b, n, err, "--from=%s names no earlier stage, and as an image", from);
    }
    int r = builder_image_lowerdirs(b->store, img, ret, err);
    layerstore_image_free(img);
    return r < 0 ? node_where(b, n, err) : 0;
}

/* COPY <<EOF: each heredoc becomes a file named after its delimiter in a private dir that
 * serves as the copy's source root. */
static int write_heredocs(struct build *b, struct stage *s, const struct mk_df_node *n,
                          struct src_root *r, struct mk_error **err)
{
    r->tmp = layerstore_tmpdir(b->store, "heredoc-", err);
    if (!r->tmp)
        return node_where(b, n, err);
    _cleanup_close_ int dfd = open(r->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", r->tmp);
    for (size_t i = 0; i < n->n_heredocs; i++) {
        const struct mk_df_heredoc *h = &n->heredocs[i];
        if (!*h->name || strchr(h->name, '/'))
            return node_error(b, n, err, "invalid heredoc name \"%s\"", h->name);
        struct mk_buf body = MK_BUF_INIT;
        const char *p = h->content;
        while (*p) {
            if (h->chomp)
                while (*p == '\t')
                    p++;
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
            mk_buf_add(&body, p, len);
            p += len;
        }
        char *data = mk_buf_detach(&body);
        if (h->expand) {
            /* As BuildKit (ExpandRaw): variables expanded, quotes kept. */
            char *exp = NULL;
            struct mk_error *e = NULL;
            struct mk_strv env = MK_STRV_INIT;
            stage_expand_env(s, &env);
            if (mk_shell_word_keep_quotes(data, &env, &exp, &e) == 0) {
                free(data);
                data = exp;
            }
            mk_strv_release(&env);
            mk_error_free(e);
        }
        _cleanup_close_ int fd =
            openat(dfd, h->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        int wr = fd < 0 ? mk_error_errno(err, "writing heredoc \"%s\"", h->name)
                        : mk_write_all(fd, data, strlen(data), err);
        if (fd >= 0)
            fchmod(fd, 0644);
        free(data);
        if (wr < 0)
            return node_where(b, n, err);
    }
    r->fd = open(r->tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (r->fd < 0)
        return mk_error_errno(err, "opening \"%s\"", r->tmp);
    return 0;
}

static void url_sources_release(struct build *b, struct url_sources *u)
{
    src_root_release(b, &u->root);
    mk_strv_release(&u->urls);
    mk_strv_release(&u->rel);
    mk_strv_release(&u->digests);
}

static int do_copy(struct build *b, struct stage *s, const struct mk_df_node *n, bool is_add,
                   struct mk_error **err)
{
    const char *kw = is_add ? "ADD" : "COPY";
    if (n->args.n < 2 && !(n->n_heredocs && n->args.n >= 1))
        return node_error(b, n, err, "%s requires at least two arguments", kw);
    const char *from = NULL, *chown = NULL, *chmod = NULL, *checksum = NULL;
    mk_df_node_flag(n, "from", &from);
    mk_df_node_flag(n, "chown", &chown);
    mk_df_node_flag(n, "chmod", &chmod);
    mk_df_node_flag(n, "checksum", &checksum);
    /* As BuildKit: --link copies into an empty root (no symlink of an earlier layer is
     * followed, parents are plain directories); with --chmod it is ignored. */
    bool link = flag_bool(n, "link", false) && !chmod;
    if (from && is_add)
        return node_error(b, n, err, "ADD does not support --from (use COPY --from)");
    struct mk_copy_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.src_rootfd = -1;
    mode_t mode = 0;
    if (chmod && mk_chmod_apply(chmod, 0644, false, &mode) < 0)
        return node_error(b, n, err,
                          "invalid --chmod value \"%s\" (octal, e.g. 0755, or symbolic, "
                          "e.g. u=rwx,go=rx)",
                          chmod);
    spec.chmod = chmod;
    /* Local archives are unpacked unless --unpack=false, downloads only with --unpack=true. */
    spec.extract = is_add && flag_bool(n, "unpack", true);
    spec.parents = mk_df_node_flag(n, "parents", NULL);

    struct mk_strv sources = MK_STRV_INIT, src_lowers = MK_STRV_INIT, excludes = MK_STRV_INIT;
    struct mk_ignore *exclude = NULL;
    struct src_root src = {NULL, -1}, heredocs = {NULL, -1};
    struct url_sources urls = {MK_STRV_INIT, MK_STRV_INIT, MK_STRV_INIT, {NULL, -1}};
    struct mk_copy_spec url_spec;
    _cleanup_free_ char *from_name = NULL;
    _cleanup_free_ char *dest_word = NULL, *chown_exp = NULL, *dest = NULL;
    _cleanup_free_ char *upper = NULL, *work = NULL, *created_by = NULL;
    int ret = -1;
    size_t next_heredoc = 0;
    /* BuildKit's history line: flags, expanded sources, heredocs, then the destination. */
    struct mk_buf hist_src = MK_BUF_INIT;
    if (n->n_heredocs && (from || n->args.n != n->n_heredocs + 1)) {
        node_error(b, n, err, "%s with heredoc sources takes only heredocs as sources", kw);
        goto out;
    }
    if (n->n_heredocs && write_heredocs(b, s, n, &heredocs, err) < 0)
        goto out;
    for (size_t i = 0; i + 1 < n->args.n; i++) {
        char *w = NULL;
        if (n->n_heredocs) {
            mk_buf_addf(&hist_src, " <<%s", n->heredocs[next_heredoc].name);
            mk_strv_push(&sources, n->heredocs[next_heredoc++].name);
            continue;
        }
        if (expand_word(b, s, n, n->args.v[i], &w, err) < 0)
            goto out;
        mk_buf_addf(&hist_src, " %s", w);
        if (is_add && builder_is_git_url(w)) {
            node_error(b, n, err, "ADD from a git repository (\"%s\") is not supported yet", w);
            free(w);
            goto out;
        }
        if (builder_is_http_url(w)) {
            if (!is_add) {
                node_error(b, n, err, "COPY cannot take a URL (\"%s\") as a source: use ADD", w);
                free(w);
                goto out;
            }
            _cleanup_free_ char *name = builder_url_filename(w);
            mk_strv_pushf(&urls.rel, "%zu/%s", urls.urls.n, name);
            mk_strv_push_take(&urls.urls, w);
            mk_strv_push(&urls.digests, "");
            continue;
        }
        mk_strv_push_take(&sources, w);
    }
    if (expand_word(b, s, n, n->args.v[n->args.n - 1], &dest_word, err) < 0 ||
        (chown && expand_word(b, s, n, chown, &chown_exp, err) < 0))
        goto out;
    spec.chown = chown_exp;
    created_by = mk_xasprintf("%s%s%s%s%s%s%s %s # buildkit", kw, spec.parents ? " --parents" : "",
                              chown_exp ? " --chown=" : "", chown_exp ? chown_exp : "",
                              chmod ? " --chmod=" : "", chmod ? chmod : "",
                              hist_src.data ? hist_src.data : "", dest_word);
    for (size_t i = 0; i < n->flags.n; i++) {
        char *w = NULL;
        if (!mk_str_has_prefix(n->flags.v[i], "--exclude="))
            continue;
        if (expand_word(b, s, n, n->flags.v[i] + strlen("--exclude="), &w, err) < 0)
            goto out;
        mk_strv_push_take(&excludes, w);
    }
    if (excludes.n && mk_ignore_new(&excludes, &exclude, err) < 0) {
        node_error(b, n, err, "invalid --exclude pattern");
        goto out;
    }
    spec.exclude = exclude;
    spec.dest_is_dir = mk_str_has_suffix(dest_word, "/") || strcmp(dest_word, ".") == 0 ||
                       mk_str_has_suffix(dest_word, "/.");
    if (checksum) {
        /* BuildKit's rules and wording. */
        if (sources.n + urls.urls.n != 1) {
            node_error(b, n, err, "checksum can't be specified for multiple sources");
            goto out;
        }
        if (!urls.urls.n) {
            node_error(b, n, err, "checksum requires HTTP(S) or Git sources");
            goto out;
        }
        if (!mk_digest_valid(checksum)) {
            node_error(b, n, err, "invalid --checksum value \"%s\" (want sha256:<64 hex digits>)",
                       checksum);
            goto out;
        }
    }
    if (urls.urls.n && sources.n + urls.urls.n > 1 && !spec.dest_is_dir) {
        node_error(b, n, err,
                   "when using ADD with more than one source file, the destination must be a "
                   "directory and end with a /");
        goto out;
    }
    if (urls.urls.n) {
        urls.root.tmp = layerstore_tmpdir(b->store, "url-", err);
        if (!urls.root.tmp) {
            node_where(b, n, err);
            goto out;
        }
        urls.root.fd = open(urls.root.tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (urls.root.fd < 0) {
            mk_error_errno(err, "opening \"%s\"", urls.root.tmp);
            goto out;
        }
        /* Without --checksum only the content can tell whether the step is cached: docker
         * downloads on every build too. */
        for (size_t i = 0; !checksum && i < urls.urls.n; i++)
            if (url_download(b, n, &urls, i, NULL, err) < 0)
                goto out;
    }
    if (dest_word[0] == '/')
        dest = mk_xstrdup(dest_word);
    else
        dest = mk_xasprintf("%s/%s", s->config.working_dir ? s->config.working_dir : "", dest_word);
    if (from) {
        _cleanup_free_ char *from_exp = NULL;
        if (expand_word(b, s, n, from, &from_exp, err) < 0)
            goto out;
        if (from_lowerdirs(b, s, n, from_exp, &src_lowers, err) < 0)
            goto out;
        from_name = MK_TAKE_PTR(from_exp);
        /* The source root is mounted only on a cache miss: its layers (in src_lowers)
         * already name its content for the key. */
    } else if (n->n_heredocs) {
        spec.src_rootfd = heredocs.fd;
    } else {
        spec.ctx = b->ctx;
    }
    spec.sources = &sources;
    spec.dest = dest;

    char key[MK_DIGEST_SIZE];
    {
        if (!b->hc && builder_hashcache_open(b->store, b->opts->context_dir, &b->hc, err) < 0)
            goto out;
        struct copy_key k = {.b = b, .h = key_begin(s, kw), .srcfd = spec.src_rootfd};
        key_part("source stage or image");
        key_add_strv(k.h, &src_lowers);
        key_part("heredocs");
        for (size_t i = 0; i < n->n_heredocs; i++)
            key_add(k.h, n->heredocs[i].content);
        key_part("sources and options");
        key_add_strv(k.h, &sources);
        key_add(k.h, dest);
        key_add(k.h, spec.dest_is_dir ? "dir" : "file");
        key_add(k.h, spec.chown);
        key_add(k.h, chmod);
        key_add(k.h, spec.parents ? "parents" : "");
        key_add_strv(k.h, &excludes);
        if (link)
            key_add(k.h, "link");
        if (spec.extract != is_add)
            key_add(k.h, "unpack");
        for (size_t i = 0; i < urls.urls.n; i++) {
            key_part("url %s", urls.urls.v[i]);
            key_add(k.h, urls.urls.v[i]);
            key_add(k.h, urls.rel.v[i]);
            key_add(k.h, checksum ? checksum : urls.digests.v[i]);
            key_add(k.h, flag_bool(n, "unpack", false) ? "unpack" : "");
        }
        struct mk_copy_spec vspec = spec;
        vspec.visit = copy_key_visit;
        vspec.visit_arg = &k;
        int r = from ? 0 : builder_copy_into(-1, &vspec, err);
        mk_sha256_final(k.h, key);
        mk_sha256_free(k.h);
        if (r < 0) {
            node_error(b, n, err, "%s failed", kw);
            goto out;
        }
    }
    bool hit = false;
    cache_lookup(b, s, key, created_by, &hit);
    if (hit) {
        ret = 0;
        goto out;
    }

    for (size_t i = 0; checksum && i < urls.urls.n; i++)
        if (url_download(b, n, &urls, i, checksum, err) < 0)
            goto out;
    if (from) {
        if (src_root_open(b, &src_lowers, &src, err) < 0) {
            node_error(b, n, err, "COPY --from=%s", from_name);
            goto out;
        }
        spec.src_rootfd = src.fd;
    }
    if (step_begin(b, s, &upper, &work, err) < 0)
        goto out;
    struct mk_sandbox_spec sb;
    sandbox_spec_init(&sb, s, upper, work);
    if (link)
        sb.lowerdirs = NULL;
    if (urls.urls.n) {
        url_spec = spec;
        url_spec.ctx = NULL;
        url_spec.src_rootfd = urls.root.fd;
        url_spec.sources = &urls.rel;
        url_spec.extract = is_add && flag_bool(n, "unpack", false);
        url_spec.parents = false;
        url_spec.exclude = NULL;
    }
    struct copy_call call = {.spec = &spec, .url_spec = urls.urls.n ? &url_spec : NULL};
    if (builder_sandbox_call(&sb, copy_fn, &call, err) < 0) {
        node_error(b, n, err, "%s failed", kw);
        goto out;
    }
    ret = step_commit(b, s, upper, created_by, err);
    if (ret == 0)
        cache_store(b, s, key, false);
out:
    step_end(b);
    mk_buf_release(&hist_src);
    src_root_release(b, &src);
    src_root_release(b, &heredocs);
    url_sources_release(b, &urls);
    mk_ignore_free(exclude);
    mk_strv_release(&excludes);
    mk_strv_release(&src_lowers);
    mk_strv_release(&sources);
    return ret;
}

/* ---- stages ------------------------------------------------------------------------------- */

static int stage_from_base(struct build *b, struct stage *s, const struct mk_df_node *n,
                           struct mk_error **err);

/* Like BuildKit, a stage whose base sets no PATH gets the default one in its config. */
static int stage_from(struct build *b, struct stage *s, const struct mk_df_node *n,
                      struct mk_error **err)
{
    if (stage_from_base(b, s, n, err) < 0)
        return -1;
    if (!mk_strv_env_get(&s->config.env, "PATH"))
        mk_strv_env_set(&s->config.env, "PATH", default_path_env + 5);
    return 0;
}

/* "busybox" -> "docker.io/library/busybox:latest", as BuildKit writes base.name. */
static char *qualified_ref(const char *image)
{
    _cleanup_free_ char *norm = layerstore_normalize_ref(image, NULL);
    const char *r = norm ? norm : image;
    const char *slash = strchr(r, '/');
    bool has_host =
        slash && (memchr(r, '.', (size_t)(slash - r)) || memchr(r, ':', (size_t)(slash - r)) ||
                  ((size_t)(slash - r) == 9 && strncmp(r, "localhost", 9) == 0));
    if (has_host)
        return mk_xstrdup(r);
    return mk_xasprintf("docker.io/%s%s", slash ? "" : "library/", r);
}

static int stage_from_base(struct build *b, struct stage *s, const struct mk_df_node *n,
                           struct mk_error **err)
{
    if (n->args.n != 1 && !(n->args.n == 3 && strcasecmp(n->args.v[1], "as") == 0))
        return node_error(b, n, err, "FROM requires either one or three arguments");
    _cleanup_free_ char *image = NULL;
    struct mk_strv env = MK_STRV_INIT;
    mk_strv_copy(&env, &b->meta_args);
    int r = mk_shell_word(n->args.v[0], &env, b->df->escape, &image, err);
    mk_strv_release(&env);
    if (r < 0)
        return node_where(b, n, err);
    if (!*image)
        return node_error(b, n, err, "base name (%s) should not be blank", n->args.v[0]);
    s->base_name = mk_xstrdup(image);

    /* An earlier stage by name (case-insensitive) or index. */
    for (size_t i = 0; i < s->index; i++) {
        struct stage *p = &b->stages[i];
        char idx[32];
        snprintf(idx, sizeof(idx), "%zu", i);
        if ((p->name && strcasecmp(p->name, image) == 0)) {
            if (!p->built)
                return node_error(b, n, err, "stage \"%s\" was not built", image);
            layerstore_config_copy(&s->config, &p->config);
            for (size_t l = 0; l < p->n_layers; l++) {
                s->layers = mk_xreallocarray(s->layers, s->n_layers + 1, sizeof(*s->layers));
                s->layers[s->n_layers] = p->layers[l];
                s->layers[s->n_layers].media_type = mk_xstrdup(p->layers[l].media_type);
                s->n_layers++;
            }
            memcpy(s->chain, p->chain, MK_DIGEST_SIZE);
            mk_strv_copy(&s->lowerdirs, &p->lowerdirs);
            s->base_ref = p->base_ref ? mk_xstrdup(p->base_ref) : NULL;
            memcpy(s->base_digest, p->base_digest, MK_DIGEST_SIZE);
            s->n_base_layers = p->n_base_layers;
            s->n_base_history = p->n_base_history;
            return 0;
        }
    }
    if (strcasecmp(image, "scratch") == 0) {
        s->config.os = mk_xstrdup(s->platform.os);
        s->config.architecture = mk_xstrdup(s->platform.arch);
        s->config.variant = s->platform.variant[0] ? mk_xstrdup(s->platform.variant) : NULL;
        return 0;
    }
    struct mk_image *img = NULL;
    if (stage_image_get(b, s, image, &img, err) < 0)
        return node_error(b, n, err, "base image \"%s\"", image);
    layerstore_config_copy(&s->config, &img->config);
    s->n_layers = img->n_layers;
    s->layers = mk_xcalloc(img->n_layers ? img->n_layers : 1, sizeof(*s->layers));
    for (size_t l = 0; l < img->n_layers; l++) {
        s->layers[l] = img->layers[l];
        s->layers[l].media_type = mk_xstrdup(img->layers[l].media_type);
    }
    layerstore_image_chain_id(img, img->n_layers, s->chain);
    s->n_base_layers = img->n_layers;
    s->n_base_history = s->config.n_history;
    s->base_ref = qualified_ref(image);
    memcpy(s->base_digest, img->manifest_digest, MK_DIGEST_SIZE);
    r = builder_image_lowerdirs(b->store, img, &s->lowerdirs, err);
    layerstore_image_free(img);
    if (r < 0)
        return node_error(b, n, err, "preparing base image \"%s\"", image);
    return 0;
}

static int run_instruction(struct build *b, struct stage *s, const struct mk_df_node *n,
                           struct mk_error **err)
{
    const char *kw = n->keyword;
    if (strcmp(kw, "run") == 0)
        return do_run(b, s, n, err);
    if (strcmp(kw, "copy") == 0 || strcmp(kw, "add") == 0)
        return do_copy(b, s, n, strcmp(kw, "add") == 0, err);
    if (strcmp(kw, "workdir") == 0)
        return do_workdir(b, s, n, err);
    if (strcmp(kw, "env") == 0)
        return do_keyvalues(b, s, n, &s->config.env, "ENV", err);
    if (strcmp(kw, "label") == 0)
        return do_keyvalues(b, s, n, &s->config.labels, "LABEL", err);
    if (strcmp(kw, "arg") == 0)
        return do_arg(b, s, &s->args, n, err);
    if (strcmp(kw, "cmd") == 0) {
        do_cmd_like(b, s, n, &s->config.cmd, &s->config.has_cmd, err);
        s->cmd_set = true;
        _cleanup_free_ char *j = go_list(&s->config.cmd, true);
        _cleanup_free_ char *h = mk_xasprintf("CMD %s", j);
        history(b, s, h, true);
        return 0;
    }
    if (strcmp(kw, "entrypoint") == 0) {
        do_cmd_like(b, s, n, &s->config.entrypoint, &s->config.has_entrypoint, err);
        if (!s->cmd_set) {
            mk_strv_clear(&s->config.cmd);
            s->config.has_cmd = false;
        }
        _cleanup_free_ char *j = go_list(&s->config.entrypoint, true);
        _cleanup_free_ char *h = mk_xasprintf("ENTRYPOINT %s", j);
        history(b, s, h, true);
        return 0;
    }
    if (strcmp(kw, "user") == 0) {
        if (n->args.n != 1)
            return node_error(b, n, err, "USER requires exactly one argument");
        _cleanup_free_ char *u = NULL;
        if (expand_word(b, s, n, n->args.v[0], &u, err) < 0)
            return -1;
        free(s->config.user);
        s->config.user = mk_xstrdup(u);
        _cleanup_free_ char *h = mk_xasprintf("USER %s", u);
        history(b, s, h, true);
        return 0;
    }
    if (strcmp(kw, "expose") == 0)
        return do_expose(b, s, n, err);
    if (strcmp(kw, "volume") == 0) {
        _cleanup_(mk_strv_release) struct mk_strv paths = MK_STRV_INIT;
        for (size_t i = 0; i < n->args.n; i++) {
            _cleanup_free_ char *v = NULL;
            if (expand_word(b, s, n, n->args.v[i], &v, err) < 0)
                return -1;
            if (!*v)
                return node_error(b, n, err, "VOLUME specified can not be an empty string");
            strv_add_unique(&s->config.volumes, v);
            mk_strv_push(&paths, v);
        }
        /* As BuildKit (dispatchVolume): metadata only. No directory is created and no layer
         * made (the classic builder and Buildah create the directory). */
        _cleanup_free_ char *list = go_list(&paths, false);
        _cleanup_free_ char *h = mk_xasprintf("VOLUME %s", list);
        history(b, s, h, true);
        return 0;
    }
    if (strcmp(kw, "stopsignal") == 0) {
        _cleanup_free_ char *v = NULL;
        if (n->args.n != 1 || expand_word(b, s, n, n->args.v[0], &v, err) < 0)
            return n->args.n != 1 ? node_error(b, n, err, "STOPSIGNAL requires one argument") : -1;
        free(s->config.stop_signal);
        s->config.stop_signal = mk_xstrdup(v);
        _cleanup_free_ char *h = mk_xasprintf("STOPSIGNAL %s", v);
        history(b, s, h, true);
        return 0;
    }
    if (strcmp(kw, "maintainer") == 0) {
        free(s->config.author);
        s->config.author = mk_xstrdup(n->args.n ? n->args.v[0] : "");
        _cleanup_free_ char *h = mk_xasprintf("MAINTAINER %s", s->config.author);
        history(b, s, h, true);
        return 0;
    }
    if (strcmp(kw, "shell") == 0) {
        if (!n->json || n->args.n == 0)
            return node_error(b, n, err, "SHELL requires the arguments to be in JSON form");
        mk_strv_clear(&s->config.shell);
        mk_strv_copy(&s->config.shell, &n->args);
        _cleanup_free_ char *list = go_list(&s->config.shell, false);
        _cleanup_free_ char *h = mk_xasprintf("SHELL %s", list);
        history(b, s, h, true);
        return 0;
    }
    if (strcmp(kw, "healthcheck") == 0)
        return do_healthcheck(b, s, n, err);
    if (strcmp(kw, "onbuild") == 0) {
        /* As BuildKit (dispatchOnbuild): a trigger is config, not history. */
        mk_strv_push(&s->config.onbuild, node_rest(n));
        return 0;
    }
    _cleanup_free_ char *up = upper_keyword(kw);
    const char *hint = mk_df_suggest_keyword(kw);
    if (hint) {
        _cleanup_free_ char *uh = upper_keyword(hint);
        return node_error(b, n, err, "unknown instruction \"%s\" (did you mean \"%s\"?)", up, uh);
    }
    return node_error(b, n, err, "unknown instruction \"%s\"", up);
}

/* ONBUILD triggers of the base image run first, as if written after FROM. */
static int run_onbuild(struct build *b, struct stage *s, const struct mk_df_node *from,
                       struct mk_error **err)
{
    if (!s->config.onbuild.n)
        return 0;
    struct mk_strv triggers = MK_STRV_INIT;
    mk_strv_copy(&triggers, &s->config.onbuild);
    mk_strv_clear(&s->config.onbuild);
    int ret = 0;
    for (size_t i = 0; i < triggers.n && ret == 0; i++) {
        struct mk_df *df = NULL;
        if (mk_df_parse(triggers.v[i], strlen(triggers.v[i]), b->df_name, &df, err) < 0) {
            ret = node_where(b, from, err);
            break;
        }
        for (size_t k = 0; k < df->n_nodes && ret == 0; k++) {
            struct mk_df_node *tn = &df->nodes[k];
            int sl = tn->start_line, el = tn->end_line;
            tn->start_line = from->start_line;
            tn->end_line = from->end_line;
            logf_(b, "  ONBUILD %s\n", tn->original);
            ret = run_instruction(b, s, tn, err);
            tn->start_line = sl;
            tn->end_line = el;
        }
        mk_df_free(df);
    }
    mk_strv_release(&triggers);
    return ret;
}

static void step_show(struct build *b, const struct mk_df_node *n)
{
    b->step++;
    if (!b->silent)
        builder_progress_step(b->ui, b->step, b->n_steps, n->original,
                              !strcmp(n->keyword, "run") || !strcmp(n->keyword, "copy") ||
                                  !strcmp(n->keyword, "add"));
}

static int step_result(struct build *b, int r)
{
    if (!b->silent)
        builder_progress_done(b->ui, r >= 0 ? NULL : mk_interrupted ? "CANCELED" : "ERROR");
    return r;
}

static int build_stage(struct build *b, struct stage *s, struct mk_error **err)
{
    ex.first_in_stage = true;
    b->silent = s->prebuilt;
    b->step = s->step0;
    const struct mk_df_node *from = &b->df->nodes[s->first];
    step_show(b, from);
    if (step_result(b, stage_from(b, s, from, err)) < 0)
        return -1;
    /* A stage ARG without default takes the global value only when redeclared; the
     * predefined platform ARGs behave the same way. */
    if (run_onbuild(b, s, from, err) < 0)
        return -1;
    for (size_t i = s->first + 1; i < s->end; i++) {
        const struct mk_df_node *n = &b->df->nodes[i];
        step_show(b, n);
        if (mk_interrupted)
            return step_result(b, mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted"));
        if (step_result(b, run_instruction(b, s, n, err)) < 0)
            return -1;
    }
    s->built = true;
    b->silent = false;
    return 0;
}

/* BuildKit's automatic platform args, in the global scope (a stage redeclares them). */
static void predefined_args(struct build *b)
{
    struct mk_platform host;
    layerstore_platform_host(&host);
    char tp[MK_PLATFORM_MAX], bp[MK_PLATFORM_MAX];
    layerstore_platform_format(&b->target_platform, tp);
    layerstore_platform_format(&host, bp);
    const char *names[][2] = {
        {"TARGETPLATFORM", tp},
        {"TARGETOS", b->target_platform.os},
        {"TARGETARCH", b->target_platform.arch},
        {"TARGETVARIANT", b->target_platform.variant},
        {"BUILDPLATFORM", bp},
        {"BUILDOS", host.os},
        {"BUILDARCH", host.arch},
        {"BUILDVARIANT", host.variant},
    };
    for (size_t i = 0; i < MK_ARRAY_SIZE(names); i++)
        if (!mk_strv_env_get(&b->meta_args, names[i][0]))
            mk_strv_env_set(&b->meta_args, names[i][0], names[i][1]);
}

/* Marks the target and the stages it needs (FROM <stage>, COPY --from=<stage>). */
static struct stage *find_stage(struct build *b, const char *name, size_t before)
{
    for (size_t i = 0; i < before; i++)
        if (b->stages[i].name && strcasecmp(b->stages[i].name, name) == 0)
            return &b->stages[i];
    uint64_t idx;
    if (mk_parse_u64(name, &idx) == 0 && idx < before)
        return &b->stages[idx];
    return NULL;
}

/* The values an ARG line gives, as do_arg computes them, without side effects: enough to
 * know which stage a "COPY --from=${ARG}" needs before the stage runs. */
static void needed_scope_arg(struct build *b, struct mk_strv *scope, const struct mk_df_node *n)
{
    for (size_t i = 0; i < n->args.n; i++) {
        const char *eq = strchr(n->args.v[i], '=');
        _cleanup_free_ char *name =
            eq ? mk_xstrndup(n->args.v[i], (size_t)(eq - n->args.v[i])) : mk_xstrdup(n->args.v[i]);
        _cleanup_free_ char *def = NULL;
        if (eq && mk_shell_word(eq + 1, scope, b->df->escape, &def, NULL) < 0)
            continue;
        const char *v = mk_strv_env_get(&b->build_args, name);
        if (!v)
            v = eq ? def : mk_strv_env_get(&b->meta_args, name);
        mk_strv_env_set(scope, name, v ? v : "");
    }
}

static int mark_needed(struct build *b, size_t i, struct mk_error **err);

/* Stage s uses the stage named dep (when it names one): it is needed, and s waits for it. */
static int need_dep(struct build *b, struct stage *s, const char *dep, struct mk_error **err)
{
    struct stage *d = find_stage(b, dep, s->index);
    if (!d)
        return 0;
    s->deps = mk_xreallocarray(s->deps, s->n_deps + 1, sizeof(*s->deps));
    s->deps[s->n_deps++] = d->index;
    return mark_needed(b, d->index, err);
}

static int mark_needed(struct build *b, size_t i, struct mk_error **err)
{
    struct stage *s = &b->stages[i];
    if (s->needed)
        return 0;
    s->needed = true;
    _cleanup_(mk_strv_release) struct mk_strv scope = MK_STRV_INIT;
    for (size_t k = s->first; k < s->end; k++) {
        const struct mk_df_node *n = &b->df->nodes[k];
        const char *dep = NULL;
        _cleanup_free_ char *expanded = NULL;
        if (k == s->first && n->args.n) {
            struct mk_strv env = MK_STRV_INIT;
            mk_strv_copy(&env, &b->meta_args);
            int r = mk_shell_word(n->args.v[0], &env, b->df->escape, &expanded, err);
            mk_strv_release(&env);
            if (r < 0)
                return node_where(b, n, err);
            dep = expanded;
        } else if (strcmp(n->keyword, "arg") == 0) {
            needed_scope_arg(b, &scope, n);
            continue;
        } else if ((strcmp(n->keyword, "copy") == 0 || strcmp(n->keyword, "add") == 0) &&
                   mk_df_node_flag(n, "from", &dep) && dep) {
            /* "--from=${VARIANT}": the stage's ARGs as declared so far name the stage. */
            if (strchr(dep, '$') && mk_shell_word(dep, &scope, b->df->escape, &expanded, NULL) == 0)
                dep = expanded;
        } else if (strcmp(n->keyword, "run") == 0) {
            /* RUN --mount=...,from=STAGE */
            for (size_t f = 0; f < n->flags.n; f++) {
                if (!mk_str_has_prefix(n->flags.v[f], "--mount="))
                    continue;
                /* "from=${STAGE}": the stage's ARGs as declared so far name the stage. */
                const char *spec = n->flags.v[f] + 8;
                _cleanup_free_ char *exp = NULL;
                if (strchr(spec, '$') &&
                    mk_shell_word(spec, &scope, b->df->escape, &exp, NULL) == 0)
                    spec = exp;
                _cleanup_(mk_strv_release) struct mk_strv kv = MK_STRV_INIT;
                split_kv(spec, &kv);
                const char *from = mk_strv_env_get(&kv, "from");
                if (from && need_dep(b, s, from, err) < 0)
                    return -1;
            }
            continue;
        } else {
            continue;
        }
        if (need_dep(b, s, dep, err) < 0)
            return -1;
    }
    return 0;
}

static int split_stages(struct build *b, struct mk_error **err)
{
    struct mk_df *df = b->df;
    size_t i = 0;
    /* Global ARGs before the first FROM. */
    for (; i < df->n_nodes && strcmp(df->nodes[i].keyword, "from") != 0; i++) {
        const struct mk_df_node *n = &df->nodes[i];
        if (strcmp(n->keyword, "arg") != 0)
            return node_error(b, n, err, "no build stage in current context (%s before FROM)",
                              n->original);
        if (do_arg(b, NULL, &b->meta_args, n, err) < 0)
            return -1;
    }
    if (i == df->n_nodes)
        return mk_error_set_at(err, MK_ERR_INVALID, b->df_name, "no FROM instruction");
    for (; i < df->n_nodes; i++) {
        const struct mk_df_node *n = &df->nodes[i];
        if (strcmp(n->keyword, "from") != 0) {
            b->stages[b->n_stages - 1].end = i + 1;
            continue;
        }
        b->stages = mk_xreallocarray(b->stages, b->n_stages + 1, sizeof(*b->stages));
        struct stage *s = &b->stages[b->n_stages];
        memset(s, 0, sizeof(*s));
        s->index = b->n_stages++;
        s->first = i;
        s->end = i + 1;
        if (n->args.n == 3) {
            s->name = mk_xstrdup(n->args.v[2]);
            for (char *p = s->name; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            for (size_t k = 0; k + 1 < b->n_stages; k++)
                if (b->stages[k].name && strcmp(b->stages[k].name, s->name) == 0)
                    return node_error(b, n, err, "duplicate stage name \"%s\"", s->name);
        }
    }
    if (b->opts->target && *b->opts->target) {
        struct stage *t = find_stage(b, b->opts->target, b->n_stages);
        if (!t || !t->name || strcasecmp(t->name, b->opts->target) != 0)
            return mk_error_set(err, MK_ERR_USAGE, 0, "target stage \"%s\" could not be found",
                                b->opts->target);
        b->target = t->index;
    } else {
        b->target = b->n_stages - 1;
    }
    if (mark_needed(b, b->target, err) < 0)
        return -1;
    for (size_t k = 0; k < b->n_stages; k++)
        if (b->stages[k].needed) {
            b->stages[k].step0 = b->n_steps;
            b->n_steps += b->stages[k].end - b->stages[k].first;
        }
    return 0;
}

/* Each stage's platform, before anything runs: FROM --platform (expanded with the global
 * args, so $BUILDPLATFORM works), else the stage it starts from, else the target. A needed
 * stage with RUN on a platform this host cannot run fails here, not with "exec format
 * error" halfway through the build. */
static int stage_platforms(struct build *b, struct mk_error **err)
{
    for (size_t i = 0; i < b->n_stages; i++) {
        struct stage *s = &b->stages[i];
        const struct mk_df_node *n = &b->df->nodes[s->first];
        s->platform = b->target_platform;
        const char *flag = NULL;
        _cleanup_free_ char *image = NULL;
        struct mk_strv env = MK_STRV_INIT;
        mk_strv_copy(&env, &b->meta_args);
        int r = n->args.n ? mk_shell_word(n->args.v[0], &env, b->df->escape, &image, NULL) : -1;
        const struct stage *from = r == 0 ? find_stage(b, image, i) : NULL;
        if (from && from->name && strcasecmp(from->name, image) == 0) {
            s->platform = from->platform;
            s->pinned = from->pinned;
        }
        if (mk_df_node_flag(n, "platform", &flag) && flag) {
            s->pinned = true;
            _cleanup_free_ char *p = NULL;
            r = mk_shell_word(flag, &env, b->df->escape, &p, err);
            if (r == 0)
                r = layerstore_platform_parse(p, &s->platform, err);
            if (r < 0) {
                mk_strv_release(&env);
                return node_where(b, n, err);
            }
        }
        mk_strv_release(&env);
        if (!s->needed)
            continue;
        for (size_t k = s->first + 1; k < s->end; k++)
            if (strcmp(b->df->nodes[k].keyword, "run") == 0) {
                if (builder_platform_check_run(&s->platform, err) < 0)
                    return node_where(b, &b->df->nodes[k], err);
                break;
            }
    }
    return 0;
}

/* opts->pinned_only: only the needed stages whose platform FROM --platform fixes, and what
 * they use, are built (the last of them as the target). Returns how many. */
static size_t keep_pinned(struct build *b)
{
    size_t kept = 0;
    for (size_t i = b->n_stages; i-- > 0;) {
        struct stage *s = &b->stages[i];
        bool keep = s->needed && s->pinned;
        for (size_t k = i + 1; !keep && k < b->n_stages; k++)
            for (size_t d = 0; b->stages[k].needed && d < b->stages[k].n_deps; d++)
                keep |= b->stages[k].deps[d] == i;
        s->needed = keep;
        if (keep && !kept++)
            b->target = i;
    }
    b->n_steps = 0;
    for (size_t k = 0; k < b->n_stages; k++)
        if (b->stages[k].needed) {
            b->stages[k].step0 = b->n_steps;
            b->n_steps += b->stages[k].end - b->stages[k].first;
        }
    return kept;
}

static int read_dockerfile(struct build *b, struct mk_error **err)
{
    const struct mk_build_opts *o = b->opts;
    _cleanup_free_ char *path =
        o->dockerfile ? mk_xstrdup(o->dockerfile) : mk_xasprintf("%s/Dockerfile", o->context_dir);
    if (!o->dockerfile && access(path, F_OK) < 0) {
        /* Buildah and podman also take a Containerfile. */
        _cleanup_free_ char *alt = mk_xasprintf("%s/Containerfile", o->context_dir);
        if (access(alt, F_OK) == 0) {
            free(path);
            path = MK_TAKE_PTR(alt);
        }
    }
    const char *slash = strrchr(path, '/');
    if (o->df_name)
        b->df_name = mk_xstrdup(o->df_name);
    else
        b->df_name = mk_xstrdup(o->dockerfile ? path : (slash ? slash + 1 : path));
    b->df_abs = realpath(path, NULL);
    if (!b->df_abs)
        b->df_abs = mk_xstrdup(path);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(AT_FDCWD, path, DOCKERFILE_MAX, &data, &len, err) < 0)
        return mk_error_set_where(err, path);
    if (mk_df_parse(data, len, b->df_name, &b->df, err) < 0)
        return -1;
    if (mk_df_validate(b->df, b->df_name, err) < 0)
        return -1;
    return 0;
}

static int resolve_build_args(struct build *b, struct mk_error **err)
{
    for (size_t i = 0; i < b->opts->build_args.n; i++) {
        const char *a = b->opts->build_args.v[i];
        const char *eq = strchr(a, '=');
        if (eq == a || !*a)
            return mk_error_set(err, MK_ERR_USAGE, 0, "invalid --build-arg \"%s\"", a);
        if (eq) {
            _cleanup_free_ char *k = mk_xstrndup(a, (size_t)(eq - a));
            mk_strv_env_set(&b->build_args, k, eq + 1);
        } else {
            const char *v = getenv(a);
            if (v)
                mk_strv_env_set(&b->build_args, a, v);
        }
    }
    return 0;
}

/* --squash: the layers the build added to the base become one; their history entries stay,
 * marked empty, and one entry for the merged layer follows them. */
static int squash_stage(struct build *b, struct stage *t, struct mk_error **err)
{
    size_t nb = t->n_base_layers, added = t->n_layers - nb;
    if (added < 2)
        return 0;
    /* Snapshots by chain id (the stage's lowerdirs may have merged ones at the bottom):
     * the added layers bottom-most first, the base's top-most first. */
    _cleanup_(mk_strv_release) struct mk_strv snaps = MK_STRV_INIT;
    struct mk_strv diffs = MK_STRV_INIT, lowers = MK_STRV_INIT;
    char chain[MK_DIGEST_SIZE] = "", cur[MK_DIGEST_SIZE] = "", prev[MK_DIGEST_SIZE];
    for (size_t i = 0; i < t->n_layers; i++) {
        memcpy(prev, cur, sizeof(prev));
        mk_chain_id(prev, t->layers[i].diff_id, cur);
        char *snap = layerstore_snapshot_path(b->store, cur);
        if (i < nb) {
            memcpy(chain, cur, sizeof(chain));
            mk_strv_push(&diffs, t->config.diff_ids.v[i]);
            mk_strv_push(&lowers, snap);
        } else {
            mk_strv_push(&snaps, snap);
        }
        free(snap);
    }
    for (size_t i = 0; i < lowers.n / 2; i++) {
        char *x = lowers.v[i];
        lowers.v[i] = lowers.v[lowers.n - 1 - i];
        lowers.v[lowers.n - 1 - i] = x;
    }
    struct mk_workspace ws;
    struct mk_layer_desc d;
    memset(&d, 0, sizeof(d));
    char new_chain[MK_DIGEST_SIZE];
    int r = builder_fit_lowerdirs(b->store, &lowers, err);
    if (r == 0)
        r = builder_workspace_new(b->store, "squash-", &ws, err);
    if (r == 0) {
        r = builder_squash_snapshots(&snaps, ws.upper, err);
        if (r == 0)
            r = layerstore_layer_commit_dir(b->store, ws.upper, &lowers, chain, &d, new_chain, err);
        builder_workspace_release(b->store, &ws);
    }
    if (r < 0) {
        mk_strv_release(&diffs);
        mk_strv_release(&lowers);
        return mk_error_wrap(err, "--squash");
    }
    for (size_t i = nb; i < t->n_layers; i++)
        free(t->layers[i].media_type);
    t->n_layers = nb;
    mk_strv_release(&t->config.diff_ids);
    mk_strv_release(&t->lowerdirs);
    t->config.diff_ids = diffs;
    t->lowerdirs = lowers;
    memcpy(t->chain, chain, sizeof(chain));
    _cleanup_free_ char *snap = layerstore_snapshot_path(b->store, new_chain);
    stage_add_layer(t, &d, new_chain, snap);
    free(d.media_type);
    for (size_t i = t->n_base_history; i < t->config.n_history; i++)
        t->config.history[i].empty_layer = true;
    _cleanup_free_ char *comment = mk_xasprintf("mkimg build --squash: %zu layers merged", added);
    layerstore_config_add_history(&t->config, b->created, "", comment, false);
    return 0;
}

/* ---- --jobs: independent stages at once ---------------------------------------------------
 *
 * Each stage but the target is built by a helper process (fork) as soon as the stages it
 * uses are done, up to opts->jobs at a time. A helper builds its stage with the usual step
 * cache; the stages it uses are already in that cache (built by earlier helpers), so it
 * collects them silently. The helpers report the cache keys they stored; then this process
 * builds everything in order, where every prebuilt step is a silent cache hit (also with
 * --no-cache: the keys this build stored count as fresh). */

static bool depends_on(const struct build *b, size_t i, size_t j)
{
    const struct stage *s = &b->stages[i];
    for (size_t k = 0; k < s->n_deps; k++)
        if (s->deps[k] == j || depends_on(b, s->deps[k], j))
            return true;
    return false;
}

/* Worth forking when two stages (not the target) could run at the same time. */
static bool stages_parallel(const struct build *b)
{
    for (size_t i = 0; i < b->n_stages; i++)
        for (size_t j = i + 1; j < b->n_stages; j++)
            if (i != b->target && j != b->target && b->stages[i].needed && b->stages[j].needed &&
                !depends_on(b, j, i) && !depends_on(b, i, j))
                return true;
    return false;
}

/* The helper process: builds stage i (and collects what it uses), reports, exits. */
__attribute__((noreturn)) static void stage_helper(struct build *b, size_t i, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(1);
    b->result_fd = fd;
    b->ui = builder_progress_new(b->opts->quiet ? -1 : b->opts->log_fd,
                                 b->opts->progress == MK_PROGRESS_RAWJSON ? MK_PROGRESS_RAWJSON
                                                                          : MK_PROGRESS_PLAIN);
    builder_progress_tag_results(b->ui);
    struct mk_error *err = NULL;
    int r = 0;
    for (size_t k = 0; r == 0 && k <= i; k++) {
        struct stage *s = &b->stages[k];
        if (!s->needed || (k != i && !depends_on(b, i, k)))
            continue;
        s->prebuilt = k != i;
        r = build_stage(b, s, &err);
    }
    step_end(b);
    builder_hashcache_save(b->hc, NULL);
    if (r < 0) {
        /* "error CODE ERRNO STATUS\tWHERE\tMESSAGE", one line */
        _cleanup_free_ char *line =
            mk_xasprintf("error %d %d %d\t%s\t%s", err->code, err->sys_errno, err->status,
                         err->where ? err->where : "", err->msg);
        for (char *p = line; *p; p++)
            if (*p == '\n')
                *p = ' ';
        mk_write_all(fd, line, strlen(line), NULL);
        mk_write_all(fd, "\n", 1, NULL);
    } else {
        mk_write_all(fd, "ok\n", 3, NULL);
    }
    _exit(r < 0 ? 1 : 0);
}

struct helper {
    pid_t pid;
    size_t stage;
    int fd;
};

/* Reads a finished helper's report: cache keys into fresh_keys; an error into err. */
static int helper_collect(struct build *b, struct helper *h, struct mk_error **err)
{
    struct mk_buf data = MK_BUF_INIT;
    char chunk[8192];
    ssize_t got;
    lseek(h->fd, 0, SEEK_SET);
    while ((got = read(h->fd, chunk, sizeof(chunk))) > 0 || (got < 0 && errno == EINTR))
        if (got > 0)
            mk_buf_add(&data, chunk, (size_t)got);
    close(h->fd);
    h->fd = -1;
    bool ok = false;
    char *save = NULL;
    int ret = 0;
    for (char *l = data.data ? strtok_r(data.data, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save)) {
        if (mk_str_has_prefix(l, "key ")) {
            mk_strv_push(&b->fresh_keys, l + 4);
        } else if (strcmp(l, "ok") == 0) {
            ok = true;
        } else if (mk_str_has_prefix(l, "error ") && ret == 0) {
            int code = MK_ERR_FAILED, sys = 0, status = 0;
            sscanf(l + 6, "%d %d %d", &code, &sys, &status);
            char *where = strchr(l, '\t');
            char *msg = where ? strchr(where + 1, '\t') : NULL;
            if (!msg)
                continue;
            *where++ = '\0';
            *msg++ = '\0';
            ret = mk_error_set_at(err, code, *where ? where : NULL, "%s", msg);
            if (err && *err) {
                (*err)->sys_errno = sys;
                (*err)->status = status;
            }
        }
    }
    mk_buf_release(&data);
    if (ret < 0)
        return -1;
    if (!ok)
        return mk_error_set(err, mk_interrupted ? MK_ERR_INTERRUPTED : MK_ERR_FAILED, 0, "%s",
                            mk_interrupted ? "interrupted" : "building a stage failed");
    return 0;
}

static int prebuild_stages(struct build *b, unsigned jobs, struct mk_error **err)
{
    size_t n = b->n_stages;
    _cleanup_free_ bool *done = mk_xcalloc(n, sizeof(bool));
    _cleanup_free_ bool *started = mk_xcalloc(n, sizeof(bool));
    _cleanup_free_ struct helper *run = mk_xcalloc(jobs, sizeof(*run));
    size_t n_run = 0;
    int ret = 0;
    for (size_t i = 0; i < n; i++)
        done[i] = !b->stages[i].needed || i == b->target;
    for (;;) {
        /* Start what is ready. */
        for (size_t i = 0; ret == 0 && !mk_interrupted && i < n && n_run < jobs; i++) {
            if (done[i] || started[i])
                continue;
            bool ready = true;
            for (size_t k = 0; k < b->stages[i].n_deps; k++)
                ready &= done[b->stages[i].deps[k]];
            if (!ready)
                continue;
            /* The report goes through a file, not a pipe: it can be longer than a pipe
             * holds, and is read once the helper is gone. */
            _cleanup_free_ char *dir = layerstore_tmpdir(b->store, "stage-", err);
            if (!dir) {
                ret = -1;
                break;
            }
            _cleanup_free_ char *path = mk_xasprintf("%s/report", dir);
            int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            unlink(path);
            layerstore_tmpdir_remove(b->store, dir, NULL);
            if (fd < 0) {
                ret = mk_error_errno(err, "creating a stage report");
                break;
            }
            pid_t pid = fork();
            if (pid < 0) {
                close(fd);
                ret = mk_error_errno(err, "starting a stage");
                break;
            }
            if (pid == 0)
                stage_helper(b, i, fd);
            started[i] = true;
            run[n_run++] = (struct helper){.pid = pid, .stage = i, .fd = fd};
        }
        if (n_run == 0)
            break;
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) {
                if (mk_interrupted)
                    for (size_t k = 0; k < n_run; k++)
                        kill(run[k].pid, SIGTERM);
                continue;
            }
            ret = mk_error_errno(err, "waiting for a stage");
            break;
        }
        for (size_t k = 0; k < n_run; k++) {
            if (run[k].pid != pid)
                continue;
            struct helper h = run[k];
            run[k] = run[--n_run];
            if (helper_collect(b, &h, ret == 0 ? err : NULL) < 0 && ret == 0) {
                ret = -1;
                /* One stage failed: the build fails; stop the others. */
                for (size_t m = 0; m < n_run; m++)
                    kill(run[m].pid, SIGTERM);
            }
            done[h.stage] = true;
            break;
        }
    }
    /* On an early exit the helpers still running are stopped and waited for. */
    for (size_t k = 0; k < n_run; k++) {
        kill(run[k].pid, SIGTERM);
        while (waitpid(run[k].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close(run[k].fd);
    }
    if (ret == 0 && mk_interrupted)
        ret = mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
    for (size_t i = 0; ret == 0 && i < n; i++)
        b->stages[i].prebuilt = b->stages[i].needed && i != b->target;
    return ret;
}

static void image_reuse_key(const struct stage *t, const struct mk_strv *notes,
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
    mk_sha256_final(h, out);
    mk_sha256_free(h);
}

static void image_reuse_lookup(struct build *b, const char *key, struct mk_image **ret)
{
    _cleanup_free_ char *manifest = NULL;
    struct mk_error *e = NULL;
    if (layerstore_cache_get(b->store, key, &manifest, &e) == 0 && mk_digest_valid(manifest) &&
        layerstore_image_get(b->store, manifest, ret, &e) == 0)
        return;
    mk_error_free(e);
    *ret = NULL;
}

static void build_release(struct build *b)
{
    step_end(b);
    for (size_t i = 0; i < b->n_stages; i++)
        stage_release(&b->stages[i]);
    free(b->stages);
    mk_df_free(b->df);
    builder_context_free(b->ctx);
    builder_hashcache_free(b->hc);
    mk_strv_release(&b->meta_args);
    mk_strv_release(&b->build_args);
    mk_strv_release(&b->used_build_args);
    mk_strv_release(&b->fresh_keys);
    free(b->df_name);
    free(b->df_abs);
    free(b->created);
    ex_close_part();
    mk_strv_release(&ex.parts);
    ex.on = false;
    builder_progress_free(b->ui);
}

int builder_build(struct mk_store *store, const struct mk_build_opts *opts,
                  struct mk_image **ret_image, struct mk_error **err)
{
    struct build b;
    memset(&b, 0, sizeof(b));
    b.store = store;
    b.opts = opts;
    b.created = layerstore_now_rfc3339();
    b.ui = builder_progress_new(opts->quiet ? -1 : opts->log_fd, opts->progress);
    b.result_fd = -1;
    ex.on = opts->explain_cache;
    int ret = -1;
    struct mk_image *img = NULL;

    /* Validate tags before doing any work: a bad -t must not cost a build. */
    for (size_t i = 0; i < opts->tags.n; i++) {
        char *norm = layerstore_normalize_ref(opts->tags.v[i], err);
        if (!norm) {
            mk_error_set_where(err, opts->tags.v[i]);
            goto out;
        }
        free(norm);
    }
    if (layerstore_platform_parse(opts->platform, &b.target_platform, err) < 0) {
        mk_error_set_where(err, "--platform");
        goto out;
    }
    /* SOURCE_DATE_EPOCH as a build-arg works like the environment variable. */
    const char *sde = NULL;
    for (size_t i = 0; i < opts->build_args.n; i++)
        if (mk_str_has_prefix(opts->build_args.v[i], "SOURCE_DATE_EPOCH="))
            sde = opts->build_args.v[i] + 18;
    if (sde) {
        uint64_t v;
        if (mk_parse_u64(sde, &v) < 0) {
            mk_error_set(err, MK_ERR_USAGE, 0,
                         "--build-arg SOURCE_DATE_EPOCH=%s: not a number of seconds", sde);
            goto out;
        }
        setenv("SOURCE_DATE_EPOCH", sde, 1);
        free(b.created);
        b.created = layerstore_now_rfc3339();
    }
    struct stat st;
    if (stat(opts->context_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        mk_error_set_at(err, MK_ERR_NOT_FOUND, opts->context_dir,
                        "build context is not a directory");
        goto out;
    }
    if (resolve_build_args(&b, err) < 0 || read_dockerfile(&b, err) < 0)
        goto out;
    predefined_args(&b);
    if (builder_context_open_with(opts->context_dir, opts->dockerfile, opts->ignorefile, &b.ctx,
                                  err) < 0)
        goto out;
    if (split_stages(&b, err) < 0 || stage_platforms(&b, err) < 0)
        goto out;
    if (opts->plan_only || (opts->pinned_only && keep_pinned(&b) == 0)) {
        ret = 0;
        goto out;
    }
    {
        /* By default every ready stage runs: a stage that waits (sleep, network, a lock)
         * must not hold a slot that another could use, and CPU-bound ones share the cores
         * through the kernel's scheduler as BuildKit's do. --jobs N bounds it. */
        unsigned jobs = opts->jobs ? opts->jobs : (unsigned)(b.n_stages > 1 ? b.n_stages : 1);
        if (jobs > 1 && stages_parallel(&b) && prebuild_stages(&b, jobs, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < b.n_stages; i++) {
        if (!b.stages[i].needed)
            continue;
        if (build_stage(&b, &b.stages[i], err) < 0)
            goto out;
        if (i == b.target)
            break;
    }
    if (opts->pinned_only) {
        ret = 0;
        goto out;
    }
    struct stage *t = &b.stages[b.target];
    free(t->config.created);
    t->config.created = mk_xstrdup(b.created);
    for (size_t i = 0; i < opts->labels.n; i++) {
        const char *l = opts->labels.v[i], *eq = strchr(l, '=');
        _cleanup_free_ char *k = eq ? mk_xstrndup(l, (size_t)(eq - l)) : mk_xstrdup(l);
        mk_strv_env_set(&t->config.labels, k, eq ? eq + 1 : "");
    }
    if (opts->squash && squash_stage(&b, t, err) < 0)
        goto out;
    {
        _cleanup_(mk_strv_release) struct mk_strv notes = MK_STRV_INIT;
        if (t->base_ref) {
            mk_strv_push_take(
                &notes, mk_xasprintf("org.opencontainers.image.base.digest=%s", t->base_digest));
            mk_strv_push_take(&notes,
                              mk_xasprintf("org.opencontainers.image.base.name=%s", t->base_ref));
        }
        for (size_t i = 0; i < opts->annotations.n; i++) {
            const char *a = opts->annotations.v[i];
            mk_strv_push_take(&notes, strchr(a, '=') ? mk_xstrdup(a) : mk_xasprintf("%s=", a));
        }
        /* The same config (but for timestamps) on the same layers is the same image: reuse
         * the one written before, so a rebuild with nothing changed gives the same ID. */
        char key[MK_DIGEST_SIZE];
        image_reuse_key(t, &notes, key);
        if (!opts->no_cache)
            image_reuse_lookup(&b, key, &img);
        if (!img) {
            if (layerstore_image_write_annotated(store, &t->config, t->layers, t->n_layers, &notes,
                                                 &img, err) < 0)
                goto out;
            layerstore_cache_put(store, key, img->manifest_digest, NULL);
        }
    }
    if (opts->tags.n == 0 && !opts->no_tag && layerstore_tag(store, img, NULL, err) < 0)
        goto out;
    for (size_t i = 0; i < opts->tags.n; i++)
        if (layerstore_tag(store, img, opts->tags.v[i], err) < 0) {
            /* Do not leave some tags pointing at the new image and others not. */
            for (size_t k = 0; k < i; k++)
                layerstore_untag(store, opts->tags.v[k], NULL);
            mk_error_set_where(err, opts->tags.v[i]);
            goto out;
        }
    /* Build args nobody declared: BuildKit warns; so do we, through the log. */
    for (size_t i = 0; i < b.build_args.n; i++) {
        const char *eq = strchr(b.build_args.v[i], '=');
        _cleanup_free_ char *k = mk_xstrndup(b.build_args.v[i], (size_t)(eq - b.build_args.v[i]));
        bool used = false;
        for (size_t u = 0; u < b.used_build_args.n; u++)
            used |= strcmp(b.used_build_args.v[u], k) == 0;
        if (!used && !b.opts->quiet)
            logf_(&b, "[warning] one or more build args were not consumed: %s\n", k);
    }
    builder_hashcache_save(b.hc, NULL);
    *ret_image = MK_TAKE_PTR(img);
    ret = 0;
out:
    layerstore_image_free(img);
    build_release(&b);
    return ret;
}
