/* layerstore/compress.c - compressed copies of layers for push, save and --output.
 *
 * The store keeps layers uncompressed so a build never waits for compression; a compressed
 * copy is made only when a layer leaves the store, then kept as an ordinary blob. The cache
 * entry sha256("compressed <diff_id> <algorithm> <level>") holds
 * "compressed <diff_id> <blob digest> <size>\n" so prune can tell which layer the copy
 * belongs to. Several layers are compressed at once and each on its share of the cores
 * (compress-stream.c); the bytes depend only on the layer, algorithm and level.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define GZIP_DEFAULT_LEVEL 6
#define ZSTD_DEFAULT_LEVEL 3

int layerstore_compression_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "gzip") == 0)
        return MK_COMPRESS_GZIP;
    if (strcmp(s, "zstd") == 0)
        return MK_COMPRESS_ZSTD;
    if (strcmp(s, "none") == 0)
        return MK_COMPRESS_NONE;
    return -1;
}

static const char *algo_name(enum mk_compression c)
{
    return c == MK_COMPRESS_GZIP ? "gzip" : c == MK_COMPRESS_ZSTD ? "zstd" : "none";
}

static const char *algo_media_type(enum mk_compression c)
{
    return c == MK_COMPRESS_GZIP   ? MK_MEDIA_OCI_LAYER_GZIP
           : c == MK_COMPRESS_ZSTD ? MK_MEDIA_OCI_LAYER_ZSTD
                                   : MK_MEDIA_OCI_LAYER;
}

void layerstore_layer_descs_free(struct mk_layer_desc *descs, size_t n)
{
    if (!descs)
        return;
    for (size_t i = 0; i < n; i++)
        free(descs[i].media_type);
    free(descs);
}

static void desc_copy(struct mk_layer_desc *dst, const struct mk_layer_desc *src)
{
    *dst = *src;
    dst->media_type = mk_xstrdup(src->media_type ? src->media_type : MK_MEDIA_OCI_LAYER);
}

int ls_compress_cache_key(const char *diff_id, enum mk_compression c, int level,
                          char ret_key[MK_DIGEST_SIZE])
{
    _cleanup_free_ char *k = mk_xasprintf("compressed %s %s %d", diff_id, algo_name(c), level);
    mk_sha256_buffer(k, strlen(k), ret_key);
    return 0;
}

/* A cached copy counts only while its blob is there with the recorded size. */
static bool cached_copy(struct mk_store *store, const char *key, const char *diff_id,
                        struct mk_layer_desc *ret)
{
    struct ls_compressed_record rec;
    if (ls_compressed_get(store, key, &rec, NULL) < 0 || strcmp(rec.diff_id, diff_id) != 0)
        return false;
    const char *blob = rec.blob;
    uint64_t size = rec.size;
    _cleanup_free_ char *path = layerstore_blob_path(store, blob);
    struct stat st;
    if (!path || stat(path, &st) < 0 || (uint64_t)st.st_size != size)
        return false;
    ls_mark_used(store, blob, NULL);
    memcpy(ret->digest, blob, MK_DIGEST_SIZE);
    ret->size = size;
    return true;
}

/* The uncompressed bytes of a layer: its plain blob, or (for a layer kept only in the form
 * it was pulled in) its compressed blob decoded on the fly and checked against diff_id. */
struct source {
    int fd;
    struct archive *rd; /* NULL for a plain blob */
    struct mk_sha256 *h;
};

static int source_open_decoded(struct source *src, int fd, struct mk_error **err)
{
    src->fd = fd;
    src->rd = archive_read_new();
    src->h = mk_sha256_new();
    struct archive_entry *e;
    /* Only what a layer could be pulled in: the copy passed tar-apply's filters once. */
    if (ls_read_filters(src->rd, LS_FILTERS_LAYER, err) < 0)
        return -1;
    archive_read_support_format_raw(src->rd);
    if (archive_read_open_fd(src->rd, fd, 1 << 16) != ARCHIVE_OK ||
        archive_read_next_header(src->rd, &e) != ARCHIVE_OK)
        return mk_error_set(err, MK_ERR_PARSE, 0, "decoding the layer: %s",
                            archive_error_string(src->rd));
    return 0;
}

static void source_release(struct source *src)
{
    if (src->rd)
        archive_read_free(src->rd);
    mk_sha256_free(src->h);
}

