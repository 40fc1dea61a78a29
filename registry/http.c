/* registry/http.c - the libcurl transport: requests, authentication challenges, retries. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/internal.h"

#define HEADER_MAX 8192
#define TLS_REFUSAL "HTTP request to an HTTPS server" /* Go's net/http, to plain HTTP */
#define MAX_REDIRS 5L

MK_DEFINE_CLEANUP(CURL, curl_easy_cleanup)
MK_DEFINE_CLEANUP(struct curl_slist, curl_slist_free_all)
#define _cleanup_json_ _cleanup_(json_decrefp)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Plain HTTP by default is for this machine only: "localhost", or an address (never a name:
 * "127.attacker.example" is a DNS name like any other) in 127.0.0.0/8 or ::1 ("[::1]"). host
 * is "name[:port]" or "[v6]:port". */
static bool is_loopback(const char *host)
{
    bool v6 = host[0] == '[';
    const char *start = host + (v6 ? 1 : 0);
    const char *end = v6 ? strchr(start, ']') : start + strcspn(start, ":");
    if (!end || (v6 && end[1] && end[1] != ':'))
        return false;
    char name[INET6_ADDRSTRLEN];
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= sizeof(name))
        return false;
    memcpy(name, start, n);
    name[n] = '\0';
    if (v6) {
        struct in6_addr a6;
        return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return strcmp(name, "localhost") == 0;
}

int reg_client_new(const struct mk_ref *ref, const struct registry_opts *opts,
                   struct reg_client **ret, struct mk_error **err)
{
    pthread_once(&curl_once, curl_init);
    static const struct registry_opts defaults = {.retries = -1};
    if (!opts)
        opts = &defaults;
    CURL *curl = curl_easy_init();
    if (!curl)
        return mk_error_set(err, MK_ERR_FAILED, 0, "cannot initialize libcurl");
    struct reg_client *c = mk_xcalloc(1, sizeof(*c));
    c->curl = curl;
    c->host = mk_xstrdup(mk_ref_registry_host(ref->domain));
    c->repo = mk_xstrdup(ref->path);
    c->retries = opts->retries < 0 ? REG_DEFAULT_RETRIES : opts->retries;
    c->log = opts->log;
    bool http = false;
    if (reg_tls_load(c->host, opts->cert_dir, &c->tls, err) < 0) {
        reg_client_free(c);
        return -1;
    }
    if (opts->cert_dir && !c->tls.ca_pem && !c->tls.cert) {
        reg_client_free(c);
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0,
                            "no *.crt or *.cert file in --cert-dir \"%s\"", opts->cert_dir);
    }
    if (opts->tls == REGISTRY_TLS_INSECURE) {
        /* Like podman: an insecure registry speaks unverified TLS, or plain HTTP (the
         * fallback is in transfer()). */
        c->insecure = true;
    } else if (opts->tls == REGISTRY_TLS_DEFAULT) {
        /* A loopback registry with a certs.d directory speaks TLS: that is what the
         * directory is for. */
        http = is_loopback(c->host) && !c->tls.dir;
    }
    c->base = mk_xasprintf("%s://%s", http ? "http" : "https", c->host);
    *ret = c;
    return 0;
}

int reg_client_new_plain(const struct registry_opts *opts, struct reg_client **ret,
                         struct mk_error **err)
{
    pthread_once(&curl_once, curl_init);
    CURL *curl = curl_easy_init();
    if (!curl)
        return mk_error_set(err, MK_ERR_FAILED, 0, "cannot initialize libcurl");
    struct reg_client *c = mk_xcalloc(1, sizeof(*c));
    c->curl = curl;
    c->host = mk_xstrdup("");
    c->base = mk_xstrdup("");
    c->repo = mk_xstrdup("");
    c->retries = opts && opts->retries >= 0 ? opts->retries : REG_DEFAULT_RETRIES;
    c->log = opts ? opts->log : NULL;
    if (reg_tls_load(NULL, NULL, &c->tls, err) < 0) {
        reg_client_free(c);
        return -1;
    }
    *ret = c;
    return 0;
}

struct reg_client *reg_client_clone(const struct reg_client *c)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        MK_BUG("curl_easy_init failed"); /* only out of memory */
    struct reg_client *n = mk_xcalloc(1, sizeof(*n));
    n->curl = curl;
    n->host = mk_xstrdup(c->host);
    n->base = mk_xstrdup(c->base);
    n->repo = mk_xstrdup(c->repo);
    n->creds = c->creds ? mk_xstrdup(c->creds) : NULL;
    n->auth_header = c->auth_header ? mk_xstrdup(c->auth_header) : NULL;
    n->insecure = c->insecure;
    reg_tls_copy(&n->tls, &c->tls);
    n->retries = c->retries;
    n->log = c->log;
    n->cancel = c->cancel;
    return n;
}

