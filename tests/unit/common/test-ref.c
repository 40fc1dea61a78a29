/* Image references: the grammar, docker's normalization, local names and the exact error. */
#include <string.h>

#include "common/ref.h"
#include "common/util.h"
#include "tap.h"

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct good_case {
    const char *in;
    const char *domain, *path, *tag, *digest; /* tag/digest NULL: none */
    const char *local;                        /* NULL: the input as written */
};

static const struct good_case good[] = {
    {"busybox", "docker.io", "library/busybox", "latest", NULL, "busybox:latest"},
    {"busybox:1.36", "docker.io", "library/busybox", "1.36", NULL, NULL},
    {"user/app", "docker.io", "user/app", "latest", NULL, "user/app:latest"},
    {"docker.io/library/alpine:3", "docker.io", "library/alpine", "3", NULL, NULL},
    {"docker.io/alpine", "docker.io", "library/alpine", "latest", NULL, "docker.io/alpine:latest"},
    {"index.docker.io/alpine:3", "docker.io", "library/alpine", "3", NULL, NULL},
    {"docker.io/user/app", "docker.io", "user/app", "latest", NULL, "docker.io/user/app:latest"},
    {"127.0.0.1:5000/test/app:v1", "127.0.0.1:5000", "test/app", "v1", NULL, NULL},
    {"localhost/app", "localhost", "app", "latest", NULL, "localhost/app:latest"},
    {"localhost:5000/app", "localhost:5000", "app", "latest", NULL, "localhost:5000/app:latest"},
    {"localhost", "docker.io", "library/localhost", "latest", NULL, "localhost:latest"},
    {"[::1]:5000/app:t", "[::1]:5000", "app", "t", NULL, NULL},
    {"[fe80::1]/x/y", "[fe80::1]", "x/y", "latest", NULL, "[fe80::1]/x/y:latest"},
    {"[2001:DB8::1]:443/x", "[2001:DB8::1]:443", "x", "latest", NULL, "[2001:DB8::1]:443/x:latest"},
    {"quay.io/a/b/c:x_y-z.1", "quay.io", "a/b/c", "x_y-z.1", NULL, NULL},
    {"Registry.Example.com/a_b/c-d.e", "Registry.Example.com", "a_b/c-d.e", "latest", NULL,
     "Registry.Example.com/a_b/c-d.e:latest"},
    {"host-1.example.com:65535/x", "host-1.example.com:65535", "x", "latest", NULL,
     "host-1.example.com:65535/x:latest"},
    {"ex.com", "docker.io", "library/ex.com", "latest", NULL, "ex.com:latest"},
    {"0/x", "docker.io", "0/x", "latest", NULL, "0/x:latest"},
    {"my-app__x.y", "docker.io", "library/my-app__x.y", "latest", NULL, "my-app__x.y:latest"},
    {"a--b---c", "docker.io", "library/a--b---c", "latest", NULL, "a--b---c:latest"},
    {"a_b.c", "docker.io", "library/a_b.c", "latest", NULL, "a_b.c:latest"},
    {"app:V_1.0-rc", "docker.io", "library/app", "V_1.0-rc", NULL, NULL},
    {"app:_x", "docker.io", "library/app", "_x", NULL, NULL},
    {"app@" D64, "docker.io", "library/app", NULL, D64, NULL},
    {"reg:443/app:t@" D64, "reg:443", "app", "t", D64, NULL},
    {"a.b/c:1@" D64, "a.b", "c", "1", D64, NULL},
};

struct bad_case {
    const char *in;
    const char *why; /* after "invalid reference \"IN\": " */
};

