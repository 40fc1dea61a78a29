/* builder/copy.c - COPY and ADD: files from the build context (or another root) into the
 * step's root file system.
 *
 * Runs inside builder_sandbox_call's child, with the step's overlay mounted: every path on
 * the destination side resolves inside the image root (RESOLVE_IN_ROOT), every path on the
 * source side inside the context, so neither a symlink in the context nor one in the image
 * can make the copy read or write outside them.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"
#include "layerstore/layerstore.h"

struct copy_state {
    const struct mk_copy_spec *spec;
    int rootfd;
    int srcfd;
    uid_t uid;
    gid_t gid;
    uid_t euid; /* this process's, owner of what it creates */
    gid_t egid;
    mode_t dir_mode;        /* of the directories the copy creates (dest and its parents) */
    const char *src_prefix; /* the source being copied (context-relative) */
    const char *dest_base;  /* its destination */
    uint64_t files;
    /* Regular files with several links already copied, so their other names become links
     * again: source (dev, ino) -> destination path. */
    struct copied_link {
        dev_t dev;
        ino_t ino;
        char *dest;
        char digest[MK_DIGEST_SIZE]; /* with spec->digests: what was written, */
        struct stat after;           /* the source's stat after it (st_nlink 0: unknown) */
    } * links;
    size_t n_links;
    /* The parent directory of the last regular file copied (see file_parent): its path in
     * the root, an O_PATH fd and that fd's device. */
    char *pcache;
    int pcache_fd;
    dev_t pcache_dev;
    gid_t pcache_gid;
    bool pcache_direct; /* the fd is the upperdir's own directory (direct_parent) */
    /* The same for the source side (see src_open): the directory of the last regular file
     * read, its path in the source root and an O_PATH fd. */
    char *scache;
    int scache_fd;
    /* Files the snapshot of an earlier build has as this copy would make them (spec's
     * reuse_dests): linked into the upperdir once the walk is done (reuse_link). */
    struct reuse_file {
        char *rel, *dest;
        struct stat sst; /* the source's */
        dev_t dev;       /* the snapshot copy's */
        ino_t ino;
        size_t idx;
        bool dup, linked;
    } * reuse;
    size_t n_reuse;
    bool no_reuse;
    /* The directory of the last reuse candidate: its path (root-relative), its O_PATH fds in
     * the snapshot and in the upperdir (-1: not there). */
    struct reuse_dirs {
        char *dir;
        int snap, upper;
    } rcache;
    /* The top directory (root-relative) that the walk of the current source created, in the
     * root where nothing was: everything below it in the root is this walk's. */
    char *made;
    struct mk_buf digests;      /* records not yet written to spec->digest_fd */
    pthread_mutex_t digests_mu; /* digests, written by the pool's threads too */
    struct copy_pool *pool;     /* NULL until a file goes to it (see POOL_THREADS) */
};

#define MAX_SYMLINK_HOPS 40

/* Walks path below rootfd following symlinks inside the root; with create, missing
 * directories are made (mode, uid:gid), else a missing component fails with ENOENT. Returns
 * an O_PATH fd of the directory (of the entry when !create) and, in *ret_resolved, the path
 * with every symlink resolved. */
static int follow_path(int rootfd, const char *path, bool create, mode_t mode, uid_t uid, gid_t gid,
                       bool *ret_created, char **ret_resolved, struct mk_error **err)
{
    /* done never holds a symlink, so ".." is resolved on the string and every open of it
     * (RESOLVE_IN_ROOT) names the directory we walked to. */
    struct mk_buf done = MK_BUF_INIT, todo = MK_BUF_INIT;
    mk_buf_adds(&done, "/");
    mk_buf_adds(&todo, path);
    int hops = 0, ret = -1;
    bool created = false;
    while (todo.len) {
        size_t skip = strspn(todo.data, "/");
        size_t len = strcspn(todo.data + skip, "/");
        _cleanup_free_ char *comp = mk_xstrndup(todo.data + skip, len);
        _cleanup_free_ char *rest = mk_xstrdup(todo.data + skip + len);
        mk_buf_reset(&todo);
        mk_buf_adds(&todo, rest);
        if (!*comp || strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            char *slash = strrchr(done.data, '/');
            done.len = slash && slash != done.data ? (size_t)(slash - done.data) : 1;
            done.data[done.len] = '\0';
            continue;
        }
        _cleanup_close_ int pfd = mk_open_in_root(rootfd, done.data, O_PATH | O_DIRECTORY, 0, err);
        if (pfd < 0)
            goto out;
        struct stat st;
        if (fstatat(pfd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT || !create) {
                mk_error_errno(err, "stat \"%s/%s\"", done.data, comp);
                goto out;
            }
            _cleanup_close_ int dfd =
                mk_open_in_root(rootfd, done.data, O_RDONLY | O_DIRECTORY, 0, err);
            if (dfd < 0)
                goto out;
            /* chmod after chown (which may clear set-id bits), and never through a umask. */
            if (mkdirat(dfd, comp, mode) < 0 ||
                (fchownat(dfd, comp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL) ||
                fchmodat(dfd, comp, mode, 0) < 0) {
                mk_error_errno(err, "creating directory \"%s\"", path);
                goto out;
            }
            created = true;
        } else if (S_ISLNK(st.st_mode)) {
            if (++hops > MAX_SYMLINK_HOPS) {
                mk_error_set(err, MK_ERR_INVALID, ELOOP,
                             "\"%s\": too many levels of symbolic links", path);
                goto out;
            }
            char target[4096];
            ssize_t n = readlinkat(pfd, comp, target, sizeof(target) - 1);
            if (n < 0) {
                mk_error_errno(err, "reading link \"%s/%s\"", done.data, comp);
                goto out;
            }
            target[n] = '\0';
            mk_buf_reset(&todo);
            mk_buf_addf(&todo, "%s/%s", target, rest);
            if (target[0] == '/') {
                mk_buf_reset(&done);
                mk_buf_adds(&done, "/");
            }
            continue;
        } else if (!S_ISDIR(st.st_mode) && (create || todo.len)) {
            mk_error_set(err, MK_ERR_INVALID, ENOTDIR, "\"%s\": \"%s/%s\" is not a directory", path,
                         done.data, comp);
            goto out;
        }
        if (done.len > 1)
            mk_buf_addc(&done, '/');
        mk_buf_adds(&done, comp);
    }
    ret = mk_open_in_root(rootfd, done.data, O_PATH | (create ? O_DIRECTORY : 0), 0, err);
    if (ret >= 0 && ret_created)
        *ret_created = created;
    if (ret >= 0 && ret_resolved)
        *ret_resolved = mk_xstrdup(done.data);
out:
    mk_buf_release(&done);
    mk_buf_release(&todo);
    return ret;
}

int builder_mkdir_follow(int rootfd, const char *path, mode_t mode, uid_t uid, gid_t gid,
                         bool *ret_created, struct mk_error **err)
{
    return follow_path(rootfd, path, true, mode, uid, gid, ret_created, NULL, err);
}

/* The parent of path (created as needed, through symlinks, as the copy's directories) and its
 * last component. */
static int open_parent_follow(const struct copy_state *cs, const char *path, char **ret_name,
                              struct mk_error **err)
{
    int rootfd = cs->rootfd;
    int fd = mk_open_parent_in_root(rootfd, path, false, ret_name, NULL);
    if (fd >= 0)
        return fd;
    _cleanup_free_ char *parent = mk_xstrdup(path);
    char *end = parent + strlen(parent);
    while (end > parent + 1 && end[-1] == '/')
        *--end = '\0';
    char *slash = strrchr(parent, '/');
    if (slash)
        slash[slash == parent ? 1 : 0] = '\0';
    fd = builder_mkdir_follow(rootfd, slash ? parent : "/", cs->dir_mode, cs->uid, cs->gid, NULL,
                              err);
    if (fd < 0)
        return -1;
    close(fd);
    return mk_open_parent_in_root(rootfd, path, false, ret_name, err);
}

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static char *clean_rel(const char *p, bool keep_dot)
{
    /* Context-relative: no leading "/" or "./", no trailing "/". */
    while (*p == '/' || (p[0] == '.' && p[1] == '/'))
        p += (*p == '/') ? 1 : 2;
    char *s = mk_xstrdup(*p ? p : ".");
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/')
        s[--n] = '\0';
    if (!keep_dot && strcmp(s, ".") != 0 && n >= 2 && s[n - 1] == '.' && s[n - 2] == '/')
        s[n - 2] = '\0';
    return s;
}

char *builder_path_clean(const char *p, bool dotdot)
{
    struct mk_buf b = MK_BUF_INIT;
    mk_buf_adds(&b, "");
    while (*p) {
        size_t len = strcspn(p, "/");
        if (dotdot && len == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = b.len ? strrchr(b.data, '/') : NULL;
            b.len = slash ? (size_t)(slash - b.data) : 0;
            b.data[b.len] = '\0';
        } else if (len && !(len == 1 && p[0] == '.')) {
            if (b.len)
                mk_buf_addc(&b, '/');
            mk_buf_add(&b, p, len);
        }
        p += len + (p[len] == '/');
    }
    if (!b.len)
        mk_buf_adds(&b, ".");
    return mk_buf_detach(&b);
}

/* "x/./y/." -> "x/y"; "." when nothing is left. */
static char *drop_dots(const char *p)
{
    return builder_path_clean(p, false);
}

/* --exclude: patterns match paths relative to the source being copied. */
static bool user_excluded(const struct copy_state *st, const char *sub)
{
    bool m = false;
    if (!st->spec->exclude || !*sub)
        return false;
    return mk_ignore_matches(st->spec->exclude, sub, &m, NULL) < 0 || m;
}

static bool excluded(const struct copy_state *st, const char *rel)
{
    return st->spec->ctx && builder_context_excluded(st->spec->ctx, rel);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of the directory dfd (taken over and closed) whose names match pattern (all
 * when NULL), sorted by name bytes. -1 with errno set when it cannot be read. As Go's
 * filepath.Match, which BuildKit's wildcards use, a leading dot needs no explicit match. */
static int sorted_names(int dfd, const char *pattern, struct mk_strv *ret)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int saved = errno;
        close(dfd);
        errno = saved;
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            (!pattern || fnmatch(pattern, de->d_name, 0) == 0))
            mk_strv_push(ret, de->d_name);
    closedir(d);
    if (ret->n)
        qsort(ret->v, ret->n, sizeof(char *), cmp_strp);
    return 0;
}

