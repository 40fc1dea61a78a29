/* builder/step-run.c - RUN: the sandbox spec, --mount (bind, cache, tmpfs, secret, ssh),
 * proxy variables, and the step itself. */
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

void sandbox_spec_init(struct mk_sandbox_spec *spec, struct stage *s, const char *upper,
                       const char *work)
{
    memset(spec, 0, sizeof(*spec));
    spec->lowerdirs = &s->lowerdirs;
    spec->upperdir = upper;
    spec->workdir = work;
    spec->stdout_fd = -1;
    spec->stderr_fd = -1;
}

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
    if (from_lowerdirs(b, s, n, from, lowers, err) < 0 || snapshots_ensure(b, lowers, err) < 0 ||
        rcache_fetch(b, lowers, err) < 0) {
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

/* A cache mount's sharing= (BuildKit): "shared" users run together; "locked" waits for
 * every other user; "private" takes an instance nobody uses (layerstore_cache_mount_lock).
 * Builds with --jobs and concurrent builds on one store meet there. overlay: the cache is an
 * overlay's upper, which one mount at a time may use, so "shared" locks exclusively too. id
 * names the cache (a digest of its id and source); *ret_dir is the store's directory for it
 * (caller frees, creates it when missing); the lock is held until run_mounts_release. */
static int cache_lock(struct build *b, const struct mk_df_node *n, struct run_mounts *rm,
                      const char *id, enum mk_run_mount_sharing sharing, bool overlay,
                      char **ret_dir, struct mk_error **err)
{
    enum mk_cache_sharing how = sharing == MK_RUN_MOUNT_PRIVATE             ? MK_CACHE_PRIVATE
                                : sharing == MK_RUN_MOUNT_LOCKED || overlay ? MK_CACHE_LOCKED
                                                                            : MK_CACHE_SHARED;
    if (rm->n_locks == MK_ARRAY_SIZE(rm->locks))
        return node_error(b, n, err, "too many cache mounts in one RUN");
    int fd = layerstore_cache_mount_lock(b->store, id, how, ret_dir, err);
    if (fd < 0)
        return node_error(b, n, err, "RUN --mount=type=cache");
    rm->locks[rm->n_locks++] = fd;
    return 0;
}

/* type=cache,from=...: BuildKit: the stage's (or image's) tree is the cache's starting
 * point. The cache is the upper of an overlay on it, kept per id and per source tree, so it
 * persists as long as that tree does not change. */
static int mount_cache_from(struct build *b, struct stage *s, const struct mk_df_node *n,
                            const struct mk_run_mount *m, struct run_mounts *rm, char *abs_target,
                            struct mk_error **err)
{
    struct mk_strv *lowers = from_lowers(b, s, n, rm, m->from, err);
    if (!lowers)
        return -1;
    struct mk_buf material = MK_BUF_INIT;
    mk_buf_addf(&material, "cache-mount-from\n%s\n", m->id ? m->id : abs_target);
    for (size_t i = 0; i < lowers->n; i++)
        mk_buf_addf(&material, "%s\n", lowers->v[i]);
    char d[MK_DIGEST_SIZE];
    mk_sha256_buffer(material.data, material.len, d);
    mk_buf_release(&material);
    _cleanup_free_ char *dir = NULL;
    const char *upper, *work;
    if (cache_lock(b, n, rm, d, m->sharing, true, &dir, err) < 0)
        return -1;
    if (mk_mkdir_p(dir, 0700, err) < 0 || overlay_dirs(rm, dir, &upper, &work, err) < 0)
        return node_where(b, n, err);
    add_overlay(rm, lowers, upper, work, keep(rm, mount_source_rel(m->source)),
                keep(rm, mk_xstrdup(abs_target)), m->readonly);
    return 0;
}

static int mount_cache(struct build *b, const struct mk_df_node *n, const struct mk_run_mount *m,
                       struct run_mounts *rm, char *abs_target, struct mk_error **err)
{
    _cleanup_free_ char *material = mk_xasprintf("cache-mount\n%s", m->id ? m->id : abs_target);
    char d[MK_DIGEST_SIZE];
    mk_sha256_buffer(material, strlen(material), d);
    char *dir = NULL;
    if (cache_lock(b, n, rm, d, m->sharing, false, &dir, err) < 0)
        return node_where(b, n, err);
    keep(rm, dir);
    rcache_mount(b, d, dir);
    struct stat st;
    if (stat(dir, &st) < 0) {
        if (mk_mkdir_p(dir, 0755, err) < 0 || chmod(dir, m->has_mode ? m->mode : 0755) < 0 ||
            chown(dir, m->uid, m->gid) < 0) {
            if (err && !*err)
                mk_error_errno(err, "preparing the cache mount \"%s\"", dir);
            return node_where(b, n, err);
        }
    }
    add_mount(rm, MK_MOUNT_BIND, dir, keep(rm, mk_xstrdup(abs_target)), m->readonly);
    return 0;
}

static int mount_bind(struct build *b, struct stage *s, const struct mk_df_node *n,
                      const struct mk_run_mount *m, struct run_mounts *rm, char *abs_target,
                      const char *tmp, struct mk_error **err)
{
    const char *tgt = keep(rm, mk_xstrdup(abs_target));
    bool rw = m->readwrite && !m->readonly;
    if (!m->from)
        return context_bind(b, n, rm, m->source, tgt, rw, tmp, err);
    /* A stage's or image's tree through an overlay with a private upper: rw writes land
     * there and go with the step's tmpdir, never in the source. */
    struct mk_strv *lowers = from_lowers(b, s, n, rm, m->from, err);
    const char *upper, *work;
    if (!lowers)
        return -1;
    _cleanup_free_ char *dir = mk_xasprintf("%s/mount-%zu", tmp, rm->n);
    if (overlay_dirs(rm, dir, &upper, &work, err) < 0)
        return node_where(b, n, err);
    add_overlay(rm, lowers, upper, work, keep(rm, mount_source_rel(m->source)), tgt, !rw);
    return 0;
}

/* The secret's file in the step's tmpdir (never in the upperdir), bound read-only; its
 * content is never part of a cache key or history. value: from an environment variable,
 * else read from the file src. */
static int secret_file(struct build *b, const struct mk_df_node *n, const struct mk_run_mount *m,
                       struct run_mounts *rm, const char *id, const char *value, const char *src,
                       char *abs_target, const char *tmp, struct mk_error **err)
{
    char *file = mk_xasprintf("%s/secret-%zu", tmp, rm->n);
    keep(rm, file);
    _cleanup_close_ int out = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (out < 0) {
        mk_error_errno(err, "creating secret file");
        return node_where(b, n, err);
    }
    if (value && mk_write_all(out, value, strlen(value), err) < 0)
        return node_where(b, n, err);
    if (!value) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        char buf[65536];
        ssize_t r;
        if (in < 0) {
            mk_error_set(err, MK_ERR_NOT_FOUND, errno, "secret \"%s\": opening \"%s\"", id, src);
            return node_where(b, n, err);
        }
        while ((r = mk_read_some(in, buf, sizeof(buf), err)) > 0)
            if (mk_write_all(out, buf, (size_t)r, err) < 0)
                break;
        if (err && *err)
            return node_where(b, n, err);
    }
    if (fchmod(out, m->has_mode ? m->mode : 0400) < 0 || fchown(out, m->uid, m->gid) < 0)
        return node_error(b, n, err, "--mount=%s: invalid mode, uid or gid", m->spec);
    add_mount(rm, MK_MOUNT_BIND, file, keep(rm, mk_xstrdup(abs_target)), true);
    return 0;
}

