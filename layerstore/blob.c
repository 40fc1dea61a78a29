/* layerstore/blob.c - content-addressed blobs: ROOT/blobs/sha256/<hex>. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

/* Relative to the root fd; the digest is validated first so no name can leave blobs/. */
static char *blob_relpath(const char *digest)
{
    return mk_xasprintf("blobs/sha256/%s", mk_digest_hex(digest));
}

char *layerstore_blob_path(struct mk_store *store, const char *digest)
{
    if (!mk_digest_valid(digest))
        return NULL;
    return mk_xasprintf("%s/blobs/sha256/%s", store->root, mk_digest_hex(digest));
}

bool layerstore_blob_exists(struct mk_store *store, const char *digest)
{
    if (!mk_digest_valid(digest))
        return false;
    _cleanup_free_ char *rel = blob_relpath(digest);
    struct stat st;
    return fstatat(store->root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

int layerstore_blob_open(struct mk_store *store, const char *digest, struct mk_error **err)
{
    if (!mk_digest_valid(digest))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid digest \"%s\"", digest);
    _cleanup_free_ char *rel = blob_relpath(digest);
    int fd = openat(store->root_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return mk_error_set(err, errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO, errno,
                            "opening blob %s", digest);
    return fd;
}

int layerstore_blob_read(struct mk_store *store, const char *digest, size_t max, char **ret,
                         size_t *ret_len, struct mk_error **err)
{
    if (!mk_digest_valid(digest))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid digest \"%s\"", digest);
    _cleanup_free_ char *rel = blob_relpath(digest);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(store->root_fd, rel, max, &data, &len, err) < 0) {
        if (err && *err && (*err)->code == MK_ERR_NOT_FOUND) {
            mk_error_free(*err);
            *err = NULL;
            return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "blob %s not found", digest);
        }
        return mk_error_wrap(err, "reading blob %s", digest);
    }
    /* Cheap for small blobs, and a corrupted store must not feed bad JSON upward. */
    char got[MK_DIGEST_SIZE];
    mk_sha256_buffer(data, len, got);
    if (strcmp(got, digest) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "blob %s is corrupted (its content is %s)",
                            digest, got);
    if (ret_len)
        *ret_len = len;
    *ret = MK_TAKE_PTR(data);
    return 0;
}

/* Renames the finished temp file into blobs/sha256/ (or drops it when the blob exists), after
 * an fsync when sync; tmp_path is gone afterwards either way. 1 when it was renamed. */
static int blob_install(struct mk_store *store, int fd, const char *tmp_path, const char *digest,
                        bool sync, struct mk_error **err)
{
    _cleanup_free_ char *rel = blob_relpath(digest);
    if (layerstore_blob_exists(store, digest)) {
        unlink(tmp_path);
        return 0;
    }
    if (fchmod(fd, 0644) < 0 || (sync && fsync(fd) < 0)) {
        int saved = errno;
        unlink(tmp_path);
        return mk_error_set(err, MK_ERR_IO, saved, "writing blob %s", digest);
    }
    if (renameat(AT_FDCWD, tmp_path, store->root_fd, rel) < 0) {
        int saved = errno;
        unlink(tmp_path);
        return mk_error_set(err, MK_ERR_IO, saved, "storing blob %s", digest);
    }
    return 1;
}

int ls_blob_commit_tmp(struct mk_store *store, int fd, const char *tmp_path, const char *digest,
                       struct mk_error **err)
{
    /* In a window of layerstore_sync_defer its syncfs does both fsyncs' work. */
    bool sync = !ls_sync_deferred(store);
    int r = blob_install(store, fd, tmp_path, digest, sync, err);
    if (r <= 0)
        return r;
    return sync ? ls_blobs_dir_sync(store, err) : 0;
}

int ls_blob_install_synced(struct mk_store *store, int fd, const char *tmp_path, const char *digest,
                           struct mk_error **err)
{
    return blob_install(store, fd, tmp_path, digest, false, err) < 0 ? -1 : 0;
}

int ls_blobs_dir_sync(struct mk_store *store, struct mk_error **err)
{
    _cleanup_close_ int dfd =
        openat(store->root_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"blobs/sha256\"");
    return mk_fsync_dir(dfd, err);
}

int layerstore_blob_put_buf(struct mk_store *store, const void *data, size_t len,
                            char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    char digest[MK_DIGEST_SIZE];
    mk_sha256_buffer(data, len, digest);
    if (!layerstore_blob_exists(store, digest)) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = ls_tmpfile(store, &tmp, err);
        if (fd < 0)
            return -1;
        if (mk_write_all(fd, data, len, err) < 0) {
            unlink(tmp);
            return mk_error_wrap(err, "writing blob %s", digest);
        }
        if (ls_blob_commit_tmp(store, fd, tmp, digest, err) < 0)
            return -1;
    }
    memcpy(ret_digest, digest, MK_DIGEST_SIZE);
    return 0;
}

int layerstore_blob_put_fd(struct mk_store *store, int fd, const char *expected,
                           char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                           struct mk_error **err)
{
    if (expected && !mk_digest_valid(expected))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid digest \"%s\"", expected);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int out = ls_tmpfile(store, &tmp, err);
    if (out < 0)
        return -1;
    struct mk_sha256 *h = mk_sha256_new();
    uint64_t size = 0;
    const size_t chunk_size = 1 << 16;
    _cleanup_free_ char *chunk = mk_xmalloc(chunk_size);
    for (;;) {
        if (mk_interrupted) {
            mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
            goto fail;
        }
        ssize_t n = mk_read_some(fd, chunk, chunk_size, err);
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        mk_sha256_update(h, chunk, (size_t)n);
        if (mk_write_all(out, chunk, (size_t)n, err) < 0)
            goto fail;
        size += (uint64_t)n;
    }
    char digest[MK_DIGEST_SIZE];
    mk_sha256_final(h, digest);
    mk_sha256_free(h);
    h = NULL;
    if (expected && strcmp(expected, digest) != 0) {
        unlink(tmp);
        return mk_error_set(err, MK_ERR_DIGEST, 0, "content digest %s does not match %s", digest,
                            expected);
    }
    if (ls_blob_commit_tmp(store, out, tmp, digest, err) < 0)
        return -1;
    memcpy(ret_digest, digest, MK_DIGEST_SIZE);
    if (ret_size)
        *ret_size = size;
    return 0;

fail:
    /* The half-written temp file is ours to delete; cleanup attributes cannot know that. */
    mk_sha256_free(h);
    unlink(tmp);
    return mk_error_wrap(err, "storing a blob");
}
