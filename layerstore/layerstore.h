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
 *   ROOT/cache/<kind>/<key hex>     typed cache records, one directory per kind (see
 *                                   "build cache" below)
 *   ROOT/cache/mounts/<id hex>[-N]/ RUN --mount=type=cache directories: lock, data/
 *   ROOT/flat/<hex>/                merged bottom snapshots of very deep images (derived)
 *   ROOT/tar-index/<chain hex>      where a built layer's file entries sit in its blob, for
 *                                   the next commit that shares its files (derived)
 *   ROOT/unsynced/<pid>-<random>    a build's window of deferred durability: the boot id,
 *                                   flock()ed by the build (layerstore_sync_defer)
 *   ROOT/lock                       flock() held while index.json is read-modified-written
 *   ROOT/gc.lock                    flock()ed shared by every open handle, exclusively by
 *                                   prune and fsck --repair
 * Nothing else writes under ROOT: other modules get paths and records through this API.
 *
 * Invariants: a blob's file name is the sha256 of its bytes (written to a temp file,
 * verified, put on disk by an fsync or a syncfs, then renamed); index.json is replaced
 * atomically, after an fsync of blobs/sha256/ (a layer's name is not fsynced on its own);
 * a snapshot directory appears (by rename) only when complete and on disk, and may be
 * missing: it is derived from its layer's blob (unpacked again when needed; a build drops
 * the snapshot of a big layer that nothing mounts, layerstore_layer_commit_blob). Layers are stored
 * uncompressed (application/vnd.oci.image.layer.v1.tar): a build never waits for compression.
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
#include "common/epoch.h"
#include "common/error.h"
#include "common/platform.h"
#include "common/ref.h"
#include "common/util.h"

#define MK_MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MK_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
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

/* Opens a window of deferred durability (the comment in store.c): until
 * layerstore_sync_end (or layerstore_free in the same process), snapshots and layer blobs
 * are named before a syncfs puts them on disk; that syncfs comes before index.json names an
 * image and at the end. A power cut in the window costs what it wrote but did not tag (the
 * next open removes it). Does nothing (0) when no boot id can be read. */
int layerstore_sync_defer(struct mk_store *store, struct mk_error **err);
/* The window's marker is made by its first deferred write (a build that writes nothing
 * syncs nothing); this makes it now, before forking helpers that write in the window. */
int layerstore_sync_begin(struct mk_store *store, struct mk_error **err);
/* In a process forked in a window that was wanted but not open yet: the window becomes
 * this process's own (opened at its first deferred write, closed by its
 * layerstore_sync_end, which must come before it reports what it built). */
void layerstore_sync_adopt(struct mk_store *store);
/* Closes the window: syncfs, then the marker goes. Only in the process that opened it. */
int layerstore_sync_end(struct mk_store *store, struct mk_error **err);

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
    struct mk_strv env; /* "K=V" */
    struct mk_strv entrypoint;
    bool has_entrypoint;
    struct mk_strv cmd;
    bool has_cmd;
    struct mk_strv shell;         /* Docker extension; empty = default */
    struct mk_strv onbuild;       /* Docker extension: trigger instructions as written */
    struct mk_strv labels;        /* "K=V", keys unique */
    struct mk_strv exposed_ports; /* "80/tcp" */
    struct mk_strv volumes;       /* "/data" */
    struct mk_healthcheck healthcheck;
    bool args_escaped;
    struct mk_strv diff_ids; /* rootfs.diff_ids */
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
                                   const char *created_by, const char *comment, bool empty_layer);

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
    bool docker_manifest; /* the manifest is Docker's v2 schema 2, not OCI */
    struct mk_image_config config;
    struct mk_layer_desc *layers;
    size_t n_layers;
    struct mk_strv tags; /* refs naming this manifest in index.json */
};

/* Finds an image by reference (its local name, common/ref.h), by "sha256:<hex>" of its
 * config or manifest, or by an unambiguous hex prefix (at least 4 digits) of its ID.
 * MK_ERR_NOT_FOUND when nothing matches. */
int layerstore_image_get(struct mk_store *store, const char *name, struct mk_image **ret,
                         struct mk_error **err);
void layerstore_image_free(struct mk_image *img);

/* Writes cfg (its diff_ids must match layers) as a config blob and an OCI manifest blob;
 * no tag is created. ret may be NULL. */
int layerstore_image_write(struct mk_store *store, const struct mk_image_config *cfg,
                           const struct mk_layer_desc *layers, size_t n_layers,
                           struct mk_image **ret, struct mk_error **err);
/* Same, with manifest annotations ("key=value" strings, in that order; NULL or empty for
 * none), e.g. org.opencontainers.image.base.name. */
int layerstore_image_write_annotated(struct mk_store *store, const struct mk_image_config *cfg,
                                     const struct mk_layer_desc *layers, size_t n_layers,
                                     const struct mk_strv *annotations, struct mk_image **ret,
                                     struct mk_error **err);

/* Points ref (its local name) at the manifest, replacing what it named before. Atomic under
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
    uint64_t size; /* sum of the layer sizes */
    char *created;
    char platform[MK_PLATFORM_MAX]; /* "" when the image could not be read */
};
/* Every ref in index.json, in index order; a name holding several platforms gives one
 * entry per platform. */
