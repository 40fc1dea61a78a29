/* layerstore/archive.c - `mkimg save` and `mkimg load`: OCI archives, Docker archives and
 * OCI layout directories.
 *
 * Save streams blobs straight from the store into a tar (or a directory); load reads a tar
 * once, front to back, keeping each regular entry as a content-named temp file in a locked
 * temp dir of the store (archive names are never used as paths), then imports the images
 * it describes. Imported layers are stored uncompressed like every other layer, so a
 * loaded image's manifest digest may differ from the archive's; its config (the image ID)
 * is kept byte for byte. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"

#define REF_ANNOTATION "org.opencontainers.image.ref.name"
#define CONTAINERD_NAME_ANNOTATION "io.containerd.image.name"
#define MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define LOAD_MAX_ENTRIES 100000
#define LOAD_MAX_IMAGES 1000
#define LOAD_MAX_LINKS 8
#define LOAD_READ_SIZE (1 << 16)

MK_DEFINE_CLEANUP(struct archive, archive_read_free)
MK_DEFINE_CLEANUP(struct archive_entry, archive_entry_free)
MK_DEFINE_CLEANUP(struct mk_image, layerstore_image_free)

int layerstore_archive_format_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcmp(s, "oci-archive") == 0)
        return MK_ARCHIVE_OCI;
    if (strcmp(s, "docker-archive") == 0)
        return MK_ARCHIVE_DOCKER;
    if (strcmp(s, "oci-dir") == 0)
        return MK_ARCHIVE_OCI_DIR;
    return -1;
}

/* ---- save --------------------------------------------------------------------------------- */

/* Where saved files go: a tar stream or a directory.
 *
 * The tar is written here rather than through libarchive: its entries are a handful of
 * directories and regular files with fixed metadata, and a blob's bytes go from the store to
 * the archive with copy_file_range (a reflink on file systems that share extents, an
 * in-kernel copy elsewhere, read/write in 1 MiB pieces into a pipe), which libarchive, which
 * wants every data byte passed to it, cannot do. Headers and small files are gathered into
 * writes of up to TAR_BUF bytes. */
#define TAR_BUF (1u << 20)
#define TAR_SIZE_MAX 077777777777ull /* what a ustar header's size field holds */

struct sink {
    int fd;    /* tar stream, or -1 */
    int dirfd; /* directory, when fd is -1 */
    char *buf; /* tar bytes not written yet */
    size_t buf_len;
    uint64_t off; /* tar bytes so far, written or not */
    struct mk_strv written;
    /* Layers compressed straight into the archive so far (another image with the same
     * layer names the same blob). */
    struct mk_layer_desc *streamed;
    size_t n_streamed;
};

static bool sink_seen(struct sink *s, const char *name)
{
    for (size_t i = 0; i < s->written.n; i++)
        if (strcmp(s->written.v[i], name) == 0)
            return true;
    mk_strv_push(&s->written, name);
    return false;
}

static int tar_flush(struct sink *s, struct mk_error **err)
{
    size_t n = s->buf_len;
    s->buf_len = 0;
    if (n && mk_write_all(s->fd, s->buf, n, err) < 0)
        return mk_error_wrap(err, "writing the archive");
    return 0;
}

static int tar_put(struct sink *s, const void *data, size_t n, struct mk_error **err)
{
    s->off += n;
    while (n > 0) {
        size_t k = TAR_BUF - s->buf_len < n ? TAR_BUF - s->buf_len : n;
        if (data)
            memcpy(s->buf + s->buf_len, data, k);
        else
            memset(s->buf + s->buf_len, 0, k);
        s->buf_len += k;
        n -= k;
        data = data ? (const char *)data + k : NULL;
        if (s->buf_len == TAR_BUF && tar_flush(s, err) < 0)
            return -1;
    }
    return 0;
}

/* Zeros up to the next 512-byte boundary. */
static int tar_pad(struct sink *s, struct mk_error **err)
{
    return tar_put(s, NULL, (size_t)(-s->off & 511), err);
}

/* One 512-byte ustar header: owner 0:0, mtime 0 (archives of the same images are the same
 * bytes), a directory's name ending in '/'. */
