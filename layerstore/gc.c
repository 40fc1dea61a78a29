/* layerstore/gc.c - what the store's images keep alive; `mkimg prune` and `mkimg df`.
 *
 * Prune runs with the gc lock held exclusively, so no other mkimg process is between
 * writing a blob or snapshot and tagging the image that needs it. Deletion order keeps the
 * store consistent at every instant: cache entries first (nothing then names a blob about to
 * go), then blobs, then snapshots, each snapshot renamed into a temp dir before it is
 * removed so a half-deleted tree never sits under snapshots/. */
#define _XOPEN_SOURCE_EXTENDED 1
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define MARK_MAX_DEPTH 2

/* What index.json keeps alive: blob digests and snapshot chain ids, sorted. */
struct ls_marks {
    struct mk_strv blobs;
    struct mk_strv chains;
    size_t images;
};
/* Marks every manifest (through image indexes), config and layer blob of every index.json
 * entry and the chain of every layer prefix. A referenced manifest or config that cannot be
 * read fails (MK_ERR_DIGEST / MK_ERR_NOT_FOUND): nothing may be deleted on a guess. */
static int ls_gc_mark(struct mk_store *store, struct ls_marks *ret, struct mk_error **err);

int ls_gc_lock_exclusive(struct mk_store *store, struct mk_error **err)
{
    while (flock(store->gc_fd, LOCK_EX) < 0) {
        if (errno == EINTR && !mk_interrupted)
            continue;
        return mk_error_set(err, errno == EINTR ? MK_ERR_INTERRUPTED : MK_ERR_IO, errno,
                            "waiting for other mkimg processes on the store");
    }
    return 0;
}

void ls_gc_lock_shared(struct mk_store *store)
{
    flock(store->gc_fd, LOCK_SH);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ls_marks_has(const struct mk_strv *sorted, const char *digest)
{
    return sorted->n && bsearch(&digest, sorted->v, sorted->n, sizeof(char *), cmp_str) != NULL;
}

static void ls_marks_release(struct ls_marks *m)
{
    mk_strv_release(&m->blobs);
    mk_strv_release(&m->chains);
}

static int mark_manifest(struct mk_store *store, const char *digest, int depth, struct ls_marks *m,
                         struct mk_error **err)
{
    if (depth == 0) {
        for (size_t i = 0; i < m->blobs.n; i++)
            if (strcmp(m->blobs.v[i], digest) == 0)
                return 0; /* another tag of an image already marked */
    }
    mk_strv_push(&m->blobs, digest);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (layerstore_blob_read(store, digest, LS_JSON_MAX, &data, &len, err) < 0)
        return -1;
    _cleanup_json_ json_t *j = json_loadb(data, len, 0, NULL);
    if (!json_is_object(j))
        return mk_error_set_at(err, MK_ERR_PARSE, digest, "bad manifest");
    json_t *children = json_object_get(j, "manifests");
    if (json_is_array(children)) {
        if (depth >= MARK_MAX_DEPTH)
            return mk_error_set_at(err, MK_ERR_UNSUPPORTED, digest, "image index nested too deep");
        size_t i;
        json_t *c;
        json_array_foreach(children, i, c)
        {
            const char *d = ls_desc_digest(c);
            if (d && mark_manifest(store, d, depth + 1, m, err) < 0)
                return -1;
        }
        return 0;
    }
    const char *config = ls_desc_digest(json_object_get(j, "config"));
    if (!config)
        return mk_error_set_at(err, MK_ERR_PARSE, digest, "manifest without a config");
    mk_strv_push(&m->blobs, config);
    json_t *layers = json_object_get(j, "layers");
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *d = ls_desc_digest(l);
        if (d)
            mk_strv_push(&m->blobs, d);
    }
    _cleanup_free_ char *cdata = NULL;
    size_t clen = 0;
    if (layerstore_blob_read(store, config, LS_JSON_MAX, &cdata, &clen, err) < 0)
        return mk_error_set_where(err, digest);
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (layerstore_config_parse(cdata, clen, &cfg, err) < 0)
        return mk_error_set_where(err, digest);
    char chain[MK_DIGEST_SIZE] = "";
    for (size_t k = 0; k < cfg.diff_ids.n; k++) {
        char next[MK_DIGEST_SIZE];
        mk_chain_id(chain, cfg.diff_ids.v[k], next);
        memcpy(chain, next, MK_DIGEST_SIZE);
        mk_strv_push(&m->chains, chain);
        /* The uncompressed layer: where a compressed pulled layer was stored plain. */
        mk_strv_push(&m->blobs, cfg.diff_ids.v[k]);
    }
    layerstore_config_release(&cfg);
    m->images++;
    return 0;
}

