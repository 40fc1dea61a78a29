/* layerstore/tar-apply.c - unpacks an untrusted layer tar into an overlay lowerdir.
 *
 * Two libarchive readers in one thread: the first ("raw" format) only decompresses; the
 * second parses tar from the first one's output through a read callback that also hashes
 * and tees those bytes. So the diff_id covers exactly the uncompressed stream, nothing is
 * held in memory beyond libarchive's blocks, and the tar parser never sees compression.
 *
 * Every path is resolved below dirfd with RESOLVE_IN_ROOT (common/fsutil.h), entries naming
 * ".." are refused, and final components are always handled with *at() calls that do not
 * follow symlinks, so no entry, symlink, hardlink or whiteout reaches outside the root.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fsutil.h"
#include "common/util.h"
#include "layerstore/internal.h"

MK_DEFINE_CLEANUP(struct archive, archive_read_free)

#define DEFAULT_MAX_ENTRIES 1000000ULL
#define DEFAULT_MAX_BYTES (64ULL << 30)
#define MAX_PATH_BYTES 4096
#define MAX_XATTRS 256
#define WHITEOUT ".wh."
#define OPAQUE ".wh..wh..opq"

/* A directory whose mode, owner and mtime are set after its contents were written. */
struct dir_attr {
    char *path;
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec mtime;
};

struct applier {
    int root;
    bool rootless;
    uint64_t max_entries, max_bytes;
    struct archive *raw; /* decompressing reader */
    struct archive *tar; /* tar parser fed from raw */
    struct mk_sha256 *hash;
    uint64_t size;
    uint64_t unpacked; /* file data written: sparse entries can unpack to far more than size */
    int tee_fd;
    struct mk_error *cb_err; /* an error met inside the read callback */
    char buf[65536];
    struct dir_attr *dirs;
    size_t ndirs, dirs_alloc;
};

/* Next chunk of uncompressed bytes, hashed, counted, capped and teed. 0 at the end. */
static ssize_t pull(struct applier *ap, const void **ret)
{
    la_ssize_t n = archive_read_data(ap->raw, ap->buf, sizeof(ap->buf));
    if (n < 0) {
        mk_error_set(&ap->cb_err, MK_ERR_PARSE, 0, "decompressing the layer: %s",
                     archive_error_string(ap->raw) ? archive_error_string(ap->raw) : "error");
        return -1;
    }
    if ((uint64_t)n > ap->max_bytes - ap->size) {
        mk_error_set(&ap->cb_err, MK_ERR_INVALID, 0, "layer is larger than %llu bytes uncompressed",
                     (unsigned long long)ap->max_bytes);
        return -1;
    }
    mk_sha256_update(ap->hash, ap->buf, (size_t)n);
    ap->size += (uint64_t)n;
    if (ap->tee_fd >= 0 && n > 0 && mk_write_all(ap->tee_fd, ap->buf, (size_t)n, &ap->cb_err) < 0)
        return -1;
    *ret = ap->buf;
    return n;
}

static la_ssize_t read_cb(struct archive *a, void *data, const void **buf)
{
    (void)a;
    return pull(data, buf);
}

static int tar_fail(struct applier *ap, const char *what, struct mk_error **err)
{
    if (ap->cb_err) {
        if (err && !*err)
            *err = MK_TAKE_PTR(ap->cb_err);
        return -1;
    }
    const char *why = archive_error_string(ap->tar);
    return mk_error_set(err, MK_ERR_PARSE, 0, "malformed layer tar: %s%s%s", what, why ? ": " : "",
                        why ? why : "");
}

/* Normalises an entry path: strips leading "/" and "." components, refuses "..". Returns a
 * new string ("" for the root itself) or NULL with *err set. */
static char *clean_path(const char *raw, struct mk_error **err)
{
    if (!raw)
        return mk_error_set(err, MK_ERR_PARSE, 0, "malformed layer tar: entry without a name"),
               NULL;
    if (strlen(raw) > MAX_PATH_BYTES) {
        mk_error_set(err, MK_ERR_INVALID, 0, "path in layer is longer than %d bytes",
                     MAX_PATH_BYTES);
        return NULL;
    }
    struct mk_buf out = MK_BUF_INIT;
    mk_buf_adds(&out, "");
    const char *p = raw;
    while (*p) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (len == 0)
            break;
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            mk_error_set(err, MK_ERR_INVALID, 0, "layer entry \"%s\" leaves the layer root", raw);
            mk_buf_release(&out);
            return NULL;
        }
        if (!(len == 1 && p[0] == '.')) {
            if (out.len)
                mk_buf_addc(&out, '/');
            mk_buf_add(&out, p, len);
        }
        p += len;
    }
    return mk_buf_detach(&out);
}

