/* layerstore/layerstore.h - the local image store: blobs, images, tags, snapshots, layers.
 *
 * The store root is itself a valid OCI image layout:
 *   ROOT/oci-layout, ROOT/index.json (tags as org.opencontainers.image.ref.name),
 *   ROOT/blobs/sha256/<hex>
 * plus mkimg's own directories, which OCI readers ignore:
 *   ROOT/snapshots/<chain-id hex>/  one unpacked layer diff each, in overlay format
 *                                   (whiteouts are 0/0 char devices, opaque directories
 *                                   carry user.overlay.opaque=y), used directly as an
 *                                   overlay lowerdir
 *   ROOT/tmp/                       temp files and dirs, each flock()ed by its owner;
 *                                   stale ones (owner gone) are removed on open
 *   ROOT/lock                       flock() held while index.json is read-modified-written
 *
 * Invariants: a blob's file name is the sha256 of its bytes (written to a temp file,
 * verified, fsynced and renamed); index.json is replaced atomically; a snapshot directory
 * appears (by rename) only when complete. Layers are stored uncompressed
 * (application/vnd.oci.image.layer.v1.tar): a build never waits for compression.
 *
 * Ownership: every object returned through ret_* is the caller's and has a _free function.
 * All functions follow common/error.h.
 */
#ifndef MK_LAYERSTORE_H
#define MK_LAYERSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"

#define MK_MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MK_MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MK_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MK_MEDIA_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MK_MEDIA_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MK_MEDIA_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

struct mk_store;

/* ---- the store ---------------------------------------------------------------------------- */

/* The default root: /var/lib/mkimg for root, else $XDG_DATA_HOME/mkimg or
 * ~/.local/share/mkimg. (MKIMG_ROOT and --root are the CLI's business.) Caller frees. */
char *layerstore_default_root(void);
/* Opens (creating the layout when missing) the store at root. */
int layerstore_open(const char *root, struct mk_store **ret, struct mk_error **err);
void layerstore_free(struct mk_store *store);
const char *layerstore_root(const struct mk_store *store);

/* A new private temp dir ROOT/tmp/<prefix>XXXXXX on the store's file system (so it can be
 * renamed into snapshots/), locked while the store handle lives. Caller frees the path and
 * removes the dir with layerstore_tmpdir_remove. */
char *layerstore_tmpdir(struct mk_store *store, const char *prefix, struct mk_error **err);
int layerstore_tmpdir_remove(struct mk_store *store, const char *path, struct mk_error **err);

/* ---- blobs -------------------------------------------------------------------------------- */

bool layerstore_blob_exists(struct mk_store *store, const char *digest);
/* Read-only fd of a blob, or -1 (MK_ERR_NOT_FOUND). */
int layerstore_blob_open(struct mk_store *store, const char *digest, struct mk_error **err);
/* Whole small blob (manifests, configs) into a new string; fails past max bytes. */
int layerstore_blob_read(struct mk_store *store, const char *digest, size_t max, char **ret,
                         size_t *ret_len, struct mk_error **err);
/* Stores bytes; ret_digest receives their digest. */
int layerstore_blob_put_buf(struct mk_store *store, const void *data, size_t len,
                            char ret_digest[MK_DIGEST_SIZE], struct mk_error **err);
/* Streams fd to EOF into a blob, hashing while copying. When expected is not NULL a
 * mismatch fails with MK_ERR_DIGEST and stores nothing. */
int layerstore_blob_put_fd(struct mk_store *store, int fd, const char *expected,
                           char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                           struct mk_error **err);
/* Absolute path of a blob file (it may not exist). Caller frees. */
char *layerstore_blob_path(struct mk_store *store, const char *digest);

/* ---- image config ------------------------------------------------------------------------- */

struct mk_history {
    char *created;    /* RFC 3339, or NULL */
    char *created_by; /* e.g. "RUN /bin/sh -c make" */
    char *author;
    char *comment;
    bool empty_layer;
};

struct mk_healthcheck {
    bool set;
    struct mk_strv test; /* ["NONE"] or ["CMD", ...] or ["CMD-SHELL", "..."] */
    int64_t interval, timeout, start_period, start_interval; /* nanoseconds, 0 = default */
    int retries;
};

/* The fields of an OCI image config (with Docker's extensions) that mkimg reads/writes.
 * Absent and null are the same; has_* tell an empty list from an absent one. */
