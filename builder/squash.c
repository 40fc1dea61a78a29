/* builder/squash.c - `build --squash`: merges the snapshots of the layers a build added into
 * one overlay-format upper directory, the diff of all of them against the base.
 *
 * Snapshots are applied bottom to top with overlay's rules: an entry replaces what a lower
 * layer had at its path, a whiteout removes it (and stays, since it may delete a base file),
 * an opaque directory drops the lower layers' contents (and stays opaque). Files are
 * hard-linked from the snapshots (which are never written to), not copied.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

#define SQUASH_MAX_DEPTH 4096

static void rel_cut(struct mk_buf *rel, size_t len)
{
    rel->len = len;
    rel->data[len] = '\0';
}

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool is_overlay_xattr(const char *name)
{
    return mk_str_has_prefix(name, "trusted.overlay.") || mk_str_has_prefix(name, "user.overlay.");
}

static bool dir_is_opaque(int fd)
{
    char v[4];
    ssize_t n = fgetxattr(fd, "user.overlay.opaque", v, sizeof(v));
    if (n < 0)
        n = fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v));
    return n == 1 && v[0] == 'y';
}

/* The directory's mode, owner and xattrs (but overlay's own) from src to dst. */
static int copy_dir_meta(int sfd, int dfd, const struct stat *st, bool opaque, const char *rel,
                         struct mk_error **err)
{
    if (fchown(dfd, st->st_uid, st->st_gid) < 0 || fchmod(dfd, st->st_mode & 07777) < 0)
        return mk_error_errno(err, "setting the owner and mode of \"%s\"", rel);
    char names[8192];
    ssize_t len = flistxattr(sfd, names, sizeof(names));
    for (ssize_t off = 0; len > 0 && off < len; off += (ssize_t)strlen(names + off) + 1) {
        const char *name = names + off;
        if (is_overlay_xattr(name))
            continue;
        char value[4096];
        ssize_t vn = fgetxattr(sfd, name, value, sizeof(value));
        if (vn >= 0 && fsetxattr(dfd, name, value, (size_t)vn, 0) < 0 && errno != EPERM &&
            errno != ENOTSUP)
            return mk_error_errno(err, "copying xattr %s of \"%s\"", name, rel);
    }
    if (opaque && fsetxattr(dfd, "user.overlay.opaque", "y", 1, 0) < 0)
        return mk_error_errno(err, "marking \"%s\" opaque", rel);
    return 0;
}

/* A non-directory entry: a hard link to the snapshot's inode, or a fresh copy of a node
 * that cannot be linked (a whiteout is made anew: its owner does not matter). */
static int put_entry(int sdir, int ddir, const char *name, const struct stat *st, const char *rel,
                     struct mk_error **err)
{
    if (is_whiteout(st)) {
        if (mknodat(ddir, name, S_IFCHR | 0, makedev(0, 0)) < 0)
            return mk_error_errno(err, "creating the whiteout \"%s\"", rel);
        return 0;
    }
    if (linkat(sdir, name, ddir, name, 0) == 0)
        return 0;
    return mk_error_errno(err, "linking \"%s\" into the squashed layer", rel);
}

static int merge_dir(int sdir, int ddir, struct mk_buf *rel, unsigned depth, struct mk_error **err)
{
    if (depth > SQUASH_MAX_DEPTH)
        return mk_error_set_at(err, MK_ERR_INVALID, rel->data, "directory tree too deep");
    int dup = fcntl(sdir, F_DUPFD_CLOEXEC, 3);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        if (dup >= 0)
            close(dup);
        return mk_error_errno(err, "reading \"%s\"", rel->data);
    }
    int ret = 0;
    size_t rlen = rel->len;
    struct dirent *de;
    while (ret == 0 && (errno = 0, de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        rel_cut(rel, rlen);
        mk_buf_addf(rel, "/%s", name);
        struct stat st, dst;
        if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            ret = mk_error_errno(err, "reading \"%s\"", rel->data);
            break;
        }
        bool exists = fstatat(ddir, name, &dst, AT_SYMLINK_NOFOLLOW) == 0;
        if (!S_ISDIR(st.st_mode)) {
            if (exists && mk_rm_rf_at(ddir, name, err) < 0)
                ret = -1;
            else
                ret = put_entry(sdir, ddir, name, &st, rel->data, err);
            continue;
        }
        _cleanup_close_ int sfd =
            openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0) {
            ret = mk_error_errno(err, "opening \"%s\"", rel->data);
            break;
        }
        bool opaque = dir_is_opaque(sfd);
        if (exists && (!S_ISDIR(dst.st_mode) || opaque)) {
            if (mk_rm_rf_at(ddir, name, err) < 0) {
                ret = -1;
                break;
            }
            exists = false;
        }
        if (!exists && mkdirat(ddir, name, 0700) < 0) {
            ret = mk_error_errno(err, "creating \"%s\"", rel->data);
            break;
        }
        _cleanup_close_ int dfd =
            openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) {
            ret = mk_error_errno(err, "opening \"%s\"", rel->data);
            break;
        }
        if (copy_dir_meta(sfd, dfd, &st, opaque, rel->data, err) < 0 ||
            merge_dir(sfd, dfd, rel, depth + 1, err) < 0) {
            ret = -1;
            break;
        }
        const struct timespec ts[2] = {st.st_atim, st.st_mtim};
        futimens(dfd, ts);
    }
    if (ret == 0 && errno != 0)
        ret = mk_error_errno(err, "reading \"%s\"", rel->data);
    closedir(d);
    rel_cut(rel, rlen);
    return ret;
}