int layerstore_list(struct mk_store *store, struct mk_image_entry **ret, size_t *ret_n,
                    struct mk_error **err);
void layerstore_list_free(struct mk_image_entry *entries, size_t n);

/* Removes an image by name: untags a reference (the image entry goes when its last tag
 * goes); given an ID, removes all its tags. Blobs and snapshots stay until prune. */
int layerstore_rmi(struct mk_store *store, const char *name, struct mk_error **err);

/* The JSON document `mkimg inspect` prints (Id, Digest, RepoTags, Created, Architecture,
 * Os, Config, RootFS, History, Layers, Size). Caller frees. */
char *layerstore_image_inspect_json(struct mk_store *store, const struct mk_image *img);

/* ---- platforms and names holding several (layerstore/platform.c) ------------------------- */

/* A name holds one image per platform: index.json points the name at the image manifest
 * while it holds one, and at an OCI image index (one manifest per platform, in the order
 * they were added) once it holds several. layerstore_image_get on such a name gives the
 * host's platform. Platforms themselves: common/platform.h. */
/* The platform an image config says (os defaults to linux), normalized. */
void layerstore_config_platform(const struct mk_image_config *cfg, struct mk_platform *ret);

/* One image of a name: what an index entry says of it. */
struct mk_platform_entry {
    struct mk_platform platform;
    char manifest_digest[MK_DIGEST_SIZE];
    uint64_t size; /* of the manifest */
    bool docker;   /* Docker's manifest media type */
};
void layerstore_image_platform_entry(const struct mk_image *img, struct mk_platform_entry *ret);
/* The images name holds, one per platform (one entry for a plain manifest); entries of an
 * index without a platform are left out. MK_ERR_NOT_FOUND when name is not a tag. ret is
 * freed with layerstore_platform_entries_free. */
int layerstore_ref_platforms(struct mk_store *store, const char *name,
                             struct mk_platform_entry **ret, size_t *ret_n, struct mk_error **err);
void layerstore_platform_entries_free(struct mk_platform_entry *e);
/* Writes an OCI image index blob listing e[0..n) in that order (deterministic bytes). */
int layerstore_index_write(struct mk_store *store, const struct mk_platform_entry *e, size_t n,
                           char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                           struct mk_error **err);
/* Points ref at e[0..n) (n >= 1): the manifest itself when n is 1, else an index of them
 * written by layerstore_index_write. Two entries of one platform are MK_ERR_INVALID.
 * ret_digest (may be NULL) receives what ref now names. */
int layerstore_tag_entries(struct mk_store *store, const struct mk_platform_entry *e, size_t n,
                           const char *ref, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err);
/* The same, always an index (of any n, 0 too): a manifest list of `mkimg manifest`. */
int layerstore_tag_index(struct mk_store *store, const struct mk_platform_entry *e, size_t n,
                         const char *ref, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err);
/* Does name (a tag) point at an image index? */
bool layerstore_ref_is_index(struct mk_store *store, const char *name);
/* Adds img to what ref names: it replaces the image of its platform, or is appended (an
 * index stays an index). A ref that names nothing yet becomes a plain tag of img. */
int layerstore_tag_add_platform(struct mk_store *store, const struct mk_image *img, const char *ref,
                                char ret_digest[MK_DIGEST_SIZE], struct mk_error **err);
/* The same for a manifest list: list is always an index, of one image too. */
int layerstore_manifest_add(struct mk_store *store, const struct mk_image *img, const char *list,
                            char ret_digest[MK_DIGEST_SIZE], struct mk_error **err);
/* layerstore_image_get for one platform (NULL: the host's): from an index, its entry for
 * platform; a plain image must be of that platform. MK_ERR_NOT_FOUND naming the platforms
 * there are otherwise. */
int layerstore_image_get_platform(struct mk_store *store, const char *name,
                                  const struct mk_platform *platform, struct mk_image **ret,
                                  struct mk_error **err);

/* ---- layers and snapshots ----------------------------------------------------------------- */

/* Chain id of the first n layers of img (n = 0: ""), into out. */
void layerstore_image_chain_id(const struct mk_image *img, size_t n, char out[MK_DIGEST_SIZE]);

/* Absolute path of the snapshot dir for a chain id (it may not exist). Caller frees. */
char *layerstore_snapshot_path(struct mk_store *store, const char *chain_id);

/* The regular files of chain's snapshot whose entries the commit that made it wrote without
 * extended attributes, as its index records them (ROOT/tar-index/, see
 * layerstore_layer_commit_dir_like). NULL when there is no index, or it does not check out.
 * Caller frees (layerstore_snapshot_files_free accepts NULL). */
struct mk_snapshot_files;
struct mk_snapshot_files *layerstore_snapshot_files_open(struct mk_store *store, const char *chain);
void layerstore_snapshot_files_free(struct mk_snapshot_files *f);
/* Whether path (relative to the snapshot, no leading slash) is recorded as inode dev:ino with
 * no extended attributes. A snapshot's inodes are never written in place, so such a file of
 * the snapshot that is still that inode has none; false when that is not known (f NULL). */
bool layerstore_snapshot_file_plain(const struct mk_snapshot_files *f, const char *path,
                                    uint64_t dev, uint64_t ino);

