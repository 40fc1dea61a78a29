/* layerstore/tar-write.c - a directory tree to a deterministic layer tar.
 *
 * The same tree always gives the same bytes: entries are sorted by name bytes, only
 * content-defining metadata is written (no atime/ctime, no user/group names, no inode or
 * device numbers of the host) and mtimes are whole seconds, so the restricted PAX writer only
 * adds extended headers when a value needs one (long names, xattrs, large ids or sizes).
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fsutil.h"
#include "common/util.h"
#include "layerstore/internal.h"

MK_DEFINE_CLEANUP(struct archive, archive_write_free)
MK_DEFINE_CLEANUP(struct archive_entry, archive_entry_free)

/* Deeper trees would run out of file descriptors (one per level) long before. */
#define MAX_DEPTH 512

struct link_slot {
    dev_t dev;
    ino_t ino;
    char *path; /* NULL: empty slot */
};

/* Open-addressing map (dev, ino) -> first path, for inodes with st_nlink > 1. */
struct link_map {
    struct link_slot *slots;
    size_t cap, n;
};

/* libarchive hands over 10 KiB blocks; they are gathered into slots of SLOT_SIZE bytes, which
 * a hashing thread and a writing thread take in order (hashing, ~1.6 GB/s a core, and the
 * write into the page cache no longer sit on the path of the walk that reads the files: a
 * 1 GiB file spent ~40% of the layer's time in each), as compress-stream.c does for the
 * compressed copy. At most N_SLOTS are in flight. The writing thread asks
 * the kernel to start writing back every KICK_BYTES, so that the blob's fsync finds most of it
 * on disk already. Without the threads (pthread_create failed, or after stop), a slot is
 * hashed and written where it is filled. */
#define SLOT_SIZE (1u << 20)
#define N_SLOTS 4
#define KICK_BYTES (8u << 20)
/* Entries copied from an earlier blob (tar-index.c) are read in runs of at most this many
 * bytes, whole entries each; a bigger entry is written from its file. */
#define RUN_BUF_SIZE (1u << 20)
/* A commit's tree of many files (reuse->sync_early), e.g. a COPY of a big source tree: the
 * step has just written them, they are all dirty in the page cache, and their write-back at
 * the sync that makes the snapshot durable (the build's syncfs, or the snapshot's) took as
 * long as the tar itself, with the tar's second core idle meanwhile (manyfiles, 20,000 files
 * of 3 KiB on a journaled ext4: ~0.2 s each). Once the walk has come to this many files, one
 * syncfs of the tree's file system runs on a thread of its own, so that the write-back
 * overlaps the rest of the tar; the writer waits for it before it returns (no thread outlives
 * the commit: the builder forks next). A big file alone does not start it: its data is
 * streamed to the disk as fast either way, and a snapshot that is dropped unsynced should not
 * be written back for nothing. Its failure fails the commit: syncfs reports a write-back
 * error once per open file, and a file opened after it (a snapshot's own sync) might not
 * hear of it. */
#define EARLY_SYNC_FILES 1024

struct writer {
    struct archive *a;
    int out_fd;
    int64_t clamp_mtime; /* -1, or the build epoch: no mtime after it (reproducible builds) */
    struct mk_sha256 *hash;
    uint64_t size;
    struct mk_error *cb_err; /* an error from the write callback, reported first */
    struct link_map links;
    /* Directories left unchanged by a step, from the root down to the one being walked:
     * written only once something under them is (pending[i] NULL once written). */
    struct archive_entry **pending;
    size_t n_pending;
    char *diff_buf; /* scratch for tar-diff.c's content comparison */
    /* The output pipeline (see SLOT_SIZE). */
    char *slot[N_SLOTS];
    size_t slot_len[N_SLOTS];
    size_t fill;                /* bytes in slot[produced % N_SLOTS] */
    uint64_t produced, done[2]; /* slots handed over; hashed, written */
    uint64_t written, kicked;   /* bytes */
    bool closing, failed;
    struct mk_error *werr; /* the writing thread's error, once failed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread[2];
    struct slot_role {
        struct writer *w;
        int role; /* 0: hashes, 1: writes */
    } roles[2];
    int n_threads; /* 2, or 0 when they could not start (or were stopped) */
    /* Entries copied from an earlier layer's blob: those of the run not yet read (contiguous
     * there), emitted before anything else is written. */
    struct ls_tar_reuse *reuse;
    const struct ls_tar_index_rec **run;
    size_t n_run, cap_run;
    uint64_t run_len;
    char *run_buf;
    uint64_t entry_start; /* where the entry being written began */
    /* EARLY_SYNC_FILES: regular files come to (count_file), and the syncfs (NULL until
     * started). */
    uint64_t files_seen;
    struct ls_early_sync *early;
    uid_t euid; /* for open_data's O_NOATIME */
};

