/* layerstore/snapshot.c - unpacked layers (ROOT/snapshots/<chain hex>) and layer commits. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

char *layerstore_snapshot_path(struct mk_store *store, const char *chain_id)
{
    if (!mk_digest_valid(chain_id))
        return NULL;
    return mk_xasprintf("%s/snapshots/%s", store->root, mk_digest_hex(chain_id));
}

char *layerstore_flat_path(struct mk_store *store, const char *hex, struct mk_error **err)
{
    if (mkdirat(store->root_fd, "flat", 0700) < 0 && errno != EEXIST) {
        mk_error_errno(err, "creating \"%s/flat\"", store->root);
        return NULL;
    }
    return mk_xasprintf("%s/flat/%s", store->root, hex);
}

bool layerstore_snapshot_exists(struct mk_store *store, const char *chain_id)
{
    if (!mk_digest_valid(chain_id))
        return false;
    _cleanup_free_ char *rel = mk_xasprintf("snapshots/%s", mk_digest_hex(chain_id));
    struct stat st;
    return fstatat(store->root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

int ls_snapshot_install(struct mk_store *store, const char *dir, const char *chain,
                        struct mk_error **err)
{
    _cleanup_free_ char *rel = mk_xasprintf("snapshots/%s", mk_digest_hex(chain));
    /* From the rename on the snapshot is trusted (only fsck --deep reads it again), so its
     * files reach the disk first, or a power cut could leave a truncated layer under a
     * valid name. One syncfs rather than an fsync per file: a layer is often tens of
     * thousands of small files and each fsync is a journal commit of its own on ext4 and
     * xfs, while syncfs writes the same data back with one. It also writes back other
     * dirty data of the store's file system, which the kernel would flush within seconds
     * anyway; that is the price, paid once per layer. */
    /* In a window of layerstore_sync_defer (store.c), the window's syncfs does it later. */
    _cleanup_close_ int sfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0 || (!ls_sync_deferred(store) && syncfs(sfd) < 0))
        return mk_error_errno(err, "syncing \"%s\" to disk", dir);
    /* NOREPLACE: rename(2) would silently replace an existing empty snapshot dir. */
    /* No fsync of snapshots/: a snapshot whose name a crash loses is unpacked again from its
     * blob when an image needs it, and a step record that names it is a miss. */
    if (renameat2(AT_FDCWD, dir, store->root_fd, rel, RENAME_NOREPLACE) == 0)
        return 0;
    /* Another process unpacked the same layer first: its copy is as good as ours. */
    if (errno == EEXIST || errno == ENOTEMPTY)
        return mk_rm_rf(dir, err);
    return mk_error_errno(err, "moving \"%s\" into the snapshots", dir);
}

static struct ls_apply_opts apply_opts(void)
{
    struct ls_apply_opts o;
    memset(&o, 0, sizeof(o));
    o.rootless = ls_rootless();
    return o;
}

static int open_dir(const char *path, struct mk_error **err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    return fd;
}

/* A fresh temp dir to unpack into; a layer's root directory is world-readable like any
 * image root unless the tar says otherwise. */
static char *unpack_dir(struct mk_store *store, int *ret_fd, struct mk_error **err)
{
    char *dir = layerstore_tmpdir(store, "unpack-", err);
    if (!dir)
        return NULL;
    int fd = open_dir(dir, err);
    if (fd < 0 || fchmod(fd, 0755) < 0) {
        if (fd >= 0) {
            mk_error_errno(err, "chmod \"%s\"", dir);
            close(fd);
        }
        layerstore_tmpdir_remove(store, dir, NULL);
        free(dir);
        return NULL;
    }
    *ret_fd = fd;
    return dir;
}