struct mk_image_config {
    char *architecture, *os, *variant;
    char *created, *author;
    char *user, *working_dir, *stop_signal;
    struct mk_strv env;           /* "K=V" */
    struct mk_strv entrypoint;    bool has_entrypoint;
    struct mk_strv cmd;           bool has_cmd;
    struct mk_strv shell;         /* Docker extension; empty = default */
    struct mk_strv onbuild;       /* Docker extension: trigger instructions as written */
    struct mk_strv labels;        /* "K=V", keys unique */
    struct mk_strv exposed_ports; /* "80/tcp" */
    struct mk_strv volumes;       /* "/data" */
    struct mk_healthcheck healthcheck;
    bool args_escaped;
    struct mk_strv diff_ids;      /* rootfs.diff_ids */
    struct mk_history *history;
    size_t n_history;
};

int layerstore_config_parse(const char *json, size_t len, struct mk_image_config *ret,
                            struct mk_error **err);
/* Deterministic JSON (fixed key order, no whitespace). Caller frees. */
char *layerstore_config_serialize(const struct mk_image_config *cfg);
void layerstore_config_copy(struct mk_image_config *dst, const struct mk_image_config *src);
void layerstore_config_release(struct mk_image_config *cfg);
void layerstore_config_add_history(struct mk_image_config *cfg, const char *created,
                                   const char *created_by, const char *comment,
                                   bool empty_layer);

/* ---- images ------------------------------------------------------------------------------- */

struct mk_layer_desc {
    char digest[MK_DIGEST_SIZE];  /* blob digest as in the manifest */
    char diff_id[MK_DIGEST_SIZE]; /* uncompressed digest (== digest for plain tar) */
    char *media_type;
    uint64_t size;
};

struct mk_image {
    char manifest_digest[MK_DIGEST_SIZE];
    char config_digest[MK_DIGEST_SIZE]; /* the image ID */
    uint64_t manifest_size;
    struct mk_image_config config;
    struct mk_layer_desc *layers;
    size_t n_layers;
    struct mk_strv tags; /* refs naming this manifest in index.json */
};

/* "hello" -> "hello:latest"; a reference with a tag or digest stays as it is. Fails with
 * MK_ERR_INVALID for malformed names. Caller frees. */
char *layerstore_normalize_ref(const char *ref, struct mk_error **err);

/* Finds an image by reference (normalized), by "sha256:<hex>" of its config or manifest,
 * or by an unambiguous hex prefix (at least 4 digits) of its ID. MK_ERR_NOT_FOUND when
 * nothing matches. */
int layerstore_image_get(struct mk_store *store, const char *name, struct mk_image **ret,
                         struct mk_error **err);
void layerstore_image_free(struct mk_image *img);

/* Writes cfg (its diff_ids must match layers) as a config blob and an OCI manifest blob;
 * no tag is created. ret may be NULL. */
int layerstore_image_write(struct mk_store *store, const struct mk_image_config *cfg,
                           const struct mk_layer_desc *layers, size_t n_layers,
                           struct mk_image **ret, struct mk_error **err);

/* Points ref (normalized) at the manifest, replacing what it named before. Atomic under
 * the store lock. ref NULL keeps the image as an untagged entry (findable by ID) unless
 * index.json already lists its manifest. */
int layerstore_tag(struct mk_store *store, const struct mk_image *img, const char *ref,
                   struct mk_error **err);
/* Removes ref; MK_ERR_NOT_FOUND when absent. */
int layerstore_untag(struct mk_store *store, const char *ref, struct mk_error **err);

struct mk_image_entry {
    char *ref; /* NULL for an untagged manifest kept in index.json */
    char manifest_digest[MK_DIGEST_SIZE];
    char config_digest[MK_DIGEST_SIZE];
    uint64_t size;  /* sum of the layer sizes */
    char *created;
};
/* Every ref in index.json, in index order. */
int layerstore_list(struct mk_store *store, struct mk_image_entry **ret, size_t *ret_n,
                    struct mk_error **err);
void layerstore_list_free(struct mk_image_entry *entries, size_t n);

/* Removes an image by name: untags a reference (the image entry goes when its last tag
 * goes); given an ID, removes all its tags. Blobs and snapshots stay until prune. */
int layerstore_rmi(struct mk_store *store, const char *name, struct mk_error **err);

/* The JSON document `mkimg inspect` prints (Id, Digest, RepoTags, Created, Architecture,
 * Os, Config, RootFS, History, Layers, Size). Caller frees. */
