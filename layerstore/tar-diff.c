/* layerstore/tar-diff.c - which entries of an overlay upperdir did not really change.
 *
 * Overlay copies a file up to the upperdir when it is opened for writing or its metadata is
 * touched, whether or not anything ends up different; such a copy-up repeats the lower file
 * in the layer for nothing. An upper entry is unchanged when the entry it hides (the first
 * one found in the lowerdirs, top-most first, with overlay's rules: a whiteout or a
 * non-directory ends the search below it, an opaque directory hides what is under it) has
 * the same type, mode (setuid/setgid/sticky included), owner, mtime to the nanosecond,
 * extended attributes (overlay's own left out) and content: file bytes, symlink target or
 * device number. A change of metadata alone is a change, as for docker. Regular files with
 * more than one link in the upperdir are always treated as changed: the link structure is
 * part of the layer. The lower's link count is not looked at: a lower file's links are its
 * layer's, and a COPY shares unchanged files with an earlier build's snapshot (issue 19),
 * which must not make a step's layer differ from a clean build's.
 * Directories are compared by their metadata only; the tar writer still writes an unchanged
 * one when something under it is written, as docker and buildah do, so the unpacked image
 * keeps its parents' metadata. Anything that cannot be told for sure counts as a change.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define XATTR_LIST_MAX_BYTES 65536
#define XATTR_VALUE_MAX_BYTES 65536
#define CMP_CHUNK (LS_DIFF_BUF_SIZE / 2)

void ls_xattrs_release(struct ls_xattrs *x)
{
    mk_strv_release(&x->names);
    for (size_t i = 0; i < x->n_values; i++)
        free(x->values[i]);
    free(x->values);
    free(x->lens);
    memset(x, 0, sizeof(*x));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The xattrs of the inode fd (a real open file, fd_path NULL) or of fd_path (the magic link
 * of an O_PATH fd, which has no f*xattr). */
static int xattrs_read(int fd, const char *fd_path, const char *path, struct ls_xattrs *ret,
                       struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_free_ char *list = mk_xmalloc(XATTR_LIST_MAX_BYTES);
    ssize_t n = fd_path ? listxattr(fd_path, list, XATTR_LIST_MAX_BYTES)
                        : flistxattr(fd, list, XATTR_LIST_MAX_BYTES);
    if (n < 0) {
        if (errno == ENOTSUP || errno == EPERM)
            return 0;
        return mk_error_errno(err, "listing extended attributes of \"%s\"", path);
    }
    if (n == 0)
        return 0;
    struct mk_strv names = MK_STRV_INIT;
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
        mk_strv_push(&names, list + i);
    if (names.n)
        qsort(names.v, names.n, sizeof(char *), cmp_names);
    _cleanup_free_ char *value = mk_xmalloc(XATTR_VALUE_MAX_BYTES);
    int r = 0;
    for (size_t i = 0; i < names.n; i++) {
        const char *x = names.v[i];
        ssize_t vn = fd_path ? getxattr(fd_path, x, value, XATTR_VALUE_MAX_BYTES)
                             : fgetxattr(fd, x, value, XATTR_VALUE_MAX_BYTES);
        if (vn < 0) {
            if (errno == ENODATA)
                continue;
            r = mk_error_errno(err, "reading extended attribute \"%s\" of \"%s\"", x, path);
            break;
        }
        if (ls_tar_xattr_is_overlay(x)) {
            if (mk_str_has_suffix(x, ".overlay.opaque") && vn == 1 && value[0] == 'y')
                ret->opaque = true;
            continue;
        }
        mk_strv_push(&ret->names, x);
        ret->values = mk_xreallocarray(ret->values, ret->names.n, sizeof(char *));
        ret->lens = mk_xreallocarray(ret->lens, ret->names.n, sizeof(size_t));
        ret->values[ret->n_values] = mk_xmalloc((size_t)vn + 1);
        memcpy(ret->values[ret->n_values], value, (size_t)vn);
        ret->lens[ret->n_values++] = (size_t)vn;
    }
    mk_strv_release(&names);
    if (r < 0)
        ls_xattrs_release(ret);
    return r;
}