void reg_client_free(struct reg_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->host);
    free(c->base);
    free(c->repo);
    if (c->creds)
        explicit_bzero(c->creds, strlen(c->creds));
    free(c->creds);
    if (c->auth_header)
        explicit_bzero(c->auth_header, strlen(c->auth_header));
    free(c->auth_header);
    reg_tls_release(&c->tls);
    reg_progress_free(c->progress);
    free(c);
}

void reg_resp_release(struct reg_resp *resp)
{
    mk_buf_release(&resp->body);
    free(resp->location);
    free(resp->content_type);
    free(resp->docker_digest);
    free(resp->www_auth);
    memset(resp, 0, sizeof(*resp));
}

void reg_log(const struct reg_client *c, const char *fmt, ...)
{
    if (!c->log)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mk_xvasprintf(fmt, ap);
    va_end(ap);
    /* Parallel transfers log from several threads: one whole line at a time, above the live
     * progress lines on a terminal. */
    reg_progress_print(c->log, msg);
}

char *reg_path(const struct reg_client *c, const char *kind, const char *ref)
{
    return mk_xasprintf("/v2/%s/%s/%s", c->repo, kind, ref);
}

/* ---- one transfer ----------------------------------------------------------------------- */

struct xfer {
    const struct reg_client *c;
    CURL *curl;
    const struct reg_req *req;
    struct reg_resp *resp;
    uint64_t up_off;
    bool sink_failed;
};

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    return mk_xstrndup(v, (size_t)(end - v));
}

static void set_header(char **slot, char *value)
{
    if (!value)
        return;
    free(*slot);
    *slot = value;
}

/* "[PREFIX]START-END[/TOTAL]" as in Range and Content-Range; false when malformed. */
static bool parse_byte_range(const char *v, const char *prefix, uint64_t *ret_start,
                             uint64_t *ret_end)
{
    if (mk_str_has_prefix(v, prefix))
        v += strlen(prefix);
    char *end = NULL;
    errno = 0;
    unsigned long long a = strtoull(v, &end, 10);
    if (errno || end == v || *end != '-' || !isdigit((unsigned char)end[1]))
        return false;
    unsigned long long b = strtoull(end + 1, &end, 10);
    if (errno || (*end && *end != '/'))
        return false;
    *ret_start = a;
    *ret_end = b;
    return true;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct xfer *x = ctx;
    size_t n = size * nmemb;
    if (n > HEADER_MAX)
        return 0;
    struct reg_resp *r = x->resp;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100-continue): forget the last one's. */
        free(r->location);
        free(r->content_type);
        free(r->docker_digest);
        free(r->www_auth);
        r->location = r->content_type = r->docker_digest = r->www_auth = NULL;
        r->range_start = r->range_end = r->chunk_min = 0;
        r->has_range = false;
        /* "HTTP/1.1 206 Partial Content": a sink needs the status before the body. */
        const char *sp = memchr(data, ' ', n);
        if (sp && (size_t)(sp - data) + 4 <= n && isdigit((unsigned char)sp[1]) &&
            isdigit((unsigned char)sp[2]) && isdigit((unsigned char)sp[3]))
            r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
        return n;
    }
    set_header(&r->location, header_value(data, n, "Location"));
    set_header(&r->content_type, header_value(data, n, "Content-Type"));
    set_header(&r->docker_digest, header_value(data, n, "Docker-Content-Digest"));
    set_header(&r->www_auth, header_value(data, n, "WWW-Authenticate"));
    uint64_t start, end;
    _cleanup_free_ char *urange = header_value(data, n, "Range");
    /* An upload session's progress: "0-END", END inclusive ("0-0" also when empty). */
    if (urange && parse_byte_range(urange, "bytes=", &start, &end) && start == 0) {
        r->has_range = true;
        r->range_end = end;
    }
    _cleanup_free_ char *cmin = header_value(data, n, "OCI-Chunk-Min-Length");
    if (cmin)
        mk_parse_u64(cmin, &r->chunk_min);
    /* A partial download: "bytes START-END/TOTAL". */
    _cleanup_free_ char *range = header_value(data, n, "Content-Range");
    if (range && parse_byte_range(range, "bytes ", &start, &end))
        r->range_start = start;
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct xfer *x = ctx;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    if (x->req->sink && status >= 200 && status < 300) {
        if (x->req->sink(x->req->sink_ctx, data, n) < 0) {
            x->sink_failed = true;
            return 0;
        }
        return n;
    }
    /* Error bodies only matter for their message: keep what fits. */
    struct mk_buf *b = &x->resp->body;
    size_t room = b->max > b->len ? b->max - b->len : 0;
    if (room)
        mk_buf_append(b, data, n < room ? n : room, NULL);
    if (n > room && x->req->body_max)
        return 0; /* a capped document that does not fit is an error, not a truncation */
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ctx)
{
    struct xfer *x = ctx;
    const struct reg_req *req = x->req;
    size_t want = size * nmemb;
    if (req->fd >= 0) {
        if (x->up_off >= req->fd_size)
            return 0;
        if (want > req->fd_size - x->up_off)
            want = (size_t)(req->fd_size - x->up_off);
        ssize_t n;
        do
            n = pread(req->fd, buf, want, (off_t)(req->fd_off + x->up_off));
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return CURL_READFUNC_ABORT;
        if (n == 0)
            return CURL_READFUNC_ABORT; /* the file shrank under us */
        x->up_off += (uint64_t)n;
        return (size_t)n;
    }
    if (x->up_off >= req->len)
        return 0;
    if (want > req->len - x->up_off)
        want = req->len - x->up_off;
    memcpy(buf, (const char *)req->data + x->up_off, want);
    x->up_off += want;
    return want;
}