static size_t link_hash(dev_t dev, ino_t ino, size_t cap)
{
    uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4fULL;
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static struct link_slot *link_find(struct link_map *m, dev_t dev, ino_t ino)
{
    if (!m->cap)
        return NULL;
    for (size_t i = link_hash(dev, ino, m->cap);; i = (i + 1) & (m->cap - 1)) {
        struct link_slot *s = &m->slots[i];
        if (!s->path || (s->dev == dev && s->ino == ino))
            return s;
    }
}

static void link_add(struct link_map *m, dev_t dev, ino_t ino, const char *path)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct link_map bigger = {mk_xcalloc(m->cap ? m->cap * 2 : 64, sizeof(struct link_slot)),
                                  m->cap ? m->cap * 2 : 64, m->n};
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].path)
                *link_find(&bigger, m->slots[i].dev, m->slots[i].ino) = m->slots[i];
        free(m->slots);
        *m = bigger;
    }
    struct link_slot *s = link_find(m, dev, ino);
    *s = (struct link_slot){dev, ino, mk_xstrdup(path)};
    m->n++;
}

static void link_map_release(struct link_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].path);
    free(m->slots);
    *m = (struct link_map){0};
}

static int slot_write(struct writer *w, int i, struct mk_error **err)
{
    if (w->out_fd < 0)
        return 0;
    if (mk_write_all(w->out_fd, w->slot[i], w->slot_len[i], err) < 0)
        return -1;
    w->written += w->slot_len[i];
    if (w->written - w->kicked >= KICK_BYTES) {
        /* Errors (a pipe, a file system without it) only mean no early writeback. */
        (void)sync_file_range(w->out_fd, (off_t)w->kicked, (off_t)(w->written - w->kicked),
                              SYNC_FILE_RANGE_WRITE);
        w->kicked = w->written;
    }
    return 0;
}

/* One of the two threads: hashes (done[0]) or writes (done[1]) the slots in order. */
static void *slot_thread(void *arg)
{
    struct slot_role *r = arg;
    struct writer *w = r->w;
    uint64_t *done = &w->done[r->role];
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (*done == w->produced && !w->closing && !w->failed)
            pthread_cond_wait(&w->cv, &w->mu);
        if (*done == w->produced || w->failed)
            break;
        int i = (int)(*done % N_SLOTS);
        pthread_mutex_unlock(&w->mu);
        struct mk_error *e = NULL;
        int ok = 0;
        if (r->role == 0)
            mk_sha256_update(w->hash, w->slot[i], w->slot_len[i]);
        else
            ok = slot_write(w, i, &e);
        pthread_mutex_lock(&w->mu);
        if (ok < 0) {
            w->werr = e;
            w->failed = true;
        } else {
            (*done)++;
        }
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void writer_start(struct writer *w)
{
    for (int i = 0; i < N_SLOTS; i++)
        w->slot[i] = mk_xmalloc(SLOT_SIZE);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (int k = 0; k < 2; k++) {
        w->roles[k] = (struct slot_role){w, k};
        if (pthread_create(&w->thread[k], NULL, slot_thread, &w->roles[k]) != 0)
            break;
        w->n_threads++;
    }
    if (w->n_threads == 1) { /* both or none */
        pthread_mutex_lock(&w->mu);
        w->closing = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread[0], NULL);
        w->closing = false;
        w->n_threads = 0;
    }
}

/* Waits for the threads to finish what they were given, then ends them; from here on slots
 * are hashed and written inline. */
static void writer_stop(struct writer *w)
{
    if (!w->n_threads)
        return;
    pthread_mutex_lock(&w->mu);
    w->closing = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int k = 0; k < w->n_threads; k++)
        pthread_join(w->thread[k], NULL);
    w->n_threads = 0;
    if (w->werr && !w->cb_err)
        w->cb_err = MK_TAKE_PTR(w->werr);
}