char *layerstore_image_inspect_json(struct mk_store *store, const struct mk_image *img);

/* ---- layers and snapshots ----------------------------------------------------------------- */

/* Chain id of the first n layers of img (n = 0: ""), into out. */
void layerstore_image_chain_id(const struct mk_image *img, size_t n, char out[MK_DIGEST_SIZE]);

/* Absolute path of the snapshot dir for a chain id (it may not exist). Caller frees. */
char *layerstore_snapshot_path(struct mk_store *store, const char *chain_id);
bool layerstore_snapshot_exists(struct mk_store *store, const char *chain_id);

/* Makes sure every layer of img has a snapshot (unpacking blobs where missing) and appends
 * the snapshot dirs to ret_dirs, top-most layer first (overlay lowerdir order). */
int layerstore_image_snapshots(struct mk_store *store, const struct mk_image *img,
                               struct mk_strv *ret_dirs, struct mk_error **err);

/* Turns an overlay upperdir (a directory inside layerstore_tmpdir()) into a layer: writes
 * the deterministic tar blob (overlay whiteouts -> .wh. entries), then renames the dir to
 * the snapshot of chain(parent_chain, diff_id) (or removes it when that snapshot exists).
 * parent_chain is "" for a first layer. ret_chain may be NULL. */
int layerstore_layer_commit_dir(struct mk_store *store, const char *upperdir,
                                const char *parent_chain, struct mk_layer_desc *ret,
                                char ret_chain[MK_DIGEST_SIZE], struct mk_error **err);

/* Imports an untrusted layer tar (plain, gzip, bzip2, xz or zstd, detected from content)
 * from fd: stores the uncompressed tar as a blob and unpacks it into the snapshot of
 * chain(parent_chain, diff_id). */
int layerstore_layer_import_tar(struct mk_store *store, int fd, const char *parent_chain,
                                struct mk_layer_desc *ret, char ret_chain[MK_DIGEST_SIZE],
                                struct mk_error **err);

/* `mkimg import`: a rootfs tarball or directory becomes a one-layer image tagged ref
 * (linux, the host's architecture, history "imported from PATH"). */
int layerstore_import(struct mk_store *store, const char *path, const char *ref,
                      struct mk_image **ret, struct mk_error **err);

/* Host architecture in OCI/Go naming: amd64, arm64, ... */
const char *layerstore_host_arch(void);
/* RFC 3339 UTC time of now (or of $SOURCE_DATE_EPOCH when set). Caller frees. */
char *layerstore_now_rfc3339(void);


/* ---- build cache -------------------------------------------------------------------------- */

/* A small key -> value map under ROOT/cache/ (one file per key, written atomically), for the
 * builder's step cache and its file-digest cache. Keys are digests ("sha256:<hex>"). Values
 * are at most 64 MiB. A missing key is MK_ERR_NOT_FOUND. */
int layerstore_cache_get(struct mk_store *store, const char *key, char **ret_value,
                         struct mk_error **err);
int layerstore_cache_put(struct mk_store *store, const char *key, const char *value,
                         struct mk_error **err);
/* A layer named by diff_id that is still fully usable (blob and snapshot present):
 * fills ret (digest == diff_id, size of the blob). */
int layerstore_layer_lookup(struct mk_store *store, const char *diff_id, const char *chain_id,
                            struct mk_layer_desc *ret, struct mk_error **err);


/* ---- compression (layerstore/compress.c) --------------------------------------------------- */

enum mk_compression { MK_COMPRESS_NONE = 0, MK_COMPRESS_GZIP, MK_COMPRESS_ZSTD };

/* The compressed form of each layer (media type +gzip / +zstd, level 0 = the default), made
 * in parallel on all cores when missing and cached in the store (a compressed copy is an
 * ordinary blob; the mapping diff_id -> compressed blob is remembered), so a second push or
 * save costs nothing. ret is an array of n the caller releases with
 * layerstore_layer_descs_free. MK_COMPRESS_NONE returns copies of the uncompressed descs. */
int layerstore_layers_compress(struct mk_store *store, const struct mk_layer_desc *layers,
                               size_t n, enum mk_compression c, int level,
                               struct mk_layer_desc **ret, struct mk_error **err);
void layerstore_layer_descs_free(struct mk_layer_desc *descs, size_t n);
/* "gzip" / "zstd" / "none" -> enum; -1 for anything else. */
int layerstore_compression_parse(const char *s);

#endif