static int mount_secret(struct build *b, const struct mk_df_node *n, const struct mk_run_mount *m,
                        struct run_mounts *rm, char *abs_target, const char *tmp,
                        struct mk_error **err)
{
    const char *id = m->id;
    if (!id) {
        const char *slash = strrchr(m->target, '/');
        id = slash ? slash + 1 : m->target;
    }
    /* BuildKit: env= puts the secret in that variable instead; a file too only when a
     * target is also given. */
    _cleanup_free_ char *target =
        abs_target ? mk_xstrdup(abs_target) : (m->env ? NULL : mk_xasprintf("/run/secrets/%s", id));
    bool from_env = false;
    const char *src = secret_source(b, id, &from_env);
    _cleanup_free_ char *srcdup = NULL;
    if (src) {
        const char *end = strchr(src, ',');
        srcdup = end ? mk_xstrndup(src, (size_t)(end - src)) : mk_xstrdup(src);
    }
    const char *value = srcdup && from_env ? getenv(srcdup) : NULL;
    if (!srcdup || (from_env && !value)) {
        if (m->required)
            return node_error(b, n, err,
                              "secret \"%s\" is required but was not given (--secret "
                              "id=%s,src=PATH)",
                              id, id);
        return 0; /* BuildKit skips a missing optional secret */
    }
    if (m->env) {
        _cleanup_free_ char *v = NULL;
        if (from_env) {
            v = mk_xstrdup(value);
        } else if (mk_read_file_at(AT_FDCWD, srcdup, 1u << 20, &v, NULL, err) < 0) {
            mk_error_wrap(err, "secret \"%s\"", id);
            return node_where(b, n, err);
        }
        mk_strv_env_set(&rm->env, m->env, v);
        if (!target)
            return 0;
    }
    return secret_file(b, n, m, rm, id, value, srcdup, target, tmp, err);
}

