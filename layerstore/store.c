/* layerstore/store.c - opening the store, its layout and its temp files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

static const char oci_layout_json[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
static const char empty_index_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" MK_MEDIA_OCI_INDEX "\",\"manifests\":[]}";

char *layerstore_default_root(void)
{
    if (geteuid() == 0)
        return mk_xstrdup("/var/lib/mkimg");
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && xdg[0] == '/')
        return mk_xasprintf("%s/mkimg", xdg);
    const char *home = getenv("HOME");
    return mk_xasprintf("%s/.local/share/mkimg", home && *home ? home : "/tmp");
}

const char *layerstore_root(const struct mk_store *store)
{
    return store->root;
}

static int create_if_missing(int dirfd, const char *name, const char *content,
                             struct mk_error **err)
{
    if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (errno != ENOENT)
        return mk_error_errno(err, "checking \"%s\"", name);
    return mk_write_file_atomic(dirfd, name, content, strlen(content), 0644, err);
}

static int remove_stale_tmp(int root_fd, struct mk_error **err)
{
    _cleanup_close_ int tmpfd = openat(root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tmpfd < 0)
        return mk_error_errno(err, "opening \"tmp\"");
    int dupfd = dup(tmpfd);
    if (dupfd < 0)
        return mk_error_errno(err, "dup");
    _cleanup_closedir_ DIR *d = fdopendir(dupfd);
    if (!d) {
        close(dupfd);
        return mk_error_errno(err, "reading \"tmp\"");
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_close_ int fd =
            openat(tmpfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        /* An entry whose lock is free has no owner left. It is removed while we hold the
         * lock, so an owner that created it but has not locked it yet sees nlink == 0 once
         * it gets the lock, and starts over. */
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
            continue;
        if (mk_rm_rf_at(tmpfd, de->d_name, err) < 0)
            return mk_error_wrap(err, "removing a stale temp entry");
    }
    return 0;
}

int layerstore_open(const char *root, struct mk_store **ret, struct mk_error **err)
{
    if (!root || !*root)
        return mk_error_set(err, MK_ERR_INVALID, 0, "empty store root");
    if (mk_mkdir_p(root, 0700, err) < 0)
        return mk_error_wrap(err, "creating the store \"%s\"", root);
    _cleanup_close_ int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening the store \"%s\"", root);
    static const char *const dirs[] = {"blobs", "blobs/sha256", "snapshots", "tmp"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(dirs); i++)
        if (mkdirat(fd, dirs[i], 0700) < 0 && errno != EEXIST)
            return mk_error_errno(err, "creating \"%s/%s\"", root, dirs[i]);
    _cleanup_close_ int lockfd = openat(fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0)
        return mk_error_errno(err, "creating \"%s/lock\"", root);
    /* Layout files are created under the lock so two first opens do not race. */
    if (flock(lockfd, LOCK_EX) < 0)
        return mk_error_errno(err, "locking \"%s/lock\"", root);
    if (create_if_missing(fd, "oci-layout", oci_layout_json, err) < 0 ||
        create_if_missing(fd, "index.json", empty_index_json, err) < 0)
        return mk_error_wrap(err, "initializing the store \"%s\"", root);
    if (remove_stale_tmp(fd, err) < 0)
        return mk_error_wrap(err, "opening the store \"%s\"", root);
    _cleanup_close_ int gcfd = openat(fd, "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (gcfd < 0)
        return mk_error_errno(err, "creating \"%s/gc.lock\"", root);
    /* Taken after the layout lock is dropped, so an open never waits for a prune while
     * holding the lock every tag update needs. */
    flock(lockfd, LOCK_UN);
    while (flock(gcfd, LOCK_SH) < 0) {
        if (errno == EINTR && !mk_interrupted)
            continue;
        return mk_error_errno(err, "locking \"%s/gc.lock\"", root);
    }
    struct mk_store *s = mk_xcalloc(1, sizeof(*s));
    s->gc_fd = MK_TAKE_FD(gcfd);
    s->root = mk_xstrdup(root);
    s->root_fd = MK_TAKE_FD(fd);
    pthread_mutex_init(&s->tmp_lock, NULL);
    *ret = s;
    return 0;
}

void layerstore_free(struct mk_store *store)
{
    if (!store)
        return;
    for (size_t i = 0; i < store->tmp_paths.n; i++)
        if (store->tmp_fds[i] >= 0)
            close(store->tmp_fds[i]);
    free(store->tmp_fds);
    mk_strv_release(&store->tmp_paths);
    pthread_mutex_destroy(&store->tmp_lock);
    if (store->root_fd >= 0)
        close(store->root_fd);
    if (store->gc_fd >= 0)
        close(store->gc_fd);
    free(store->root);
    free(store);
}