int ls_snapshot_unpack(struct mk_store *store, const char *blob, const char *diff_id,
                       const char *chain, struct mk_error **err)
{
    if (layerstore_snapshot_exists(store, chain)) {
        ls_mark_used(store, blob, chain);
        return 0;
    }
    _cleanup_close_ int in = layerstore_blob_open(store, blob, err);
    if (in < 0)
        return -1;
    _cleanup_close_ int dfd = -1;
    _cleanup_free_ char *dir = unpack_dir(store, &dfd, err);
    if (!dir)
        return -1;
    struct ls_apply_opts opts = apply_opts();
    char got[MK_DIGEST_SIZE];
    uint64_t size = 0;
    int r = ls_tar_apply(in, dfd, &opts, -1, got, &size, err);
    if (r == 0 && strcmp(got, diff_id) != 0)
        r = mk_error_set(err, MK_ERR_DIGEST, 0, "layer %s unpacks to %s, not to its diff_id %s",
                         blob, got, diff_id);
    if (r == 0)
        r = ls_snapshot_install(store, dir, chain, err);
    if (r < 0) {
        mk_error_wrap(err, "unpacking layer %s", blob);
        layerstore_tmpdir_remove(store, dir, NULL);
        return -1;
    }
    ls_tmpdir_forget(store, dir);
    ls_mark_used(store, blob, chain);
    return 0;
}

/* The snapshots of chains (bottom-most first) as lowerdirs, top-most first. */
static int open_lowers(struct mk_store *store, const struct mk_strv *chains, struct ls_lowers *ret,
                       struct mk_error **err)
{
    ret->fds = mk_xcalloc(chains->n + 1, sizeof(int));
    ret->n = 0;
    for (size_t i = chains->n; i-- > 0;) {
        _cleanup_free_ char *path = layerstore_snapshot_path(store, chains->v[i]);
        int fd = path ? open_dir(path, err) : -1;
        if (fd < 0) {
            ls_lowers_release(ret);
            return -1;
        }
        ret->fds[ret->n++] = fd;
    }
    return 0;
}

int ls_snapshot_verify(struct mk_store *store, const struct mk_strv *parents, const char *chain,
                       const char *blob, const char *diff_id, bool *ret_ok, struct mk_error **err)
{
    _cleanup_free_ char *path = layerstore_snapshot_path(store, chain);
    _cleanup_close_ int sfd = path ? open_dir(path, err) : -1;
    if (sfd < 0)
        return -1;
    struct ls_lowers lowers = {0};
    if (open_lowers(store, parents, &lowers, err) < 0)
        return -1;
    char got[MK_DIGEST_SIZE], fresh[MK_DIGEST_SIZE];
    int r = ls_tar_digest_diff(sfd, &lowers, false, got, err);
    if (r < 0 || strcmp(got, diff_id) == 0) {
        ls_lowers_release(&lowers);
        if (r == 0)
            *ret_ok = true;
        return r;
    }
    /* Not the layer's bytes, yet maybe whole: the layer was written by another tool
     * (pulled, loaded, imported: its own entry order and headers) or with
     * a build epoch (mtimes clamped in the tar, not on disk). Then the snapshot must
     * give what a fresh unpack of the blob gives, both written by our writer with the
     * same lowers and mtimes left out. */
    _cleanup_close_ int in = layerstore_blob_open(store, blob, err);
    _cleanup_close_ int dfd = -1;
    _cleanup_free_ char *dir = in >= 0 ? unpack_dir(store, &dfd, err) : NULL;
    r = dir ? 0 : -1;
    if (r == 0) {
        struct ls_apply_opts opts = apply_opts();
        uint64_t size = 0;
        r = ls_tar_apply(in, dfd, &opts, -1, fresh, &size, err);
        if (r == 0 && strcmp(fresh, diff_id) != 0)
            r = mk_error_set(err, MK_ERR_DIGEST, 0, "layer %s unpacks to %s, not to %s", blob,
                             fresh, diff_id);
    }
    if (r == 0)
        r = ls_tar_digest_diff(sfd, &lowers, true, got, err);
    if (r == 0)
        r = ls_tar_digest_diff(dfd, &lowers, true, fresh, err);
    if (dir)
        layerstore_tmpdir_remove(store, dir, NULL);
    ls_lowers_release(&lowers);
    if (r < 0)
        return mk_error_wrap(err, "checking the snapshot of layer %s", blob);
    *ret_ok = strcmp(got, fresh) == 0;
    return 0;
}