static void writer_release(struct writer *w)
{
    writer_stop(w);
    for (int i = 0; i < N_SLOTS; i++)
        free(w->slot[i]);
    mk_error_free(w->werr);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

/* Hands the slot being filled on (or hashes and writes it here) and waits for a free one:
 * a slot is free again once both threads are done with it. */
static int writer_flush(struct writer *w)
{
    if (!w->n_threads && w->failed)
        return -1;
    if (w->fill == 0)
        return 0;
    int i = (int)(w->produced % N_SLOTS);
    w->slot_len[i] = w->fill;
    w->fill = 0;
    if (!w->n_threads) {
        mk_sha256_update(w->hash, w->slot[i], w->slot_len[i]);
        if (slot_write(w, i, &w->cb_err) < 0) {
            w->failed = true;
            return -1;
        }
        w->produced++;
        w->done[0] = w->done[1] = w->produced;
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    w->produced++;
    pthread_cond_broadcast(&w->cv);
    while (!w->failed &&
           w->produced - (w->done[0] < w->done[1] ? w->done[0] : w->done[1]) == N_SLOTS)
        pthread_cond_wait(&w->cv, &w->mu);
    bool failed = w->failed;
    pthread_mutex_unlock(&w->mu);
    if (failed)
        writer_stop(w); /* moves the thread's error to cb_err */
    return failed ? -1 : 0;
}

static int archive_fail_cb(struct writer *w, struct mk_error **err);

static int out_append(struct writer *w, const void *buf, size_t n)
{
    const char *p = buf;
    for (size_t left = n; left > 0;) {
        size_t k = SLOT_SIZE - w->fill < left ? SLOT_SIZE - w->fill : left;
        memcpy(w->slot[w->produced % N_SLOTS] + w->fill, p, k);
        w->fill += k;
        p += k;
        left -= k;
        if (w->fill == SLOT_SIZE && writer_flush(w) < 0)
            return -1;
    }
    w->size += n;
    return 0;
}

static la_ssize_t write_cb(struct archive *a, void *data, const void *buf, size_t n)
{
    (void)a;
    return out_append(data, buf, n) < 0 ? -1 : (la_ssize_t)n;
}

static uint64_t tar_pad(uint64_t n)
{
    return (n + 511) & ~(uint64_t)511;
}

/* The octal number in a tar header field (NUL or space ends it); -1 when it is not one. */
static int64_t tar_octal(const char *f, size_t n)
{
    int64_t v = 0;
    size_t i = 0;
    while (i < n && f[i] == ' ')
        i++;
    size_t start = i;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v > (INT64_MAX >> 3))
            return -1;
        v = v * 8 + (f[i] - '0');
    }
    if (i == start || (i < n && f[i] != ' ' && f[i] != '\0'))
        return -1;
    return v;
}

/* Whether the entry r, whose bytes are at e (r->len of them), is one our writer gives r: its
 * ustar header (the last one, right before the data) has a valid checksum, is a regular
 * file's, and holds r's size, mode, owner and mtime where it can (bigger values go to the
 * pax header before it); its name is r's path, in the header or (longer ones) as the pax
 * header's path record. */
