/* layerstore/gc.c - what the store's images keep alive; `mkimg prune` and `mkimg df`.
 *
 * Prune runs with the gc lock held exclusively, so no other mkimg process is between
 * writing a blob or snapshot and tagging the image that needs it. What may go is decided
 * first (see layerstore_prune), then removed least recently used first: the use time of a
 * blob, snapshot or cache entry is its ctime, which ls_mark_used moves to now whenever a
 * build, pull, load or push uses it (by setting the atime explicitly, so it works whatever
 * the mount's atime options, and changes nothing an image contains). Deletion order keeps
 * the store consistent at every instant: before a blob or snapshot goes, the cache entries
 * naming it go; each snapshot is renamed into a temp dir before it is removed so a
 * half-deleted tree never sits under snapshots/. */
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

/* A leftover of an atomic file (".NAME.tmp.PID-RANDOM", common/atomic-file.h) whose writer
 * is gone. */
static bool stale_atomic_tmp(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    const char *dash = t ? strchr(t + 5, '-') : NULL;
    int pid;
    if (name[0] != '.' || !dash)
        return false;
    _cleanup_free_ char *digits = mk_xstrndup(t + 5, (size_t)(dash - (t + 5)));
    if (mk_parse_int(digits, &pid) < 0 || pid <= 0)
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

void ls_mark_used_at(int dirfd, const char *name)
{
    const struct timespec ts[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_OMIT}};
    utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

void ls_mark_used(struct mk_store *store, const char *blob, const char *chain)
{
    if (blob && mk_digest_valid(blob)) {
        _cleanup_free_ char *rel = mk_xasprintf("blobs/sha256/%s", mk_digest_hex(blob));
        ls_mark_used_at(store->root_fd, rel);
    }
    if (chain && mk_digest_valid(chain)) {
        _cleanup_free_ char *rel = mk_xasprintf("snapshots/%s", mk_digest_hex(chain));
        ls_mark_used_at(store->root_fd, rel);
    }
}

/* ---- prune -------------------------------------------------------------------------------- */

/* Something prune may remove. Cache entries come first in a tie: they name blobs and
 * snapshots, never the other way round. */
enum item_kind { ITEM_CACHE, ITEM_BLOB, ITEM_SNAPSHOT };

struct item {
    enum item_kind kind;
    char hex[65];
    struct timespec used; /* ctime: last ls_mark_used, or creation */
    uint64_t bytes;
    enum cache_kind ck;     /* ITEM_CACHE: what the entry names ... */
    char a[MK_DIGEST_SIZE]; /* ... layer: its blob; compressed: the layer's diff_id */
    char b[MK_DIGEST_SIZE]; /* ... layer: its chain; compressed: the copy's blob */
    bool gone;
};

struct prune {
    struct mk_store *store;
    struct item *items;
    size_t n, cap;
    uint64_t total; /* bytes of blobs, snapshots and cache entries now (keep_storage only) */
    bool measure;
    int cache_fd, blobs_fd;
    char *trash; /* temp dir snapshots are renamed into before removal */
    bool blobs_removed;
    struct mk_prune_report rep;
};

static struct item *item_add(struct prune *p, enum item_kind kind, const char *hex,
                             const struct stat *st, uint64_t bytes)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->items = mk_xreallocarray(p->items, p->cap, sizeof(*p->items));
    }
    struct item *it = &p->items[p->n++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    snprintf(it->hex, sizeof(it->hex), "%s", hex);
    it->used = st->st_ctim;
    it->bytes = bytes;
    return it;
}

static int cmp_item(const void *x, const void *y)
{
    const struct item *a = x, *b = y;
    if (a->used.tv_sec != b->used.tv_sec)
        return a->used.tv_sec < b->used.tv_sec ? -1 : 1;
    if (a->used.tv_nsec != b->used.tv_nsec)
        return a->used.tv_nsec < b->used.tv_nsec ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return strcmp(a->hex, b->hex);
}

/* Collects the cache entries prune may drop (all with all, else those whose layer is gone)
 * and marks the compressed copies of the entries that stay. Leftovers of atomic writes
 * whose writer died go at once. */