int layerstore_image_snapshots(struct mk_store *store, const struct mk_image *img,
                               struct mk_strv *ret_dirs, struct mk_error **err)
{
    struct mk_strv dirs = MK_STRV_INIT;
    char chain[MK_DIGEST_SIZE] = "";
    for (size_t i = 0; i < img->n_layers; i++) {
        char next[MK_DIGEST_SIZE];
        mk_chain_id(chain, img->layers[i].diff_id, next);
        memcpy(chain, next, MK_DIGEST_SIZE);
        if (ls_snapshot_unpack(store, img->layers[i].digest, img->layers[i].diff_id, chain, err) <
            0) {
            mk_strv_release(&dirs);
            return -1;
        }
        mk_strv_push_take(&dirs, layerstore_snapshot_path(store, chain));
    }
    for (size_t i = dirs.n; i-- > 0;)
        mk_strv_push(ret_dirs, dirs.v[i]);
    mk_strv_release(&dirs);
    return 0;
}

static void fill_desc(struct mk_layer_desc *ret, const char *diff_id, uint64_t size)
{
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->digest, diff_id, MK_DIGEST_SIZE);
    memcpy(ret->diff_id, diff_id, MK_DIGEST_SIZE);
    ret->media_type = mk_xstrdup(MK_MEDIA_OCI_LAYER);
    ret->size = size;
}

/* Writes the layer tar of dirfd (an upperdir over lowers) into the temp file *ret_tmp (open
 * as *ret_fd), to become a blob once it is on disk. */
static int blob_from_dir(struct mk_store *store, int dirfd, const struct ls_lowers *lowers,
                         int64_t epoch, struct ls_tar_reuse *reuse, char **ret_tmp, int *ret_fd,
                         char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size,
                         struct mk_error **err)
{
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int out = ls_tmpfile(store, &tmp, err);
    if (out < 0)
        return -1;
    if (ls_tar_write_reuse(dirfd, lowers, out, epoch, reuse, ret_diff_id, ret_size, err) < 0) {
        unlink(tmp);
        return -1;
    }
    *ret_tmp = MK_TAKE_PTR(tmp);
    *ret_fd = MK_TAKE_FD(out);
    return 0;
}

/* The layer of dirfd, with the entries of like_chain's index where they fit; when one of
 * them turns out stale, written again from the files alone. ret_index: the new layer's. */
static int blob_from_dir_like(struct mk_store *store, int dirfd, const struct ls_lowers *lowers,
                              int64_t epoch, const char *like_chain, bool consume, char **ret_tmp,
                              int *ret_fd, char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size,
                              struct ls_tar_index **ret_index, bool *ret_consumed,
                              struct mk_error **err)
{
    _cleanup_free_ char *snap = like_chain ? layerstore_snapshot_path(store, like_chain) : NULL;
    /* Never consumed with an earlier layer's index: a stale write is done again from the
     * files. */
    struct ls_tar_reuse reuse = {.prev = snap ? ls_tar_index_load(store, like_chain, snap) : NULL,
                                 .out = ls_tar_index_new(),
                                 .sync_early = !(consume && !like_chain),
                                 .consume = consume && !like_chain,
                                 .keep_sync = ls_sync_deferred(store)};
    int r = blob_from_dir(store, dirfd, lowers, epoch, &reuse, ret_tmp, ret_fd, ret_diff_id,
                          ret_size, err);
    if (r < 0 && reuse.stale) {
        if (err)
            mk_error_free(MK_TAKE_PTR(*err));
        ls_tar_index_remove(store, like_chain);
        ls_tar_index_free((struct ls_tar_index *)reuse.prev);
        ls_tar_index_free(reuse.out);
        reuse = (struct ls_tar_reuse){
            .out = ls_tar_index_new(), .sync_early = true, .keep_sync = ls_sync_deferred(store)};
        r = blob_from_dir(store, dirfd, lowers, epoch, &reuse, ret_tmp, ret_fd, ret_diff_id,
                          ret_size, err);
    }
    if (reuse.early)
        ls_sync_keep(store, MK_TAKE_PTR(reuse.early));
    ls_tar_index_free((struct ls_tar_index *)reuse.prev);
    if (r < 0) {
        ls_tar_index_free(reuse.out);
        return -1;
    }
    *ret_index = reuse.out;
    *ret_consumed = reuse.consumed;
    return 0;
}

