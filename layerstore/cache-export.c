/* layerstore/cache-export.c - the remote build cache artifact (docs/remote-cache.md): step
 * records as a config blob, and an OCI image layout directory holding it, its manifest and
 * the layers the records name. Reading checks every digest and caps every size. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic-file.h"
#include "common/fsutil.h"
#include "layerstore/internal.h"

/* A cache config of this many bytes holds ~ 100k records: more is not a cache of ours. */
#define CACHE_CONFIG_MAX (64u << 20)
#define CACHE_SMALL_MAX (4u << 20)
#define CACHE_RECORDS_MAX 100000

static int cmp_record(const void *a, const void *b)
{
    return strcmp(((const struct mk_step_record *)a)->key, ((const struct mk_step_record *)b)->key);
}

char *layerstore_cache_config_json(const struct mk_step_record *recs, size_t n,
                                   struct mk_error **err)
{
    struct mk_step_record *sorted = mk_xmalloc((n ? n : 1) * sizeof(*sorted));
    if (n)
        memcpy(sorted, recs, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_record);
    _cleanup_json_ json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(sorted[i].key, sorted[i - 1].key) == 0)
            continue;
        json_t *o = ls_step_record_json(&sorted[i], err);
        if (!o) {
            free(sorted);
            return NULL;
        }
        json_object_set_new(o, "key", json_string(sorted[i].key));
        json_array_append_new(list, o);
    }
    free(sorted);
    _cleanup_json_ json_t *doc = json_pack("{s:i, s:O}", "version", 1, "records", list);
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        MK_BUG("json_dumps failed");
    return s;
}

void layerstore_step_records_free(struct mk_step_record *recs, size_t n)
{
    for (size_t i = 0; recs && i < n; i++)
        layerstore_step_record_release(&recs[i]);
    free(recs);
}

int layerstore_cache_config_parse(const char *data, size_t len, struct mk_step_record **ret,
                                  size_t *ret_n, struct mk_error **err)
{
    json_error_t je;
    _cleanup_json_ json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    json_t *list = json_object_get(doc, "records");
    if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "version")) != 1 ||
        !json_is_array(list) || json_array_size(list) > CACHE_RECORDS_MAX)
        return mk_error_set(err, MK_ERR_PARSE, 0, "not a cache config of version 1%s%s",
                            doc ? "" : ": ", doc ? "" : je.text);
    size_t n = json_array_size(list);
    struct mk_step_record *recs = mk_xcalloc(n ? n : 1, sizeof(*recs));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        const char *key = json_string_value(json_object_get(o, "key"));
        if (!key || !mk_digest_valid(key)) {
            layerstore_step_records_free(recs, n);
            return mk_error_set(err, MK_ERR_PARSE, 0, "a cache record without a valid key");
        }
        if (ls_step_record_from_json(o, key, &recs[i], err) < 0) {
            layerstore_step_records_free(recs, n);
            return -1;
        }
        /* The store's layers are plain tars, named by their diff IDs: so are a cache's. */
        const struct mk_layer_desc *l = &recs[i].layer;
        if (!recs[i].empty && (strcmp(l->digest, l->diff_id) != 0 || !l->media_type ||
                               strcmp(l->media_type, MK_MEDIA_OCI_LAYER) != 0)) {
            layerstore_step_records_free(recs, n);
            return mk_error_set(err, MK_ERR_PARSE, 0, "cache record %s: not a plain tar layer",
                                key);
        }
    }
    *ret = recs;
    *ret_n = n;
    return 0;
}

/* ---- the OCI layout directory ----------------------------------------------------------- */

static char *blob_rel(const char *digest)
{
    return mk_xasprintf("blobs/sha256/%s", mk_digest_hex(digest));
}

/* Copies the store's blob into the layout (kept when a file of its size is there). */
static int copy_blob(struct mk_store *store, int dirfd, const char *digest, uint64_t size,
                     struct mk_error **err)
{
    _cleanup_free_ char *rel = blob_rel(digest);
    struct stat st;
    if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size == size)
        return 0;
    _cleanup_close_ int in = layerstore_blob_open(store, digest, err);
    if (in < 0)
        return -1;
    _cleanup_(mk_atomic_file_release) struct mk_atomic_file f = {.fd = -1, .dirfd = -1};
    if (mk_atomic_file_init(&f, dirfd, rel, 0644, err) < 0)
        return -1;
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mk_error_errno(err, "reading blob %s", digest);
        if (r == 0)
            break;
        if (mk_write_all(f.fd, buf, (size_t)r, err) < 0)
            return -1;
    }
    return mk_atomic_file_commit(&f, err);
}

