/* layerstore/fsck.c - `mkimg fsck [--repair]`: verify blobs, references, snapshots, cache.
 *
 * Checking takes only the shared gc lock (nothing is deleted under a running build); repair
 * takes it exclusively like prune. Broken images are dropped from index.json before any
 * blob is deleted, so a crash in the middle of a repair leaves no reference to a missing
 * blob. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define FSCK_MAX_DEPTH 2

struct fsck {
    struct mk_store *store;
    bool repair;
    bool deep;
    struct mk_strv deep_done; /* chains whose snapshot --deep checked already */
    struct mk_strv *problems;
    size_t repaired;
    struct mk_strv bad_blobs; /* digests whose content is wrong */
};

static bool strv_has(const struct mk_strv *sv, const char *s)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcmp(sv->v[i], s) == 0)
            return true;
    return false;
}

static int check_blobs(struct fsck *f, struct mk_error **err)
{
    _cleanup_close_ int dfd =
        openat(f->store->root_fd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (mk_interrupted)
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
        if (!ls_is_hex64(de->d_name)) {
            mk_strv_pushf(f->problems, "stray file \"blobs/sha256/%s\"", de->d_name);
            if (f->repair && mk_rm_rf_at(dfd, de->d_name, NULL) == 0)
                f->repaired++;
            continue;
        }
        _cleanup_free_ char *digest = mk_xasprintf("sha256:%s", de->d_name);
        _cleanup_close_ int fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        char got[MK_DIGEST_SIZE];
        struct mk_error *e = NULL;
        if (fd < 0 || mk_sha256_fd(fd, got, NULL, &e) < 0) {
            mk_strv_pushf(f->problems, "blob %s: unreadable: %s", digest,
                          e ? e->msg : strerror(errno));
            mk_error_free(e);
            mk_strv_push(&f->bad_blobs, digest);
            continue;
        }
        if (strcmp(got, digest) != 0) {
            mk_strv_pushf(f->problems, "blob %s: content is %s", digest, got);
            mk_strv_push(&f->bad_blobs, digest);
        }
    }
    return 0;
}

static bool blob_ok(struct fsck *f, const char *digest)
{
    return layerstore_blob_exists(f->store, digest) && !strv_has(&f->bad_blobs, digest);
}

/* NULL when the image behind manifest is whole, else what is wrong with it. */
static char *check_manifest(struct fsck *f, const char *digest, int depth, struct mk_strv *chains,
                            struct mk_strv *layer_blobs, struct mk_strv *diff_ids)
{
    if (!blob_ok(f, digest))
        return mk_xasprintf("manifest %s is missing or corrupt", digest);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (layerstore_blob_read(f->store, digest, LS_JSON_MAX, &data, &len, NULL) < 0)
        return mk_xasprintf("manifest %s is unreadable", digest);
    _cleanup_json_ json_t *j = json_loadb(data, len, 0, NULL);
    if (!json_is_object(j))
        return mk_xasprintf("manifest %s is not JSON", digest);
    json_t *children = json_object_get(j, "manifests");
    if (json_is_array(children)) {
        if (depth >= FSCK_MAX_DEPTH)
            return mk_xasprintf("image index %s is nested too deep", digest);
        size_t i;
        json_t *c;
        json_array_foreach(children, i, c)
        {
            const char *d = ls_desc_digest(c);
            char *why = d ? check_manifest(f, d, depth + 1, chains, layer_blobs, diff_ids)
                          : mk_xasprintf("image index %s has a bad entry", digest);
            if (why)
                return why;
        }
        return NULL;
    }
    const char *config = ls_desc_digest(json_object_get(j, "config"));
    if (!config)
        return mk_xasprintf("manifest %s has no config", digest);
    if (!blob_ok(f, config))
        return mk_xasprintf("config %s is missing or corrupt", config);
    _cleanup_free_ char *cdata = NULL;
    size_t clen = 0;
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (layerstore_blob_read(f->store, config, LS_JSON_MAX, &cdata, &clen, NULL) < 0 ||
        layerstore_config_parse(cdata, clen, &cfg, NULL) < 0)
        return mk_xasprintf("config %s is unreadable", config);
    json_t *layers = json_object_get(j, "layers");
    char *why = NULL;
    if (!json_is_array(layers) || json_array_size(layers) != cfg.diff_ids.n)
        why = mk_xasprintf("manifest %s and config %s disagree on the layers", digest, config);
    char chain[MK_DIGEST_SIZE] = "";
    for (size_t i = 0; !why && i < cfg.diff_ids.n; i++) {
        const char *ld = ls_desc_digest(json_array_get(layers, i));
        if (!ld || !blob_ok(f, ld)) {
            why = mk_xasprintf("layer %zu (%s) is missing or corrupt", i + 1, ld ? ld : "?");
            break;
        }
        char next[MK_DIGEST_SIZE];
        mk_chain_id(chain, cfg.diff_ids.v[i], next);
        memcpy(chain, next, MK_DIGEST_SIZE);
        mk_strv_push(chains, chain);
        mk_strv_push(layer_blobs, ld);
        mk_strv_push(diff_ids, cfg.diff_ids.v[i]);
    }
    layerstore_config_release(&cfg);
    return why;
}

