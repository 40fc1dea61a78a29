/* layerstore/pull.c - blobs that arrive in pieces (downloads) and unpacking pulled layers. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

struct mk_blob_writer {
    struct mk_store *store;
    char expected[MK_DIGEST_SIZE];
    uint64_t expected_size;
    uint64_t size;
    struct mk_sha256 *hash;
    char *tmp;
    int fd;
};

int layerstore_blob_writer_new(struct mk_store *store, const char *expected, uint64_t expected_size,
                               struct mk_blob_writer **ret, struct mk_error **err)
{
    if (!mk_digest_valid(expected))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid digest \"%s\"", expected);
    struct mk_blob_writer *w = mk_xcalloc(1, sizeof(*w));
    w->fd = ls_tmpfile(store, &w->tmp, err);
    if (w->fd < 0) {
        free(w);
        return -1;
    }
    w->store = store;
    memcpy(w->expected, expected, MK_DIGEST_SIZE);
    w->expected_size = expected_size;
    w->hash = mk_sha256_new();
    *ret = w;
    return 0;
}

int layerstore_blob_writer_write(struct mk_blob_writer *w, const void *data, size_t n,
                                 struct mk_error **err)
{
    if (w->fd < 0)
        MK_BUG("write to a spent blob writer");
    if (n > w->expected_size - w->size)
        return mk_error_set(err, MK_ERR_INVALID, 0, "blob %s is larger than its %llu bytes",
                            w->expected, (unsigned long long)w->expected_size);
    if (mk_write_all(w->fd, data, n, err) < 0)
        return mk_error_wrap(err, "writing blob %s", w->expected);
    mk_sha256_update(w->hash, data, n);
    w->size += n;
    return 0;
}

uint64_t layerstore_blob_writer_size(const struct mk_blob_writer *w)
{
    return w->size;
}

int layerstore_blob_writer_reset(struct mk_blob_writer *w, struct mk_error **err)
{
    if (w->fd < 0)
        MK_BUG("reset of a spent blob writer");
    if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
        return mk_error_errno(err, "truncating \"%s\"", w->tmp);
    mk_sha256_free(w->hash);
    w->hash = mk_sha256_new();
    w->size = 0;
    return 0;
}

static void writer_discard(struct mk_blob_writer *w)
{
    if (w->fd >= 0) {
        unlink(w->tmp);
        close(w->fd);
        w->fd = -1;
    }
}

int layerstore_blob_writer_commit(struct mk_blob_writer *w, struct mk_error **err)
{
    if (w->fd < 0)
        MK_BUG("commit of a spent blob writer");
    char got[MK_DIGEST_SIZE];
    mk_sha256_final(w->hash, got);
    mk_sha256_free(w->hash);
    w->hash = NULL;
    int r;
    if (w->size != w->expected_size)
        r = mk_error_set(err, MK_ERR_DIGEST, 0, "blob %s has %llu bytes, not %llu", w->expected,
                         (unsigned long long)w->size, (unsigned long long)w->expected_size);
    else if (strcmp(got, w->expected) != 0)
        r = mk_error_set(err, MK_ERR_DIGEST, 0, "content digest %s does not match %s", got,
                         w->expected);
    else
        r = ls_blob_commit_tmp(w->store, w->fd, w->tmp, w->expected, err);
    if (r < 0)
        unlink(w->tmp); /* ls_blob_commit_tmp removes it itself; unlinking again is harmless */
    close(w->fd);
    w->fd = -1;
    return r;
}

void layerstore_blob_writer_free(struct mk_blob_writer *w)
{
    if (!w)
        return;
    writer_discard(w);
    mk_sha256_free(w->hash);
    free(w->tmp);
    free(w);
}

int layerstore_layer_unpack(struct mk_store *store, const char *blob, const char *diff_id,
                            const char *parent_chain, char ret_chain[MK_DIGEST_SIZE],
                            struct mk_error **err)
{
    if (!mk_digest_valid(diff_id))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid diff_id \"%s\"", diff_id);
    char chain[MK_DIGEST_SIZE];
    mk_chain_id(parent_chain, diff_id, chain);
    if (ls_snapshot_unpack(store, blob, diff_id, chain, err) < 0)
        return -1;
    if (ret_chain)
        memcpy(ret_chain, chain, MK_DIGEST_SIZE);
    return 0;
}
