/* layerstore/compress-stream.c - one stream compressed as gzip or zstd on several cores.
 *
 * zstd: libzstd's own workers (ZSTD_c_nbWorkers). Its streaming multithreaded mode gives the
 * same bytes for any number of workers >= 1, but not the same as the single-threaded mode,
 * so at least one worker is always asked for (when the library has threads at all; without
 * them the output is the single-threaded one on every machine with that library). A run of
 * input that a probe finds incompressible goes out as a frame of raw blocks instead, which
 * costs a copy where libzstd's match finder would spend ~0.7 s of CPU per GiB for nothing.
 *
 * gzip: pigz's method with libdeflate, which has no streaming, flush or dictionary interface
 * and is about twice as fast as zlib. The input is cut into fixed blocks of GZ_BLOCK bytes;
 * each is compressed on its own into a complete raw deflate stream (no dictionary from the
 * block before: that costs about 0.5% in size at this block length), or written as stored
 * blocks when a probe finds it incompressible. Every stream but the last then has the BFINAL
 * bit of its last block cleared and, if it ends inside a byte, an empty stored block appended
 * (what zlib's sync flush writes), found by walking its blocks (deflate-scan.c). The parts
 * concatenated in order form one valid deflate stream, framed as one gzip member (no name,
 * mtime 0, OS unknown) with the crc32 and length of the whole input. Blocks depend only on
 * the input, so the bytes are the same whatever the number of threads.
 *
 * Memory stays bounded: at most 2 * threads blocks are in flight, and the output is written
 * in input order as soon as the next block is done. Reading, hashing the output and writing
 * it run on threads of their own, through fixed rings of 1 MiB buffers (12 MiB in all).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <libdeflate.h>
#include <zstd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define GZ_BLOCK (512u << 10)
#define ZSTD_JOB (2u << 20)

/* ---- output: a pipeline of OUT_SLOTS buffers of OUT_BUF bytes ---------------------------
 *
 * The compressing thread fills one slot at a time; a hashing thread and a writing thread
 * each take the filled slots in order, and a slot is filled again once both are done with
 * it. So the SHA-256 of the output (~1.6 GB/s a core) and the write into the page cache no
 * longer sit on the path of the thread feeding the compressor, which on incompressible data
 * was most of the time (28% hashing alone). The writer asks the kernel to start writing
 * back every OUT_KICK bytes (sync_file_range, on files that support it): every caller
 * fsyncs the copy when it is done, and that fsync then finds most of it on disk already
 * instead of all of it dirty. */

#define OUT_BUF (1u << 20)
#define OUT_SLOTS 8
#define OUT_KICK (8u << 20)

struct out {
    int fd;
    struct mk_sha256 *h;
    uint64_t size; /* bytes passed to the slots */
    char *slot[OUT_SLOTS];
    size_t slot_len[OUT_SLOTS];
    size_t fill;             /* bytes in the slot being filled (number `produced`) */
    ls_progress_fn progress; /* or NULL; called on the writing thread */
    void *pctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t produced, hashed, written; /* slots, counted since the start */
    uint64_t bytes_written, kicked;
    bool writeback; /* kick writeback every OUT_KICK bytes */
    bool closing, failed;
    struct mk_error *werr; /* the writer's error, once failed */
    pthread_t hasher, writer;
    int n_threads; /* 0: no thread could start, slots are hashed and written inline */
};

static int out_put(struct out *o, const char *data, size_t n, struct mk_error **err)
{
    if (mk_write_all(o->fd, data, n, err) < 0)
        return -1;
    o->bytes_written += n;
    if (o->writeback && o->bytes_written - o->kicked >= OUT_KICK) {
        /* Errors (a pipe, a file system without it) only mean no early writeback. */
        (void)sync_file_range(o->fd, (off_t)o->kicked, (off_t)(o->bytes_written - o->kicked),
                              SYNC_FILE_RANGE_WRITE);
        o->kicked = o->bytes_written;
    }
    if (o->progress && o->progress(o->pctx, o->bytes_written) < 0)
        return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "compression stopped");
    return 0;
}