bool reg_cancelled(const struct reg_client *c)
{
    return mk_interrupted || (c->cancel && atomic_load(c->cancel));
}

/* libcurl rewinds an upload to send it again (a reused connection that turned out dead). */
static int on_seek(void *ctx, curl_off_t offset, int origin)
{
    struct xfer *x = ctx;
    uint64_t len = x->req->fd >= 0 ? x->req->fd_size : x->req->len;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->up_off = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)ut;
    const struct xfer *x = ctx;
    /* Bytes of the blob: a chunk or a resumed download starts where the last one ended. */
    if (x->c->progress && x->req->fd >= 0 && un > 0)
        reg_progress_update(x->c, x->req->fd_off + (uint64_t)un);
    else if (x->c->progress && x->req->sink && dn > 0)
        reg_progress_update(x->c, x->req->range_from + (uint64_t)dn);
    return reg_cancelled(x->c) ? 1 : 0;
}

static bool curl_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* The request's method and, for an upload, where its body comes from. */
static void set_method(CURL *curl, const struct reg_req *req, struct xfer *x)
{
    bool upload = req->fd >= 0 || req->data;
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (upload) {
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, x);
        curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(curl, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(req->fd >= 0 ? req->fd_size : req->len));
        if (strcmp(req->method, "PUT") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    }
}

static int transfer(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                    bool *ret_retry, struct mk_error **err);

/* After a HEAD answered 400 over plain HTTP: whether GET /v2/ gets a TLS server's 400. */
static bool speaks_tls(struct reg_client *c, const struct reg_req *req)
{
    if (strcmp(req->method, "HEAD") != 0 || req->url[0] != '/')
        return false;
    struct reg_req probe = {.method = "GET", .url = "/v2/", .fd = -1};
    struct reg_resp resp = {0};
    bool retry = false;
    struct mk_error *e = NULL;
    bool tls = transfer(c, &probe, &resp, &retry, &e) == 0 && resp.status == 400 && resp.body.len &&
               strstr(resp.body.data, TLS_REFUSAL);
    mk_error_free(e);
    reg_resp_release(&resp);
    return tls;
}

