/* common/fsutil.c - path resolution inside roots, recursive mkdir/rm, reads and writes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/fsutil.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* A lookup through ".." under RESOLVE_IN_ROOT fails with EAGAIN when a rename or a mount
 * anywhere on the system raced it (the kernel cannot tell whether ".." stayed inside the
 * root); openat2(2) says to retry. After this many tries the user-space walk resolves it. */
#define OPENAT2_TRIES 16

/* Atomic: a context walk reads directories from two threads (builder/context.c). */
static _Atomic int openat2_supported = -1;
static int (*openat2_inject)(void);

void mk_fsutil_test_force_fallback(bool on)
{
    openat2_supported = on ? 0 : -1;
}

void mk_fsutil_test_inject_openat2(int (*fn)(void))
{
    openat2_inject = fn;
}

#ifndef SYS_listxattrat
#define SYS_listxattrat 465 /* the same on every architecture (asm-generic/unistd.h, 6.13) */
#endif
/* -1: not known yet; 0: the kernel has none (ENOSYS). Atomic: the copy's threads ask too. */
static _Atomic int listxattrat_supported = -1;

ssize_t mk_llistxattrat(int dirfd, const char *name, char *list, size_t size)
{
    if (listxattrat_supported != 0) {
        ssize_t n = syscall(SYS_listxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, list, size);
        if (n >= 0 || errno != ENOSYS) {
            listxattrat_supported = 1;
            return n;
        }
        listxattrat_supported = 0;
    }
    char p[PATH_MAX + 64];
    int k = snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", dirfd, name);
    if (k < 0 || (size_t)k >= sizeof(p)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return llistxattr(p, list, size);
}

static int sys_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
    if (openat2_inject) {
        int e = openat2_inject();
        if (e) {
            errno = e;
            return -1;
        }
    }
    struct open_how how = {.flags = (uint64_t)flags, .mode = mode, .resolve = resolve};
    if (!(flags & (O_CREAT | O_TMPFILE)))
        how.mode = 0;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Fallback walk for kernels without openat2: one component at a time with O_NOFOLLOW,
 * symlinks re-resolved by hand against the root, ".." clamped at the root. */
static int walk_in_root(int rootfd, const char *path, int flags, mode_t mode, int depth)
{
    if (depth > 40) {
        errno = ELOOP;
        return -1;
    }
    _cleanup_free_ char *copy = mk_xstrdup(path);
    struct mk_strv stack = MK_STRV_INIT; /* components of the resolved directory */
    int cur = dup(rootfd);
    if (cur < 0)
        return -1;
    char *save = NULL;
    char *comp = strtok_r(copy, "/", &save);
    int ret = -1;
    while (comp) {
        char *next = strtok_r(NULL, "/", &save);
        bool last = next == NULL;
        if (strcmp(comp, ".") == 0) {
            comp = next;
            if (last)
                ret = openat(cur, ".", flags & ~(O_CREAT | O_EXCL), 0);
            continue;
        }
        if (strcmp(comp, "..") == 0) {
            if (stack.n)
                free(stack.v[--stack.n]);
            /* Reopen the directory from the root along the remaining stack. */
            close(cur);
            cur = dup(rootfd);
            for (size_t i = 0; i < stack.n && cur >= 0; i++) {
                int fd = openat(cur, stack.v[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                close(cur);
                cur = fd;
            }
            if (cur < 0)
                goto out;
            comp = next;
            if (last)
                ret = openat(cur, ".", flags & ~(O_CREAT | O_EXCL), 0);
            continue;
        }
        struct stat st;
        if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode) &&
            !(last && (flags & O_NOFOLLOW))) {
            char target[PATH_MAX];
            ssize_t n = readlinkat(cur, comp, target, sizeof(target) - 1);
            if (n < 0)
                goto out;
            target[n] = '\0';
            struct mk_buf rest = MK_BUF_INIT;
            if (target[0] != '/')
                for (size_t i = 0; i < stack.n; i++)
                    mk_buf_addf(&rest, "/%s", stack.v[i]);
            mk_buf_addf(&rest, "/%s", target);
            for (char *p = next; p; p = strtok_r(NULL, "/", &save))
                mk_buf_addf(&rest, "/%s", p);
            ret = walk_in_root(rootfd, rest.data, flags, mode, depth + 1);
            mk_buf_release(&rest);
            goto out;
        }
        if (last) {
            ret = openat(cur, comp, flags | O_NOFOLLOW, mode);
            break;
        }
        int fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            goto out;
        close(cur);
        cur = fd;
        mk_strv_push(&stack, comp);
        comp = next;
    }
    if (!comp && ret < 0 && errno == 0)
        ret = openat(cur, ".", flags & ~(O_CREAT | O_EXCL), 0);
out:
    if (cur >= 0) {
        int saved = errno;
        close(cur);
        errno = saved;
    }
    mk_strv_release(&stack);
    return ret;
}

static int open_in_root_raw(int rootfd, const char *path, int flags, mode_t mode)
{
    flags |= O_CLOEXEC;
    const char *p = path;
    while (*p == '/')
        p++;
    if (!*p)
        p = ".";
    for (int try = 0; openat2_supported != 0 && try < OPENAT2_TRIES; try++) {
        int fd = sys_openat2(rootfd, p, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
        if (fd < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (fd < 0 && errno == ENOSYS) {
            openat2_supported = 0;
            break;
        }
        /* The errors crun's safe_openat walks around too: EPERM from a seccomp filter that
         * does not know openat2 (a container runtime's), EINVAL or E2BIG from a kernel that
         * does not know a flag or the size of struct open_how. The walk keeps the same
         * rules, so it resolves as safely; openat2 is tried again on the next call. */
        if (fd < 0 && (errno == EPERM || errno == EINVAL || errno == E2BIG))
            break;
        openat2_supported = 1;
        return fd;
    }
    errno = 0;
    return walk_in_root(rootfd, p, flags, mode, 0);
}

int mk_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct mk_error **err)
{
    int fd = open_in_root_raw(rootfd, path, flags, mode);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    return fd;
}

int mk_mkdir_p_in_root(int rootfd, const char *path, mode_t mode, struct mk_error **err)
{
    int fd = open_in_root_raw(rootfd, path, O_PATH | O_DIRECTORY, 0);
    if (fd >= 0)
        return fd;
    if (errno != ENOENT)
        return mk_error_errno(err, "opening directory \"%s\"", path);
    /* Create one missing component at a time; each step re-resolves inside the root. */
    _cleanup_free_ char *copy = mk_xstrdup(path);
    size_t len = strlen(copy);
    for (size_t i = 1; i <= len; i++) {
        if (copy[i] != '/' && copy[i] != '\0')
            continue;
        char saved = copy[i];
        copy[i] = '\0';
        int dfd = open_in_root_raw(rootfd, copy, O_PATH | O_DIRECTORY, 0);
        if (dfd >= 0) {
            close(dfd);
        } else if (errno == ENOENT) {
            _cleanup_free_ char *name = NULL;
            _cleanup_close_ int pfd = mk_open_parent_in_root(rootfd, copy, false, &name, err);
            if (pfd < 0)
                return -1;
            if (mkdirat(pfd, name, mode) < 0 && errno != EEXIST)
                return mk_error_errno(err, "creating directory \"%s\"", copy);
        } else {
            return mk_error_errno(err, "opening directory \"%s\"", copy);
        }
        copy[i] = saved;
    }
    fd = open_in_root_raw(rootfd, path, O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
        return mk_error_errno(err, "opening directory \"%s\"", path);
    return fd;
}

int mk_open_parent_in_root(int rootfd, const char *path, bool create_parents, char **ret_name,
                           struct mk_error **err)
{
    _cleanup_free_ char *copy = mk_xstrdup(path);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0';
    char *slash = strrchr(copy, '/');
    const char *name = slash ? slash + 1 : copy;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\" names no file", path);
    _cleanup_free_ char *parent =
        slash ? mk_xstrndup(copy, (size_t)(slash - copy)) : mk_xstrdup(".");
    if (!*parent) {
        free(parent);
        parent = mk_xstrdup("/");
    }
    int fd;
    if (create_parents) {
        fd = mk_mkdir_p_in_root(rootfd, parent, 0755, err);
    } else {
        fd = open_in_root_raw(rootfd, parent, O_PATH | O_DIRECTORY, 0);
        if (fd < 0)
            mk_error_errno(err, "opening directory \"%s\"", parent);
    }
    if (fd < 0)
        return -1;
    *ret_name = mk_xstrdup(name);
    return fd;
}

int mk_mkdir_p(const char *path, mode_t mode, struct mk_error **err)
{
    _cleanup_free_ char *copy = mk_xstrdup(path);
    size_t len = strlen(copy);
    for (size_t i = 1; i <= len; i++) {
        if (copy[i] != '/' && copy[i] != '\0')
            continue;
        char saved = copy[i];
        copy[i] = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
            return mk_error_errno(err, "creating directory \"%s\"", copy);
        copy[i] = saved;
    }
    return 0;
}

static int rm_rf_children(int dfd, dev_t dev, struct mk_error **err)
{
    int fd2 = dup(dfd);
    if (fd2 < 0)
        return mk_error_errno(err, "dup");
    DIR *d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return mk_error_errno(err, "opening directory");
    }
    struct dirent *de;
    int ret = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            ret = mk_error_errno(err, "stat \"%s\"", de->d_name);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                ret = mk_error_set(err, MK_ERR_IO, EBUSY, "refusing to cross a mount at \"%s\"",
                                   de->d_name);
                break;
            }
            int cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0 && errno == EACCES) {
                /* A directory we own but may not read (mode 000): make it readable. */
                fchmodat(dfd, de->d_name, 0700, 0);
                cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            }
            if (cfd < 0) {
                ret = mk_error_errno(err, "opening \"%s\"", de->d_name);
                break;
            }
            ret = rm_rf_children(cfd, dev, err);
            close(cfd);
            if (ret < 0)
                break;
            if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                ret = mk_error_errno(err, "removing \"%s\"", de->d_name);
                break;
            }
        } else if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
            ret = mk_error_errno(err, "removing \"%s\"", de->d_name);
            break;
        }
    }
    closedir(d);
    return ret;
}