static void ustar_header(char h[512], const char *name, char type, unsigned mode, uint64_t size)
{
    memset(h, 0, 512);
    snprintf(h, 100, "%s%s", name, type == '5' ? "/" : "");
    snprintf(h + 100, 8, "%07o", mode);
    snprintf(h + 108, 8, "%07o", 0);
    snprintf(h + 116, 8, "%07o", 0);
    if (size <= TAR_SIZE_MAX) {
        snprintf(h + 124, 12, "%011llo", (unsigned long long)size);
    } else {
        /* The base-256 form GNU tar and libarchive read, besides the pax record. */
        h[124] = (char)0x80;
        for (int i = 0; i < 8; i++)
            h[135 - i] = (char)(size >> (8 * i));
    }
    snprintf(h + 136, 12, "%011o", 0);
    h[156] = type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    snprintf(h + 329, 8, "%07o", 0);
    snprintf(h + 337, 8, "%07o", 0);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

static int tar_header(struct sink *s, const char *name, bool dir, uint64_t size,
                      struct mk_error **err)
{
    /* Our names are "blobs/sha256/<64 hex>" at most, well within ustar's 100 bytes. */
    if (strlen(name) >= 99)
        MK_BUG("archive entry name too long");
    char h[512];
    if (!dir && size > TAR_SIZE_MAX) {
        /* "NN size=N\n", NN counting itself. */
        char rec[64];
        int len = snprintf(rec, sizeof(rec), "xx size=%llu\n", (unsigned long long)size);
        snprintf(rec, sizeof(rec), "%d size=%llu\n", len, (unsigned long long)size);
        const char *base = strrchr(name, '/');
        _cleanup_free_ char *pname = mk_xasprintf("PaxHeaders/%s", base ? base + 1 : name);
        ustar_header(h, pname, 'x', 0644, (uint64_t)len);
        if (tar_put(s, h, 512, err) < 0 || tar_put(s, rec, (size_t)len, err) < 0 ||
            tar_pad(s, err) < 0)
            return -1;
    }
    ustar_header(h, name, dir ? '5' : '0', dir ? 0755 : 0644, dir ? 0 : size);
    return tar_put(s, h, 512, err);
}

static int sink_dir(struct sink *s, const char *name, struct mk_error **err)
{
    if (sink_seen(s, name))
        return 0;
    if (s->fd >= 0)
        return tar_header(s, name, true, 0, err);
    if (mkdirat(s->dirfd, name, 0755) < 0 && errno != EEXIST)
        return mk_error_errno(err, "creating \"%s\"", name);
    return 0;
}

/* The directory of name inside the output directory, resolved inside it (a symlink planted
 * there leads nowhere outside); *ret_base points into name. */
static int sink_parent(struct sink *s, const char *name, const char **ret_base,
                       struct mk_error **err)
{
    const char *slash = strrchr(name, '/');
    _cleanup_free_ char *parent = slash ? mk_xstrndup(name, (size_t)(slash - name)) : NULL;
    int pfd = mk_open_in_root(s->dirfd, parent ? parent : ".", O_RDONLY | O_DIRECTORY, 0, err);
    if (pfd < 0)
        return mk_error_wrap(err, "opening \"%s\"", parent ? parent : ".");
    *ret_base = slash ? slash + 1 : name;
    return pfd;
}

/* A file of the directory is renamed into place whole but not synced: an export, like
 * `docker save` or `skopeo copy` to a directory (docs/save.md). */
static int sink_file_commit(struct mk_atomic_file *af, struct mk_error **err)
{
    return mk_atomic_file_commit_unsynced(af, err);
}

static int sink_bytes(struct sink *s, const char *name, const void *data, size_t len,
                      struct mk_error **err)
{
    if (sink_seen(s, name))
        return 0;
    if (s->fd < 0) {
        _cleanup_(mk_atomic_file_release) struct mk_atomic_file af = {.fd = -1, .dirfd = -1};
        const char *base;
        _cleanup_close_ int pfd = sink_parent(s, name, &base, err);
        if (pfd < 0 || mk_atomic_file_init(&af, pfd, base, 0644, err) < 0)
            return -1;
        if (mk_write_all(af.fd, data, len, err) < 0 || sink_file_commit(&af, err) < 0)
            return mk_error_wrap(err, "writing \"%s\"", name);
        return 0;
    }
    if (tar_header(s, name, false, len, err) < 0 || tar_put(s, data, len, err) < 0)
        return -1;
    return tar_pad(s, err);
}

/* Copies size bytes of in (from offset 0) to out at its position: copy_file_range while the
 * kernel takes it, then read/write in 1 MiB pieces. */
static int copy_range(int in, int out, uint64_t size, const char *name, struct mk_error **err)
{
    loff_t pos = 0;
    bool kernel = true;
    _cleanup_free_ char *buf = NULL;
    while ((uint64_t)pos < size) {
        if (mk_interrupted)
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
        size_t want =
            size - (uint64_t)pos < (64u << 20) ? (size_t)(size - (uint64_t)pos) : (64u << 20);
        ssize_t n = -1;
        if (kernel) {
            n = copy_file_range(in, &pos, out, NULL, want, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                          errno == EOPNOTSUPP || errno == EBADF)) {
                kernel = false;
                continue;
            }
            if (n < 0)
                return mk_error_errno(err, "copying \"%s\"", name);
        } else {
            if (!buf)
                buf = mk_xmalloc(TAR_BUF);
            n = pread(in, buf, want < TAR_BUF ? want : TAR_BUF, pos);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return mk_error_errno(err, "reading the blob for \"%s\"", name);
            if (n > 0 && mk_write_all(out, buf, (size_t)n, err) < 0)
                return mk_error_wrap(err, "writing \"%s\"", name);
            pos += n;
        }
        if (n == 0)
            return mk_error_set(err, MK_ERR_IO, 0, "blob for \"%s\" shrank while saving", name);
    }
    return 0;
}

/* Copies exactly size bytes of fd (a blob that must not change while we read it). */
static int sink_fd(struct sink *s, const char *name, int fd, uint64_t size, struct mk_error **err)
{
    if (sink_seen(s, name))
        return 0;
    if (s->fd >= 0) {
        if (tar_header(s, name, false, size, err) < 0 || tar_flush(s, err) < 0 ||
            copy_range(fd, s->fd, size, name, err) < 0)
            return -1;
        s->off += size;
        return tar_pad(s, err);
    }
    _cleanup_(mk_atomic_file_release) struct mk_atomic_file af = {.fd = -1, .dirfd = -1};
    const char *base;
    _cleanup_close_ int pfd = sink_parent(s, name, &base, err);
    if (pfd < 0 || mk_atomic_file_init(&af, pfd, base, 0644, err) < 0)
        return -1;
    if (copy_range(fd, af.fd, size, name, err) < 0 || sink_file_commit(&af, err) < 0)
        return -1;
    return 0;
}

static char *blob_name(const char *digest)
{
    return mk_xasprintf("blobs/sha256/%s", mk_digest_hex(digest));
}

static int sink_blob(struct sink *s, struct mk_store *store, const char *digest, const char *name,
                     struct mk_error **err)
{
    _cleanup_close_ int fd = layerstore_blob_open(store, digest, err);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mk_error_errno(err, "stat blob %s", digest);
    return sink_fd(s, name, fd, (uint64_t)st.st_size, err);
}

/* The largest layer compressed straight into a tar: its entry's size, known only at the end,
 * must then fit the ustar header written in front of it (what compression can add to
 * incompressible data is far below the margin). */
#define DIRECT_MAX (TAR_SIZE_MAX - (TAR_SIZE_MAX >> 6))

