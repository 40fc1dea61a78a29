/* layerstore/extract.c - unpacks a local tar archive (ADD's auto-extraction) into a directory
 * of an image root.
 *
 * Unlike ls_tar_apply this writes into a populated tree, not an empty lowerdir: whiteouts are
 * ordinary files here, existing directories are kept and other existing entries replaced.
 * Every path is resolved below the root fd with RESOLVE_IN_ROOT (common/fsutil.h) and ".."
 * is refused, so neither an entry nor a symlink the archive (or the image) holds can make the
 * extraction write outside the root. Compression is detected from content.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/util.h"
#include "layerstore/internal.h"
#include "layerstore/layerstore.h"

MK_DEFINE_CLEANUP(struct archive, archive_read_free)

#define EXTRACT_MAX_ENTRIES 1000000ULL
#define EXTRACT_MAX_BYTES (64ULL << 30)
#define EXTRACT_MAX_PATH 4096

struct extractor {
    struct archive *a;
    int rootfd;
    const char *dest;
    const struct layerstore_extract_opts *opts;
    uint64_t written;
    struct mk_strv dirs; /* directories whose mode and mtime are set at the end */
    struct mk_strv dir_meta;
};

static int ar_fail(struct extractor *x, const char *what, struct mk_error **err)
{
    const char *why = archive_error_string(x->a);
    return mk_error_set(err, MK_ERR_PARSE, 0, "malformed archive: %s: %s", what,
                        why ? why : "error");
}

/* "dest/<entry>" with the entry's "." components dropped; NULL (err set) for "..". */
static char *entry_path(const char *dest, const char *raw, struct mk_error **err)
{
    if (!raw || strlen(raw) > EXTRACT_MAX_PATH) {
        mk_error_set(err, MK_ERR_INVALID, 0, "archive entry without a name or too long");
        return NULL;
    }
    _cleanup_free_ char *copy = mk_xstrdup(raw);
    struct mk_buf out = MK_BUF_INIT;
    mk_buf_adds(&out, dest);
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, "..") == 0) {
            mk_error_set(err, MK_ERR_INVALID, 0, "archive entry \"%s\" leaves its directory", raw);
            mk_buf_release(&out);
            return NULL;
        }
        if (strcmp(c, ".") == 0)
            continue;
        if (out.len == 0 || out.data[out.len - 1] != '/')
            mk_buf_addc(&out, '/');
        mk_buf_adds(&out, c);
    }
    return mk_buf_detach(&out);
}

static int set_owner(struct extractor *x, int pfd, const char *name, struct archive_entry *e,
                     const char *path, struct mk_error **err)
{
    uid_t uid = x->opts->chown ? x->opts->uid : (uid_t)archive_entry_uid(e);
    gid_t gid = x->opts->chown ? x->opts->gid : (gid_t)archive_entry_gid(e);
    /* EINVAL: an id outside the build's user namespace; the entry keeps the build's owner. */
    if (fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL)
        return mk_error_errno(err, "changing the owner of \"%s\"", path);
    return 0;
}

/* As BuildKit's unpack (go-archive with BestEffortXattrs): the kernel may refuse any. */
static bool ignore_any(int errnum, const char *xname, const void *arg)
{
    (void)errnum;
    (void)xname;
    (void)arg;
    return true;
}

/* The entry's SCHILY.xattr.* values. After the owner: chown clears security.capability. */
static int set_xattrs(int pfd, const char *name, struct archive_entry *e, const char *path,
                      struct mk_error **err)
{
    return ls_entry_set_xattrs(pfd, name, path, e, ignore_any, NULL, err);
}

/* Entry sizes are checked against the cap before writing; libarchive writes sparse entries
 * with holes, never more than the declared size. */
static int write_data(struct extractor *x, int pfd, const char *name, struct archive_entry *e,
                      const char *path, struct mk_error **err)
{
    la_int64_t size = archive_entry_size(e);
    if (size < 0 || (uint64_t)size > EXTRACT_MAX_BYTES - x->written)
        return mk_error_set(err, MK_ERR_INVALID, 0, "archive unpacks to more than %llu bytes",
                            (unsigned long long)EXTRACT_MAX_BYTES);
    x->written += (uint64_t)size;
    _cleanup_close_ int fd =
        openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return mk_error_errno(err, "creating \"%s\"", path);
    if (archive_read_data_into_fd(x->a, fd) < ARCHIVE_WARN)
        return ar_fail(x, path, err);
    return 0;
}