int mk_rm_rf_at(int dirfd, const char *name, struct mk_error **err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return mk_error_errno(err, "stat \"%s\"", name);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
            return mk_error_errno(err, "removing \"%s\"", name);
        return 0;
    }
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) {
        fchmodat(dirfd, name, 0700, 0);
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", name);
    if (rm_rf_children(fd, st.st_dev, err) < 0)
        return mk_error_wrap(err, "removing \"%s\"", name);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return mk_error_errno(err, "removing \"%s\"", name);
    return 0;
}

int mk_rm_rf(const char *path, struct mk_error **err)
{
    return mk_rm_rf_at(AT_FDCWD, path, err);
}

ssize_t mk_read_some(int fd, void *buf, size_t len, struct mk_error **err)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return mk_error_errno(err, "read");
    }
}

int mk_read_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len,
                    struct mk_error **err)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mk_error_set(err, errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO, errno,
                            "opening \"%s\"", path);
    struct mk_buf b = MK_BUF_INIT;
    mk_buf_init(&b, max);
    char chunk[65536];
    for (;;) {
        ssize_t n = mk_read_some(fd, chunk, sizeof(chunk), err);
        if (n < 0 || (n > 0 && mk_buf_append(&b, chunk, (size_t)n, err) < 0)) {
            mk_buf_release(&b);
            return mk_error_wrap(err, "reading \"%s\"", path);
        }
        if (n == 0)
            break;
    }
    if (ret_len)
        *ret_len = b.len;
    *ret = mk_buf_detach(&b);
    return 0;
}

int mk_write_all(int fd, const void *data, size_t len, struct mk_error **err)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mk_error_errno(err, "write");
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mk_fsync_dir(int dirfd, struct mk_error **err)
{
    if (fsync(dirfd) < 0 && errno != EINVAL && errno != EROFS)
        return mk_error_errno(err, "fsync of a directory");
    return 0;
}

char *mk_mkdtemp_in(const char *parent, const char *prefix, struct mk_error **err)
{
    char *path = mk_xasprintf("%s/%sXXXXXX", parent, prefix);
    if (!mkdtemp(path)) {
        mk_error_errno(err, "creating a temporary directory in \"%s\"", parent);
        free(path);
        return NULL;
    }
    return path;
}
