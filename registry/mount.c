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
