/* layerstore/cache-lazy.c - lazy images (docs/remote-cache.md "Lazy images"): an image built
 * from a registry cache and pushed, whose layer blobs the store does not hold yet.
 *
 * ROOT/lazy/layers/<diff ID hex>: where such a layer is (the registry cache, its blob there,
 * the chain it goes on), JSON. ROOT/lazy/refs/<sha256 of the name, hex>: "NAME\nMANIFEST\n".
 * A lazy image is named only there, never in index.json, so the store root stays a valid OCI
 * image layout (every blob index.json reaches is present); its manifest and config blobs are
 * in blobs/ and prune keeps them (gc.c marks them). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic-file.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"

#define LAZY_MAX (64u << 10)

void layerstore_lazy_layer_release(struct mk_lazy_layer *l)
{
    if (!l)
        return;
    free(l->media_type);
    free(l->source);
    memset(l, 0, sizeof(*l));
}

static char *layer_path(const char *diff_id)
{
    return mk_xasprintf("lazy/layers/%s", mk_digest_hex(diff_id));
}

int layerstore_lazy_layer_put(struct mk_store *store, const struct mk_lazy_layer *l,
                              struct mk_error **err)
{
    _cleanup_(json_decrefp) json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "source", l->source, "digest", l->digest,
        "mediaType", l->media_type ? l->media_type : MK_MEDIA_OCI_LAYER, "diffID", l->diff_id,
        "chainID", l->chain_id, "parent", l->parent, "size", (json_int_t)l->size);
    if (!j)
        MK_BUG("json_pack failed");
    _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    _cleanup_free_ char *path = layer_path(l->diff_id);
    if (mk_mkdir_p_in_root(store->root_fd, "lazy/layers", 0755, err) < 0)
        return -1;
    return mk_write_file_atomic(store->root_fd, path, s, strlen(s), 0644, err);
}

static int str_field(json_t *j, const char *k, char *out, bool digest)
{
    const char *v = json_string_value(json_object_get(j, k));
    if (!v || (digest && (!mk_digest_valid(v) && *v)))
        return -1;
    if (digest) {
        if (strlen(v) >= MK_DIGEST_SIZE)
            return -1;
        memcpy(out, v, strlen(v) + 1);
    }
    return 0;
}

int layerstore_lazy_layer_get(struct mk_store *store, const char *diff_id,
                              struct mk_lazy_layer *ret, struct mk_error **err)
{
    if (!mk_digest_valid(diff_id))
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "no lazy layer %s", diff_id);
    _cleanup_free_ char *path = layer_path(diff_id), *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(store->root_fd, path, LAZY_MAX, &data, &len, err) < 0) {
        if (err && *err && (*err)->sys_errno == ENOENT)
            (*err)->code = MK_ERR_NOT_FOUND;
        return -1;
    }
    _cleanup_(json_decrefp) json_t *j = json_loadb(data, len, 0, NULL);
    struct mk_lazy_layer l;
    memset(&l, 0, sizeof(l));
    json_int_t size = json_integer_value(json_object_get(j, "size"));
    const char *src = json_string_value(json_object_get(j, "source"));
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    if (!json_is_object(j) || str_field(j, "digest", l.digest, true) < 0 ||
        str_field(j, "diffID", l.diff_id, true) < 0 ||
        str_field(j, "chainID", l.chain_id, true) < 0 ||
        str_field(j, "parent", l.parent, true) < 0 || !src || !mt || size < 0 ||
        strcmp(l.diff_id, diff_id) != 0)
        return mk_error_set_at(err, MK_ERR_PARSE, path, "bad lazy layer record");
    l.source = mk_xstrdup(src);
    l.media_type = mk_xstrdup(mt);
    l.size = (uint64_t)size;
    *ret = l;
    return 0;
}

void layerstore_lazy_layer_drop(struct mk_store *store, const char *diff_id)
{
    if (!mk_digest_valid(diff_id))
        return;
    _cleanup_free_ char *path = layer_path(diff_id);
    unlinkat(store->root_fd, path, 0);
}

/* ROOT/lazy/refs/<hex of sha256(local name)>, and the local name. */
static char *ref_path(const char *name, char **ret_local, struct mk_error **err)
{
    char *local = mk_ref_local_name(name, err);
    if (!local)
        return NULL;
    char d[MK_DIGEST_SIZE];
    mk_sha256_buffer(local, strlen(local), d);
    *ret_local = local;
    return mk_xasprintf("lazy/refs/%s", mk_digest_hex(d));
}

