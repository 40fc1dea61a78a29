/* builder/context.c - the build context: its directory, its .dockerignore and the walk that
 * decides what COPY and the cache see (tonistiigi/fsutil's filtered walk).
 *
 * Every path is resolved below the context's O_PATH fd (mk_open_in_root), symlinks are
 * reported and never followed. An excluded directory is skipped without being opened unless
 * an exception pattern names something below it; it is then reported only if something
 * inside it is, so "foo*" + "!foo/bar" sends "foo" and "foo/bar" and nothing else of foo.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/internal.h"
#include "common/fsutil.h"
#include "parser/parser.h"

#define CONTEXT_IGNORE_MAX (1u << 20) /* bytes of a .dockerignore */
#define CONTEXT_MAX_DEPTH 512         /* directory nesting of a walk */

struct mk_context {
    int dirfd;
    struct mk_ignore *ig; /* NULL: nothing excluded */
};

/* Directories excluded themselves but walked for exceptions: reported only once something
 * below them is. */
struct pending {
    char **paths;
    struct stat *st;
    size_t n, reported, alloc;
};

struct walk {
    const struct mk_context *ctx;
    mk_context_walk_fn fn;
    void *arg;
    struct pending pending;
};

/* Reads the ignore file at path (relative to the context when in_context), or returns 0 with
 * *ret NULL when there is none. */
static int read_ignore_file(int dirfd, const char *path, bool in_context, char **ret,
                            size_t *ret_len, struct mk_error **err)
{
    *ret = NULL;
    if (!in_context) {
        if (access(path, F_OK) < 0)
            return 0;
        return mk_read_file_at(AT_FDCWD, path, CONTEXT_IGNORE_MAX, ret, ret_len, err);
    }
    /* Resolved inside the context, so a symlinked .dockerignore cannot point out of it. */
    _cleanup_close_ int fd = mk_open_in_root(dirfd, path, O_RDONLY, 0, NULL);
    if (fd < 0)
        return errno == ENOENT ? 0 : mk_error_errno(err, "opening \"%s\"", path);
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    return mk_read_file_at(AT_FDCWD, proc, CONTEXT_IGNORE_MAX, ret, ret_len, err);
}

void builder_context_free(struct mk_context *ctx)
{
    if (!ctx)
        return;
    if (ctx->dirfd >= 0)
        close(ctx->dirfd);
    mk_ignore_free(ctx->ig);
    free(ctx);
}

MK_DEFINE_CLEANUP(struct mk_context, builder_context_free)

int builder_context_open(const char *dir, const char *dockerfile, struct mk_context **ret,
                         struct mk_error **err)
{
    return builder_context_open_with(dir, dockerfile, NULL, ret, err);
}

int builder_context_open_with(const char *dir, const char *dockerfile, const char *ignorefile,
                              struct mk_context **ret, struct mk_error **err)
{
    _cleanup_(builder_context_freep) struct mk_context *ctx = mk_xcalloc(1, sizeof(*ctx));
    ctx->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ctx->dirfd < 0)
        return mk_error_set(err, errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO, errno,
                            "opening build context \"%s\"", dir);

    /* BuildKit: DOCKERFILE.dockerignore beside the Dockerfile replaces .dockerignore. */
    _cleanup_free_ char *beside = dockerfile ? mk_xasprintf("%s.dockerignore", dockerfile)
                                             : mk_xasprintf("%s/Dockerfile.dockerignore", dir);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    const char *source = ignorefile ? ignorefile : beside;
    if (ignorefile) {
        /* --ignorefile names a file of the caller's, which must exist. */
        if (mk_read_file_at(AT_FDCWD, ignorefile, CONTEXT_IGNORE_MAX, &data, &len, err) < 0)
            return mk_error_set_where(err, ignorefile);
    } else if (read_ignore_file(ctx->dirfd, beside, false, &data, &len, err) < 0) {
        return -1;
    }
    /* buildah and podman's .containerignore comes before .dockerignore. */
    static const char *const in_context[] = {".containerignore", ".dockerignore"};
    for (size_t i = 0; !data && i < sizeof(in_context) / sizeof(in_context[0]); i++) {
        source = in_context[i];
        if (read_ignore_file(ctx->dirfd, source, true, &data, &len, err) < 0)
            return -1;
    }
    if (data) {
        struct mk_strv patterns = MK_STRV_INIT;
        int r = mk_ignore_read(data, len, &patterns, err);
        if (r == 0)
            r = mk_ignore_new(&patterns, &ctx->ig, err);
        mk_strv_release(&patterns);
        /* A pattern Go's regexp would reject fails every match: fail now, not per file. */
        bool m;
        if (r == 0)
            r = mk_ignore_matches(ctx->ig, "x", &m, err);
        if (r < 0)
            return mk_error_wrap(err, "reading \"%s\"", source);
    }
    *ret = MK_TAKE_PTR(ctx);
    return 0;
}

int builder_context_dirfd(const struct mk_context *ctx)
{
    return ctx->dirfd;
}

/* "./a//b/" -> "a/b"; "" and "/" -> ".". Caller frees. */
static char *normalize(const char *relpath)
{
    struct mk_buf b = MK_BUF_INIT;
    const char *p = relpath;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (n > 0 && !(n == 1 && *p == '.')) {
            if (b.len)
                mk_buf_addc(&b, '/');
            mk_buf_add(&b, p, n);
        }
        p = e;
    }
    if (!b.len)
        mk_buf_addc(&b, '.');
    return mk_buf_detach(&b);
}

