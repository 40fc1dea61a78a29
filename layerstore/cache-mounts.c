/* layerstore/cache-mounts.c - RUN --mount=type=cache directories as store objects.
 *
 * ROOT/cache/mounts/<id hex>[-N]/ holds "lock" (flock()ed by each user of the mount) and
 * "data/" (what is mounted). One directory per mount, so prune removes a mount as a whole
 * (renamed away first, like a snapshot) and its use time (ctime, see ls_mark_used) and size
 * are those of one tree. Prune and fsck --repair hold the gc lock exclusively, so no build
 * holds a mount's lock while they look at it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

/* Instances of a sharing=private mount: the first one and as many more (BuildKit makes a
 * new one per concurrent user; a bound keeps a runaway loop from filling the disk). */
#define PRIVATE_INSTANCES 16u

bool ls_cache_mount_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 64)
        return ls_is_hex64(name);
    if (len < 66 || len > 67 || name[64] != '-')
        return false;
    _cleanup_free_ char *hex = mk_xstrndup(name, 64);
    int k;
    return ls_is_hex64(hex) && name[65] != '0' && mk_parse_int(name + 65, &k) == 0 && k >= 1 &&
           k <= (int)PRIVATE_INSTANCES;
}

char *ls_cache_mount_check(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return mk_xasprintf("cannot be read: %s", strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mk_xstrdup("is not a directory");
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int dup_fd = fd >= 0 ? dup(fd) : -1;
    _cleanup_closedir_ DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return mk_xasprintf("cannot be read: %s", strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        bool lock = strcmp(n, "lock") == 0, data = strcmp(n, "data") == 0;
        if (!lock && !data)
            return mk_xasprintf("has a stray entry \"%s\"", n);
        if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return mk_xasprintf("\"%s\" cannot be read: %s", n, strerror(errno));
        if (lock && !S_ISREG(st.st_mode))
            return mk_xstrdup("\"lock\" is not a regular file");
        if (data && !S_ISDIR(st.st_mode))
            return mk_xstrdup("\"data\" is not a directory");
    }
    return NULL;
}

/* Locks one instance: 1 when locked (*ret_fd), 0 when nonblock and it is in use. */
static int lock_instance(int mfd, const char *name, int how, bool nonblock, int *ret_fd,
                         struct mk_error **err)
{
    if (mkdirat(mfd, name, 0755) < 0 && errno != EEXIST)
        return mk_error_errno(err, "creating the cache mount \"%s\"", name);
    _cleanup_free_ char *rel = mk_xasprintf("%s/lock", name);
    _cleanup_close_ int fd = openat(mfd, rel, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return mk_error_errno(err, "locking the cache mount \"%s\"", name);
    while (flock(fd, how | (nonblock ? LOCK_NB : 0)) < 0) {
        if (errno == EINTR && !mk_interrupted)
            continue;
        if (errno == EWOULDBLOCK)
            return 0;
        return mk_error_set(err, errno == EINTR ? MK_ERR_INTERRUPTED : MK_ERR_IO, errno,
                            "locking the cache mount \"%s\"", name);
    }
    *ret_fd = MK_TAKE_FD(fd);
    return 1;
}

int layerstore_cache_mount_lock(struct mk_store *store, const char *id,
                                enum mk_cache_sharing sharing, char **ret_dir,
                                struct mk_error **err)
{
    if (!mk_digest_valid(id))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid cache mount id \"%s\"", id);
    _cleanup_free_ char *dir = mk_xasprintf("%s/cache/" LS_CACHE_MOUNTS_DIR, store->root);
    if (mk_mkdir_p(dir, 0755, err) < 0)
        return -1;
    _cleanup_close_ int mfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    int how = sharing == MK_CACHE_SHARED ? LOCK_SH : LOCK_EX;
    unsigned last = sharing == MK_CACHE_PRIVATE ? PRIVATE_INSTANCES : 0;
    for (unsigned k = 0; k <= last; k++) {
        _cleanup_free_ char *name =
            k ? mk_xasprintf("%s-%u", mk_digest_hex(id), k) : mk_xstrdup(mk_digest_hex(id));
        int fd = -1;
        /* private: an instance in use is skipped; with all in use, wait for the last. */
        int r = lock_instance(mfd, name, how, sharing == MK_CACHE_PRIVATE && k < last, &fd, err);
        if (r < 0)
            return -1;
        if (r == 0)
            continue;
        ls_mark_used_at(mfd, name);
        *ret_dir = mk_xasprintf("%s/%s/data", dir, name);
        return fd;
    }
    MK_BUG("the last private instance is waited for");
}