/* ROOT/flat/<hex>: the builder's merged trees of many bottom snapshots, for images with
 * more layers than one overlay mount takes. Derived data: prune removes them all and the
 * builder makes them again when needed. Returns the path for hex (created: ROOT/flat). */
char *layerstore_flat_path(struct mk_store *store, const char *hex, struct mk_error **err);
bool layerstore_snapshot_exists(struct mk_store *store, const char *chain_id);

/* Makes sure every layer of img has a snapshot (unpacking blobs where missing) and appends
 * the snapshot dirs to ret_dirs, top-most layer first (overlay lowerdir order). */
int layerstore_image_snapshots(struct mk_store *store, const struct mk_image *img,
                               struct mk_strv *ret_dirs, struct mk_error **err);

/* Turns an overlay upperdir (a directory inside layerstore_tmpdir()) into a layer: writes
 * the deterministic tar blob (overlay whiteouts -> .wh. entries), then renames the dir to
 * the snapshot of chain(parent_chain, diff_id) (or removes it when that snapshot exists).
 * lowerdirs (top-most first, as mounted; NULL for none) are what the upperdir was mounted
 * over: entries overlay copied up that equal what they hide there (content, mode, owner,
 * mtime, xattrs) are left out of the tar; the snapshot keeps them (same merged tree).
 * parent_chain is "" for a first layer. epoch (common/epoch.h; MK_EPOCH_NONE for none):
 * no mtime in the tar is later than it. ret_chain may be NULL. */
int layerstore_layer_commit_dir(struct mk_store *store, const char *upperdir,
                                const struct mk_strv *lowerdirs, const char *parent_chain,
                                int64_t epoch, struct mk_layer_desc *ret,
                                char ret_chain[MK_DIGEST_SIZE], struct mk_error **err);
/* The same, for an upperdir that may share files (hard links to the same inodes) with the
 * snapshot of like_chain (NULL: none), e.g. a COPY that linked the files it did not change
 * from its last build's snapshot: the entries of such files are copied from that layer's
 * blob rather than read from the files (when the commit that made it left an index of its
 * entries, ROOT/tar-index/; else, or when anything does not check out, all is read). The
 * blob is byte for byte what layerstore_layer_commit_dir writes. */
int layerstore_layer_commit_dir_like(struct mk_store *store, const char *upperdir,
                                     const struct mk_strv *lowerdirs, const char *parent_chain,
                                     int64_t epoch, const char *like_chain,
                                     struct mk_layer_desc *ret, char ret_chain[MK_DIGEST_SIZE],
                                     struct mk_error **err);

/* What layerstore_layer_commit_blob does with the tree. A snapshot is derived data (every
 * reader unpacks a missing one from its blob: layerstore_image_snapshots,
 * layerstore_layer_unpack), so the snapshot of a big layer that nothing mounts in this build
 * can be left out, and its data, written and deleted before writeback, never reaches the
 * disk (ext4 and xfs allocate late). */
enum mk_commit_mode {
    MK_COMMIT_SNAPSHOT, /* it becomes the snapshot (layerstore_layer_commit_dir_like) */
    MK_COMMIT_DEFER,    /* it stays where it is, for layerstore_snapshot_settle */
    /* As DEFER, but when it holds a file of 64 MiB or more with no other name (and
     * like_chain is NULL), such files are emptied as the blob is written (their pages are
     * dropped, not written back) and the tree is removed: no snapshot. For a tree that
     * nothing will mount (else it is unpacked again from the blob). */
    MK_COMMIT_CONSUME,
};
/* layerstore_layer_commit_dir_like, where mode says what becomes of upperdir. DEFER and
 * CONSUME apply only in a window of deferred durability (layerstore_sync_defer) and when
 * the snapshot of the new chain does not exist yet; else the tree becomes the snapshot as
 * with SNAPSHOT. *ret_deferred (may be NULL with SNAPSHOT) is true when upperdir was left
 * for the caller, who hands it to layerstore_snapshot_settle before the window's syncfs. */
int layerstore_layer_commit_blob(struct mk_store *store, const char *upperdir,
                                 const struct mk_strv *lowerdirs, const char *parent_chain,
                                 int64_t epoch, const char *like_chain, enum mk_commit_mode mode,
                                 struct mk_layer_desc *ret, char ret_chain[MK_DIGEST_SIZE],
                                 bool *ret_deferred, struct mk_error **err);
/* A deferred commit's upperdir becomes the snapshot of chain (keep; removed when another
 * process installed it first), or is removed with its tar index (the snapshot is then
 * unpacked from the blob by whoever needs it). Either way upperdir is gone on success. */
int layerstore_snapshot_settle(struct mk_store *store, const char *upperdir, const char *chain,
                               bool keep, struct mk_error **err);

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
/* The same for platform (NULL: the host's, replacing what ref named); with a platform it is
 * added to ref as layerstore_tag_add_platform does. With an epoch (not MK_EPOCH_NONE) that
 * is the created time and no mtime of a directory's layer is later. */
int layerstore_import_platform(struct mk_store *store, const char *path, const char *ref,
                               const struct mk_platform *platform, int64_t epoch,
                               struct mk_image **ret, struct mk_error **err);