static int pwrite_all(int fd, const void *data, size_t n, off_t at, struct mk_error **err)
{
    while (n > 0) {
        ssize_t k = pwrite(fd, data, n, at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return mk_error_errno(err, "writing the archive");
        data = (const char *)data + k;
        n -= (size_t)k;
        at += k;
    }
    return 0;
}

/* A layer with no compressed copy yet, compressed in one pass straight into the archive
 * (the bytes are the same as a cached copy's): into a tar at the end of the stream, with a
 * zero header rewritten once the blob's digest and size are known, or into a temp file of
 * the directory renamed to the digest. Not cached in the store: a save is not followed by
 * another of the same layer often enough to pay for writing (and syncing) every byte twice,
 * and a push caches its own copy. Fills ret's digest and size. */
static int sink_layer_compressed(struct sink *s, struct mk_store *store,
                                 const struct mk_layer_desc *src, enum mk_compression c, int level,
                                 struct mk_layer_desc *ret, struct mk_error **err)
{
    for (size_t k = 0; k < s->n_streamed; k++) {
        if (strcmp(s->streamed[k].diff_id, src->diff_id) == 0) {
            memcpy(ret->digest, s->streamed[k].digest, MK_DIGEST_SIZE);
            ret->size = s->streamed[k].size;
            return 0;
        }
    }
    if (s->fd >= 0) {
        if (tar_flush(s, err) < 0)
            return -1;
        off_t at = lseek(s->fd, 0, SEEK_CUR);
        if (at < 0)
            return mk_error_errno(err, "writing the archive");
        char h[512] = {0};
        if (mk_write_all(s->fd, h, sizeof(h), err) < 0)
            return mk_error_wrap(err, "writing the archive");
        if (ls_compress_layer_to(store, src, c, level, s->fd, ret->digest, &ret->size, err) < 0)
            return -1;
        if (ret->size > TAR_SIZE_MAX)
            return mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                                "compressed layer %s is too large for the archive", src->diff_id);
        _cleanup_free_ char *name = blob_name(ret->digest);
        if (sink_seen(s, name)) {
            /* The same blob is in already (an image kept in this compressed form). */
            if (ftruncate(s->fd, at) < 0 || lseek(s->fd, at, SEEK_SET) < 0)
                return mk_error_errno(err, "writing the archive");
        } else {
            ustar_header(h, name, '0', 0644, ret->size);
            if (pwrite_all(s->fd, h, sizeof(h), at, err) < 0)
                return -1;
            s->off += sizeof(h) + ret->size;
            if (tar_pad(s, err) < 0)
                return -1;
        }
    } else {
        _cleanup_(mk_atomic_file_release) struct mk_atomic_file af = {.fd = -1, .dirfd = -1};
        _cleanup_free_ char *tmp_name = blob_name(src->diff_id);
        const char *base;
        _cleanup_close_ int pfd = sink_parent(s, tmp_name, &base, err);
        if (pfd < 0 || mk_atomic_file_init(&af, pfd, base, 0644, err) < 0)
            return -1;
        if (ls_compress_layer_to(store, src, c, level, af.fd, ret->digest, &ret->size, err) < 0)
            return -1;
        _cleanup_free_ char *name = blob_name(ret->digest);
        if (!sink_seen(s, name)) {
            free(af.name);
            af.name = mk_xstrdup(mk_digest_hex(ret->digest));
            if (sink_file_commit(&af, err) < 0)
                return -1;
        }
    }
    s->streamed = mk_xrealloc(s->streamed, (s->n_streamed + 1) * sizeof(*s->streamed));
    s->streamed[s->n_streamed++] = *ret;
    s->streamed[s->n_streamed - 1].media_type = NULL;
    return 0;
}

/* The manifest JSON for a config and a set of layers (what save writes for recompressed
 * layers, and what load stores for the uncompressed ones). */
static char *manifest_json(const char *config, uint64_t config_size,
                           const struct mk_layer_desc *layers, size_t n)
{
    _cleanup_json_ json_t *m = json_object();
    json_object_set_new(m, "schemaVersion", json_integer(2));
    json_object_set_new(m, "mediaType", json_string(MK_MEDIA_OCI_MANIFEST));
    json_object_set_new(m, "config",
                        json_pack("{s:s, s:s, s:I}", "mediaType", MK_MEDIA_OCI_CONFIG, "digest",
                                  config, "size", (json_int_t)config_size));
    json_t *jl = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            jl, json_pack("{s:s, s:s, s:I}", "mediaType",
                          layers[i].media_type ? layers[i].media_type : MK_MEDIA_OCI_LAYER,
                          "digest", layers[i].digest, "size", (json_int_t)layers[i].size));
    json_object_set_new(m, "layers", jl);
    char *s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    return s;
}

/* One image as it will be written. */
struct saved {
    struct mk_image *img;
    struct mk_layer_desc *layers; /* as written (maybe compressed); digest "" = to compress */
    enum mk_compression c;
    int level;      /* resolved */
    char *manifest; /* bytes of the manifest as written */
    size_t manifest_len;
    char manifest_digest[MK_DIGEST_SIZE];
    uint64_t config_size;
    struct mk_strv names; /* refs to record for it */
};

static void saved_release(struct saved *s)
{
    layerstore_layer_descs_free(s->layers, s->img ? s->img->n_layers : 0);
    layerstore_image_free(s->img);
    free(s->manifest);
    mk_strv_release(&s->names);
}

/* A name holding several platforms: the images sv[first .. first + n) saved under no name of
 * their own, and an index of them (platforms from e, digests as written) under name. */
struct saved_index {
    char *name;
    size_t first, n;
    struct mk_platform_entry *e;
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
};

static bool in_saved_index(const struct saved_index *ix, size_t n_ix, size_t i)
{
    for (size_t k = 0; k < n_ix; k++)
        if (i >= ix[k].first && i < ix[k].first + ix[k].n)
            return true;
    return false;
}

/* Writes each index blob (layerstore_index_write's bytes, with the manifests as written). */
static int save_indexes(struct sink *s, struct mk_store *store, const struct saved *sv,
                        struct saved_index *ix, size_t n_ix, struct mk_error **err)
{
    for (size_t k = 0; k < n_ix; k++) {
        for (size_t i = 0; i < ix[k].n; i++) {
            const struct saved *one = &sv[ix[k].first + i];
            memcpy(ix[k].e[i].manifest_digest, one->manifest_digest, MK_DIGEST_SIZE);
            ix[k].e[i].size = one->manifest_len;
            ix[k].e[i].docker = false;
        }
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        if (layerstore_index_write(store, ix[k].e, ix[k].n, ix[k].digest, &ix[k].size, err) < 0 ||
            layerstore_blob_read(store, ix[k].digest, LS_JSON_MAX, &data, &len, err) < 0)
            return -1;
        _cleanup_free_ char *name = blob_name(ix[k].digest);
        if (sink_bytes(s, name, data, len, err) < 0)
            return -1;
    }
    return 0;
}

/* The manifest as written, once every layer's digest is known. */
static int saved_manifest(struct mk_store *store, const char *name, struct saved *sv,
                          struct mk_error **err)
{
    struct mk_image *img = sv->img;
    bool same = true;
    for (size_t i = 0; i < img->n_layers; i++)
        same &= strcmp(sv->layers[i].digest, img->layers[i].digest) == 0;
    if (same) {
        if (layerstore_blob_read(store, img->manifest_digest, LS_JSON_MAX, &sv->manifest,
                                 &sv->manifest_len, err) < 0)
            return mk_error_set_where(err, name);
    } else {
        sv->manifest =
            manifest_json(img->config_digest, sv->config_size, sv->layers, img->n_layers);
        sv->manifest_len = strlen(sv->manifest);
    }
    mk_sha256_buffer(sv->manifest, sv->manifest_len, sv->manifest_digest);
    return 0;
}