/* Waits for the next slot after *done (a counter in o) and returns it, or -1 at the end. */
static int out_next(struct out *o, const uint64_t *done)
{
    pthread_mutex_lock(&o->mu);
    while (*done == o->produced && !o->closing && !o->failed)
        pthread_cond_wait(&o->cv, &o->mu);
    int i = *done == o->produced || o->failed ? -1 : (int)(*done % OUT_SLOTS);
    pthread_mutex_unlock(&o->mu);
    return i;
}

static void out_done(struct out *o, uint64_t *done)
{
    pthread_mutex_lock(&o->mu);
    (*done)++;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void *out_hasher(void *arg)
{
    struct out *o = arg;
    for (int i; (i = out_next(o, &o->hashed)) >= 0; out_done(o, &o->hashed))
        mk_sha256_update(o->h, o->slot[i], o->slot_len[i]);
    return NULL;
}

static void *out_writer(void *arg)
{
    struct out *o = arg;
    for (int i; (i = out_next(o, &o->written)) >= 0; out_done(o, &o->written)) {
        struct mk_error *e = NULL;
        if (out_put(o, o->slot[i], o->slot_len[i], &e) < 0) {
            pthread_mutex_lock(&o->mu);
            o->werr = e;
            o->failed = true;
            pthread_cond_broadcast(&o->cv);
            pthread_mutex_unlock(&o->mu);
            break;
        }
    }
    return NULL;
}

static void out_init(struct out *o, int fd, bool writeback, ls_progress_fn progress, void *pctx)
{
    *o = (struct out){
        .fd = fd, .h = mk_sha256_new(), .writeback = writeback, .progress = progress, .pctx = pctx};
    for (int i = 0; i < OUT_SLOTS; i++)
        o->slot[i] = mk_xmalloc(OUT_BUF);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->hasher, NULL, out_hasher, o) != 0)
        return;
    if (pthread_create(&o->writer, NULL, out_writer, o) != 0) {
        pthread_mutex_lock(&o->mu);
        o->closing = true;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->hasher, NULL);
        o->closing = false;
        return;
    }
    o->n_threads = 2;
}

/* The writer's error, passed on as it is. */
static int out_take_error(struct out *o, struct mk_error **err)
{
    if (err && !*err)
        *err = MK_TAKE_PTR(o->werr);
    return -1;
}

/* Hands the slot being filled to the hasher and writer (or hashes and writes it here) and
 * waits until the next one is free. */
static int out_commit(struct out *o, struct mk_error **err)
{
    if (o->fill == 0)
        return 0;
    int i = (int)(o->produced % OUT_SLOTS);
    o->slot_len[i] = o->fill;
    o->fill = 0;
    if (o->n_threads == 0) {
        mk_sha256_update(o->h, o->slot[i], o->slot_len[i]);
        return out_put(o, o->slot[i], o->slot_len[i], err);
    }
    pthread_mutex_lock(&o->mu);
    o->produced++;
    pthread_cond_broadcast(&o->cv);
    while (!o->failed &&
           o->produced - (o->hashed < o->written ? o->hashed : o->written) == OUT_SLOTS)
        pthread_cond_wait(&o->cv, &o->mu);
    bool failed = o->failed;
    pthread_mutex_unlock(&o->mu);
    return failed ? out_take_error(o, err) : 0;
}

/* Room left in the slot being filled, which the caller may write to directly and then
 * count with out_advance. */
static char *out_room(struct out *o, size_t *ret_len)
{
    *ret_len = OUT_BUF - o->fill;
    return o->slot[o->produced % OUT_SLOTS] + o->fill;
}

