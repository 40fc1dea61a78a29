/* registry/mount.c - which repository of a registry holds a blob, remembered for mounts.
 *
 * After a blob is pushed to or pulled from HOST/REPO, the store records it
 * (layerstore_blob_source_put). A later push of that blob to another repository of the
 * same registry asks for a cross-repository mount from REPO instead of sending the bytes.
 * The record is a hint: a registry that no longer has the blob there answers the mount
 * request with an upload session, and the upload goes on. prune keeps such records (prune
 * --all drops them). */
#include <stdio.h>
#include <string.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

#define REPO_MAX 256

void reg_blob_seen(struct mk_store *store, const struct reg_client *c, const char *digest)
{
    if (!store || strlen(c->repo) >= REPO_MAX || strchr(c->repo, ' '))
        return;
    /* Only an optimization: failing to remember is not a failed transfer. */
    layerstore_blob_source_put(store, c->host, c->repo, digest, NULL);
}

char *reg_blob_source(struct mk_store *store, const struct reg_client *c, const char *digest)
{
    _cleanup_free_ char *repo = layerstore_blob_source_get(store, c->host, digest);
    size_t n = repo ? strlen(repo) : 0;
    if (n == 0 || n >= REPO_MAX || strchr(repo, ' '))
        return NULL;
    if (strcmp(repo, c->repo) == 0)
        return NULL; /* this very repository: nothing to mount */
    return MK_TAKE_PTR(repo);
}

bool reg_layer_lazy(struct mk_store *store, const struct mk_layer_desc *l)
{
    if (layerstore_blob_exists(store, l->digest))
        return false;
    struct mk_lazy_layer lazy;
    if (layerstore_lazy_layer_get(store, l->diff_id, &lazy, NULL) < 0)
        return false;
    layerstore_lazy_layer_release(&lazy);
    return true;
}

int reg_push_lazy(struct reg_client *c, struct mk_store *store, const struct mk_layer_desc *src,
                  const struct registry_opts *opts, struct mk_layer_desc *ret,
                  struct mk_error **err)
{
    struct mk_lazy_layer l;
    struct mk_error *e = NULL;
    if (layerstore_lazy_layer_get(store, src->diff_id, &l, &e) < 0) {
        /* Not a lazy layer: a store that lost a blob. */
        bool gone = e->code == MK_ERR_NOT_FOUND;
        if (gone || !err || *err)
            mk_error_free(e);
        else
            *err = e;
        return gone ? mk_error_set(err, MK_ERR_NOT_FOUND, 0, "blob %s is missing from the store",
                                   src->digest)
                    : mk_error_wrap(err, "layer %s", src->diff_id);
    }
    struct mk_ref *from = NULL;
    int r = mk_ref_parse(l.source, &from, err);
    if (r == 0 && strcmp(mk_ref_registry_host(from->domain), c->host) == 0)
        r = reg_mount_blob(c, l.digest, from->path, err);
    if (r == 1) {
        reg_blob_seen(store, c, l.digest);
        r = 0;
    } else if (r == 0) {
        /* Another registry, or one that would not mount: through the store. */
        struct mk_layer_desc blob = {.size = l.size, .media_type = l.media_type};
        memcpy(blob.digest, l.digest, MK_DIGEST_SIZE);
        r = registry_cache_fetch_layer(store, l.source, opts, &blob, err);
        if (r < 0)
            mk_error_wrap(err, "fetching layer %s from cache source \"%s\"", src->diff_id,
                          l.source);
        else
            r = reg_push_blob(c, store, l.digest, NULL, err);
    }
    if (r == 0) {
        *ret = (struct mk_layer_desc){.size = l.size, .media_type = MK_TAKE_PTR(l.media_type)};
        memcpy(ret->digest, l.digest, MK_DIGEST_SIZE);
        memcpy(ret->diff_id, l.diff_id, MK_DIGEST_SIZE);
    }
    mk_ref_free(from);
    layerstore_lazy_layer_release(&l);
    return r;
}