static bool entry_matches(const char *e, const struct ls_tar_index_rec *r)
{
    size_t hoff = r->len - 512 - tar_pad(r->size);
    const unsigned char *h = (const unsigned char *)e + hoff;
    const char *c = (const char *)h;
    if (r->path_len <= 100) {
        if (memcmp(c, r->path, r->path_len) != 0 || (r->path_len < 100 && c[r->path_len]))
            return false;
    } else {
        /* "N path=PATH\n" in the pax data after the pax header's own 512 bytes. */
        _cleanup_free_ char *rec = mk_xasprintf(" path=%.*s\n", (int)r->path_len, r->path);
        if (hoff < 1024 || !memmem(e + 512, hoff - 512, rec, strlen(rec)))
            return false;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += i >= 148 && i < 156 ? ' ' : h[i];
    if (tar_octal(c + 148, 8) != (int64_t)sum || (c[156] != '0' && c[156] != '\0') ||
        memcmp(c + 257, "ustar", 5) != 0 || tar_octal(c + 124, 12) != (int64_t)r->size ||
        tar_octal(c + 100, 8) != (int64_t)(r->mode & 07777))
        return false;
    if (r->uid < 07777777 && tar_octal(c + 108, 8) != (int64_t)r->uid)
        return false;
    if (r->gid < 07777777 && tar_octal(c + 116, 8) != (int64_t)r->gid)
        return false;
    if (r->mtime >= 0 && r->mtime < 077777777777 && tar_octal(c + 136, 12) != r->mtime)
        return false;
    return true;
}

/* Emits the run: its entries read from the earlier blob in pieces of whole entries, each
 * header checked. A short read or a header that is not the record's: stale. */
static int run_flush(struct writer *w, struct mk_error **err)
{
    int fd = w->reuse && w->reuse->prev ? ls_tar_index_blob_fd(w->reuse->prev) : -1;
    for (size_t i = 0; i < w->n_run;) {
        uint64_t off = w->run[i]->off, len = 0;
        size_t j = i;
        while (j < w->n_run && len + w->run[j]->len <= RUN_BUF_SIZE)
            len += w->run[j++]->len;
        for (uint64_t got = 0; got < len;) {
            ssize_t n = pread(fd, w->run_buf + got, len - got, (off_t)(off + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                w->reuse->stale = true;
                return mk_error_set(err, MK_ERR_FAILED, n < 0 ? errno : 0,
                                    "reading the entries of an earlier layer");
            }
            got += (uint64_t)n;
        }
        for (size_t k = i; k < j; k++) {
            const struct ls_tar_index_rec *r = w->run[k];
            if (!entry_matches(w->run_buf + (r->off - off), r)) {
                w->reuse->stale = true;
                return mk_error_set(err, MK_ERR_FAILED, 0,
                                    "an entry of an earlier layer is not where its index says");
            }
        }
        if (out_append(w, w->run_buf, len) < 0)
            return archive_fail_cb(w, err);
        w->reuse->reused += j - i;
        w->reuse->reused_bytes += len;
        i = j;
    }
    w->n_run = 0;
    w->run_len = 0;
    return 0;
}

static int archive_fail_cb(struct writer *w, struct mk_error **err)
{
    if (w->cb_err && err && !*err)
        *err = MK_TAKE_PTR(w->cb_err);
    return mk_error_wrap(err, "writing the layer tar");
}

static int archive_fail(struct writer *w, const char *path, struct mk_error **err)
{
    if (w->cb_err) {
        if (err && !*err)
            *err = MK_TAKE_PTR(w->cb_err);
        return mk_error_wrap(err, "writing the layer tar");
    }
    return mk_error_set(err, MK_ERR_FAILED, archive_errno(w->a),
                        "writing \"%s\" to the layer tar: %s", path,
                        archive_error_string(w->a) ? archive_error_string(w->a) : "unknown error");
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir(int dfd, const char *path, struct mk_strv *ret, struct mk_error **err)
{
    int fd2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd2 < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    _cleanup_closedir_ DIR *d = fdopendir(fd2);
    if (!d) {
        close(fd2);
        return mk_error_errno(err, "opening \"%s\"", path);
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            mk_strv_push(ret, de->d_name);
        errno = 0;
    }
    if (errno)
        return mk_error_errno(err, "reading \"%s\"", path);
    if (ret->n)
        qsort(ret->v, ret->n, sizeof(char *), cmp_names);
    return 0;
}

/* What must precede the next entry: the last one's padding, the run of copied entries, the
 * unchanged directories above it. Then every byte so far went through out_append, so
 * w->size is where the next entry starts. */
static int flush_before_entry(struct writer *w, struct mk_error **err)
{
    if (archive_write_finish_entry(w->a) < ARCHIVE_WARN)
        return archive_fail(w, "", err);
    if (w->n_run && run_flush(w, err) < 0)
        return -1;
    for (size_t i = 0; i < w->n_pending; i++) {
        if (!w->pending[i])
            continue;
        if (archive_write_header(w->a, w->pending[i]) < ARCHIVE_WARN)
            return archive_fail(w, archive_entry_pathname(w->pending[i]), err);
        archive_entry_free(w->pending[i]);
        w->pending[i] = NULL;
    }
    return 0;
}

/* Every entry goes through here: the unchanged directories above it go first. */
static int write_header(struct writer *w, struct archive_entry *e, const char *path,
                        struct mk_error **err)
{
    if (flush_before_entry(w, err) < 0)
        return -1;
    w->entry_start = w->size;
    if (archive_write_header(w->a, e) < ARCHIVE_WARN)
        return archive_fail(w, path, err);
    return 0;
}

static int write_empty_file(struct writer *w, const char *path, struct mk_error **err)
{
    _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0);
    archive_entry_set_size(e, 0);
    /* Whiteouts get a fixed mtime: when a file was deleted says nothing about the image. */
    archive_entry_set_mtime(e, 0, 0);
    return write_header(w, e, path, err);
}

struct ls_early_sync {
    pthread_t thread;
    int fd;
    int errno_; /* the syncfs's, 0: none (written by the thread before it ends) */
    pid_t owner;
};

static void *early_sync_main(void *arg)
{
    struct ls_early_sync *s = arg;
    if (syncfs(s->fd) < 0)
        s->errno_ = errno;
    return NULL;
}

/* Starts the syncfs of EARLY_SYNC_FILES on its own open file of the tree (best effort: the
 * sync that counts comes later anyway). */
static void early_sync_start(struct writer *w, int dfd)
{
    struct ls_early_sync *s = mk_xcalloc(1, sizeof(*s));
    s->owner = getpid();
    s->fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->fd < 0 || pthread_create(&s->thread, NULL, early_sync_main, s) != 0) {
        mk_closep(&s->fd);
        free(s);
        return;
    }
    w->early = s;
}

int ls_early_sync_join(struct ls_early_sync *s, struct mk_error **err)
{
    if (!s)
        return 0;
    /* In a forked process the thread is not there: its owner waits for it. */
    bool ours = s->owner == getpid();
    if (ours)
        pthread_join(s->thread, NULL);
    int e = ours ? s->errno_ : 0;
    mk_closep(&s->fd);
    free(s);
    if (e)
        return mk_error_set(err, MK_ERR_IO, e, "syncing the layer's files to disk");
    return 0;
}

/* Waits for the early syncfs; -1 when it failed. */
static int early_sync_wait(struct writer *w, struct mk_error **err)
{
    return ls_early_sync_join(MK_TAKE_PTR(w->early), err);
}

/* reuse->consume: the bytes read so far punched out of fd, whose dirty pages are then
 * dropped, never written back (on a loop or slow disk the writeback of the blob's pages
 * piling up behind them would write the tree's too). false when the file system cannot. */
static bool consume_range(int fd, off_t from, off_t to)
{
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, to - from) == 0;
}