static int out_advance(struct out *o, size_t n, struct mk_error **err)
{
    o->fill += n;
    o->size += n;
    return o->fill == OUT_BUF ? out_commit(o, err) : 0;
}

static int out_write(struct out *o, const void *data, size_t n, struct mk_error **err)
{
    while (n > 0) {
        size_t room;
        char *p = out_room(o, &room);
        size_t k = room < n ? room : n;
        memcpy(p, data, k);
        data = (const char *)data + k;
        n -= k;
        if (out_advance(o, k, err) < 0)
            return -1;
    }
    return 0;
}

/* Writes what is left, stops the threads and, when everything was written, gives the
 * digest. Releases o in any case. */
static int out_finish(struct out *o, int r, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    if (r == 0)
        r = out_commit(o, err);
    if (o->n_threads) {
        pthread_mutex_lock(&o->mu);
        o->closing = true;
        if (r < 0)
            o->failed = true; /* nothing more needs hashing or writing */
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->hasher, NULL);
        pthread_join(o->writer, NULL);
        if (r == 0 && o->failed)
            r = out_take_error(o, err);
    }
    if (r == 0)
        mk_sha256_final(o->h, ret_digest);
    mk_sha256_free(o->h);
    mk_error_free(o->werr);
    for (int i = 0; i < OUT_SLOTS; i++)
        free(o->slot[i]);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    return r;
}

/* Reads until buf is full or the input ends. */
static ssize_t read_full(ls_read_fn rd, void *ctx, char *buf, size_t n, struct mk_error **err)
{
    size_t got = 0;
    while (got < n) {
        if (mk_interrupted)
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
        ssize_t r = rd(ctx, buf + got, n - got, err);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* ---- input: read ahead on a thread of its own -------------------------------------------
 *
 * Reading (a copy out of the page cache, or decoding a pulled layer) runs on its own thread
 * into IN_SLOTS buffers of IN_BUF bytes, so the thread feeding the compressor only feeds it.
 * A slot shorter than IN_BUF is the last one. */

#define IN_BUF (1u << 20)
#define IN_SLOTS 4

struct in {
    ls_read_fn rd;
    void *ctx;
    char *slot[IN_SLOTS];
    size_t len[IN_SLOTS];
    size_t pos; /* bytes of the slot `taken` already consumed by in_read */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t filled, taken; /* slots */
    bool ended, stop, failed;
    struct mk_error *err; /* the reader's error, once failed */
    pthread_t reader;
    bool threaded;
};

/* Reads slot number `filled`; false at the end or on failure (recorded in in). */
static bool in_fill(struct in *p)
{
    int i = (int)(p->filled % IN_SLOTS);
    struct mk_error *e = NULL;
    ssize_t n = read_full(p->rd, p->ctx, p->slot[i], IN_BUF, &e);
    pthread_mutex_lock(&p->mu);
    if (n < 0) {
        p->err = e;
        p->failed = true;
    } else {
        p->len[i] = (size_t)n;
        p->filled++;
        p->ended = (size_t)n < IN_BUF;
    }
    pthread_cond_broadcast(&p->cv);
    bool more = !p->failed && !p->ended;
    pthread_mutex_unlock(&p->mu);
    return more;
}

static void *in_reader(void *arg)
{
    struct in *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->filled - p->taken == IN_SLOTS)
            pthread_cond_wait(&p->cv, &p->mu);
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop || !in_fill(p))
            return NULL;
    }
}

static void in_init(struct in *p, ls_read_fn rd, void *ctx)
{
    *p = (struct in){.rd = rd, .ctx = ctx};
    for (int i = 0; i < IN_SLOTS; i++)
        p->slot[i] = mk_xmalloc(IN_BUF);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threaded = pthread_create(&p->reader, NULL, in_reader, p) == 0;
}

/* The next slot's bytes (a short one is the last), valid until in_release: returns 1, or 0
 * at the end (nothing to release). */