static void defer_dir(struct applier *ap, const char *path, struct archive_entry *e, mode_t mode)
{
    if (ap->ndirs == ap->dirs_alloc) {
        ap->dirs_alloc = ap->dirs_alloc ? ap->dirs_alloc * 2 : 64;
        ap->dirs = mk_xreallocarray(ap->dirs, ap->dirs_alloc, sizeof(*ap->dirs));
    }
    ap->dirs[ap->ndirs++] = (struct dir_attr){
        .path = mk_xstrdup(path),
        .mode = mode,
        .uid = (uid_t)archive_entry_uid(e),
        .gid = (gid_t)archive_entry_gid(e),
        .mtime = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
    };
}

static bool may_ignore_attr_error(const struct applier *ap, int errnum)
{
    return errnum == ENOTSUP || (ap->rootless && (errnum == EPERM || errnum == EINVAL));
}

int ls_entry_set_xattrs(int pfd, const char *name, const char *path, struct archive_entry *e,
                        bool (*ignore)(int errnum, const char *xname, const void *arg),
                        const void *arg, struct mk_error **err)
{
    if (archive_entry_xattr_reset(e) == 0)
        return 0;
    if (archive_entry_xattr_count(e) > MAX_XATTRS)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\" has more than %d extended attributes",
                            path, MAX_XATTRS);
    _cleanup_close_ int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    /* O_PATH fds have no f*xattr; the magic link names the inode itself, even a symlink. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    const char *xname;
    const void *value;
    size_t size;
    while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (!xname || !*xname || ls_tar_xattr_is_overlay(xname))
            continue;
        if (setxattr(proc, xname, value, size, 0) < 0 && !ignore(errno, xname, arg))
            return mk_error_errno(err, "setting extended attribute \"%s\" on \"%s\"", xname, path);
    }
    return 0;
}

static bool ignore_xattr_error(int errnum, const char *xname, const void *arg)
{
    const struct applier *ap = arg;
    return may_ignore_attr_error(ap, errnum) ||
           (errnum == EPERM && mk_str_has_prefix(xname, "user."));
}

static int set_xattrs(struct applier *ap, int pfd, const char *name, const char *path,
                      struct archive_entry *e, struct mk_error **err)
{
    return ls_entry_set_xattrs(pfd, name, path, e, ignore_xattr_error, ap, err);
}

static int set_owner_mode_time(struct applier *ap, int pfd, const char *name, const char *path,
                               bool symlink, mode_t mode, struct archive_entry *e,
                               struct mk_error **err)
{
    if (fchownat(pfd, name, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
                 AT_SYMLINK_NOFOLLOW) < 0 &&
        !may_ignore_attr_error(ap, errno))
        return mk_error_errno(err, "changing the owner of \"%s\"", path);
    /* After chown, which clears setuid bits. */
    if (!symlink && fchmodat(pfd, name, mode, 0) < 0)
        return mk_error_errno(err, "changing the mode of \"%s\"", path);
    if (set_xattrs(ap, pfd, name, path, e, err) < 0)
        return -1;
    struct timespec ts[2] = {{0, UTIME_OMIT},
                             {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (ts[1].tv_nsec < 0 || ts[1].tv_nsec > 999999999)
        ts[1].tv_nsec = 0;
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return mk_error_errno(err, "setting the mtime of \"%s\"", path);
    return 0;
}

static int write_data(struct applier *ap, int pfd, const char *name, const char *path,
                      struct mk_error **err)
{
    _cleanup_close_ int fd =
        openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return mk_error_errno(err, "creating \"%s\"", path);
    char buf[65536];
    for (;;) {
        la_ssize_t n = archive_read_data(ap->tar, buf, sizeof(buf));
        if (n < 0)
            return tar_fail(ap, path, err);
        if (n == 0)
            return 0;
        if ((uint64_t)n > ap->max_bytes - ap->unpacked)
            return mk_error_set(err, MK_ERR_INVALID, 0, "layer unpacks to more than %llu bytes",
                                (unsigned long long)ap->max_bytes);
        ap->unpacked += (uint64_t)n;
        if (mk_write_all(fd, buf, (size_t)n, err) < 0)
            return mk_error_wrap(err, "writing \"%s\"", path);
    }
}

static int apply_whiteout(struct applier *ap, const char *path, int pfd, const char *name,
                          struct mk_error **err)
{
    if (strcmp(name, OPAQUE) == 0) {
        /* The directory itself may come later in the tar; create it now, attributes then. */
        _cleanup_close_ int dfd = mk_open_in_root(ap->root, path, O_RDONLY | O_DIRECTORY, 0, err);
        if (dfd < 0)
            return -1;
        if (fsetxattr(dfd, "user.overlay.opaque", "y", 1, 0) < 0)
            return mk_error_errno(err, "marking \"%s\" opaque", path);
        return 0;
    }
    const char *target = name + strlen(WHITEOUT);
    if (mk_str_has_prefix(target, WHITEOUT) || !*target || strcmp(target, ".") == 0 ||
        strcmp(target, "..") == 0)
        return 0; /* aufs bookkeeping (".wh..wh.plnk") or no name at all: nothing to hide */
    struct stat st;
    if (fstatat(pfd, target, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 0; /* this layer also creates the name: the real entry wins */
    if (mknodat(pfd, target, S_IFCHR | 0, makedev(0, 0)) < 0)
        return mk_error_errno(err, "creating whiteout for \"%s/%s\"", path, target);
    return 0;
}

/* Makes room for a new entry at pfd/name; a directory stays when the new entry is one. */
static int clear_name(int pfd, const char *name, bool keep_dir, bool *ret_is_dir,
                      struct mk_error **err)
{
    struct stat st;
    *ret_is_dir = false;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return mk_error_errno(err, "stat \"%s\"", name);
    }
    if (S_ISDIR(st.st_mode) && keep_dir) {
        *ret_is_dir = true;
        return 0;
    }
    return mk_rm_rf_at(pfd, name, err);
}

static int apply_entry(struct applier *ap, struct archive_entry *e, struct mk_error **err)
{
    _cleanup_free_ char *path = clean_path(archive_entry_pathname(e), err);
    if (!path)
        return -1;
    if (!*path)
        return 0; /* "./": the root itself is the caller's */
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = mk_open_parent_in_root(ap->root, path, true, &name, err);
    if (pfd < 0)
        return mk_error_wrap(err, "unpacking \"%s\"", path);

    if (mk_str_has_prefix(name, WHITEOUT)) {
        _cleanup_free_ char *dir = mk_xstrndup(path, strlen(path) - strlen(name));
        return apply_whiteout(ap, *dir ? dir : ".", pfd, name, err);
    }

    mode_t type = archive_entry_filetype(e);
    mode_t mode = archive_entry_perm(e) & 07777;
    if (ap->rootless)
        mode &= ~(mode_t)(S_ISUID | S_ISGID);
    const char *link = archive_entry_hardlink(e);

    if (link) {
        _cleanup_free_ char *target = clean_path(link, err);
        if (!target)
            return -1;
        _cleanup_free_ char *tname = NULL;
        _cleanup_close_ int tpfd = -1;
        struct mk_error *terr = NULL;
        if (*target)
            tpfd = mk_open_parent_in_root(ap->root, target, false, &tname, &terr);
        if (tpfd < 0) {
            mk_error_free(terr);
            return mk_error_set(err, MK_ERR_INVALID, 0,
                                "hardlink \"%s\" to \"%s\": no such file in the layer", path, link);
        }
        bool is_dir;
        if (clear_name(pfd, name, false, &is_dir, err) < 0)
            return -1;
        /* No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself. */
        if (linkat(tpfd, tname, pfd, name, 0) < 0)
            return mk_error_set(err, errno == ENOENT || errno == EPERM ? MK_ERR_INVALID : MK_ERR_IO,
                                errno, "hardlink \"%s\" to \"%s\"", path, link);
        return 0;
    }

    if ((type == AE_IFCHR || type == AE_IFBLK) && ap->rootless)
        return 0;
    bool is_dir;
    if (clear_name(pfd, name, type == AE_IFDIR, &is_dir, err) < 0)
        return -1;
    switch (type) {
    case AE_IFDIR:
        if (!is_dir && mkdirat(pfd, name, 0700) < 0)
            return mk_error_errno(err, "creating directory \"%s\"", path);
        /* Owner and xattrs now; mode and mtime once the contents are in. */
        if (fchownat(pfd, name, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e),
                     AT_SYMLINK_NOFOLLOW) < 0 &&
            !may_ignore_attr_error(ap, errno))
            return mk_error_errno(err, "changing the owner of \"%s\"", path);
        if (set_xattrs(ap, pfd, name, path, e, err) < 0)
            return -1;
        defer_dir(ap, path, e, mode);
        return 0;
    case AE_IFREG:
        if (write_data(ap, pfd, name, path, err) < 0)
            return -1;
        break;
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (!target)
            return mk_error_set(err, MK_ERR_PARSE, 0, "symlink \"%s\" has no target", path);
        if (strlen(target) > MAX_PATH_BYTES)
            return mk_error_set(err, MK_ERR_INVALID, 0, "symlink \"%s\": target too long", path);
        if (symlinkat(target, pfd, name) < 0)
            return mk_error_errno(err, "creating symlink \"%s\"", path);
        return set_owner_mode_time(ap, pfd, name, path, true, 0, e, err);
    }
    case AE_IFIFO:
        if (mknodat(pfd, name, S_IFIFO | 0600, 0) < 0)
            return mk_error_errno(err, "creating fifo \"%s\"", path);
        break;
    case AE_IFCHR:
    case AE_IFBLK:
        if (mknodat(pfd, name, type | 0600, archive_entry_rdev(e)) < 0)
            return mk_error_errno(err, "creating device \"%s\"", path);
        break;
    default:
        return 0; /* sockets and unknown types carry no content */
    }
    return set_owner_mode_time(ap, pfd, name, path, false, mode, e, err);
}