static int extract_entry(struct extractor *x, struct archive_entry *e, struct mk_error **err)
{
    _cleanup_free_ char *path = entry_path(x->dest, archive_entry_pathname(e), err);
    if (!path)
        return -1;
    mode_t type = archive_entry_filetype(e);
    mode_t mode = archive_entry_perm(e) & 07777;
    if (strcmp(path, x->dest) == 0 || strcmp(path, "/") == 0)
        return 0; /* "./": the destination directory itself stays as it is */
    _cleanup_free_ char *name = NULL;
    _cleanup_close_ int pfd = mk_open_parent_in_root(x->rootfd, path, true, &name, err);
    if (pfd < 0)
        return mk_error_wrap(err, "extracting \"%s\"", path);
    struct stat st;
    bool exists = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    bool keep_dir = exists && S_ISDIR(st.st_mode) && type == AE_IFDIR && !archive_entry_hardlink(e);
    if (exists && !keep_dir && mk_rm_rf_at(pfd, name, err) < 0)
        return -1;

    const char *link = archive_entry_hardlink(e);
    if (link) {
        _cleanup_free_ char *target = entry_path(x->dest, link, err);
        if (!target)
            return -1;
        _cleanup_free_ char *tname = NULL;
        _cleanup_close_ int tpfd = mk_open_parent_in_root(x->rootfd, target, false, &tname, err);
        if (tpfd < 0 || linkat(tpfd, tname, pfd, name, 0) < 0)
            return mk_error_set(err, MK_ERR_INVALID, errno, "hardlink \"%s\" to \"%s\"", path,
                                link);
        return 0;
    }
    switch (type) {
    case AE_IFDIR:
        if (!keep_dir && mkdirat(pfd, name, 0700) < 0)
            return mk_error_errno(err, "creating directory \"%s\"", path);
        if (set_owner(x, pfd, name, e, path, err) < 0 || set_xattrs(pfd, name, e, path, err) < 0)
            return -1;
        /* Mode and mtime once the contents are in (a 0555 dir must still take them). */
        mk_strv_push(&x->dirs, path);
        mk_strv_push_take(&x->dir_meta, mk_xasprintf("%o %lld", (unsigned)mode,
                                                     (long long)archive_entry_mtime(e)));
        return 0;
    case AE_IFREG:
        if (write_data(x, pfd, name, e, path, err) < 0)
            return -1;
        break;
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (!target || strlen(target) > EXTRACT_MAX_PATH)
            return mk_error_set(err, MK_ERR_INVALID, 0, "symlink \"%s\": bad target", path);
        if (symlinkat(target, pfd, name) < 0)
            return mk_error_errno(err, "creating symlink \"%s\"", path);
        return set_owner(x, pfd, name, e, path, err);
    }
    case AE_IFIFO:
        if (mknodat(pfd, name, S_IFIFO | 0600, 0) < 0)
            return mk_error_errno(err, "creating fifo \"%s\"", path);
        break;
    default:
        return 0; /* devices and sockets: not created in a rootless build */
    }
    if (set_owner(x, pfd, name, e, path, err) < 0)
        return -1;
    if (fchmodat(pfd, name, mode, 0) < 0)
        return mk_error_errno(err, "changing the mode of \"%s\"", path);
    if (set_xattrs(pfd, name, e, path, err) < 0)
        return -1;
    struct timespec ts[2] = {{0, UTIME_OMIT}, {archive_entry_mtime(e), 0}};
    utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
    return 0;
}

static int finish_dirs(struct extractor *x, struct mk_error **err)
{
    for (size_t i = x->dirs.n; i-- > 0;) {
        unsigned mode = 0755;
        long long mtime = 0;
        if (sscanf(x->dir_meta.v[i], "%o %lld", &mode, &mtime) != 2)
            continue;
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int pfd =
            mk_open_parent_in_root(x->rootfd, x->dirs.v[i], false, &name, NULL);
        struct stat st;
        if (pfd < 0 || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (fchmodat(pfd, name, (mode_t)mode, 0) < 0)
            return mk_error_errno(err, "changing the mode of \"%s\"", x->dirs.v[i]);
        struct timespec ts[2] = {{0, UTIME_OMIT}, {(time_t)mtime, 0}};
        utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
    }
    return 0;
}

int layerstore_extract(int in_fd, int rootfd, const char *dest,
                       const struct layerstore_extract_opts *opts, bool *ret_extracted,
                       struct mk_error **err)
{
    static const struct layerstore_extract_opts no_opts;
    _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
    if (!a)
        MK_BUG("archive_read_new");
    if (ls_read_filters(
            a, LS_FILTER_GZIP | LS_FILTER_BZIP2 | LS_FILTER_XZ | LS_FILTER_LZMA | LS_FILTER_ZSTD,
            err) < 0)
        return -1;
    archive_read_support_format_tar(a);
    struct extractor x = {.a = a,
                          .rootfd = rootfd,
                          .dest = dest,
                          .opts = opts ? opts : &no_opts,
                          .dirs = MK_STRV_INIT,
                          .dir_meta = MK_STRV_INIT};
    struct archive_entry *e;
    /* Not an archive (or an empty one): the caller copies the file as it is. */
    if (archive_read_open_fd(a, in_fd, 65536) != ARCHIVE_OK ||
        archive_read_next_header(a, &e) != ARCHIVE_OK) {
        *ret_extracted = false;
        return 0;
    }
    int r = 0;
    if (x.opts->make_dest && x.opts->make_dest(rootfd, dest, x.opts->make_dest_arg, err) < 0)
        r = -1;
    uint64_t entries = 0;
    for (; r == 0;) {
        if (++entries > EXTRACT_MAX_ENTRIES) {
            r = mk_error_set(err, MK_ERR_INVALID, 0, "archive has more than %llu entries",
                             (unsigned long long)EXTRACT_MAX_ENTRIES);
            break;
        }
        if (mk_interrupted) {
            r = mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
            break;
        }
        if ((r = extract_entry(&x, e, err)) < 0)
            break;
        int h = archive_read_next_header(a, &e);
        if (h == ARCHIVE_EOF)
            break;
        if (h < ARCHIVE_WARN) {
            r = ar_fail(&x, "reading an entry header", err);
            break;
        }
    }
    if (r == 0)
        r = finish_dirs(&x, err);
    mk_strv_release(&x.dirs);
    mk_strv_release(&x.dir_meta);
    if (r == 0)
        *ret_extracted = true;
    return r;
}