static int put_small(int dirfd, const char *data, char ret_digest[MK_DIGEST_SIZE],
                     struct mk_error **err)
{
    mk_sha256_buffer(data, strlen(data), ret_digest);
    _cleanup_free_ char *rel = blob_rel(ret_digest);
    return mk_write_file_atomic(dirfd, rel, data, strlen(data), 0644, err);
}

char *layerstore_cache_manifest_json(const struct mk_step_record *recs,
                                     const struct mk_layer_desc *blobs, size_t n,
                                     const char *config, size_t config_len)
{
    json_t *layers = json_array();
    for (size_t i = 0; i < n; i++) {
        if (recs[i].empty)
            continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = !recs[k].empty && strcmp(recs[k].layer.digest, recs[i].layer.digest) == 0;
        if (seen)
            continue;
        const struct mk_layer_desc *l = blobs ? &blobs[i] : &recs[i].layer;
        json_array_append_new(layers, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType",
                                                l->media_type ? l->media_type : MK_MEDIA_OCI_LAYER,
                                                "digest", l->digest, "size", (json_int_t)l->size,
                                                "annotations", MK_ANNOTATION_CACHE_DIFF_ID,
                                                recs[i].layer.diff_id));
    }
    _cleanup_json_ json_t *m = json_pack(
        "{s:i, s:s, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
        MK_MEDIA_OCI_MANIFEST, "artifactType", MK_MEDIA_CACHE_ARTIFACT, "config", "mediaType",
        MK_MEDIA_CACHE_CONFIG, "digest", config, "size", (json_int_t)config_len, "layers", layers);
    char *s = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        MK_BUG("json_dumps failed");
    return s;
}

int layerstore_cache_layout_write(struct mk_store *store, const char *dir,
                                  const struct mk_step_record *recs, size_t n,
                                  struct mk_error **err)
{
    if (mk_mkdir_p(dir, 0755, err) < 0)
        return -1;
    _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    if (mk_mkdir_p_in_root(dirfd, "blobs/sha256", 0755, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!recs[i].empty &&
            copy_blob(store, dirfd, recs[i].layer.digest, recs[i].layer.size, err) < 0)
            return -1;
    _cleanup_free_ char *config = layerstore_cache_config_json(recs, n, err);
    if (!config)
        return -1;
    char cdigest[MK_DIGEST_SIZE], mdigest[MK_DIGEST_SIZE];
    if (put_small(dirfd, config, cdigest, err) < 0)
        return -1;
    _cleanup_free_ char *manifest =
        layerstore_cache_manifest_json(recs, NULL, n, cdigest, strlen(config));
    if (put_small(dirfd, manifest, mdigest, err) < 0)
        return -1;
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    _cleanup_free_ char *index = mk_xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[{\"mediaType\":\"%s\","
        "\"artifactType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
        "{\"org.opencontainers.image.ref.name\":\"mkimg-cache\"}}]}",
        MK_MEDIA_OCI_INDEX, MK_MEDIA_OCI_MANIFEST, MK_MEDIA_CACHE_ARTIFACT, mdigest,
        strlen(manifest));
    /* index.json last: a reader sees the old cache or the whole new one. */
    return mk_write_file_atomic(dirfd, "oci-layout", layout, strlen(layout), 0644, err) < 0 ||
                   mk_write_file_atomic(dirfd, "index.json", index, strlen(index), 0644, err) < 0
               ? -1
               : 0;
}

/* A small blob of the layout, checked against its digest. */
static int read_small(int dirfd, const char *digest, size_t max, char **ret, size_t *ret_len,
                      struct mk_error **err)
{
    if (!digest || !mk_digest_valid(digest))
        return mk_error_set(err, MK_ERR_PARSE, 0, "a descriptor without a valid digest");
    _cleanup_free_ char *rel = blob_rel(digest);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(dirfd, rel, max, &data, &len, err) < 0)
        return -1;
    char d[MK_DIGEST_SIZE];
    mk_sha256_buffer(data, len, d);
    if (strcmp(d, digest) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "blob %s does not match its digest", digest);
    *ret = MK_TAKE_PTR(data);
    *ret_len = len;
    return 0;
}

/* The cache manifest's digest from index.json: the entry of our artifact type. */
static int find_manifest(int dirfd, char ret[MK_DIGEST_SIZE], struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(dirfd, "index.json", CACHE_SMALL_MAX, &data, &len, err) < 0)
        return -1;
    json_error_t je;
    _cleanup_json_ json_t *idx = json_loadb(data, len, 0, &je);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(idx, "manifests"), i, d)
    {
        const char *at = json_string_value(json_object_get(d, "artifactType"));
        const char *dg = json_string_value(json_object_get(d, "digest"));
        if (at && strcmp(at, MK_MEDIA_CACHE_ARTIFACT) == 0 && dg && mk_digest_valid(dg)) {
            memcpy(ret, dg, MK_DIGEST_SIZE);
            return 0;
        }
    }
    return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "index.json lists no %s manifest",
                        MK_MEDIA_CACHE_ARTIFACT);
}