/* ---- build cache (layerstore/cache.c, cache-records.c, cache-mounts.c) ---------------------
 *
 * Every cache lives in a directory of its own kind, one record per file named by its key's
 * hex, written atomically, in a versioned format only layerstore reads and writes:
 *   ROOT/cache/steps/       struct mk_step_record: what a build step produced
 *   ROOT/cache/explain/     struct mk_explain_record: the named inputs of a step position
 *   ROOT/cache/images/      an image the builder wrote: its reuse key -> manifest digest
 *   ROOT/cache/context/     struct mk_context_file tables: a build context's file digests
 *   ROOT/cache/compressed/  a layer's compressed copy (layerstore's own, see compress.c)
 *   ROOT/cache/registry/    which repository of a registry holds a blob (mount hints)
 *   ROOT/cache/mounts/      RUN --mount=type=cache directories (layerstore_cache_mount_lock)
 * Keys are digests the caller derives from the inputs ("sha256:<hex>"). Step, explain and
 * image records hold only content digests, never paths, inode numbers or times, so they mean
 * the same on another machine (a remote cache exports and imports them as they are); context
 * tables and cache mounts are this machine's. A record that is missing, unreadable or of
 * another format version reads as MK_ERR_NOT_FOUND: for a cache, a miss. Reading a record
 * marks it used (prune --keep-storage drops the least recently used first). What prune and
 * fsck need of a record (the blobs and snapshots it names) they read through the same types.
 * Files directly under ROOT/cache/ and the tree ROOT/mounts/ are an earlier mkimg's untyped
 * cache: nothing reads them, prune removes them, fsck leaves them alone. */

/* A build step's result: the layer it added (or none) and its history entry. */
struct mk_step_record {
    char key[MK_DIGEST_SIZE];
    bool empty;                    /* no layer: the step changed only metadata */
    struct mk_layer_desc layer;    /* unless empty: blob digest, diff ID, media type, size */
    char chain_id[MK_DIGEST_SIZE]; /* unless empty: chain ID of the layers up to this one */
    struct mk_history history;     /* created is always NULL: a record carries no time */
    struct mk_strv config;         /* changes to the image config, "Field=value" (none yet for
                                    * the steps the builder caches: RUN, COPY, ADD, WORKDIR) */
};
/* Fills ret (released with layerstore_step_record_release). */
int layerstore_step_record_get(struct mk_store *store, const char *key, struct mk_step_record *ret,
                               struct mk_error **err);
int layerstore_step_record_put(struct mk_store *store, const struct mk_step_record *rec,
                               struct mk_error **err);
void layerstore_step_record_release(struct mk_step_record *rec);

/* --explain-cache: the inputs of the step last built at one position, each a name ("env
 * VERSION", "file src/a.c") and the digest of its value. */
struct mk_explain_input {
    char *name;
    char digest[MK_DIGEST_SIZE];
};
struct mk_explain_record {
    struct mk_explain_input *inputs;
    size_t n;
};
int layerstore_explain_get(struct mk_store *store, const char *key, struct mk_explain_record *ret,
                           struct mk_error **err);
int layerstore_explain_put(struct mk_store *store, const char *key,
                           const struct mk_explain_record *rec, struct mk_error **err);
/* Appends an input (name copied). */
void layerstore_explain_add(struct mk_explain_record *rec, const char *name, const char *digest);
void layerstore_explain_release(struct mk_explain_record *rec);

/* The image manifest the builder wrote for a reuse key (its config but for times, its
 * layers and annotations), so a rebuild with nothing changed gives the same image ID. */
int layerstore_image_record_get(struct mk_store *store, const char *key,
                                char ret_manifest[MK_DIGEST_SIZE], struct mk_error **err);
int layerstore_image_record_put(struct mk_store *store, const char *key, const char *manifest,
                                struct mk_error **err);

/* One file of a build context as last hashed: a file whose size, mtime and inode are the
 * same is not read again. Paths with a tab or a newline are not kept. */
struct mk_context_file {
    char *path;
    uint64_t size, mtime_ns, ino;
    char digest[MK_DIGEST_SIZE];
};
/* ret is an array of *ret_n, freed with layerstore_context_table_free. At most 64 MiB of
 * table is kept: put stores what fits. */
int layerstore_context_table_get(struct mk_store *store, const char *key,
                                 struct mk_context_file **ret, size_t *ret_n,
                                 struct mk_error **err);
int layerstore_context_table_put(struct mk_store *store, const char *key,
                                 const struct mk_context_file *files, size_t n,
                                 struct mk_error **err);
void layerstore_context_table_free(struct mk_context_file *files, size_t n);
/* The same table for a reader that parses it as it goes: *ret_data (caller frees) holds it
 * NUL-terminated, its lines from *ret_body on, each ended by '\n' (a last line without one
 * is cut short: no line). MK_ERR_NOT_FOUND when there is none or it is of another format. */
int layerstore_context_table_read(struct mk_store *store, const char *key, char **ret_data,
                                  char **ret_body, struct mk_error **err);
/* Parses one line of len bytes (without its '\n') in place: ret->path points into line,
 * NUL-terminated there. false for a line that does not parse (its file is hashed again). */
bool layerstore_context_line_parse(char *line, size_t len, struct mk_context_file *ret);

/* A blob seen in (pushed to or pulled from) repo of the registry host: a later push of it to
 * another repository there may mount it from repo. A hint, kept until prune --all. */