static int in_next(struct in *p, const char **ret_data, size_t *ret_len, struct mk_error **err)
{
    if (!p->threaded && p->filled == p->taken && !p->ended && !p->failed)
        in_fill(p);
    pthread_mutex_lock(&p->mu);
    while (p->filled == p->taken && !p->failed && !p->ended)
        pthread_cond_wait(&p->cv, &p->mu);
    bool have = p->filled != p->taken;
    pthread_mutex_unlock(&p->mu);
    if (!have && p->failed) {
        if (err && !*err)
            *err = MK_TAKE_PTR(p->err);
        return -1;
    }
    int i = (int)(p->taken % IN_SLOTS);
    *ret_data = have ? p->slot[i] + p->pos : "";
    *ret_len = have ? p->len[i] - p->pos : 0;
    return have ? 1 : 0;
}

static void in_release(struct in *p)
{
    pthread_mutex_lock(&p->mu);
    p->taken++;
    p->pos = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Up to n bytes into buf: fewer only at the end. */
static ssize_t in_read(struct in *p, char *buf, size_t n, struct mk_error **err)
{
    size_t got = 0;
    while (got < n) {
        const char *data;
        size_t len;
        int r = in_next(p, &data, &len, err);
        if (r <= 0)
            return r < 0 ? -1 : (ssize_t)got;
        size_t k = len < n - got ? len : n - got;
        memcpy(buf + got, data, k);
        got += k;
        p->pos += k;
        if (k == len) {
            bool last = p->pos < IN_BUF;
            in_release(p);
            if (last)
                break;
        }
    }
    return (ssize_t)got;
}

static void in_release_all(struct in *p)
{
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->reader, NULL);
    }
    mk_error_free(p->err);
    for (int i = 0; i < IN_SLOTS; i++)
        free(p->slot[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

/* ---- a probe for incompressible data ---------------------------------------------------
 *
 * Whether a block looks incompressible: none of a few slices spread over it shrinks by 1/32
 * at deflate level 1 (probe: a level-1 libdeflate compressor). Compressing such a block
 * costs as much CPU as a compressible one and gains nothing, and layers of compressed files
 * (archives, images, packed binaries) are common. Blocks under 128 KiB are never judged so. */
#define PROBES 8
#define PROBE_LEN (4u << 10)
static bool looks_incompressible(struct libdeflate_compressor *probe, const char *data, size_t len)
{
    if (len < 4 * PROBES * PROBE_LEN)
        return false;
    char out[PROBE_LEN];
    for (size_t k = 0; k < PROBES; k++) {
        size_t off = (len - PROBE_LEN) / (PROBES - 1) * k;
        if (libdeflate_deflate_compress(probe, data + off, PROBE_LEN, out, PROBE_LEN * 31 / 32) !=
            0)
            return false;
    }
    return true;
}

/* ---- zstd ------------------------------------------------------------------------------- */

MK_DEFINE_CLEANUP(ZSTD_CCtx, ZSTD_freeCCtx)

bool ls_zstd_has_threads(void)
{
    ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);
    return !ZSTD_isError(b.error) && b.upperBound >= 1;
}

/* Incompressible input goes out as frames of raw blocks instead (RFC 8878: a zstd stream is
 * any sequence of frames; zstd(1), libzstd and Go's readers take them all). A run of slots
 * the probe finds incompressible becomes such a frame once RAW_AFTER slots in a row are, so
 * mixed content does not flap between frames, each switch of which waits for libzstd's
 * workers; the first compressible slot ends it. A raw frame has no content size and no
 * checksum (the layer's digest covers the bytes), a 128 KiB window, and blocks of at most
 * 128 KiB; an empty last block ends it. The frames depend only on the bytes, so the output
 * still does not depend on the number of workers, and input with no incompressible run of
 * RAW_AFTER MiB is compressed exactly as before: one frame. */
#define RAW_AFTER 4
#define RAW_BLOCK (128u << 10)

static int raw_frame_start(struct out *o, struct mk_error **err)
{
    /* magic; no content size, not single-segment, no checksum, no dictionary; window 2^17 */
    static const unsigned char header[6] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3};
    return out_write(o, header, sizeof(header), err);
}

