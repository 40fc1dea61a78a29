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
    if (from_lowerdirs(b, s, n, from, lowers, err) < 0 || rcache_fetch(b, lowers, err) < 0) {
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

/* A cache mount's sharing= (BuildKit): "shared" users run together; "locked" waits for
 * every other user; "private" takes an instance nobody uses (layerstore_cache_mount_lock).
 * Builds with --jobs and concurrent builds on one store meet there. overlay: the cache is an
 * overlay's upper, which one mount at a time may use, so "shared" locks exclusively too. id
 * names the cache (a digest of its id and source); *ret_dir is the store's directory for it
 * (caller frees, creates it when missing); the lock is held until run_mounts_release. */
static int cache_lock(struct build *b, const struct mk_df_node *n, struct run_mounts *rm,
                      const char *id, const char *sharing, bool overlay, char **ret_dir,
                      struct mk_error **err)
{
    sharing = sharing ? sharing : "shared";
    enum mk_cache_sharing how;
    if (strcmp(sharing, "shared") == 0)
        how = overlay ? MK_CACHE_LOCKED : MK_CACHE_SHARED;
    else if (strcmp(sharing, "locked") == 0)
        how = MK_CACHE_LOCKED;
    else if (strcmp(sharing, "private") == 0)
        how = MK_CACHE_PRIVATE;
    else
        return node_error(b, n, err, "--mount sharing=%s: unknown mode (shared, private or locked)",
                          sharing);
    if (rm->n_locks == MK_ARRAY_SIZE(rm->locks))
        return node_error(b, n, err, "too many cache mounts in one RUN");
    int fd = layerstore_cache_mount_lock(b->store, id, how, ret_dir, err);
    if (fd < 0)
        return node_error(b, n, err, "RUN --mount=type=cache");
    rm->locks[rm->n_locks++] = fd;
    return 0;
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
        _cleanup_free_ char *dir = NULL;
        const char *upper, *work;
        if (cache_lock(b, n, rm, d, mk_strv_env_get(&kv, "sharing"), true, &dir, err) < 0)
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
        char *dir = NULL;
        if (cache_lock(b, n, rm, d, mk_strv_env_get(&kv, "sharing"), false, &dir, err) < 0) {
            node_where(b, n, err);
            goto out;
        }
        keep(rm, dir);
        rcache_mount(b, d, dir);
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
            key_add_lowers(h, &lowers);
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

int do_run(struct build *b, struct stage *s, const struct mk_df_node *n, struct mk_error **err)
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
        mk_strv_push(&env, MK_DEFAULT_PATH_ENV);

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
        struct mk_sha256 *h = key_begin(b, s, "RUN");
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