int builder_squash_snapshots(const struct mk_strv *snapshots, const char *dest,
                             struct mk_error **err)
{
    _cleanup_close_ int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", dest);
    for (size_t i = 0; i < snapshots->n; i++) {
        _cleanup_close_ int sfd = open(snapshots->v[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd < 0)
            return mk_error_errno(err, "opening the snapshot \"%s\"", snapshots->v[i]);
        struct stat st;
        struct mk_buf rel = MK_BUF_INIT;
        mk_buf_adds(&rel, "/");
        rel_cut(&rel, 0);
        int r = fstat(sfd, &st) < 0 ? mk_error_errno(err, "reading \"%s\"", snapshots->v[i])
                                    : copy_dir_meta(sfd, dfd, &st, false, "/", err);
        if (r == 0)
            r = merge_dir(sfd, dfd, &rel, 0, err);
        mk_buf_release(&rel);
        if (r < 0)
            return -1;
        const struct timespec ts[2] = {st.st_atim, st.st_mtim};
        futimens(dfd, ts);
    }
    return 0;
}

/* Overlay stacks at most 500 lower directories (and the old mount API fewer). A list longer
 * than this keeps its top half and has the rest merged into one directory under ROOT/flat,
 * named by the dirs it merges (snapshot paths are content-addressed, so is the merge). With
 * half the room left, a growing stage merges again only every MAX/2 layers. */
#define MAX_LOWERDIRS 200

int builder_fit_lowerdirs(struct mk_store *store, struct mk_strv *lowerdirs, struct mk_error **err)
{
    if (lowerdirs->n <= MAX_LOWERDIRS)
        return 0;
    size_t keep = MAX_LOWERDIRS / 2;
    _cleanup_(mk_strv_release) struct mk_strv bottom = MK_STRV_INIT;
    struct mk_sha256 *h = mk_sha256_new();
    /* Named by the snapshots' names (chain IDs), not their paths: a step key that names a
     * flat dir means the same in every store (docs/remote-cache.md). */
    mk_sha256_update(h, "mkimg-flat-v2\n", 14);
    for (size_t i = lowerdirs->n; i-- > keep;) {
        mk_strv_push(&bottom, lowerdirs->v[i]);
        const char *name = strrchr(lowerdirs->v[i], '/');
        name = name ? name + 1 : lowerdirs->v[i];
        mk_sha256_update(h, name, strlen(name) + 1);
    }
    char d[MK_DIGEST_SIZE];
    mk_sha256_final(h, d);
    mk_sha256_free(h);
    _cleanup_free_ char *path = layerstore_flat_path(store, mk_digest_hex(d), err);
    if (!path)
        return -1;
    struct stat st;
    if (stat(path, &st) < 0) {
        struct mk_workspace ws;
        if (builder_workspace_new(store, "flat-", &ws, err) < 0)
            return -1;
        int r = builder_squash_snapshots(&bottom, ws.upper, err);
        /* Later builds trust a flat dir found under its name, so it must be on disk before
         * it gets that name (one syncfs, as for snapshots: its files are hard links, what
         * is new is directories and links). */
        if (r == 0) {
            _cleanup_close_ int fd = open(ws.upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0 || syncfs(fd) < 0)
                r = mk_error_errno(err, "syncing \"%s\"", ws.upper);
        }
        /* Another build may have made the same one meanwhile: then ours just goes. */
        if (r == 0 && rename(ws.upper, path) < 0 && errno != EEXIST && errno != ENOTEMPTY)
            r = mk_error_errno(err, "installing \"%s\"", path);
        builder_workspace_release(store, &ws);
        if (r < 0)
            return mk_error_wrap(err, "merging the bottom %zu layers", bottom.n);
    }
    struct mk_strv fitted = MK_STRV_INIT;
    for (size_t i = 0; i < keep; i++)
        mk_strv_push(&fitted, lowerdirs->v[i]);
    mk_strv_push(&fitted, path);
    mk_strv_release(lowerdirs);
    *lowerdirs = fitted;
    return 0;
}

int builder_image_lowerdirs(struct mk_store *store, const struct mk_image *img, struct mk_strv *ret,
                            struct mk_error **err)
{
    if (layerstore_image_snapshots(store, img, ret, err) < 0)
        return -1;
    return builder_fit_lowerdirs(store, ret, err);
}
