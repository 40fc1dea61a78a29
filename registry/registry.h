/* registry/registry.h - the OCI distribution (registry API v2) client.
 *
 * Pull into the local store and push from it, credentials (auth.json like podman and docker).
 * Image references are parsed and normalized by common/ref.h (struct mk_ref), platforms by
 * common/platform.h.
 *
 * Invariants: nothing reaches the store unverified. Every blob is streamed (never held whole
 * in memory) into a temp file while its sha256 is computed, and renamed into the store only
 * when digest and size match the descriptor; a pulled manifest is stored byte for byte (its
 * digest is preserved) and only after the config and every layer it names are stored; each
 * layer is unpacked into its snapshot and its uncompressed digest checked against the
 * config's diff_ids before the image is tagged. Network data is capped (manifests and
 * configs 4 MiB, header lines 8 KiB, tokens 64 KiB).
 *
 * Blobs move several at once (4 threads, each with its own connection): a pull downloads
 * layers in parallel and unpacks them in order as they arrive; a push uploads layers in
 * parallel, then puts the manifest. An uncompressed layer with no compressed copy yet goes
 * up while it is compressed (chunks follow the compressor; the copy is kept in the store). The
 * first failed transfer stops the others and is the error reported. Blobs larger than 32 MiB go up
 * in PATCH chunks (Content-Range, following each answer's Location) closed by PUT ?digest=; a
 * failed chunk resumes where the registry says the upload stands, a registry that refuses PATCH
 * gets one PUT. $MKIMG_UPLOAD_CHUNK_SIZE (bytes, at least 1024) sets the chunk size, for tests.
 *
 * libcurl lives only in this module. Functions never print: progress goes to opts->log
 * when set, including each moving blob's bytes, total, rate and time left (every 2 s, or
 * $MKIMG_PROGRESS_INTERVAL_MS for tests; on a terminal one live line per blob instead) and a
 * line when it is done (a layer compressed on the way up has only its start line). All functions
 * follow common/error.h.
 */
#ifndef MK_REGISTRY_H
#define MK_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/ref.h"

struct mk_store;
struct mk_image;

enum registry_tls {
    REGISTRY_TLS_DEFAULT = 0, /* verify, except plain HTTP for localhost, 127.x.y.z, [::1] */
    REGISTRY_TLS_VERIFY,      /* --tls-verify=true: https, verified, always */
    REGISTRY_TLS_INSECURE,    /* --tls-verify=false: https without verification, else http */
};

struct registry_opts {
    enum registry_tls tls;
    const char *cert_dir;    /* NULL or a directory of *.crt CA files (like podman's) */
    const char *platform;    /* NULL = linux/<host arch>; else "os/arch[/variant]" */
    const char *authfile;    /* NULL = $REGISTRY_AUTH_FILE, podman's, docker's */
    const char *creds;       /* NULL or "user:password" (overrides the auth file) */
    const char *compression; /* push: "gzip" (NULL), "zstd" or "none" for layers stored
                              * uncompressed; compressed copies are cached in the store */
    int retries;             /* attempts after the first on 429, 5xx, broken connections;
                              * < 0 = the default (5) */
    FILE *log;               /* NULL or where to write one line per step (never credentials) */
    bool add_platform;       /* pull: add the image to the platforms the local name holds
                              * (an index per name) instead of replacing what it named */
};

/* Pulls ref from its registry into the store and tags it locally under ref as the user
 * wrote it, normalized by mk_ref_local_name ("busybox" -> "busybox:latest";
 * "127.0.0.1:5000/a/b:v1" stays). An index or manifest list resolves to opts->platform.
 * Blobs already in the store are not fetched again. ret may be NULL; the image is the
 * caller's (layerstore_image_free). MK_ERR_NOT_FOUND when the registry has no such image,
 * MK_ERR_DIGEST when content does not match, MK_ERR_UNSUPPORTED for schema 1 manifests. */
int registry_pull(struct mk_store *store, const char *ref, const struct registry_opts *opts,
                  struct mk_image **ret, struct mk_error **err);

/* Pushes the local image `image` to dest (NULL = image's own name): each blob not yet in
 * the repository, then the manifest. ret_digest (may be NULL) receives the digest of the
 * manifest as pushed. */
int registry_push(struct mk_store *store, const char *image, const char *dest,
                  const struct registry_opts *opts, char ret_digest[MK_DIGEST_SIZE],
                  struct mk_error **err);

/* ---- base images for builds (registry/pull.c) ---------------------------------------- */