bool builder_context_excluded(const struct mk_context *ctx, const char *relpath)
{
    bool m = false;
    if (!ctx->ig)
        return false;
    _cleanup_free_ char *rel = normalize(relpath);
    /* Patterns were checked at open; an error here means a path we cannot judge: keep it
     * out rather than leak it into an image. */
    if (mk_ignore_matches(ctx->ig, rel, &m, NULL) < 0)
        return true;
    return m;
}

static void pending_push(struct pending *p, const char *rel, const struct stat *st)
{
    if (p->n == p->alloc) {
        p->alloc = p->alloc ? 2 * p->alloc : 8;
        p->paths = mk_xreallocarray(p->paths, p->alloc, sizeof(*p->paths));
        p->st = mk_xreallocarray(p->st, p->alloc, sizeof(*p->st));
    }
    p->paths[p->n] = mk_xstrdup(rel);
    p->st[p->n++] = *st;
}

static void pending_pop(struct pending *p)
{
    free(p->paths[--p->n]);
    if (p->reported > p->n)
        p->reported = p->n;
}

static int report(struct walk *w, const char *rel, const struct stat *st, struct mk_error **err)
{
    struct pending *p = &w->pending;
    for (; p->reported < p->n; p->reported++)
        if (w->fn(p->paths[p->reported], &p->st[p->reported], w->arg, err) < 0)
            return -1;
    return w->fn(rel, st, w->arg, err);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted entries of directory rel with their lstat. */
static int read_dir(const struct mk_context *ctx, const char *rel, bool tolerate_denied,
                    struct mk_strv *ret_names, struct stat **ret_st, struct mk_error **err)
{
    int fd = mk_open_in_root(ctx->dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, NULL);
    if (fd < 0) {
        /* Opened only because an exception might lie below: unreadable means none does. */
        if (tolerate_denied && errno == EACCES)
            return 0;
        return mk_error_errno(err, "reading \"%s\"", rel);
    }
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return mk_error_errno(err, "reading \"%s\"", rel);
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            mk_strv_push(ret_names, de->d_name);
        errno = 0;
    }
    if (errno)
        return mk_error_errno(err, "reading \"%s\"", rel);
    if (ret_names->n)
        qsort(ret_names->v, ret_names->n, sizeof(char *), cmp_strp);
    *ret_st = mk_xreallocarray(NULL, ret_names->n + 1, sizeof(**ret_st));
    for (size_t i = 0; i < ret_names->n; i++)
        if (fstatat(dirfd(d), ret_names->v[i], &(*ret_st)[i], AT_SYMLINK_NOFOLLOW) < 0)
            return mk_error_errno(err, "reading \"%s/%s\"", rel, ret_names->v[i]);
    return 0;
}

static int walk_entry(struct walk *w, const char *rel, const struct stat *st, unsigned depth,
                      struct mk_error **err);

static int walk_children(struct walk *w, const char *rel, bool speculative, unsigned depth,
                         struct mk_error **err)
{
    struct mk_strv names = MK_STRV_INIT;
    _cleanup_free_ struct stat *sts = NULL;
    int r = read_dir(w->ctx, rel, speculative, &names, &sts, err);
    for (size_t i = 0; r == 0 && i < names.n; i++) {
        _cleanup_free_ char *child =
            strcmp(rel, ".") == 0 ? mk_xstrdup(names.v[i]) : mk_xasprintf("%s/%s", rel, names.v[i]);
        r = walk_entry(w, child, &sts[i], depth + 1, err);
    }
    mk_strv_release(&names);
    return r;
}

static int walk_entry(struct walk *w, const char *rel, const struct stat *st, unsigned depth,
                      struct mk_error **err)
{
    if (depth > CONTEXT_MAX_DEPTH)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\": nested deeper than %d directories",
                            rel, CONTEXT_MAX_DEPTH);
    if (mk_interrupted)
        return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
    bool excluded = strcmp(rel, ".") != 0 && builder_context_excluded(w->ctx, rel);
    if (!excluded) {
        if (report(w, rel, st, err) < 0)
            return -1;
        return S_ISDIR(st->st_mode) ? walk_children(w, rel, false, depth, err) : 0;
    }
    if (!S_ISDIR(st->st_mode) || !mk_ignore_dir_may_have_exceptions(w->ctx->ig, rel))
        return 0;
    pending_push(&w->pending, rel, st);
    int r = walk_children(w, rel, true, depth, err);
    pending_pop(&w->pending);
    return r;
}

int builder_context_walk(const struct mk_context *ctx, const char *relpath, mk_context_walk_fn fn,
                         void *arg, struct mk_error **err)
{
    _cleanup_free_ char *rel = normalize(relpath);
    struct stat st;
    if (strcmp(rel, ".") == 0) {
        if (fstat(ctx->dirfd, &st) < 0)
            return mk_error_errno(err, "stat of the build context");
    } else {
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int pfd = mk_open_parent_in_root(ctx->dirfd, rel, false, &name, NULL);
        if (pfd < 0 || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return mk_error_set(err, MK_ERR_NOT_FOUND, errno,
                                "\"%s\" not found in the build context", rel);
    }
    struct walk w = {.ctx = ctx, .fn = fn, .arg = arg};
    int r = walk_entry(&w, rel, &st, 0, err);
    while (w.pending.n)
        pending_pop(&w.pending);
    free(w.pending.paths);
    free(w.pending.st);
    return r;
}
