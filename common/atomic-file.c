/* common/atomic-file.c - output files written under a temp name and renamed when complete. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/atomic-file.h"
#include "common/fsutil.h"

#define TMP_ATTEMPTS 16

/* Eight random characters: a name another user of the directory cannot guess ahead. */
static void random_suffix(char out[9])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[8];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0 && errno != EINTR)
            MK_BUG("getrandom failed");
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(r); i++)
        out[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
    out[8] = '\0';
}

void mk_atomic_file_release(struct mk_atomic_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp && f->dirfd >= 0)
        unlinkat(f->dirfd, f->tmp, 0);
    if (f->dirfd >= 0)
        close(f->dirfd);
    free(f->name);
    free(f->tmp);
    *f = (struct mk_atomic_file){.fd = -1, .dirfd = -1};
}

static bool is_stream(mode_t m)
{
    return S_ISCHR(m) || S_ISFIFO(m);
}

/* A device or FIFO at name (see atomic-file.h): opened for writing into f->fd. 1: it is one
 * (f->fd set), 0: it is not (or nothing is there), -1: it is one that cannot be opened. */
static int open_in_place(struct mk_atomic_file *f, const char *path, struct mk_error **err)
{
    struct stat st;
    if (fstatat(f->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    int flags = O_WRONLY | O_NOCTTY | O_CLOEXEC;
    if (S_ISLNK(st.st_mode)) {
        struct stat t;
        if ((st.st_uid != 0 && st.st_uid != geteuid()) || fstatat(f->dirfd, f->name, &t, 0) < 0 ||
            !is_stream(t.st_mode))
            return 0;
    } else if (is_stream(st.st_mode) || S_ISBLK(st.st_mode)) {
        flags |= O_NOFOLLOW;
    } else {
        return 0;
    }
    f->fd = openat(f->dirfd, f->name, flags);
    struct stat o;
    if (f->fd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    /* What was opened is what was looked at: a device or FIFO (a block device only by its
     * own name), not something swapped in meanwhile. */
    if (fstat(f->fd, &o) < 0 ||
        !(is_stream(o.st_mode) || (S_ISBLK(o.st_mode) && !S_ISLNK(st.st_mode))))
        return mk_error_set(err, MK_ERR_IO, 0, "\"%s\" changed while it was opened", path);
    f->in_place = true;
    return 1;
}

int mk_atomic_file_init(struct mk_atomic_file *f, int dirfd, const char *path, mode_t mode,
                        struct mk_error **err)
{
    *f = (struct mk_atomic_file){.fd = -1, .dirfd = -1};
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\" is not a file name", path);
    _cleanup_free_ char *parent = !slash          ? mk_xstrdup(".")
                                  : slash == path ? mk_xstrdup("/")
                                                  : mk_xstrndup(path, (size_t)(slash - path));
    f->dirfd = openat(dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0)
        return mk_error_errno(err, "opening directory \"%s\"", parent);
    f->name = mk_xstrdup(name);
    int r = open_in_place(f, path, err);
    if (r < 0)
        mk_atomic_file_release(f);
    if (r != 0)
        return r < 0 ? -1 : 0;
    for (int attempt = 0; attempt < TMP_ATTEMPTS; attempt++) {
        char rnd[9];
        random_suffix(rnd);
        /* The name part is cut so that the temp name stays within NAME_MAX. */
        char *tmp = mk_xasprintf(".%.200s.tmp.%d-%s", name, (int)getpid(), rnd);
        int fd = openat(f->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0) {
            f->fd = fd;
            f->tmp = tmp;
            return 0;
        }
        int saved = errno;
        free(tmp);
        if (saved != EEXIST) {
            mk_atomic_file_release(f);
            return mk_error_set(err, MK_ERR_IO, saved, "creating a temp file for \"%s\"", path);
        }
    }
    mk_atomic_file_release(f);
    return mk_error_set(err, MK_ERR_IO, EEXIST, "creating a temp file for \"%s\"", path);
}

/* Unsynced, over an existing regular file: the two names swapped (RENAME_EXCHANGE), then the
 * old file unlinked under the temp name. A plain rename over a file makes ext4 (auto_da_alloc,
 * its default) write the new file back before the rename returns: 1.6-3 s for a 1 GiB archive
 * on a loop fs, the flush an unsynced export leaves out. 0: done; -1: use a plain rename (no
 * target, not a regular file, or a file system without the exchange). */
static int exchange_over(struct mk_atomic_file *f)
{
    struct stat st;
    if (fstatat(f->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return -1;
    if (renameat2(f->dirfd, f->tmp, f->dirfd, f->name, RENAME_EXCHANGE) < 0)
        return -1;
    unlinkat(f->dirfd, f->tmp, 0); /* the old file; if this fails, prune removes it */
    return 0;
}

/* fsync (when sync) and rename; the temp file is gone afterwards either way. */
static int commit(struct mk_atomic_file *f, bool sync, struct mk_error **err)
{
    if (f->in_place)
        return 0;
    if (!f->tmp)
        MK_BUG("committing an atomic file without a temp file");
    int saved = 0;
    const char *what = NULL;
    if (sync && fsync(f->fd) < 0)
        saved = errno, what = "writing";
    else if ((sync || exchange_over(f) < 0) && renameat(f->dirfd, f->tmp, f->dirfd, f->name) < 0)
        saved = errno, what = "renaming into";
    if (what)
        unlinkat(f->dirfd, f->tmp, 0);
    free(f->tmp);
    f->tmp = NULL;
    return what ? mk_error_set(err, MK_ERR_IO, saved, "%s \"%s\"", what, f->name) : 0;
}

int mk_atomic_file_commit(struct mk_atomic_file *f, struct mk_error **err)
{
    if (commit(f, true, err) < 0)
        return -1;
    return f->in_place ? 0 : mk_fsync_dir(f->dirfd, err);
}

int mk_atomic_file_commit_unsynced(struct mk_atomic_file *f, struct mk_error **err)
{
    return commit(f, false, err);
}

int mk_write_file_atomic(int dirfd, const char *path, const void *data, size_t len, mode_t mode,
                         struct mk_error **err)
{
    _cleanup_(mk_atomic_file_release) struct mk_atomic_file f = {.fd = -1, .dirfd = -1};
    if (mk_atomic_file_init(&f, dirfd, path, mode, err) < 0)
        return -1;
    if (mk_write_all(f.fd, data, len, err) < 0 || mk_atomic_file_commit(&f, err) < 0)
        return mk_error_wrap(err, "writing \"%s\"", path);
    return 0;
}
