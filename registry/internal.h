/* registry/internal.h - declarations shared by the registry client's files. Not a public API. */
#ifndef MK_REGISTRY_INTERNAL_H
#define MK_REGISTRY_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/platform.h"
#include "common/util.h"
#include "registry/registry.h"

/* Manifests, indexes and configs are small JSON documents. */
#define REG_JSON_MAX (4u << 20)
/* Error bodies and token responses. */
#define REG_SMALL_MAX (64u << 10)
#define REG_DEFAULT_RETRIES 5

#define REG_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REG_MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define REG_MEDIA_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define REG_MEDIA_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

/* ---- HTTP (registry/http.c) ------------------------------------------------------------- */

/* ---- TLS trust and client certificates (registry/tls.c) ---- */

struct reg_tls {
    char *ca_pem;  /* NULL, or CAs trusted besides the system's (PEM, NUL-terminated) */
    size_t ca_len; /* bytes of ca_pem */
    char *ca_file; /* NULL or $SSL_CERT_FILE */
    char *ca_path; /* NULL or $SSL_CERT_DIR */
    char *cert;    /* NULL or the client certificate (*.cert) */
    char *key;     /* its key (*.key) */
    char *dir;     /* NULL or the certificate directory used: for messages and https */
};
/* What to trust for host ("name[:port]"; NULL for a plain download): cert_dir when not NULL,
 * else the first of /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST that exists,
 * plus SSL_CERT_FILE / SSL_CERT_DIR. ret is zeroed first and filled only on success. */
int reg_tls_load(const char *host, const char *cert_dir, struct reg_tls *ret,
                 struct mk_error **err);
void reg_tls_copy(struct reg_tls *dst, const struct reg_tls *src);
void reg_tls_release(struct reg_tls *t);
/* Sets the curl handle's CA and client-certificate options. */
void reg_tls_apply(const struct reg_tls *t, void *curl);

/* ---- transfer progress (registry/progress.c) ---- */

struct reg_progress;
struct reg_client;
/* A blob of total bytes starts moving through c (nothing when c has no log). */
void reg_progress_begin(struct reg_client *c, bool upload, const char *digest, uint64_t total);
/* bytes of it have moved: a line when the interval has passed since the last. */
void reg_progress_update(const struct reg_client *c, uint64_t bytes);
/* It is there: the closing line. No-op without a begin. */
void reg_progress_end(struct reg_client *c);
void reg_progress_free(struct reg_progress *p);
/* One log line (without its newline) on f, above the live block when there is one. */
void reg_progress_print(FILE *f, const char *msg);

/* One registry repository for the run: one curl handle (connections are reused), the
 * credentials and the Authorization header won by the last challenge. A client is used by
 * one thread at a time; parallel transfers each use a clone (reg_client_clone). */
struct reg_client {
    void *curl;         /* CURL *, private to http.c */
    char *host;         /* "127.0.0.1:5000", "registry-1.docker.io" */
    char *base;         /* "http://127.0.0.1:5000" */
    char *repo;         /* "library/busybox" */
    char *creds;        /* NULL or "user:password" */
    char *auth_header;  /* NULL or "Authorization: ..." */
    bool insecure;      /* https without certificate verification */
    struct reg_tls tls; /* CAs and client certificate (--cert-dir, certs.d, SSL_CERT_FILE) */
    struct reg_progress *progress; /* NULL, or the blob moving now (registry/progress.c) */
    int retries;
    FILE *log;
    /* NULL, or a flag that stops this client's transfers and backoffs like SIGINT does (set
     * when a parallel sibling failed). */
    atomic_bool *cancel;
};

/* The registry's answer to one request. */
struct reg_resp {
    long status;
    struct mk_buf body; /* capped; empty when the body went to a sink */
    char *location, *content_type, *docker_digest, *www_auth;
    uint64_t range_start; /* first byte of a 206 answer */
    int64_t mtime;        /* Last-Modified in seconds since the epoch, -1 when absent */
    /* An upload session's "Range: 0-END" (bytes the registry holds; see has_range) */
    bool has_range;
    uint64_t range_end;
    uint64_t chunk_min; /* OCI-Chunk-Min-Length of an upload session, or 0 */
};