/* Locks a freshly created tmp entry: 1 when locked, 0 when a concurrent layerstore_open
 * took it for stale and removed it before we got the lock (create another), -1 on error. */
static int lock_new_entry(const char *path, int flags, int *ret_fd, struct mk_error **err)
{
    _cleanup_close_ int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return mk_error_errno(err, "opening \"%s\"", path);
    }
    if (flock(fd, LOCK_EX) < 0)
        return mk_error_errno(err, "locking \"%s\"", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mk_error_errno(err, "stat \"%s\"", path);
    if (st.st_nlink == 0)
        return 0;
    *ret_fd = MK_TAKE_FD(fd);
    return 1;
}

char *layerstore_tmpdir(struct mk_store *store, const char *prefix, struct mk_error **err)
{
    _cleanup_free_ char *parent = mk_xasprintf("%s/tmp", store->root);
    for (int attempt = 0; attempt < 16; attempt++) {
        _cleanup_free_ char *path = mk_mkdtemp_in(parent, prefix, err);
        if (!path)
            return NULL;
        int fd = -1;
        int r = lock_new_entry(path, O_RDONLY | O_DIRECTORY, &fd, err);
        if (r < 0) {
            rmdir(path);
            return NULL;
        }
        if (r == 0)
            continue;
        pthread_mutex_lock(&store->tmp_lock);
        mk_strv_push(&store->tmp_paths, path);
        store->tmp_fds = mk_xreallocarray(store->tmp_fds, store->tmp_paths.n, sizeof(int));
        store->tmp_fds[store->tmp_paths.n - 1] = fd;
        pthread_mutex_unlock(&store->tmp_lock);
        return MK_TAKE_PTR(path);
    }
    mk_error_set(err, MK_ERR_IO, 0, "could not create a temp dir in \"%s\"", parent);
    return NULL;
}

void ls_tmpdir_forget(struct mk_store *store, const char *path)
{
    pthread_mutex_lock(&store->tmp_lock);
    for (size_t i = 0; i < store->tmp_paths.n; i++) {
        if (strcmp(store->tmp_paths.v[i], path) != 0)
            continue;
        if (store->tmp_fds[i] >= 0)
            close(store->tmp_fds[i]);
        free(store->tmp_paths.v[i]);
        size_t rest = store->tmp_paths.n - i - 1;
        memmove(&store->tmp_paths.v[i], &store->tmp_paths.v[i + 1], (rest + 1) * sizeof(char *));
        memmove(&store->tmp_fds[i], &store->tmp_fds[i + 1], rest * sizeof(int));
        store->tmp_paths.n--;
        break;
    }
    pthread_mutex_unlock(&store->tmp_lock);
}

int layerstore_tmpdir_remove(struct mk_store *store, const char *path, struct mk_error **err)
{
    /* Removed before the lock goes, so nobody else ever deletes a live dir under us. */
    int r = mk_rm_rf(path, err);
    ls_tmpdir_forget(store, path);
    return r;
}

int ls_tmpfile(struct mk_store *store, char **ret_path, struct mk_error **err)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        _cleanup_free_ char *path = mk_xasprintf("%s/tmp/blob-XXXXXX", store->root);
        _cleanup_close_ int fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
            return mk_error_errno(err, "creating a temp file in \"%s/tmp\"", store->root);
        if (flock(fd, LOCK_EX) < 0) {
            unlink(path);
            return mk_error_errno(err, "locking \"%s\"", path);
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
            unlink(path);
            return mk_error_errno(err, "stat \"%s\"", path);
        }
        if (st.st_nlink == 0)
            continue;
        *ret_path = MK_TAKE_PTR(path);
        return MK_TAKE_FD(fd);
    }
    return mk_error_set(err, MK_ERR_IO, 0, "could not create a temp file in \"%s/tmp\"",
                        store->root);
}

bool ls_rootless(void)
{
    char *map = NULL;
    size_t len = 0;
    if (mk_read_file_at(AT_FDCWD, "/proc/self/uid_map", 4096, &map, &len, NULL) < 0)
        return geteuid() != 0;
    unsigned long inside, outside, count;
    int n = 0;
    bool identity = sscanf(map, "%lu %lu %lu %n", &inside, &outside, &count, &n) == 3 &&
                    inside == 0 && outside == 0 && count == 4294967295UL && map[n] == '\0';
    free(map);
    return !identity || geteuid() != 0;
}
