/* layerstore/store.c - opening the store, its layout and its temp files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
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

/* ---- deferred durability ------------------------------------------------------------------
 *
 * A build makes a layer per step, and each used to cost a syncfs of the store's file system
 * (a snapshot's files must be on disk before it gets its name: from then on it is trusted).
 * In a window opened by layerstore_sync_defer, snapshots and layer blobs get their names
 * first and reach the disk with one syncfs before index.json names an image (index_save) or
 * the window ends. What makes that safe is the marker ROOT/unsynced/<name>, on disk before
 * the window's first write and removed only after its last syncfs, holding the boot id and
 * flock()ed by its owner:
 * - owner alive: nothing to do;
 * - owner gone, same boot (killed: its writes are in the page cache): syncfs, then the
 *   marker goes;
 * - another boot (a power cut or crash in the window): what the window wrote may be names
 *   without their bytes. Every blob, snapshot and cache record changed since the marker was
 *   made (ctime; a margin for clock steps) that index.json does not keep alive is removed,
 *   then the marker. A tagged image was synced before its tag, so it stays whole; the rest
 *   was cache.
 * The marker is made by the window's first write that skips a sync (ls_sync_deferred; a
 * build that writes nothing, a rebuild with nothing changed, syncs nothing), or before
 * threads that write start (layerstore_sync_begin). A forked helper writes in its owner's
 * window when it is open, else opens one of its own (layerstore_sync_adopt) and closes it
 * before it reports.
 * Markers are checked by layerstore_open under ROOT/lock, which window_open also holds
 * while it makes one, so no process of this boot is past its open while a marker of
 * another boot remains, and none of its objects is mistaken for the window's. */

#define UNSYNCED_MARGIN 600 /* seconds: what a clock step back may hide from ctime */

static int boot_id(char out[64])
{
    _cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, out, 63);
    if (n < 32)
        return -1;
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

struct unsynced {
    char now[64]; /* "" when unknown */
    struct mk_strv gone;
    time_t since;
    bool recover;
};

static int unsynced_marker(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)err;
    struct unsynced *u = ctx;
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
        return 0; /* its owner is alive */
    char id[64] = "";
    ssize_t n = fd >= 0 ? read(fd, id, sizeof(id) - 1) : -1;
    if (n > 0)
        id[n] = '\0';
    id[strcspn(id, "\n")] = '\0';
    struct stat st;
    if (!*u->now || strcmp(id, u->now) != 0) {
        time_t t = fd >= 0 && fstat(fd, &st) == 0 ? st.st_mtime : 0;
        u->since = !u->recover || t < u->since ? t : u->since;
        u->recover = true;
    }
    mk_strv_push(&u->gone, name);
    return 0;
}

/* With ROOT/lock held: settles the markers of owners that are gone (see above). */
static int check_unsynced(struct mk_store *store, struct mk_error **err)
{
    struct unsynced u = {.gone = MK_STRV_INIT};
    if (boot_id(u.now) < 0)
        u.now[0] = '\0';
    int r = ls_walk_dir(store, "unsynced", unsynced_marker, &u, err);
    if (r == 0 && u.recover &&
        ls_gc_recover_unsynced(store, u.since - UNSYNCED_MARGIN, NULL, err) < 0)
        r = mk_error_wrap(err, "removing what a build left unsynced when the system went down");
    if (r == 0 && u.gone.n && syncfs(store->root_fd) < 0)
        r = mk_error_errno(err, "syncing the store");
    for (size_t i = 0; r == 0 && i < u.gone.n; i++) {
        _cleanup_free_ char *rel = mk_xasprintf("unsynced/%s", u.gone.v[i]);
        unlinkat(store->root_fd, rel, 0);
    }
    mk_strv_release(&u.gone);
    return r;
}