/* A regular file: opened once, for its xattrs and its data (not by an O_PATH fd and its
 * /proc magic link for the xattrs, then again for the data: two syscalls and a procfs lookup
 * a file, 60,000 of the commit's syscalls for a COPY of 20,000 files). -1 with errno set
 * when it cannot be opened for reading. *ret_consume: opened for writing too, to be emptied
 * as it is read (reuse->consume, a file of LS_CONSUME_MIN bytes or more with no other name;
 * rootless, a file of another owner may not open for writing: then it is only read). */
/* One more regular file of the tree: read, or its entry taken from an earlier blob (a COPY
 * that changed one file of many has linked all the others: as many dirty inodes). */
static void count_file(struct writer *w, int dfd)
{
    if (w->reuse && w->reuse->sync_early && w->out_fd >= 0 && !w->early &&
        ++w->files_seen == EARLY_SYNC_FILES)
        early_sync_start(w, dfd);
}

static int open_data(struct writer *w, int dfd, const char *name, const struct stat *st,
                     bool *ret_consume)
{
    count_file(w, dfd);
    *ret_consume = false;
    if (w->reuse && w->reuse->consume && (uint64_t)st->st_size >= LS_CONSUME_MIN &&
        st->st_nlink == 1) {
        int fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        struct stat fst;
        /* a second name (a file linked from a snapshot) must stay whole */
        if (fd >= 0 && fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode) && fst.st_nlink == 1) {
            *ret_consume = true;
            return fd;
        }
        if (fd >= 0)
            close(fd);
    }
    /* O_NOATIME: a file just written has an atime no later than its ctime, so its first read
     * would dirty its inode (relatime) and the journal with it: 20,000 inodes for a COPY of
     * 20,000 files. Only for a file of ours (or as root): anyone else's fails with EPERM. */
    if (st->st_uid == w->euid || w->euid == 0) {
        int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
        if (fd >= 0 || errno != EPERM)
            return fd;
    }
    return openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

static int copy_file_data(struct writer *w, int fd, bool consume, const char *path, int64_t size,
                          struct mk_error **err)
{
    off_t done = 0, punched = 0;
    char buf[1 << 18];
    while (size > 0) {
        size_t want = size < (int64_t)sizeof(buf) ? (size_t)size : sizeof(buf);
        ssize_t n = mk_read_some(fd, buf, want, err);
        if (n < 0)
            return mk_error_wrap(err, "reading \"%s\"", path);
        if (n == 0)
            break; /* shrank while we read: the writer pads the entry with zeros */
        if (archive_write_data(w->a, buf, (size_t)n) < 0)
            return archive_fail(w, path, err);
        size -= n;
        done += n;
        /* The writer holds what it was given: those bytes of the file are not needed. */
        if (consume && (done - punched >= (8 << 20) || size <= 0)) {
            consume = consume_range(fd, punched, done);
            punched = done;
            w->reuse->consumed |= consume;
        }
    }
    return 0;
}

static int write_tree(struct writer *w, int dfd, const char *prefix, const struct ls_lowers *lowers,
                      int depth, struct mk_error **err);

static bool pending_left(const struct writer *w)
{
    for (size_t i = 0; i < w->n_pending; i++)
        if (w->pending[i])
            return true;
    return false;
}

