/* builder/step-meta.c - the instructions that change the image config (WORKDIR, ENV, LABEL,
 * ARG, CMD, ENTRYPOINT, EXPOSE, HEALTHCHECK, ...). */
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
    struct mk_sha256 *h = key_begin(b, s, n->keyword);
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

static int do_workdir(struct build *b, struct stage *s, const struct mk_inst *in,
                      struct mk_error **err)
{
    const struct mk_df_node *n = in->node;
    _cleanup_free_ char *w = NULL;
    if (expand_word(b, s, n, in->word, &w, err) < 0)
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
static int do_keyvalues(struct build *b, struct stage *s, const struct mk_inst *in,
                        struct mk_strv *target, const char *kw, struct mk_error **err)
{
    const struct mk_df_node *n = in->node;
    /* As BuildKit (one expansion of the whole instruction before it is dispatched): every
     * pair expands with the values from before the instruction, so "ENV E=new F=${E}-f"
     * sees the old E. */
    struct mk_strv kv = MK_STRV_INIT;
    for (size_t i = 0; i < in->n_kvs; i++) {
        char *k = NULL, *v = NULL;
        if (expand_word(b, s, n, in->kvs[i].key, &k, err) < 0 ||
            expand_word(b, s, n, in->kvs[i].value, &v, err) < 0) {
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

int do_arg(struct build *b, struct stage *s, struct mk_strv *scope, const struct mk_inst *in,
           struct mk_error **err)
{
    const struct mk_df_node *n = in->node;
    /* BuildKit's history line: each name with the value it got, if any. */
    struct mk_buf hist = MK_BUF_INIT;
    mk_buf_adds(&hist, "ARG");
    for (size_t i = 0; i < in->n_kvs; i++) {
        const char *name = in->kvs[i].key;
        _cleanup_free_ char *def = NULL;
        bool has_default = in->kvs[i].value != NULL;
        if (has_default) {
            struct mk_strv env = MK_STRV_INIT;
            if (s)
                stage_expand_env(s, &env);
            else
                mk_strv_copy(&env, scope);
            int r = mk_shell_word(in->kvs[i].value, &env, b->df->escape, &def, err);
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

static void do_cmd_like(struct stage *s, const struct mk_inst *in, struct mk_strv *target,
                        bool *has)
{
    mk_strv_clear(target);
    if (in->json) {
        mk_strv_copy(target, &in->words);
    } else if (in->words.n) {
        if (s->config.shell.n)
            mk_strv_copy(target, &s->config.shell);
        else {
            mk_strv_push(target, "/bin/sh");
            mk_strv_push(target, "-c");
        }
        mk_strv_push(target, in->words.v[0]);
    }
    *has = true;
}

static int do_expose(struct build *b, struct stage *s, const struct mk_inst *in,
                     struct mk_error **err)
{
    const struct mk_df_node *n = in->node;
    struct mk_strv env = MK_STRV_INIT, words = MK_STRV_INIT, ports = MK_STRV_INIT;
    stage_expand_env(s, &env);
    int r = 0;
    for (size_t i = 0; i < in->words.n && r == 0; i++)
        if (mk_shell_words(in->words.v[i], &env, b->df->escape, &words, err) < 0)
            r = node_where(b, n, err);
    for (size_t w = 0; w < words.n && r == 0; w++)
        if (mk_inst_expose_ports(words.v[w], &ports, err) < 0)
            r = node_where(b, n, err);
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

static void do_healthcheck(struct build *b, struct stage *s, const struct mk_inst *in)
{
    const struct mk_inst_healthcheck *hc = &in->healthcheck;
    struct mk_healthcheck *h = &s->config.healthcheck;
    mk_strv_release(&h->test);
    memset(h, 0, sizeof(*h));
    h->set = true;
    mk_strv_copy(&h->test, &hc->test);
    h->interval = hc->interval;
    h->timeout = hc->timeout;
    h->start_period = hc->start_period;
    h->start_interval = hc->start_interval;
    h->retries = hc->retries;
    history(b, s, in->node->original, true);
}

static int do_env(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err)
{
    return do_keyvalues(b, s, in, &s->config.env, "ENV", err);
}

static int do_label(struct build *b, struct stage *s, const struct mk_inst *in,
                    struct mk_error **err)
{
    return do_keyvalues(b, s, in, &s->config.labels, "LABEL", err);
}

static int do_stage_arg(struct build *b, struct stage *s, const struct mk_inst *in,
                        struct mk_error **err)
{
    return do_arg(b, s, &s->args, in, err);
}

/* A metadata step's history line: KEYWORD and a list as Go's fmt prints it. */
static void history_list(struct build *b, struct stage *s, const char *kw, const struct mk_strv *l,
                         bool quote)
{
    _cleanup_free_ char *list = go_list(l, quote);
    _cleanup_free_ char *h = mk_xasprintf("%s %s", kw, list);
    history(b, s, h, true);
}

static int do_cmd(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err)
{
    (void)err;
    do_cmd_like(s, in, &s->config.cmd, &s->config.has_cmd);
    s->cmd_set = true;
    history_list(b, s, "CMD", &s->config.cmd, true);
    return 0;
}

static int do_entrypoint(struct build *b, struct stage *s, const struct mk_inst *in,
                         struct mk_error **err)
{
    (void)err;
    do_cmd_like(s, in, &s->config.entrypoint, &s->config.has_entrypoint);
    if (!s->cmd_set) {
        mk_strv_clear(&s->config.cmd);
        s->config.has_cmd = false;
    }
    history_list(b, s, "ENTRYPOINT", &s->config.entrypoint, true);
    return 0;
}

static int do_shell(struct build *b, struct stage *s, const struct mk_inst *in,
                    struct mk_error **err)
{
    (void)err;
    mk_strv_clear(&s->config.shell);
    mk_strv_copy(&s->config.shell, &in->words);
    history_list(b, s, "SHELL", &s->config.shell, false);
    return 0;
}

/* USER and STOPSIGNAL: one expanded word into a config field. */
static int do_config_word(struct build *b, struct stage *s, const struct mk_inst *in, char **field,
                          const char *kw, struct mk_error **err)
{
    _cleanup_free_ char *v = NULL;
    if (expand_word(b, s, in->node, in->word, &v, err) < 0)
        return -1;
    free(*field);
    *field = mk_xstrdup(v);
    _cleanup_free_ char *h = mk_xasprintf("%s %s", kw, v);
    history(b, s, h, true);
    return 0;
}

static int do_user(struct build *b, struct stage *s, const struct mk_inst *in,
                   struct mk_error **err)
{
    return do_config_word(b, s, in, &s->config.user, "USER", err);
}

static int do_stopsignal(struct build *b, struct stage *s, const struct mk_inst *in,
                         struct mk_error **err)
{
    return do_config_word(b, s, in, &s->config.stop_signal, "STOPSIGNAL", err);
}

static int do_maintainer(struct build *b, struct stage *s, const struct mk_inst *in,
                         struct mk_error **err)
{
    (void)err;
    free(s->config.author);
    s->config.author = mk_xstrdup(in->word);
    _cleanup_free_ char *h = mk_xasprintf("MAINTAINER %s", s->config.author);
    history(b, s, h, true);
    return 0;
}

static int do_volume(struct build *b, struct stage *s, const struct mk_inst *in,
                     struct mk_error **err)
{
    _cleanup_(mk_strv_release) struct mk_strv paths = MK_STRV_INIT;
    for (size_t i = 0; i < in->words.n; i++) {
        _cleanup_free_ char *v = NULL;
        if (expand_word(b, s, in->node, in->words.v[i], &v, err) < 0)
            return -1;
        if (!*v)
            return node_error(b, in->node, err, "VOLUME specified can not be an empty string");
        strv_add_unique(&s->config.volumes, v);
        mk_strv_push(&paths, v);
    }
    /* As BuildKit (dispatchVolume): metadata only. No directory is created and no layer
     * made (the classic builder and Buildah create the directory). */
    history_list(b, s, "VOLUME", &paths, false);
    return 0;
}

static int do_healthcheck_step(struct build *b, struct stage *s, const struct mk_inst *in,
                               struct mk_error **err)
{
    (void)err;
    do_healthcheck(b, s, in);
    return 0;
}

static int do_onbuild(struct build *b, struct stage *s, const struct mk_inst *in,
                      struct mk_error **err)
{
    (void)b;
    (void)err;
    /* As BuildKit (dispatchOnbuild): a trigger is config, not history. */
    mk_strv_push(&s->config.onbuild, in->rest);
    return 0;
}

typedef int meta_fn(struct build *b, struct stage *s, const struct mk_inst *in,
                    struct mk_error **err);

/* The instructions that change the image config (WORKDIR may also add a layer). */
static meta_fn *const meta_instructions[] = {
    [MK_INST_WORKDIR] = do_workdir,
    [MK_INST_ENV] = do_env,
    [MK_INST_LABEL] = do_label,
    [MK_INST_ARG] = do_stage_arg,
    [MK_INST_CMD] = do_cmd,
    [MK_INST_ENTRYPOINT] = do_entrypoint,
    [MK_INST_SHELL] = do_shell,
    [MK_INST_EXPOSE] = do_expose,
    [MK_INST_HEALTHCHECK] = do_healthcheck_step,
    [MK_INST_USER] = do_user,
    [MK_INST_VOLUME] = do_volume,
    [MK_INST_STOPSIGNAL] = do_stopsignal,
    [MK_INST_ONBUILD] = do_onbuild,
    [MK_INST_MAINTAINER] = do_maintainer,
};

int do_meta(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err)
{
    if ((size_t)in->kind >= MK_ARRAY_SIZE(meta_instructions) || !meta_instructions[in->kind])
        MK_BUG("no handler for an instruction the parser accepted");
    return meta_instructions[in->kind](b, s, in, err);
}