int layerstore_blob_source_put(struct mk_store *store, const char *host, const char *repo,
                               const char *digest, struct mk_error **err);
/* The repository last recorded for digest at host, or NULL. Caller frees. */
char *layerstore_blob_source_get(struct mk_store *store, const char *host, const char *digest);

/* Lazy images (layerstore/cache-lazy.c, docs/remote-cache.md): an image built from a
 * registry build cache and pushed, whose layers stay in that registry until something needs
 * their bytes. A lazy layer names the registry cache (source, "HOST/REPO[:TAG]") and its blob
 * there (digest, media type, size: compressed or not), the diff ID and chain it gives, and the
 * chain it goes on. A lazy image is named in ROOT/lazy/refs/, never in index.json, until its
 * layers are fetched (builder_lazy_complete). */
struct mk_lazy_layer {
    char digest[MK_DIGEST_SIZE];
    char diff_id[MK_DIGEST_SIZE];
    char chain_id[MK_DIGEST_SIZE];
    char parent[MK_DIGEST_SIZE]; /* "" for a first layer */
    char *media_type;
    uint64_t size;
    char *source;
};
void layerstore_lazy_layer_release(struct mk_lazy_layer *l);
int layerstore_lazy_layer_put(struct mk_store *store, const struct mk_lazy_layer *l,
                              struct mk_error **err);
/* The record of the layer with this diff ID; MK_ERR_NOT_FOUND without one. */
int layerstore_lazy_layer_get(struct mk_store *store, const char *diff_id,
                              struct mk_lazy_layer *ret, struct mk_error **err);
void layerstore_lazy_layer_drop(struct mk_store *store, const char *diff_id);
/* name -> manifest digest in ROOT/lazy/refs/ (replacing what name had there). */
int layerstore_lazy_tag(struct mk_store *store, const char *name, const char *manifest,
                        struct mk_error **err);
/* 0 and the manifest digest when name is a lazy image, else -1. */
int layerstore_lazy_ref_get(struct mk_store *store, const char *name, char ret[MK_DIGEST_SIZE]);
void layerstore_lazy_untag(struct mk_store *store, const char *name);
/* Appends the manifest digest of every lazy image to ret. */
int layerstore_lazy_manifests(struct mk_store *store, struct mk_strv *ret, struct mk_error **err);

/* RUN --mount=type=cache directories: ROOT/cache/mounts/<id hex>[-N]/ holds a lock file and
 * data/, the directory the caller mounts (and creates, with the mode and owner it wants).
 * A cache mount is a store object: df counts it, prune --keep-storage drops the least
 * recently used, prune --all drops them all, fsck checks them. */
enum mk_cache_sharing {
    MK_CACHE_SHARED,  /* concurrent users share data/ (a shared lock) */
    MK_CACHE_LOCKED,  /* one user at a time: waits for an exclusive lock */
    MK_CACHE_PRIVATE, /* the first of 17 instances not in use; with all in use, waits for the
                       * last one */
};
/* Locks the cache mount named by id (a digest the caller derives from the mount's id and
 * source) as sharing says, marks it used and returns the lock's fd: the mount is the
 * caller's until it closes the fd. *ret_dir is the data/ path (caller frees; it may not
 * exist yet). Fails with MK_ERR_INTERRUPTED when a wait is interrupted. */
int layerstore_cache_mount_lock(struct mk_store *store, const char *id,
                                enum mk_cache_sharing sharing, char **ret_dir,
                                struct mk_error **err);

/* A layer named by diff_id whose blob is still there: fills ret (digest == diff_id, size of
 * the blob). Its snapshot (chain_id) may be missing: snapshots are derived data, unpacked
 * from the blob (layerstore_layer_unpack) before anything mounts them. */
int layerstore_layer_lookup(struct mk_store *store, const char *diff_id, const char *chain_id,
                            struct mk_layer_desc *ret, struct mk_error **err);

/* ---- compression (layerstore/compress.c) --------------------------------------------------- */

enum mk_compression { MK_COMPRESS_NONE = 0, MK_COMPRESS_GZIP, MK_COMPRESS_ZSTD };

/* The compressed form of each layer (media type +gzip / +zstd, level 0 = the default), made
 * in parallel on all cores when missing and cached in the store (a compressed copy is an
 * ordinary blob; the mapping diff_id -> compressed blob is remembered), so a second push or
 * save costs nothing. ret is an array of n the caller releases with
 * layerstore_layer_descs_free. MK_COMPRESS_NONE returns copies of the uncompressed descs. */
int layerstore_layers_compress(struct mk_store *store, const struct mk_layer_desc *layers, size_t n,
                               enum mk_compression c, int level, struct mk_layer_desc **ret,
                               struct mk_error **err);
void layerstore_layer_descs_free(struct mk_layer_desc *descs, size_t n);

/* One layer's compressed copy made on a thread of its own, readable while it grows, so an
 * upload can follow the compressor instead of waiting for it (registry push). Same bytes,
 * same cache as layerstore_layers_compress. When the copy is there already (cached, or src
 * is compressed that way), the stream is complete from the start. With a limit (not 0) the
 * compressor stops, off the CPU, once it has written that many bytes (at the first write
 * that reaches it) until _allow moves the limit on: a consumer slower than the compression
 * (an upload to a registry on the same cores) then gets the CPU that running ahead would
 * take from it. finish and _free lift the limit. */