/* A regular file that is, as it was, the inode an earlier layer's index records under path:
 * its entry is taken from that layer's blob (added to the run) rather than written from
 * the file, which is then neither opened nor read nor asked for its xattrs (the index only
 * holds entries without any, and a snapshot's inodes are not written in place). 1 when it
 * was, 0 when the file is to be written as usual. */
static int reuse_entry(struct writer *w, const char *name, const char *path, const struct stat *st,
                       int64_t mtime, const struct ls_lowers *lowers, struct mk_error **err)
{
    const struct ls_tar_index_rec *r = ls_tar_index_find(w->reuse->prev, path);
    if (!r || r->dev != (uint64_t)st->st_dev || r->ino != (uint64_t)st->st_ino ||
        r->size != (uint64_t)st->st_size || r->mode != (uint32_t)st->st_mode ||
        r->uid != (uint32_t)st->st_uid || r->gid != (uint32_t)st->st_gid || r->mtime != mtime ||
        r->len > RUN_BUF_SIZE)
        return 0;
    /* Over a lower entry the full comparison decides whether the file is written at all. */
    if (lowers && lowers->n && ls_lowers_has(lowers, name))
        return 0;
    if (st->st_nlink > 1) {
        struct link_slot *s = link_find(&w->links, st->st_dev, st->st_ino);
        if (s && s->path)
            return 0; /* a second name of the inode in this layer: a link entry */
        link_add(&w->links, st->st_dev, st->st_ino, path);
    }
    const struct ls_tar_index_rec *last = w->n_run ? w->run[w->n_run - 1] : NULL;
    if (!(last && last->off + last->len == r->off && !pending_left(w)) &&
        flush_before_entry(w, err) < 0)
        return -1;
    if (w->n_run == w->cap_run) {
        w->cap_run = w->cap_run ? 2 * w->cap_run : 256;
        w->run = mk_xreallocarray(w->run, w->cap_run, sizeof(*w->run));
    }
    if (w->reuse->out)
        ls_tar_index_add(w->reuse->out, path, st, mtime, w->size + w->run_len, r->len);
    w->run[w->n_run++] = r;
    w->run_len += r->len;
    return 1;
}

static int write_subtree(struct writer *w, int dfd, const char *name, const char *path,
                         const struct ls_lowers *lowers, bool opaque, int depth,
                         struct mk_error **err)
{
    if (depth >= MAX_DEPTH)
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\" is nested too deeply", path);
    _cleanup_close_ int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    struct ls_lowers child = {0};
    if (lowers)
        ls_lowers_child(lowers, name, opaque, &child);
    int r = write_tree(w, cfd, path, lowers ? &child : NULL, depth + 1, err);
    ls_lowers_release(&child);
    return r;
}