/* Resolves the image name and its layers as they will be written. With direct, a layer with
 * no compressed copy yet is left to compress into the archive (save_blobs); *direct turns
 * false when a layer is too large for that, and the caller then prepares again without. */
static int saved_prepare(struct mk_store *store, const char *name, enum mk_compression c, int level,
                         bool *direct, struct saved *ret, struct mk_error **err)
{
    if (layerstore_image_get(store, name, &ret->img, err) < 0)
        return -1;
    struct mk_image *img = ret->img;
    _cleanup_free_ char *ref = mk_digest_valid(name) ? NULL : mk_ref_local_name(name, NULL);
    bool named = false;
    for (size_t i = 0; ref && i < img->tags.n; i++)
        named |= strcmp(img->tags.v[i], ref) == 0;
    /* Asked by its manifest digest, an image is saved without a name (as an index entry is):
     * that is how an export that was given no name says so. */
    if (named)
        mk_strv_push(&ret->names, ref);
    else if (strcmp(name, img->manifest_digest) != 0)
        mk_strv_copy(&ret->names, &img->tags);
    _cleanup_free_ char *cpath = layerstore_blob_path(store, img->config_digest);
    struct stat st;
    if (!cpath || stat(cpath, &st) < 0)
        return mk_error_set_at(err, MK_ERR_NOT_FOUND, name, "config blob %s is missing",
                               img->config_digest);
    ret->config_size = (uint64_t)st.st_size;
    ret->c = c;
    for (size_t i = 0; *direct && i < img->n_layers; i++)
        *direct = img->layers[i].size <= DIRECT_MAX;
    if (*direct && c != MK_COMPRESS_NONE) {
        if (ls_compress_level(c, level, &ret->level, err) < 0)
            return mk_error_set_where(err, name);
        ret->layers = mk_xcalloc(img->n_layers + 1, sizeof(*ret->layers));
        for (size_t i = 0; i < img->n_layers; i++)
            ls_compress_existing(store, &img->layers[i], c, ret->level, &ret->layers[i]);
        return 0;
    }
    if (layerstore_layers_compress(store, img->layers, img->n_layers, c, level, &ret->layers, err) <
        0)
        return mk_error_set_where(err, name);
    return 0;
}

static int save_blobs(struct sink *s, struct mk_store *store, struct saved *sv, bool docker,
                      struct mk_error **err)
{
    _cleanup_free_ char *cname = blob_name(sv->img->config_digest);
    if (sink_blob(s, store, sv->img->config_digest, cname, err) < 0)
        return -1;
    for (size_t i = 0; i < sv->img->n_layers; i++) {
        if (!sv->layers[i].digest[0]) {
            if (sink_layer_compressed(s, store, &sv->img->layers[i], sv->c, sv->level,
                                      &sv->layers[i], err) < 0)
                return -1;
            continue;
        }
        _cleanup_free_ char *lname = blob_name(sv->layers[i].digest);
        if (sink_blob(s, store, sv->layers[i].digest, lname, err) < 0)
            return -1;
    }
    if (saved_manifest(store, sv->names.n ? sv->names.v[0] : sv->img->manifest_digest, sv, err) < 0)
        return -1;
    if (docker)
        return 0;
    _cleanup_free_ char *mname = blob_name(sv->manifest_digest);
    return sink_bytes(s, mname, sv->manifest, sv->manifest_len, err);
}

static char *oci_index_json(const struct saved *sv, size_t n, const struct saved_index *ix,
                            size_t n_ix)
{
    _cleanup_json_ json_t *idx = json_object();
    json_object_set_new(idx, "schemaVersion", json_integer(2));
    json_object_set_new(idx, "mediaType", json_string(MK_MEDIA_OCI_INDEX));
    json_t *list = json_array();
    for (size_t k = 0; k < n_ix; k++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:{s:s, s:s}}", "mediaType",
                                              MK_MEDIA_OCI_INDEX, "digest", ix[k].digest, "size",
                                              (json_int_t)ix[k].size, "annotations", REF_ANNOTATION,
                                              ix[k].name, CONTAINERD_NAME_ANNOTATION, ix[k].name));
    for (size_t i = 0; i < n; i++) {
        if (in_saved_index(ix, n_ix, i))
            continue;
        size_t n_names = sv[i].names.n ? sv[i].names.n : 1;
        for (size_t k = 0; k < n_names; k++) {
            json_t *d = json_pack("{s:s, s:s, s:I}", "mediaType", MK_MEDIA_OCI_MANIFEST, "digest",
                                  sv[i].manifest_digest, "size", (json_int_t)sv[i].manifest_len);
            if (sv[i].names.n)
                json_object_set_new(d, "annotations",
                                    json_pack("{s:s, s:s}", REF_ANNOTATION, sv[i].names.v[k],
                                              CONTAINERD_NAME_ANNOTATION, sv[i].names.v[k]));
            json_array_append_new(list, d);
        }
    }
    json_object_set_new(idx, "manifests", list);
    char *s = json_dumps(idx, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    return s;
}

static json_t *json_string_take(char *s)
{
    json_t *j = json_string(s);
    free(s);
    return j;
}

static char *docker_manifest_json(const struct saved *sv, size_t n)
{
    _cleanup_json_ json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *tags = json_array();
        for (size_t k = 0; k < sv[i].names.n; k++)
            if (!strchr(sv[i].names.v[k], '@')) /* Docker archives know tags only */
                json_array_append_new(tags, json_string(sv[i].names.v[k]));
        /* One image saved under several names is one entry with all of them, as docker save
         * writes it: readers that want a single image (skopeo) take such an archive. */
        size_t same = 0;
        while (same < i && strcmp(sv[same].img->config_digest, sv[i].img->config_digest) != 0)
            same++;
        if (same < i) {
            json_array_extend(json_object_get(json_array_get(list, same), "RepoTags"), tags);
            json_decref(tags);
            continue;
        }
        json_t *layers = json_array();
        for (size_t l = 0; l < sv[i].img->n_layers; l++)
            json_array_append_new(layers, json_string_take(blob_name(sv[i].layers[l].digest)));
        json_t *e = json_object();
        json_object_set_new(e, "Config", json_string_take(blob_name(sv[i].img->config_digest)));
        json_object_set_new(e, "RepoTags", tags);
        json_object_set_new(e, "Layers", layers);
        json_array_append_new(list, e);
    }
    char *s = json_dumps(list, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    return s;
}