struct mk_compress_stream;
int layerstore_compress_stream_start(struct mk_store *store, const struct mk_layer_desc *src,
                                     enum mk_compression c, uint64_t limit,
                                     struct mk_compress_stream **ret, struct mk_error **err);
/* The compressed bytes written so far, for pread (owned by the stream). */
int layerstore_compress_stream_fd(const struct mk_compress_stream *s);
/* Waits until at least want bytes are written or the compressor stopped (*ret_ended);
 * returns the bytes written. */
uint64_t layerstore_compress_stream_wait(struct mk_compress_stream *s, uint64_t want,
                                         bool *ret_ended);
/* The compressor may go on to limit bytes (UINT64_MAX: to the end, for good). */
void layerstore_compress_stream_allow(struct mk_compress_stream *s, uint64_t limit);
/* Waits for the compressor to end; then the digest and size of the whole copy, or -1 when
 * it failed (finish says why). The copy may not be stored yet: finish waits for that. */
int layerstore_compress_stream_digest(struct mk_compress_stream *s, char ret_digest[MK_DIGEST_SIZE],
                                      uint64_t *ret_size);
/* Stops the compressor when abort, else waits for it; on success stores the copy (blob and
 * cache entry) and fills ret (media type owned by ret). The fd stays readable until _free. */
int layerstore_compress_stream_finish(struct mk_compress_stream *s, bool abort,
                                      struct mk_layer_desc *ret, struct mk_error **err);
/* Aborts a stream not finished yet, removes its temp file. Accepts NULL. */
void layerstore_compress_stream_free(struct mk_compress_stream *s);
/* "gzip" / "zstd" / "none" -> enum; -1 for anything else. */
int layerstore_compression_parse(const char *s);

/* ---- pulled blobs and layers (layerstore/pull.c) ------------------------------------------ */

struct mk_blob_writer;

/* A blob arriving in pieces (a download): written to a temp file in the store and hashed
 * on the way, stored by _commit only when its digest is expected and its size
 * expected_size. Writing past expected_size fails (MK_ERR_INVALID). */
int layerstore_blob_writer_new(struct mk_store *store, const char *expected, uint64_t expected_size,
                               struct mk_blob_writer **ret, struct mk_error **err);
int layerstore_blob_writer_write(struct mk_blob_writer *w, const void *data, size_t n,
                                 struct mk_error **err);
/* Bytes written so far (where a resumed download continues). */
uint64_t layerstore_blob_writer_size(const struct mk_blob_writer *w);
/* Starts over, empty (a resumed download that the server sent from its start again). */
int layerstore_blob_writer_reset(struct mk_blob_writer *w, struct mk_error **err);
/* Verifies size and digest (MK_ERR_DIGEST, nothing stored) and stores the blob. The writer
 * is spent either way; free it after. */
int layerstore_blob_writer_commit(struct mk_blob_writer *w, struct mk_error **err);
/* Discards an uncommitted temp file. Accepts NULL. */
void layerstore_blob_writer_free(struct mk_blob_writer *w);

/* Unpacks the stored layer blob (plain or compressed, detected from content) into the
 * snapshot of chain(parent_chain, diff_id) unless that exists, failing with MK_ERR_DIGEST
 * when the blob does not unpack to diff_id. parent_chain is "" for a first layer;
 * ret_chain may be NULL. */
int layerstore_layer_unpack(struct mk_store *store, const char *blob, const char *diff_id,
                            const char *parent_chain, char ret_chain[MK_DIGEST_SIZE],
                            struct mk_error **err);

/* A layer unpacked while it downloads, so the blob is not read a second time: a thread
 * decompresses, hashes and unpacks what a blob writer it is tee'd to (_tee) receives, into
 * a temp dir. _finish installs the snapshot of chain(parent_chain, diff_id) when the blob
 * was stored whole (its writer committed) and unpacked to diff_id; when the stream broke
 * (the download started over) or failed, it unpacks the stored blob as
 * layerstore_layer_unpack does, whose error is the one to give. *ret is NULL when the
 * snapshot exists already (unpack with layerstore_layer_unpack then). */
struct mk_layer_stream;
int layerstore_layer_stream_new(struct mk_store *store, const char *blob, const char *diff_id,
                                const char *parent_chain, struct mk_layer_stream **ret,
                                struct mk_error **err);
/* From now on w's bytes go to s too. A reset of w breaks s. */
void layerstore_blob_writer_tee(struct mk_blob_writer *w, struct mk_layer_stream *s);
/* No more bytes reach s: what it unpacked is not used (a blob fetched whole again). */
void layerstore_layer_stream_break(struct mk_layer_stream *s);
int layerstore_layer_stream_finish(struct mk_layer_stream *s, char ret_chain[MK_DIGEST_SIZE],
                                   struct mk_error **err);
/* Stops the thread, removes the temp dir. Accepts NULL. */
void layerstore_layer_stream_free(struct mk_layer_stream *s);

/* ---- save and load (layerstore/archive.c) -------------------------------------------------- */

enum mk_archive_format { MK_ARCHIVE_OCI = 0, MK_ARCHIVE_DOCKER, MK_ARCHIVE_OCI_DIR };

