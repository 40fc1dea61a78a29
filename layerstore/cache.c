/* layerstore/cache.c - the build cache's key/value files under ROOT/cache/. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define CACHE_VALUE_MAX (64u << 20)

static char *cache_dir(struct mk_store *store)
{
    return mk_xasprintf("%s/cache", layerstore_root(store));
}

int layerstore_cache_get(struct mk_store *store, const char *key, char **ret_value,
                         struct mk_error **err)
{
    if (!mk_digest_valid(key))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid cache key \"%s\"", key);
    _cleanup_free_ char *dir = cache_dir(store);
    _cleanup_free_ char *path = mk_xasprintf("%s/%s", dir, mk_digest_hex(key));
    if (mk_read_file_at(AT_FDCWD, path, CACHE_VALUE_MAX, ret_value, NULL, err) < 0)
        return -1;
    ls_mark_used_at(AT_FDCWD, path);
    return 0;
}

int layerstore_cache_put(struct mk_store *store, const char *key, const char *value,
                         struct mk_error **err)
{
    if (!mk_digest_valid(key))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid cache key \"%s\"", key);
    if (strlen(value) > CACHE_VALUE_MAX)
        return mk_error_set(err, MK_ERR_INVALID, 0, "cache value too large");
    _cleanup_free_ char *dir = cache_dir(store);
    if (mk_mkdir_p(dir, 0700, err) < 0)
        return -1;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    return mk_write_file_atomic(dfd, mk_digest_hex(key), value, strlen(value), 0600, err);
}

int layerstore_layer_lookup(struct mk_store *store, const char *diff_id, const char *chain_id,
                            struct mk_layer_desc *ret, struct mk_error **err)
{
    if (!mk_digest_valid(diff_id) || !mk_digest_valid(chain_id))
        return mk_error_set(err, MK_ERR_INVALID, 0, "invalid layer digest");
    _cleanup_free_ char *blob = layerstore_blob_path(store, diff_id);
    struct stat st;
    if (stat(blob, &st) < 0 || !layerstore_snapshot_exists(store, chain_id))
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "layer %s is gone", diff_id);
    ls_mark_used(store, diff_id, chain_id);
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->digest, diff_id, MK_DIGEST_SIZE);
    memcpy(ret->diff_id, diff_id, MK_DIGEST_SIZE);
    ret->media_type = mk_xstrdup(MK_MEDIA_OCI_LAYER);
    ret->size = (uint64_t)st.st_size;
    return 0;
}
