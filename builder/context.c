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
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
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

struct ahead;

struct walk {
    const struct mk_context *ctx;
    mk_context_walk_fn fn;
    void *arg;
    struct pending pending;
    struct ahead *ahead; /* NULL: the walk reads every directory itself */
    size_t next_start;   /* the thread's next subdirectory of the start (ahead->starts) */
    bool in_ahead;       /* in one of them: its reads are the thread's */
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

const char *builder_dockerfile_default(int ctx_dirfd)
{
    /* Present means present, also as a symlink: whether it resolves is the reader's
     * business (inside the context for a remote one). */
    if (faccessat(ctx_dirfd, "Dockerfile", F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
        faccessat(ctx_dirfd, "Containerfile", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return "Containerfile";
    return "Dockerfile";
}

char *builder_dockerfile_path(const char *context_dir, const char *dockerfile)
{
    if (dockerfile)
        return mk_xstrdup(dockerfile);
    _cleanup_close_ int dfd = open(context_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return mk_xasprintf("%s/%s", context_dir,
                        dfd < 0 ? "Dockerfile" : builder_dockerfile_default(dfd));
}

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
    _cleanup_free_ char *df = dockerfile ? NULL : builder_dockerfile_path(dir, NULL);
    _cleanup_free_ char *beside = mk_xasprintf("%s.dockerignore", dockerfile ? dockerfile : df);
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

/* "./a//b/" -> "a/b"; "" and "/" -> ".". With dotdot, ".." removes the element before it
 * and stops at the root (Go's path.Clean of "/" + relpath, without the leading "/").
 * Caller frees. */
static char *clean_path(const char *relpath, bool dotdot)
{
    struct mk_buf b = MK_BUF_INIT;
    const char *p = relpath;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (dotdot && n == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = b.len ? memrchr(b.data, '/', b.len) : NULL;
            b.len = slash ? (size_t)(slash - b.data) : 0;
            if (b.data)
                b.data[b.len] = '\0';
        } else if (n > 0 && !(n == 1 && *p == '.')) {
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

static char *normalize(const char *relpath)
{
    return clean_path(relpath, false);
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

/* A directory's entries: names in one block (no allocation per name), sorted, with their
 * lstat; and the paths of its children built in one buffer. */
struct dir_list {
    char *names; /* NUL-terminated names, one after the other */
    char **v;    /* into names, sorted */
    struct stat *st;
    size_t n;
    char *child; /* "rel/" + room for the longest name */
    size_t prefix;
};

static void dir_list_release(struct dir_list *d)
{
    free(d->names);
    free(d->v);
    free(d->st);
    free(d->child);
    memset(d, 0, sizeof(*d));
}

/* The path of entry i below the directory ("name" below the root): valid until the next
 * call. */
static const char *dir_list_child(struct dir_list *d, size_t i)
{
    size_t len = strlen(d->v[i]);
    memcpy(d->child + d->prefix, d->v[i], len + 1);
    return d->child;
}

/* The sorted entries of directory rel with their lstat. */
static int read_dir(int rootfd, const char *rel, bool tolerate_denied, struct dir_list *ret,
                    struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    int fd = mk_open_in_root(rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, NULL);
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
    size_t len = 0, cap = 0, alloc = 0, longest = 0;
    _cleanup_free_ size_t *offs = NULL;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0'))) {
            errno = 0;
            continue;
        }
        size_t l = strlen(nm) + 1;
        if (len + l > cap) {
            cap = cap ? 2 * cap : 4096;
            while (cap < len + l)
                cap *= 2;
            ret->names = mk_xrealloc(ret->names, cap);
        }
        if (ret->n == alloc) {
            alloc = alloc ? 2 * alloc : 64;
            offs = mk_xreallocarray(offs, alloc, sizeof(*offs));
        }
        memcpy(ret->names + len, nm, l);
        offs[ret->n++] = len;
        len += l;
        longest = l > longest ? l : longest;
        errno = 0;
    }
    if (errno)
        return mk_error_errno(err, "reading \"%s\"", rel);
    ret->v = mk_xreallocarray(NULL, ret->n + 1, sizeof(*ret->v));
    for (size_t i = 0; i < ret->n; i++)
        ret->v[i] = ret->names + offs[i];
    if (ret->n)
        qsort(ret->v, ret->n, sizeof(char *), cmp_strp);
    bool root = strcmp(rel, ".") == 0;
    ret->prefix = root ? 0 : strlen(rel) + 1;
    ret->child = mk_xmalloc(ret->prefix + longest + 1);
    if (!root) {
        memcpy(ret->child, rel, ret->prefix - 1);
        ret->child[ret->prefix - 1] = '/';
    }
    ret->st = mk_xreallocarray(NULL, ret->n + 1, sizeof(*ret->st));
    for (size_t i = 0; i < ret->n; i++)
        if (fstatat(dirfd(d), ret->v[i], &ret->st[i], AT_SYMLINK_NOFOLLOW) < 0)
            return mk_error_errno(err, "reading \"%s/%s\"", rel, ret->v[i]);
    return 0;
}

/* Bounds every walk: nesting depth and SIGINT. */
static int walk_guard(const char *rel, unsigned depth, struct mk_error **err)
{
    if (depth > CONTEXT_MAX_DEPTH)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\": nested deeper than %d directories",
                            rel, CONTEXT_MAX_DEPTH);
    if (mk_interrupted)
        return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
    return 0;
}

/* The lstat of the walk's start rel (normalized) below rootfd. */
static int stat_start(int rootfd, const char *rel, struct stat *st, struct mk_error **err)
{
    if (strcmp(rel, ".") == 0) {
        if (fstat(rootfd, st) < 0)
            return mk_error_errno(err, "stat of the build context");
        return 0;
    }
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = mk_open_parent_in_root(rootfd, rel, false, &name, NULL);
    if (pfd < 0 || fstatat(pfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
        return mk_error_set(err, MK_ERR_NOT_FOUND, errno, "\"%s\" not found in the build context",
                            rel);
    return 0;
}

static int walk_entry(struct walk *w, const char *rel, const struct stat *st, unsigned depth,
                      struct mk_error **err);

/* ---- read-ahead: a second thread reads half of the tree -----------------------------------
 *
 * A walk of a big tree spends most of its time in the kernel: getdents, and one lstat per
 * entry. When the start directory has subdirectories to walk, every second one (and all
 * below it) is read by a thread, in the walk's own order, deciding as walk_entry does (an
 * excluded directory is read only when an exception may lie below it); it hands each
 * directory's sorted entries and lstats over, at most AHEAD_MAX of them waiting. The walk
 * reads the others itself meanwhile, so the reads go at twice the pace and the two meet once
 * per subdirectory of the start. A read the walk does not expect next (never, but not worth
 * a wrong result) stops the thread, and the walk reads for itself from then on. Errors
 * travel with the read they belong to. */
#define AHEAD_MAX 64
#define AHEAD_MIN_DIRS 2

struct ahead_item {
    char *rel; /* '1' + path for a speculative read (read_dir's tolerate_denied), else '0' */
    int rc;
    struct mk_error *err;
    struct dir_list dl;
};

struct ahead {
    const struct mk_context *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ahead_item ring[AHEAD_MAX];
    size_t head, n;
    bool stop, finished;
    struct mk_strv starts; /* the thread's subdirectories of the start, '0'/'1' + path */
};

static void ahead_item_release(struct ahead_item *it)
{
    free(it->rel);
    mk_error_free(it->err);
    dir_list_release(&it->dl);
}

/* The subdirectories of dl that walk_entry reads, in order, '0'/'1' + path. */
static void dirs_to_read(const struct mk_context *ctx, struct dir_list *dl, struct mk_strv *ret)
{
    for (size_t i = 0; i < dl->n; i++) {
        if (!S_ISDIR(dl->st[i].st_mode))
            continue;
        const char *c = dir_list_child(dl, i);
        if (!builder_context_excluded(ctx, c))
            mk_strv_pushf(ret, "0%s", c);
        else if (mk_ignore_dir_may_have_exceptions(ctx->ig, c))
            mk_strv_pushf(ret, "1%s", c);
    }
}

static bool ahead_put(struct ahead *a, struct ahead_item *it)
{
    pthread_mutex_lock(&a->mu);
    while (a->n == AHEAD_MAX && !a->stop)
        pthread_cond_wait(&a->cv, &a->mu);
    bool ok = !a->stop;
    if (ok) {
        a->ring[(a->head + a->n) % AHEAD_MAX] = *it;
        a->n++;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* Reads the directory spec names and, depth first, those below it; false to stop. */
static bool ahead_dir(struct ahead *a, const char *spec, unsigned depth)
{
    if (depth > CONTEXT_MAX_DEPTH)
        return false; /* the walk fails there itself */
    struct ahead_item it = {.rel = mk_xstrdup(spec)};
    it.rc = read_dir(a->ctx->dirfd, spec + 1, spec[0] == '1', &it.dl, &it.err);
    struct mk_strv next = MK_STRV_INIT;
    if (it.rc == 0)
        dirs_to_read(a->ctx, &it.dl, &next);
    bool ok = it.rc == 0;
    if (!ahead_put(a, &it)) {
        ahead_item_release(&it);
        ok = false;
    }
    for (size_t i = 0; ok && i < next.n; i++)
        ok = ahead_dir(a, next.v[i], depth + 1);
    mk_strv_release(&next);
    return ok;
}

static void *ahead_main(void *arg)
{
    struct ahead *a = arg;
    for (size_t i = 0; i < a->starts.n && ahead_dir(a, a->starts.v[i], 1); i++)
        ;
    pthread_mutex_lock(&a->mu);
    a->finished = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Starts reading ahead below the start directory (its entries dl), when worth a thread. */
static void ahead_start(struct walk *w, struct dir_list *dl)
{
    struct mk_strv dirs = MK_STRV_INIT, starts = MK_STRV_INIT;
    dirs_to_read(w->ctx, dl, &dirs);
    for (size_t i = 1; dirs.n >= AHEAD_MIN_DIRS && i < dirs.n; i += 2)
        mk_strv_push(&starts, dirs.v[i]);
    mk_strv_release(&dirs);
    if (!starts.n)
        return;
    struct ahead *a = mk_xcalloc(1, sizeof(*a));
    a->ctx = w->ctx;
    a->starts = starts;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    /* Signals stay with the walk's thread (mk_interrupted). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&a->thread, NULL, ahead_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        mk_strv_release(&a->starts);
        free(a);
        return;
    }
    w->ahead = a;
}

static void ahead_end(struct walk *w)
{
    struct ahead *a = w->ahead;
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    for (; a->n; a->n--, a->head = (a->head + 1) % AHEAD_MAX)
        ahead_item_release(&a->ring[a->head]);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    mk_strv_release(&a->starts);
    free(a);
    w->ahead = NULL;
}

/* The thread's read of rel, if it is the next one; false: the walk reads for itself. */
static bool ahead_take(struct walk *w, const char *rel, bool speculative, struct dir_list *ret,
                       int *ret_rc, struct mk_error **err)
{
    struct ahead *a = w->ahead;
    pthread_mutex_lock(&a->mu);
    while (a->n == 0 && !a->finished)
        pthread_cond_wait(&a->cv, &a->mu);
    struct ahead_item *it = a->n ? &a->ring[a->head] : NULL;
    bool ok = it && it->rel[0] == (speculative ? '1' : '0') && strcmp(it->rel + 1, rel) == 0;
    if (ok) {
        *ret = it->dl;
        *ret_rc = it->rc;
        if (it->err && err)
            *err = MK_TAKE_PTR(it->err);
        mk_error_free(it->err);
        free(it->rel);
        a->head = (a->head + 1) % AHEAD_MAX;
        a->n--;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    if (!ok)
        ahead_end(w);
    return ok;
}

static int walk_children(struct walk *w, const char *rel, bool speculative, unsigned depth,
                         struct mk_error **err)
{
    struct dir_list dl;
    int r;
    if (w->ahead && depth == 1) {
        /* Entering a subdirectory of the start: one of the thread's, or one of the walk's. */
        const char *next =
            w->next_start < w->ahead->starts.n ? w->ahead->starts.v[w->next_start] + 1 : NULL;
        w->in_ahead = next && strcmp(next, rel) == 0;
        w->next_start += w->in_ahead;
    }
    if (!w->ahead || !w->in_ahead || !ahead_take(w, rel, speculative, &dl, &r, err))
        r = read_dir(w->ctx->dirfd, rel, speculative, &dl, err);
    if (r == 0 && depth == 0)
        ahead_start(w, &dl);
    for (size_t i = 0; r == 0 && i < dl.n; i++)
        r = walk_entry(w, dir_list_child(&dl, i), &dl.st[i], depth + 1, err);
    dir_list_release(&dl);
    return r;
}

static int walk_entry(struct walk *w, const char *rel, const struct stat *st, unsigned depth,
                      struct mk_error **err)
{
    if (walk_guard(rel, depth, err) < 0)
        return -1;
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
    if (stat_start(ctx->dirfd, rel, &st, err) < 0)
        return -1;
    struct walk w = {.ctx = ctx, .fn = fn, .arg = arg};
    int r = walk_entry(&w, rel, &st, 0, err);
    ahead_end(&w);
    while (w.pending.n)
        pending_pop(&w.pending);
    free(w.pending.paths);
    free(w.pending.st);
    return r;
}

/* ---- filtered walk: fsutil's filterFS, one stage per filter layer ---- */

#define FOLLOW_MAX_STEPS 4096 /* symlink resolutions of one set of follow paths */

/* Directories a stage has seen on the way to the current entry. */
struct held {
    char *path;
    struct stat st;
    bool sent; /* passed on to the next stage */
    bool dead; /* the next stage pruned it: nothing below is sent */
};

struct stage {
    struct mk_ignore *inc, *exc; /* NULL: no such filter */
    struct mk_strv inc_dirs;     /* include patterns without a trailing glob, for pruning */
    bool inc_prefix_only;        /* fsutil onlyPrefixIncludes: pruning by prefix is exact */
    struct held *held;
    size_t n_held, alloc_held;
};

struct fwalk {
    int rootfd;
    struct stage *stages;
    size_t n;
    mk_context_walk_fn fn;
    void *arg;
};

enum { FEED_SENT = 0, FEED_PRUNE = 1, FEED_HELD = 2 };

static bool has_wildcards(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' && s[1])
            s++;
        else if (*s == '*' || *s == '?' || *s == '[')
            return true;
    }
    return false;
}

struct follow {
    int rootfd;
    struct mk_strv resolved;
    unsigned steps;
};

static bool strv_has(const struct mk_strv *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcmp(sv->v[i], s) == 0)
            return true;
    return false;
}

/* fsutil readSymlink: the target of p (context-relative) when it is a symlink, as a clean
 * root-relative path; with a wildcard in the last element, those of each matching sibling. */
static int follow_read(struct follow *f, const char *p, bool wildcard, struct mk_strv *targets,
                       struct mk_error **err)
{
    const char *slash = strrchr(p, '/');
    const char *base = slash ? slash + 1 : p;
    _cleanup_free_ char *dir = slash ? mk_xstrndup(p, (size_t)(slash - p)) : mk_xstrdup(".");
    if (wildcard && has_wildcards(base)) {
        struct dir_list dl;
        int r = read_dir(f->rootfd, dir, false, &dl, NULL);
        for (size_t i = 0; r == 0 && i < dl.n; i++) {
            if (fnmatch(base, dl.v[i], 0) != 0)
                continue;
            _cleanup_free_ char *child = mk_xstrdup(dir_list_child(&dl, i));
            r = follow_read(f, child, false, targets, err);
        }
        dir_list_release(&dl);
        return r;
    }
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = mk_open_parent_in_root(f->rootfd, p, false, &name, NULL);
    struct stat st;
    if (pfd < 0 || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
        return 0; /* missing paths are left to the walk */
    char link[4096];
    ssize_t n = readlinkat(pfd, name, link, sizeof(link) - 1);
    if (n < 0)
        return mk_error_errno(err, "reading the symlink \"%s\"", p);
    link[n] = '\0';
    if (link[0] == '/')
        mk_strv_push_take(targets, clean_path(link, true));
    else {
        _cleanup_free_ char *joined = mk_xasprintf("%s/%s", dir, link);
        mk_strv_push_take(targets, clean_path(joined, true));
    }
    return 0;
}

/* fsutil symlinkResolver.append. */
static int follow_append(struct follow *f, const char *path, struct mk_error **err)
{
    if (++f->steps > FOLLOW_MAX_STEPS)
        return mk_error_set(err, MK_ERR_INVALID, 0, "follow path \"%s\": too many symlinks", path);
    _cleanup_free_ char *p = clean_path(path, true);
    _cleanup_free_ char *current = mk_xstrdup(".");
    const char *rest = p;
    for (;;) {
        const char *e = strchrnul(rest, '/');
        /* p is clean: only p itself can be "." (the root). */
        char *next = strcmp(current, ".") == 0
                         ? mk_xstrndup(rest, (size_t)(e - rest))
                         : mk_xasprintf("%s/%.*s", current, (int)(e - rest), rest);
        free(current);
        current = next;
        struct mk_strv targets = MK_STRV_INIT;
        if (follow_read(f, current, true, &targets, err) < 0) {
            mk_strv_release(&targets);
            return -1;
        }
        rest = *e ? e + 1 : e;
        if ((!*rest || targets.n) && strv_has(&f->resolved, current)) {
            mk_strv_release(&targets);
            return 0;
        }
        if (targets.n) {
            mk_strv_push(&f->resolved, current);
            int r = 0;
            for (size_t i = 0; r == 0 && i < targets.n; i++) {
                _cleanup_free_ char *t =
                    *rest ? mk_xasprintf("%s/%s", targets.v[i], rest) : mk_xstrdup(targets.v[i]);
                r = follow_append(f, t, err);
            }
            mk_strv_release(&targets);
            return r;
        }
        mk_strv_release(&targets);
        if (!*rest) {
            mk_strv_push(&f->resolved, current);
            return 0;
        }
    }
}

/* fsutil dedupePaths: drops paths below the one before; "." anywhere means no filter
 * (returns false). */
static bool dedupe_paths(const struct mk_strv *in, struct mk_strv *out)
{
    const char *last = NULL;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->v[i];
        if (strcmp(s, ".") == 0) {
            mk_strv_clear(out);
            return false;
        }
        size_t ll = last ? strlen(last) : 0;
        if (last ? strncmp(s, last, ll) == 0 && s[ll] == '/' : s[0] == '/')
            continue;
        mk_strv_push(out, s);
        last = s;
    }
    return true;
}

static int compile(const struct mk_strv *patterns, struct mk_ignore **ret, struct mk_error **err)
{
    bool m;
    if (mk_ignore_new(patterns, ret, err) < 0 || mk_ignore_matches(*ret, "x", &m, err) < 0)
        return -1;
    return 0;
}

/* The layer's include patterns: include plus the resolved follow paths (NewFilterFS). */
static int stage_init(struct stage *s, int rootfd, const struct mk_walk_filter *f,
                      struct mk_error **err)
{
    struct mk_strv inc = MK_STRV_INIT;
    int r = 0;
    if (f->include)
        mk_strv_copy(&inc, f->include);
    if (f->follow_paths && f->follow_paths->n) {
        struct follow fo = {.rootfd = rootfd};
        for (size_t i = 0; r == 0 && i < f->follow_paths->n; i++)
            r = follow_append(&fo, f->follow_paths->v[i], err);
        struct mk_strv targets = MK_STRV_INIT;
        if (fo.resolved.n)
            qsort(fo.resolved.v, fo.resolved.n, sizeof(char *), cmp_strp);
        if (r == 0 && dedupe_paths(&fo.resolved, &targets) && targets.n) {
            mk_strv_copy(&inc, &targets);
            struct mk_strv deduped = MK_STRV_INIT;
            dedupe_paths(&inc, &deduped);
            mk_strv_release(&inc);
            inc = deduped;
        }
        mk_strv_release(&targets);
        mk_strv_release(&fo.resolved);
    }
    if (r == 0 && inc.n) {
        r = compile(&inc, &s->inc, err);
        s->inc_prefix_only = true;
        for (size_t i = 0; r == 0 && i < inc.n; i++) {
            if (inc.v[i][0] == '!')
                continue;
            _cleanup_free_ char *c = clean_path(inc.v[i], true);
            size_t len = strlen(c);
            if (len >= 3 && strcmp(c + len - 3, "/**") == 0)
                c[len - 3] = '\0';
            else if (len >= 2 && strcmp(c + len - 2, "/*") == 0)
                c[len - 2] = '\0';
            /* A pattern with ".." cleans differently in patternmatcher: do not prune. */
            if (strpbrk(c, "*?[]^\\") || strstr(inc.v[i], ".."))
                s->inc_prefix_only = false;
            mk_strv_push(&s->inc_dirs, c);
        }
    }
    if (r == 0 && f->exclude && f->exclude->n)
        r = compile(f->exclude, &s->exc, err);
    mk_strv_release(&inc);
    return r;
}

static void stage_release(struct stage *s)
{
    mk_ignore_free(s->inc);
    mk_ignore_free(s->exc);
    mk_strv_release(&s->inc_dirs);
    for (size_t i = 0; i < s->n_held; i++)
        free(s->held[i].path);
    free(s->held);
}

/* May an include pattern of s name something below dir? */
static bool include_below(const struct stage *s, const char *dir)
{
    if (!s->inc_prefix_only)
        return true;
    size_t dlen = strlen(dir);
    for (size_t i = 0; i < s->inc_dirs.n; i++) {
        const char *c = s->inc_dirs.v[i];
        if (strncmp(c, dir, dlen) == 0 && (c[dlen] == '/' || c[dlen] == '\0'))
            return true;
    }
    return false;
}

static int feed(struct fwalk *w, size_t k, const char *rel, const struct stat *st,
                struct mk_error **err);

/* Sends to the stage after k (or the callback); a FEED_HELD there is a send from k's view. */
static int forward(struct fwalk *w, size_t k, const char *rel, const struct stat *st,
                   struct mk_error **err)
{
    if (k + 1 == w->n)
        return w->fn(rel, st, w->arg, err) < 0 ? -1 : FEED_SENT;
    int r = feed(w, k + 1, rel, st, err);
    return r == FEED_HELD ? FEED_SENT : r;
}

/* One stage of fsutil's filterFS.Walk callback for the entry rel. */
static int feed(struct fwalk *w, size_t k, const char *rel, const struct stat *st,
                struct mk_error **err)
{
    struct stage *s = &w->stages[k];
    bool is_dir = S_ISDIR(st->st_mode), skip = false, m;
    size_t rlen = strlen(rel);
    /* Drop the directories the walk has left. */
    while (s->n_held) {
        const char *h = s->held[s->n_held - 1].path;
        size_t hlen = strlen(h);
        if (hlen < rlen && strncmp(rel, h, hlen) == 0 && rel[hlen] == '/')
            break;
        free(s->held[--s->n_held].path);
    }
    if (s->inc) {
        if (mk_ignore_matches(s->inc, rel, &m, err) < 0)
            return -1;
        if (!m && is_dir && !include_below(s, rel))
            return FEED_PRUNE;
        skip = !m;
    }
    if (s->exc && !skip) {
        if (mk_ignore_matches(s->exc, rel, &m, err) < 0)
            return -1;
        if (m && is_dir && !mk_ignore_dir_may_have_exceptions(s->exc, rel))
            return FEED_PRUNE;
        skip = m;
    }
    int r = FEED_HELD;
    bool dead = false;
    if (!skip) {
        for (size_t i = 0; i < s->n_held; i++)
            if (s->held[i].dead)
                return FEED_PRUNE;
        for (size_t i = 0; i < s->n_held; i++) {
            if (s->held[i].sent)
                continue;
            s->held[i].sent = true;
            r = forward(w, k, s->held[i].path, &s->held[i].st, err);
            if (r < 0)
                return -1;
            if (r == FEED_PRUNE) {
                s->held[i].dead = true;
                return FEED_PRUNE;
            }
        }
        r = forward(w, k, rel, st, err);
        if (r < 0)
            return -1;
        dead = r == FEED_PRUNE;
    }
    if (is_dir) {
        if (s->n_held == s->alloc_held) {
            s->alloc_held = s->alloc_held ? 2 * s->alloc_held : 8;
            s->held = mk_xreallocarray(s->held, s->alloc_held, sizeof(*s->held));
        }
        s->held[s->n_held++] =
            (struct held){.path = mk_xstrdup(rel), .st = *st, .sent = !skip, .dead = dead};
    }
    return r;
}

static int fwalk_entry(struct fwalk *w, const char *rel, const struct stat *st, unsigned depth,
                       struct mk_error **err)
{
    if (walk_guard(rel, depth, err) < 0)
        return -1;
    int r = strcmp(rel, ".") == 0 || w->n == 0 ? (w->fn(rel, st, w->arg, err) < 0 ? -1 : FEED_SENT)
                                               : feed(w, 0, rel, st, err);
    if (r < 0)
        return -1;
    if (r == FEED_PRUNE || !S_ISDIR(st->st_mode))
        return 0;
    struct dir_list dl;
    /* As fsutil: a directory the first layer holds back may be unreadable. */
    r = read_dir(w->rootfd, rel, r == FEED_HELD, &dl, err);
    for (size_t i = 0; r == 0 && i < dl.n; i++)
        r = fwalk_entry(w, dir_list_child(&dl, i), &dl.st[i], depth + 1, err);
    dir_list_release(&dl);
    return r;
}

static int stages_init(int rootfd, const struct mk_walk_filter *filters, size_t n,
                       struct stage **ret, struct mk_error **err)
{
    *ret = mk_xcalloc(n + 1, sizeof(**ret));
    for (size_t i = 0; i < n; i++)
        if (stage_init(&(*ret)[i], rootfd, &filters[i], err) < 0)
            return -1;
    return 0;
}

static void stages_free(struct stage *stages, size_t n)
{
    for (size_t i = 0; i < n; i++)
        stage_release(&stages[i]);
    free(stages);
}

int builder_context_walk_filtered(int rootfd, const char *relpath,
                                  const struct mk_walk_filter *filters, size_t n,
                                  mk_context_walk_fn fn, void *arg, struct mk_error **err)
{
    _cleanup_free_ char *rel = normalize(relpath);
    struct stat st;
    if (stat_start(rootfd, rel, &st, err) < 0)
        return -1;
    struct fwalk w = {.rootfd = rootfd, .n = n, .fn = fn, .arg = arg};
    int r = stages_init(rootfd, filters, n, &w.stages, err);
    if (r == 0)
        r = fwalk_entry(&w, rel, &st, 0, err);
    stages_free(w.stages, n);
    return r;
}

int builder_context_open_filtered(int rootfd, const char *relpath,
                                  const struct mk_walk_filter *filters, size_t n, int flags,
                                  struct mk_error **err)
{
    _cleanup_free_ char *rel = normalize(relpath);
    struct stage *stages = NULL;
    int r = stages_init(rootfd, filters, n, &stages, err);
    bool m = false;
    /* Outermost first, as each filterFS.Open asks the one it wraps. */
    for (size_t i = n; r == 0 && i-- > 0;) {
        if (stages[i].inc && (r = mk_ignore_matches(stages[i].inc, rel, &m, err)) == 0 && !m)
            break;
        if (stages[i].exc && (r = mk_ignore_matches(stages[i].exc, rel, &m, err)) == 0 && m) {
            m = false;
            break;
        }
        m = true;
    }
    stages_free(stages, n);
    if (r < 0)
        return -1;
    if (n && !m)
        return mk_error_set(err, MK_ERR_NOT_FOUND, ENOENT, "\"%s\" not found", rel);
    int fd = mk_open_in_root(rootfd, rel, flags, 0, err);
    return fd;
}