static int write_one(struct writer *w, int dfd, const char *name, const char *prefix,
                     const struct stat *st, const struct ls_lowers *lowers, int depth,
                     struct mk_error **err)
{
    bool dir = S_ISDIR(st->st_mode);
    _cleanup_free_ char *path = mk_xasprintf("%s%s%s", prefix, name, dir ? "/" : "");
    time_t mtime = st->st_mtim.tv_sec;
    if (w->clamp_mtime >= 0 && mtime > w->clamp_mtime)
        mtime = w->clamp_mtime;
    if (S_ISREG(st->st_mode) && w->reuse && w->reuse->prev) {
        int r = reuse_entry(w, name, path, st, mtime, lowers, err);
        if (r > 0)
            count_file(w, dfd);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_mode(e, st->st_mode);
    archive_entry_set_uid(e, st->st_uid);
    archive_entry_set_gid(e, st->st_gid);
    archive_entry_set_mtime(e, mtime, 0);

    /* A regular file whose data is to be written (not a later name of an inode written
     * already: a link entry). Unreadable (EACCES): its xattrs through O_PATH as for other
     * kinds, and its data, if written, fails there as before. */
    struct link_slot *seen = S_ISREG(st->st_mode) && st->st_nlink > 1
                                 ? link_find(&w->links, st->st_dev, st->st_ino)
                                 : NULL;
    bool reads = S_ISREG(st->st_mode) && !(seen && seen->path);
    bool consume = false;
    _cleanup_close_ int data_fd = reads ? open_data(w, dfd, name, st, &consume) : -1;
    int data_errno = reads && data_fd < 0 ? errno : 0;
    struct ls_xattrs xattrs;
    if ((data_fd >= 0 ? ls_xattrs_read_fd(data_fd, path, &xattrs, err)
                      : ls_xattrs_read(dfd, name, path, &xattrs, err)) < 0)
        return -1;
    bool opaque = xattrs.opaque, same = false, has_xattrs = xattrs.names.n > 0;
    for (size_t i = 0; i < xattrs.names.n; i++)
        archive_entry_xattr_add_entry(e, xattrs.names.v[i], xattrs.values[i], xattrs.lens[i]);
    int r = lowers && lowers->n
                ? ls_lowers_unchanged(lowers, dfd, name, path, st, &xattrs, w->diff_buf, &same, err)
                : 0;
    ls_xattrs_release(&xattrs);
    if (r < 0)
        return -1;
    if (same && !dir)
        return 0;
    if (same) {
        w->pending = mk_xreallocarray(w->pending, w->n_pending + 1, sizeof(*w->pending));
        w->pending[w->n_pending++] = MK_TAKE_PTR(e);
        r = write_subtree(w, dfd, name, path, lowers, false, depth, err);
        archive_entry_free(w->pending[--w->n_pending]);
        return r;
    }

    bool data = false;
    if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
        struct link_slot *s = link_find(&w->links, st->st_dev, st->st_ino);
        if (s && s->path) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, s->path);
            archive_entry_set_size(e, 0);
        } else {
            link_add(&w->links, st->st_dev, st->st_ino, path);
            archive_entry_set_size(e, st->st_size);
            data = true;
        }
    } else if (S_ISREG(st->st_mode)) {
        archive_entry_set_size(e, st->st_size);
        data = true;
    } else if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return mk_error_errno(err, "reading symlink \"%s\"", path);
        target[n] = '\0';
        archive_entry_set_symlink(e, target);
    } else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
        archive_entry_set_rdevmajor(e, major(st->st_rdev));
        archive_entry_set_rdevminor(e, minor(st->st_rdev));
    } else if (S_ISSOCK(st->st_mode)) {
        return 0; /* sockets are not content; tar has no type for them */
    }

    if (write_header(w, e, path, err) < 0)
        return -1;
    if (data && data_fd < 0)
        return mk_error_set(err, MK_ERR_IO, data_errno, "opening \"%s\"", path);
    if (data && copy_file_data(w, data_fd, consume, path, st->st_size, err) < 0)
        return -1;
    if (data && !has_xattrs && w->reuse && w->reuse->out) {
        if (archive_write_finish_entry(w->a) < ARCHIVE_WARN)
            return archive_fail(w, path, err);
        ls_tar_index_add(w->reuse->out, path, st, mtime, w->entry_start, w->size - w->entry_start);
    }
    if (!dir)
        return 0;

    if (opaque) {
        _cleanup_free_ char *marker = mk_xasprintf("%s.wh..wh..opq", path);
        if (write_empty_file(w, marker, err) < 0)
            return -1;
    }
    return write_subtree(w, dfd, name, path, lowers, opaque, depth, err);
}

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static int write_tree(struct writer *w, int dfd, const char *prefix, const struct ls_lowers *lowers,
                      int depth, struct mk_error **err)
{
    struct mk_strv names = MK_STRV_INIT;
    if (list_dir(dfd, prefix[0] ? prefix : ".", &names, err) < 0) {
        mk_strv_release(&names);
        return -1;
    }
    /* Each entry is looked at once (st_nlink 0: gone meanwhile), then written in two passes:
     * OCI asks for whiteouts before their siblings, so that a reader applying entries in
     * order never deletes something this same layer adds. */
    int ret = 0;
    _cleanup_free_ struct stat *sts = mk_xreallocarray(NULL, names.n + 1, sizeof(*sts));
    for (size_t i = 0; i < names.n && ret == 0; i++) {
        if (fstatat(dfd, names.v[i], &sts[i], AT_SYMLINK_NOFOLLOW) == 0)
            continue;
        sts[i].st_nlink = 0;
        if (errno != ENOENT)
            ret = mk_error_errno(err, "stat \"%s%s\"", prefix, names.v[i]);
    }
    for (int pass = 0; pass < 2 && ret == 0; pass++) {
        for (size_t i = 0; i < names.n && ret == 0; i++) {
            if (sts[i].st_nlink == 0 || is_whiteout(&sts[i]) != (pass == 0))
                continue;
            if (pass == 0) {
                _cleanup_free_ char *wh = mk_xasprintf("%s.wh.%s", prefix, names.v[i]);
                ret = write_empty_file(w, wh, err);
            } else {
                ret = write_one(w, dfd, names.v[i], prefix, &sts[i], lowers, depth, err);
            }
        }
    }
    mk_strv_release(&names);
    return ret;
}

int ls_tar_write_dir(int dirfd, int out_fd, int64_t epoch, char ret_diff_id[MK_DIGEST_SIZE],
                     uint64_t *ret_size, struct mk_error **err)
{
    return ls_tar_write_diff(dirfd, NULL, out_fd, epoch, ret_diff_id, ret_size, err);
}