static const char oci_layout_json[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

static int save_to(struct sink *s, struct mk_store *store, struct saved *sv, size_t n,
                   struct saved_index *ix, size_t n_ix, enum mk_archive_format f,
                   struct mk_error **err)
{
    bool docker = f == MK_ARCHIVE_DOCKER;
    if (!docker && sink_bytes(s, "oci-layout", oci_layout_json, strlen(oci_layout_json), err) < 0)
        return -1;
    if (sink_dir(s, "blobs", err) < 0 || sink_dir(s, "blobs/sha256", err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (save_blobs(s, store, &sv[i], docker, err) < 0)
            return -1;
    if (save_indexes(s, store, sv, ix, n_ix, err) < 0)
        return -1;
    /* The index last: a reader of a partly written directory finds no image in it. */
    _cleanup_free_ char *top =
        docker ? docker_manifest_json(sv, n) : oci_index_json(sv, n, ix, n_ix);
    return sink_bytes(s, docker ? "manifest.json" : "index.json", top, strlen(top), err);
}

int layerstore_save(struct mk_store *store, const char *const *names, size_t n,
                    enum mk_archive_format f, enum mk_compression c, int level, int out_fd,
                    const char *out_dir, struct mk_error **err)
{
    if (n == 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "no image to save");
    /* A name holding several platforms is saved with all of them, as an index. */
    struct mk_strv want = MK_STRV_INIT;
    struct saved_index *ix = mk_xcalloc(n, sizeof(*ix));
    size_t n_ix = 0;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        if (mk_digest_valid(names[i]) || !layerstore_ref_is_index(store, names[i])) {
            mk_strv_push(&want, names[i]);
            continue;
        }
        if (f == MK_ARCHIVE_DOCKER) {
            r = mk_error_set_at(err, MK_ERR_UNSUPPORTED, names[i],
                                "a Docker archive cannot hold several platforms of one name");
            break;
        }
        struct saved_index *x = &ix[n_ix++];
        x->name = mk_ref_local_name(names[i], NULL);
        x->first = want.n;
        r = layerstore_ref_platforms(store, names[i], &x->e, &x->n, err);
        for (size_t k = 0; r == 0 && k < x->n; k++)
            mk_strv_push(&want, x->e[k].manifest_digest);
    }
    size_t n_items = want.n;
    struct saved *sv = mk_xcalloc(n_items + 1, sizeof(*sv));
    struct sink s = {.fd = -1, .dirfd = -1};
    /* Layers are compressed straight into a directory, or into a tar the headers of which
     * can be rewritten (a regular file, not in append mode); else (a pipe) through the
     * store's cached copies, whose sizes are known before their headers are written. */
    bool direct = f == MK_ARCHIVE_OCI_DIR;
    struct stat ost;
    if (!direct && fstat(out_fd, &ost) == 0 && S_ISREG(ost.st_mode)) {
        int fl = fcntl(out_fd, F_GETFL);
        direct = fl >= 0 && !(fl & O_APPEND) && lseek(out_fd, 0, SEEK_CUR) >= 0;
    }
    for (size_t i = 0; i < n_items && r == 0; i++) {
        bool was = direct;
        r = saved_prepare(store, want.v[i], c, level, &direct, &sv[i], err);
        if (r == 0 && was && !direct) {
            /* A layer too large to compress into a tar: every image the cached way. */
            for (size_t k = 0; k <= i; k++) {
                saved_release(&sv[k]);
                memset(&sv[k], 0, sizeof(sv[k]));
            }
            i = (size_t)-1;
            continue;
        }
        if (r == 0 && in_saved_index(ix, n_ix, i))
            mk_strv_clear(&sv[i].names);
    }
    if (r == 0 && f == MK_ARCHIVE_OCI_DIR) {
        if (mk_mkdir_p(out_dir, 0755, err) < 0)
            r = -1;
        else if ((s.dirfd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            r = mk_error_errno(err, "opening \"%s\"", out_dir);
        if (r == 0)
            r = save_to(&s, store, sv, n_items, ix, n_ix, f, err);
        if (s.dirfd >= 0)
            close(s.dirfd);
    } else if (r == 0) {
        s.fd = out_fd;
        s.buf = mk_xmalloc(TAR_BUF);
        r = save_to(&s, store, sv, n_items, ix, n_ix, f, err);
        /* The end: two zero blocks, with no padding to a record size after them. */
        if (r == 0)
            r = tar_put(&s, NULL, 1024, err);
        if (r == 0)
            r = tar_flush(&s, err);
        free(s.buf);
    }
    for (size_t i = 0; i < n_items; i++)
        saved_release(&sv[i]);
    free(sv);
    for (size_t k = 0; k < n_ix; k++) {
        free(ix[k].name);
        layerstore_platform_entries_free(ix[k].e);
    }
    free(ix);
    mk_strv_release(&want);
    mk_strv_release(&s.written);
    free(s.streamed);
    return r;
}

/* ---- load --------------------------------------------------------------------------------- */

struct entry {
    char *path;
    char *link; /* symlink or hardlink target, or NULL for a regular file */
    bool hard;
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
};

struct loader {
    struct mk_store *store;
    char *dir; /* our temp dir: regular entries as files named by their digest's hex */
    int dirfd;
    struct entry *entries;
    size_t n, alloc;
};

/* "./a//b/" -> "a/b"; ".." and "." are resolved lexically (names are only looked up in
 * the entry table, never used as paths). */
static char *clean_path(const char *p)
{
    struct mk_strv parts = MK_STRV_INIT;
    _cleanup_free_ char *copy = mk_xstrdup(p);
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0) {
            if (parts.n)
                free(parts.v[--parts.n]), parts.v[parts.n] = NULL;
            continue;
        }
        mk_strv_push(&parts, t);
    }
    struct mk_buf b = MK_BUF_INIT;
    for (size_t i = 0; i < parts.n; i++) {
        if (i)
            mk_buf_addc(&b, '/');
        mk_buf_adds(&b, parts.v[i]);
    }
    mk_strv_release(&parts);
    return mk_buf_detach(&b);
}

static const struct entry *lookup(struct loader *l, const char *path)
{
    _cleanup_free_ char *p = clean_path(path);
    for (int hops = 0; hops <= LOAD_MAX_LINKS; hops++) {
        const struct entry *e = NULL;
        for (size_t i = l->n; i-- > 0;)
            if (strcmp(l->entries[i].path, p) == 0) {
                e = &l->entries[i];
                break;
            }
        if (!e || !e->link)
            return e;
        char *next;
        if (e->hard || e->link[0] == '/') {
            next = clean_path(e->link);
        } else {
            const char *slash = strrchr(e->path, '/');
            _cleanup_free_ char *joined =
                slash ? mk_xasprintf("%.*s/%s", (int)(slash - e->path), e->path, e->link)
                      : mk_xstrdup(e->link);
            next = clean_path(joined);
        }
        free(p);
        p = next;
    }
    return NULL;
}

static int entry_open(struct loader *l, const struct entry *e, struct mk_error **err)
{
    int fd = openat(l->dirfd, mk_digest_hex(e->digest), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening the archive's \"%s\"", e->path);
    return fd;
}

static int entry_read(struct loader *l, const char *path, const char *want_digest, char **ret,
                      size_t *ret_len, struct mk_error **err)
{
    const struct entry *e = lookup(l, path);
    if (!e)
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "the archive has no \"%s\"", path);
    if (want_digest && strcmp(e->digest, want_digest) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "\"%s\" in the archive has digest %s, not %s",
                            path, e->digest, want_digest);
    if (mk_read_file_at(l->dirfd, mk_digest_hex(e->digest), LS_JSON_MAX, ret, ret_len, err) < 0)
        return mk_error_wrap(err, "reading the archive's \"%s\"", path);
    return 0;
}

static struct entry *entry_add(struct loader *l, const char *path)
{
    if (l->n == l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 64;
        l->entries = mk_xreallocarray(l->entries, l->alloc, sizeof(*l->entries));
    }
    struct entry *e = &l->entries[l->n++];
    memset(e, 0, sizeof(*e));
    e->path = clean_path(path);
    return e;
}

/* Streams one regular entry into a temp file named by its digest. */
static int read_regular(struct loader *l, struct archive *a, struct entry *e, struct mk_error **err)
{
    _cleanup_close_ int fd =
        openat(l->dirfd, "partial", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return mk_error_errno(err, "creating a temp file in \"%s\"", l->dir);
    struct mk_sha256 *h = mk_sha256_new();
    const void *buf;
    size_t n;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(a, &buf, &n, &off)) == ARCHIVE_OK) {
        if (mk_interrupted) {
            mk_sha256_free(h);
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
        }
        /* Sparse entries come with holes: keep the offsets. */
        if ((uint64_t)off != e->size) {
            if (lseek(fd, off, SEEK_SET) < 0 || ftruncate(fd, off) < 0) {
                mk_sha256_free(h);
                return mk_error_errno(err, "writing \"%s\"", e->path);
            }
            static const char zeros[4096];
            for (uint64_t z = e->size; z < (uint64_t)off;) {
                size_t k =
                    (uint64_t)off - z < sizeof(zeros) ? (size_t)((uint64_t)off - z) : sizeof(zeros);
                mk_sha256_update(h, zeros, k);
                z += k;
            }
            e->size = (uint64_t)off;
        }
        mk_sha256_update(h, buf, n);
        if (mk_write_all(fd, buf, n, err) < 0) {
            mk_sha256_free(h);
            return -1;
        }
        e->size += n;
    }
    if (r != ARCHIVE_EOF) {
        mk_sha256_free(h);
        return mk_error_set(err, MK_ERR_PARSE, 0, "reading \"%s\" from the archive: %s", e->path,
                            archive_error_string(a));
    }
    mk_sha256_final(h, e->digest);
    mk_sha256_free(h);
    if (renameat(l->dirfd, "partial", l->dirfd, mk_digest_hex(e->digest)) < 0)
        return mk_error_errno(err, "keeping \"%s\"", e->path);
    return 0;
}

/* The archive's bytes, with its first ones kept to name a compression we do not read. */
struct load_input {
    int fd;
    char *buf;
    unsigned char head[16];
    size_t head_len;
};

static la_ssize_t load_read(struct archive *a, void *data, const void **ret_buf)
{
    struct load_input *in = data;
    ssize_t n;
    do
        n = read(in->fd, in->buf, LOAD_READ_SIZE);
    while (n < 0 && errno == EINTR && !mk_interrupted);
    if (n < 0) {
        archive_set_error(a, errno, "read: %s", strerror(errno));
        return -1;
    }
    if (in->head_len < sizeof(in->head)) {
        size_t k = sizeof(in->head) - in->head_len;
        if (k > (size_t)n)
            k = (size_t)n;
        memcpy(in->head + in->head_len, in->buf, k);
        in->head_len += k;
    }
    *ret_buf = in->buf;
    return n;
}

static int read_fail(struct archive *a, const struct load_input *in, struct mk_error **err)
{
    const char *c = ls_compression_name(in->head, in->head_len);
    if (c && strcmp(c, "gzip") != 0 && strcmp(c, "zstd") != 0)
        return mk_error_set(err, MK_ERR_INVALID, 0,
                            "the archive is compressed with %s, which mkimg does not read "
                            "(tar, gzip or zstd only)",
                            c);
    return mk_error_set(err, MK_ERR_PARSE, 0, "reading the archive: %s", archive_error_string(a));
}

static int read_archive(struct loader *l, int fd, struct mk_error **err)
{
    _cleanup_(archive_read_freep) struct archive *a = archive_read_new();
    _cleanup_free_ char *buf = mk_xmalloc(LOAD_READ_SIZE);
    struct load_input in = {.fd = fd, .buf = buf};
    /* Not archive_read_support_filter_all(): it runs lrzip, lzop, grzip... from $PATH. */
    if (ls_read_filters(a, LS_FILTERS_LOAD, err) < 0)
        return -1;
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open(a, &in, NULL, load_read, NULL) != ARCHIVE_OK)
        return read_fail(a, &in, err);
    for (;;) {
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return read_fail(a, &in, err);
        if (l->n >= LOAD_MAX_ENTRIES)
            return mk_error_set(err, MK_ERR_INVALID, 0, "the archive has more than %d entries",
                                LOAD_MAX_ENTRIES);
        const char *path = archive_entry_pathname(ae);
        if (!path)
            continue;
        const char *hard = archive_entry_hardlink(ae);
        mode_t type = archive_entry_filetype(ae);
        if (hard) {
            struct entry *e = entry_add(l, path);
            e->link = mk_xstrdup(hard);
            e->hard = true;
        } else if (type == AE_IFLNK) {
            const char *target = archive_entry_symlink(ae);
            struct entry *e = entry_add(l, path);
            e->link = mk_xstrdup(target ? target : "");
        } else if (type == AE_IFREG) {
            if (read_regular(l, a, entry_add(l, path), err) < 0)
                return -1;
        }
    }
    return 0;
}