/* Moves a tree out of the store and deletes it (renamed first, like prune does: a
 * half-deleted tree never sits under snapshots/ or cache/mounts/). */
static int drop_tree(struct fsck *f, const char *path)
{
    _cleanup_free_ char *tmp = layerstore_tmpdir(f->store, "fsck-", NULL);
    _cleanup_free_ char *to = tmp ? mk_xasprintf("%s/tree", tmp) : NULL;
    int r = to && rename(path, to) == 0 ? 0 : -1;
    if (tmp)
        layerstore_tmpdir_remove(f->store, tmp, NULL);
    return r;
}

/* --deep: the snapshot's content against its layer; 0 when it holds the layer, 1 when not,
 * -1 when it could not be told (a problem either way, but no reason to delete it). */
static int check_snapshot_deep(struct fsck *f, const char *name, const struct mk_strv *chains,
                               size_t i, const char *blob, const char *diff_id)
{
    if (strv_has(&f->deep_done, chains->v[i]))
        return 0;
    /* Compared over its parents' snapshots; one of them missing (derived data, see
     * check_snapshots) leaves nothing to compare over. */
    for (size_t k = 0; k < i; k++)
        if (!layerstore_snapshot_exists(f->store, chains->v[k]))
            return 0;
    mk_strv_push(&f->deep_done, chains->v[i]);
    struct mk_strv parents = {.v = chains->v, .n = i};
    bool ok = false;
    struct mk_error *e = NULL;
    if (ls_snapshot_verify(f->store, &parents, chains->v[i], blob, diff_id, &ok, &e) < 0) {
        mk_strv_pushf(f->problems, "image %s: snapshot of layer %zu (%s) cannot be checked: %s",
                      name, i + 1, chains->v[i], e->msg);
        mk_error_free(e);
        return -1;
    }
    if (ok)
        return 0;
    mk_strv_pushf(f->problems,
                  "image %s: snapshot of layer %zu (%s) does not hold the layer (diff ID %s)", name,
                  i + 1, chains->v[i], diff_id);
    return 1;
}

static int check_snapshots(struct fsck *f, const char *name, const struct mk_strv *chains,
                           const struct mk_strv *blobs, const struct mk_strv *diff_ids)
{
    for (size_t i = 0; i < chains->n; i++) {
        _cleanup_free_ char *path = layerstore_snapshot_path(f->store, chains->v[i]);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (!f->deep ||
                check_snapshot_deep(f, name, chains, i, blobs->v[i], diff_ids->v[i]) <= 0)
                continue;
            /* Unpacked again from the blob, which check_blobs found whole. */
            if (f->repair && drop_tree(f, path) == 0 &&
                ls_snapshot_unpack(f->store, blobs->v[i], diff_ids->v[i], chains->v[i], NULL) == 0)
                f->repaired++;
            continue;
        }
        /* Missing is no problem: a snapshot is derived from its blob (check_blobs found it
         * whole), unpacked by whatever mounts it; a build drops those of big layers
         * (layerstore_layer_commit_blob). */
        if (lstat(path, &st) < 0)
            continue;
        mk_strv_pushf(f->problems, "image %s: snapshot of layer %zu (%s) is not a directory", name,
                      i + 1, chains->v[i]);
        if (!f->repair || mk_rm_rf(path, NULL) < 0)
            continue;
        /* The chain's parents exist already: the loop goes bottom-up. */
        if (ls_snapshot_unpack(f->store, blobs->v[i], diff_ids->v[i], chains->v[i], NULL) == 0)
            f->repaired++;
    }
    return 0;
}

