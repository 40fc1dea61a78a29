/* Image references: docker's normalisation and clear errors for malformed names. */
#include "registry/registry.h"
#include "tap.h"

struct ref_case {
    const char *in, *domain, *path, *tag, *digest;
};

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct ref_case good[] = {
    {"busybox", "docker.io", "library/busybox", "latest", NULL},
    {"busybox:1.36", "docker.io", "library/busybox", "1.36", NULL},
    {"user/app", "docker.io", "user/app", "latest", NULL},
    {"docker.io/library/alpine:3", "docker.io", "library/alpine", "3", NULL},
    {"127.0.0.1:5000/test/app:v1", "127.0.0.1:5000", "test/app", "v1", NULL},
    {"localhost/app", "localhost", "app", "latest", NULL},
    {"quay.io/a/b/c:x_y-z.1", "quay.io", "a/b/c", "x_y-z.1", NULL},
    {"app@" D64, "docker.io", "library/app", NULL, D64},
    {"reg:443/app:t@" D64, "reg:443", "app", "t", D64},
    {"my-app__x.y", "docker.io", "library/my-app__x.y", "latest", NULL},
};

static const char *const bad[] = {
    "",     "UPPER", "app:",      "app:-bad",   "app@sha256:short", "/app",
    "app/", "a//b",  "app:tag:x", "ex.com/App", "app@md5:0123",     ":tag",
};

static void check_host(void)
{
    struct mk_ref *r = NULL;
    if (registry_ref_parse("busybox", &r, NULL) == 0)
        tap_is_str(registry_ref_host(r), "registry-1.docker.io", "docker.io talks to registry-1");
    registry_ref_free(r);
    r = NULL;
    if (registry_ref_parse("127.0.0.1:5000/x", &r, NULL) == 0)
        tap_is_str(registry_ref_host(r), "127.0.0.1:5000", "other hosts stay");
    registry_ref_free(r);
}

int main(void)
{
    tap_tmpdir();
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const struct ref_case *c = &good[i];
        struct mk_ref *r = NULL;
        struct mk_error *err = NULL;
        if (!tap_ok(registry_ref_parse(c->in, &r, &err) == 0, "parse \"%s\"", c->in)) {
            tap_diag("%s", err ? err->msg : "?");
            mk_error_free(err);
            continue;
        }
        tap_is_str(r->domain, c->domain, "\"%s\" domain", c->in);
        tap_is_str(r->path, c->path, "\"%s\" path", c->in);
        if (c->tag)
            tap_is_str(r->tag, c->tag, "\"%s\" tag", c->in);
        else
            tap_ok(r->tag == NULL, "\"%s\" has no tag", c->in);
        if (c->digest)
            tap_is_str(r->digest, c->digest, "\"%s\" digest", c->in);
        else
            tap_ok(r->digest == NULL, "\"%s\" has no digest", c->in);
        registry_ref_free(r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mk_ref *r = NULL;
        struct mk_error *err = NULL;
        int rc = registry_ref_parse(bad[i], &r, &err);
        tap_ok(rc < 0 && r == NULL && err && err->code == MK_ERR_INVALID && err->msg[0],
               "refuse \"%s\"%s%s", bad[i], err ? ": " : "", err ? err->msg : "");
        registry_ref_free(r);
        mk_error_free(err);
    }
    check_host();
    registry_ref_free(NULL);
    return tap_done();
}