/* A raw block per RAW_BLOCK bytes, or the empty last block that ends the frame (n == 0). */
static int raw_blocks(struct out *o, const char *data, size_t n, struct mk_error **err)
{
    do {
        size_t k = n < RAW_BLOCK ? n : RAW_BLOCK;
        uint32_t h = (uint32_t)k << 3 | (n == 0); /* block type 0: raw */
        unsigned char hdr[3] = {(unsigned char)h, (unsigned char)(h >> 8),
                                (unsigned char)(h >> 16)};
        if (out_write(o, hdr, sizeof(hdr), err) < 0 || out_write(o, data, k, err) < 0)
            return -1;
        data += k;
        n -= k;
    } while (n > 0);
    return 0;
}

/* Feeds one slot (or nothing) to the frame being compressed, ending it when mode says so. */
static int zstd_feed(ZSTD_CCtx *z, struct out *o, const char *data, size_t n,
                     ZSTD_EndDirective mode, struct mk_error **err)
{
    ZSTD_inBuffer ib = {data, n, 0};
    for (;;) {
        /* The output goes straight into the slot being filled. */
        ZSTD_outBuffer ob = {NULL, 0, 0};
        ob.dst = out_room(o, &ob.size);
        size_t left = ZSTD_compressStream2(z, &ob, &ib, mode);
        if (ZSTD_isError(left))
            return mk_error_set(err, MK_ERR_FAILED, 0, "zstd compression: %s",
                                ZSTD_getErrorName(left));
        if (out_advance(o, ob.pos, err) < 0)
            return -1;
        if (mode == ZSTD_e_end ? left == 0 : ib.pos == ib.size)
            return 0;
    }
}

static int zstd_setup(ZSTD_CCtx *z, int level, unsigned threads, struct mk_error **err)
{
    size_t r = ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(r) && ls_zstd_has_threads())
        r = ZSTD_CCtx_setParameter(z, ZSTD_c_nbWorkers, threads ? (int)threads : 1);
    /* libzstd's own job size at level 3 is 8 MiB, and it keeps about seven jobs' worth of
     * buffers: ~110 MiB of RSS for two workers. 2 MiB jobs keep it near 35 MiB and cost
     * under 0.1% in size (the jobs still overlap by a quarter of the window). Fixed, so the
     * bytes still do not depend on the worker count. */
    if (!ZSTD_isError(r) && ls_zstd_has_threads())
        r = ZSTD_CCtx_setParameter(z, ZSTD_c_jobSize, ZSTD_JOB);
    if (ZSTD_isError(r))
        return mk_error_set(err, MK_ERR_FAILED, 0, "setting up zstd: %s", ZSTD_getErrorName(r));
    return 0;
}

MK_DEFINE_CLEANUP(struct libdeflate_compressor, libdeflate_free_compressor)

