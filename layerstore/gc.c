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

/* A lazy layer record some lazy image still uses (its diff ID is marked). */
static bool keep_lazy_layer(const void *ctx, const char *diff_id)
{
    return ls_marks_has(&((const struct ls_marks *)ctx)->blobs, diff_id);
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
    /* Lazy images (cache-lazy.c): named outside index.json, kept all the same. */
    _cleanup_(mk_strv_release) struct mk_strv lazy = MK_STRV_INIT;
    if (layerstore_lazy_manifests(store, &lazy, err) < 0) {
        ls_marks_release(&m);
        return -1;
    }
    for (size_t k = 0; k < lazy.n; k++)
        if (mark_manifest(store, lazy.v[k], 0, &m, err) < 0) {
            ls_marks_release(&m);
            return mk_error_wrap(err, "lazy image %s", lazy.v[k]);
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
bool ls_stale_atomic_tmp(const char *name)
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

int ls_walk_dir(struct mk_store *store, const char *rel, ls_entry_fn fn, void *ctx,
                struct mk_error **err)
{
    _cleanup_close_ int dfd = openat(store->root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : mk_error_errno(err, "opening \"%s\"", rel);
    int dup_fd = dup(dfd);
    _cleanup_closedir_ DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return mk_error_errno(err, "reading \"%s\"", rel);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fn(ctx, dfd, de->d_name, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- prune -------------------------------------------------------------------------------- */

/* Something prune may remove. Cache records come first in a tie: they name blobs and
 * snapshots, never the other way round. */
enum item_kind { ITEM_CACHE, ITEM_BLOB, ITEM_SNAPSHOT, ITEM_MOUNT };
/* ITEM_CACHE of an earlier mkimg's untyped cache (a file right under ROOT/cache). */
#define LEGACY_KIND (-1)

struct item {
    enum item_kind kind;
    char name[72];        /* blob or snapshot hex, record hex, cache mount name */
    int cache_kind;       /* ITEM_CACHE: enum ls_cache_kind or LEGACY_KIND */
    struct timespec used; /* ctime: last ls_mark_used, or creation */
    uint64_t bytes;
    struct ls_cache_refs refs; /* ITEM_CACHE: what the record names */
    bool gone;
};

struct prune {
    struct mk_store *store;
    const struct mk_prune_opts *opts;
    struct ls_marks *marks;
    struct mk_strv copies; /* compressed copies of layers that stay */
    enum ls_cache_kind walking;
    struct item *items;
    size_t n, cap;
    uint64_t total; /* bytes of blobs, snapshots, cache records and mounts now (measure) */
    bool measure;
    int blobs_fd;
    char *trash; /* temp dir snapshots and cache mounts are renamed into before removal */
    bool blobs_removed;
    struct mk_prune_report rep;
};

static struct item *item_add(struct prune *p, enum item_kind kind, const char *name,
                             const struct stat *st, uint64_t bytes)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->items = mk_xreallocarray(p->items, p->cap, sizeof(*p->items));
    }
    struct item *it = &p->items[p->n++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    snprintf(it->name, sizeof(it->name), "%s", name);
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
    return strcmp(a->name, b->name);
}

/* Whether prune may drop a whole record: with all, always; else when what it names goes
 * (an unreferenced layer, manifest, or layer a compressed copy is of). Records that name
 * nothing (explain, context, registry, steps that made no layer) stay until --all. */
static bool record_may_go(struct prune *p, enum ls_cache_kind kind, const struct ls_cache_refs *r)
{
    const struct ls_marks *m = p->marks;
    if (p->opts->all)
        return true;
    switch (kind) {
    case LS_CACHE_STEPS:
        return r->blob[0] &&
               (!ls_marks_has(&m->blobs, r->blob) || !ls_marks_has(&m->chains, r->chain));
    case LS_CACHE_IMAGES:
        return !ls_marks_has(&m->blobs, r->blob);
    case LS_CACHE_COMPRESSED:
        return !ls_marks_has(&m->blobs, r->layer);
    default:
        return false;
    }
}

/* Whether name in the cache directory dirfd is a record file (1, st filled, counted in the
 * store's size) or not (0). Leftovers of atomic writes whose writer died go at once. */
static int cache_file(struct prune *p, int dirfd, const char *name, struct stat *st,
                      struct mk_error **err)
{
    if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st->st_mode))
        return 0;
    uint64_t bytes = (uint64_t)st->st_blocks * 512;
    if (ls_is_hex64(name)) {
        p->total += bytes;
        return 1;
    }
    if (!ls_stale_atomic_tmp(name))
        return 0;
    if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
        return mk_error_errno(err, "removing cache entry \"%s\"", name);
    p->rep.cache_entries++;
    p->rep.bytes += bytes;
    return 0;
}

/* One entry of ROOT/cache/<kind>/: a record that is not whole may always go. */
static int collect_record(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    struct prune *p = ctx;
    struct stat st;
    int r = cache_file(p, dirfd, name, &st, err);
    if (r <= 0)
        return r;
    _cleanup_free_ char *key = mk_xasprintf("sha256:%s", name);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    struct ls_cache_refs refs;
    bool whole = ls_cache_record_load(dirfd, name, p->walking, &data, &len, NULL) == 0 &&
                 ls_cache_record_refs(p->walking, key, data, len, &refs, NULL) == 0;
    if (!whole)
        memset(&refs, 0, sizeof(refs));
    if (whole && !record_may_go(p, p->walking, &refs)) {
        if (p->walking == LS_CACHE_COMPRESSED)
            mk_strv_push(&p->copies, refs.blob);
        return 0;
    }
    struct item *it = item_add(p, ITEM_CACHE, name, &st, (uint64_t)st.st_blocks * 512);
    it->cache_kind = (int)p->walking;
    it->refs = refs;
    return 0;
}

/* An entry right under ROOT/cache: an earlier mkimg's untyped record, never read now. */
static int collect_legacy(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    struct prune *p = ctx;
    struct stat st;
    int r = cache_file(p, dirfd, name, &st, err);
    if (r > 0)
        item_add(p, ITEM_CACHE, name, &st, (uint64_t)st.st_blocks * 512)->cache_kind = LEGACY_KIND;
    return r < 0 ? -1 : 0;
}

/* Cache mounts: nothing an image needs, so only --all and --keep-storage drop them. */
static int collect_mount(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)err;
    struct prune *p = ctx;
    struct stat st;
    if (!(p->opts->all || p->measure) || !ls_cache_mount_name_ok(name) ||
        fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    _cleanup_free_ char *path =
        mk_xasprintf("%s/cache/" LS_CACHE_MOUNTS_DIR "/%s", p->store->root, name);
    uint64_t bytes = ls_du(path);
    p->total += bytes;
    item_add(p, ITEM_MOUNT, name, &st, bytes);
    return 0;
}

/* Collects the cache records prune may drop and marks the compressed copies of the records
 * that stay. */
static int collect_cache(struct prune *p, struct mk_error **err)
{
    if (ls_walk_dir(p->store, "cache", collect_legacy, p, err) < 0)
        return -1;
    for (int k = 0; k < LS_CACHE_KINDS; k++) {
        _cleanup_free_ char *rel = mk_xasprintf("cache/%s", ls_cache_dirs[k]);
        p->walking = (enum ls_cache_kind)k;
        if (ls_walk_dir(p->store, rel, collect_record, p, err) < 0)
            return -1;
    }
    if (ls_walk_dir(p->store, "cache/" LS_CACHE_MOUNTS_DIR, collect_mount, p, err) < 0)
        return -1;
    /* Kept apart until now: m->blobs must stay sorted for the lookups. */
    struct ls_marks *m = p->marks;
    for (size_t i = 0; i < p->copies.n; i++)
        mk_strv_push(&m->blobs, p->copies.v[i]);
    if (m->blobs.n)
        qsort(m->blobs.v, m->blobs.n, sizeof(char *), cmp_str);
    return 0;
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

static struct item *find_item(struct prune *p, enum item_kind kind, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i].kind == kind && strcmp(p->items[i].name, name) == 0)
            return &p->items[i];
    return NULL;
}

/* Records that name what is about to go go first, so no record ever names a missing blob
 * or snapshot. Such records are always collected: they are dropped by the same rule that
 * makes their blob or snapshot unreferenced. */
static int remove_dependents(struct prune *p, const struct item *it, struct mk_error **err)
{
    if (it->kind != ITEM_BLOB && it->kind != ITEM_SNAPSHOT)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        struct item *c = &p->items[i];
        if (c->gone || c->kind != ITEM_CACHE)
            continue;
        const char *named = it->kind == ITEM_BLOB ? c->refs.blob : c->refs.chain;
        if (named[0] && strcmp(mk_digest_hex(named), it->name) == 0 && remove_item(p, c, err) < 0)
            return -1;
    }
    return 0;
}