static int window_open(struct mk_store *store, struct mk_error **err)
{
    char id[64];
    if (boot_id(id) < 0)
        return mk_error_set(err, MK_ERR_IO, 0, "no boot id");
    _cleanup_close_ int lock = ls_index_lock(store, err);
    if (lock < 0)
        return -1;
    if (mkdirat(store->root_fd, "unsynced", 0700) < 0 && errno != EEXIST)
        return mk_error_errno(err, "creating \"unsynced\"");
    _cleanup_close_ int dfd =
        openat(store->root_fd, "unsynced", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"unsynced\"");
    char rnd[16];
    unsigned long long x = 0;
    if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
        x = (unsigned long long)time(NULL);
    snprintf(rnd, sizeof(rnd), "%llx", x & 0xffffffffffULL);
    _cleanup_free_ char *name = mk_xasprintf("%d-%s", (int)getpid(), rnd);
    _cleanup_close_ int fd =
        openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return mk_error_errno(err, "creating \"unsynced/%s\"", name);
    _cleanup_free_ char *line = mk_xasprintf("%s\n", id);
    if (flock(fd, LOCK_EX) < 0 || mk_write_all(fd, line, strlen(line), err) < 0 || fsync(fd) < 0 ||
        mk_fsync_dir(dfd, err) < 0) {
        if (!err || !*err)
            mk_error_errno(err, "writing \"unsynced/%s\"", name);
        unlinkat(dfd, name, 0);
        return -1;
    }
    store->sync_fd = MK_TAKE_FD(fd);
    store->sync_marker = MK_TAKE_PTR(name);
    return 0;
}

int layerstore_sync_defer(struct mk_store *store, struct mk_error **err)
{
    (void)err;
    char id[64];
    if (store->sync_fd >= 0 || boot_id(id) < 0)
        return 0; /* open already, or no boot id to tell a power cut by: stay synced */
    store->sync_wanted = true;
    store->sync_owner = getpid();
    return 0;
}

bool ls_sync_deferred(struct mk_store *store)
{
    if (store->sync_fd >= 0)
        return true;
    if (!store->sync_wanted || store->sync_owner != getpid())
        return false;
    struct mk_error *e = NULL;
    if (window_open(store, &e) < 0) {
        mk_error_free(e);
        store->sync_wanted = false; /* synced writes from here on */
        return false;
    }
    return true;
}

void layerstore_sync_adopt(struct mk_store *store)
{
    if (store->sync_fd < 0 && store->sync_wanted)
        store->sync_owner = getpid();
}

int layerstore_sync_begin(struct mk_store *store, struct mk_error **err)
{
    if (store->sync_fd >= 0 || !store->sync_wanted || store->sync_owner != getpid())
        return 0;
    return window_open(store, err);
}

void ls_sync_keep(struct mk_store *store, struct ls_early_sync *s)
{
    store->kept = mk_xreallocarray(store->kept, store->n_kept + 1, sizeof(*store->kept));
    store->kept[store->n_kept++] = s;
}

/* Waits for the kept early syncfs; the first failure is reported. */
static int kept_join(struct mk_store *store, struct mk_error **err)
{
    int r = 0;
    for (size_t i = 0; i < store->n_kept; i++)
        if (ls_early_sync_join(store->kept[i], r < 0 ? NULL : err) < 0)
            r = -1;
    free(store->kept);
    store->kept = NULL;
    store->n_kept = 0;
    return r;
}

int ls_sync_flush(struct mk_store *store, struct mk_error **err)
{
    if (kept_join(store, err) < 0)
        return -1;
    if (store->sync_fd >= 0 && syncfs(store->root_fd) < 0)
        return mk_error_errno(err, "syncing the store \"%s\"", store->root);
    return 0;
}

int ls_sync_before_name(struct mk_store *store, struct mk_error **err)
{
    return store->sync_fd >= 0 ? ls_sync_flush(store, err) : ls_blobs_dir_sync(store, err);
}

int layerstore_sync_end(struct mk_store *store, struct mk_error **err)
{
    if (store->sync_owner == getpid())
        store->sync_wanted = false;
    if (store->sync_fd < 0 || store->sync_owner != getpid())
        return 0;
    /* A marker left behind (the syncfs failed) is handled by the next open. */
    if (ls_sync_flush(store, err) < 0)
        return -1;
    _cleanup_free_ char *rel = mk_xasprintf("unsynced/%s", store->sync_marker);
    unlinkat(store->root_fd, rel, 0);
    close(store->sync_fd);
    store->sync_fd = -1;
    free(store->sync_marker);
    store->sync_marker = NULL;
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
    {
        struct mk_store probe = {.root = (char *)root, .root_fd = fd, .gc_fd = -1, .sync_fd = -1};
        if (check_unsynced(&probe, err) < 0)
            return mk_error_wrap(err, "opening the store \"%s\"", root);
    }
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
    s->sync_fd = -1;
    pthread_mutex_init(&s->tmp_lock, NULL);
    *ret = s;
    return 0;
}

void layerstore_free(struct mk_store *store)
{
    if (!store)
        return;
    layerstore_sync_end(store, NULL);
    kept_join(store, NULL);
    if (store->sync_fd >= 0)
        close(store->sync_fd);
    free(store->sync_marker);
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