static int finish_dirs(struct applier *ap, struct mk_error **err)
{
    for (size_t i = 0; i < ap->ndirs; i++) {
        const struct dir_attr *d = &ap->dirs[i];
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int pfd = mk_open_parent_in_root(ap->root, d->path, false, &name, NULL);
        struct stat st;
        /* Replaced by a later entry of the same layer: nothing to finish. */
        if (pfd < 0 || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (fchmodat(pfd, name, d->mode, 0) < 0)
            return mk_error_errno(err, "changing the mode of \"%s\"", d->path);
        struct timespec ts[2] = {{0, UTIME_OMIT}, d->mtime};
        if (ts[1].tv_nsec < 0 || ts[1].tv_nsec > 999999999)
            ts[1].tv_nsec = 0;
        if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
            return mk_error_errno(err, "setting the mtime of \"%s\"", d->path);
    }
    return 0;
}

static int apply_all(struct applier *ap, struct mk_error **err)
{
    uint64_t entries = 0;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(ap->tar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN)
            return tar_fail(ap, "reading an entry header", err);
        if (++entries > ap->max_entries)
            return mk_error_set(err, MK_ERR_INVALID, 0, "layer has more than %llu entries",
                                (unsigned long long)ap->max_entries);
        if (mk_interrupted)
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
        if (apply_entry(ap, e, err) < 0)
            return -1;
    }
    if (finish_dirs(ap, err) < 0)
        return -1;
    /* Whatever follows the end-of-archive blocks is part of the stream the digest covers. */
    for (;;) {
        const void *buf;
        ssize_t n = pull(ap, &buf);
        if (n < 0)
            return tar_fail(ap, "reading past the end of the archive", err);
        if (n == 0)
            return 0;
    }
}