/* "oci-archive" / "docker-archive" / "oci-dir" -> enum; -1 for anything else. */
int layerstore_archive_format_parse(const char *s);
/* Writes the images names[0..n) (as for layerstore_image_get) with their layers compressed
 * as c/level (compressed copies are cached like for a push): a tar stream to out_fd, or for
 * MK_ARCHIVE_OCI_DIR an OCI layout in the directory out_dir (created; index.json written
 * last, replacing one that is there). Each image is recorded under the name it was asked
 * by, under all its tags when asked by ID, and without a name when asked by its manifest
 * digest. Nothing is synced to disk (an export, as `docker save`; docs/save.md): each file
 * of out_dir is renamed into place whole, index.json last. On failure the output is
 * incomplete: callers write to a temp file and rename. */
int layerstore_save(struct mk_store *store, const char *const *names, size_t n,
                    enum mk_archive_format f, enum mk_compression c, int level, int out_fd,
                    const char *out_dir, struct mk_error **err);
/* Reads an OCI archive or a Docker archive (tar, optionally compressed) from fd, imports
 * its images (layers verified against the config's diff_ids, stored uncompressed) and tags
 * them; appends to ret_loaded each tag made, or the image ID of an image without a name. */
int layerstore_load(struct mk_store *store, int fd, struct mk_strv *ret_loaded,
                    struct mk_error **err);

/* ---- prune, df, fsck (layerstore/gc.c, layerstore/fsck.c) ---------------------------------- */

struct mk_prune_report {
    uint64_t blobs, snapshots, cache_entries, cache_mounts;
    uint64_t bytes;     /* allocated bytes freed */
    uint64_t remaining; /* with keep_storage_set: allocated bytes of blobs, snapshots, cache
                         * records and cache mounts left in the store */
};

struct mk_prune_opts {
    /* Without all, what may go is what no image in index.json needs: blobs, snapshots,
     * cache records naming a layer or manifest that is gone or unreferenced, compressed
     * copies of layers no image has, records that are not whole, an earlier mkimg's
     * untyped cache, stale temp files. With all, every cache record, compressed copy and
     * cache mount too. */
    bool all;
    /* Stop once blobs, snapshots, cache records and cache mounts take at most keep_storage
     * bytes: of what may go and the cache mounts, the least recently used goes first.
     * Without it, all that may go goes (and the cache mounts stay). */
    bool keep_storage_set;
    uint64_t keep_storage;
};
/* Removes what may go (see mk_prune_opts), least recently used first. Waits until no other
 * mkimg process has the store open (the gc lock), so nothing written but not yet tagged is
 * lost; what an image in index.json needs is never removed. Fails without deleting anything
 * when a referenced manifest or config cannot be read. */
int layerstore_prune(struct mk_store *store, const struct mk_prune_opts *opts,
                     struct mk_prune_report *ret, struct mk_error **err);

struct mk_df_report {
    uint64_t images;                    /* index.json entries' images */
    uint64_t blobs, blob_bytes;         /* blobs the images need */
    uint64_t snapshots, snapshot_bytes; /* all snapshots */
    uint64_t unused_snapshots, unused_snapshot_bytes;
    uint64_t cache_entries, cache_bytes; /* cache records */
    uint64_t cache_mounts, cache_mount_bytes;
    uint64_t temp, temp_bytes;                /* temp files and dirs of running mkimg processes */
    uint64_t compressed, compressed_bytes;    /* cached compressed copies of image layers */
    uint64_t unused_blobs, unused_blob_bytes; /* what prune would remove */
};
int layerstore_df(struct mk_store *store, struct mk_df_report *ret, struct mk_error **err);

/* Verifies the store: every blob's content against its name, every index.json entry's
 * manifest, config and layer blobs, the snapshot of every referenced layer chain (a
 * directory, or missing: derived data, unpacked when needed), every cache record (whole, of
 * its kind and key, naming blobs that are there) and cache mount (a directory holding its
 * lock file and data directory);
 * with deep, also each such snapshot's content against its layer (re-tarred as the layer
 * writer does and hashed; see ls_snapshot_verify). Each problem is one line appended to
 * ret_problems ("blob sha256:...: content is sha256:..."). With repair, broken blobs,
 * images, cache records and cache mounts are dropped (images by removing their index.json
 * entries), and (deep) bad snapshots unpacked again from their blobs;
 * ret_repaired counts the fixes. Fails only when the store cannot be read at all. */
int layerstore_fsck(struct mk_store *store, bool repair, bool deep, struct mk_strv *ret_problems,
                    size_t *ret_repaired, struct mk_error **err);

/* ---- ADD's archive extraction (layerstore/extract.c) --------------------------------------- */

struct layerstore_extract_opts {
    bool chown; /* every entry gets uid:gid instead of the archive's owners */
    uid_t uid;
    gid_t gid;
    /* Called once the input is known to be an archive, before any entry is written, to
     * create dest (NULL: its missing components are made 0755 root-owned as entries need
     * them). */
    int (*make_dest)(int rootfd, const char *dest, void *arg, struct mk_error **err);
    void *make_dest_arg;
};

