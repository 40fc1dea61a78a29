/* layerstore/cache.c - the typed caches' common part: one directory per kind under
 * ROOT/cache/, one record per key, each starting with a header line that names its kind,
 * format version and key (so a record of an earlier format, or one copied under another
 * name, reads as a miss and fsck can tell it apart from a damaged one). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic-file.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"

#define CACHE_FORMAT 1

const char *const ls_cache_dirs[LS_CACHE_KINDS] = {
    [LS_CACHE_STEPS] = "steps",           [LS_CACHE_EXPLAIN] = "explain",
    [LS_CACHE_IMAGES] = "images",         [LS_CACHE_CONTEXT] = "context",
    [LS_CACHE_COMPRESSED] = "compressed", [LS_CACHE_REGISTRY] = "registry",
};

char *ls_cache_header(enum ls_cache_kind kind, const char *key)
{
    return mk_xasprintf("mkimg-cache %s %d %s\n", ls_cache_dirs[kind], CACHE_FORMAT, key);
}

bool ls_cache_header_ok(enum ls_cache_kind kind, const char *key, const char *data,
                        const char **ret_body)
{
    _cleanup_free_ char *want = ls_cache_header(kind, key);
    if (!mk_str_has_prefix(data, want))
        return false;
    *ret_body = data + strlen(want);
    return true;
}

static char *record_rel(enum ls_cache_kind kind, const char *key)
{
    return mk_xasprintf("cache/%s/%s", ls_cache_dirs[kind], mk_digest_hex(key));
}

int ls_cache_read(struct mk_store *store, enum ls_cache_kind kind, const char *key, char **ret,
                  size_t *ret_len, struct mk_error **err)
{
    if (!mk_digest_valid(key))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid cache key \"%s\"", key);
    _cleanup_free_ char *rel = record_rel(kind, key);
    if (mk_read_file_at(store->root_fd, rel, LS_CACHE_VALUE_MAX, ret, ret_len, err) < 0)
        return -1;
    ls_mark_used_at(store->root_fd, rel);
    return 0;
}

int ls_cache_write(struct mk_store *store, enum ls_cache_kind kind, const char *key,
                   const char *data, size_t len, struct mk_error **err)
{
    if (!mk_digest_valid(key))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid cache key \"%s\"", key);
    if (len > LS_CACHE_VALUE_MAX)
        return mk_error_set(err, MK_ERR_INVALID, 0, "cache record too large");
    _cleanup_free_ char *dir = mk_xasprintf("%s/cache/%s", store->root, ls_cache_dirs[kind]);
    if (mk_mkdir_p(dir, 0700, err) < 0)
        return -1;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    if (kind != LS_CACHE_STEPS && !ls_sync_deferred(store))
        return mk_write_file_atomic(dfd, mk_digest_hex(key), data, len, 0600, err);
    /* A step record is written on every step that makes a layer; two fsyncs each would be
     * most of a small step's time. Unsynced is safe: a reader takes nothing but a whole
     * record of its kind and key (a header naming both, NUL-free, one JSON object), so
     * what a crash leaves of an unsynced record is a miss; and a hit needs the record's
     * blob and snapshot to exist, whose bytes were on disk before they got their names.
     * Records of every kind written in a window of layerstore_sync_defer go after a power
     * cut in it, and are synced before it ends. */
    _cleanup_(mk_atomic_file_release) struct mk_atomic_file f = {.fd = -1, .dirfd = -1};
    if (mk_atomic_file_init(&f, dfd, mk_digest_hex(key), 0600, err) < 0 ||
        mk_write_all(f.fd, data, len, err) < 0 || mk_atomic_file_commit_unsynced(&f, err) < 0)
        return mk_error_wrap(err, "writing \"%s/%s\"", dir, mk_digest_hex(key));
    return 0;
}

int ls_cache_record_load(int dirfd, const char *name, enum ls_cache_kind kind, char **ret,
                         size_t *ret_len, struct mk_error **err)
{
    if (kind != LS_CACHE_CONTEXT)
        return mk_read_file_at(dirfd, name, LS_CACHE_VALUE_MAX, ret, ret_len, err);
    /* A context table can be tens of MB; its header says all prune and fsck need. */
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", name);
    char *buf = mk_xmalloc(4096);
    ssize_t n = mk_read_some(fd, buf, 4095, err);
    if (n < 0) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *ret = buf;
    *ret_len = (size_t)n;
    return 0;
}

int layerstore_layer_lookup(struct mk_store *store, const char *diff_id, const char *chain_id,
                            struct mk_layer_desc *ret, struct mk_error **err)
{
    if (!mk_digest_valid(diff_id) || !mk_digest_valid(chain_id))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid layer digest");
    _cleanup_free_ char *blob = layerstore_blob_path(store, diff_id);
    struct stat st;
    if (stat(blob, &st) < 0)
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "layer %s is gone", diff_id);
    ls_mark_used(store, diff_id, chain_id);
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->digest, diff_id, MK_DIGEST_SIZE);
    memcpy(ret->diff_id, diff_id, MK_DIGEST_SIZE);
    ret->media_type = mk_xstrdup(MK_MEDIA_OCI_LAYER);
    ret->size = (uint64_t)st.st_size;
    return 0;
}
