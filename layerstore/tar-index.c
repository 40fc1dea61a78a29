/* layerstore/tar-index.c - where each file's entry sits in a layer blob we wrote.
 *
 * A commit of a step records, next to the snapshot it makes (ROOT/tar-index/<chain hex>),
 * one record per regular file whose entry it wrote with data and without xattrs: its path,
 * the inode it read (device, number), what the entry's header encodes (mode, owner, mtime
 * as written, size) and the entry's byte range in the blob. A later commit of an upperdir
 * whose files are hard links to that snapshot's inodes (a COPY that reused them, issue 19)
 * copies those entries' bytes from the blob instead of opening, reading and listing the
 * xattrs of each file: the same inode in an immutable snapshot has the same bytes and
 * xattrs, and the header fields that could differ are compared, so the bytes are the ones a
 * full commit would write.
 *
 * The builder asks it too (layerstore_snapshot_file_plain): a COPY that links a file of the
 * snapshot into its upperdir needs to know it has no xattrs, which the index says for the
 * inodes it records.
 *
 * The index is derived data: prune drops them all, a crash may leave one half-written or
 * stale. So nothing in it is taken on trust. It ends with the sha256 of what precedes it;
 * it names the blob (diff_id, size: the blob must be in the store with that size) and the
 * snapshot directory's own inode (the tree whose inode numbers it records: a snapshot
 * removed and unpacked again, or one another process installed first, does not match);
 * records are sorted by path, their ranges in order, disjoint, whole tar blocks and inside
 * the blob. The writer also checks each copied entry's tar header (tar-write.c). Anything
 * wrong: no index, every file is read as without one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic-file.h"
#include "common/digest.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"

#define INDEX_DIR "tar-index"
/* 2: entries without the per-entry "hdrcharset=BINARY" pax header (tar-write.c); an index
 * of blobs written before describes entries a commit now would not write. */
#define MAGIC "mkimg-tar-index-2\n"
#define MAGIC_LEN (sizeof(MAGIC) - 1)
/* ~110 bytes a file: half a million files. A bigger index is neither written nor read. */
#define INDEX_MAX_BYTES (64u << 20)
#define INDEX_MAX_RECS 4000000u

/* On disk, host byte order (the index never leaves the machine; another order fails the
 * checks): MAGIC, struct head, n struct disk_rec, the path bytes, the digest of all that. */
struct head {
    char diff_id[MK_DIGEST_SIZE];
    uint64_t blob_size, root_dev, root_ino, n, paths_len;
};

struct disk_rec {
    uint64_t dev, ino, size, off, len;
    int64_t mtime;
    uint32_t mode, uid, gid, path_len;
    uint64_t path_off;
};

struct ls_tar_index {
    struct head h;
    struct disk_rec *recs;
    size_t n, cap;
    char *paths;
    size_t paths_len, paths_cap;
    struct ls_tar_index_rec *view; /* loaded: recs as the writer reads them */
    int blob_fd;
};

struct ls_tar_index *ls_tar_index_new(void)
{
    struct ls_tar_index *x = mk_xcalloc(1, sizeof(*x));
    x->blob_fd = -1;
    return x;
}

void ls_tar_index_free(struct ls_tar_index *x)
{
    if (!x)
        return;
    free(x->recs);
    free(x->paths);
    free(x->view);
    if (x->blob_fd >= 0)
        close(x->blob_fd);
    free(x);
}

void ls_tar_index_add(struct ls_tar_index *x, const char *path, const struct stat *st,
                      int64_t mtime, uint64_t off, uint64_t len)
{
    size_t pl = strlen(path);
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->recs = mk_xreallocarray(x->recs, x->cap, sizeof(*x->recs));
    }
    while (x->paths_len + pl > x->paths_cap) {
        x->paths_cap = x->paths_cap ? 2 * x->paths_cap : 65536;
        x->paths = mk_xrealloc(x->paths, x->paths_cap);
    }
    memcpy(x->paths + x->paths_len, path, pl);
    x->recs[x->n++] = (struct disk_rec){.dev = (uint64_t)st->st_dev,
                                        .ino = (uint64_t)st->st_ino,
                                        .size = (uint64_t)st->st_size,
                                        .off = off,
                                        .len = len,
                                        .mtime = mtime,
                                        .mode = (uint32_t)st->st_mode,
                                        .uid = (uint32_t)st->st_uid,
                                        .gid = (uint32_t)st->st_gid,
                                        .path_len = (uint32_t)pl,
                                        .path_off = x->paths_len};
    x->paths_len += pl;
}

