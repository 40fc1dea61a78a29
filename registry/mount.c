/* registry/mount.c - which repository of a registry holds a blob, remembered for mounts.
 *
 * After a blob is pushed to or pulled from HOST/REPO, the store's cache gets the entry
 * sha256("registry-blob HOST DIGEST") = "registry-blob HOST REPO DIGEST\n". A later push of
 * that blob to another repository of the same registry asks for a cross-repository mount
 * from REPO instead of sending the bytes. The entry is a hint: a registry that no longer has
 * the blob there answers the mount request with an upload session, and the upload goes on.
 * prune keeps such entries (prune --all drops them); fsck ignores them. */
#include <stdio.h>
#include <string.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

#define REPO_MAX 256

static void seen_key(const struct reg_client *c, const char *digest, char ret[MK_DIGEST_SIZE])
{
    _cleanup_free_ char *k = mk_xasprintf("registry-blob %s %s", c->host, digest);
    mk_sha256_buffer(k, strlen(k), ret);
}

void reg_blob_seen(struct mk_store *store, const struct reg_client *c, const char *digest)
{
    if (!store || strlen(c->repo) >= REPO_MAX || strchr(c->repo, ' '))
        return;
    char key[MK_DIGEST_SIZE];
    seen_key(c, digest, key);
    _cleanup_free_ char *value = mk_xasprintf("registry-blob %s %s %s\n", c->host, c->repo, digest);
    /* Only an optimization: failing to remember is not a failed transfer. */
    layerstore_cache_put(store, key, value, NULL);
}

char *reg_blob_source(struct mk_store *store, const struct reg_client *c, const char *digest)
{
    char key[MK_DIGEST_SIZE];
    seen_key(c, digest, key);
    _cleanup_free_ char *value = NULL;
    if (layerstore_cache_get(store, key, &value, NULL) < 0)
        return NULL;
    _cleanup_free_ char *want = mk_xasprintf("registry-blob %s ", c->host);
    if (!mk_str_has_prefix(value, want))
        return NULL;
    const char *repo = value + strlen(want);
    size_t n = strcspn(repo, " ");
    _cleanup_free_ char *tail = mk_xasprintf(" %s\n", digest);
    if (n == 0 || n >= REPO_MAX || strcmp(repo + n, tail) != 0)
        return NULL;
    if (strlen(c->repo) == n && strncmp(repo, c->repo, n) == 0)
        return NULL; /* this very repository: nothing to mount */
    return mk_xstrndup(repo, n);
}
