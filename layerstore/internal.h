/* layerstore/internal.h - declarations shared by the layerstore's files. Not a public API. */
#ifndef MK_LAYERSTORE_INTERNAL_H
#define MK_LAYERSTORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "layerstore/layerstore.h"

/* ---- decompression of untrusted input (layerstore/filters.c) ------------------------------- */

struct archive;
enum {
    LS_FILTER_GZIP = 1 << 0,
    LS_FILTER_ZSTD = 1 << 1,
    LS_FILTER_XZ = 1 << 2,
    LS_FILTER_LZMA = 1 << 3,
    LS_FILTER_BZIP2 = 1 << 4,
    LS_FILTER_LZ4 = 1 << 5,
};
/* What `mkimg load` reads besides plain tar. */
#define LS_FILTERS_LOAD (LS_FILTER_GZIP | LS_FILTER_ZSTD)
/* What a layer or an ADD archive may be compressed with (docker's and buildah's set). */
#define LS_FILTERS_LAYER                                                                           \
    (LS_FILTER_GZIP | LS_FILTER_ZSTD | LS_FILTER_XZ | LS_FILTER_LZMA | LS_FILTER_BZIP2 |           \
     LS_FILTER_LZ4)
/* Enables the filters in which (LS_FILTER_* bits) on a, each through the library libarchive
 * is linked with: one that libarchive would run as an external program is an error. */
int ls_read_filters(struct archive *a, unsigned which, struct mk_error **err);
/* The name of the compression whose magic number starts head ("lrzip", "gzip", ...), or
 * NULL; for error messages. */
const char *ls_compression_name(const void *head, size_t len);

/* ---- layer tars (layerstore/tar-write.c, layerstore/tar-apply.c) ---------------------------- */

/* Writes the layer tar of the tree at dirfd to out_fd: deterministic PAX (entries sorted by
 * path bytes, parents before children, mtime kept, no atime/ctime, uid/gid numeric with
 * empty uname/gname, modes incl. setuid/setgid/sticky, xattrs incl. security.capability
 * but never user.overlay.* / trusted.overlay.*, hardlinks within the tree as type 1,
 * symlinks, fifos, char/block devices). Overlay whiteouts (0/0 char devices) become empty
 * regular files ".wh.NAME"; a directory with user.overlay.opaque=y or
 * trusted.overlay.opaque=y gets an entry "DIR/.wh..wh..opq" right after the directory.
 * Hashes while writing: ret_diff_id = sha256 of the bytes written, ret_size their count.
 * With an epoch (not MK_EPOCH_NONE, common/epoch.h), no entry's mtime is later than it
 * (reproducible builds). */
int ls_tar_write_dir(int dirfd, int out_fd, int64_t epoch, char ret_diff_id[MK_DIGEST_SIZE],
                     uint64_t *ret_size, struct mk_error **err);

/* The overlay lowerdirs under one directory of an upperdir being written (tar-diff.c): an
 * open directory fd per layer where it is visible, top-most first. */
struct ls_lowers {
    int *fds;
    size_t n;
};

/* Like ls_tar_write_dir, for the upperdir of a step whose lowerdirs are lowers (top-most
 * first; NULL or empty: none): entries that overlay copied up but that equal the entry they
 * hide are left out (see tar-diff.c); a directory is still written when something under it
 * is. */
int ls_tar_write_diff(int dirfd, const struct ls_lowers *lowers, int out_fd, int64_t epoch,
                      char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err);

/* ---- where a layer's file entries sit in its blob (tar-index.c) ---------------------------- */

/* One regular file's entry, written with data and without xattrs: the inode it was read
 * from, what its header encodes (mtime as written) and its byte range [off, off+len) in the
 * blob (pax header, header, data and padding). */