static int transfer(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                    bool *ret_retry, struct mk_error **err)
{
    CURL *curl = c->curl;
    curl_easy_reset(curl);
    _cleanup_free_ char *url =
        req->url[0] == '/' ? mk_xasprintf("%s%s", c->base, req->url) : mk_xstrdup(req->url);
    struct xfer x = {.c = c, .curl = curl, .req = req, .resp = resp};
    reg_resp_release(resp);
    resp->mtime = -1;
    mk_buf_init(&resp->body, req->body_max ? req->body_max : REG_SMALL_MAX);
    char errbuf[CURL_ERROR_SIZE] = "";

    _cleanup_(curl_slist_free_allp) struct curl_slist *h = NULL;
    _cleanup_free_ char *accept = NULL, *ctype = NULL, *range = NULL;
    if (req->accept) {
        accept = mk_xasprintf("Accept: %s", req->accept);
        h = curl_slist_append(h, accept);
    }
    if (req->content_type) {
        ctype = mk_xasprintf("Content-Type: %s", req->content_type);
        h = curl_slist_append(h, ctype);
    }
    if (req->range_from) {
        range = mk_xasprintf("Range: bytes=%llu-", (unsigned long long)req->range_from);
        h = curl_slist_append(h, range);
    }
    if (req->header)
        h = curl_slist_append(h, req->header);
    if (c->auth_header)
        h = curl_slist_append(h, c->auth_header);
    h = curl_slist_append(h, "Expect:");

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "mkimg/0.1");
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled connection (under 1 byte/s for 60 s) is a broken one. */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    /* Last-Modified, for ADD <url> (the file's mtime). */
    curl_easy_setopt(curl, CURLOPT_FILETIME, 1L);
    /* Blobs stream through the callbacks: fewer, larger writes. */
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    if (c->insecure) {
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    reg_tls_apply(&c->tls, curl);
    if (req->follow) {
        /* libcurl drops our Authorization header when a redirect leaves the host. */
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, MAX_REDIRS);
    }
    set_method(curl, req, &x);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL); /* errbuf dies with this frame */
    if (rc == CURLE_SSL_CONNECT_ERROR && c->insecure && req->url[0] == '/' &&
        mk_str_has_prefix(c->base, "https://")) {
        /* An insecure registry that does not speak TLS at all: plain HTTP from now on. */
        char *plain = mk_xasprintf("http://%s", c->host);
        free(c->base);
        c->base = plain;
        return transfer(c, req, resp, ret_retry, err);
    }
    *ret_retry = false;
    if (rc != CURLE_OK) {
        if (x.sink_failed)
            return -1; /* the sink set err */
        if (mk_interrupted)
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
        if (reg_cancelled(c))
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "cancelled");
        *ret_retry = curl_retryable(rc);
        /* The error buffer names the host, the proxy or the certificate problem; for an
         * unknown CA, also where podman and docker users put a private one. */
        if (rc == CURLE_PEER_FAILED_VERIFICATION && *c->host)
            return mk_error_set(
                err, MK_ERR_FAILED, 0,
                "%s %s: %s (a registry with a private CA: put the CA in "
                "/etc/containers/certs.d/%s/ca.crt or give --cert-dir; --tls-verify=false "
                "skips the check)",
                req->method, url, errbuf[0] ? errbuf : curl_easy_strerror(rc), c->host);
        return mk_error_set(err, MK_ERR_FAILED, 0, "%s %s: %s", req->method, url,
                            errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_off_t filetime = -1;
    if (curl_easy_getinfo(curl, CURLINFO_FILETIME_T, &filetime) == CURLE_OK && filetime >= 0)
        resp->mtime = (int64_t)filetime;
    return 0;
}

/* ---- authentication --------------------------------------------------------------------- */

/* The value of key in a challenge like `Bearer realm="x",service="y",scope="z"`. */
static char *challenge_param(const char *ch, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = ch; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *eq = strchr(p, '=');
        if (!eq)
            return NULL;
        bool match = (size_t)(eq - p) == kl && strncasecmp(p, key, kl) == 0;
        p = eq + 1;
        struct mk_buf v = MK_BUF_INIT;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                mk_buf_addc(&v, *p);
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ',')
                mk_buf_addc(&v, *p++);
        }
        if (match)
            return mk_buf_detach(&v);
        mk_buf_release(&v);
    }
    return NULL;
}

static char *url_escape(CURL *curl, const char *s)
{
    char *e = curl_easy_escape(curl, s, 0);
    if (!e)
        MK_BUG("curl_easy_escape failed");
    char *r = mk_xstrdup(e);
    curl_free(e);
    return r;
}