/* Renamed away first: a half-deleted tree never sits under snapshots/ or cache/mounts/. */
static int trash_tree(struct prune *p, const char *rel, const char *as, struct mk_error **err)
{
    if (!p->trash && !(p->trash = layerstore_tmpdir(p->store, "prune-", err)))
        return -1;
    _cleanup_free_ char *to = mk_xasprintf("%s/%s", p->trash, as);
    if (renameat(p->store->root_fd, rel, AT_FDCWD, to) < 0)
        return mk_error_errno(err, "removing \"%s\"", rel);
    return 0;
}

static int remove_record(struct prune *p, struct item *it, struct mk_error **err)
{
    _cleanup_free_ char *rel =
        it->cache_kind == LEGACY_KIND
            ? mk_xasprintf("cache/%s", it->name)
            : mk_xasprintf("cache/%s/%s", ls_cache_dirs[it->cache_kind], it->name);
    if (unlinkat(p->store->root_fd, rel, 0) < 0 && errno != ENOENT)
        return mk_error_errno(err, "removing cache entry \"%s\"", rel);
    p->rep.cache_entries++;
    if (it->cache_kind == LS_CACHE_STEPS && it->refs.blob[0]) {
        /* A built layer's record, blob and snapshot go together: the record is the only
         * note of which snapshot belongs to which blob, and neither is of use to the cache
         * without the other. */
        struct item *blob = find_item(p, ITEM_BLOB, mk_digest_hex(it->refs.blob));
        struct item *snap = find_item(p, ITEM_SNAPSHOT, mk_digest_hex(it->refs.chain));
        if ((blob && remove_item(p, blob, err) < 0) || (snap && remove_item(p, snap, err) < 0))
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
        if (remove_record(p, it, err) < 0)
            return -1;
        break;
    case ITEM_BLOB:
        if (unlinkat(p->blobs_fd, it->name, 0) < 0 && errno != ENOENT)
            return mk_error_errno(err, "removing blob sha256:%s", it->name);
        p->blobs_removed = true;
        p->rep.blobs++;
        break;
    case ITEM_SNAPSHOT: {
        _cleanup_free_ char *rel = mk_xasprintf("snapshots/%s", it->name);
        if (trash_tree(p, rel, it->name, err) < 0)
            return mk_error_wrap(err, "removing snapshot sha256:%s", it->name);
        p->rep.snapshots++;
        break;
    }
    case ITEM_MOUNT: {
        _cleanup_free_ char *rel = mk_xasprintf("cache/" LS_CACHE_MOUNTS_DIR "/%s", it->name);
        _cleanup_free_ char *as = mk_xasprintf("mount-%s", it->name);
        if (trash_tree(p, rel, as, err) < 0)
            return -1;
        p->rep.cache_mounts++;
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

/* Derived trees that go as a whole at every prune, renamed away first so that no
 * half-deleted one is ever found: the builder's flattened trees (ROOT/flat) and an earlier
 * mkimg's cache mounts (ROOT/mounts), which nothing uses any more. */
static int remove_derived(struct mk_store *store, const char *name, struct mk_error **err)
{
    if (faccessat(store->root_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    _cleanup_free_ char *tmp = layerstore_tmpdir(store, "derived-", NULL);
    _cleanup_free_ char *to = tmp ? mk_xasprintf("%s/%s", tmp, name) : NULL;
    _cleanup_free_ char *from = mk_xasprintf("%s/%s", store->root, name);
    int r = 0;
    if (to && rename(from, to) < 0)
        r = mk_error_errno(err, "removing \"%s\"", from);
    if (tmp)
        layerstore_tmpdir_remove(store, tmp, NULL);
    return r;
}

/* An earlier mkimg's cache mounts, ROOT/mounts/cache/<hex>[-N] beside <hex>[-N].lock. */
static int count_legacy_mount(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)dirfd;
    (void)err;
    if (!mk_str_has_suffix(name, ".lock"))
        ((struct mk_prune_report *)ctx)->cache_mounts++;
    return 0;
}

static int prune_locked(struct prune *p, struct mk_error **err)
{
    struct mk_store *store = p->store;
    int r = collect_cache(p, err);
    if (r == 0)
        r = collect_blobs(p, p->marks, err);
    if (r == 0)
        r = collect_snapshots(p, p->marks, err);
    if (r == 0)
        r = prune_items(p, p->opts->keep_storage, err);
    else if (p->trash)
        layerstore_tmpdir_remove(store, p->trash, NULL);
    if (r == 0 && ls_walk_dir(store, "mounts/cache", count_legacy_mount, &p->rep, NULL) == 0) {
        _cleanup_free_ char *legacy = mk_xasprintf("%s/mounts", store->root);
        p->rep.bytes += ls_du(legacy);
    }
    if (r == 0)
        r = remove_derived(store, "mounts", err);
    if (r == 0)
        r = remove_derived(store, "flat", err);
    /* Indexes of snapshots that may go: what they name is checked when one is used, so all
     * go (a build's next commit of each layer writes its index again). */
    if (r == 0)
        r = remove_derived(store, "tar-index", err);
    /* Leftovers of atomic writes of index.json by processes that died mid-write. */
    _cleanup_closedir_ DIR *d = r == 0 ? opendir(store->root) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (ls_stale_atomic_tmp(de->d_name))
            unlinkat(store->root_fd, de->d_name, 0);
    return r;
}

int layerstore_prune(struct mk_store *store, const struct mk_prune_opts *opts,
                     struct mk_prune_report *ret, struct mk_error **err)
{
    struct ls_marks m;
    struct prune p = {.store = store, .opts = opts, .marks = &m, .blobs_fd = -1};
    p.measure = opts->keep_storage_set;
    if (ls_gc_lock_exclusive(store, err) < 0)
        return -1;
    int r = ls_gc_mark(store, &m, err);
    if (r < 0) {
        ls_gc_lock_shared(store);
        return mk_error_wrap(err, "nothing pruned (\"mkimg fsck --repair\" drops broken images)");
    }
    r = prune_locked(&p, err);
    if (r == 0)
        ls_lazy_layers_prune(store, keep_lazy_layer, &m);
    ls_marks_release(&m);
    ls_gc_lock_shared(store);
    free(p.items);
    free(p.trash);
    mk_strv_release(&p.copies);
    if (p.blobs_fd >= 0)
        close(p.blobs_fd);
    if (r < 0)
        return -1;
    p.rep.remaining = p.total;
    *ret = p.rep;
    return 0;
}

/* ---- df ----------------------------------------------------------------------------------- */

struct df_walk {
    struct mk_df_report *rep;
    const struct ls_marks *marks;
    struct mk_strv copies; /* compressed copies the cache maps from a referenced layer */
    enum ls_cache_kind walking;
    struct mk_store *store;
};

static int df_record(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)err;
    struct df_walk *w = ctx;
    struct stat st;
    if (!ls_is_hex64(name) || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode))
        return 0;
    w->rep->cache_entries++;
    w->rep->cache_bytes += (uint64_t)st.st_blocks * 512;
    if (w->walking != LS_CACHE_COMPRESSED)
        return 0;
    _cleanup_free_ char *key = mk_xasprintf("sha256:%s", name);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    struct ls_cache_refs refs;
    if (ls_cache_record_load(dirfd, name, w->walking, &data, &len, NULL) == 0 &&
        ls_cache_record_refs(w->walking, key, data, len, &refs, NULL) == 0 &&
        ls_marks_has(&w->marks->blobs, refs.layer))
        mk_strv_push(&w->copies, refs.blob);
    return 0;
}

static int df_mount(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)dirfd;
    (void)err;
    struct df_walk *w = ctx;
    bool legacy = w->walking == LS_CACHE_KINDS;
    if (legacy ? mk_str_has_suffix(name, ".lock") : !ls_cache_mount_name_ok(name))
        return 0;
    _cleanup_free_ char *path = mk_xasprintf(
        "%s/%s/%s", w->store->root, legacy ? "mounts/cache" : "cache/" LS_CACHE_MOUNTS_DIR, name);
    w->rep->cache_mounts++;
    w->rep->cache_mount_bytes += ls_du(path);
    return 0;
}

static int df_cache(struct mk_store *store, struct df_walk *w, struct mk_error **err)
{
    w->walking = LS_CACHE_STEPS; /* any kind but compressed: legacy records count as such */
    if (ls_walk_dir(store, "cache", df_record, w, err) < 0)
        return -1;
    for (int k = 0; k < LS_CACHE_KINDS; k++) {
        _cleanup_free_ char *rel = mk_xasprintf("cache/%s", ls_cache_dirs[k]);
        w->walking = (enum ls_cache_kind)k;
        if (ls_walk_dir(store, rel, df_record, w, err) < 0)
            return -1;
    }
    if (ls_walk_dir(store, "cache/" LS_CACHE_MOUNTS_DIR, df_mount, w, err) < 0)
        return -1;
    w->walking = LS_CACHE_KINDS; /* ROOT/mounts/cache: an earlier mkimg's */
    return ls_walk_dir(store, "mounts/cache", df_mount, w, err);
}

/* ROOT/tmp: what running builds, pulls, pushes and exports hold now (opening the store,
 * as df did, removed what no process holds any more). */
static int df_tmp(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)dirfd;
    (void)err;
    struct df_walk *w = ctx;
    _cleanup_free_ char *path = mk_xasprintf("%s/tmp/%s", w->store->root, name);
    w->rep->temp++;
    w->rep->temp_bytes += ls_du(path);
    return 0;
}

