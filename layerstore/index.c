/* layerstore/index.c - index.json: the tags (org.opencontainers.image.ref.name) of the store.
 *
 * Readers take no lock (the file is replaced atomically); writers read-modify-write it under
 * flock(ROOT/lock) so concurrent taggers never lose each other's updates. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define REF_ANNOTATION "org.opencontainers.image.ref.name"
#define INDEX_MAX_ENTRIES 100000

int ls_index_load(struct mk_store *store, json_t **ret, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(store->root_fd, "index.json", LS_INDEX_MAX, &data, &len, err) < 0)
        return mk_error_wrap(err, "reading the store index");
    json_error_t jerr;
    json_t *idx = json_loadb(data, len, 0, &jerr);
    if (!idx)
        return mk_error_set(err, MK_ERR_PARSE, 0, "store index.json: %s (at offset %d)", jerr.text,
                            jerr.position);
    json_t *m = json_object_get(idx, "manifests");
    if (!json_is_object(idx) || !json_is_array(m) || json_array_size(m) > INDEX_MAX_ENTRIES) {
        json_decref(idx);
        return mk_error_set(err, MK_ERR_PARSE, 0, "store index.json: no \"manifests\" list");
    }
    *ret = idx;
    return 0;
}

static int index_save(struct mk_store *store, json_t *idx, struct mk_error **err)
{
    /* Layer blobs get their names without a directory fsync (ls_blob_install_synced), and
     * in a window of layerstore_sync_defer snapshots and blobs without a syncfs: this makes
     * them durable before a tag can name an image that needs them. */
    if (ls_sync_before_name(store, err) < 0)
        return mk_error_wrap(err, "writing the store index");
    char *s = json_dumps(idx, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    int r = mk_write_file_atomic(store->root_fd, "index.json", s, strlen(s), 0644, err);
    free(s);
    return r < 0 ? mk_error_wrap(err, "writing the store index") : 0;
}

int ls_index_lock(struct mk_store *store, struct mk_error **err)
{
    int fd = openat(store->root_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return mk_error_errno(err, "opening the store lock");
    while (flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR && !mk_interrupted)
            continue;
        close(fd);
        return mk_error_errno(err, "locking the store");
    }
    return fd;
}

/* Takes the store lock and loads index.json for a read-modify-write; the caller keeps the
 * lock fd until index_save is done. */
static int index_open_locked(struct mk_store *store, int *ret_lock, json_t **ret_idx,
                             struct mk_error **err)
{
    int lock = ls_index_lock(store, err);
    if (lock < 0)
        return -1;
    if (ls_index_load(store, ret_idx, err) < 0) {
        close(lock);
        return -1;
    }
    *ret_lock = lock;
    return 0;
}

const char *ls_desc_ref(json_t *desc)
{
    json_t *a = json_object_get(desc, "annotations");
    return json_string_value(json_object_get(a, REF_ANNOTATION));
}

const char *ls_desc_digest(json_t *desc)
{
    const char *d = json_string_value(json_object_get(desc, "digest"));
    return d && mk_digest_valid(d) ? d : NULL;
}

/* index.json names the manifest's own type: readers such as skopeo check it. */
static const char *manifest_media_type(const struct mk_image *img)
{
    return img->docker_manifest ? "application/vnd.docker.distribution.manifest.v2+json"
                                : MK_MEDIA_OCI_MANIFEST;
}

/* An image built without a name stays findable by ID: a bare descriptor, unless the
 * manifest is already listed. */
static int index_keep_untagged(struct mk_store *store, const struct mk_image *img,
                               struct mk_error **err)
{
    _cleanup_close_ int lock = -1;
    _cleanup_json_ json_t *idx = NULL;
    if (index_open_locked(store, &lock, &idx, err) < 0)
        return -1;
    json_t *list = json_object_get(idx, "manifests");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *d = ls_desc_digest(json_array_get(list, i));
        if (d && strcmp(d, img->manifest_digest) == 0)
            return 0;
    }
    json_t *desc = json_pack("{s:s, s:s, s:I}", "mediaType", manifest_media_type(img), "digest",
                             img->manifest_digest, "size", (json_int_t)img->manifest_size);
    if (!desc)
        MK_BUG("json_pack failed");
    json_array_append_new(list, desc);
    return index_save(store, idx, err);
}