struct ls_tar_index_rec {
    const char *path; /* the entry's name, not NUL-terminated */
    size_t path_len;
    uint64_t dev, ino, size, off, len;
    int64_t mtime;
    uint32_t mode, uid, gid;
};
struct ls_tar_index;
/* An empty index to add records to while a layer is written. */
struct ls_tar_index *ls_tar_index_new(void);
void ls_tar_index_free(struct ls_tar_index *x);
void ls_tar_index_add(struct ls_tar_index *x, const char *path, const struct stat *st,
                      int64_t mtime, uint64_t off, uint64_t len);
/* Stores x (its records sorted on the way) as the index of the snapshot of chain, whose
 * blob is diff_id (blob_size bytes) and whose directory is root. Not synced. */
int ls_tar_index_save(struct mk_store *store, struct ls_tar_index *x, const char *chain,
                      const char *diff_id, uint64_t blob_size, const struct stat *root,
                      struct mk_error **err);
void ls_tar_index_remove(struct mk_store *store, const char *chain);
/* The index of the snapshot of chain (at snapshot_dir) with its blob open, or NULL when
 * there is none or it fails a check (see tar-index.c): never an error, only no index. */
struct ls_tar_index *ls_tar_index_load(struct mk_store *store, const char *chain,
                                       const char *snapshot_dir);
int ls_tar_index_blob_fd(const struct ls_tar_index *x);
/* Its records (0 for NULL). */
size_t ls_tar_index_count(const struct ls_tar_index *x);
/* The record of path, or NULL. */
const struct ls_tar_index_rec *ls_tar_index_find(const struct ls_tar_index *x, const char *path);

/* A commit's use of indexes: prev (may be NULL), the index of an earlier layer whose
 * entries are copied for files that are its very inodes unchanged; out (may be NULL)
 * collects the records of the layer being written. When an entry copied from prev's blob
 * turns out not to be the entry the record describes, the write fails with stale set: the
 * caller writes the layer again without prev. reused counts the entries copied. */
struct ls_tar_reuse {
    const struct ls_tar_index *prev;
    struct ls_tar_index *out;
    bool stale;
    uint64_t reused, reused_bytes;
    /* The tree is a step's upperdir on its way to a snapshot that is to be synced: its many
     * files' write-back may start while the tar is written (tar-write.c, EARLY_SYNC_FILES). */
    bool sync_early;
    /* The tree is thrown away after this write (never with prev: a stale write is done
     * again from the files): a file of LS_CONSUME_MIN bytes or more with no other name is
     * emptied (holes punched) as it is read; consumed says one was. Not with sync_early:
     * what is thrown away need not reach the disk. */
    bool consume, consumed;
    /* keep_sync: the caller writes in a window of deferred durability, whose flush waits for
     * the early syncfs (ls_sync_keep): the write hands it over in early (when it started one)
     * instead of waiting for it, so that the next step runs while the tree is written back. */
    bool keep_sync;
    struct ls_early_sync *early;
};
#define LS_CONSUME_MIN (64ull << 20)
/* An early syncfs handed over: waited for (in its own process; in a forked one only
 * forgotten) and freed; -1 with err when it failed. */
struct ls_early_sync;
int ls_early_sync_join(struct ls_early_sync *s, struct mk_error **err);
/* The window's flush (ls_sync_flush, layerstore_free) waits for s first. */
void ls_sync_keep(struct mk_store *store, struct ls_early_sync *s);
/* ls_tar_write_diff with reuse (NULL: none). */
int ls_tar_write_reuse(int dirfd, const struct ls_lowers *lowers, int out_fd, int64_t epoch,
                       struct ls_tar_reuse *reuse, char ret_diff_id[MK_DIGEST_SIZE],
                       uint64_t *ret_size, struct mk_error **err);
/* Whether a lower of l has an entry name (not a whiteout). */
bool ls_lowers_has(const struct ls_lowers *l, const char *name);

/* The digest ls_tar_write_diff would give, writing nothing; no_mtimes writes every mtime
 * after 1970 as 0, else they are written as they are (no epoch): for comparing two trees
 * whose mtimes are known to differ (fsck --deep). */
int ls_tar_digest_diff(int dirfd, const struct ls_lowers *lowers, bool no_mtimes,
                       char ret_digest[MK_DIGEST_SIZE], struct mk_error **err);