int layerstore_df(struct mk_store *store, struct mk_df_report *ret, struct mk_error **err)
{
    struct mk_df_report rep;
    memset(&rep, 0, sizeof(rep));
    struct ls_marks m;
    if (ls_gc_mark(store, &m, err) < 0)
        return -1;
    rep.images = m.images;
    struct df_walk w = {.rep = &rep, .marks = &m, .store = store};
    if (df_cache(store, &w, err) < 0 || ls_walk_dir(store, "tmp", df_tmp, &w, err) < 0) {
        mk_strv_release(&w.copies);
        ls_marks_release(&m);
        return -1;
    }
    struct mk_strv *copies = &w.copies;
    if (copies->n)
        qsort(copies->v, copies->n, sizeof(char *), cmp_str);
    struct dirent *de;
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
        if (ls_marks_has(copies, digest)) {
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
    mk_strv_release(copies);
    ls_marks_release(&m);
    *ret = rep;
    return 0;
}

/* ---- after a power cut ---------------------------------------------------------------- */

struct recover {
    const struct ls_marks *marks; /* NULL: index.json could not be followed */
    time_t since;
    enum { REC_BLOBS, REC_SNAPSHOTS, REC_OTHER } what;
    size_t removed;
};

/* Without marks, a blob stays when its bytes hash to its name (a tagged image may need it). */
static bool blob_whole(int dirfd, const char *name)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char got[MK_DIGEST_SIZE], want[MK_DIGEST_SIZE];
    snprintf(want, sizeof(want), "sha256:%s", name);
    return fd >= 0 && mk_sha256_fd(fd, got, NULL, NULL) == 0 && strcmp(got, want) == 0;
}

