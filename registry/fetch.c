/* registry/fetch.c - plain HTTP(S) downloads for ADD <url>: one GET, no registry protocol,
 * the body streamed into a file while its sha256 is computed. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "registry/internal.h"

struct fetch_sink {
    int fd;
    struct mk_sha256 *h;
    uint64_t n, max;
    const char *url;
    struct mk_error *err;
};

static int fetch_write(void *ctx, const void *data, size_t n)
{
    struct fetch_sink *s = ctx;
    if (n > s->max - s->n)
        return mk_error_set(&s->err, MK_ERR_INVALID, 0,
                            "downloading \"%s\": larger than %llu bytes", s->url,
                            (unsigned long long)s->max);
    if (mk_write_all(s->fd, data, n, &s->err) < 0)
        return mk_error_wrap(&s->err, "downloading \"%s\"", s->url);
    mk_sha256_update(s->h, data, n);
    s->n += n;
    return 0;
}

static int status_error(const char *url, long status, struct mk_error **err)
{
    return mk_error_set(err, status == 404 || status == 410 ? MK_ERR_NOT_FOUND : MK_ERR_FAILED, 0,
                        "downloading \"%s\": the server answered HTTP %ld", url, status);
}

int registry_fetch_url(const char *url, const struct registry_opts *opts, uint64_t max, int fd,
                       struct registry_fetch_result *ret, struct mk_error **err)
{
    if (!mk_str_has_prefix(url, "http://") && !mk_str_has_prefix(url, "https://"))
        return mk_error_set(err, MK_ERR_INVALID, 0, "downloading \"%s\": not an http(s) URL", url);
    struct reg_client *c = NULL;
    if (reg_client_new_plain(opts, &c, err) < 0)
        return -1;
    int r = -1;
    for (int attempt = 0;; attempt++) {
        struct fetch_sink sink = {.fd = fd, .h = mk_sha256_new(), .max = max, .url = url};
        struct reg_req req = {.method = "GET",
                              .url = url,
                              .fd = -1,
                              .follow = true,
                              .sink = fetch_write,
                              .sink_ctx = &sink};
        struct reg_resp resp = {0};
        bool retry = false;
        struct mk_error *e = NULL;
        int tr = -1;
        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
            mk_error_errno(&e, "downloading \"%s\": truncating the file", url);
        else
            tr = reg_transfer(c, &req, &resp, &retry, &e);
        if (sink.err) {
            /* The sink's own failure (too large, disk full) is the cause, not curl's abort. */
            mk_error_free(e);
            e = MK_TAKE_PTR(sink.err);
            retry = false;
            tr = -1;
        }
        bool ok = tr == 0 && resp.status >= 200 && resp.status < 300;
        if (ok) {
            mk_sha256_final(sink.h, ret->digest);
            ret->size = sink.n;
            ret->mtime = resp.mtime;
            r = 0;
        }
        mk_sha256_free(sink.h);
        long status = resp.status;
        reg_resp_release(&resp);
        if (ok)
            break;
        bool again = (tr == 0 ? reg_status_retryable(status) : retry) && attempt < c->retries;
        if (again)
            reg_log(c, "retrying GET %s (%s)", url, tr < 0 ? e->msg : "server busy or failing");
        if (again && reg_backoff(c, attempt + 1)) {
            mk_error_free(e);
            continue;
        }
        if (tr < 0) {
            if (e && e->code == MK_ERR_FAILED && mk_str_has_prefix(e->msg, "GET ")) {
                /* transfer() says "GET URL: reason"; the URL goes in quotes like ours. */
                const char *reason = e->msg + 4 + strlen(url);
                if (mk_str_has_prefix(e->msg + 4, url) && mk_str_has_prefix(reason, ": "))
                    mk_error_set(err, MK_ERR_FAILED, 0, "downloading \"%s\": %s", url, reason + 2);
            }
            if (err && !*err)
                *err = MK_TAKE_PTR(e);
            mk_error_free(e);
        } else {
            mk_error_free(e);
            status_error(url, status, err);
        }
        break;
    }
    reg_client_free(c);
    return r;
}