static const struct bad_case bad[] = {
    {"", "empty name"},
    {"UPPER", "repository name must be lowercase"},
    {"Bad:Name", "repository name must be lowercase"},
    {"ex.com/App", "repository name must be lowercase"},
    {"Foo/bar", "repository name must be lowercase"},
    {"app:", "bad tag \"\""},
    {"app:-bad", "bad tag \"-bad\""},
    {"app:.x", "bad tag \".x\""},
    {"app:a+b", "bad tag \"a+b\""},
    {"app@sha256:short", "bad digest (expected sha256: and 64 lowercase hex digits)"},
    {"app@md5:0123", "bad digest (expected sha256: and 64 lowercase hex digits)"},
    {"app@", "bad digest (expected sha256: and 64 lowercase hex digits)"},
    {"app@SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
     "bad digest (expected sha256: and 64 lowercase hex digits)"},
    {":tag", "missing repository name"},
    {"@" D64, "missing repository name"},
    {"host:port/app", "bad registry host \"host:port\""},
    {"ex..com/app", "bad registry host \"ex..com\""},
    {"-ex.com/app", "bad registry host \"-ex.com\""},
    {"ex-.com/app", "bad registry host \"ex-.com\""},
    {"ex.com:/app", "bad registry host \"ex.com:\""},
    {"h.io:123456/app", "bad registry host \"h.io:123456\""},
    {"ex_1.com/app", "bad registry host \"ex_1.com\""},
    {"[::1/app", "bad registry host \"[::1\""},
    {"[]/app", "bad registry host \"[]\""},
    {"[::g]:5000/app", "bad registry host \"[::g]:5000\""},
    {"[::1]x/app", "bad registry host \"[::1]x\""},
};

#define BAD_NAME(p)                                                                                \
    "bad repository name \"" p "\" (lowercase letters and digits joined by \".\", "                \
    "\"_\", \"__\" or \"-\", components split by \"/\")"

static const struct bad_case bad_path[] = {
    {"/app", BAD_NAME("/app")},         {"app/", BAD_NAME("app/")},
    {"a//b", BAD_NAME("a//b")},         {"app:tag:x", BAD_NAME("app:tag")},
    {"-app", BAD_NAME("-app")},         {"app-", BAD_NAME("app-")},
    {"a..b", BAD_NAME("a..b")},         {"a._b", BAD_NAME("a._b")},
    {"a___b", BAD_NAME("a___b")},       {"a.-b", BAD_NAME("a.-b")},
    {"ex ample", BAD_NAME("ex ample")}, {"ex.com/", BAD_NAME("")},
    {"a/b\x01", BAD_NAME("a/b\x01")},
};

static void check_good(const struct good_case *c)
{
    struct mk_ref *r = NULL;
    struct mk_error *err = NULL;
    if (!tap_ok(mk_ref_parse(c->in, &r, &err) == 0, "parse \"%s\"", c->in)) {
        tap_diag("%s", err ? err->msg : "?");
        mk_error_free(err);
        return;
    }
    _cleanup_free_ char *want = mk_xasprintf("%s|%s|%s|%s", c->domain, c->path,
                                             c->tag ? c->tag : "-", c->digest ? c->digest : "-");
    _cleanup_free_ char *got = mk_xasprintf("%s|%s|%s|%s", r->domain, r->path,
                                            r->tag ? r->tag : "-", r->digest ? r->digest : "-");
    tap_is_str(got, want, "\"%s\": domain|path|tag|digest", c->in);
    _cleanup_free_ char *q = mk_ref_qualified(r);
    _cleanup_free_ char *want_q =
        mk_xasprintf("%s/%s%s%s%s%s", c->domain, c->path, c->tag ? ":" : "", c->tag ? c->tag : "",
                     c->digest ? "@" : "", c->digest ? c->digest : "");
    tap_is_str(q, want_q, "\"%s\" qualified", c->in);
    mk_ref_free(r);
    _cleanup_free_ char *local = mk_ref_local_name(c->in, NULL);
    tap_is_str(local, c->local ? c->local : c->in, "\"%s\" local name", c->in);
}

static void check_bad(const struct bad_case *c)
{
    struct mk_ref *r = NULL;
    struct mk_error *err = NULL;
    int rc = mk_ref_parse(c->in, &r, &err);
    _cleanup_free_ char *want = mk_xasprintf("invalid reference \"%s\": %s", c->in, c->why);
    tap_ok(rc < 0 && !r && err && err->code == MK_ERR_INVALID, "refuse \"%s\"", c->in);
    tap_is_str(err ? err->msg : "(no error)", want, "\"%s\": the message says why", c->in);
    mk_error_free(err);
    err = NULL;
    char *local = mk_ref_local_name(c->in, &err);
    tap_ok(!local && err && strcmp(err->msg, want) == 0, "\"%s\": no local name either", c->in);
    free(local);
    mk_error_free(err);
}

static char *repeat(char c, size_t n, const char *prefix, const char *suffix)
{
    _cleanup_free_ char *run = mk_xmalloc(n + 1);
    memset(run, c, n);
    run[n] = '\0';
    return mk_xasprintf("%s%s%s", prefix, run, suffix);
}