struct reg_req {
    const char *method; /* "GET", "HEAD", "POST", "PUT" */
    const char *url;    /* absolute, or a path starting with "/" below the base */
    const char *accept; /* NULL or the Accept header value */
    const char *content_type;
    const void *data; /* upload from memory (len bytes) ... */
    size_t len;
    int fd; /* ... or from a file (fd_size bytes from fd_off) when fd >= 0 */
    uint64_t fd_off, fd_size;
    const char *header;  /* NULL or one more header line ("Content-Range: 0-99") */
    uint64_t range_from; /* > 0: ask for the bytes from here on (206 expected) */
    size_t body_max;     /* cap of resp->body (0 = REG_SMALL_MAX) */
    /* When set, a 2xx body goes here instead of resp->body; returning < 0 aborts. */
    int (*sink)(void *ctx, const void *data, size_t n);
    void *sink_ctx;
    bool follow; /* follow redirects (blob downloads may be served elsewhere) */
};

/* opts may be NULL (defaults). Picks http or https from opts->tls and the host. */
int reg_client_new(const struct mk_ref *ref, const struct registry_opts *opts,
                   struct reg_client **ret, struct mk_error **err);
/* A client for absolute URLs outside any registry (ADD <url>): no credentials, TLS always
 * verified; only retries and log are taken from opts (may be NULL). */
int reg_client_new_plain(const struct registry_opts *opts, struct reg_client **ret,
                         struct mk_error **err);
void reg_client_free(struct reg_client *c);
/* A client for another thread: the same registry, repository, credentials and current
 * Authorization header, its own curl handle. */
struct reg_client *reg_client_clone(const struct reg_client *c);

/* One request, answering one authentication challenge (basic or bearer) on the way.
 * Returns 0 with resp filled (any status), or -1 when no HTTP answer came (*ret_retry says
 * whether trying again could help). resp is released by the caller (reg_resp_release). */
int reg_do(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp, bool *ret_retry,
           struct mk_error **err);
/* One request as it is: no authentication challenge answered, no retry; else like reg_do. */
int reg_transfer(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                 bool *ret_retry, struct mk_error **err);
/* reg_do with retries and backoff on 429, 5xx and broken connections (for requests
 * without a sink). */
int reg_request(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                struct mk_error **err);
void reg_resp_release(struct reg_resp *resp);
/* Whether an answer is worth retrying (429, 5xx). */
bool reg_status_retryable(long status);
/* Sleeps before attempt n (1, 2, ...): exponential backoff; false when interrupted (SIGINT,
 * or c's cancel flag). */