int layerstore_lazy_tag(struct mk_store *store, const char *name, const char *manifest,
                        struct mk_error **err)
{
    _cleanup_free_ char *local = NULL;
    _cleanup_free_ char *path = ref_path(name, &local, err);
    if (!path || mk_mkdir_p_in_root(store->root_fd, "lazy/refs", 0755, err) < 0)
        return -1;
    /* As index_save: what the name needs (manifest, config) is on disk before the name. */
    if (ls_sync_before_name(store, err) < 0)
        return mk_error_wrap(err, "naming lazy image %s", local);
    _cleanup_free_ char *s = mk_xasprintf("%s\n%s\n", local, manifest);
    return mk_write_file_atomic(store->root_fd, path, s, strlen(s), 0644, err);
}

int layerstore_lazy_ref_get(struct mk_store *store, const char *name, char ret[MK_DIGEST_SIZE])
{
    _cleanup_free_ char *local = NULL;
    _cleanup_free_ char *path = ref_path(name, &local, NULL), *data = NULL;
    size_t len = 0;
    if (!path || mk_read_file_at(store->root_fd, path, LAZY_MAX, &data, &len, NULL) < 0)
        return -1;
    char *nl = strchr(data, '\n');
    if (!nl || (size_t)(nl - data) != strlen(local) || strncmp(data, local, strlen(local)) != 0)
        return -1;
    char *d = nl + 1, *end = strchr(d, '\n');
    if (!end)
        return -1;
    *end = '\0';
    if (!mk_digest_valid(d))
        return -1;
    memcpy(ret, d, MK_DIGEST_SIZE);
    return 0;
}

void layerstore_lazy_untag(struct mk_store *store, const char *name)
{
    _cleanup_free_ char *local = NULL;
    _cleanup_free_ char *path = ref_path(name, &local, NULL);
    if (path)
        unlinkat(store->root_fd, path, 0);
}

int layerstore_lazy_manifests(struct mk_store *store, struct mk_strv *ret, struct mk_error **err)
{
    int dfd = openat(store->root_fd, "lazy/refs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : mk_error_errno(err, "opening \"lazy/refs\"");
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        close(dfd);
        return mk_error_errno(err, "opening \"lazy/refs\"");
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        if (mk_read_file_at(dirfd(dir), de->d_name, LAZY_MAX, &data, &len, NULL) < 0)
            continue;
        char *nl = strchr(data, '\n');
        char *end = nl ? strchr(nl + 1, '\n') : NULL;
        if (!end)
            continue;
        *end = '\0';
        if (mk_digest_valid(nl + 1))
            mk_strv_push(ret, nl + 1);
    }
    closedir(dir);
    return 0;
}

void ls_lazy_layers_prune(struct mk_store *store,
                          bool (*keep)(const void *ctx, const char *diff_id), const void *ctx)
{
    int dfd = openat(store->root_fd, "lazy/layers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    DIR *dir = fdopendir(dfd);
    if (!dir) {
        close(dfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (!ls_is_hex64(de->d_name))
            continue;
        _cleanup_free_ char *d = mk_xasprintf("sha256:%s", de->d_name);
        if (!keep(ctx, d))
            unlinkat(dirfd(dir), de->d_name, 0);
    }
    closedir(dir);
}