/* One expanded --mount. */
static int one_mount(struct build *b, struct stage *s, const struct mk_df_node *n,
                     const struct mk_run_mount *m, struct run_mounts *rm, const char *tmp,
                     struct mk_error **err)
{
    _cleanup_free_ char *abs_target = NULL;
    if (m->target && *m->target)
        abs_target = m->target[0] == '/'
                         ? mk_xstrdup(m->target)
                         : mk_xasprintf("%s/%s", s->config.working_dir ? s->config.working_dir : "",
                                        m->target);
    if (abs_target && abs_target[strspn(abs_target, "/.")] == '\0')
        return node_error(b, n, err, "invalid mount target \"%s\"", abs_target);
    switch (m->type) {
    case MK_RUN_MOUNT_TMPFS:
        add_mount(rm, MK_MOUNT_TMPFS, NULL, keep(rm, MK_TAKE_PTR(abs_target)), false);
        return 0;
    case MK_RUN_MOUNT_CACHE:
        return m->from ? mount_cache_from(b, s, n, m, rm, abs_target, err)
                       : mount_cache(b, n, m, rm, abs_target, err);
    case MK_RUN_MOUNT_BIND:
        return mount_bind(b, s, n, m, rm, abs_target, tmp, err);
    case MK_RUN_MOUNT_SECRET:
        return mount_secret(b, n, m, rm, abs_target, tmp, err);
    }
    MK_BUG("unknown mount type");
}