int ls_tar_apply(int in_fd, int dirfd, const struct ls_apply_opts *opts, int tee_fd,
                 char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err)
{
    struct applier ap = {
        .root = dirfd,
        .rootless = opts && opts->rootless,
        .max_entries = opts && opts->max_entries ? opts->max_entries : DEFAULT_MAX_ENTRIES,
        .max_bytes = opts && opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES,
        .tee_fd = tee_fd,
        .hash = mk_sha256_new(),
    };
    _cleanup_(archive_read_freep) struct archive *raw = archive_read_new();
    _cleanup_(archive_read_freep) struct archive *tar = archive_read_new();
    if (!raw || !tar)
        MK_BUG("archive_read_new");
    ap.raw = raw;
    ap.tar = tar;
    int ret = -1;
    if (ls_read_filters(raw, LS_FILTERS_LAYER, err) < 0)
        goto out;
    archive_read_support_format_raw(raw);
    archive_read_support_format_tar(tar);
    struct archive_entry *e;
    if (archive_read_open_fd(raw, in_fd, 65536) != ARCHIVE_OK) {
        mk_error_set(err, MK_ERR_PARSE, 0, "malformed layer: %s",
                     archive_error_string(raw) ? archive_error_string(raw) : "error");
        goto out;
    }
    int r = archive_read_next_header(raw, &e);
    if (r < ARCHIVE_WARN) {
        mk_error_set(err, MK_ERR_PARSE, 0, "malformed layer: %s",
                     archive_error_string(raw) ? archive_error_string(raw) : "error");
        goto out;
    }
    if (archive_read_open(tar, &ap, NULL, read_cb, NULL) != ARCHIVE_OK) {
        tar_fail(&ap, "opening", err);
        goto out;
    }
    if (apply_all(&ap, err) < 0)
        goto out;
    mk_sha256_final(ap.hash, ret_diff_id);
    *ret_size = ap.size;
    ret = 0;
out:
    mk_sha256_free(ap.hash);
    mk_error_free(ap.cb_err);
    for (size_t i = 0; i < ap.ndirs; i++)
        free(ap.dirs[i].path);
    free(ap.dirs);
    return ret;
}