static bool src_exists(const struct copy_state *st, const char *rel)
{
    _cleanup_close_ int fd = mk_open_in_root(st->srcfd, rel, O_PATH, 0, NULL);
    return fd >= 0;
}

/* Expands one pattern component by component against the source tree. As BuildKit
 * (fsutil's ResolveWildcards), a path a wildcard leads to that lacks the rest of the pattern
 * is no match, not an error; with --parents, "**" matches any number of directories
 * (BuildKit passes such sources as include patterns). */
static int glob_expand(struct copy_state *st, const char *dir, const char *rest,
                       struct mk_strv *out, struct mk_error **err)
{
    const char *slash = strchr(rest, '/');
    _cleanup_free_ char *comp =
        slash ? mk_xstrndup(rest, (size_t)(slash - rest)) : mk_xstrdup(rest);
    const char *next = slash ? slash + 1 : NULL;
    while (next && *next == '/')
        next++;
    if (next && !*next)
        next = NULL;
    if (!has_glob(comp)) {
        _cleanup_free_ char *p =
            strcmp(dir, ".") == 0 ? mk_xstrdup(comp) : mk_xasprintf("%s/%s", dir, comp);
        if (!src_exists(st, p) || excluded(st, p))
            return 0;
        if (!next) {
            mk_strv_push(out, p);
            return 0;
        }
        return glob_expand(st, p, next, out, err);
    }
    bool any_depth = st->spec->parents && strcmp(comp, "**") == 0;
    if (any_depth && next) {
        /* Zero directories here, then one more for each subdirectory. */
        if (glob_expand(st, dir, next, out, err) < 0)
            return -1;
    }
    _cleanup_close_ int dfd = mk_open_in_root(st->srcfd, dir, O_RDONLY | O_DIRECTORY, 0, NULL);
    if (dfd < 0)
        return 0;
    struct mk_strv names = MK_STRV_INIT;
    if (sorted_names(MK_TAKE_FD(dfd), any_depth ? "*" : comp, &names) < 0)
        return mk_error_errno(err, "reading directory \"%s\"", dir);
    int r = 0;
    for (size_t i = 0; i < names.n && r == 0; i++) {
        _cleanup_free_ char *p =
            strcmp(dir, ".") == 0 ? mk_xstrdup(names.v[i]) : mk_xasprintf("%s/%s", dir, names.v[i]);
        if (excluded(st, p))
            continue;
        if (!next)
            mk_strv_push(out, p);
        else if (any_depth) {
            struct stat sst;
            _cleanup_free_ char *name = NULL;
            _cleanup_close_ int pfd = mk_open_parent_in_root(st->srcfd, p, false, &name, NULL);
            if (pfd >= 0 && fstatat(pfd, name, &sst, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISDIR(sst.st_mode))
                r = glob_expand(st, p, rest, out, err);
        } else
            r = glob_expand(st, p, next, out, err);
    }
    mk_strv_release(&names);
    return r;
}

/* As BuildKit (fsutil's copyXAttrs): every extended attribute of the source but overlayfs's
 * own, best effort (a file system or namespace that refuses one does not fail the copy). Set
 * after the owner, since chown clears security.capability. The files are named by path (ip,
 * op) or, where those are NULL, by open fds (in, out). */
static void xattrs_copy(int in, const char *ip, int out, const char *op)
{
    char list[XATTR_LIST_MAX];
    ssize_t n = ip ? listxattr(ip, list, sizeof(list)) : flistxattr(in, list, sizeof(list));
    if (n <= 0)
        return;
    _cleanup_free_ char *value = mk_xmalloc(XATTR_SIZE_MAX);
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
        const char *x = list + i;
        if (mk_str_has_prefix(x, "user.overlay.") || mk_str_has_prefix(x, "trusted.overlay."))
            continue;
        ssize_t vn =
            ip ? getxattr(ip, x, value, XATTR_SIZE_MAX) : fgetxattr(in, x, value, XATTR_SIZE_MAX);
        if (vn >= 0)
            (void)(op ? setxattr(op, x, value, (size_t)vn, 0)
                      : fsetxattr(out, x, value, (size_t)vn, 0));
    }
}

static void copy_xattrs(const struct copy_state *st, const char *rel, int dirfd, const char *name)
{
    _cleanup_close_ int in = mk_open_in_root(st->srcfd, rel, O_PATH, 0, NULL);
    _cleanup_close_ int out = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0 || out < 0)
        return;
    /* O_PATH fds have no f*xattr; the magic link names the inode itself. */
    char ip[64], op[64];
    snprintf(ip, sizeof(ip), "/proc/self/fd/%d", in);
    snprintf(op, sizeof(op), "/proc/self/fd/%d", out);
    xattrs_copy(-1, ip, -1, op);
}

/* set_meta for a regular file just written: the same steps in the same order, through the
 * open files rather than by name (no path lookup in the overlay per step). owned: the file is
 * new and owned as it is to be already (copy_file), so its chown would change nothing (a new
 * file has no set-id bit or capability for it to clear). */
static int set_meta_fd(struct copy_state *st, int in, int out, const char *name,
                       const struct stat *src, bool owned, struct mk_error **err)
{
    if (!owned && fchown(out, st->uid, st->gid) < 0)
        return mk_error_errno(err, "changing the owner of \"%s\" to %u:%u", name, (unsigned)st->uid,
                              (unsigned)st->gid);
    mode_t mode = src->st_mode & 07777;
    if (st->spec->chmod && mk_chmod_apply(st->spec->chmod, mode, false, &mode) < 0)
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid --chmod value \"%s\"",
                            st->spec->chmod);
    if (fchmod(out, mode) < 0)
        return mk_error_errno(err, "changing the mode of \"%s\"", name);
    xattrs_copy(in, NULL, out, NULL);
    struct timespec ts[2] = {src->st_atim, src->st_mtim};
    futimens(out, ts);
    return 0;
}