/* An entry's extended attributes, sorted by name, overlay's own left out (opaque tells
 * whether overlay marks the directory opaque). */
struct ls_xattrs {
    struct mk_strv names;
    char **values;
    size_t *lens;
    size_t n_values;
    bool opaque;
};
int ls_xattrs_read(int dfd, const char *name, const char *path, struct ls_xattrs *ret,
                   struct mk_error **err);
/* The same for a file open for reading (a regular file whose data is read next: one open). */
int ls_xattrs_read_fd(int fd, const char *path, struct ls_xattrs *ret, struct mk_error **err);
void ls_xattrs_release(struct ls_xattrs *x);

/* The lower set of the directory name inside the one l describes (none when the upper
 * directory is opaque). ret is released with ls_lowers_release. */
void ls_lowers_child(const struct ls_lowers *l, const char *name, bool upper_opaque,
                     struct ls_lowers *ret);
void ls_lowers_release(struct ls_lowers *l);
#define LS_DIFF_BUF_SIZE (1u << 18)
/* Whether the upper entry name of dfd (stat st, xattrs as read) equals the entry it hides in
 * l. buf is scratch space of LS_DIFF_BUF_SIZE bytes. Fails only on a read error of the
 * upper file. */
int ls_lowers_unchanged(const struct ls_lowers *l, int dfd, const char *name, const char *path,
                        const struct stat *st, const struct ls_xattrs *xattrs, char *buf,
                        bool *ret_same, struct mk_error **err);

struct ls_apply_opts {
    bool rootless;        /* not real root: skip device nodes (except whiteouts), drop
                           * setuid/setgid bits */
    uint64_t max_entries; /* 0 = default cap (1,000,000) */
    uint64_t max_bytes;   /* 0 = default cap (64 GiB of uncompressed data) */
};

/* Unpacks an untrusted layer tar (compression detected from content) from in_fd into the
 * empty directory dirfd, in overlay lowerdir format: ".wh.NAME" becomes a 0/0 char device
 * NAME, ".wh..wh..opq" sets user.overlay.opaque=y on its directory. Nothing is ever written
 * outside dirfd (no "..", absolute paths, symlinked parents or hardlinks leaving it).
 * Computes the digest of the uncompressed stream (ret_diff_id, ret_size); when tee_fd >= 0
 * the uncompressed tar bytes are also written there (import stores them as the blob).
 * On failure the caller removes the directory. */
int ls_tar_apply(int in_fd, int dirfd, const struct ls_apply_opts *opts, int tee_fd,
                 char ret_diff_id[MK_DIGEST_SIZE], uint64_t *ret_size, struct mk_error **err);

/* ---- the store handle and shared helpers (store, blob, config, index, image,
 *      snapshot, import .c) ---------------------------------------------------------------- */

#include <jansson.h>
#include <pthread.h>

struct mk_store {
    char *root;
    int root_fd;
    /* ROOT/gc.lock, flock()ed shared while the handle lives; prune and fsck --repair take
     * it exclusively, so they never delete what a running build, pull or load has written
     * but not tagged yet. */
    int gc_fd;
    /* temp dirs this handle owns: path and the fd whose flock marks them live. Guarded by
     * tmp_lock: registry pulls and pushes work from several threads on one handle. (Temp
     * files are not listed: each has one owner, which unlinks it on every path.) */
    pthread_mutex_t tmp_lock;
    struct mk_strv tmp_paths;
    int *tmp_fds;
    /* layerstore_sync_defer: the marker ROOT/unsynced/<name> (flock()ed through sync_fd) and
     * the process that owns it (forked helpers share the handle, and write in the window
     * too, but never end it). */
    int sync_fd;
    char *sync_marker;
    pid_t sync_owner;
    /* Asked for, not opened yet: the marker is made by the first write that would skip a
     * sync (ls_sync_deferred), so a build that writes nothing syncs nothing. */
    bool sync_wanted;
    /* Early syncfs of commits in the window, not waited for yet (ls_sync_keep). */
    struct ls_early_sync **kept;
    size_t n_kept;
};