int layerstore_layer_commit_dir(struct mk_store *store, const char *upperdir,
                                const struct mk_strv *lowerdirs, const char *parent_chain,
                                int64_t epoch, struct mk_layer_desc *ret,
                                char ret_chain[MK_DIGEST_SIZE], struct mk_error **err)
{
    return layerstore_layer_commit_dir_like(store, upperdir, lowerdirs, parent_chain, epoch, NULL,
                                            ret, ret_chain, err);
}

int layerstore_layer_commit_dir_like(struct mk_store *store, const char *upperdir,
                                     const struct mk_strv *lowerdirs, const char *parent_chain,
                                     int64_t epoch, const char *like_chain,
                                     struct mk_layer_desc *ret, char ret_chain[MK_DIGEST_SIZE],
                                     struct mk_error **err)
{
    return layerstore_layer_commit_blob(store, upperdir, lowerdirs, parent_chain, epoch, like_chain,
                                        MK_COMMIT_SNAPSHOT, ret, ret_chain, NULL, err);
}

int layerstore_layer_commit_blob(struct mk_store *store, const char *upperdir,
                                 const struct mk_strv *lowerdirs, const char *parent_chain,
                                 int64_t epoch, const char *like_chain, enum mk_commit_mode mode,
                                 struct mk_layer_desc *ret, char ret_chain[MK_DIGEST_SIZE],
                                 bool *ret_deferred, struct mk_error **err)
{
    _cleanup_close_ int dfd = open_dir(upperdir, err);
    if (dfd < 0)
        return -1;
    struct stat root;
    if (fstat(dfd, &root) < 0)
        return mk_error_errno(err, "committing layer \"%s\"", upperdir);
    size_t n = lowerdirs ? lowerdirs->n : 0;
    struct ls_lowers lowers = {mk_xcalloc(n + 1, sizeof(int)), 0};
    for (size_t i = 0; i < n; i++) {
        int fd = open_dir(lowerdirs->v[i], err);
        if (fd < 0) {
            ls_lowers_release(&lowers);
            return mk_error_wrap(err, "committing layer \"%s\"", upperdir);
        }
        lowers.fds[lowers.n++] = fd;
    }
    char diff_id[MK_DIGEST_SIZE], chain[MK_DIGEST_SIZE];
    uint64_t size = 0;
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int out = -1;
    struct ls_tar_index *index = NULL;
    /* The tree is left alone only in a window of deferred durability, whose syncfs puts the
     * blob on disk (outside one the snapshot's syncfs does, below). */
    bool window = mode != MK_COMMIT_SNAPSHOT && ls_sync_deferred(store);
    bool consumed = false;
    int r = blob_from_dir_like(store, dfd, &lowers, epoch, like_chain,
                               window && mode == MK_COMMIT_CONSUME, &tmp, &out, diff_id, &size,
                               &index, &consumed, err);
    ls_lowers_release(&lowers);
    if (r < 0)
        return mk_error_wrap(err, "committing layer \"%s\"", upperdir);
    mk_chain_id(parent_chain, diff_id, chain);
    /* Emptied files make no snapshot: a consumed tree goes at once. */
    if (consumed && mk_rm_rf(upperdir, err) < 0) {
        ls_tar_index_free(index);
        unlink(tmp);
        return mk_error_wrap(err, "committing layer \"%s\"", upperdir);
    }
    bool defer = !consumed && window && !layerstore_snapshot_exists(store, chain);
    /* The snapshot's syncfs puts the tar on disk too: one sync for both, then the blob's
     * rename. */
    if (!consumed && !defer && ls_snapshot_install(store, upperdir, chain, err) < 0) {
        ls_tar_index_free(index);
        unlink(tmp);
        return -1;
    }
    if (ls_blob_install_synced(store, out, tmp, diff_id, err) < 0) {
        ls_tar_index_free(index);
        return mk_error_wrap(err, "committing layer \"%s\"", upperdir);
    }
    /* Only for our own tree (another process may have installed the snapshot first): the
     * index records its inodes, which a later rename into snapshots/ keeps. Best effort:
     * without it the next commit reads every file. */
    _cleanup_free_ char *snap = layerstore_snapshot_path(store, chain);
    struct stat now;
    if (ls_tar_index_count(index) && !consumed &&
        (defer ||
         (stat(snap, &now) == 0 && now.st_dev == root.st_dev && now.st_ino == root.st_ino)))
        ls_tar_index_save(store, index, chain, diff_id, size, &root, NULL);
    ls_tar_index_free(index);
    ls_mark_used(store, diff_id, defer || consumed ? NULL : chain);
    fill_desc(ret, diff_id, size);
    if (ret_chain)
        memcpy(ret_chain, chain, MK_DIGEST_SIZE);
    if (ret_deferred)
        *ret_deferred = defer;
    return 0;
}