static ssize_t source_read(struct source *src, void *buf, size_t n, struct mk_error **err)
{
    if (!src->rd)
        return mk_read_some(src->fd, buf, n, err);
    la_ssize_t got = archive_read_data(src->rd, buf, n);
    if (got < 0)
        return mk_error_set(err, MK_ERR_PARSE, 0, "decoding the layer: %s",
                            archive_error_string(src->rd));
    mk_sha256_update(src->h, buf, (size_t)got);
    return got;
}

static ssize_t source_read_cb(void *ctx, void *buf, size_t n, struct mk_error **err)
{
    return source_read(ctx, buf, n, err);
}

/* The copy already there: src itself when compressed the wanted way (an image made from
 * pulled layers), or a cached copy. Fills ret's media type and diff_id in any case. */
static bool existing_copy(struct mk_store *store, const struct mk_layer_desc *src,
                          enum mk_compression c, int level, struct mk_layer_desc *ret)
{
    ret->media_type = mk_xstrdup(algo_media_type(c));
    memcpy(ret->diff_id, src->diff_id, MK_DIGEST_SIZE);
    if (src->media_type && strcmp(src->media_type, algo_media_type(c)) == 0 &&
        strcmp(src->digest, src->diff_id) != 0) {
        memcpy(ret->digest, src->digest, MK_DIGEST_SIZE);
        ret->size = src->size;
        return true;
    }
    char key[MK_DIGEST_SIZE];
    ls_compress_cache_key(src->diff_id, c, level, key);
    return cached_copy(store, key, src->diff_id, ret);
}

/* The layer's uncompressed bytes: its plain blob, else its compressed blob decoded. The
 * caller releases in (source_release) whatever this returns. */
static int source_open(struct mk_store *store, const struct mk_layer_desc *src, struct source *in,
                       struct mk_error **err)
{
    in->fd = layerstore_blob_open(store, src->diff_id, NULL);
    if (in->fd < 0 && strcmp(src->digest, src->diff_id) != 0) {
        in->fd = layerstore_blob_open(store, src->digest, err);
        if (in->fd >= 0 && source_open_decoded(in, in->fd, err) < 0) {
            close(in->fd);
            in->fd = -1;
        }
    } else if (in->fd < 0) {
        in->fd = layerstore_blob_open(store, src->diff_id, err);
    }
    return in->fd < 0 ? mk_error_wrap(err, "compressing layer %s", src->diff_id) : 0;
}

/* Checks that a decoded source matched diff_id (once, at its end). */
static int source_verify(struct source *in, const struct mk_layer_desc *src, struct mk_error **err)
{
    if (!in->rd)
        return 0;
    char got[MK_DIGEST_SIZE];
    mk_sha256_final(in->h, got);
    if (strcmp(got, src->diff_id) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "layer %s decodes to %s", src->diff_id, got);
    return 0;
}

/* Stores the finished and verified copy in tmp (open as out, bytes hashing to digest):
 * renames it into the store, remembers it in the cache. tmp is gone afterwards either way
 * (renamed or removed). */
static int copy_commit(struct mk_store *store, const struct mk_layer_desc *src,
                       enum mk_compression c, int level, int out, const char *tmp,
                       const char *digest, uint64_t size, struct mk_layer_desc *ret,
                       struct mk_error **err)
{
    if (ls_blob_commit_tmp(store, out, tmp, digest, err) < 0)
        return mk_error_wrap(err, "compressing layer %s", src->diff_id);
    /* The blob is in place before the entry that names it, so a crash in between leaves at
     * worst an unreferenced blob for prune. */
    char key[MK_DIGEST_SIZE];
    ls_compress_cache_key(src->diff_id, c, level, key);
    struct ls_compressed_record rec = {.size = size};
    memcpy(rec.diff_id, src->diff_id, MK_DIGEST_SIZE);
    memcpy(rec.blob, digest, MK_DIGEST_SIZE);
    if (ls_compressed_put(store, key, &rec, err) < 0)
        return mk_error_wrap(err, "remembering the compressed copy of %s", src->diff_id);
    memcpy(ret->digest, digest, MK_DIGEST_SIZE);
    ret->size = size;
    return 0;
}