/* index.json may not grow past this (every tag is one short descriptor). */
#define LS_INDEX_MAX (16u << 20)
/* Manifests and configs are small JSON documents. */
#define LS_JSON_MAX (4u << 20)

/* A temp file in ROOT/tmp, flock()ed so a concurrent layerstore_open leaves it alone.
 * Returns an O_RDWR fd; *ret_path is its absolute path (caller unlinks or renames it). */
int ls_tmpfile(struct mk_store *store, char **ret_path, struct mk_error **err);
/* Makes the finished temp file tmp_path (open as fd, whose bytes hash to digest) the blob
 * digest: fsync, rename into blobs/sha256/ (or drop it when the blob exists), fsync of the
 * directory (no fsyncs in a window of layerstore_sync_defer). tmp_path is gone afterwards,
 * on success and on failure. */
int ls_blob_commit_tmp(struct mk_store *store, int fd, const char *tmp_path, const char *digest,
                       struct mk_error **err);
/* The same for a temp file whose bytes are on disk already (a syncfs of the store's file
 * system since it was written): chmod and rename only, no fsync of the file or of
 * blobs/sha256/. The name may be lost in a crash (a layer lookup then misses), never the
 * bytes behind it; ls_blobs_dir_sync makes the names durable before index.json names an
 * image that uses them. */
int ls_blob_install_synced(struct mk_store *store, int fd, const char *tmp_path, const char *digest,
                           struct mk_error **err);
/* fsync of blobs/sha256/: every blob renamed into it so far keeps its name in a crash. */
int ls_blobs_dir_sync(struct mk_store *store, struct mk_error **err);
/* true when the process is not real root of the initial user namespace (device nodes and
 * setuid bits cannot be created). */
bool ls_rootless(void);
/* Unpacks blob (a layer tar whose uncompressed digest must be diff_id) into the snapshot
 * of chain unless that exists. */
int ls_snapshot_unpack(struct mk_store *store, const char *blob, const char *diff_id,
                       const char *chain, struct mk_error **err);
/* fsck --deep: whether the snapshot of chain (whose parent chains, bottom-most first, are
 * parents) holds layer blob with diff_id. Our writer's tar of the snapshot over its parents
 * is compared with diff_id; when they differ (a layer another tool wrote, or one made with
 * a build epoch), with the same tar of a fresh unpack of the blob, mtimes left out.
 * Fails when the snapshot, a parent or the blob cannot be read. */
int ls_snapshot_verify(struct mk_store *store, const struct mk_strv *parents, const char *chain,
                       const char *blob, const char *diff_id, bool *ret_ok, struct mk_error **err);
/* Forgets a temp dir of this handle (after it was renamed away): drops its lock. */
void ls_tmpdir_forget(struct mk_store *store, const char *path);
/* Renames a finished dir (inside ROOT/tmp) into snapshots/<chain hex>; when another process
 * made it first, removes dir instead. */
int ls_snapshot_install(struct mk_store *store, const char *dir, const char *chain,
                        struct mk_error **err);

/* jansson (>= 2.11) provides json_decrefp for its json_auto_t. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* The "config" object of an image config (Docker's capitalized keys), shared with inspect. */
json_t *ls_config_exec_json(const struct mk_image_config *cfg);
json_t *ls_strv_json(const struct mk_strv *sv);
/* The "history" list of an image config. */
json_t *ls_history_json(const struct mk_image_config *cfg);
/* Reads and checks ROOT/index.json (no lock: it is replaced atomically). */
int ls_index_load(struct mk_store *store, json_t **ret, struct mk_error **err);
/* The ref.name annotation of an index entry, or NULL. */
const char *ls_desc_ref(json_t *desc);
/* The digest of an index entry when it is a valid sha256 digest, or NULL. */
const char *ls_desc_digest(json_t *desc);
/* Drops every index entry pointing at manifest (MK_ERR_NOT_FOUND when none). */
/* Points name (normalized) at the descriptor (media_type, digest, size), replacing what it
 * named; under the store lock. With expect, only when name still names expect ("": nothing):
 * returns 1 and changes nothing otherwise. */
