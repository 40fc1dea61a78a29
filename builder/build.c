/* builder/build.c - the build driver: Dockerfile stages and instructions -> image.
 *
 * One stage at a time, one instruction at a time. Metadata instructions change the stage's
 * image config and add an empty_layer history entry; RUN, COPY, ADD and WORKDIR (when it
 * creates the directory) run against an overlay of the stage's snapshots and their upperdir
 * becomes the next layer and snapshot, with no extraction. The rooms: builder/README.md.
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
#include "builder/rooms.h"
#include "common/fsutil.h"
#include "parser/parser.h"

#define DOCKERFILE_MAX (16u << 20)

int run_instruction(struct build *b, struct stage *s, const struct mk_inst *in,
                    struct mk_error **err)
{
    switch (in->kind) {
    case MK_INST_RUN:
        return do_run(b, s, in, err);
    case MK_INST_COPY:
    case MK_INST_ADD:
        return do_copy(b, s, in, in->kind == MK_INST_ADD, err);
    case MK_INST_FROM:
        MK_BUG("FROM starts a stage (stage_from), it is not run as a step");
    default:
        return do_meta(b, s, in, err);
    }
}

static void step_show(struct build *b, const struct mk_inst *in)
{
    b->step++;
    if (!b->silent)
        builder_progress_step(b->ui, b->step, b->n_steps, in->node->original,
                              in->kind == MK_INST_RUN || in->kind == MK_INST_COPY ||
                                  in->kind == MK_INST_ADD);
}

static int step_result(struct build *b, int r)
{
    if (!b->silent)
        builder_progress_done(b->ui, r >= 0 ? NULL : mk_interrupted ? "CANCELED" : "ERROR");
    return r;
}

/* No instruction after i (up to end) can add a layer. */
static bool last_layer_step(const struct build *b, size_t i, size_t end)
{
    for (size_t k = i + 1; k < end; k++) {
        enum mk_inst_kind kind = b->insts.v[k].kind;
        if (kind == MK_INST_RUN || kind == MK_INST_COPY || kind == MK_INST_ADD ||
            kind == MK_INST_WORKDIR)
            return false;
    }
    return true;
}