static int cmp_path(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int cmp_rec(const void *a, const void *b, void *arg)
{
    const struct disk_rec *x = a, *y = b;
    const char *paths = arg;
    return cmp_path(paths + x->path_off, x->path_len, paths + y->path_off, y->path_len);
}

int ls_tar_index_save(struct mk_store *store, struct ls_tar_index *x, const char *chain,
                      const char *diff_id, uint64_t blob_size, const struct stat *root,
                      struct mk_error **err)
{
    if (!mk_digest_valid(chain) || !mk_digest_valid(diff_id))
        MK_BUG("ls_tar_index_save: bad digest");
    uint64_t bytes =
        MAGIC_LEN + sizeof(x->h) + x->n * sizeof(*x->recs) + x->paths_len + MK_DIGEST_SIZE;
    if (bytes > INDEX_MAX_BYTES || x->n > INDEX_MAX_RECS)
        return 0; /* the next commit reads the files, as without an index */
    /* The writer adds them in tree order; lookups want byte order of the whole path. */
    if (x->n)
        qsort_r(x->recs, x->n, sizeof(*x->recs), cmp_rec, x->paths);
    memset(&x->h, 0, sizeof(x->h));
    memcpy(x->h.diff_id, diff_id, MK_DIGEST_SIZE);
    x->h.blob_size = blob_size;
    x->h.root_dev = (uint64_t)root->st_dev;
    x->h.root_ino = (uint64_t)root->st_ino;
    x->h.n = x->n;
    x->h.paths_len = x->paths_len;
    if (mkdirat(store->root_fd, INDEX_DIR, 0700) < 0 && errno != EEXIST)
        return mk_error_errno(err, "creating \"%s/" INDEX_DIR "\"", store->root);
    _cleanup_free_ char *rel = mk_xasprintf(INDEX_DIR "/%s", mk_digest_hex(chain));
    _cleanup_(mk_atomic_file_release) struct mk_atomic_file f = {.fd = -1, .dirfd = -1};
    if (mk_atomic_file_init(&f, store->root_fd, rel, 0600, err) < 0)
        return -1;
    struct mk_sha256 *h = mk_sha256_new();
    const void *parts[] = {MAGIC, &x->h, x->recs, x->paths};
    size_t lens[] = {MAGIC_LEN, sizeof(x->h), x->n * sizeof(*x->recs), x->paths_len};
    int r = 0;
    for (size_t i = 0; i < MK_ARRAY_SIZE(parts) && r == 0; i++) {
        if (!lens[i])
            continue;
        mk_sha256_update(h, parts[i], lens[i]);
        r = mk_write_all(f.fd, parts[i], lens[i], err);
    }
    char sum[MK_DIGEST_SIZE];
    mk_sha256_final(h, sum);
    mk_sha256_free(h);
    if (r == 0)
        r = mk_write_all(f.fd, sum, MK_DIGEST_SIZE, err);
    /* Unsynced: a torn or lost index after a crash fails its digest, or is missing. */
    if (r == 0)
        r = mk_atomic_file_commit_unsynced(&f, err);
    return r < 0 ? mk_error_wrap(err, "writing the tar index of %s", chain) : 0;
}

void ls_tar_index_remove(struct mk_store *store, const char *chain)
{
    if (!mk_digest_valid(chain))
        return;
    _cleanup_free_ char *rel = mk_xasprintf(INDEX_DIR "/%s", mk_digest_hex(chain));
    unlinkat(store->root_fd, rel, 0);
}

/* Whether the records of x (n, paths_len from its head) hold together for a blob of
 * blob_size bytes. */
static int cmp_range(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static bool recs_ok(const struct ls_tar_index *x)
{
    uint64_t end = 0;
    for (size_t i = 0; i < x->n; i++) {
        const struct disk_rec *r = &x->recs[i];
        if (r->path_len == 0 || r->path_off > x->paths_len ||
            r->path_len > x->paths_len - r->path_off ||
            memchr(x->paths + r->path_off, '\0', r->path_len))
            return false;
        if (r->off % 512 || r->len % 512 || r->len < 512 || r->size > r->len - 512 ||
            r->off > x->h.blob_size || r->len > x->h.blob_size - r->off || !S_ISREG(r->mode))
            return false;
        if (i > 0 && cmp_rec(&x->recs[i - 1], r, x->paths) >= 0)
            return false;
    }
    /* Ranges disjoint: sorted by offset they follow each other. */
    uint64_t *offs = mk_xreallocarray(NULL, x->n + 1, sizeof(uint64_t) * 2);
    for (size_t i = 0; i < x->n; i++) {
        offs[2 * i] = x->recs[i].off;
        offs[2 * i + 1] = x->recs[i].len;
    }
    qsort(offs, x->n, 2 * sizeof(uint64_t), cmp_range);
    bool ok = true;
    for (size_t i = 0; i < x->n && ok; i++) {
        if (offs[2 * i] < end)
            ok = false;
        end = offs[2 * i] + offs[2 * i + 1];
    }
    free(offs);
    return ok;
}

struct ls_tar_index *ls_tar_index_load(struct mk_store *store, const char *chain,
                                       const char *snapshot_dir)
{
    if (!mk_digest_valid(chain))
        return NULL;
    _cleanup_free_ char *rel = mk_xasprintf(INDEX_DIR "/%s", mk_digest_hex(chain));
    _cleanup_close_ int fd = openat(store->root_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st, root;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > INDEX_MAX_BYTES ||
        (size_t)st.st_size < MAGIC_LEN + sizeof(struct head) + MK_DIGEST_SIZE)
        return NULL;
    if (stat(snapshot_dir, &root) < 0)
        return NULL;
    size_t len = (size_t)st.st_size;
    _cleanup_free_ char *buf = mk_xmalloc(len);
    for (size_t got = 0; got < len;) {
        ssize_t n = mk_read_some(fd, buf + got, len - got, NULL);
        if (n <= 0)
            return NULL;
        got += (size_t)n;
    }
    char sum[MK_DIGEST_SIZE];
    mk_sha256_buffer(buf, len - MK_DIGEST_SIZE, sum);
    if (memcmp(buf, MAGIC, MAGIC_LEN) != 0 ||
        memcmp(sum, buf + len - MK_DIGEST_SIZE, MK_DIGEST_SIZE) != 0)
        return NULL;
    struct ls_tar_index *x = ls_tar_index_new();
    memcpy(&x->h, buf + MAGIC_LEN, sizeof(x->h));
    size_t body = len - MAGIC_LEN - sizeof(x->h) - MK_DIGEST_SIZE;
    bool ok = x->h.diff_id[MK_DIGEST_SIZE - 1] == '\0' && mk_digest_valid(x->h.diff_id) &&
              x->h.root_dev == (uint64_t)root.st_dev && x->h.root_ino == (uint64_t)root.st_ino &&
              x->h.n <= INDEX_MAX_RECS && x->h.paths_len <= body &&
              x->h.n * sizeof(struct disk_rec) == body - x->h.paths_len;
    if (ok) {
        x->n = x->cap = (size_t)x->h.n;
        x->paths_len = x->paths_cap = (size_t)x->h.paths_len;
        const char *p = buf + MAGIC_LEN + sizeof(x->h);
        x->recs = mk_xreallocarray(NULL, x->n + 1, sizeof(*x->recs));
        memcpy(x->recs, p, x->n * sizeof(*x->recs));
        x->paths = mk_xmalloc(x->paths_len + 1);
        memcpy(x->paths, p + x->n * sizeof(*x->recs), x->paths_len);
        ok = recs_ok(x);
    }
    if (ok) {
        x->blob_fd = layerstore_blob_open(store, x->h.diff_id, NULL);
        struct stat bst;
        ok = x->blob_fd >= 0 && fstat(x->blob_fd, &bst) == 0 && S_ISREG(bst.st_mode) &&
             (uint64_t)bst.st_size == x->h.blob_size;
    }
    if (!ok) {
        ls_tar_index_free(x);
        return NULL;
    }
    x->view = mk_xreallocarray(NULL, x->n + 1, sizeof(*x->view));
    for (size_t i = 0; i < x->n; i++) {
        const struct disk_rec *r = &x->recs[i];
        x->view[i] = (struct ls_tar_index_rec){.path = x->paths + r->path_off,
                                               .path_len = r->path_len,
                                               .dev = r->dev,
                                               .ino = r->ino,
                                               .size = r->size,
                                               .off = r->off,
                                               .len = r->len,
                                               .mtime = r->mtime,
                                               .mode = r->mode,
                                               .uid = r->uid,
                                               .gid = r->gid};
    }
    return x;
}

size_t ls_tar_index_count(const struct ls_tar_index *x)
{
    return x ? x->n : 0;
}

int ls_tar_index_blob_fd(const struct ls_tar_index *x)
{
    return x->blob_fd;
}

const struct ls_tar_index_rec *ls_tar_index_find(const struct ls_tar_index *x, const char *path)
{
    size_t pl = strlen(path), lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_path(x->view[mid].path, x->view[mid].path_len, path, pl);
        if (c == 0)
            return &x->view[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The public view: the index as loaded, its blob left closed (nothing is read from it). */
struct mk_snapshot_files {
    struct ls_tar_index *x;
};

struct mk_snapshot_files *layerstore_snapshot_files_open(struct mk_store *store, const char *chain)
{
    _cleanup_free_ char *snap = layerstore_snapshot_path(store, chain);
    struct ls_tar_index *x = ls_tar_index_load(store, chain, snap);
    if (!x)
        return NULL;
    mk_closep(&x->blob_fd);
    struct mk_snapshot_files *f = mk_xcalloc(1, sizeof(*f));
    f->x = x;
    return f;
}

void layerstore_snapshot_files_free(struct mk_snapshot_files *f)
{
    if (!f)
        return;
    ls_tar_index_free(f->x);
    free(f);
}

bool layerstore_snapshot_file_plain(const struct mk_snapshot_files *f, const char *path,
                                    uint64_t dev, uint64_t ino)
{
    const struct ls_tar_index_rec *r = f ? ls_tar_index_find(f->x, path) : NULL;
    return r && r->dev == dev && r->ino == ino;
}