static int ls_gc_mark(struct mk_store *store, struct ls_marks *ret, struct mk_error **err)
{
    _cleanup_json_ json_t *idx = NULL;
    if (ls_index_load(store, &idx, err) < 0)
        return -1;
    struct ls_marks m;
    memset(&m, 0, sizeof(m));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(idx, "manifests"), i, e)
    {
        const char *d = ls_desc_digest(e);
        if (d && mark_manifest(store, d, 0, &m, err) < 0) {
            ls_marks_release(&m);
            const char *ref = ls_desc_ref(e);
            return mk_error_wrap(err, "image %s", ref ? ref : d);
        }
    }
    if (m.blobs.n)
        qsort(m.blobs.v, m.blobs.n, sizeof(char *), cmp_str);
    if (m.chains.n)
        qsort(m.chains.v, m.chains.n, sizeof(char *), cmp_str);
    *ret = m;
    return 0;
}

static __thread uint64_t du_total;

static int du_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)flag;
    (void)ftw;
    du_total += (uint64_t)st->st_blocks * 512;
    return 0;
}

/* Disk usage (allocated bytes) of a tree, not following symlinks. */
static uint64_t ls_du(const char *path)
{
    du_total = 0;
    nftw(path, du_visit, 32, FTW_PHYS | FTW_MOUNT);
    return du_total;
}

bool ls_is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* A leftover of mk_write_file_atomic (".NAME.tmp.PID") whose writer is gone. */
static bool stale_atomic_tmp(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    int pid;
    if (name[0] != '.' || !t || mk_parse_int(t + 5, &pid) < 0 || pid <= 0)
        return false;
    return kill(pid, 0) < 0 && errno == ESRCH;
}

/* The head of a cache value: enough to tell its kind (file-digest tables can be big). */
static int cache_head(int dirfd, const char *name, char *buf, size_t size)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = mk_read_some(fd, buf, size - 1, NULL);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

enum cache_kind { CACHE_LAYER, CACHE_EMPTY, CACHE_COMPRESSED, CACHE_OTHER };

/* For a "layer" entry, blob and chain; for "compressed", the layer's diff_id and the copy. */
static enum cache_kind cache_classify(const char *head, char a[MK_DIGEST_SIZE],
                                      char b[MK_DIGEST_SIZE])
{
    char x[MK_DIGEST_SIZE + 1], y[MK_DIGEST_SIZE + 1];
    uint64_t size;
    if (sscanf(head, "layer %72s %72s", x, y) == 2 && mk_digest_valid(x) && mk_digest_valid(y)) {
        memcpy(a, x, MK_DIGEST_SIZE);
        memcpy(b, y, MK_DIGEST_SIZE);
        return CACHE_LAYER;
    }
    if (strcmp(head, "empty\n") == 0)
        return CACHE_EMPTY;
    if (ls_compress_cache_parse(head, a, b, &size) == 0)
        return CACHE_COMPRESSED;
    return CACHE_OTHER;
}

struct cache_walk {
    int dirfd;
    DIR *d;
};

static int cache_open(struct mk_store *store, struct cache_walk *w, struct mk_error **err)
{
    w->d = NULL;
    w->dirfd = openat(store->root_fd, "cache", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0)
        return errno == ENOENT ? 0 : mk_error_errno(err, "opening \"cache\"");
    int dup_fd = dup(w->dirfd);
    if (dup_fd < 0 || !(w->d = fdopendir(dup_fd))) {
        if (dup_fd >= 0)
            close(dup_fd);
        close(w->dirfd);
        w->dirfd = -1;
        return mk_error_errno(err, "reading \"cache\"");
    }
    return 0;
}

static void cache_close(struct cache_walk *w)
{
    if (w->d)
        closedir(w->d);
    if (w->dirfd >= 0)
        close(w->dirfd);
}