static int check_images(struct fsck *f, struct mk_error **err)
{
    _cleanup_json_ json_t *idx = NULL;
    if (ls_index_load(f->store, &idx, err) < 0)
        return -1;
    struct mk_strv broken = MK_STRV_INIT;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(idx, "manifests"), i, e)
    {
        const char *d = ls_desc_digest(e);
        const char *ref = ls_desc_ref(e);
        if (!d) {
            mk_strv_pushf(f->problems, "index.json entry %zu has no valid digest", i + 1);
            continue;
        }
        const char *name = ref ? ref : d;
        struct mk_strv chains = MK_STRV_INIT, blobs = MK_STRV_INIT, diff_ids = MK_STRV_INIT;
        _cleanup_free_ char *why = check_manifest(f, d, 0, &chains, &blobs, &diff_ids);
        if (why) {
            mk_strv_pushf(f->problems, "image %s: %s", name, why);
            if (!strv_has(&broken, d))
                mk_strv_push(&broken, d);
        } else {
            check_snapshots(f, name, &chains, &blobs, &diff_ids);
        }
        mk_strv_release(&chains);
        mk_strv_release(&blobs);
        mk_strv_release(&diff_ids);
    }
    for (size_t k = 0; f->repair && k < broken.n; k++)
        if (ls_index_remove_manifest(f->store, broken.v[k], NULL) == 0)
            f->repaired++;
    mk_strv_release(&broken);
    return 0;
}

/* ---- the cache --------------------------------------------------------------------------- */

struct cache_check {
    struct fsck *f;
    enum ls_cache_kind kind;
};

static void stray(struct fsck *f, int dirfd, const char *rel, const char *name)
{
    mk_strv_pushf(f->problems, "stray entry \"%s/%s\"", rel, name);
    if (f->repair && mk_rm_rf_at(dirfd, name, NULL) == 0)
        f->repaired++;
}

/* NULL when what the record names is there, else what is missing. */
static char *record_refs_missing(struct fsck *f, enum ls_cache_kind kind,
                                 const struct ls_cache_refs *r)
{
    if (!r->blob[0])
        return NULL;
    struct stat st;
    _cleanup_free_ char *bpath = layerstore_blob_path(f->store, r->blob);
    bool blob = stat(bpath, &st) == 0 && !strv_has(&f->bad_blobs, r->blob);
    switch (kind) {
    case LS_CACHE_STEPS:
        if (!blob)
            return mk_xasprintf("layer %s is missing or corrupt", r->blob);
        return NULL; /* its snapshot may be missing: unpacked from the blob on a hit */
    case LS_CACHE_COMPRESSED:
        return blob && (uint64_t)st.st_size == r->blob_size
                   ? NULL
                   : mk_xasprintf("compressed copy %s is missing or corrupt", r->blob);
    case LS_CACHE_IMAGES:
        return blob ? NULL : mk_xasprintf("manifest %s is missing or corrupt", r->blob);
    default:
        return NULL;
    }
}

/* One entry of ROOT/cache/<kind>/: a whole record of its kind and key, naming what is
 * there. Atomic-write leftovers are prune's business. */
static int check_record(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)err;
    struct cache_check *c = ctx;
    struct fsck *f = c->f;
    _cleanup_free_ char *rel = mk_xasprintf("cache/%s", ls_cache_dirs[c->kind]);
    struct stat st;
    if (name[0] == '.' && strstr(name, ".tmp."))
        return 0;
    if (!ls_is_hex64(name) || fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        !S_ISREG(st.st_mode)) {
        stray(f, dirfd, rel, name);
        return 0;
    }
    _cleanup_free_ char *key = mk_xasprintf("sha256:%s", name);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    struct ls_cache_refs refs;
    struct mk_error *e = NULL;
    _cleanup_free_ char *why = NULL;
    if (ls_cache_record_load(dirfd, name, c->kind, &data, &len, &e) < 0 ||
        ls_cache_record_refs(c->kind, key, data, len, &refs, &e) < 0)
        why = mk_xstrdup(e->msg);
    else
        why = record_refs_missing(f, c->kind, &refs);
    mk_error_free(e);
    if (!why)
        return 0;
    mk_strv_pushf(f->problems, "cache record %s/%s: %s", rel, name, why);
    if (f->repair && unlinkat(dirfd, name, 0) == 0)
        f->repaired++;
    return 0;
}