int ls_xattrs_read(int dfd, const char *name, const char *path, struct ls_xattrs *ret,
                   struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_close_ int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    /* O_PATH fds have no f*xattr; the magic link names the inode itself, even a symlink. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    return xattrs_read(fd, proc, path, ret, err);
}

int ls_xattrs_read_fd(int fd, const char *path, struct ls_xattrs *ret, struct mk_error **err)
{
    return xattrs_read(fd, NULL, path, ret, err);
}

static bool xattrs_equal(const struct ls_xattrs *a, const struct ls_xattrs *b)
{
    if (a->names.n != b->names.n || a->opaque != b->opaque)
        return false;
    for (size_t i = 0; i < a->names.n; i++)
        if (strcmp(a->names.v[i], b->names.v[i]) != 0 || a->lens[i] != b->lens[i] ||
            memcmp(a->values[i], b->values[i], a->lens[i]) != 0)
            return false;
    return true;
}

void ls_lowers_release(struct ls_lowers *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    free(l->fds);
    l->fds = NULL;
    l->n = 0;
}

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool dir_opaque(int fd)
{
    char v[2];
    return (fgetxattr(fd, "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y') ||
           (fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y');
}

/* The top-most lower entry name hides: the index into l, or -1 when there is none. */
static int lower_find(const struct ls_lowers *l, const char *name, struct stat *ret_st)
{
    for (size_t i = 0; i < l->n; i++) {
        if (fstatat(l->fds[i], name, ret_st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        return is_whiteout(ret_st) ? -1 : (int)i;
    }
    return -1;
}

bool ls_lowers_has(const struct ls_lowers *l, const char *name)
{
    struct stat st;
    return lower_find(l, name, &st) >= 0;
}

void ls_lowers_child(const struct ls_lowers *l, const char *name, bool upper_opaque,
                     struct ls_lowers *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (upper_opaque || l->n == 0)
        return;
    ret->fds = mk_xcalloc(l->n, sizeof(int));
    for (size_t i = 0; i < l->n; i++) {
        struct stat st;
        if (fstatat(l->fds[i], name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            break; /* unreadable: what is below cannot be told, so it counts as absent */
        }
        if (!S_ISDIR(st.st_mode))
            break; /* a whiteout or a file hides the layers below */
        int fd = openat(l->fds[i], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            /* Out of fds in a very deep tree: everything below is written, as without lowers. */
            ls_lowers_release(ret);
            return;
        }
        ret->fds[ret->n++] = fd;
        if (dir_opaque(fd))
            break;
    }
}

static int same_content(char *buf, int lfd, int dfd, const char *name, bool *ret_same,
                        struct mk_error **err)
{
    *ret_same = false;
    _cleanup_close_ int a = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int b = openat(lfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (a < 0 || b < 0)
        return 0;
    char *x = buf, *y = buf + CMP_CHUNK;
    for (;;) {
        ssize_t n = mk_read_some(a, x, CMP_CHUNK, err);
        if (n < 0)
            return -1;
        size_t got = 0;
        while (got < (size_t)n) {
            ssize_t m = mk_read_some(b, y + got, (size_t)n - got, NULL);
            if (m <= 0)
                return 0;
            got += (size_t)m;
        }
        if (memcmp(x, y, (size_t)n) != 0)
            return 0;
        if (n == 0) {
            char c;
            *ret_same = mk_read_some(b, &c, 1, NULL) == 0;
            return 0;
        }
    }
}

int ls_lowers_unchanged(const struct ls_lowers *l, int dfd, const char *name, const char *path,
                        const struct stat *st, const struct ls_xattrs *xattrs, char *buf,
                        bool *ret_same, struct mk_error **err)
{
    *ret_same = false;
    struct stat ls;
    int i = lower_find(l, name, &ls);
    if (i < 0 || is_whiteout(st) || xattrs->opaque)
        return 0;
    if (ls.st_mode != st->st_mode || ls.st_uid != st->st_uid || ls.st_gid != st->st_gid ||
        ls.st_mtim.tv_sec != st->st_mtim.tv_sec || ls.st_mtim.tv_nsec != st->st_mtim.tv_nsec)
        return 0;
    if (S_ISREG(st->st_mode) && (st->st_nlink > 1 || ls.st_size != st->st_size))
        return 0;
    if ((S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) && ls.st_rdev != st->st_rdev)
        return 0;
    if (S_ISLNK(st->st_mode)) {
        char t1[PATH_MAX], t2[PATH_MAX];
        ssize_t n1 = readlinkat(dfd, name, t1, sizeof(t1));
        ssize_t n2 = readlinkat(l->fds[i], name, t2, sizeof(t2));
        if (n1 < 0 || n1 != n2 || memcmp(t1, t2, (size_t)n1) != 0)
            return 0;
    }
    struct ls_xattrs lx;
    if (ls_xattrs_read(l->fds[i], name, path, &lx, NULL) < 0)
        return 0;
    bool same = xattrs_equal(xattrs, &lx);
    ls_xattrs_release(&lx);
    if (!same)
        return 0;
    if (S_ISREG(st->st_mode))
        return same_content(buf, l->fds[i], dfd, name, ret_same, err);
    *ret_same = true;
    return 0;
}