/* out_fd < 0: only the digest and size. clamp_mtime < 0 (MK_EPOCH_NONE): none. */
static int write_tar(int dirfd, const struct ls_lowers *lowers, int out_fd, int64_t clamp_mtime,
                     struct ls_tar_reuse *reuse, char ret_diff_id[MK_DIGEST_SIZE],
                     uint64_t *ret_size, struct mk_error **err)
{
    struct writer w = {.out_fd = out_fd,
                       .hash = mk_sha256_new(),
                       .clamp_mtime = clamp_mtime,
                       .reuse = reuse,
                       .euid = geteuid()};
    writer_start(&w);
    _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
    if (!a)
        MK_BUG("archive_write_new");
    w.a = a;
    int ret = -1;
    /* SCHILY.xattr only: what docker, buildah and GNU tar read; libarchive reads it too.
     * Names are bytes. Not the "hdrcharset=BINARY" option: with it libarchive gives every
     * entry a pax header of that one record (1 KiB an entry: 22% of a layer of 3 KiB files).
     * Without it an ASCII name needs none, and a name with other bytes is converted from the
     * process locale to UTF-8, which for us is always "C" (nothing here calls setlocale):
     * that fails for any byte >= 0x80, and libarchive stores the name as it is, with
     * "hdrcharset=BINARY" in that entry's pax header only (a warning, not an error). */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        /* Unblocked: every byte reaches write_cb when the format writes it (the same bytes
         * as 10 KiB blocks with no padding of the last), so entries copied from an earlier
         * blob can go in between. */
        archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
        archive_write_open2(a, &w, NULL, write_cb, NULL, NULL) != ARCHIVE_OK) {
        archive_fail(&w, "", err);
        goto out;
    }
    if (lowers && lowers->n)
        w.diff_buf = mk_xmalloc(LS_DIFF_BUF_SIZE);
    if (reuse && reuse->prev)
        w.run_buf = mk_xmalloc(RUN_BUF_SIZE);
    if (write_tree(&w, dirfd, "", lowers, 0, err) < 0 || flush_before_entry(&w, err) < 0)
        goto out;
    if (archive_write_close(a) != ARCHIVE_OK || writer_flush(&w) < 0) {
        archive_fail(&w, "", err);
        goto out;
    }
    writer_stop(&w); /* the last slots hashed and written */
    if (w.failed) {
        archive_fail(&w, "", err);
        goto out;
    }
    /* Handed over (reuse->keep_sync) rather than waited for: the caller's window waits for
     * it before anything is named. */
    if (reuse && reuse->keep_sync)
        reuse->early = MK_TAKE_PTR(w.early);
    else if (early_sync_wait(&w, err) < 0)
        goto out;
    mk_sha256_final(w.hash, ret_diff_id);
    *ret_size = w.size;
    ret = 0;
out:
    /* Freeing an archive that was not closed (a failed write: EPIPE on `build -o - | head`)
     * closes it and calls write_cb once more, which uses w: before w's buffers and hash go. */
    archive_write_free(MK_TAKE_PTR(a));
    writer_release(&w);
    early_sync_wait(&w, NULL);
    free(w.diff_buf);
    free(w.run_buf);
    free(w.run);
    free(w.pending);
    mk_sha256_free(w.hash);
    mk_error_free(w.cb_err);
    link_map_release(&w.links);
    return ret;
}

int ls_tar_write_diff(int dirfd, const struct ls_lowers *lowers, int out_fd, int64_t epoch,
                      char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err)
{
    return write_tar(dirfd, lowers, out_fd, epoch, NULL, ret_diff_id, ret_size, err);
}

int ls_tar_write_reuse(int dirfd, const struct ls_lowers *lowers, int out_fd, int64_t epoch,
                       struct ls_tar_reuse *reuse, char ret_diff_id[MK_DIGEST_SIZE],
                       uint64_t *ret_size, struct mk_error **err)
{
    return write_tar(dirfd, lowers, out_fd, epoch, reuse, ret_diff_id, ret_size, err);
}

int ls_tar_digest_diff(int dirfd, const struct ls_lowers *lowers, bool no_mtimes,
                       char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    uint64_t size;
    /* Clamped to 0, every mtime after 1970 is 0. */
    return write_tar(dirfd, lowers, -1, no_mtimes ? 0 : MK_EPOCH_NONE, NULL, ret_digest, &size,
                     err);
}

int layerstore_tar_tree(int dirfd, int out_fd, int64_t epoch, struct mk_error **err)
{
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
    return ls_tar_write_dir(dirfd, out_fd, epoch, digest, &size, err);
}