static int zstd_stream(struct in *in, struct out *o, int level, unsigned threads,
                       struct mk_error **err)
{
    _cleanup_(ZSTD_freeCCtxp) ZSTD_CCtx *z = ZSTD_createCCtx();
    _cleanup_(libdeflate_free_compressorp) struct libdeflate_compressor *probe =
        libdeflate_alloc_compressor(1);
    if (!z || !probe)
        MK_BUG("out of memory for the zstd and probe contexts");
    if (zstd_setup(z, level, threads, err) < 0)
        return -1;
    bool in_frame = false, in_raw = false;
    unsigned run = 0; /* incompressible slots in a row */
    for (;;) {
        const char *data;
        size_t n;
        int more = in_next(in, &data, &n, err);
        if (more < 0)
            return -1;
        run = looks_incompressible(probe, data, n) ? run + 1 : 0;
        bool raw = run >= RAW_AFTER;
        if (raw && in_frame) {
            if (zstd_feed(z, o, NULL, 0, ZSTD_e_end, err) < 0)
                return -1;
            in_frame = false;
        } else if (!raw && in_raw) {
            if (raw_blocks(o, NULL, 0, err) < 0)
                return -1;
            in_raw = false;
        }
        if (raw) {
            if (!in_raw && raw_frame_start(o, err) < 0)
                return -1;
            in_raw = true;
            if (raw_blocks(o, data, n, err) < 0 || (!more && raw_blocks(o, NULL, 0, err) < 0))
                return -1;
        } else if (more || n > 0 || in_frame || o->size == 0) {
            /* Data goes in with ZSTD_e_continue and the end comes on its own, so a frame
             * never takes the single-pass path, whose output depends on the worker count;
             * a frame that starts with the last slot after a raw frame gets its end in a
             * call of its own. (An input that is one slot is still compressed in one call,
             * as it always was.) */
            bool split = !more && !in_frame && o->size > 0;
            if (split && zstd_feed(z, o, data, n, ZSTD_e_continue, err) < 0)
                return -1;
            if (zstd_feed(z, o, split ? NULL : data, split ? 0 : n,
                          more ? ZSTD_e_continue : ZSTD_e_end, err) < 0)
                return -1;
            in_frame = more;
        }
        if (!more)
            return 0;
        in_release(in);
    }
}

/* ---- gzip ------------------------------------------------------------------------------- */

struct gz_job {
    char *in;
    size_t len;
    bool last;
    char *out;
    size_t out_len, out_cap;
    uint64_t last_header, end; /* bit positions in out: see ls_deflate_scan */
    int state;                 /* 0 free, 1 queued, 2 done, -1 failed */
};

struct gz_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct gz_job *jobs;
    size_t n_jobs;
    size_t next_queued; /* index (mod n_jobs) a worker takes next, counting all jobs ever */
    size_t n_submitted;
    int level;
    bool stop;
};

/* One pair of compressors per thread: the level asked for, and level 1 to probe a block. */
struct gz_stream {
    struct libdeflate_compressor *c, *probe;
};

static void gz_stream_release(struct gz_stream *z)
{
    libdeflate_free_compressor(z->c);
    libdeflate_free_compressor(z->probe);
    z->c = z->probe = NULL;
}

static void gz_reserve(struct gz_job *j, size_t need)
{
    /* Room for the realignment compress-stream.c may append (at most 6 bytes). */
    need += 16;
    if (j->out_cap < need) {
        free(j->out);
        j->out = mk_xmalloc(need);
        j->out_cap = need;
    }
}

/* The block as stored blocks of at most 65535 bytes, the last one marked final. */
static void gz_stored(struct gz_job *j)
{
    size_t n_chunks = j->len ? (j->len + 65534) / 65535 : 1;
    gz_reserve(j, j->len + 5 * n_chunks);
    size_t o = 0, i = 0;
    do {
        size_t k = j->len - i < 65535 ? j->len - i : 65535;
        j->last_header = 8 * (uint64_t)o;
        j->out[o++] = i + k == j->len ? 1 : 0;
        j->out[o++] = (char)(k & 0xff);
        j->out[o++] = (char)(k >> 8);
        j->out[o++] = (char)(~k & 0xff);
        j->out[o++] = (char)((~k >> 8) & 0xff);
        memcpy(j->out + o, j->in + i, k);
        o += k;
        i += k;
    } while (i < j->len);
    j->out_len = o;
    j->end = 8 * (uint64_t)o;
}

static bool gz_incompressible(struct gz_stream *z, const struct gz_job *j)
{
    return looks_incompressible(z->probe, j->in, j->len);
}