static int bearer_token(struct reg_client *c, const char *challenge, struct mk_error **err)
{
    _cleanup_free_ char *realm = challenge_param(challenge, "realm");
    _cleanup_free_ char *service = challenge_param(challenge, "service");
    _cleanup_free_ char *scope = challenge_param(challenge, "scope");
    if (!realm || !(mk_str_has_prefix(realm, "https://") || mk_str_has_prefix(realm, "http://")))
        return mk_error_set(err, MK_ERR_FAILED, 0, "%s: bad token realm in the auth challenge",
                            c->host);
    struct mk_buf url = MK_BUF_INIT;
    mk_buf_adds(&url, realm);
    char sep = strchr(realm, '?') ? '&' : '?';
    if (service) {
        _cleanup_free_ char *e = url_escape(c->curl, service);
        mk_buf_addf(&url, "%cservice=%s", sep, e);
        sep = '&';
    }
    if (scope) {
        _cleanup_free_ char *e = url_escape(c->curl, scope);
        mk_buf_addf(&url, "%cscope=%s", sep, e);
    }
    _cleanup_free_ char *u = mk_buf_detach(&url);
    /* Credentials go no less protected to the token server than to the registry: an http
     * realm of an https registry would put them on the wire in clear (a realm is whatever
     * the 401 says, and the 401 may come from a proxy or a hostile registry). */
    if (c->creds && mk_str_has_prefix(realm, "http://") && !mk_str_has_prefix(c->base, "http://"))
        return mk_error_set(err, MK_ERR_FAILED, 0,
                            "%s: refusing to send credentials to the plain-http token realm "
                            "\"%s\" of an https registry",
                            c->host, realm);
    /* The token endpoint sees the user's credentials, never a previous token. */
    free(c->auth_header);
    c->auth_header = NULL;
    if (c->creds) {
        _cleanup_free_ char *b = reg_base64(c->creds, strlen(c->creds));
        c->auth_header = mk_xasprintf("Authorization: Basic %s", b);
        explicit_bzero(b, strlen(b));
    }
    struct reg_req req = {.method = "GET", .url = u, .fd = -1, .follow = true};
    struct reg_resp resp = {0};
    bool retry = false;
    int r = -1;
    for (int attempt = 0;; attempt++) {
        r = transfer(c, &req, &resp, &retry, err);
        if (r == 0 && !reg_status_retryable(resp.status))
            break;
        if ((r < 0 && !retry) || attempt >= c->retries || !reg_backoff(c, attempt + 1))
            break;
        if (r < 0 && err && *err) {
            mk_error_free(*err);
            *err = NULL;
        }
    }
    free(c->auth_header);
    c->auth_header = NULL;
    if (r < 0) {
        reg_resp_release(&resp);
        return mk_error_wrap(err, "getting a token");
    }
    if (resp.status != 200) {
        r = resp.status == 401 || resp.status == 403
                ? mk_error_set(err, MK_ERR_FAILED, 0,
                               "%s: authentication failed%s%.*s%s (token server answered %ld)",
                               c->host, c->creds ? " for user \"" : "",
                               c->creds ? (int)strcspn(c->creds, ":") : 0, c->creds ? c->creds : "",
                               c->creds ? "\"" : "", resp.status)
                : reg_status_error(&resp, "getting a token", err);
        reg_resp_release(&resp);
        return r;
    }
    json_error_t jerr;
    _cleanup_json_ json_t *j =
        json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, &jerr);
    reg_resp_release(&resp);
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (!tok)
        tok = json_string_value(json_object_get(j, "access_token"));
    if (!tok || !*tok || strpbrk(tok, "\r\n"))
        return mk_error_set(err, MK_ERR_FAILED, 0, "%s: the token server sent no token", c->host);
    c->auth_header = mk_xasprintf("Authorization: Bearer %s", tok);
    return 0;
}

/* Answers a 401's challenge; 1 when there is something new to try, 0 when not. */
static int authenticate(struct reg_client *c, const char *challenge, struct mk_error **err)
{
    if (!challenge)
        return 0;
    if (strncasecmp(challenge, "Basic", 5) == 0) {
        if (!c->creds)
            return 0;
        _cleanup_free_ char *b = reg_base64(c->creds, strlen(c->creds));
        _cleanup_free_ char *h = mk_xasprintf("Authorization: Basic %s", b);
        explicit_bzero(b, strlen(b));
        if (c->auth_header && strcmp(c->auth_header, h) == 0)
            return 0; /* these credentials were refused already */
        free(c->auth_header);
        c->auth_header = MK_TAKE_PTR(h);
        return 1;
    }
    if (strncasecmp(challenge, "Bearer", 6) == 0) {
        if (bearer_token(c, challenge + 6, err) < 0)
            return -1;
        return 1;
    }
    return 0;
}

int reg_transfer(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                 bool *ret_retry, struct mk_error **err)
{
    return transfer(c, req, resp, ret_retry, err);
}

