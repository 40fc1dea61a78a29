/* layerstore/pull.c - blobs that arrive in pieces (downloads) and unpacking pulled layers. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
    struct mk_layer_stream *tee;
};

struct mk_layer_stream {
    struct mk_store *store;
    char blob[MK_DIGEST_SIZE], diff_id[MK_DIGEST_SIZE], chain[MK_DIGEST_SIZE];
    char parent[MK_DIGEST_SIZE]; /* "" for a first layer */
    char *dir;                   /* the temp dir it unpacks into */
    int dfd;
    int wfd; /* the pipe's write end; -1 once closed */
    int rfd;
    bool broken; /* bytes went missing or came twice: what it unpacked is not the blob */
    bool running;
    pthread_t thread;
    /* Set by the thread: */
    int r;
    struct mk_error *err;
    char got[MK_DIGEST_SIZE];
};

static void stream_send(struct mk_layer_stream *s, const void *data, size_t n)
{
    /* The thread reads to the end whatever happens, so this blocks only while it works. */
    if (s->wfd >= 0 && mk_write_all(s->wfd, data, n, NULL) < 0)
        layerstore_layer_stream_break(s);
}

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
    if (w->tee)
        stream_send(w->tee, data, n);
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
    if (w->tee)
        layerstore_layer_stream_break(w->tee);
    w->tee = NULL;
    return 0;
}

void layerstore_blob_writer_tee(struct mk_blob_writer *w, struct mk_layer_stream *s)
{
    w->tee = s;
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

static void *stream_main(void *arg)
{
    struct mk_layer_stream *s = arg;
    struct ls_apply_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.rootless = ls_rootless();
    uint64_t size = 0;
    s->r = ls_tar_apply(s->rfd, s->dfd, &opts, -1, s->got, &size, &s->err);
    /* To the end (tar padding, a compressed stream's trailer, bytes after a failure), so
     * the writer never blocks on a reader that stopped. */
    char buf[65536];
    for (ssize_t n = 1; n > 0 || (n < 0 && errno == EINTR);)
        n = read(s->rfd, buf, sizeof(buf));
    return NULL;
}

int layerstore_layer_stream_new(struct mk_store *store, const char *blob, const char *diff_id,
                                const char *parent_chain, struct mk_layer_stream **ret,
                                struct mk_error **err)
{
    *ret = NULL;
    if (!mk_digest_valid(diff_id))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid diff_id \"%s\"", diff_id);
    char chain[MK_DIGEST_SIZE];
    mk_chain_id(parent_chain, diff_id, chain);
    if (layerstore_snapshot_exists(store, chain))
        return 0;
    struct mk_layer_stream *s = mk_xcalloc(1, sizeof(*s));
    s->store = store;
    s->dfd = s->wfd = s->rfd = -1;
    memcpy(s->blob, blob, MK_DIGEST_SIZE);
    memcpy(s->diff_id, diff_id, MK_DIGEST_SIZE);
    memcpy(s->chain, chain, MK_DIGEST_SIZE);
    snprintf(s->parent, sizeof(s->parent), "%s", parent_chain);
    int p[2];
    s->dir = layerstore_tmpdir(store, "unpack-", err);
    if (s->dir && ((s->dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
                   fchmod(s->dfd, 0755) < 0))
        mk_error_errno(err, "opening \"%s\"", s->dir);
    else if (s->dir && pipe2(p, O_CLOEXEC) < 0)
        mk_error_errno(err, "pipe");
    else if (s->dir) {
        s->rfd = p[0];
        s->wfd = p[1];
        fcntl(s->wfd, F_SETPIPE_SZ, 1 << 20); /* fewer switches; the default is fine too */
        int rc = pthread_create(&s->thread, NULL, stream_main, s);
        if (rc == 0) {
            s->running = true;
            *ret = s;
            return 0;
        }
        errno = rc;
        mk_error_errno(err, "starting a thread");
    }
    layerstore_layer_stream_free(s);
    return -1;
}

void layerstore_layer_stream_break(struct mk_layer_stream *s)
{
    s->broken = true;
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = -1;
}

static void stream_join(struct mk_layer_stream *s)
{
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = -1;
    if (s->running)
        pthread_join(s->thread, NULL);
    s->running = false;
}

int layerstore_layer_stream_finish(struct mk_layer_stream *s, char ret_chain[MK_DIGEST_SIZE],
                                   struct mk_error **err)
{
    stream_join(s);
    /* The blob is stored whole (its writer committed); the stream saw exactly its bytes
     * unless it broke. Else, or when it failed, the stored blob is unpacked: that gives
     * the error (a malformed layer, another diff_id) or, after a retried download, the
     * snapshot. */
    if (s->broken || s->r < 0 || strcmp(s->got, s->diff_id) != 0)
        return layerstore_layer_unpack(s->store, s->blob, s->diff_id, s->parent, ret_chain, err);
    if (ls_snapshot_install(s->store, s->dir, s->chain, err) < 0)
        return mk_error_wrap(err, "unpacking layer %s", s->blob);
    ls_tmpdir_forget(s->store, s->dir);
    free(s->dir);
    s->dir = NULL;
    ls_mark_used(s->store, s->blob, s->chain);
    if (ret_chain)
        memcpy(ret_chain, s->chain, MK_DIGEST_SIZE);
    return 0;
}

void layerstore_layer_stream_free(struct mk_layer_stream *s)
{
    if (!s)
        return;
    layerstore_layer_stream_break(s);
    stream_join(s);
    if (s->dfd >= 0)
        close(s->dfd);
    if (s->dir)
        layerstore_tmpdir_remove(s->store, s->dir, NULL);
    free(s->dir);
    if (s->rfd >= 0)
        close(s->rfd);
    mk_error_free(s->err);
    free(s);
}