static int gz_deflate_block(struct gz_job *j, int level, struct gz_stream *z)
{
    if (!z->c) {
        z->c = libdeflate_alloc_compressor(level);
        z->probe = libdeflate_alloc_compressor(1);
        if (!z->c || !z->probe)
            return -1;
    }
    if (j->len == 0 || gz_incompressible(z, j)) {
        gz_stored(j);
        return 0;
    }
    size_t stored = j->len + 5 * ((j->len + 65534) / 65535);
    gz_reserve(j, stored);
    /* Anything no smaller than the stored form is no use: libdeflate returns 0 for it. */
    size_t n = libdeflate_deflate_compress(z->c, j->in, j->len, j->out, stored);
    if (n == 0 || ls_deflate_scan(j->out, n, &j->last_header, &j->end) < 0) {
        gz_stored(j);
        return 0;
    }
    j->out_len = n;
    return 0;
}

/* Makes job j's stream a part of the whole: the last one keeps its final block; any other
 * loses the BFINAL bit and, when it ends inside a byte, gets an empty stored block (as a
 * zlib sync flush would) so the next part starts on a byte boundary. */
static void gz_join(struct gz_job *j)
{
    if (j->last)
        return;
    j->out[j->last_header >> 3] &= (char)~(1u << (j->last_header & 7));
    if ((j->end & 7) == 0)
        return;
    /* Bits after the end are zero (the stored block's header, BFINAL 0, BTYPE 00); then up to
     * the byte boundary, LEN 0 and NLEN 0xffff. */
    size_t at = (size_t)(j->end >> 3);
    j->out[at] &= (char)((1u << (j->end & 7)) - 1);
    size_t len = (size_t)((j->end + 3 + 7) >> 3);
    for (size_t i = at + 1; i < len; i++)
        j->out[i] = 0;
    memcpy(j->out + len, "\0\0\xff\xff", 4);
    j->out_len = len + 4;
}

/* Compresses the next queued job; called and returns with p->mu held. */
static void gz_run_next(struct gz_pool *p, struct gz_stream *z)
{
    struct gz_job *j = &p->jobs[p->next_queued++ % p->n_jobs];
    pthread_mutex_unlock(&p->mu);
    int r = gz_deflate_block(j, p->level, z);
    pthread_mutex_lock(&p->mu);
    j->state = r == 0 ? 2 : -1;
    pthread_cond_broadcast(&p->cv);
}

static void *gz_worker(void *arg)
{
    struct gz_pool *p = arg;
    struct gz_stream z = {NULL, NULL};
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next_queued == p->n_submitted)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break;
        gz_run_next(p, &z);
    }
    pthread_mutex_unlock(&p->mu);
    gz_stream_release(&z);
    return NULL;
}

/* Waits for job i to finish and writes its output. */
static int gz_collect(struct gz_pool *p, size_t i, struct out *o, struct mk_error **err)
{
    struct gz_job *j = &p->jobs[i % p->n_jobs];
    pthread_mutex_lock(&p->mu);
    while (j->state == 1)
        pthread_cond_wait(&p->cv, &p->mu);
    int state = j->state;
    j->state = 0;
    pthread_mutex_unlock(&p->mu);
    if (state < 0)
        return mk_error_set(err, MK_ERR_FAILED, 0, "gzip compression of a block failed");
    gz_join(j);
    return out_write(o, j->out, j->out_len, err);
}