static int collect_cache(struct prune *p, bool all, struct ls_marks *m, struct mk_error **err)
{
    struct cache_walk w;
    if (cache_open(p->store, &w, err) < 0)
        return -1;
    /* Kept apart until the walk ends: m->blobs must stay sorted for the lookups. */
    struct mk_strv copies = MK_STRV_INIT;
    struct dirent *de;
    int r = 0;
    while (w.d && (de = readdir(w.d))) {
        const char *name = de->d_name;
        struct stat st;
        if (fstatat(w.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        uint64_t bytes = (uint64_t)st.st_blocks * 512;
        if (!ls_is_hex64(name)) {
            if (!stale_atomic_tmp(name))
                continue;
            if (unlinkat(w.dirfd, name, 0) < 0 && errno != ENOENT) {
                r = mk_error_errno(err, "removing cache entry \"%s\"", name);
                break;
            }
            p->rep.cache_entries++;
            p->rep.bytes += bytes;
            continue;
        }
        p->total += bytes;
        char head[512], a[MK_DIGEST_SIZE] = "", b[MK_DIGEST_SIZE] = "";
        if (cache_head(w.dirfd, name, head, sizeof(head)) < 0)
            continue;
        enum cache_kind ck = cache_classify(head, a, b);
        bool drop;
        switch (ck) {
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
        if (!drop)
            continue;
        struct item *it = item_add(p, ITEM_CACHE, name, &st, bytes);
        it->ck = ck;
        memcpy(it->a, a, MK_DIGEST_SIZE);
        memcpy(it->b, b, MK_DIGEST_SIZE);
    }
    p->cache_fd = w.dirfd;
    w.dirfd = -1;
    cache_close(&w);
    for (size_t i = 0; i < copies.n; i++)
        mk_strv_push(&m->blobs, copies.v[i]);
    mk_strv_release(&copies);
    if (m->blobs.n)
        qsort(m->blobs.v, m->blobs.n, sizeof(char *), cmp_str);
    return r;
}

static int collect_blobs(struct prune *p, const struct ls_marks *m, struct mk_error **err)
{
    p->blobs_fd = openat(p->store->root_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (p->blobs_fd < 0)
        return mk_error_errno(err, "opening \"blobs/sha256\"");
    int dup_fd = dup(p->blobs_fd);
    _cleanup_closedir_ DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return mk_error_errno(err, "reading \"blobs/sha256\"");
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (!ls_is_hex64(de->d_name) ||
            fstatat(p->blobs_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        uint64_t bytes = (uint64_t)st.st_blocks * 512;
        p->total += bytes;
        _cleanup_free_ char *digest = mk_xasprintf("sha256:%s", de->d_name);
        if (!ls_marks_has(&m->blobs, digest))
            item_add(p, ITEM_BLOB, de->d_name, &st, bytes);
    }
    return 0;
}

static int collect_snapshots(struct prune *p, const struct ls_marks *m, struct mk_error **err)
{
    _cleanup_free_ char *sdir = mk_xasprintf("%s/snapshots", p->store->root);
    _cleanup_closedir_ DIR *d = opendir(sdir);
    if (!d)
        return mk_error_errno(err, "reading \"%s\"", sdir);
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (!ls_is_hex64(de->d_name) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        _cleanup_free_ char *chain = mk_xasprintf("sha256:%s", de->d_name);
        bool keep = ls_marks_has(&m->chains, chain);
        if (keep && !p->measure)
            continue;
        _cleanup_free_ char *path = mk_xasprintf("%s/%s", sdir, de->d_name);
        uint64_t bytes = ls_du(path);
        p->total += bytes;
        if (!keep)
            item_add(p, ITEM_SNAPSHOT, de->d_name, &st, bytes);
    }
    return 0;
}

static int remove_item(struct prune *p, struct item *it, struct mk_error **err);

static struct item *find_item(struct prune *p, enum item_kind kind, const char *hex)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i].kind == kind && strcmp(p->items[i].hex, hex) == 0)
            return &p->items[i];
    return NULL;
}

/* Cache entries that name what is about to go go first, so no entry ever names a missing
 * blob or snapshot. Such entries are always collected: they are dropped by the same rule
 * that makes their blob or snapshot unreferenced. */
static int remove_dependents(struct prune *p, const struct item *it, struct mk_error **err)
{
    if (it->kind == ITEM_CACHE)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        struct item *c = &p->items[i];
        if (c->gone || c->kind != ITEM_CACHE)
            continue;
        const char *named = NULL;
        if (c->ck == CACHE_LAYER)
            named = it->kind == ITEM_BLOB ? c->a : c->b;
        else if (c->ck == CACHE_COMPRESSED && it->kind == ITEM_BLOB)
            named = c->b;
        if (named && strcmp(mk_digest_hex(named), it->hex) == 0 && remove_item(p, c, err) < 0)
            return -1;
    }
    return 0;
}

static int remove_item(struct prune *p, struct item *it, struct mk_error **err)
{
    /* Marked first: removing one part of a built layer comes back here for the others. */
    if (it->gone)
        return 0;
    it->gone = true;
    if (remove_dependents(p, it, err) < 0)
        return -1;
    switch (it->kind) {
    case ITEM_CACHE:
        if (unlinkat(p->cache_fd, it->hex, 0) < 0 && errno != ENOENT)
            return mk_error_errno(err, "removing cache entry \"%s\"", it->hex);
        p->rep.cache_entries++;
        if (it->ck == CACHE_LAYER) {
            /* A built layer's entry, blob and snapshot go together: the entry is the only
             * record of which snapshot belongs to which blob, and neither is of use to the
             * cache without the other. */
            struct item *blob = find_item(p, ITEM_BLOB, mk_digest_hex(it->a));
            struct item *snap = find_item(p, ITEM_SNAPSHOT, mk_digest_hex(it->b));
            if ((blob && remove_item(p, blob, err) < 0) || (snap && remove_item(p, snap, err) < 0))
                return -1;
        }
        break;
    case ITEM_BLOB:
        if (unlinkat(p->blobs_fd, it->hex, 0) < 0 && errno != ENOENT)
            return mk_error_errno(err, "removing blob sha256:%s", it->hex);
        p->blobs_removed = true;
        p->rep.blobs++;
        break;
    case ITEM_SNAPSHOT: {
        /* Renamed away first: a half-deleted tree never sits under snapshots/. */
        if (!p->trash && !(p->trash = layerstore_tmpdir(p->store, "prune-", err)))
            return -1;
        _cleanup_free_ char *from = mk_xasprintf("%s/snapshots/%s", p->store->root, it->hex);
        _cleanup_free_ char *to = mk_xasprintf("%s/%s", p->trash, it->hex);
        if (rename(from, to) < 0)
            return mk_error_errno(err, "removing snapshot sha256:%s", it->hex);
        p->rep.snapshots++;
        break;
    }
    }
    p->rep.bytes += it->bytes;
    p->total = p->total > it->bytes ? p->total - it->bytes : 0;
    return 0;
}

static int prune_items(struct prune *p, uint64_t keep_storage, struct mk_error **err)
{
    if (p->n)
        qsort(p->items, p->n, sizeof(*p->items), cmp_item);
    for (size_t i = 0; i < p->n; i++) {
        if (p->measure && p->total <= keep_storage)
            break;
        if (!p->items[i].gone && remove_item(p, &p->items[i], err) < 0)
            return -1;
    }
    if (p->blobs_removed && mk_fsync_dir(p->blobs_fd, err) < 0)
        return -1;
    if (p->trash)
        return layerstore_tmpdir_remove(p->store, p->trash, err);
    return 0;
}

int layerstore_prune(struct mk_store *store, const struct mk_prune_opts *opts,
                     struct mk_prune_report *ret, struct mk_error **err)
{
    struct prune p = {.store = store, .cache_fd = -1, .blobs_fd = -1};
    p.measure = opts->keep_storage_set;
    if (ls_gc_lock_exclusive(store, err) < 0)
        return -1;
    struct ls_marks m;
    int r = ls_gc_mark(store, &m, err);
    if (r < 0) {
        ls_gc_lock_shared(store);
        return mk_error_wrap(err, "nothing pruned (\"mkimg fsck --repair\" drops broken images)");
    }
    r = collect_cache(&p, opts->all, &m, err);
    if (r == 0)
        r = collect_blobs(&p, &m, err);
    if (r == 0)
        r = collect_snapshots(&p, &m, err);
    if (r == 0)
        r = prune_items(&p, opts->keep_storage, err);
    else if (p.trash)
        layerstore_tmpdir_remove(store, p.trash, NULL);
    /* The builder's flattened trees are derived: all go, renamed away first like snapshots
     * so that no half-deleted one is ever found. */
    if (r == 0 && faccessat(store->root_fd, "flat", F_OK, 0) == 0) {
        _cleanup_free_ char *tmp = layerstore_tmpdir(store, "flat-", NULL);
        _cleanup_free_ char *to = tmp ? mk_xasprintf("%s/flat", tmp) : NULL;
        _cleanup_free_ char *from = mk_xasprintf("%s/flat", store->root);
        if (to && rename(from, to) < 0)
            r = mk_error_errno(err, "removing \"%s\"", from);
        if (tmp)
            layerstore_tmpdir_remove(store, tmp, NULL);
    }
    /* Leftovers of atomic writes of index.json by processes that died mid-write. */
    _cleanup_closedir_ DIR *d = r == 0 ? opendir(store->root) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (stale_atomic_tmp(de->d_name))
            unlinkat(store->root_fd, de->d_name, 0);
    ls_marks_release(&m);
    ls_gc_lock_shared(store);
    free(p.items);
    free(p.trash);
    if (p.cache_fd >= 0)
        close(p.cache_fd);
    if (p.blobs_fd >= 0)
        close(p.blobs_fd);
    if (r < 0)
        return -1;
    p.rep.remaining = p.total;
    *ret = p.rep;
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