/* Each record's layer must be a blob of the layout of the size the record says. */
static int check_layers(int dirfd, const struct mk_step_record *recs, size_t n,
                        struct mk_error **err)
{
    for (size_t i = 0; i < n; i++) {
        if (recs[i].empty)
            continue;
        _cleanup_free_ char *rel = blob_rel(recs[i].layer.digest);
        struct stat st;
        if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            (uint64_t)st.st_size != recs[i].layer.size)
            return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "layer %s is missing or damaged",
                                recs[i].layer.digest);
    }
    return 0;
}

int layerstore_cache_layout_read(const char *dir, struct mk_step_record **ret, size_t *ret_n,
                                 struct mk_error **err)
{
    _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    char mdigest[MK_DIGEST_SIZE];
    _cleanup_free_ char *mdata = NULL, *cdata = NULL;
    size_t mlen = 0, clen = 0;
    if (find_manifest(dirfd, mdigest, err) < 0 ||
        read_small(dirfd, mdigest, CACHE_SMALL_MAX, &mdata, &mlen, err) < 0)
        return -1;
    _cleanup_json_ json_t *m = json_loadb(mdata, mlen, 0, NULL);
    json_t *cfg = json_object_get(m, "config");
    const char *mt = json_string_value(json_object_get(cfg, "mediaType"));
    if (!mt || strcmp(mt, MK_MEDIA_CACHE_CONFIG) != 0)
        return mk_error_set(err, MK_ERR_PARSE, 0, "manifest %s has no cache config", mdigest);
    if (read_small(dirfd, json_string_value(json_object_get(cfg, "digest")), CACHE_CONFIG_MAX,
                   &cdata, &clen, err) < 0)
        return -1;
    struct mk_step_record *recs = NULL;
    size_t n = 0;
    if (layerstore_cache_config_parse(cdata, clen, &recs, &n, err) < 0)
        return -1;
    if (check_layers(dirfd, recs, n, err) < 0) {
        layerstore_step_records_free(recs, n);
        return -1;
    }
    *ret = recs;
    *ret_n = n;
    return 0;
}

int layerstore_cache_layout_fetch(struct mk_store *store, const char *dir,
                                  const struct mk_step_record *rec, const char *parent_chain,
                                  struct mk_error **err)
{
    if (layerstore_blob_exists(store, rec->layer.digest) &&
        layerstore_snapshot_exists(store, rec->chain_id))
        return 0;
    _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    _cleanup_free_ char *rel = blob_rel(rec->layer.digest);
    _cleanup_close_ int fd = mk_open_in_root(dirfd, rel, O_RDONLY, 0, err);
    if (fd < 0)
        return -1;
    return layerstore_cache_layer_import(store, fd, rec, parent_chain, err);
}

int layerstore_cache_layer_import(struct mk_store *store, int fd, const struct mk_step_record *rec,
                                  const char *parent_chain, struct mk_error **err)
{
    struct mk_layer_desc d;
    char chain[MK_DIGEST_SIZE];
    if (layerstore_layer_import_tar(store, fd, parent_chain, &d, chain, err) < 0)
        return -1;
    bool ok = strcmp(d.diff_id, rec->layer.diff_id) == 0 && strcmp(chain, rec->chain_id) == 0;
    free(d.media_type);
    if (!ok)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "layer %s does not match its digest",
                            rec->layer.digest);
    return 0;
}

/* ---- cache mounts ----------------------------------------------------------------------- */

int layerstore_tar_unpack_new_dir(struct mk_store *store, int fd, const char *digest,
                                  const char *dir, struct mk_error **err)
{
    _cleanup_free_ char *tmp = mk_xasprintf("%s.unpack", dir);
    if (mk_rm_rf(tmp, err) < 0 || mkdir(tmp, 0755) < 0)
        return err && *err ? -1 : mk_error_errno(err, "creating \"%s\"", tmp);
    _cleanup_close_ int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct ls_apply_opts o;
    memset(&o, 0, sizeof(o));
    o.rootless = ls_rootless();
    char got[MK_DIGEST_SIZE];
    uint64_t size = 0;
    int r = dfd < 0 ? mk_error_errno(err, "opening \"%s\"", tmp)
                    : ls_tar_apply(fd, dfd, &o, -1, got, &size, err);
    if (r == 0 && strcmp(got, digest) != 0)
        r = mk_error_set(err, MK_ERR_DIGEST, 0, "blob %s does not match its digest", digest);
    if (r == 0 && rename(tmp, dir) < 0)
        r = mk_error_errno(err, "renaming \"%s\"", tmp);
    if (r < 0)
        mk_rm_rf(tmp, NULL);
    (void)store;
    return r;
}