static int gzip_stream(struct in *in, struct out *o, int level, unsigned threads,
                       struct mk_error **err)
{
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
    if (out_write(o, header, sizeof(header), err) < 0)
        return -1;
    if (threads < 1)
        threads = 1;
    struct gz_pool p = {.level = level, .n_jobs = 2 * (size_t)threads};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    p.jobs = mk_xcalloc(p.n_jobs, sizeof(*p.jobs));
    for (size_t i = 0; i < p.n_jobs; i++)
        p.jobs[i].in = mk_xmalloc(GZ_BLOCK);
    pthread_t *tids = mk_xcalloc(threads, sizeof(*tids));
    size_t started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tids[started], NULL, gz_worker, &p) != 0)
            break;
    struct gz_stream own = {NULL, NULL};
    uint32_t crc = 0;
    uint64_t total = 0;
    size_t collected = 0;
    int r = 0;
    /* The block read ahead (a block is the last one only when nothing follows it), handed
     * to its job by swapping buffers. */
    char *ahead = mk_xmalloc(GZ_BLOCK);
    ssize_t ahead_len = in_read(in, ahead, GZ_BLOCK, err);
    if (ahead_len < 0)
        r = -1;
    while (r == 0) {
        size_t idx = p.n_submitted;
        if (idx - collected == p.n_jobs && (r = gz_collect(&p, collected++, o, err)) < 0)
            break;
        struct gz_job *j = &p.jobs[idx % p.n_jobs];
        char *swap = j->in;
        j->in = ahead;
        ahead = swap;
        j->len = (size_t)ahead_len;
        crc = libdeflate_crc32(crc, j->in, j->len);
        total += j->len;
        ahead_len = j->len == GZ_BLOCK ? in_read(in, ahead, GZ_BLOCK, err) : 0;
        if (ahead_len < 0) {
            r = -1;
            break;
        }
        j->last = ahead_len == 0;
        pthread_mutex_lock(&p.mu);
        j->state = 1;
        p.n_submitted++;
        pthread_cond_broadcast(&p.cv);
        if (started == 0) /* no thread could be started: this one does the work */
            gz_run_next(&p, &own);
        pthread_mutex_unlock(&p.mu);
        if (j->last)
            break;
    }
    while (r == 0 && collected < p.n_submitted)
        r = gz_collect(&p, collected++, o, err);
    /* On failure, let the workers finish what they hold before the buffers go. */
    pthread_mutex_lock(&p.mu);
    while (r < 0 && started && p.next_queued != p.n_submitted)
        pthread_cond_wait(&p.cv, &p.mu);
    p.stop = true;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (size_t t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    free(tids);
    gz_stream_release(&own);
    free(ahead);
    for (size_t i = 0; i < p.n_jobs; i++) {
        free(p.jobs[i].in);
        free(p.jobs[i].out);
    }
    free(p.jobs);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    if (r < 0)
        return -1;
    unsigned char trailer[8];
    for (int k = 0; k < 4; k++) {
        trailer[k] = (unsigned char)(crc >> (8 * k));
        trailer[4 + k] = (unsigned char)(total >> (8 * k));
    }
    return out_write(o, trailer, sizeof(trailer), err);
}

int ls_compress_stream(ls_read_fn rd, void *ctx, int out_fd, enum mk_compression c, int level,
                       unsigned threads, char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                       struct mk_error **err)
{
    return ls_compress_stream_progress(rd, ctx, out_fd, c, level, threads, true, NULL, NULL,
                                       ret_digest, ret_size, err);
}

int ls_compress_stream_progress(ls_read_fn rd, void *ctx, int out_fd, enum mk_compression c,
                                int level, unsigned threads, bool writeback,
                                ls_progress_fn progress, void *pctx,
                                char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                                struct mk_error **err)
{
    if (c != MK_COMPRESS_ZSTD && c != MK_COMPRESS_GZIP)
        return mk_error_set(err, MK_ERR_INVALID, 0, "unknown compression %d", (int)c);
    struct in in;
    in_init(&in, rd, ctx);
    struct out o;
    out_init(&o, out_fd, writeback, progress, pctx);
    int r = c == MK_COMPRESS_ZSTD ? zstd_stream(&in, &o, level, threads, err)
                                  : gzip_stream(&in, &o, level, threads, err);
    in_release_all(&in);
    uint64_t size = o.size;
    if (out_finish(&o, r, ret_digest, err) < 0)
        return -1;
    *ret_size = size;
    return 0;
}