/* Drops cache entries and marks the compressed copies that stay. */
static int prune_cache(struct mk_store *store, bool all, struct ls_marks *m,
                       struct mk_prune_report *rep, struct mk_error **err)
{
    struct cache_walk w;
    if (cache_open(store, &w, err) < 0)
        return -1;
    /* Kept apart until the walk ends: m->blobs must stay sorted for the lookups. */
    struct mk_strv copies = MK_STRV_INIT;
    struct dirent *de;
    while (w.d && (de = readdir(w.d))) {
        const char *name = de->d_name;
        struct stat st;
        if (fstatat(w.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        bool drop = false;
        if (!ls_is_hex64(name)) {
            drop = stale_atomic_tmp(name);
        } else {
            char head[512], a[MK_DIGEST_SIZE], b[MK_DIGEST_SIZE];
            if (cache_head(w.dirfd, name, head, sizeof(head)) < 0)
                continue;
            switch (cache_classify(head, a, b)) {
            case CACHE_LAYER:
                drop = all || !ls_marks_has(&m->blobs, a) || !ls_marks_has(&m->chains, b);
                break;
            case CACHE_COMPRESSED:
                drop = all || !ls_marks_has(&m->blobs, a);
                if (!drop)
                    mk_strv_push(&copies, b);
                break;
            default:
                drop = all;
            }
        }
        if (!drop)
            continue;
        if (unlinkat(w.dirfd, name, 0) < 0 && errno != ENOENT) {
            cache_close(&w);
            mk_strv_release(&copies);
            return mk_error_errno(err, "removing cache entry \"%s\"", name);
        }
        rep->cache_entries++;
        rep->bytes += (uint64_t)st.st_blocks * 512;
    }
    cache_close(&w);
    for (size_t i = 0; i < copies.n; i++)
        mk_strv_push(&m->blobs, copies.v[i]);
    mk_strv_release(&copies);
    if (m->blobs.n)
        qsort(m->blobs.v, m->blobs.n, sizeof(char *), cmp_str);
    return 0;
}

static int prune_blobs(struct mk_store *store, const struct ls_marks *m,
                       struct mk_prune_report *rep, struct mk_error **err)
{
    _cleanup_close_ int dfd =
        openat(store->root_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"blobs/sha256\"");
    int dup_fd = dup(dfd);
    _cleanup_closedir_ DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return mk_error_errno(err, "reading \"blobs/sha256\"");
    }
    struct dirent *de;
    bool removed = false;
    while ((de = readdir(d))) {
        if (!ls_is_hex64(de->d_name))
            continue;
        _cleanup_free_ char *digest = mk_xasprintf("sha256:%s", de->d_name);
        if (ls_marks_has(&m->blobs, digest))
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT)
            return mk_error_errno(err, "removing blob %s", digest);
        rep->blobs++;
        rep->bytes += (uint64_t)st.st_blocks * 512;
        removed = true;
    }
    return removed ? mk_fsync_dir(dfd, err) : 0;
}

static int prune_snapshots(struct mk_store *store, const struct ls_marks *m,
                           struct mk_prune_report *rep, struct mk_error **err)
{
    _cleanup_free_ char *sdir = mk_xasprintf("%s/snapshots", store->root);
    _cleanup_closedir_ DIR *d = opendir(sdir);
    if (!d)
        return mk_error_errno(err, "reading \"%s\"", sdir);
    _cleanup_free_ char *trash = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!ls_is_hex64(de->d_name))
            continue;
        _cleanup_free_ char *chain = mk_xasprintf("sha256:%s", de->d_name);
        if (ls_marks_has(&m->chains, chain))
            continue;
        if (!trash && !(trash = layerstore_tmpdir(store, "prune-", err)))
            return -1;
        _cleanup_free_ char *from = mk_xasprintf("%s/%s", sdir, de->d_name);
        _cleanup_free_ char *to = mk_xasprintf("%s/%s", trash, de->d_name);
        uint64_t bytes = ls_du(from);
        if (rename(from, to) < 0) {
            int saved = errno;
            layerstore_tmpdir_remove(store, trash, NULL);
            return mk_error_set(err, MK_ERR_IO, saved, "removing snapshot %s", chain);
        }
        rep->snapshots++;
        rep->bytes += bytes;
    }
    if (trash)
        return layerstore_tmpdir_remove(store, trash, err);
    return 0;
}

