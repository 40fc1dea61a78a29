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

static la_ssize_t write_cb(struct archive *a, void *data, const void *buf, size_t n)
{
    (void)a;
    struct writer *w = data;
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
    return (la_ssize_t)n;
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

/* Every entry goes through here: the unchanged directories above it go first. */
static int write_header(struct writer *w, struct archive_entry *e, const char *path,
                        struct mk_error **err)
{
    for (size_t i = 0; i < w->n_pending; i++) {
        if (!w->pending[i])
            continue;
        if (archive_write_header(w->a, w->pending[i]) < ARCHIVE_WARN)
            return archive_fail(w, archive_entry_pathname(w->pending[i]), err);
        archive_entry_free(w->pending[i]);
        w->pending[i] = NULL;
    }
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

static int copy_file_data(struct writer *w, int dfd, const char *name, const char *path,
                          int64_t size, struct mk_error **err)
{
    _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
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
    }
    return 0;
}

static int write_tree(struct writer *w, int dfd, const char *prefix, const struct ls_lowers *lowers,
                      int depth, struct mk_error **err);

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
    _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_mode(e, st->st_mode);
    archive_entry_set_uid(e, st->st_uid);
    archive_entry_set_gid(e, st->st_gid);
    time_t mtime = st->st_mtim.tv_sec;
    if (w->clamp_mtime >= 0 && mtime > w->clamp_mtime)
        mtime = w->clamp_mtime;
    archive_entry_set_mtime(e, mtime, 0);

    struct ls_xattrs xattrs;
    if (ls_xattrs_read(dfd, name, path, &xattrs, err) < 0)
        return -1;
    bool opaque = xattrs.opaque, same = false;
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
    if (data && copy_file_data(w, dfd, name, path, st->st_size, err) < 0)
        return -1;
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
    /* Two passes: OCI asks for whiteouts before their siblings, so that a reader applying
     * entries in order never deletes something this same layer adds. */
    int ret = 0;
    for (int pass = 0; pass < 2 && ret == 0; pass++) {
        for (size_t i = 0; i < names.n && ret == 0; i++) {
            struct stat st;
            if (fstatat(dfd, names.v[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                    continue;
                ret = mk_error_errno(err, "stat \"%s%s\"", prefix, names.v[i]);
                break;
            }
            if (is_whiteout(&st) != (pass == 0))
                continue;
            if (pass == 0) {
                _cleanup_free_ char *wh = mk_xasprintf("%s.wh.%s", prefix, names.v[i]);
                ret = write_empty_file(w, wh, err);
            } else {
                ret = write_one(w, dfd, names.v[i], prefix, &st, lowers, depth, err);
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
                     char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err)
{
    struct writer w = {.out_fd = out_fd, .hash = mk_sha256_new(), .clamp_mtime = clamp_mtime};
    writer_start(&w);
    _cleanup_(archive_write_freep) struct archive *a = archive_write_new();
    if (!a)
        MK_BUG("archive_write_new");
    w.a = a;
    int ret = -1;
    /* SCHILY.xattr only: what docker, buildah and GNU tar read; libarchive reads it too. */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        /* Names are bytes: no conversion through the process locale, which would make the
         * output depend on LANG. */
        archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 10240) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open2(a, &w, NULL, write_cb, NULL, NULL) != ARCHIVE_OK) {
        archive_fail(&w, "", err);
        goto out;
    }
    if (lowers && lowers->n)
        w.diff_buf = mk_xmalloc(LS_DIFF_BUF_SIZE);
    if (write_tree(&w, dirfd, "", lowers, 0, err) < 0)
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
    mk_sha256_final(w.hash, ret_diff_id);
    *ret_size = w.size;
    ret = 0;
out:
    /* Freeing an archive that was not closed (a failed write: EPIPE on `build -o - | head`)
     * closes it and calls write_cb once more, which uses w: before w's buffers and hash go. */
    archive_write_free(MK_TAKE_PTR(a));
    writer_release(&w);
    free(w.diff_buf);
    free(w.pending);
    mk_sha256_free(w.hash);
    mk_error_free(w.cb_err);
    link_map_release(&w.links);
    return ret;
}

int ls_tar_write_diff(int dirfd, const struct ls_lowers *lowers, int out_fd, int64_t epoch,
                      char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err)
{
    return write_tar(dirfd, lowers, out_fd, epoch, ret_diff_id, ret_size, err);
}

int ls_tar_digest_diff(int dirfd, const struct ls_lowers *lowers, bool no_mtimes,
                       char ret_digest[MK_DIGEST_SIZE], struct mk_error **err)
{
    uint64_t size;
    /* Clamped to 0, every mtime after 1970 is 0. */
    return write_tar(dirfd, lowers, -1, no_mtimes ? 0 : MK_EPOCH_NONE, ret_digest, &size, err);
}

int layerstore_tar_tree(int dirfd, int out_fd, int64_t epoch, struct mk_error **err)
{
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
    return ls_tar_write_dir(dirfd, out_fd, epoch, digest, &size, err);
}