static int recover_entry(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    struct recover *r = ctx;
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ctime < r->since)
        return 0;
    if (r->what != REC_OTHER && ls_is_hex64(name)) {
        char digest[MK_DIGEST_SIZE];
        snprintf(digest, sizeof(digest), "sha256:%s", name);
        if (r->marks &&
            ls_marks_has(r->what == REC_BLOBS ? &r->marks->blobs : &r->marks->chains, digest))
            return 0;
        if (!r->marks && r->what == REC_BLOBS && blob_whole(dirfd, name))
            return 0;
    }
    r->removed++;
    return mk_rm_rf_at(dirfd, name, err);
}

/* Snapshots are unpacked again from their blobs when an image needs one, so without marks
 * every recent one goes. */
int ls_gc_recover_unsynced(struct mk_store *store, time_t since, size_t *ret_removed,
                           struct mk_error **err)
{
    struct ls_marks m;
    struct mk_error *e = NULL;
    bool marked = ls_gc_mark(store, &m, &e) == 0;
    mk_error_free(e);
    struct recover r = {marked ? &m : NULL, since, REC_BLOBS, 0};
    int ret = ls_walk_dir(store, "blobs/sha256", recover_entry, &r, err);
    r.what = REC_SNAPSHOTS;
    if (ret == 0)
        ret = ls_walk_dir(store, "snapshots", recover_entry, &r, err);
    r.what = REC_OTHER;
    if (ret == 0)
        ret = ls_walk_dir(store, "flat", recover_entry, &r, err);
    for (int k = 0; ret == 0 && k < LS_CACHE_KINDS; k++) {
        _cleanup_free_ char *rel = mk_xasprintf("cache/%s", ls_cache_dirs[k]);
        ret = ls_walk_dir(store, rel, recover_entry, &r, err);
    }
    if (marked)
        ls_marks_release(&m);
    if (ret == 0 && ret_removed)
        *ret_removed = r.removed;
    return ret;
}