/* Makes (or finds) the compressed copy of one layer and fills ret. */
static int compress_one(struct mk_store *store, const struct mk_layer_desc *src,
                        enum mk_compression c, int level, unsigned threads,
                        struct mk_layer_desc *ret, struct mk_error **err)
{
    if (existing_copy(store, src, c, level, ret))
        return 0;
    struct source in = {.fd = -1};
    if (source_open(store, src, &in, err) < 0) {
        source_release(&in);
        return -1;
    }
    int r = -1;
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int out = ls_tmpfile(store, &tmp, err);
    char digest[MK_DIGEST_SIZE];
    uint64_t size = 0;
    if (out >= 0 &&
        ls_compress_stream(source_read_cb, &in, out, c, level, threads, digest, &size, err) < 0) {
        unlink(tmp);
        mk_error_wrap(err, "compressing layer %s", src->diff_id);
    } else if (out >= 0) {
        r = source_verify(&in, src, err);
        if (r < 0)
            unlink(tmp);
        else
            r = copy_commit(store, src, c, level, out, tmp, digest, size, ret, err);
    }
    close(in.fd);
    source_release(&in);
    return r;
}

/* ---- a copy uploaded while it is made ---------------------------------------------------- */

struct mk_compress_stream {
    struct mk_store *store;
    struct mk_layer_desc src;
    enum mk_compression c;
    int level;
    struct source in;
    int out;   /* the copy (the existing blob when complete from the start) */
    char *tmp; /* NULL when complete from the start */
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t written;
    uint64_t hold_at; /* the compressor waits while written >= hold_at (UINT64_MAX: never) */
    bool ended, abort;
    int rc;                /* of the compression, valid once ended */
    int commit_rc;         /* of storing the copy, valid once the thread is joined */
    bool committed;        /* tmp renamed into the store */
    struct mk_error *err;  /* the compression's error */
    struct mk_error *cerr; /* the commit's */
    char digest[MK_DIGEST_SIZE];
    struct mk_layer_desc result;
};

/* Called on the writing thread after each write: tells the reader, then waits, off the CPU,
 * while the output has reached the limit the reader set (layerstore_compress_stream_allow). */
static int stream_advance(void *pctx, uint64_t written)
{
    struct mk_compress_stream *st = pctx;
    pthread_mutex_lock(&st->lock);
    st->written = written;
    pthread_cond_broadcast(&st->cond);
    while (!st->abort && st->written >= st->hold_at)
        pthread_cond_wait(&st->cond, &st->lock);
    bool abort = st->abort;
    pthread_mutex_unlock(&st->lock);
    return abort ? -1 : 0;
}