int layerstore_tag(struct mk_store *store, const struct mk_image *img, const char *ref,
                   struct mk_error **err)
{
    if (!ref)
        return index_keep_untagged(store, img, err);
    _cleanup_free_ char *name = mk_ref_local_name(ref, err);
    if (!name)
        return -1;
    return ls_index_tag_desc(store, name, manifest_media_type(img), img->manifest_digest,
                             img->manifest_size, NULL, err);
}

int ls_index_tag_desc(struct mk_store *store, const char *name, const char *media_type,
                      const char *digest, uint64_t size, const char *expect, struct mk_error **err)
{
    _cleanup_close_ int lock = -1;
    _cleanup_json_ json_t *idx = NULL;
    if (index_open_locked(store, &lock, &idx, err) < 0)
        return -1;
    json_t *list = json_object_get(idx, "manifests");
    if (expect) {
        const char *now = "";
        size_t k;
        json_t *e;
        json_array_foreach(list, k, e)
        {
            const char *r = ls_desc_ref(e);
            if (r && strcmp(r, name) == 0 && ls_desc_digest(e))
                now = ls_desc_digest(e);
        }
        if (strcmp(now, expect) != 0)
            return 1;
    }
    /* A rebuild with nothing changed names the same manifest again: no write, no sync. */
    _cleanup_json_ json_t *before = json_deep_copy(list);
    json_t *desc = json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", media_type, "digest", digest,
                             "size", (json_int_t)size, "annotations", REF_ANNOTATION, name);
    if (!desc)
        MK_BUG("json_pack failed");
    /* A moved tag keeps its place; an untagged entry for the same manifest is replaced. */
    bool placed = false;
    for (size_t i = 0; i < json_array_size(list);) {
        json_t *e = json_array_get(list, i);
        const char *r = ls_desc_ref(e);
        const char *d = ls_desc_digest(e);
        bool same_ref = r && strcmp(r, name) == 0;
        bool bare_same = !r && d && strcmp(d, digest) == 0;
        if ((same_ref || bare_same) && !placed) {
            json_array_set(list, i, desc);
            placed = true;
            i++;
        } else if (same_ref || bare_same) {
            json_array_remove(list, i);
        } else {
            i++;
        }
    }
    if (!placed)
        json_array_append(list, desc);
    json_decref(desc);
    if (json_equal(before, list))
        return 0;
    return index_save(store, idx, err);
}

int ls_index_ref_digest(struct mk_store *store, const char *ref, char ret[MK_DIGEST_SIZE],
                        struct mk_error **err)
{
    _cleanup_json_ json_t *idx = NULL;
    if (ls_index_load(store, &idx, err) < 0)
        return -1;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(idx, "manifests"), i, e)
    {
        const char *r = ls_desc_ref(e);
        const char *d = ls_desc_digest(e);
        if (r && d && strcmp(r, ref) == 0) {
            memcpy(ret, d, MK_DIGEST_SIZE);
            return 0;
        }
    }
    return mk_error_set_at(err, MK_ERR_NOT_FOUND, ref, "image not known");
}

/* Removes the entries naming ref (when ref) or pointing at manifest (when manifest). */
static int index_remove(struct mk_store *store, const char *ref, const char *manifest,
                        struct mk_error **err)
{
    _cleanup_close_ int lock = -1;
    _cleanup_json_ json_t *idx = NULL;
    if (index_open_locked(store, &lock, &idx, err) < 0)
        return -1;
    json_t *list = json_object_get(idx, "manifests");
    size_t removed = 0;
    for (size_t i = 0; i < json_array_size(list);) {
        json_t *e = json_array_get(list, i);
        const char *r = ls_desc_ref(e);
        const char *d = ls_desc_digest(e);
        if ((ref && r && strcmp(r, ref) == 0) || (manifest && d && strcmp(d, manifest) == 0)) {
            json_array_remove(list, i);
            removed++;
        } else {
            i++;
        }
    }
    if (!removed)
        return mk_error_set_at(err, MK_ERR_NOT_FOUND, ref ? ref : manifest, "image not known");
    return index_save(store, idx, err);
}

int layerstore_untag(struct mk_store *store, const char *ref, struct mk_error **err)
{
    _cleanup_free_ char *name = mk_ref_local_name(ref, err);
    if (!name)
        return -1;
    return index_remove(store, name, NULL, err);
}

int ls_index_remove_manifest(struct mk_store *store, const char *manifest, struct mk_error **err)
{
    return index_remove(store, NULL, manifest, err);
}
