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

/* Moves a bad snapshot out of snapshots/ and deletes it (renamed first, like prune does:
 * a half-deleted tree never sits under snapshots/). */
static int drop_snapshot(struct fsck *f, const char *path)
{
    _cleanup_free_ char *tmp = layerstore_tmpdir(f->store, "fsck-", NULL);
    _cleanup_free_ char *to = tmp ? mk_xasprintf("%s/snapshot", tmp) : NULL;
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
            if (f->repair && drop_snapshot(f, path) == 0 &&
                ls_snapshot_unpack(f->store, blobs->v[i], diff_ids->v[i], chains->v[i], NULL) == 0)
                f->repaired++;
            continue;
        }
        bool exists = lstat(path, &st) == 0;
        mk_strv_pushf(f->problems, "image %s: snapshot of layer %zu (%s) is %s", name, i + 1,
                      chains->v[i], exists ? "not a directory" : "missing");
        if (!f->repair)
            continue;
        if (exists && mk_rm_rf(path, NULL) < 0)
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

/* Compressed-copy entries must name a whole blob. */
static int check_cache(struct fsck *f)
{
    _cleanup_free_ char *dir = mk_xasprintf("%s/cache", f->store->root);
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!ls_is_hex64(de->d_name))
            continue;
        _cleanup_free_ char *key = mk_xasprintf("sha256:%s", de->d_name);
        _cleanup_free_ char *value = NULL;
        char diff_id[MK_DIGEST_SIZE], blob[MK_DIGEST_SIZE];
        uint64_t size;
        _cleanup_free_ char *path = mk_xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) < 0 || st.st_size > 4096 ||
            layerstore_cache_get(f->store, key, &value, NULL) < 0 ||
            ls_compress_cache_parse(value, diff_id, blob, &size) < 0)
            continue;
        _cleanup_free_ char *bpath = layerstore_blob_path(f->store, blob);
        if (stat(bpath, &st) == 0 && (uint64_t)st.st_size == size && !strv_has(&f->bad_blobs, blob))
            continue;
        mk_strv_pushf(f->problems, "cache entry %s: compressed copy %s is missing or corrupt", key,
                      blob);
        if (f->repair && unlink(path) == 0)
            f->repaired++;
    }
    return 0;
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
        r = check_cache(&f);
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