int build_stage(struct build *b, struct stage *s, struct mk_error **err)
{
    explain_stage_begin();
    b->silent = s->prebuilt || b->probing;
    b->step = s->step0;
    const struct mk_inst *from = &b->insts.v[s->first];
    step_show(b, from);
    if (step_result(b, stage_from(b, s, from, err)) < 0)
        return -1;
    /* A trigger may be an ADD of a URL: a probe leaves triggers to a helper process. */
    if (b->probing && s->config.onbuild.n)
        return probe_stop(err);
    /* A stage ARG without default takes the global value only when redeclared; the
     * predefined platform ARGs behave the same way. */
    if (run_onbuild(b, s, from->node, err) < 0)
        return -1;
    for (size_t i = s->first + 1; i < s->end; i++) {
        const struct mk_inst *in = &b->insts.v[i];
        step_show(b, in);
        if (mk_interrupted)
            return step_result(b, mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted"));
        b->last_layer_step = s == &b->stages[b->target] && last_layer_step(b, i, s->end);
        int r = run_instruction(b, s, in, err);
        b->last_layer_step = false;
        if (step_result(b, r) < 0)
            return -1;
    }
    s->built = true;
    b->silent = false;
    return 0;
}

static int read_dockerfile(struct build *b, struct mk_error **err)
{
    const struct mk_build_opts *o = b->opts;
    b->df_path = builder_dockerfile_path(o->context_dir, o->dockerfile);
    const char *path = b->df_path;
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
    if (mk_inst_parse(b->df, b->df_name, &b->insts, err) < 0)
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
    if (snapshots_ensure(b, NULL, err) < 0)
        return mk_error_wrap(err, "--squash");
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
            r = layerstore_layer_commit_dir(b->store, ws.upper, &lowers, chain, b->opts->epoch, &d,
                                            new_chain, err);
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

static void build_release(struct build *b)
{
    step_end(b);
    snapshots_release(b);
    for (size_t i = 0; i < b->n_stages; i++)
        stage_release(&b->stages[i]);
    free(b->stages);
    mk_inst_list_release(&b->insts);
    mk_df_free(b->df);
    builder_context_free(b->ctx);
    builder_hashcache_free(b->hc);
    mk_strv_release(&b->meta_args);
    mk_strv_release(&b->build_args);
    mk_strv_release(&b->used_build_args);
    mk_strv_release(&b->fresh_keys);
    free(b->df_name);
    free(b->df_path);
    free(b->df_abs);
    free(b->created);
    explain_release();
    rcache_free(b->rc);
    builder_progress_free(b->ui);
}

/* Checks what the options ask before any work: a bad -t or --platform must not cost a build. */
static int check_opts(struct build *b, struct mk_error **err)
{
    const struct mk_build_opts *opts = b->opts;
    for (size_t i = 0; i < opts->tags.n; i++) {
        char *norm = mk_ref_local_name(opts->tags.v[i], err);
        if (!norm)
            return mk_error_set_where(err, opts->tags.v[i]);
        free(norm);
    }
    if (mk_platform_parse(opts->platform, &b->target_platform, err) < 0)
        return mk_error_set_where(err, "--platform");
    struct stat st;
    if (stat(opts->context_dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return mk_error_set_at(err, MK_ERR_NOT_FOUND, opts->context_dir,
                               "build context is not a directory");
    return 0;
}

/* Builds the needed stages up to the target: independent ones first in parallel (--jobs),
 * then all in order (what a helper built is a silent cache hit). */
static int build_stages(struct build *b, struct mk_error **err)
{
    /* By default every ready stage runs: a stage that waits (sleep, network, a lock) must not
     * hold a slot that another could use, and CPU-bound ones share the cores through the
     * kernel's scheduler as BuildKit's do. --jobs N bounds it. */
    unsigned jobs = b->opts->jobs ? b->opts->jobs : (unsigned)(b->n_stages > 1 ? b->n_stages : 1);
    if (jobs > 1 && stages_parallel(b) && prebuild_stages(b, jobs, err) < 0)
        return -1;
    for (size_t i = 0; i < b->n_stages; i++) {
        if (!b->stages[i].needed)
            continue;
        /* A stage of cache hits that prebuild_stages built in this process is built again,
         * shown this time, in order (each of its steps is one record lookup). */
        if (b->stages[i].built)
            stage_reset(&b->stages[i]);
        if (build_stage(b, &b->stages[i], err) < 0)
            return -1;
        if (i == b->target)
            break;
    }
    return 0;
}

/* The target stage's image: --label, --squash, the base and --annotation annotations; the same
 * config (but for timestamps) on the same layers is the same image, so the one written before
 * is reused and a rebuild with nothing changed gives the same ID. */
static int write_image(struct build *b, struct mk_image **ret, struct mk_error **err)
{
    const struct mk_build_opts *opts = b->opts;
    struct stage *t = &b->stages[b->target];
    free(t->config.created);
    t->config.created = mk_xstrdup(b->created);
    for (size_t i = 0; i < opts->labels.n; i++) {
        const char *l = opts->labels.v[i], *eq = strchr(l, '=');
        _cleanup_free_ char *k = eq ? mk_xstrndup(l, (size_t)(eq - l)) : mk_xstrdup(l);
        mk_strv_env_set(&t->config.labels, k, eq ? eq + 1 : "");
    }
    if (opts->squash && squash_stage(b, t, err) < 0)
        return -1;
    _cleanup_(mk_strv_release) struct mk_strv notes = MK_STRV_INIT;
    if (t->base_ref) {
        mk_strv_push_take(&notes,
                          mk_xasprintf("org.opencontainers.image.base.digest=%s", t->base_digest));
        mk_strv_push_take(&notes,
                          mk_xasprintf("org.opencontainers.image.base.name=%s", t->base_ref));
    }
    for (size_t i = 0; i < opts->annotations.n; i++) {
        const char *a = opts->annotations.v[i];
        mk_strv_push_take(&notes, strchr(a, '=') ? mk_xstrdup(a) : mk_xasprintf("%s=", a));
    }
    if (rcache_inline_annotation(b, &notes, err) < 0)
        return -1;
    char key[MK_DIGEST_SIZE];
    image_reuse_key(t, &notes, opts->epoch, key);
    if (!opts->no_cache)
        image_reuse_lookup(b, key, ret);
    if (*ret)
        return 0;
    if (layerstore_image_write_annotated(b->store, &t->config, t->layers, t->n_layers, &notes, ret,
                                         err) < 0)
        return -1;
    layerstore_image_record_put(b->store, key, (*ret)->manifest_digest, NULL);
    return 0;
}

/* -t NAME for every tag, all or none; without -t an untagged image is still listed. */
static int tag_image(struct build *b, const struct mk_image *img, struct mk_error **err)
{
    const struct mk_build_opts *opts = b->opts;
    if (opts->tags.n == 0 && !opts->no_tag && layerstore_tag(b->store, img, NULL, err) < 0)
        return -1;
    for (size_t i = 0; i < opts->tags.n; i++)
        if (layerstore_tag(b->store, img, opts->tags.v[i], err) == 0) {
            layerstore_lazy_untag(b->store, opts->tags.v[i]);
        } else {
            /* Do not leave some tags pointing at the new image and others not. */
            for (size_t k = 0; k < i; k++)
                layerstore_untag(b->store, opts->tags.v[k], NULL);
            return mk_error_set_where(err, opts->tags.v[i]);
        }
    return 0;
}

/* --push (opts->lazy_push): the image without fetching the final layers a registry cache
 * holds; named as a lazy image (docs/remote-cache.md) when some stay there. The export goes
 * first: what it needs it fetches. */
static int finish_lazy(struct build *b, struct mk_image **ret, struct mk_error **err)
{
    if (write_image(b, ret, err) < 0 || rcache_export(b, err) < 0)
        return -1;
    int lazy = rcache_defer(b, *ret, err);
    if (lazy <= 0)
        return lazy < 0 ? -1 : tag_image(b, *ret, err);
    const struct mk_build_opts *opts = b->opts;
    for (size_t i = 0; i < opts->tags.n; i++) {
        /* The name leaves index.json: it names the lazy image now. */
        struct mk_error *e = NULL;
        if (layerstore_untag(b->store, opts->tags.v[i], &e) < 0)
            mk_error_free(e);
        if (layerstore_lazy_tag(b->store, opts->tags.v[i], (*ret)->manifest_digest, err) < 0) {
            for (size_t k = 0; k < i; k++)
                layerstore_lazy_untag(b->store, opts->tags.v[k]);
            return mk_error_set_where(err, opts->tags.v[i]);
        }
    }
    return 0;
}

/* Build args nobody declared: BuildKit warns; so do we, through the log. */
static void warn_unused_args(struct build *b)
{
    for (size_t i = 0; i < b->build_args.n; i++) {
        const char *eq = strchr(b->build_args.v[i], '=');
        _cleanup_free_ char *k = mk_xstrndup(b->build_args.v[i], (size_t)(eq - b->build_args.v[i]));
        bool used = false;
        for (size_t u = 0; u < b->used_build_args.n; u++)
            used |= strcmp(b->used_build_args.v[u], k) == 0;
        if (!used && !b->opts->quiet)
            logf_(b, "[warning] one or more build args were not consumed: %s\n", k);
    }
}

/* One build, without the --cache-from sources set in skip; *ret_bad is a source that failed
 * it (rcache_broken) or -1. */
static int build_once(struct mk_store *store, const struct mk_build_opts *opts, uint64_t skip,
                      struct mk_image **ret_image, int *ret_bad, struct mk_error **err)
{
    struct build b;
    memset(&b, 0, sizeof(b));
    b.store = store;
    b.opts = opts;
    b.created = mk_epoch_rfc3339(opts->epoch);
    b.ui = builder_progress_new(opts->quiet ? -1 : opts->log_fd, opts->progress);
    b.result_fd = -1;
    explain_begin(opts->explain_cache);
    int ret = -1;
    struct mk_image *img = NULL;

    if (check_opts(&b, err) < 0 || resolve_build_args(&b, err) < 0 ||
        read_dockerfile(&b, err) < 0 || rcache_open(&b, skip, err) < 0)
        goto out;
    predefined_args(&b);
    if (builder_context_open_with(opts->context_dir, b.df_path, opts->ignorefile, &b.ctx, err) < 0)
        goto out;
    if (split_stages(&b, err) < 0 || stage_platforms(&b, err) < 0)
        goto out;
    if (opts->plan_only || (opts->pinned_only && keep_pinned(&b) == 0)) {
        ret = 0;
        goto out;
    }
    if (build_stages(&b, err) < 0)
        goto out;
    if (opts->pinned_only) {
        ret = 0;
        goto out;
    }
    /* Before the syncfs that comes before the tag: what is dropped is never written. */
    snapshots_settle(&b, !opts->export_rootfs);
    if (opts->lazy_push && b.rc && !opts->squash && opts->tags.n > 0 && !opts->no_tag) {
        if (finish_lazy(&b, &img, err) < 0)
            goto out;
    } else if (rcache_fetch(&b, &b.stages[b.target].lowerdirs, err) < 0 ||
               write_image(&b, &img, err) < 0 || tag_image(&b, img, err) < 0 ||
               rcache_export(&b, err) < 0) {
        goto out;
    }
    warn_unused_args(&b);
    builder_hashcache_save(b.hc, NULL);
    *ret_image = MK_TAKE_PTR(img);
    ret = 0;
out:
    *ret_bad = ret < 0 ? rcache_broken(b.rc, opts) : -1;
    layerstore_image_free(img);
    build_release(&b);
    return ret;
}

/* A cache source whose layer turns out missing or corrupt when it is fetched costs a restart
 * without it (what was built is a local hit then), never a wrong image or a failed build. */
static int build_retrying(struct mk_store *store, const struct mk_build_opts *opts,
                          struct mk_image **ret_image, struct mk_error **err)
{
    uint64_t skip = 0;
    for (;;) {
        int bad = -1;
        struct mk_error *e = NULL;
        if (build_once(store, opts, skip, ret_image, &bad, &e) == 0)
            return 0;
        if (bad < 0 || bad >= 64 || (skip & (UINT64_C(1) << bad))) {
            if (err)
                *err = e;
            else
                mk_error_free(e);
            return -1;
        }
        mk_error_free(e);
        skip |= UINT64_C(1) << bad;
    }
}

/* The whole build in one window of deferred durability (layerstore_sync_defer): one syncfs
 * before the tag instead of one per layer step. */
int builder_build(struct mk_store *store, const struct mk_build_opts *opts,
                  struct mk_image **ret_image, struct mk_error **err)
{
    if (layerstore_sync_defer(store, err) < 0)
        return mk_error_wrap(err, "opening the store for a build");
    int r = build_retrying(store, opts, ret_image, err);
    struct mk_error *e = NULL;
    int synced = layerstore_sync_end(store, r < 0 ? NULL : &e);
    builder_sandbox_reap(); /* the last RUN's container, which exited meanwhile */
    if (synced < 0 && r == 0) {
        if (err)
            *err = e;
        else
            mk_error_free(e);
        return -1;
    }
    return r;
}