static int run_mounts_prepare(struct build *b, struct stage *s, const struct mk_df_node *n,
                              const struct mk_run_mount *mounts, size_t n_mounts, const char *tmp,
                              struct run_mounts *rm, struct mk_error **err)
{
    for (size_t i = 0; i < n_mounts; i++)
        if (one_mount(b, s, n, &mounts[i], rm, tmp, err) < 0)
            return -1;
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

/* What the mounts bring in belongs to the key: a stage's or image's layers (from=), the
 * context files a bind shows (as COPY hashes them). Cache contents and secrets do not. */
static int run_mounts_key(struct build *b, struct stage *s, const struct mk_df_node *n,
                          const struct mk_run_mount *mounts, size_t n_mounts, struct mk_sha256 *h,
                          struct mk_error **err)
{
    for (size_t i = 0; i < n_mounts; i++) {
        const struct mk_run_mount *m = &mounts[i];
        if (m->from && (m->type == MK_RUN_MOUNT_BIND || m->type == MK_RUN_MOUNT_CACHE)) {
            _cleanup_(mk_strv_release) struct mk_strv lowers = MK_STRV_INIT;
            if (from_lowerdirs(b, s, n, m->from, &lowers, err) < 0)
                return node_error(b, n, err, "--mount from=%s", m->from);
            key_part("mount from %s", m->from);
            key_add_lowers(h, &lowers);
        } else if (m->type == MK_RUN_MOUNT_BIND) {
            _cleanup_free_ char *rel = mount_source_rel(m->source);
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

/* RUN <<EOF with a "#!" line: as BuildKit, the body is a script its interpreter runs. The
 * shell only hands it over, as a file descriptor, so nothing lands in the rootfs. */
static void run_hashbang(const char *script, struct mk_strv *argv)
{
    const char *nl = strchr(script, '\n');
    _cleanup_free_ char *line =
        mk_xstrndup(script + 2, nl ? (size_t)(nl - script - 2) : strlen(script + 2));
    char *interp = line + strspn(line, " \t");
    char *arg = interp + strcspn(interp, " \t");
    if (*arg)
        *arg++ = '\0';
    arg += strspn(arg, " \t");
    const char *delim = "MKIMG_HEREDOC_END";
    struct mk_buf sh = MK_BUF_INIT;
    mk_buf_addf(&sh, "exec \"$0\" %s /dev/fd/3 3<<'%s'\n%s%s%s\n", *arg ? "\"$1\"" : "", delim,
                script, mk_str_has_suffix(script, "\n") ? "" : "\n", delim);
    mk_strv_push(argv, "/bin/sh");
    mk_strv_push(argv, "-c");
    mk_strv_push(argv, sh.data);
    mk_strv_push(argv, interp);
    if (*arg)
        mk_strv_push(argv, arg);
    mk_buf_release(&sh);
}

/* The command of a RUN: the exec form as written; the shell form through the stage's SHELL
 * (or /bin/sh -c) with its heredocs, which the shell reads as heredocs itself; a bare
 * heredoc is the script. *script: the shell-form text (for the failure message). */
static void run_argv(const struct stage *s, const struct mk_df_node *n, struct mk_strv *argv,
                     struct mk_buf *script)
{
    if (n->json) {
        mk_strv_copy(argv, &n->args);
        return;
    }
    const char *cmd = n->args.n ? n->args.v[0] : "";
    bool bare = n->n_heredocs == 1 && cmd[0] == '<' && cmd[1] == '<' && !strpbrk(cmd, " \t");
    if (bare)
        heredoc_body(script, &n->heredocs[0]);
    if (bare && script->data && mk_str_has_prefix(script->data, "#!")) {
        run_hashbang(script->data, argv);
        return;
    }
    if (!bare) {
        mk_buf_adds(script, cmd);
        for (size_t i = 0; i < n->n_heredocs; i++) {
            mk_buf_addc(script, '\n');
            mk_buf_adds(script, n->heredocs[i].content);
            mk_buf_adds(script, n->heredocs[i].name);
        }
    }
    if (s->config.shell.n) {
        mk_strv_copy(argv, &s->config.shell);
    } else {
        mk_strv_push(argv, "/bin/sh");
        mk_strv_push(argv, "-c");
    }
    mk_strv_push(argv, script->data ? script->data : "");
}

/* The command's environment: declared ARGs, then ENV (which wins). */
static void run_env(const struct stage *s, struct mk_strv *env)
{
    mk_strv_copy(env, &s->args);
    for (size_t i = 0; i < s->config.env.n; i++) {
        const char *eq = strchr(s->config.env.v[i], '=');
        _cleanup_free_ char *k =
            eq ? mk_xstrndup(s->config.env.v[i], (size_t)(eq - s->config.env.v[i]))
               : mk_xstrdup(s->config.env.v[i]);
        mk_strv_env_set(env, k, eq ? eq + 1 : "");
    }
    if (!mk_strv_env_get(env, "PATH"))
        mk_strv_push(env, MK_DEFAULT_PATH_ENV);
}

/* One RUN while it runs. */
struct run_step {
    struct mk_strv argv, env;
    struct mk_buf script;
    struct mk_run_mount *mounts; /* expanded */
    size_t n_mounts;
    enum mk_network network;
    const char *cwd, *user;
    char *created_by;
    char key[MK_DIGEST_SIZE];
};

static void run_step_release(struct run_step *r)
{
    mk_strv_release(&r->argv);
    mk_strv_release(&r->env);
    mk_buf_release(&r->script);
    for (size_t i = 0; i < r->n_mounts; i++)
        mk_run_mount_release(&r->mounts[i]);
    free(r->mounts);
    free(r->created_by);
}

static int run_key(struct build *b, struct stage *s, const struct mk_inst *in, struct run_step *r,
                   struct mk_error **err)
{
    struct mk_sha256 *h = key_begin(b, s, "RUN");
    key_part("command");
    key_add_strv(h, &r->argv);
    char count[32];
    snprintf(count, sizeof(count), "%zu", r->env.n);
    key_part("number of environment variables");
    key_add(h, count);
    for (size_t i = 0; i < r->env.n; i++) {
        const char *e = r->env.v[i], *eq = strchr(e, '=');
        key_part("env %.*s", eq ? (int)(eq - e) : (int)strlen(e), e);
        key_add(h, e);
    }
    key_part("working directory");
    key_add(h, r->cwd);
    key_part("user");
    key_add(h, r->user);
    key_part("network");
    key_add(h, r->network == MK_NET_NONE ? "none" : "host");
    if (in->run.insecure) {
        key_part("security");
        key_add(h, "insecure");
    }
    key_part("mounts");
    /* Mount specs (not cache contents or secret values) belong to the key. */
    for (size_t i = 0; i < in->run.n_mounts; i++) {
        _cleanup_free_ char *flag = mk_xasprintf("--mount=%s", in->run.mounts[i].spec);
        key_add(h, flag);
    }
    int kr = run_mounts_key(b, s, in->node, r->mounts, r->n_mounts, h, err);
    mk_sha256_final(h, r->key);
    mk_sha256_free(h);
    return kr;
}

static int run_exec(struct build *b, struct stage *s, const struct mk_inst *in, struct run_step *r,
                    struct mk_error **err)
{
    const struct mk_df_node *n = in->node;
    _cleanup_free_ char *upper = NULL, *work = NULL;
    struct run_mounts mounts;
    memset(&mounts, 0, sizeof(mounts));
    int ret = -1;
    add_proxy_env(b, s, &r->env);
    if (step_begin(b, s, &upper, &work, err) < 0 ||
        run_mounts_prepare(b, s, n, r->mounts, r->n_mounts, b->tmp, &mounts, err) < 0)
        goto out;
    for (size_t i = 0; i < mounts.env.n; i++) {
        const char *eq = strchr(mounts.env.v[i], '=');
        _cleanup_free_ char *k = mk_xstrndup(mounts.env.v[i], (size_t)(eq - mounts.env.v[i]));
        mk_strv_env_set(&r->env, k, eq + 1);
    }
    struct mk_sandbox_spec spec;
    sandbox_spec_init(&spec, s, upper, work);
    spec.mounts = mounts.m;
    spec.n_mounts = mounts.n;
    spec.argv = r->argv.v;
    spec.env = &r->env;
    spec.cwd = r->cwd;
    spec.user = r->user;
    spec.network = r->network;
    spec.insecure = in->run.insecure;
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
        const char *shown = n->json ? in->rest : r->script.data;
        mk_error_set_at(err, MK_ERR_RUN, where, "RUN %s%s%s: exit status %d", n->json ? "" : "\"",
                        shown ? shown : "", n->json ? "" : "\"", status);
        (*err)->status = status;
        goto out;
    }
    if (step_commit(b, s, upper, r->created_by, err) < 0)
        goto out;
    cache_store(b, s, r->key, false);
    ret = 0;
out:
    run_mounts_release(b, &mounts);
    step_end(b);
    return ret;
}

/* The --mount words expanded with the stage's ARGs and ENV, and checked. */
static int run_expand_mounts(struct build *b, const struct stage *s, const struct mk_inst *in,
                             struct run_step *r, struct mk_error **err)
{
    _cleanup_(mk_strv_release) struct mk_strv env = MK_STRV_INIT;
    stage_expand_env(s, &env);
    r->mounts = mk_xcalloc(in->run.n_mounts + 1, sizeof(*r->mounts));
    for (; r->n_mounts < in->run.n_mounts; r->n_mounts++)
        if (mk_run_mount_expand(&in->run.mounts[r->n_mounts], &env, b->df->escape,
                                &r->mounts[r->n_mounts], err) < 0)
            return node_where(b, in->node, err);
    return 0;
}

int do_run(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err)
{
    const struct mk_df_node *n = in->node;
    if (in->run.insecure && !b->opts->allow_insecure)
        return node_error(b, n, err,
                          "RUN --security=insecure needs the entitlement: build with --allow "
                          "security.insecure");
    struct run_step r = {.argv = MK_STRV_INIT, .env = MK_STRV_INIT, .script = MK_BUF_INIT};
    int ret = -1;
    run_argv(s, n, &r.argv, &r.script);
    if (r.argv.n == 0) {
        node_error(b, n, err, "RUN needs a command");
        goto out;
    }
    run_env(s, &r.env);
    struct mk_buf cb = MK_BUF_INIT;
    mk_buf_adds(&cb, "RUN ");
    run_history_args(s, &cb);
    for (size_t i = 0; i < r.argv.n; i++)
        mk_buf_addf(&cb, "%s%s", i ? " " : "", r.argv.v[i]);
    mk_buf_adds(&cb, " # buildkit");
    r.created_by = mk_buf_detach(&cb);
    r.network = in->run.network == MK_RUN_NET_NONE   ? MK_NET_NONE
                : in->run.network == MK_RUN_NET_HOST ? MK_NET_HOST
                                                     : b->opts->network;
    r.cwd = s->config.working_dir && *s->config.working_dir ? s->config.working_dir : "/";
    r.user = s->config.user && *s->config.user ? s->config.user : NULL;
    if (run_expand_mounts(b, s, in, &r, err) < 0 || run_key(b, s, in, &r, err) < 0)
        goto out;
    bool hit = false;
    add_proxy_env(b, s, NULL);
    cache_lookup(b, s, r.key, r.created_by, &hit);
    ret = hit ? 0 : run_exec(b, s, in, &r, err);
out:
    run_step_release(&r);
    return ret;
}