int reg_do(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp, bool *ret_retry,
           struct mk_error **err)
{
    if (transfer(c, req, resp, ret_retry, err) < 0)
        return -1;
    /* Go's TLS server answers plain HTTP with this 400: say what it means (a HEAD's answer has
     * no body, so ask /v2/ to tell). */
    if (resp->status == 400 && mk_str_has_prefix(c->base, "http://") &&
        (resp->body.len ? strstr(resp->body.data, TLS_REFUSAL) != NULL : speaks_tls(c, req)))
        return mk_error_set(err, MK_ERR_FAILED, 0,
                            "%s: the registry speaks TLS (HTTPS), but was spoken to in plain HTTP "
                            "(it answered HTTP 400): use --tls-verify=true, and for a private CA "
                            "put it in /etc/containers/certs.d/%s/ca.crt",
                            c->host, c->host);
    if (resp->status != 401)
        return 0;
    _cleanup_free_ char *challenge = resp->www_auth ? mk_xstrdup(resp->www_auth) : NULL;
    int r = authenticate(c, challenge, err);
    if (r < 0 || (r > 0 && transfer(c, req, resp, ret_retry, err) < 0))
        return -1;
    if (resp->status != 401)
        return 0;
    /* Say whose credentials, for which registry, and what to do: "authentication required"
     * alone does not tell a wrong password from a missing login. */
    *ret_retry = false;
    if (!c->creds)
        return mk_error_set(err, MK_ERR_FAILED, 0,
                            "%s: authentication required: no credentials for this registry (use "
                            "\"mkimg login %s\", --creds or --authfile)",
                            c->host, c->host);
    return mk_error_set(err, MK_ERR_FAILED, 0,
                        "%s: authentication failed for user \"%.*s\" (the registry refused the "
                        "credentials or this user's access)",
                        c->host, (int)strcspn(c->creds, ":"), c->creds);
}

bool reg_status_retryable(long status)
{
    return status == 429 || (status >= 500 && status <= 599);
}

bool reg_backoff(const struct reg_client *c, int attempt)
{
    long ms = 100L << (attempt < 6 ? attempt - 1 : 5);
    if (ms > 2000)
        ms = 2000;
    /* In slices, so a cancelled sibling (no signal reaches this thread) stops us soon. */
    for (; ms > 0 && !reg_cancelled(c); ms -= 50) {
        struct timespec ts = {0, (ms < 50 ? ms : 50) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !reg_cancelled(c))
            ;
    }
    return !reg_cancelled(c);
}

int reg_request(struct reg_client *c, const struct reg_req *req, struct reg_resp *resp,
                struct mk_error **err)
{
    for (int attempt = 0;; attempt++) {
        bool retry = false;
        struct mk_error *e = NULL;
        int r = reg_do(c, req, resp, &retry, &e);
        if (r == 0 && !reg_status_retryable(resp->status))
            return 0;
        bool again = (r == 0 || retry) && attempt < c->retries;
        if (again)
            reg_log(c, "retrying %s %s (%s)", req->method, req->url,
                    r < 0 ? e->msg : "server busy or failing");
        if (!again || !reg_backoff(c, attempt + 1)) {
            if (r < 0) {
                if (err && !*err)
                    *err = e;
                else
                    mk_error_free(e);
                return -1;
            }
            return 0; /* the caller reports the last status */
        }
        mk_error_free(e);
    }
}

int reg_status_error(const struct reg_resp *resp, const char *what, struct mk_error **err)
{
    /* {"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown",...}]} */
    const char *msg = NULL, *code = NULL;
    json_error_t jerr;
    _cleanup_json_ json_t *j =
        resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, &jerr) : NULL;
    json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
    msg = json_string_value(json_object_get(e0, "message"));
    code = json_string_value(json_object_get(e0, "code"));
    int ecode = MK_ERR_FAILED;
    if (resp->status == 404 ||
        (code && (strcmp(code, "MANIFEST_UNKNOWN") == 0 || strcmp(code, "NAME_UNKNOWN") == 0 ||
                  strcmp(code, "BLOB_UNKNOWN") == 0)))
        ecode = MK_ERR_NOT_FOUND;
    if (resp->status == 401)
        return mk_error_set(err, MK_ERR_FAILED, 0, "%s: authentication required%s%s", what,
                            msg ? ": " : "", msg ? msg : "");
    if (msg)
        return mk_error_set(err, ecode, 0, "%s: %s (HTTP %ld)", what, msg, resp->status);
    return mk_error_set(err, ecode, 0, "%s: the registry answered HTTP %ld", what, resp->status);
}