/* Where an archive names one image. */
struct image_src {
    char *config_path;
    char config_digest[MK_DIGEST_SIZE]; /* "" when the archive format does not say */
    struct mk_strv layer_paths;
    struct mk_strv layer_digests; /* empty when the format does not say */
    struct mk_strv names;
};

static void image_src_release(struct image_src *s)
{
    free(s->config_path);
    mk_strv_release(&s->layer_paths);
    mk_strv_release(&s->layer_digests);
    mk_strv_release(&s->names);
}

static int import_layer(struct loader *l, const struct image_src *src, size_t i,
                        const char *diff_id, const char *parent, struct mk_layer_desc *ret,
                        char ret_chain[MK_DIGEST_SIZE], struct mk_error **err)
{
    const struct entry *e = lookup(l, src->layer_paths.v[i]);
    if (!e)
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "the archive has no layer \"%s\"",
                            src->layer_paths.v[i]);
    if (src->layer_digests.n && strcmp(e->digest, src->layer_digests.v[i]) != 0)
        return mk_error_set(err, MK_ERR_DIGEST, 0, "layer \"%s\" has digest %s, not %s", e->path,
                            e->digest, src->layer_digests.v[i]);
    /* Loading an image the store already has costs no unpacking. */
    char chain[MK_DIGEST_SIZE];
    mk_chain_id(parent, diff_id, chain);
    if (strcmp(e->digest, diff_id) == 0 && layerstore_blob_exists(l->store, diff_id) &&
        layerstore_snapshot_exists(l->store, chain)) {
        memset(ret, 0, sizeof(*ret));
        memcpy(ret->digest, diff_id, MK_DIGEST_SIZE);
        memcpy(ret->diff_id, diff_id, MK_DIGEST_SIZE);
        ret->media_type = mk_xstrdup(MK_MEDIA_OCI_LAYER);
        ret->size = e->size;
        memcpy(ret_chain, chain, MK_DIGEST_SIZE);
        return 0;
    }
    _cleanup_close_ int fd = entry_open(l, e, err);
    if (fd < 0)
        return -1;
    if (layerstore_layer_import_tar(l->store, fd, parent, ret, ret_chain, err) < 0)
        return mk_error_wrap(err, "layer \"%s\"", e->path);
    if (strcmp(ret->diff_id, diff_id) != 0) {
        free(ret->media_type);
        ret->media_type = NULL;
        return mk_error_set(err, MK_ERR_DIGEST, 0,
                            "layer \"%s\" unpacks to %s, but the config says %s", e->path,
                            ret->diff_id, diff_id);
    }
    return 0;
}