/* Unpacks the tar archive read from in_fd (plain, gzip, bzip2, xz or zstd, detected from
 * content) into the directory dest of the root rootfd, as ADD does with a local archive:
 * existing directories are kept (the archive's metadata applied to them), other existing
 * entries replaced, extended attributes (SCHILY.xattr) set where the kernel allows them,
 * ".." refused, and every path (symlinks the archive creates included) resolved inside
 * rootfd. When in_fd does not start with a tar archive nothing is written and
 * *ret_extracted is false (the caller copies the file instead; in_fd's offset is then
 * unspecified). opts may be NULL. Capped at 1,000,000 entries and 64 GiB of data. */
int layerstore_extract(int in_fd, int rootfd, const char *dest,
                       const struct layerstore_extract_opts *opts, bool *ret_extracted,
                       struct mk_error **err);

/* ---- exporting a root file system (layerstore/tar-write.c) --------------------------------- */

/* Writes the tree at dirfd (a mounted image root: no overlay whiteouts in it) to out_fd as a
 * deterministic tar, owners and modes as they are, no mtime later than epoch (unless
 * MK_EPOCH_NONE). For `build --output type=tar`. */
int layerstore_tar_tree(int dirfd, int out_fd, int64_t epoch, struct mk_error **err);

/* ---- remote build cache artifact (layerstore/cache-export.c, docs/remote-cache.md) -------
 *
 * A cache is an OCI image manifest of artifactType MK_MEDIA_CACHE_ARTIFACT whose config blob
 * ({"version":1,"records":[...]}) holds step records in the form ROOT/cache/steps/ holds them,
 * each with its "key", sorted by key; its layers are the uncompressed layer blobs they name.
 * type=local keeps it in an OCI image layout directory (index.json written last). */
#define MK_MEDIA_CACHE_ARTIFACT "application/vnd.mkimg.cache.v1"
#define MK_MEDIA_CACHE_CONFIG "application/vnd.mkimg.cache.config.v1+json"
/* --cache-to type=inline: the image manifest's annotation holding the config blob's JSON. */
#define MK_ANNOTATION_CACHE_INLINE "dev.mkimg.cache.v1"
/* A cache manifest's layer descriptor: the diff ID of the (maybe compressed) blob. */
#define MK_ANNOTATION_CACHE_DIFF_ID "dev.mkimg.cache.diff-id"

/* The config blob for recs (a key listed twice is kept once). Caller frees; NULL
 * (MK_ERR_INVALID) for a record with a layer but no valid digests. */
char *layerstore_cache_config_json(const struct mk_step_record *recs, size_t n,
                                   struct mk_error **err);
/* Parses a config blob: *ret (freed with layerstore_step_records_free) and *ret_n. */
int layerstore_cache_config_parse(const char *data, size_t len, struct mk_step_record **ret,
                                  size_t *ret_n, struct mk_error **err);
void layerstore_step_records_free(struct mk_step_record *recs, size_t n);
/* Writes the cache of recs (their layers copied from the store) into the OCI layout dir,
 * created when missing; what dir held before stays valid until index.json is replaced. */
int layerstore_cache_layout_write(struct mk_store *store, const char *dir,
                                  const struct mk_step_record *recs, size_t n,
                                  struct mk_error **err);
/* The cache manifest naming the config blob (digest, size) and the distinct layers of recs,
 * in record order. blobs (NULL: the records' own layers) holds, for each record, the blob
 * that carries its layer (a compressed copy: --cache-to compression=); every layer
 * descriptor names its diff ID in the annotation MK_ANNOTATION_CACHE_DIFF_ID. Caller frees. */
char *layerstore_cache_manifest_json(const struct mk_step_record *recs,
                                     const struct mk_layer_desc *blobs, size_t n,
                                     const char *config, size_t config_len);
/* Reads the records of the cache in dir: index.json, manifest and config (digests checked),
 * and checks that every layer they name is there with its size. Layers are not read. */
int layerstore_cache_layout_read(const char *dir, struct mk_step_record **ret, size_t *ret_n,
                                 struct mk_error **err);
/* Imports rec's layer from dir on top of parent_chain (blob and snapshot; nothing when both
 * are in the store already): MK_ERR_DIGEST when its diff ID or chain ID is not rec's. */
int layerstore_cache_layout_fetch(struct mk_store *store, const char *dir,
                                  const struct mk_step_record *rec, const char *parent_chain,
                                  struct mk_error **err);
/* --cache-to cache-mounts=true: the tree of dir (a cache mount's data/) as a plain tar blob
 * in the store (ret: digest == diff_id, size; ret->media_type is the caller's)
 * (layerstore/import.c). */
int layerstore_dir_to_blob(struct mk_store *store, const char *dir, struct mk_layer_desc *ret,
                           struct mk_error **err);
/* Unpacks the plain tar read from fd into dir, which must not exist: it appears (by rename)
 * only when complete and when the tar's sha256 is digest (MK_ERR_DIGEST otherwise). */
int layerstore_tar_unpack_new_dir(struct mk_store *store, int fd, const char *digest,
                                  const char *dir, struct mk_error **err);
/* The same from a layer tar open as fd (e.g. a blob a registry cache gave). */
int layerstore_cache_layer_import(struct mk_store *store, int fd, const struct mk_step_record *rec,
                                  const char *parent_chain, struct mk_error **err);

#endif