enum registry_pull_policy {
    REGISTRY_PULL_MISSING = 0, /* use the local image, pull when there is none (default) */
    REGISTRY_PULL_ALWAYS,      /* pull every time (a tag may have moved) */
    REGISTRY_PULL_NEVER,       /* offline: only what the store has */
};
/* "missing" / "always" / "never" (also "true" = always, "false" = never, like podman);
 * -1 for anything else. */
int registry_pull_policy_parse(const char *s);
/* The image name refers to under the policy: the local one, or pulled (registry_pull, so
 * tagged as name). MK_ERR_NOT_FOUND with a message saying why when it is missing and the
 * policy is never, or when the registry does not have it. opts may be NULL. */
int registry_image_get(struct mk_store *store, const char *name, enum registry_pull_policy policy,
                       const struct registry_opts *opts, struct mk_image **ret,
                       struct mk_error **err);

/* ---- plain downloads (registry/fetch.c): ADD <url> -------------------------------------- */

struct registry_fetch_result {
    char digest[MK_DIGEST_SIZE]; /* sha256 of the bytes written */
    uint64_t size;
    int64_t mtime; /* the Last-Modified header in seconds since the epoch, -1 when absent */
};
/* Downloads url (http:// or https://; redirects followed, TLS verified, no credentials, the
 * proxy environment variables honoured as libcurl does) into fd, which is truncated first and
 * again before each retry, hashing the bytes as they stream. opts may be NULL; only its
 * retries and log are used. More than max bytes fail with MK_ERR_INVALID. A 404 or 410 is
 * MK_ERR_NOT_FOUND; any failure's message starts with `downloading "URL"`. */
int registry_fetch_url(const char *url, const struct registry_opts *opts, uint64_t max, int fd,
                       struct registry_fetch_result *ret, struct mk_error **err);

/* ---- credentials (registry/auth.c) ---------------------------------------------------- */

/* The auth file `mkimg login` writes: authfile when not NULL, else $REGISTRY_AUTH_FILE,
 * else $XDG_RUNTIME_DIR/containers/auth.json, else ~/.config/containers/auth.json.
 * Caller frees. */
char *registry_auth_file(const char *authfile);
/* Looks up "user:password" for a registry host: --authfile (or $REGISTRY_AUTH_FILE), then
 * podman's auth.json, then ~/.docker/config.json (auths, credHelpers, credsStore).
 * Returns 1 and a new string in *ret, 0 when there are none, -1 on a broken file. */
int registry_auth_lookup(const char *authfile, const char *host, char **ret, struct mk_error **err);
/* Stores (creds = "user:password") or, with creds NULL, removes the entry of host in the
 * auth file (atomically). Removing an absent entry is MK_ERR_NOT_FOUND. */
int registry_auth_store(const char *authfile, const char *host, const char *creds,
                        struct mk_error **err);
/* Checks creds against host's /v2/ endpoint (basic or token auth). */
int registry_login_check(const char *host, const char *creds, const struct registry_opts *opts,
                         struct mk_error **err);

/* ---- remote build cache (registry/cache.c, docs/remote-cache.md) ----------------------- */

struct mk_step_record;
struct mk_layer_desc;
/* Pushes the cache of recs to name (a tag): every layer blob not in the repository (as
 * compression, an enum mk_compression, makes it: the store's cached compressed copy), the
 * config blob of the records, then the artifact manifest under the tag (last, so a reader
 * sees the old cache or the whole new one). Credentials and TLS as registry_push. */
int registry_cache_push(struct mk_store *store, const char *name, const struct registry_opts *opts,
                        const struct mk_step_record *recs, size_t n, int compression,
                        struct mk_error **err);
/* The records of the cache at name: its manifest (of the cache artifactType) and config,
 * both digest-checked; no layer is fetched. *ret is freed with layerstore_step_records_free.
 * An image manifest with an inline cache (annotation MK_ANNOTATION_CACHE_INLINE) gives its
 * records, and in *ret_blobs (caller frees; NULL for a cache artifact) its layers as the
 * registry holds them (digest, size) with their diff IDs, to fetch a record's layer by. */
int registry_cache_records(const char *name, const struct registry_opts *opts,
                           struct mk_step_record **ret, size_t *ret_n,
                           struct mk_layer_desc **ret_blobs, size_t *ret_nblobs,
                           struct mk_error **err);
/* One layer blob of the cache at name into the store (verified), unless it is there. */
int registry_cache_fetch_layer(struct mk_store *store, const char *name,
                               const struct registry_opts *opts, const struct mk_layer_desc *layer,
                               struct mk_error **err);

#endif