static int import_image(struct loader *l, const struct image_src *src, struct mk_strv *loaded,
                        struct mk_error **err)
{
    _cleanup_free_ char *cjson = NULL;
    size_t clen = 0;
    if (entry_read(l, src->config_path, src->config_digest[0] ? src->config_digest : NULL, &cjson,
                   &clen, err) < 0)
        return -1;
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (layerstore_config_parse(cjson, clen, &cfg, err) < 0)
        return mk_error_wrap(err, "image config \"%s\"", src->config_path);
    size_t n = src->layer_paths.n;
    struct mk_layer_desc *layers = mk_xcalloc(n + 1, sizeof(*layers));
    int r = 0;
    if (cfg.diff_ids.n != n)
        r = mk_error_set(err, MK_ERR_INVALID, 0,
                         "the image lists %zu layers but its config has %zu diff_ids", n,
                         cfg.diff_ids.n);
    char chain[MK_DIGEST_SIZE] = "";
    for (size_t i = 0; r == 0 && i < n; i++) {
        char next[MK_DIGEST_SIZE];
        r = import_layer(l, src, i, cfg.diff_ids.v[i], chain, &layers[i], next, err);
        memcpy(chain, next, MK_DIGEST_SIZE);
    }
    char config[MK_DIGEST_SIZE];
    if (r == 0)
        r = layerstore_blob_put_buf(l->store, cjson, clen, config, err);
    _cleanup_free_ char *mjson = r == 0 ? manifest_json(config, clen, layers, n) : NULL;
    struct mk_image img;
    memset(&img, 0, sizeof(img));
    if (r == 0)
        r = layerstore_blob_put_buf(l->store, mjson, strlen(mjson), img.manifest_digest, err);
    img.manifest_size = mjson ? strlen(mjson) : 0;
    memcpy(img.config_digest, config, MK_DIGEST_SIZE);
    size_t tagged = 0;
    for (size_t i = 0; r == 0 && i < src->names.n; i++) {
        /* A name that is no valid reference (a bare OCI ref.name like "v1") is no tag. */
        _cleanup_free_ char *ref = mk_ref_local_name(src->names.v[i], NULL);
        if (!ref)
            continue;
        r = layerstore_tag(l->store, &img, ref, err);
        if (r == 0) {
            mk_strv_push(loaded, ref);
            tagged++;
        }
    }
    if (r == 0 && tagged == 0) {
        r = layerstore_tag(l->store, &img, NULL, err);
        if (r == 0)
            mk_strv_push(loaded, config);
    }
    layerstore_layer_descs_free(layers, n);
    layerstore_config_release(&cfg);
    return r;
}

static int strv_from_json(json_t *arr, struct mk_strv *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return -1;
        mk_strv_push(out, json_string_value(v));
    }
    return 0;
}