int ls_index_tag_desc(struct mk_store *store, const char *name, const char *media_type,
                      const char *digest, uint64_t size, const char *expect, struct mk_error **err);
/* The digest index.json names for ref (normalized); MK_ERR_NOT_FOUND when absent. */
int ls_index_ref_digest(struct mk_store *store, const char *ref, char ret[MK_DIGEST_SIZE],
                        struct mk_error **err);
/* When digest is an image index, the manifest of its entry for want (NULL: the host's);
 * else digest itself. */
int ls_index_select(struct mk_store *store, const char *digest, const struct mk_platform *want,
                    char ret_manifest[MK_DIGEST_SIZE], struct mk_error **err);
/* layerstore_image_get, a name that is an index resolved for platform (NULL: the host's). */
int ls_image_get(struct mk_store *store, const char *name, const struct mk_platform *platform,
                 struct mk_image **ret, struct mk_error **err);
int ls_index_remove_manifest(struct mk_store *store, const char *manifest, struct mk_error **err);

/* ---- private to layerstore/tar-*.c and extract.c --------------------------------------------- */

/* Overlay's own xattrs describe the snapshot, never the image: not written, not restored. */
static inline bool ls_tar_xattr_is_overlay(const char *name)
{
    return strncmp(name, "user.overlay.", 13) == 0 || strncmp(name, "trusted.overlay.", 16) == 0;
}

/* Sets the xattrs of the archive entry e (struct archive_entry, from <archive_entry.h>; at
 * most 256, overlayfs's own skipped) on name in pfd; a setxattr failure for which
 * ignore(errno, name, arg) is true is skipped. */
struct archive_entry;
int ls_entry_set_xattrs(int pfd, const char *name, const char *path, struct archive_entry *e,
                        bool (*ignore)(int errnum, const char *xname, const void *arg),
                        const void *arg, struct mk_error **err);

/* ---- end of layerstore/tar-*.c section ------------------------------------------------------ */

/* ---- compressed copies, prune, fsck, save/load (compress.c, gc.c, fsck.c, archive.c) ------- */

/* The cache key of the compressed copy of diff_id (algorithm c, resolved level). */
int ls_compress_cache_key(const char *diff_id, enum mk_compression c, int level,
                          char ret_key[MK_DIGEST_SIZE]);

/* ---- the typed caches (cache.c, cache-records.c, cache-context.c, cache-mounts.c) ---------- */

enum ls_cache_kind {
    LS_CACHE_STEPS,
    LS_CACHE_EXPLAIN,
    LS_CACHE_IMAGES,
    LS_CACHE_CONTEXT,
    LS_CACHE_COMPRESSED,
    LS_CACHE_REGISTRY,
    LS_CACHE_KINDS
};
/* Each kind's directory under ROOT/cache ("steps", ...); the cache mounts' is this one. */
extern const char *const ls_cache_dirs[LS_CACHE_KINDS];
#define LS_CACHE_MOUNTS_DIR "mounts"
/* No record is bigger (context tables are the big ones). */
#define LS_CACHE_VALUE_MAX (64u << 20)

/* The record key of kind: its bytes (MK_ERR_NOT_FOUND when missing), marked used. */
int ls_cache_read(struct mk_store *store, enum ls_cache_kind kind, const char *key, char **ret,
                  size_t *ret_len, struct mk_error **err);
int ls_cache_write(struct mk_store *store, enum ls_cache_kind kind, const char *key,
                   const char *data, size_t len, struct mk_error **err);
/* The first line of every record: "mkimg-cache KIND VERSION KEY\n". */
char *ls_cache_header(enum ls_cache_kind kind, const char *key);
/* Whether data starts with kind's current header for key; *ret_body gets what follows. */
bool ls_cache_header_ok(enum ls_cache_kind kind, const char *key, const char *data,
                        const char **ret_body);