static int check_mount(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)err;
    struct fsck *f = ctx;
    static const char rel[] = "cache/" LS_CACHE_MOUNTS_DIR;
    if (!ls_cache_mount_name_ok(name)) {
        stray(f, dirfd, rel, name);
        return 0;
    }
    _cleanup_free_ char *why = ls_cache_mount_check(dirfd, name);
    if (!why)
        return 0;
    mk_strv_pushf(f->problems, "cache mount %s %s", name, why);
    _cleanup_free_ char *path = mk_xasprintf("%s/%s/%s", f->store->root, rel, name);
    if (f->repair && drop_tree(f, path) == 0)
        f->repaired++;
    return 0;
}

/* Right under ROOT/cache: the kinds' directories, and an earlier mkimg's untyped records
 * (files named by a hex key, and their atomic-write leftovers), which are prune's to drop. */
static int check_cache_entry(void *ctx, int dirfd, const char *name, struct mk_error **err)
{
    (void)err;
    struct fsck *f = ctx;
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        (ls_is_hex64(name) || (name[0] == '.' && strstr(name, ".tmp."))))
        return 0;
    bool known = S_ISDIR(st.st_mode) && strcmp(name, LS_CACHE_MOUNTS_DIR) == 0;
    for (int k = 0; k < LS_CACHE_KINDS; k++)
        known |= S_ISDIR(st.st_mode) && strcmp(name, ls_cache_dirs[k]) == 0;
    if (!known)
        stray(f, dirfd, "cache", name);
    return 0;
}

static int check_cache(struct fsck *f, struct mk_error **err)
{
    if (ls_walk_dir(f->store, "cache", check_cache_entry, f, err) < 0)
        return -1;
    for (int k = 0; k < LS_CACHE_KINDS; k++) {
        struct cache_check c = {.f = f, .kind = (enum ls_cache_kind)k};
        _cleanup_free_ char *rel = mk_xasprintf("cache/%s", ls_cache_dirs[k]);
        if (ls_walk_dir(f->store, rel, check_record, &c, err) < 0)
            return -1;
    }
    return ls_walk_dir(f->store, "cache/" LS_CACHE_MOUNTS_DIR, check_mount, f, err);
}

static void check_snapshot_dir(struct fsck *f)
{
    _cleanup_free_ char *dir = mk_xasprintf("%s/snapshots", f->store->root);
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            ls_is_hex64(de->d_name))
            continue;
        mk_strv_pushf(f->problems, "stray entry \"snapshots/%s\"", de->d_name);
        if (f->repair && mk_rm_rf_at(dirfd(d), de->d_name, NULL) == 0)
            f->repaired++;
    }
}

int layerstore_fsck(struct mk_store *store, bool repair, bool deep, struct mk_strv *ret_problems,
                    size_t *ret_repaired, struct mk_error **err)
{
    if (repair && ls_gc_lock_exclusive(store, err) < 0)
        return -1;
    struct fsck f = {.store = store, .repair = repair, .deep = deep, .problems = ret_problems};
    int r = check_blobs(&f, err);
    if (r == 0)
        r = check_images(&f, err);
    if (r == 0)
        r = check_cache(&f, err);
    if (r == 0)
        check_snapshot_dir(&f);
    /* Corrupt blobs go last: by now no index entry and no cache entry names them. */
    for (size_t i = 0; r == 0 && repair && i < f.bad_blobs.n; i++) {
        _cleanup_free_ char *path = layerstore_blob_path(store, f.bad_blobs.v[i]);
        if (unlink(path) == 0)
            f.repaired++;
    }
    mk_strv_release(&f.bad_blobs);
    mk_strv_release(&f.deep_done);
    if (repair)
        ls_gc_lock_shared(store);
    if (r < 0)
        return -1;
    if (ret_repaired)
        *ret_repaired = f.repaired;
    return 0;
}