static int load_docker(struct loader *l, struct mk_strv *loaded, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (entry_read(l, "manifest.json", NULL, &data, &len, err) < 0)
        return -1;
    _cleanup_json_ json_t *m = json_loadb(data, len, 0, NULL);
    if (!json_is_array(m) || json_array_size(m) == 0 || json_array_size(m) > LOAD_MAX_IMAGES)
        return mk_error_set(err, MK_ERR_PARSE, 0, "bad docker archive manifest.json");
    size_t i;
    json_t *e;
    json_array_foreach(m, i, e)
    {
        struct image_src src;
        memset(&src, 0, sizeof(src));
        const char *config = json_string_value(json_object_get(e, "Config"));
        json_t *tags = json_object_get(e, "RepoTags");
        int r = 0;
        if (!config || strv_from_json(json_object_get(e, "Layers"), &src.layer_paths) < 0 ||
            (tags && !json_is_null(tags) && strv_from_json(tags, &src.names) < 0))
            r = mk_error_set(err, MK_ERR_PARSE, 0, "bad docker archive manifest.json entry %zu",
                             i + 1);
        if (r == 0) {
            src.config_path = mk_xstrdup(config);
            r = import_image(l, &src, loaded, err);
        }
        image_src_release(&src);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* An index entry's manifest: followed through one level of image index, preferring the
 * host's platform. */
static int oci_manifest(struct loader *l, json_t *desc, int depth, struct image_src *src,
                        struct mk_error **err)
{
    const char *digest = json_string_value(json_object_get(desc, "digest"));
    if (!digest || !mk_digest_valid(digest))
        return mk_error_set(err, MK_ERR_PARSE, 0, "index entry without a valid digest");
    _cleanup_free_ char *path = blob_name(digest);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (entry_read(l, path, digest, &data, &len, err) < 0)
        return -1;
    _cleanup_json_ json_t *m = json_loadb(data, len, 0, NULL);
    if (!json_is_object(m))
        return mk_error_set_at(err, MK_ERR_PARSE, digest, "bad manifest");
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    json_t *list = json_object_get(m, "manifests");
    if ((mt && (strcmp(mt, MK_MEDIA_OCI_INDEX) == 0 || strcmp(mt, MEDIA_DOCKER_LIST) == 0)) ||
        (!mt && json_is_array(list))) {
        if (depth > 0 || !json_is_array(list) || json_array_size(list) == 0)
            return mk_error_set_at(err, MK_ERR_UNSUPPORTED, digest, "nested image index");
        json_t *pick = json_array_get(list, 0);
        size_t i;
        json_t *d;
        json_array_foreach(list, i, d)
        {
            json_t *p = json_object_get(d, "platform");
            const char *arch = json_string_value(json_object_get(p, "architecture"));
            const char *os = json_string_value(json_object_get(p, "os"));
            if (arch && os && strcmp(arch, mk_host_arch()) == 0 && strcmp(os, "linux") == 0) {
                pick = d;
                break;
            }
        }
        return oci_manifest(l, pick, depth + 1, src, err);
    }
    if (mt && strcmp(mt, MK_MEDIA_OCI_MANIFEST) != 0 && strcmp(mt, MEDIA_DOCKER_MANIFEST) != 0)
        return mk_error_set_at(err, MK_ERR_UNSUPPORTED, digest, "unsupported manifest type \"%s\"",
                               mt);
    const char *config = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
    json_t *layers = json_object_get(m, "layers");
    if (!config || !mk_digest_valid(config) || !json_is_array(layers))
        return mk_error_set_at(err, MK_ERR_PARSE, digest, "bad manifest");
    src->config_path = blob_name(config);
    memcpy(src->config_digest, config, MK_DIGEST_SIZE);
    size_t i;
    json_t *ld;
    json_array_foreach(layers, i, ld)
    {
        const char *d = json_string_value(json_object_get(ld, "digest"));
        if (!d || !mk_digest_valid(d))
            return mk_error_set_at(err, MK_ERR_PARSE, digest, "bad layer descriptor");
        mk_strv_push_take(&src->layer_paths, blob_name(d));
        mk_strv_push(&src->layer_digests, d);
    }
    return 0;
}

static int load_oci(struct loader *l, struct mk_strv *loaded, struct mk_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (entry_read(l, "index.json", NULL, &data, &len, err) < 0)
        return -1;
    _cleanup_json_ json_t *idx = json_loadb(data, len, 0, NULL);
    json_t *list = json_object_get(idx, "manifests");
    if (!json_is_array(list) || json_array_size(list) > LOAD_MAX_IMAGES)
        return mk_error_set(err, MK_ERR_PARSE, 0, "bad oci archive index.json");
    if (json_array_size(list) == 0)
        return mk_error_set(err, MK_ERR_INVALID, 0, "the archive holds no image");
    size_t i;
    json_t *desc;
    json_array_foreach(list, i, desc)
    {
        struct image_src src;
        memset(&src, 0, sizeof(src));
        json_t *a = json_object_get(desc, "annotations");
        const char *name = json_string_value(json_object_get(a, CONTAINERD_NAME_ANNOTATION));
        if (!name)
            name = json_string_value(json_object_get(a, REF_ANNOTATION));
        if (name)
            mk_strv_push(&src.names, name);
        int r = oci_manifest(l, desc, 0, &src, err);
        if (r == 0)
            r = import_image(l, &src, loaded, err);
        image_src_release(&src);
        if (r < 0)
            return -1;
    }
    return 0;
}

int layerstore_load(struct mk_store *store, int fd, struct mk_strv *ret_loaded,
                    struct mk_error **err)
{
    struct loader l = {.store = store, .dirfd = -1};
    struct mk_strv loaded = MK_STRV_INIT;
    int r = 0;
    l.dir = layerstore_tmpdir(store, "load-", err);
    if (!l.dir)
        return mk_error_wrap(err, "loading");
    l.dirfd = open(l.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l.dirfd < 0)
        r = mk_error_errno(err, "opening \"%s\"", l.dir);
    if (r == 0)
        r = read_archive(&l, fd, err);
    if (r == 0) {
        if (lookup(&l, "index.json"))
            r = load_oci(&l, &loaded, err);
        else if (lookup(&l, "manifest.json"))
            r = load_docker(&l, &loaded, err);
        else
            r = mk_error_set(err, MK_ERR_INVALID, 0,
                             "not an OCI or Docker archive (no index.json or manifest.json)");
    }
    if (l.dirfd >= 0)
        close(l.dirfd);
    layerstore_tmpdir_remove(store, l.dir, NULL);
    free(l.dir);
    for (size_t i = 0; i < l.n; i++) {
        free(l.entries[i].path);
        free(l.entries[i].link);
    }
    free(l.entries);
    if (r < 0) {
        mk_strv_release(&loaded);
        return mk_error_wrap(err, "loading");
    }
    mk_strv_copy(ret_loaded, &loaded);
    mk_strv_release(&loaded);
    return 0;
}
