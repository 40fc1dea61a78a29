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

int do_workdir(struct build *b, struct stage *s, const struct mk_df_node *n, struct mk_error **err)
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
int do_keyvalues(struct build *b, struct stage *s, const struct mk_df_node *n,
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

int do_arg(struct build *b, struct stage *s, struct mk_strv *scope, const struct mk_df_node *n,
           struct mk_error **err)
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

int do_cmd_like(struct build *b, struct stage *s, const struct mk_df_node *n,
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

int do_expose(struct build *b, struct stage *s, const struct mk_df_node *n, struct mk_error **err)
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

int do_healthcheck(struct build *b, struct stage *s, const struct mk_df_node *n,
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