/* The caps: a tag of 128, a qualified name of 255, input of 4096. */
static void check_lengths(void)
{
    struct mk_ref *r = NULL;
    _cleanup_free_ char *tag128 = repeat('t', 128, "app:", "");
    _cleanup_free_ char *tag129 = repeat('t', 129, "app:", "");
    tap_ok(mk_ref_parse(tag128, &r, NULL) == 0 && strlen(r->tag) == 128, "a 128-character tag");
    mk_ref_free(r);
    r = NULL;
    struct mk_error *err = NULL;
    tap_ok(mk_ref_parse(tag129, &r, &err) < 0 && err &&
               mk_str_has_suffix(err->msg, ": a tag has at most 128 characters"),
           "a 129-character tag is refused, saying why");
    mk_error_free(err);
    err = NULL;
    /* "a.io/" + 250: 255 qualified; docker.io/library/ + 237: 255 too. */
    _cleanup_free_ char *n255 = repeat('a', 250, "a.io/", ":t");
    _cleanup_free_ char *n256 = repeat('a', 251, "a.io/", ":t");
    _cleanup_free_ char *short255 = repeat('b', 237, "", "");
    _cleanup_free_ char *short256 = repeat('b', 238, "", "");
    tap_ok(mk_ref_parse(n255, &r, NULL) == 0, "a name of 255 characters");
    mk_ref_free(r);
    r = NULL;
    tap_ok(mk_ref_parse(short255, &r, NULL) == 0, "a short name of 255 characters qualified");
    mk_ref_free(r);
    r = NULL;
    const char *over[] = {n256, short256};
    for (size_t i = 0; i < MK_ARRAY_SIZE(over); i++) {
        tap_ok(mk_ref_parse(over[i], &r, &err) < 0 && err &&
                   mk_str_has_suffix(err->msg,
                                     ": repository name must not be more than 255 characters"),
               "a name of 256 characters qualified is refused (%zu)", i);
        mk_error_free(err);
        err = NULL;
    }
    _cleanup_free_ char *huge = repeat('a', 5000, "", "");
    tap_ok(mk_ref_parse(huge, &r, &err) < 0 && err &&
               strcmp(err->msg, "invalid reference: longer than 4096 characters") == 0,
           "5000 characters are refused without being quoted back");
    mk_error_free(err);
}

/* The familiar form: docker.io and its library/ left out, nothing else. */
static void check_familiar(void)
{
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"alpine", "alpine:latest"},
        {"docker.io/library/alpine", "alpine:latest"},
        {"index.docker.io/library/alpine:3", "alpine:3"},
        {"docker.io/alpine@" D64, "alpine@" D64},
        {"user/app:1", "user/app:1"},
        {"docker.io/user/app", "user/app:latest"},
        {"docker.io/library/a/b", "library/a/b:latest"},
        {"quay.io/library/alpine", "quay.io/library/alpine:latest"},
        {"localhost:5000/x:t@" D64, "localhost:5000/x:t@" D64},
        {"[::1]:5000/app", "[::1]:5000/app:latest"},
    };
    for (size_t i = 0; i < MK_ARRAY_SIZE(rows); i++) {
        struct mk_ref *r = NULL;
        _cleanup_free_ char *f =
            mk_ref_parse(rows[i].in, &r, NULL) == 0 ? mk_ref_familiar(r) : NULL;
        tap_is_str(f, rows[i].want, "\"%s\" familiar", rows[i].in);
        mk_ref_free(r);
    }
}

int main(void)
{
    tap_tmpdir();
    check_familiar();
    for (size_t i = 0; i < MK_ARRAY_SIZE(good); i++)
        check_good(&good[i]);
    for (size_t i = 0; i < MK_ARRAY_SIZE(bad); i++)
        check_bad(&bad[i]);
    for (size_t i = 0; i < MK_ARRAY_SIZE(bad_path); i++)
        check_bad(&bad_path[i]);
    check_lengths();
    tap_is_str(mk_ref_registry_host("docker.io"), "registry-1.docker.io",
               "docker.io's API is at registry-1.docker.io");
    tap_is_str(mk_ref_registry_host("[::1]:5000"), "[::1]:5000", "other hosts stay");
    mk_ref_free(NULL);
    return tap_done();
}