int layerstore_prune(struct mk_store *store, bool all, struct mk_prune_report *ret,
                     struct mk_error **err)
{
    struct mk_prune_report rep;
    memset(&rep, 0, sizeof(rep));
    if (ls_gc_lock_exclusive(store, err) < 0)
        return -1;
    struct ls_marks m;
    int r = ls_gc_mark(store, &m, err);
    if (r < 0) {
        ls_gc_lock_shared(store);
        return mk_error_wrap(err, "nothing pruned (\"mkimg fsck --repair\" drops broken images)");
    }
    r = prune_cache(store, all, &m, &rep, err);
    if (r == 0)
        r = prune_blobs(store, &m, &rep, err);
    if (r == 0)
        r = prune_snapshots(store, &m, &rep, err);
    /* Leftovers of atomic writes of index.json by processes that died mid-write. */
    _cleanup_closedir_ DIR *d = r == 0 ? opendir(store->root) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (stale_atomic_tmp(de->d_name))
            unlinkat(store->root_fd, de->d_name, 0);
    ls_marks_release(&m);
    ls_gc_lock_shared(store);
    if (r < 0)
        return -1;
    *ret = rep;
    return 0;
}

/* ---- df ----------------------------------------------------------------------------------- */

int layerstore_df(struct mk_store *store, struct mk_df_report *ret, struct mk_error **err)
{
    struct mk_df_report rep;
    memset(&rep, 0, sizeof(rep));
    struct ls_marks m;
    if (ls_gc_mark(store, &m, err) < 0)
        return -1;
    rep.images = m.images;
    /* Compressed copies that the cache still maps from a referenced layer. */
    struct mk_strv copies = MK_STRV_INIT;
    struct cache_walk w;
    if (cache_open(store, &w, err) < 0) {
        ls_marks_release(&m);
        return -1;
    }
    struct dirent *de;
    while (w.d && (de = readdir(w.d))) {
        struct stat st;
        if (!ls_is_hex64(de->d_name) || fstatat(w.dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        rep.cache_entries++;
        rep.cache_bytes += (uint64_t)st.st_blocks * 512;
        char head[512], a[MK_DIGEST_SIZE], b[MK_DIGEST_SIZE];
        if (cache_head(w.dirfd, de->d_name, head, sizeof(head)) == 0 &&
            cache_classify(head, a, b) == CACHE_COMPRESSED && ls_marks_has(&m.blobs, a))
            mk_strv_push(&copies, b);
    }
    cache_close(&w);
    if (copies.n)
        qsort(copies.v, copies.n, sizeof(char *), cmp_str);
    _cleanup_free_ char *bdir = mk_xasprintf("%s/blobs/sha256", store->root);
    _cleanup_closedir_ DIR *bd = opendir(bdir);
    while (bd && (de = readdir(bd))) {
        if (!ls_is_hex64(de->d_name))
            continue;
        _cleanup_free_ char *digest = mk_xasprintf("sha256:%s", de->d_name);
        struct stat st;
        if (fstatat(dirfd(bd), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        uint64_t bytes = (uint64_t)st.st_blocks * 512;
        if (ls_marks_has(&copies, digest)) {
            rep.compressed++;
            rep.compressed_bytes += bytes;
        } else if (ls_marks_has(&m.blobs, digest)) {
            rep.blobs++;
            rep.blob_bytes += bytes;
        } else {
            rep.unused_blobs++;
            rep.unused_blob_bytes += bytes;
        }
    }
    _cleanup_free_ char *sdir = mk_xasprintf("%s/snapshots", store->root);
    _cleanup_closedir_ DIR *sd = opendir(sdir);
    while (sd && (de = readdir(sd))) {
        if (!ls_is_hex64(de->d_name))
            continue;
        _cleanup_free_ char *chain = mk_xasprintf("sha256:%s", de->d_name);
        _cleanup_free_ char *path = mk_xasprintf("%s/%s", sdir, de->d_name);
        uint64_t bytes = ls_du(path);
        rep.snapshots++;
        rep.snapshot_bytes += bytes;
        if (!ls_marks_has(&m.chains, chain)) {
            rep.unused_snapshots++;
            rep.unused_snapshot_bytes += bytes;
        }
    }
    mk_strv_release(&copies);
    ls_marks_release(&m);
    *ret = rep;
    return 0;
}