bool reg_backoff(const struct reg_client *c, int attempt);
/* Whether c should stop: SIGINT, or its cancel flag. */
bool reg_cancelled(const struct reg_client *c);
/* Fills err from a non-success answer: the registry's error JSON message when present. */
int reg_status_error(const struct reg_resp *resp, const char *what, struct mk_error **err);
/* One progress line to c->log (when set). Never pass credentials. */
void reg_log(const struct reg_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "/v2/<repo>/<kind>/<ref>" in a new string. */
char *reg_path(const struct reg_client *c, const char *kind, const char *ref);

/* ---- parallel transfers (registry/parallel.c) ------------------------------------------ */

/* Blobs moved at once, each by its own thread and connection (docker moves 3 downloads and
 * 5 uploads at once by default, containers/image 6): a few streams fill a link without
 * overloading the registry. */
#define REG_PARALLEL 4

struct reg_pool;
/* One job: job i with its own client c (a clone; c->cancel is the pool's flag). */
typedef int (*reg_pool_fn)(void *ctx, struct reg_client *c, size_t i, struct mk_error **err);
/* Runs fn for i = 0 .. n-1, in that order of start, on up to max_threads clones of c. */
int reg_pool_start(struct reg_client *c, size_t n, size_t max_threads, reg_pool_fn fn, void *ctx,
                   struct reg_pool **ret, struct mk_error **err);
/* Waits for job i: 0 when it succeeded, -1 when some job failed (reg_pool_finish says which). */
int reg_pool_wait(struct reg_pool *p, size_t i);
/* Waits for the jobs that run (with cancel: stopping them, and starting no more), joins the
 * threads and frees p. 0 when every started job succeeded, else -1 with the first failure
 * in err (an error already in *err is kept). Accepts NULL. */
int reg_pool_finish(struct reg_pool *p, bool cancel, struct mk_error **err);

/* ---- blobs known in other repositories (registry/mount.c) ------------------------------- */

struct mk_store;
/* Remembers that c's repository holds digest (best effort, never fails). */
void reg_blob_seen(struct mk_store *store, const struct reg_client *c, const char *digest);
/* Another repository of c's registry known to hold digest, or NULL. Caller frees. */
char *reg_blob_source(struct mk_store *store, const struct reg_client *c, const char *digest);

/* ---- manifests (registry/manifest.c) --------------------------------------------------- */

#include <jansson.h>

struct reg_manifest {
    char *data; /* the bytes as the registry sent them */
    size_t len;
    char digest[MK_DIGEST_SIZE];
    char *media_type; /* from the document, else the Content-Type, else by shape */
    json_t *json;
};

/* Takes data (len bytes, NUL-terminated; freed on failure too) and parses it: a JSON object,
 * not Docker schema 1 (MK_ERR_UNSUPPORTED). content_type may be NULL; ref names it in
 * errors. */
int reg_manifest_load(char *data, size_t len, const char *content_type, const char *ref,
                      struct reg_manifest *ret, struct mk_error **err);
void reg_manifest_release(struct reg_manifest *m);
bool reg_is_index(const char *media_type);
bool reg_is_image_manifest(const char *media_type);

/* The digest of the index entry for want (normalized, common/platform.h; an empty variant
 * takes any), MK_ERR_NOT_FOUND listing what the index has. */
int reg_index_select(const struct reg_manifest *idx, const struct mk_platform *want,
                     char ret[MK_DIGEST_SIZE], struct mk_error **err);

struct reg_blob_desc {
    const char *digest; /* points into the manifest's JSON */
    uint64_t size;
};
/* The config and layer descriptors of an image manifest, checked (valid digests and sizes,
 * known layer media types, at most 4096 layers, a config under 4 MiB). *ret_layers is
 * the caller's (free). */
int reg_manifest_blobs(const struct reg_manifest *m, struct reg_blob_desc *ret_config,
                       struct reg_blob_desc **ret_layers, size_t *ret_n, struct mk_error **err);

/* ---- credentials (registry/auth.c) ------------------------------------------------------ */

char *reg_base64(const void *data, size_t n);
/* Decodes standard base64; NULL on junk. */
char *reg_base64_decode(const char *s, size_t *ret_len);

/* ---- push (registry/push.c, registry/push-index.c) ---- */

/* A client for ref's registry with the credentials of opts (or the auth files). */
int reg_push_client(const struct mk_ref *ref, const struct registry_opts *opts,
                    struct reg_client **ret, struct mk_error **err);
/* Pushes img's blobs and its manifest (a new one when layers get compressed) to c's
 * repository: under ref's tag, or with by_digest under the digest of the manifest as pushed.
 * image names it in log lines. ret_digest / ret_size (may be NULL) receive the pushed
 * manifest's digest and size. */
int reg_push_image(struct reg_client *c, struct mk_store *store, const struct mk_image *img,
                   const char *image, const struct mk_ref *ref, const struct registry_opts *opts,
                   bool by_digest, char ret_digest[MK_DIGEST_SIZE], uint64_t *ret_size,
                   struct mk_error **err);
/* The store's blob digest into c's repository unless it is there (HEAD), mounted from
 * mount_from or a repository known to hold it, else uploaded. */
int reg_push_blob(struct reg_client *c, struct mk_store *store, const char *digest,
                  const char *mount_from, struct mk_error **err);
/* digest into c's repository without its bytes: 1 when the repository has it (HEAD) or the
 * registry mounted it from the repository from (same host), 0 when not. */
int reg_mount_blob(struct reg_client *c, const char *digest, const char *from,
                   struct mk_error **err);
/* A layer of a lazy image: its blob is not in the store, a lazy layer record names it. */
bool reg_layer_lazy(struct mk_store *store, const struct mk_layer_desc *l);
/* A lazy layer (layerstore/cache-lazy.c, not in the store) into c's repository as the
 * registry cache holds it: mounted from the cache's repository on the same registry, else
 * fetched from the cache (verified) and uploaded. *ret: its descriptor as pushed. */
int reg_push_lazy(struct reg_client *c, struct mk_store *store, const struct mk_layer_desc *src,
                  const struct registry_opts *opts, struct mk_layer_desc *ret,
                  struct mk_error **err);
/* A blob of c's repository into the store unless it is there, verified (registry/pull.c). */
int reg_fetch_blob(struct reg_client *c, struct mk_store *store, const char *digest, uint64_t size,
                   struct mk_error **err);
/* PUT of a manifest or index; fails when the registry names another digest for it. */
int reg_put_manifest(struct reg_client *c, const char *ref, const char *data, size_t len,
                     const char *media_type, const char *digest, struct mk_error **err);
/* registry_push of a local name that is an index: each platform's image by digest, then
 * the index. */
int reg_push_index(struct mk_store *store, const char *image, const char *dest,
                   const struct registry_opts *opts, char ret_digest[MK_DIGEST_SIZE],
                   struct mk_error **err);

#endif