static int set_meta(struct copy_state *st, int dirfd, const char *name, const char *rel,
                    const struct stat *src, bool is_link, struct mk_error **err)
{
    if (fchownat(dirfd, name, st->uid, st->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return mk_error_errno(err, "changing the owner of \"%s\" to %u:%u", name, (unsigned)st->uid,
                              (unsigned)st->gid);
    if (!is_link) {
        mode_t mode = src->st_mode & 07777;
        if (st->spec->chmod &&
            mk_chmod_apply(st->spec->chmod, mode, S_ISDIR(src->st_mode), &mode) < 0)
            return mk_error_set(err, MK_ERR_INVALID, 0, "invalid --chmod value \"%s\"",
                                st->spec->chmod);
        if (fchmodat(dirfd, name, mode, 0) < 0)
            return mk_error_errno(err, "changing the mode of \"%s\"", name);
        copy_xattrs(st, rel, dirfd, name);
    }
    struct timespec ts[2] = {src->st_atim, src->st_mtim};
    utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
    return 0;
}

/* Pairs of file systems (source, destination device) where copy_file_range was tried: it
 * fails the same way for every file between two that refuse it (EXDEV across file systems
 * since Linux 5.19), so it is tried once per pair, not once per file (20,000 failed calls for
 * a COPY of 20,000 files before). Per process, which is one COPY: it runs in the step's
 * child. The pool's threads take a file only once its pair is known (copy_file), so the one
 * try is the walk's. */
static struct {
    dev_t src, dst;
    bool refused;
} cfr_pairs[8];
static size_t n_cfr_pairs;
static pthread_mutex_t cfr_mu = PTHREAD_MUTEX_INITIALIZER;

/* 1: refused, 0: works, -1: not tried yet (or not remembered: the table is full). */
static int cfr_state(dev_t src, dev_t dst)
{
    int state = -1;
    pthread_mutex_lock(&cfr_mu);
    for (size_t i = 0; i < n_cfr_pairs && state < 0; i++)
        if (cfr_pairs[i].src == src && cfr_pairs[i].dst == dst)
            state = cfr_pairs[i].refused;
    pthread_mutex_unlock(&cfr_mu);
    return state;
}

static void cfr_note(dev_t src, dev_t dst, bool refused)
{
    pthread_mutex_lock(&cfr_mu);
    bool known = false;
    for (size_t i = 0; i < n_cfr_pairs && !known; i++)
        known = cfr_pairs[i].src == src && cfr_pairs[i].dst == dst;
    if (!known && n_cfr_pairs < MK_ARRAY_SIZE(cfr_pairs))
        cfr_pairs[n_cfr_pairs++] = (typeof(cfr_pairs[0])){src, dst, refused};
    pthread_mutex_unlock(&cfr_mu);
}

/* ---- hashing while copying (spec->digests) ----
 * The bytes are read once, into buffers that the copy writes and a hasher thread hashes at the
 * same time (a file of 1 GiB: ~0.7 s of sha256 that no longer waits for the ~0.8 s of writes).
 * Small files are hashed in line: a thread costs more than their hash. */
#define HASH_BUF (1u << 20)
#define HASH_NBUF 4
#define HASH_THREAD_MIN (8u << 20)

struct hasher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct mk_sha256 *h;
    char *buf[HASH_NBUF];
    size_t len[HASH_NBUF];
    uint64_t posted, hashed; /* buffers handed to the thread, buffers it has hashed */
    bool done;
};

static void *hasher_main(void *arg)
{
    struct hasher *hs = arg;
    pthread_mutex_lock(&hs->mu);
    for (;;) {
        while (hs->hashed == hs->posted && !hs->done)
            pthread_cond_wait(&hs->cv, &hs->mu);
        if (hs->hashed == hs->posted)
            break;
        size_t slot = hs->hashed % HASH_NBUF;
        pthread_mutex_unlock(&hs->mu);
        mk_sha256_update(hs->h, hs->buf[slot], hs->len[slot]);
        pthread_mutex_lock(&hs->mu);
        hs->hashed++;
        pthread_cond_broadcast(&hs->cv);
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

/* Reads in to its end (size: what the walk saw; a short read at that size is the end),
 * writes out and hashes into h, in buffers of bufsize; with threaded, on a thread. */
static int copy_hashed(int in, int out, uint64_t size, struct mk_sha256 *h, struct mk_error **err)
{
    struct hasher hs = {.h = h};
    pthread_t t;
    bool threaded = h && size >= HASH_THREAD_MIN;
    char small[1 << 18];
    size_t bufsize = threaded ? HASH_BUF : sizeof(small);
    size_t nbuf = threaded ? HASH_NBUF : 1;
    _cleanup_free_ char *mem = threaded ? mk_xmalloc(nbuf * bufsize) : NULL;
    for (size_t i = 0; i < nbuf; i++)
        hs.buf[i] = threaded ? mem + i * bufsize : small;
    if (threaded) {
        pthread_mutex_init(&hs.mu, NULL);
        pthread_cond_init(&hs.cv, NULL);
        if (pthread_create(&t, NULL, hasher_main, &hs) != 0) {
            threaded = false; /* hashed in line, in the first buffer */
            nbuf = 1;
        }
    }
    int r = 0;
    uint64_t total = 0;
    for (uint64_t k = 0;; k++) {
        size_t slot = k % nbuf;
        if (threaded) {
            pthread_mutex_lock(&hs.mu);
            while (k - hs.hashed >= nbuf)
                pthread_cond_wait(&hs.cv, &hs.mu);
            pthread_mutex_unlock(&hs.mu);
        }
        ssize_t n = mk_read_some(in, hs.buf[slot], bufsize, err);
        if (n <= 0) {
            r = n < 0 ? -1 : 0;
            break;
        }
        if (threaded) {
            pthread_mutex_lock(&hs.mu);
            hs.len[slot] = (size_t)n;
            hs.posted = k + 1;
            pthread_cond_broadcast(&hs.cv);
            pthread_mutex_unlock(&hs.mu);
        } else if (h) {
            mk_sha256_update(h, hs.buf[slot], (size_t)n);
        }
        if (mk_write_all(out, hs.buf[slot], (size_t)n, err) < 0) {
            r = -1;
            break;
        }
        total += (uint64_t)n;
        if ((size_t)n < bufsize && total == size)
            break;
    }
    if (threaded) {
        pthread_mutex_lock(&hs.mu);
        hs.done = true;
        pthread_cond_broadcast(&hs.cv);
        pthread_mutex_unlock(&hs.mu);
        pthread_join(t, NULL);
        pthread_mutex_destroy(&hs.mu);
        pthread_cond_destroy(&hs.cv);
    }
    return r;
}

/* The sha256 of what out holds now (a copy the kernel made: copy_file_range). */
static int hash_written(int out, struct mk_sha256 *h, struct mk_error **err)
{
    _cleanup_free_ char *buf = mk_xmalloc(1u << 18);
    for (off_t off = 0;;) {
        ssize_t n = pread(out, buf, 1u << 18, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mk_error_errno(err, "reading back the copy");
        if (n == 0)
            return 0;
        mk_sha256_update(h, buf, (size_t)n);
        off += n;
    }
}

/* size: what the walk's stat said; src_dev, dst_dev: the devices of in and out (the source's from
 * the walk, the destination's from its directory: overlay may give its files other numbers, but the
 * same ones every time). With h, the bytes written are hashed into it (out is then open for
 * reading too). */
static int copy_bytes(int in, int out, uint64_t size, dev_t src_dev, dev_t dst_dev,
                      struct mk_sha256 *h, struct mk_error **err)
{
    bool kernel_copied = false;
    while (cfr_state(src_dev, dst_dev) != 1) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n >= 0 && !kernel_copied)
            cfr_note(src_dev, dst_dev, false);
        if (n == 0)
            return h && kernel_copied ? hash_written(out, h, err) : 0;
        if (n > 0) {
            kernel_copied = true;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return mk_error_errno(err, "copying");
        /* EINVAL can be about this file (a special file system, flags): not remembered. */
        if (errno != EINVAL)
            cfr_note(src_dev, dst_dev, true);
        break;
    }
    if (h) {
        if (copy_hashed(in, out, size, kernel_copied ? NULL : h, err) < 0)
            return -1;
        return kernel_copied ? hash_written(out, h, err) : 0;
    }
    char buf[1 << 18];
    for (uint64_t total = 0;;) {
        ssize_t n = mk_read_some(in, buf, sizeof(buf), err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (mk_write_all(out, buf, (size_t)n, err) < 0)
            return -1;
        total += (uint64_t)n;
        /* A short read of a regular file is its end; when that is the size the walk saw,
         * the read that would return 0 is left out (one syscall a file in a big COPY). */
        if ((size_t)n < sizeof(buf) && total == size)
            return 0;
    }
}

/* Before a non-directory is copied to dest: what is there (dst, or NULL) goes, unless it is
 * a directory. */
static int replace_nondir(struct copy_state *st, int pfd, const char *name, const struct stat *dst,
                          const char *rel, const char *dest, struct mk_error **err)
{
    if (dst && S_ISDIR(dst->st_mode))
        return mk_error_set(err, MK_ERR_INVALID, 0, "cannot copy \"%s\" over the directory \"%s\"",
                            rel, dest);
    if (dst && unlinkat(pfd, name, 0) < 0)
        return mk_error_errno(err, "replacing \"%s\"", dest);
    st->files++;
    return 0;
}

static void parent_cache_drop(struct copy_state *st)
{
    free(st->pcache);
    st->pcache = NULL;
    if (st->pcache_fd >= 0)
        close(st->pcache_fd);
    st->pcache_fd = -1;
}

static int open_dir_nofollow(int root, const char *rel);
static bool made_below(const struct copy_state *st, const char *dest);

/* dest's parent in the upperdir itself rather than through the overlay, for a dest in a
 * directory the walk created (made_below): reached from spec->direct_fd by the same names, no
 * symlink followed (as reuse_dirs does: a directory the overlay shows from the upperdir is
 * that directory, and one the walk made through the overlay is there with nothing of a lower
 * layer in it). An entry created there costs no lookup of its name in every lower layer and
 * no overlay create: those were a third of the walk's time for a COPY of 20,000 new files.
 * Nothing looks up those names through the overlay during the walk (nothing is there to
 * replace), and later steps mount overlays of their own. An O_PATH fd and the last
 * component (the caller's), or -1: through the overlay. */
static int direct_parent(const struct copy_state *st, const char *dest, char **ret_name)
{
    if (!st->spec->direct || st->spec->visit || !made_below(st, dest))
        return -1;
    while (*dest == '/')
        dest++;
    const char *slash = strrchr(dest, '/'); /* made_below: there is one */
    const char *name = slash + 1;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -1;
    _cleanup_free_ char *dir = mk_xstrndup(dest, (size_t)(slash - dest));
    int fd = open_dir_nofollow(st->spec->direct_fd, dir);
    if (fd >= 0)
        *ret_name = mk_xstrdup(name);
    return fd;
}

/* The parent of a regular file's dest and its last component. A walk copies a directory's
 * files one after another, so the last parent is kept: one resolution through the overlay per
 * directory, not per file. Creating or replacing files in a directory cannot change what its
 * path resolves to; copy_entry drops the kept one before any other kind of entry. direct_ok:
 * the upperdir's own directory may do (direct_parent; not for a file of several links, whose
 * other names are linked through the overlay: linkat does not join two mounts). The fd
 * belongs to the cache (*ret_owned false) or, when not kept, to the caller. */
static int file_parent(struct copy_state *st, const char *dest, bool direct_ok, char **ret_name,
                       bool *ret_owned, struct mk_error **err)
{
    const char *slash = strrchr(dest, '/');
    size_t plen = slash ? (size_t)(slash - dest) : 0;
    *ret_owned = false;
    if (st->pcache && slash && slash[1] && strlen(st->pcache) == plen &&
        memcmp(st->pcache, dest, plen) == 0 && (direct_ok || !st->pcache_direct)) {
        *ret_name = mk_xstrdup(slash + 1);
        return st->pcache_fd;
    }
    parent_cache_drop(st);
    int fd = direct_ok ? direct_parent(st, dest, ret_name) : -1;
    bool direct = fd >= 0;
    if (!direct)
        fd = open_parent_follow(st, dest, ret_name, err);
    if (fd < 0)
        return -1;
    struct stat pst;
    if (!slash || strcmp(*ret_name, slash + 1) != 0 || fstat(fd, &pst) < 0) {
        *ret_owned = true;
        return fd;
    }
    st->pcache = mk_xstrndup(dest, plen);
    st->pcache_fd = fd;
    st->pcache_dev = pst.st_dev;
    st->pcache_gid = pst.st_gid;
    st->pcache_direct = direct;
    return fd;
}

/* A regular file of the source, for reading: by its name under its directory, kept from the
 * last file (a walk reads a directory's files one after another: one resolution of the path
 * in the source root per directory, not per file). The name is one component opened without
 * following a symlink, so it stays inside the directory, which was resolved inside the root.
 * A source that is itself a symlink (COPY follows it) is opened by its whole path. */
/* The source directory of rel (an O_PATH fd of the cache, resolved in the source root) and
 * rel's last component in *ret_name; -1 when rel has no plain last component or its
 * directory cannot be opened. */
static int src_dir(struct copy_state *st, const char *rel, const char **ret_name)
{
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    size_t plen = slash ? (size_t)(slash - rel) : 0;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -1;
    if (!st->scache || strlen(st->scache) != plen || memcmp(st->scache, rel, plen) != 0) {
        free(st->scache);
        mk_closep(&st->scache_fd);
        st->scache = mk_xstrndup(rel, plen);
        st->scache_fd =
            mk_open_in_root(st->srcfd, plen ? st->scache : ".", O_PATH | O_DIRECTORY, 0, NULL);
    }
    *ret_name = name;
    return st->scache_fd;
}

static int src_open(struct copy_state *st, const char *rel, struct mk_error **err)
{
    const char *name;
    int dfd = src_dir(st, rel, &name);
    if (dfd >= 0) {
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 || errno != ELOOP)
            return fd >= 0 ? fd : mk_error_errno(err, "opening \"%s\"", rel);
    }
    return mk_open_in_root(st->srcfd, rel, O_RDONLY, 0, err);
}

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* The directory rel below root, no symlink followed and nothing outside root: an O_PATH fd,
 * or -1. */
static int open_dir_nofollow(int root, const char *rel)
{
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
    return (int)syscall(SYS_openat2, root, *rel ? rel : ".", &how, sizeof(how));
}

static void reuse_dirs_drop(struct reuse_dirs *c)
{
    free(c->dir);
    c->dir = NULL;
    mk_closep(&c->snap);
    mk_closep(&c->upper);
}

static void reuse_cache_drop(struct copy_state *st)
{
    reuse_dirs_drop(&st->rcache);
}

/* dest's directory in the earlier snapshot and in the upperdir (the fds belong to the cache
 * c) and its last component; false when either directory is not there as a directory. */
static bool reuse_dirs(const struct copy_state *st, struct reuse_dirs *c, const char *dest,
                       const char **ret_name, int *ret_snap, int *ret_upper)
{
    while (*dest == '/')
        dest++;
    const char *slash = strrchr(dest, '/');
    size_t plen = slash ? (size_t)(slash - dest) : 0;
    *ret_name = slash ? slash + 1 : dest;
    if (!c->dir || strlen(c->dir) != plen || memcmp(c->dir, dest, plen) != 0) {
        reuse_dirs_drop(c);
        c->dir = mk_xstrndup(dest, plen);
        c->snap = open_dir_nofollow(st->spec->reuse_fd, c->dir);
        c->upper = open_dir_nofollow(st->spec->upper_fd, c->dir);
    }
    *ret_snap = c->snap;
    *ret_upper = c->upper;
    return **ret_name && strcmp(*ret_name, ".") != 0 && strcmp(*ret_name, "..") != 0 &&
           c->snap >= 0 && c->upper >= 0;
}

static bool reuse_parents(struct copy_state *st, const char *dest, const char **ret_name,
                          int *ret_snap, int *ret_upper)
{
    return reuse_dirs(st, &st->rcache, dest, ret_name, ret_snap, ret_upper);
}

/* Whether name in dirfd may have extended attributes (true when that cannot be told). */
static bool maybe_xattrs(int dirfd, const char *name)
{
    return mk_llistxattrat(dirfd, name, NULL, 0) != 0;
}

/* A path of plain names: no empty, "." or ".." component (after leading and trailing
 * slashes), so that it names the directory a walk created, not one reached from it. */
static bool plain_path(const char *p)
{
    while (*p == '/')
        p++;
    size_t n = strlen(p);
    while (n && p[n - 1] == '/')
        n--;
    for (size_t i = 0; i < n;) {
        size_t len = strcspn(p + i, "/");
        if (len > n - i)
            len = n - i;
        if (len == 0 || (len == 1 && p[i] == '.') || (len == 2 && p[i] == '.' && p[i + 1] == '.'))
            return false;
        i += len + 1;
    }
    return n > 0;
}

/* dir (a destination in the root) was created by the walk of the current source where nothing
 * was: unless it is below the one noted already, it is the new top (a walk goes depth first,
 * so it has left that one's subtree). */
static void made_note(struct copy_state *st, const char *dir)
{
    if (!plain_path(dir))
        return;
    while (*dir == '/')
        dir++;
    size_t n = strlen(dir);
    while (n && dir[n - 1] == '/')
        n--;
    size_t ml = st->made ? strlen(st->made) : 0;
    if (st->made && n > ml && memcmp(dir, st->made, ml) == 0 && dir[ml] == '/')
        return;
    free(st->made);
    st->made = mk_xstrndup(dir, n);
}

static void made_forget(struct copy_state *st)
{
    free(st->made);
    st->made = NULL;
}

/* Whether dest's directory is the created one or below it: then what is at dest in the root
 * is what this walk put there, and the walk reaches each destination once (a tree's entries
 * have distinct names, none below a symlink it copies), so there is nothing yet. */
static bool made_below(const struct copy_state *st, const char *dest)
{
    if (!st->made)
        return false;
    while (*dest == '/')
        dest++;
    const char *slash = strrchr(dest, '/');
    size_t plen = slash ? (size_t)(slash - dest) : 0, ml = strlen(st->made);
    return slash && plen >= ml && memcmp(dest, st->made, ml) == 0 &&
           (plen == ml || dest[ml] == '/');
}

/* A regular file (one link) whose copy in the earlier snapshot has what this copy would give
 * it: the same bytes (the caller's digest match), size, mtime, owner, mode and no xattrs on
 * either side, nothing at dest in the root (no lower file: a layer leaves out what equals a
 * lower one, and only a copy of one link can be compared), and dest's directory already in
 * the upperdir. Such a file is linked there by reuse_link rather than copied now: the
 * overlay is not written behind its back while the walk still goes through it. */
static bool reuse_defer(struct copy_state *st, const char *rel, const struct stat *sst,
                        const char *dest, int pfd, const char *name)
{
    const struct mk_strv *d = st->spec->reuse_dests;
    if (st->no_reuse || sst->st_nlink != 1 || !d || d->n == 0 ||
        !bsearch(&dest, d->v, d->n, sizeof(*d->v), cmp_strp))
        return false;
    const char *sname;
    int sfd, ufd;
    if (!reuse_parents(st, dest, &sname, &sfd, &ufd))
        return false;
    struct stat ss, x;
    mode_t mode = sst->st_mode & 07777;
    if (st->spec->chmod && mk_chmod_apply(st->spec->chmod, mode, false, &mode) < 0)
        return false;
    if (fstatat(sfd, sname, &ss, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(ss.st_mode) ||
        ss.st_size != sst->st_size || ss.st_mtim.tv_sec != sst->st_mtim.tv_sec ||
        ss.st_mtim.tv_nsec != sst->st_mtim.tv_nsec || ss.st_uid != st->uid ||
        ss.st_gid != st->gid || (ss.st_mode & 07777) != mode)
        return false;
    if (!made_below(st, dest) &&
        (fstatat(pfd, name, &x, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT))
        return false;
    /* The source by its directory (one name to look up, not the path from the root); the
     * snapshot's side: its index says so for the files it records. */
    const char *srcname;
    int srcdir = src_dir(st, rel, &srcname);
    if ((srcdir >= 0 ? maybe_xattrs(srcdir, srcname) : maybe_xattrs(st->srcfd, rel)) ||
        (!layerstore_snapshot_file_plain(st->spec->reuse_files, dest + strspn(dest, "/"),
                                         (uint64_t)ss.st_dev, (uint64_t)ss.st_ino) &&
         maybe_xattrs(sfd, sname)))
        return false;
    st->reuse = mk_xreallocarray(st->reuse, st->n_reuse + 1, sizeof(*st->reuse));
    st->reuse[st->n_reuse] = (struct reuse_file){.rel = mk_xstrdup(rel),
                                                 .dest = mk_xstrdup(dest),
                                                 .sst = *sst,
                                                 .dev = ss.st_dev,
                                                 .ino = ss.st_ino,
                                                 .idx = st->n_reuse};
    st->n_reuse++;
    st->files++;
    return true;
}

static int cmp_reuse_ino(const void *a, const void *b)
{
    const struct reuse_file *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_reuse_idx(const void *a, const void *b)
{
    const struct reuse_file *x = a, *y = b;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int copy_file(struct copy_state *st, const char *rel, const struct stat *sst,
                     const char *dest, struct mk_error **err);

/* A share of the deferred files (from, to) linked by one thread with its own directory
 * cache: the walk's order within it, the snapshot's directories in a run. */
struct link_share {
    struct copy_state *st;
    size_t from, to;
};

static void *link_share_main(void *arg)
{
    struct link_share *sh = arg;
    struct reuse_dirs c = {.snap = -1, .upper = -1};
    for (size_t i = sh->from; i < sh->to; i++) {
        struct reuse_file *e = &sh->st->reuse[i];
        const char *name;
        int sfd, ufd;
        e->linked = !e->dup && reuse_dirs(sh->st, &c, e->dest, &name, &sfd, &ufd) &&
                    (linkat(sfd, name, ufd, name, 0) == 0 || errno == EEXIST);
    }
    reuse_dirs_drop(&c);
    return NULL;
}

/* The deferred files, linked from the snapshot into the upperdir: two threads take half of
 * them each (20,000 links of a COPY rebuilt after one file changed are a sixth of it). One
 * inode is linked to one name only (the others are copied: a layer pairs the names of one
 * inode as a hard link, which the copy of single-link sources never makes). A name taken
 * meanwhile (a later source copied to the same dest) stays as it is; a link that fails
 * otherwise (the snapshot removed meanwhile) becomes a copy, in walk order, once the links
 * are done. */
#define LINK_THREAD_MIN 1024

static int reuse_link(struct copy_state *st, struct mk_error **err)
{
    qsort(st->reuse, st->n_reuse, sizeof(*st->reuse), cmp_reuse_ino);
    for (size_t i = 1; i < st->n_reuse; i++)
        st->reuse[i].dup =
            st->reuse[i].dev == st->reuse[i - 1].dev && st->reuse[i].ino == st->reuse[i - 1].ino;
    qsort(st->reuse, st->n_reuse, sizeof(*st->reuse), cmp_reuse_idx);
    reuse_cache_drop(st);
    struct link_share half = {.st = st, .from = st->n_reuse / 2, .to = st->n_reuse};
    struct link_share first = {.st = st, .from = 0, .to = half.from};
    pthread_t t;
    bool threaded =
        st->n_reuse >= LINK_THREAD_MIN && pthread_create(&t, NULL, link_share_main, &half) == 0;
    if (!threaded)
        first.to = st->n_reuse;
    link_share_main(&first);
    if (threaded)
        pthread_join(t, NULL);
    for (size_t i = 0; i < st->n_reuse; i++) {
        struct reuse_file *e = &st->reuse[i];
        if (e->linked)
            continue;
        st->no_reuse = true;
        st->files--;
        if (copy_file(st, e->rel, &e->sst, e->dest, err) < 0)
            return -1;
    }
    return 0;
}

static void reuse_release(struct copy_state *st)
{
    reuse_cache_drop(st);
    for (size_t i = 0; i < st->n_reuse; i++) {
        free(st->reuse[i].rel);
        free(st->reuse[i].dest);
    }
    free(st->reuse);
}

MK_DEFINE_CLEANUP(struct mk_sha256, mk_sha256_free)

static int digests_flush(struct copy_state *st, struct mk_error **err)
{
    if (!st->digests.len)
        return 0;
    int r = mk_write_all(st->spec->digest_fd, st->digests.data, st->digests.len, err);
    mk_buf_reset(&st->digests);
    return r;
}

static bool stat_unchanged(const struct stat *a, const struct stat *b)
{
    return a->st_size == b->st_size && a->st_ino == b->st_ino &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The record of a regular file copied (spec->digests): sst is the source's stat before the
 * copy (the walk's), after its open file's after it (NULL: not known, never put in the hash
 * cache). */
static int digest_record(struct copy_state *st, const char *rel, const struct stat *sst,
                         const struct stat *after, const char digest[MK_DIGEST_SIZE],
                         struct mk_error **err)
{
    struct mk_copy_digest d;
    memset(&d, 0, sizeof(d));
    d.size = (uint64_t)sst->st_size;
    d.mtime_ns = (uint64_t)sst->st_mtim.tv_sec * 1000000000ULL + (uint64_t)sst->st_mtim.tv_nsec;
    d.ino = (uint64_t)sst->st_ino;
    d.mode = (uint32_t)sst->st_mode;
    d.rel_len = (uint32_t)strlen(rel);
    d.stable = after && stat_unchanged(sst, after);
    memcpy(d.digest, digest, MK_DIGEST_SIZE);
    pthread_mutex_lock(&st->digests_mu);
    mk_buf_add(&st->digests, &d, sizeof(d));
    mk_buf_add(&st->digests, rel, d.rel_len);
    int r = st->digests.len >= (1u << 16) ? digests_flush(st, err) : 0;
    pthread_mutex_unlock(&st->digests_mu);
    return r;
}

/* The bytes of the regular file in (the source rel, whose stat the walk took as sst) into
 * out (at dest, whose last component is name; dest is needed only for a source of several
 * links), hashed with spec->digests, then its metadata. */
static int file_fill(struct copy_state *st, int in, int out, const char *rel, const char *dest,
                     const char *name, const struct stat *sst, dev_t ddev, bool owned_right,
                     struct mk_error **err)
{
    /* Hashing: the walk's stat (taken before the open) against the open source's after the
     * copy, so that a file changed meanwhile keeps the digest of what was written but stays
     * out of the hash cache. A small file is read at once (and the hash cache takes the same
     * chance when it hashes after the walk's stat): its stat is not taken again. */
    struct stat after = *sst;
    _cleanup_(mk_sha256_freep) struct mk_sha256 *h = st->spec->digests ? mk_sha256_new() : NULL;
    if (copy_bytes(in, out, (uint64_t)sst->st_size, sst->st_dev, ddev, h, err) < 0)
        return mk_error_wrap(err, "copying \"%s\"", rel);
    char digest[MK_DIGEST_SIZE] = "";
    const struct stat *afterp = NULL;
    if (h) {
        mk_sha256_final(h, digest);
        bool big = (uint64_t)sst->st_size >= HASH_THREAD_MIN;
        afterp = !big || fstat(in, &after) == 0 ? &after : NULL;
        if (digest_record(st, rel, sst, afterp, digest, err) < 0)
            return -1;
    }
    if (sst->st_nlink > 1) {
        st->links = mk_xreallocarray(st->links, st->n_links + 1, sizeof(*st->links));
        st->links[st->n_links] =
            (struct copied_link){.dev = sst->st_dev, .ino = sst->st_ino, .dest = mk_xstrdup(dest)};
        /* Another name of the inode is linked, not copied: it has this digest while its
         * stat is the one this copy began and ended with. */
        st->links[st->n_links].after = after;
        if (!afterp || !stat_unchanged(sst, afterp))
            st->links[st->n_links].after.st_nlink = 0;
        memcpy(st->links[st->n_links++].digest, digest, MK_DIGEST_SIZE);
    }
    return set_meta_fd(st, in, out, name, sst, owned_right, err);
}

/* ---- the copy pool ----
 * A COPY of many small files spends most of its time in the kernel, a dozen calls a file,
 * on one core. The walk opens both files of a small one (so that what is at its name, and
 * every error about the tree, is met in walk order, as before) and hands the rest to
 * POOL_THREADS threads: the bytes, the digest, mode, xattrs and times, through the two open
 * files (nothing by name: the walk may have moved on to another directory). Files with
 * several links (their copies are linked to the first) and big ones (hashed on a thread of
 * their own) stay on the walk's thread. The first failure stops the walk at its next file;
 * builder_copy_into waits for the threads before it returns. */
#define POOL_THREADS 2
#define POOL_QUEUE 64
/* An idle thread is woken once this many files wait, not for each: a wake-up per file of 3 KiB
 * cost more CPU (scheduler, futex) than its copy. */
#define POOL_BATCH 16

struct pool_job {
    int in, out;
    struct stat sst;
    char *rel, *name;
    dev_t ddev;
    bool owned_right;
};

struct copy_pool {
    pthread_mutex_t mu;
    pthread_cond_t work, room; /* the threads wait for a file, the walk for a free slot */
    int idle;                  /* threads waiting on work */
    bool full;                 /* the walk waits on room */
    struct pool_job q[POOL_QUEUE];
    size_t head, n;
    bool closing;
    struct mk_error *err; /* the first failure, until pool_error passes it on */
    bool failed;
    pthread_t t[POOL_THREADS];
    int n_threads;
};

static void pool_job_release(struct pool_job *j)
{
    mk_closep(&j->in);
    mk_closep(&j->out);
    free(j->rel);
    free(j->name);
}

static void *pool_main(void *arg)
{
    struct copy_state *st = arg;
    struct copy_pool *p = st->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->n == 0 && !p->closing) {
            p->idle++;
            pthread_cond_wait(&p->work, &p->mu);
            p->idle--;
        }
        if (p->n == 0)
            break;
        struct pool_job j = p->q[p->head];
        p->head = (p->head + 1) % POOL_QUEUE;
        p->n--;
        bool failed = p->failed;
        /* Woken only when the queue is half empty: one wake-up for many files. */
        if (p->full && p->n <= POOL_QUEUE / 2) {
            p->full = false;
            pthread_cond_signal(&p->room);
        }
        pthread_mutex_unlock(&p->mu);
        struct mk_error *e = NULL;
        if (!failed)
            file_fill(st, j.in, j.out, j.rel, NULL, j.name, &j.sst, j.ddev, j.owned_right, &e);
        pool_job_release(&j);
        pthread_mutex_lock(&p->mu);
        if (e && !p->failed) {
            p->err = e;
            p->failed = true;
        } else {
            mk_error_free(e);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Queues the file (taking *in and *out); false, with nothing taken, when there is no pool
 * (its threads could not start: the walk copies the file itself). */
static bool pool_put(struct copy_state *st, int *in, int *out, const char *rel, const char *name,
                     const struct stat *sst, dev_t ddev, bool owned_right)
{
    if (!st->pool) {
        struct copy_pool *p = mk_xcalloc(1, sizeof(*p));
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->room, NULL);
        st->pool = p;
        while (p->n_threads < POOL_THREADS &&
               pthread_create(&p->t[p->n_threads], NULL, pool_main, st) == 0)
            p->n_threads++;
    }
    struct copy_pool *p = st->pool;
    if (p->n_threads == 0)
        return false;
    pthread_mutex_lock(&p->mu);
    while (p->n == POOL_QUEUE) {
        p->full = true;
        pthread_cond_wait(&p->room, &p->mu);
    }
    p->q[(p->head + p->n) % POOL_QUEUE] = (struct pool_job){.in = MK_TAKE_FD(*in),
                                                            .out = MK_TAKE_FD(*out),
                                                            .sst = *sst,
                                                            .rel = mk_xstrdup(rel),
                                                            .name = mk_xstrdup(name),
                                                            .ddev = ddev,
                                                            .owned_right = owned_right};
    p->n++;
    if (p->idle && p->n >= POOL_BATCH)
        pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return true;
}

/* -1 once a file of the pool failed (its error passed on the first time), else 0. */
static int pool_error(struct copy_state *st, struct mk_error **err)
{
    struct copy_pool *p = st->pool;
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    bool failed = p->failed;
    struct mk_error *e = MK_TAKE_PTR(p->err);
    pthread_mutex_unlock(&p->mu);
    if (!failed)
        return 0;
    if (e && err && !*err)
        *err = e;
    else
        mk_error_free(e);
    return mk_error_set(err, MK_ERR_FAILED, 0, "copying failed");
}

/* Waits for the queued files and the threads; then pool_error. */
static int pool_stop(struct copy_state *st, struct mk_error **err)
{
    struct copy_pool *p = st->pool;
    if (!p)
        return 0;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->t[i], NULL);
    int r = pool_error(st, err);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->room);
    free(p);
    st->pool = NULL;
    return r;
}

/* A regular file: its bytes, then its metadata (through the open files). */
static int copy_file(struct copy_state *st, const char *rel, const struct stat *sst,
                     const char *dest, struct mk_error **err)
{
    _cleanup_free_ char *name = NULL;
    bool owned = false;
    int pfd = file_parent(st, dest, sst->st_nlink <= 1, &name, &owned, err);
    if (pfd < 0)
        return -1;
    _cleanup_close_ int owned_fd = owned ? pfd : -1;
    if (st->spec->reuse_dests && reuse_defer(st, rel, sst, dest, pfd, name))
        return 0;
    if (sst->st_nlink > 1) {
        struct stat dst;
        bool exists = fstatat(pfd, name, &dst, AT_SYMLINK_NOFOLLOW) == 0;
        if (replace_nondir(st, pfd, name, exists ? &dst : NULL, rel, dest, err) < 0)
            return -1;
        for (size_t i = 0; i < st->n_links; i++) {
            if (st->links[i].dev != sst->st_dev || st->links[i].ino != sst->st_ino)
                continue;
            _cleanup_free_ char *lname = NULL;
            _cleanup_close_ int lpfd =
                mk_open_parent_in_root(st->rootfd, st->links[i].dest, false, &lname, NULL);
            if (lpfd >= 0 && linkat(lpfd, lname, pfd, name, 0) == 0)
                return st->spec->digests
                           ? digest_record(st, rel, sst,
                                           st->links[i].after.st_nlink ? &st->links[i].after : NULL,
                                           st->links[i].digest, err)
                           : 0;
            break; /* the first copy is gone or elsewhere: copy the bytes again */
        }
    }
    _cleanup_close_ int in = src_open(st, rel, err);
    if (in < 0)
        return -1;
    /* Hashing: read back when the kernel copies (copy_file_range). */
    const int cflags =
        (st->spec->digests ? O_RDWR : O_WRONLY) | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    _cleanup_close_ int out = openat(pfd, name, cflags, 0600);
    if (out < 0 && errno == EEXIST && sst->st_nlink <= 1) {
        /* Created first, looked at only when something is there (most copies go to new
         * names): what is there goes unless it is a directory, as for the other kinds. */
        struct stat dst;
        if (fstatat(pfd, name, &dst, AT_SYMLINK_NOFOLLOW) < 0)
            return mk_error_errno(err, "replacing \"%s\"", dest);
        if (replace_nondir(st, pfd, name, &dst, rel, dest, err) < 0)
            return -1;
        out = openat(pfd, name, cflags, 0600);
    } else if (out >= 0 && sst->st_nlink <= 1) {
        st->files++;
    }
    if (out < 0)
        return mk_error_errno(err, "creating \"%s\"", dest);
    struct stat dpst;
    bool have_parent = owned ? fstat(pfd, &dpst) == 0 : true;
    dev_t ddev = owned ? (have_parent ? dpst.st_dev : 0) : st->pcache_dev;
    /* A file this process creates is its euid's, and its group is its egid or (set-gid
     * directory, or a file system mounted grpid) the directory's: when all of them are the
     * ones wanted, it is owned right already and needs no fchown (20,000 of them for a COPY
     * of 20,000 files without --chown). */
    bool owned_right = have_parent && st->uid == st->euid && st->gid == st->egid &&
                       (owned ? dpst.st_gid : st->pcache_gid) == st->gid;
    /* A small file of one link: its bytes and metadata on the pool's threads, while the
     * walk goes on. */
    if (sst->st_nlink <= 1 && (uint64_t)sst->st_size < HASH_THREAD_MIN &&
        cfr_state(sst->st_dev, ddev) >= 0 &&
        pool_put(st, &in, &out, rel, name, sst, ddev, owned_right))
        return pool_error(st, err);
    return file_fill(st, in, out, rel, dest, name, sst, ddev, owned_right, err);
}

/* Copies one entry (file, dir, symlink, fifo) from the source tree to dest in the root. */
static int copy_entry(struct copy_state *st, const char *rel, const struct stat *sst,
                      const char *dest, struct mk_error **err)
{
    if (st->spec->visit)
        return st->spec->visit(rel, sst, dest, st->spec->visit_arg, err);
    if (mk_interrupted)
        return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
    if (S_ISREG(sst->st_mode))
        return copy_file(st, rel, sst, dest, err);
    parent_cache_drop(st);
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = direct_parent(st, dest, &name);
    if (pfd < 0)
        pfd = open_parent_follow(st, dest, &name, err);
    if (pfd < 0)
        return -1;
    struct stat dst;
    bool exists = fstatat(pfd, name, &dst, AT_SYMLINK_NOFOLLOW) == 0;
    if (S_ISDIR(sst->st_mode)) {
        if (exists && !S_ISDIR(dst.st_mode)) {
            if (unlinkat(pfd, name, 0) < 0)
                return mk_error_errno(err, "replacing \"%s\"", dest);
            exists = false;
        }
        if (!exists) {
            if (mkdirat(pfd, name, 0755) < 0)
                return mk_error_errno(err, "creating directory \"%s\"", dest);
            made_note(st, dest);
        }
        return set_meta(st, pfd, name, rel, sst, false, err);
    }
    if (replace_nondir(st, pfd, name, exists ? &dst : NULL, rel, dest, err) < 0)
        return -1;
    if (S_ISLNK(sst->st_mode)) {
        _cleanup_free_ char *sname = NULL;
        _cleanup_close_ int spfd = mk_open_parent_in_root(st->srcfd, rel, false, &sname, err);
        if (spfd < 0)
            return -1;
        char target[4096];
        ssize_t n = readlinkat(spfd, sname, target, sizeof(target) - 1);
        if (n < 0)
            return mk_error_errno(err, "reading link \"%s\"", rel);
        target[n] = '\0';
        if (symlinkat(target, pfd, name) < 0)
            return mk_error_errno(err, "creating symlink \"%s\"", dest);
        return set_meta(st, pfd, name, rel, sst, true, err);
    }
    if (S_ISFIFO(sst->st_mode)) {
        if (mkfifoat(pfd, name, 0600) < 0)
            return mk_error_errno(err, "creating fifo \"%s\"", dest);
        return set_meta(st, pfd, name, rel, sst, false, err);
    }
    return mk_error_set(err, MK_ERR_INVALID, 0,
                        "cannot copy \"%s\": not a regular file, "
                        "directory, symlink or fifo",
                        rel);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (!*b)
        return mk_xstrdup(a);
    return mk_xconcat3(a, n && a[n - 1] == '/' ? "" : "/", b);
}

static int walk_fn(const char *relpath, const struct stat *st, void *arg, struct mk_error **err)
{
    struct copy_state *cs = arg;
    size_t pl = strlen(cs->src_prefix);
    const char *sub = relpath;
    if (strcmp(cs->src_prefix, ".") != 0) {
        if (strncmp(relpath, cs->src_prefix, pl) != 0)
            return 0;
        sub = relpath + pl;
        while (*sub == '/')
            sub++;
    } else if (strcmp(relpath, ".") == 0) {
        sub = "";
    }
    if (user_excluded(cs, sub))
        return 0;
    if (!*sub && S_ISDIR(st->st_mode)) {
        /* The source directory itself: its contents go into dest. As BuildKit (fsutil's
         * prepareTargetDir, then copy without overwriteTargetMetadata): an existing dest
         * keeps its mode, owner and xattrs, a missing one is made like the parents, and the
         * source directory's own metadata is not copied. */
        if (cs->spec->visit)
            return cs->spec->visit(relpath, st, cs->dest_base, cs->spec->visit_arg, err);
        bool created = false;
        int fd = builder_mkdir_follow(cs->rootfd, cs->dest_base, cs->dir_mode, cs->uid, cs->gid,
                                      &created, err);
        if (fd < 0)
            return -1;
        close(fd);
        if (created)
            made_note(cs, cs->dest_base);
        return 0;
    }
    _cleanup_free_ char *dest = join(cs->dest_base, sub);
    return copy_entry(cs, relpath, st, dest, err);
}

/* Plain recursive walk for sources that are not the build context (COPY --from). */
static int walk_plain(struct copy_state *cs, const char *rel, mk_context_walk_fn fn,
                      struct mk_error **err)
{
    struct stat st;
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = -1;
    if (strcmp(rel, ".") == 0) {
        if (fstatat(cs->srcfd, "", &st, AT_EMPTY_PATH) < 0)
            return mk_error_errno(err, "stat of the source root");
    } else {
        pfd = mk_open_parent_in_root(cs->srcfd, rel, false, &name, err);
        if (pfd < 0 || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return mk_error_set(err, MK_ERR_NOT_FOUND, errno, "\"%s\" not found", rel);
    }
    if (fn(rel, &st, cs, err) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return 0;
    _cleanup_close_ int dfd = mk_open_in_root(cs->srcfd, rel, O_RDONLY | O_DIRECTORY, 0, err);
    if (dfd < 0)
        return -1;
    struct mk_strv names = MK_STRV_INIT;
    if (sorted_names(MK_TAKE_FD(dfd), NULL, &names) < 0)
        return mk_error_errno(err, "reading \"%s\"", rel);
    int r = 0;
    for (size_t i = 0; i < names.n && r == 0; i++) {
        _cleanup_free_ char *child =
            strcmp(rel, ".") == 0 ? mk_xstrdup(names.v[i]) : mk_xasprintf("%s/%s", rel, names.v[i]);
        r = walk_plain(cs, child, fn, err);
    }
    mk_strv_release(&names);
    return r;
}

/* As BuildKit's unpack: the destination of an archive is made 0755 whatever --chmod says,
 * owned by --chown. */
static int make_extract_dest(int rootfd, const char *dest, void *arg, struct mk_error **err)
{
    const struct copy_state *cs = arg;
    int fd = builder_mkdir_follow(rootfd, dest, 0755, cs->uid, cs->gid, NULL, err);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int copy_source(struct copy_state *cs, const char *src, bool many, struct mk_error **err)
{
    /* --parents keeps the source's path below dest: all of it, or what follows a "/./". */
    _cleanup_free_ char *rel_buf = drop_dots(src), *keep = NULL, *dest_parents = NULL;
    const char *rel = rel_buf;
    if (cs->spec->parents) {
        const char *pivot = strstr(src, "/./");
        if (!pivot && mk_str_has_suffix(src, "/."))
            pivot = src + strlen(src) - 2;
        keep = drop_dots(pivot ? pivot + 2 : src);
        dest_parents =
            strcmp(keep, ".") == 0 ? mk_xstrdup(cs->spec->dest) : join(cs->spec->dest, keep);
    }
    struct stat st;
    if (strcmp(rel, ".") == 0) {
        if (fstatat(cs->srcfd, "", &st, AT_EMPTY_PATH) < 0)
            return mk_error_errno(err, "stat of the build context");
    } else {
        /* A source that is a symlink is followed (inside the source root). */
        _cleanup_close_ int fd = mk_open_in_root(cs->srcfd, rel, O_PATH, 0, NULL);
        if (fd < 0 || fstat(fd, &st) < 0 || excluded(cs, rel))
            return mk_error_set(err, MK_ERR_NOT_FOUND, 0,
                                "\"%s\": file not found in build context or excluded by "
                                ".dockerignore",
                                rel);
    }
    const char *dest = dest_parents ? dest_parents : cs->spec->dest;
    _cleanup_free_ char *dest_file = NULL;
    const char *base = strrchr(rel, '/');
    if (!S_ISDIR(st.st_mode) && user_excluded(cs, base ? base + 1 : rel))
        return 0;
    if (S_ISDIR(st.st_mode)) {
        /* As BuildKit (FollowSymlinks on the source): a source that is a symlink to a
         * directory, or reached through one, copies the directory it resolves to (inside
         * the source root, .dockerignore applying to the real paths). */
        _cleanup_free_ char *real = NULL;
        if (strcmp(rel, ".") != 0) {
            int fd = follow_path(cs->srcfd, rel, false, 0, 0, 0, NULL, &real, err);
            if (fd < 0)
                return mk_error_wrap(err, "resolving \"%s\"", rel);
            close(fd);
        }
        const char *walk_rel = real && real[strspn(real, "/")] ? real + strspn(real, "/") : ".";
        cs->src_prefix = walk_rel;
        cs->dest_base = dest;
        if (cs->spec->ctx)
            return builder_context_walk(cs->spec->ctx, walk_rel, walk_fn, cs, err);
        return walk_plain(cs, walk_rel, walk_fn, err);
    }
    if (dest_parents) {
        dest_file = mk_xstrdup(dest_parents);
    } else if (cs->spec->dest_is_dir || many) {
        dest_file = join(dest, base ? base + 1 : rel);
    } else if (cs->spec->visit) {
        dest_file = mk_xstrdup(dest);
    } else {
        /* An existing directory at dest takes the file inside it. */
        _cleanup_close_ int dfd = mk_open_in_root(cs->rootfd, dest, O_PATH | O_DIRECTORY, 0, NULL);
        if (dfd >= 0) {
            dest_file = join(dest, base ? base + 1 : rel);
        } else {
            dest_file = mk_xstrdup(dest);
        }
    }
    if (cs->spec->extract && !cs->spec->visit && S_ISREG(st.st_mode)) {
        /* ADD unpacks a local archive into dest as a directory, trailing slash or not. */
        bool extracted = false;
        _cleanup_close_ int in = mk_open_in_root(cs->srcfd, rel, O_RDONLY, 0, err);
        if (in < 0)
            return -1;
        struct layerstore_extract_opts xo = {.chown = cs->spec->chown && *cs->spec->chown,
                                             .uid = cs->uid,
                                             .gid = cs->gid,
                                             .make_dest = make_extract_dest,
                                             .make_dest_arg = cs};
        if (layerstore_extract(in, cs->rootfd, dest, &xo, &extracted, err) < 0)
            return mk_error_wrap(err, "extracting \"%s\"", rel);
        if (extracted)
            return 0;
    }
    /* Copy the file the source names (a followed symlink becomes a regular file). */
    struct stat fst = st;
    _cleanup_free_ char *real_rel = mk_xstrdup(rel);
    if (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISLNK(st.st_mode))
        return copy_entry(cs, real_rel, &fst, dest_file, err);
    return mk_error_set(err, MK_ERR_INVALID, 0, "cannot copy \"%s\": unsupported file type", rel);
}

int builder_copy_into(int rootfd, const struct mk_copy_spec *spec, struct mk_error **err)
{
    struct copy_state cs;
    memset(&cs, 0, sizeof(cs));
    cs.pcache_fd = -1;
    cs.scache_fd = -1;
    cs.rcache.snap = cs.rcache.upper = -1;
    pthread_mutex_init(&cs.digests_mu, NULL);
    cs.spec = spec;
    cs.rootfd = rootfd;
    cs.srcfd = spec->ctx ? builder_context_dirfd(spec->ctx) : spec->src_rootfd;
    cs.uid = 0;
    cs.gid = 0;
    cs.euid = geteuid();
    cs.egid = getegid();
    if (spec->chown && *spec->chown && !spec->visit) {
        if (builder_resolve_user(rootfd, spec->chown, &cs.uid, &cs.gid, err) < 0)
            return mk_error_wrap(err, "--chown=%s", spec->chown);
        /* As BuildKit (readUser): a numeric user without a group is also the group, whatever
         * /etc/passwd says. */
        if (strspn(spec->chown, "0123456789") == strlen(spec->chown))
            cs.gid = (gid_t)cs.uid;
    }
    /* As BuildKit (fsutil's Copy: MkdirAll with the copy's mode, or 0755): directories the
     * copy creates get an octal --chmod too. */
    cs.dir_mode = 0755;
    if (spec->chmod && strspn(spec->chmod, "01234567") == strlen(spec->chmod))
        mk_chmod_apply(spec->chmod, 0755, true, &cs.dir_mode);

    struct mk_strv matched = MK_STRV_INIT;
    int r = 0;
    size_t globs = 0, plain = 0;
    for (size_t i = 0; i < spec->sources->n && r == 0; i++) {
        _cleanup_free_ char *rel = clean_rel(spec->sources->v[i], spec->parents);
        if (has_glob(rel)) {
            /* As BuildKit: one wildcard may match nothing when others match. */
            globs++;
            r = glob_expand(&cs, ".", rel, &matched, err);
        } else {
            plain++;
            mk_strv_push(&matched, rel);
        }
    }
    if (r == 0 && globs && matched.n == 0)
        r = mk_error_set(err, MK_ERR_NOT_FOUND, 0,
                         "no source files were specified or matched by \"%s\"",
                         spec->sources->v[0]);
    /* Several names need a directory: "dir/" when written as several sources; wildcards
     * matching several files make one of dest, as BuildKit does. */
    if (r == 0 && plain > 1 && !spec->dest_is_dir)
        r = mk_error_set(err, MK_ERR_INVALID, 0,
                         "when using COPY with more than one source file, the destination "
                         "must be a directory and end with a /");
    bool dest_dir = spec->dest_is_dir || matched.n > 1;
    /* ADD leaves the destination to each source: an archive's is made 0755 whatever
     * --chmod says (BuildKit's unpack), a file's or directory's as COPY makes it. */
    if (r == 0 && dest_dir && !spec->visit && !spec->extract) {
        bool created = false;
        int fd =
            builder_mkdir_follow(rootfd, spec->dest, cs.dir_mode, cs.uid, cs.gid, &created, err);
        if (fd < 0)
            r = -1;
        else
            close(fd);
        if (created)
            made_note(&cs, spec->dest);
    }
    for (size_t i = 0; i < matched.n && r == 0; i++) {
        /* A directory an earlier source's walk created may hold what it copied. */
        if (i > 0)
            made_forget(&cs);
        r = copy_source(&cs, matched.v[i], dest_dir, err);
    }
    if (r == 0 && cs.n_reuse)
        r = reuse_link(&cs, err);
    if (pool_stop(&cs, err) < 0)
        r = -1;
    if (r == 0 && spec->digests)
        r = digests_flush(&cs, err);
    mk_buf_release(&cs.digests);
    pthread_mutex_destroy(&cs.digests_mu);
    reuse_release(&cs);
    made_forget(&cs);
    mk_strv_release(&matched);
    parent_cache_drop(&cs);
    free(cs.scache);
    mk_closep(&cs.scache_fd);
    for (size_t i = 0; i < cs.n_links; i++)
        free(cs.links[i].dest);
    free(cs.links);
    return r;
}
