/* registry/push-index.c - pushing a name that holds several platforms: every platform's
 * image (blobs, then its manifest by digest), then an index of the manifests as pushed
 * (their layers compressed on the way, so their digests are not the local ones) under the
 * tag. The index is written by layerstore_index_write, in the local order: the same images
 * give the same index digest however the local name was assembled. */
#include <string.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"

MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)
MK_DEFINE_CLEANUP(struct reg_client, reg_client_free)

#define INDEX_MAX (4u << 20)

int reg_push_index(struct mk_store *store, const char *image, const char *dest,
                   const struct registry_opts *opts, char ret_digest[MK_DIGEST_SIZE],
                   struct mk_error **err)
{
    const char *target = dest ? dest : image;
    struct mk_platform_entry *e = NULL;
    size_t n = 0;
    if (layerstore_ref_platforms(store, image, &e, &n, err) < 0)
        return -1;
    struct mk_ref *ref = NULL;
    _cleanup_(reg_client_freep) struct reg_client *c = NULL;
    int r = mk_ref_parse(target, &ref, err);
    if (r == 0 && !ref->tag)
        r = mk_error_set(err, MK_ERR_INVALID, 0, "an image index is pushed to a tag, not a digest");
    if (r == 0)
        r = reg_push_client(ref, opts, &c, err);
    for (size_t i = 0; r == 0 && i < n; i++) {
        _cleanup_(layerstore_image_freep) struct mk_image *img = NULL;
        r = layerstore_image_get(store, e[i].manifest_digest, &img, err);
        if (r == 0)
            r = reg_push_image(c, store, img, image, ref, opts, true, e[i].manifest_digest,
                               &e[i].size, err);
    }
    char digest[MK_DIGEST_SIZE];
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (r == 0)
        r = layerstore_index_write(store, e, n, digest, NULL, err);
    if (r == 0)
        r = layerstore_blob_read(store, digest, INDEX_MAX, &data, &len, err);
    if (r == 0)
        r = reg_put_manifest(c, ref->tag, data, len, MK_MEDIA_OCI_INDEX, digest, err);
    layerstore_platform_entries_free(e);
    mk_ref_free(ref);
    if (r < 0)
        return mk_error_set_where(err, target);
    reg_log(c, "pushed index %s", digest);
    if (ret_digest)
        memcpy(ret_digest, digest, MK_DIGEST_SIZE);
    return 0;
}