void layerstore_compress_stream_allow(struct mk_compress_stream *s, uint64_t limit)
{
    pthread_mutex_lock(&s->lock);
    if (s->hold_at != UINT64_MAX)
        s->hold_at = limit;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Compresses, says so (the digest is what an upload's closing request needs), then stores
 * the copy while the caller finishes the upload: the fsync of the copy is off its path. */
static void *stream_main(void *arg)
{
    struct mk_compress_stream *st = arg;
    uint64_t size = 0;
    struct mk_error *e = NULL;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int r = ls_compress_stream_progress(source_read_cb, &st->in, st->out, st->c, st->level,
                                        cpus > 1 ? (unsigned)cpus : 1, true, stream_advance, st,
                                        st->digest, &size, &e);
    if (r == 0)
        r = source_verify(&st->in, &st->src, &e);
    pthread_mutex_lock(&st->lock);
    st->rc = r;
    st->err = e;
    if (r == 0)
        st->written = size;
    st->ended = true;
    bool abort = st->abort;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    if (r == 0 && !abort) {
        st->commit_rc = copy_commit(st->store, &st->src, st->c, st->level, st->out, st->tmp,
                                    st->digest, size, &st->result, &st->cerr);
        st->committed = st->commit_rc == 0;
    }
    return NULL;
}

int layerstore_compress_stream_start(struct mk_store *store, const struct mk_layer_desc *src,
                                     enum mk_compression c, uint64_t limit,
                                     struct mk_compress_stream **ret, struct mk_error **err)
{
    if (c != MK_COMPRESS_GZIP && c != MK_COMPRESS_ZSTD)
        return mk_error_set(err, MK_ERR_INVALID, 0, "unknown compression %d", (int)c);
    struct mk_compress_stream *st = mk_xcalloc(1, sizeof(*st));
    st->store = store;
    st->src = *src;
    st->src.media_type = src->media_type ? mk_xstrdup(src->media_type) : NULL;
    st->c = c;
    st->level = c == MK_COMPRESS_GZIP ? GZIP_DEFAULT_LEVEL : ZSTD_DEFAULT_LEVEL;
    st->in.fd = st->out = -1;
    st->hold_at = limit ? limit : UINT64_MAX;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    int r = 0;
    if (existing_copy(store, src, c, st->level, &st->result)) {
        st->out = layerstore_blob_open(store, st->result.digest, err);
        r = st->out < 0 ? -1 : 0;
        st->written = st->result.size;
        st->ended = true;
    } else {
        r = source_open(store, src, &st->in, err);
        if (r == 0 && (st->out = ls_tmpfile(store, &st->tmp, err)) < 0)
            r = -1;
        if (r == 0 && pthread_create(&st->thread, NULL, stream_main, st) != 0)
            r = mk_error_set(err, MK_ERR_FAILED, 0, "cannot start a compression thread");
        st->running = r == 0;
    }
    if (r < 0) {
        layerstore_compress_stream_free(st);
        return -1;
    }
    *ret = st;
    return 0;
}

int layerstore_compress_stream_fd(const struct mk_compress_stream *s)
{
    return s->out;
}

uint64_t layerstore_compress_stream_wait(struct mk_compress_stream *s, uint64_t want,
                                         bool *ret_ended)
{
    pthread_mutex_lock(&s->lock);
    while (!s->ended && s->written < want)
        pthread_cond_wait(&s->cond, &s->lock);
    uint64_t n = s->written;
    *ret_ended = s->ended;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int layerstore_compress_stream_digest(struct mk_compress_stream *s, char ret_digest[MK_DIGEST_SIZE],
                                      uint64_t *ret_size)
{
    pthread_mutex_lock(&s->lock);
    while (!s->ended)
        pthread_cond_wait(&s->cond, &s->lock);
    int r = s->running ? s->rc : 0;
    const char *d = s->running ? s->digest : s->result.digest;
    if (r == 0) {
        memcpy(ret_digest, d, MK_DIGEST_SIZE);
        *ret_size = s->written;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int layerstore_compress_stream_finish(struct mk_compress_stream *s, bool abort,
                                      struct mk_layer_desc *ret, struct mk_error **err)
{
    if (s->running) {
        pthread_mutex_lock(&s->lock);
        s->abort = s->abort || abort;
        s->hold_at = UINT64_MAX;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->running = false;
        int r = s->rc;
        if (r < 0) {
            if (err && !*err)
                *err = MK_TAKE_PTR(s->err);
            mk_error_wrap(err, "compressing layer %s", s->src.diff_id);
        } else if (s->commit_rc < 0) {
            /* copy_commit removed tmp and said which layer */
            if (err && !*err)
                *err = MK_TAKE_PTR(s->cerr);
            r = -1;
        }
        if (!s->committed && (r < 0 || abort))
            unlink(s->tmp);
        free(s->tmp);
        s->tmp = NULL; /* renamed into the store, or gone */
        if (r < 0)
            return -1;
    }
    if (abort)
        return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "compression stopped");
    *ret = s->result;
    ret->media_type = mk_xstrdup(s->result.media_type);
    return 0;
}

void layerstore_compress_stream_free(struct mk_compress_stream *s)
{
    if (!s)
        return;
    if (s->running) {
        struct mk_layer_desc unused;
        layerstore_compress_stream_finish(s, true, &unused, NULL);
    }
    if (s->tmp)
        unlink(s->tmp);
    free(s->tmp);
    if (s->out >= 0)
        close(s->out);
    if (s->in.fd >= 0)
        close(s->in.fd);
    source_release(&s->in);
    mk_error_free(s->err);
    mk_error_free(s->cerr);
    free(s->result.media_type);
    free(s->src.media_type);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

struct job {
    struct mk_store *store;
    const struct mk_layer_desc *src;
    struct mk_layer_desc *out;
    struct mk_error **errs;
    size_t n;
    enum mk_compression c;
    int level;
    unsigned threads_per_layer;
    atomic_size_t next;
    atomic_bool failed;
};

static void *worker(void *arg)
{
    struct job *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n || atomic_load(&j->failed))
            break;
        if (compress_one(j->store, &j->src[i], j->c, j->level, j->threads_per_layer, &j->out[i],
                         &j->errs[i]) < 0)
            atomic_store(&j->failed, true);
    }
    return NULL;
}

int ls_compress_level(enum mk_compression c, int level, int *ret_level, struct mk_error **err)
{
    if (c != MK_COMPRESS_NONE && c != MK_COMPRESS_GZIP && c != MK_COMPRESS_ZSTD)
        return mk_error_set(err, MK_ERR_INVALID, 0, "unknown compression %d", (int)c);
    if (level == 0)
        level = c == MK_COMPRESS_GZIP ? GZIP_DEFAULT_LEVEL : ZSTD_DEFAULT_LEVEL;
    if ((c == MK_COMPRESS_GZIP && (level < 1 || level > 9)) ||
        (c == MK_COMPRESS_ZSTD && (level < 1 || level > 19)))
        return mk_error_set(err, MK_ERR_INVALID, 0, "compression level %d is out of range for %s",
                            level, algo_name(c));
    *ret_level = level;
    return 0;
}

bool ls_compress_existing(struct mk_store *store, const struct mk_layer_desc *src,
                          enum mk_compression c, int level, struct mk_layer_desc *ret)
{
    return existing_copy(store, src, c, level, ret);
}

int ls_compress_layer_to(struct mk_store *store, const struct mk_layer_desc *src,
                         enum mk_compression c, int level, int out_fd,
                         char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err)
{
    struct source in = {.fd = -1};
    int r = source_open(store, src, &in, err);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char digest[MK_DIGEST_SIZE];
    uint64_t size = 0;
    /* An archive is not synced (docs/save.md): no writeback is started on the way. */
    if (r == 0 && ls_compress_stream_progress(source_read_cb, &in, out_fd, c, level,
                                              cpus > 1 ? (unsigned)cpus : 1, false, NULL, NULL,
                                              digest, &size, err) < 0)
        r = mk_error_wrap(err, "compressing layer %s", src->diff_id);
    if (r == 0)
        r = source_verify(&in, src, err);
    if (in.fd >= 0)
        close(in.fd);
    source_release(&in);
    if (r < 0)
        return -1;
    memcpy(ret_digest, digest, MK_DIGEST_SIZE);
    *ret_size = size;
    return 0;
}

int layerstore_layers_compress(struct mk_store *store, const struct mk_layer_desc *layers, size_t n,
                               enum mk_compression c, int level, struct mk_layer_desc **ret,
                               struct mk_error **err)
{
    if (ls_compress_level(c, level, &level, err) < 0)
        return -1;
    struct mk_layer_desc *out = mk_xcalloc(n + 1, sizeof(*out));
    if (c == MK_COMPRESS_NONE) {
        for (size_t i = 0; i < n; i++)
            desc_copy(&out[i], &layers[i]);
        *ret = out;
        return 0;
    }
    struct job j = {.store = store, .src = layers, .out = out, .n = n, .c = c, .level = level};
    j.errs = mk_xcalloc(n + 1, sizeof(*j.errs));
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, false);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nthreads = cpus < 1 ? 1 : (size_t)cpus;
    if (nthreads > n)
        nthreads = n;
    /* Layers in parallel and each layer on several cores: the cores are shared out. The
     * bytes do not depend on it. */
    j.threads_per_layer = (unsigned)((cpus < 1 ? 1 : (size_t)cpus) / (nthreads ? nthreads : 1));
    if (j.threads_per_layer < 1)
        j.threads_per_layer = 1;
    pthread_t *threads = mk_xcalloc(nthreads + 1, sizeof(*threads));
    size_t started = 0;
    for (; started < nthreads; started++)
        if (pthread_create(&threads[started], NULL, worker, &j) != 0)
            break;
    /* With no thread at all, this one does the work. */
    if (started == 0)
        worker(&j);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    free(threads);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (j.errs[i] && r == 0) {
            if (err && !*err)
                *err = MK_TAKE_PTR(j.errs[i]);
            r = -1;
        }
        mk_error_free(j.errs[i]);
    }
    free(j.errs);
    if (r == 0 && atomic_load(&j.failed))
        r = mk_error_set(err, MK_ERR_FAILED, 0, "compression failed");
    if (r < 0) {
        layerstore_layer_descs_free(out, n);
        return -1;
    }
    *ret = out;
    return 0;
}