int layerstore_snapshot_settle(struct mk_store *store, const char *upperdir, const char *chain,
                               bool keep, struct mk_error **err)
{
    if (keep)
        return ls_snapshot_install(store, upperdir, chain, err);
    /* The index describes this tree's inodes: a snapshot unpacked later has others. */
    ls_tar_index_remove(store, chain);
    return mk_rm_rf(upperdir, err);
}

int layerstore_layer_import_tar(struct mk_store *store, int fd, const char *parent_chain,
                                struct mk_layer_desc *ret, char ret_chain[MK_DIGEST_SIZE],
                                struct mk_error **err)
{
    _cleanup_close_ int dfd = -1;
    _cleanup_free_ char *dir = unpack_dir(store, &dfd, err);
    if (!dir)
        return -1;
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int tee = ls_tmpfile(store, &tmp, err);
    if (tee < 0) {
        layerstore_tmpdir_remove(store, dir, NULL);
        return -1;
    }
    struct ls_apply_opts opts = apply_opts();
    char diff_id[MK_DIGEST_SIZE], chain[MK_DIGEST_SIZE];
    uint64_t size = 0;
    if (ls_tar_apply(fd, dfd, &opts, tee, diff_id, &size, err) < 0) {
        unlink(tmp);
        layerstore_tmpdir_remove(store, dir, NULL);
        return mk_error_wrap(err, "importing a layer");
    }
    mk_chain_id(parent_chain, diff_id, chain);
    if (ls_blob_commit_tmp(store, tee, tmp, diff_id, err) < 0 ||
        (!layerstore_snapshot_exists(store, chain) &&
         ls_snapshot_install(store, dir, chain, err) < 0)) {
        layerstore_tmpdir_remove(store, dir, NULL);
        return mk_error_wrap(err, "importing a layer");
    }
    /* Gone either way: renamed into snapshots/, or not needed because it was there. */
    layerstore_tmpdir_remove(store, dir, NULL);
    ls_mark_used(store, diff_id, chain);
    fill_desc(ret, diff_id, size);
    if (ret_chain)
        memcpy(ret_chain, chain, MK_DIGEST_SIZE);
    return 0;
}