/* What prune and fsck understand of a record: the blobs and snapshots it names. */
struct ls_cache_refs {
    char blob[MK_DIGEST_SIZE];  /* "" or: a step's layer blob, a compressed copy, an image
                                 * record's manifest */
    char chain[MK_DIGEST_SIZE]; /* "" or a step's snapshot */
    char layer[MK_DIGEST_SIZE]; /* "" or the layer a compressed copy is of */
    uint64_t blob_size;         /* a compressed copy's size */
};
/* Parses the record of kind stored under key far enough to fill ret; -1 (err says what is
 * wrong) when it is not a whole record of its kind and key. A context table is judged by
 * its head only (data may be its first bytes). */
int ls_cache_record_refs(enum ls_cache_kind kind, const char *key, const char *data, size_t len,
                         struct ls_cache_refs *ret, struct mk_error **err);
/* A step record as the JSON object ROOT/cache/steps/ holds (and a remote cache exports), or
 * NULL (MK_ERR_INVALID) for a record with a layer but no valid digests. Caller decrefs. */
json_t *ls_step_record_json(const struct mk_step_record *rec, struct mk_error **err);
/* The reverse, for key; ret is released with layerstore_step_record_release (also on
 * failure, MK_ERR_PARSE). */
int ls_step_record_from_json(json_t *o, const char *key, struct mk_step_record *ret,
                             struct mk_error **err);
/* Reads enough of the record file name in dirfd for ls_cache_record_refs. */
int ls_cache_record_load(int dirfd, const char *name, enum ls_cache_kind kind, char **ret,
                         size_t *ret_len, struct mk_error **err);

/* A layer's compressed copy: the blob and its size. */
struct ls_compressed_record {
    char diff_id[MK_DIGEST_SIZE];
    char blob[MK_DIGEST_SIZE];
    uint64_t size;
};
int ls_compressed_get(struct mk_store *store, const char *key, struct ls_compressed_record *ret,
                      struct mk_error **err);
int ls_compressed_put(struct mk_store *store, const char *key,
                      const struct ls_compressed_record *rec, struct mk_error **err);

/* A cache mount's name in ROOT/cache/mounts: 64 hex digits, "-N" for a private instance. */
bool ls_cache_mount_name_ok(const char *name);
/* What fsck finds wrong with the cache mount name in dirfd, or NULL. Caller frees. */
char *ls_cache_mount_check(int dirfd, const char *name);

/* Compresses what rd yields (until it returns 0) to out_fd as gzip or zstd at level (already
 * resolved, not 0) on threads threads: the same bytes whatever threads is (see
 * compress-stream.c), streaming with bounded memory. ret_digest and ret_size describe the
 * bytes written. */
typedef ssize_t (*ls_read_fn)(void *ctx, void *buf, size_t n, struct mk_error **err);
int ls_compress_stream(ls_read_fn rd, void *ctx, int out_fd, enum mk_compression c, int level,
                       unsigned threads, char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                       struct mk_error **err);
/* Same, telling progress (when not NULL) the bytes written so far after each write (on the
 * writing thread: it may block there to hold the compression back); a negative return stops
 * the compression (MK_ERR_INTERRUPTED). writeback: out_fd will be fsynced, start writing it
 * back as it grows (ls_compress_stream does); false for output nobody syncs. */
typedef int (*ls_progress_fn)(void *pctx, uint64_t written);
int ls_compress_stream_progress(ls_read_fn rd, void *ctx, int out_fd, enum mk_compression c,
                                int level, unsigned threads, bool writeback,
                                ls_progress_fn progress, void *pctx,
                                char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                                struct mk_error **err);
/* level resolved for c (0 = the default) and checked. */
int ls_compress_level(enum mk_compression c, int level, int *ret_level, struct mk_error **err);
/* The compressed copy of src already there (src itself, or a cached copy), as for
 * layerstore_layers_compress: fills ret's media type (allocated) and diff_id in any case,
 * its digest and size when found. */
bool ls_compress_existing(struct mk_store *store, const struct mk_layer_desc *src,
                          enum mk_compression c, int level, struct mk_layer_desc *ret);
/* Compresses the layer src (level resolved) straight to out_fd at its position on all
 * cores, not cached: for an archive that is the only copy wanted (not synced: no writeback
 * is started on the way). The digest and size of the bytes written; the source is checked
 * against its diff_id. */
int ls_compress_layer_to(struct mk_store *store, const struct mk_layer_desc *src,
                         enum mk_compression c, int level, int out_fd,
                         char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                         struct mk_error **err);
/* Whether libzstd was built with worker threads. */
bool ls_zstd_has_threads(void);
/* Walks the complete raw deflate stream data[0..n) (layerstore/deflate-scan.c): the bit
 * positions (bit 0 = least significant bit of data[0]) of its last block's header and of
 * the bit just after that block. -1 when the stream is malformed or ends early. */
int ls_deflate_scan(const void *data, size_t n, uint64_t *ret_last_header, uint64_t *ret_end);

/* Turns this handle's gc lock exclusive (waiting for every other mkimg process on the store
 * to finish) and back to shared. */
/* After a power cut in a window of layerstore_sync_defer that began at since: removes every
 * blob, snapshot, flat tree and cache record whose ctime is since or later, except what
 * index.json keeps alive (written after a syncfs, so whole; when it cannot be followed,
 * blobs whose bytes hash to their names). *ret_removed counts them. */
int ls_gc_recover_unsynced(struct mk_store *store, time_t since, size_t *ret_removed,
                           struct mk_error **err);
/* flock()s ROOT/lock exclusively (what every index.json update holds); close the fd to
 * release it. */
int ls_index_lock(struct mk_store *store, struct mk_error **err);
/* In a window of layerstore_sync_defer: a syncfs (a forked helper may have written, so
 * always), else 0 at once. */
int ls_sync_flush(struct mk_store *store, struct mk_error **err);
/* Before a name (index.json, a lazy ref) makes an image reachable: what it needs is on disk
 * (the window's syncfs, or outside a window an fsync of blobs/sha256/, whose entries are not
 * fsynced one by one). */
int ls_sync_before_name(struct mk_store *store, struct mk_error **err);
/* May this write skip its sync? True in an open window; opens a wanted one first (in the
 * process that asked for it). False outside a window or when the marker cannot be made. */
bool ls_sync_deferred(struct mk_store *store);
int ls_gc_lock_exclusive(struct mk_store *store, struct mk_error **err);
void ls_gc_lock_shared(struct mk_store *store);
/* A blob or snapshot file name: 64 lowercase hex digits. */
bool ls_is_hex64(const char *s);
/* Records that a blob and/or a snapshot (either may be NULL) was just used, for prune
 * --keep-storage's least-recently-used order: the entry's atime is set explicitly, which
 * moves its ctime to now (the use time prune reads; mount atime options do not matter and
 * nothing that is part of an image changes). Best effort: a failure costs only LRU order. */
void ls_mark_used(struct mk_store *store, const char *blob, const char *chain);
/* Same for one entry relative to dirfd. */
void ls_mark_used_at(int dirfd, const char *name);

/* cache-lazy.c: drops the lazy layer records whose diff ID keep refuses (prune: those no lazy
 * image uses). */
void ls_lazy_layers_prune(struct mk_store *store,
                          bool (*keep)(const void *ctx, const char *diff_id), const void *ctx);

/* A leftover of an atomic file (".NAME.tmp.PID-RANDOM", common/atomic-file.h) whose writer
 * is gone. */
bool ls_stale_atomic_tmp(const char *name);
/* Calls fn for each entry (but . and ..) of the directory rel under the store root; none
 * when it is missing. A negative return of fn stops the walk and is returned. */
typedef int (*ls_entry_fn)(void *ctx, int dirfd, const char *name, struct mk_error **err);
int ls_walk_dir(struct mk_store *store, const char *rel, ls_entry_fn fn, void *ctx,
                struct mk_error **err);

/* ---- end of compress/gc/fsck/archive section ---------------------------------------------- */

#endif
