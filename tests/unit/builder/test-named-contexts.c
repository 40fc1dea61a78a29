/* --build-context: how NAME=VALUE specs are checked and how a Dockerfile's names find them
 * (normalized and familiar, as BuildKit compares them), which sources are git repositories,
 * and what ADD --checksum takes as a git commit. docker-image:// values need no store work,
 * so they show the lookup; the other kinds are covered by tests/integration/t4150. */
#include "builder/internal.h"
#include "tap.h"

static void lookup_case(const struct mk_strv *nc, const char *name, const char *want)
{
    const char *got = builder_named_context(nc, name);
    tap_ok(want ? got && strcmp(got, want) == 0 : !got, "\"%s\" finds %s (got %s)", name,
           want ? want : "nothing", got ? got : "nothing");
}

static void bad_case(struct mk_store *store, const char *spec, const char *want_msg)
{
    struct mk_strv specs = MK_STRV_INIT, out = MK_STRV_INIT;
    mk_strv_push(&specs, spec);
    struct mk_error *err = NULL;
    int r = builder_named_contexts_prepare(store, &specs, NULL, &out, &err);
    _cleanup_free_ char *msg = err ? mk_error_format(err) : NULL;
    tap_ok(r < 0 && err && err->code == MK_ERR_USAGE && strcmp(msg, want_msg) == 0,
           "%s is a usage error: %s", spec, msg ? msg : "(none)");
    mk_error_free(err);
    mk_strv_release(&specs);
    mk_strv_release(&out);
}

int main(void)
{
    tap_tmpdir();
    struct mk_store *store = NULL;
    struct mk_error *err = NULL;
    if (layerstore_open("store", &store, &err) < 0) {
        tap_ok(0, "open a store: %s", err->msg);
        return tap_done();
    }
    struct mk_strv specs = MK_STRV_INIT, nc = MK_STRV_INIT;
    mk_strv_push(&specs, "alpine=docker-image://busybox:1");
    mk_strv_push(&specs, "build=docker-image://reg.example:5000/x/y:2");
    mk_strv_push(&specs, "ghcr.io/o/base:3=docker-image://other");
    tap_ok(builder_named_contexts_prepare(store, &specs, NULL, &nc, &err) == 0,
           "docker-image:// specs prepare");
    lookup_case(&nc, "alpine", "busybox:1");
    lookup_case(&nc, "alpine:latest", "busybox:1");
    lookup_case(&nc, "docker.io/library/alpine", "busybox:1");
    lookup_case(&nc, "docker.io/library/alpine:latest", "busybox:1");
    lookup_case(&nc, "alpine:3", NULL);
    lookup_case(&nc, "build", "reg.example:5000/x/y:2");
    lookup_case(&nc, "ghcr.io/o/base:3", "other");
    lookup_case(&nc, "ghcr.io/o/base", NULL);
    lookup_case(&nc, "Build", NULL);
    lookup_case(&nc, "other", NULL);
    lookup_case(NULL, "alpine", NULL);

    bad_case(store, "foo", "--build-context \"foo\": expected NAME=VALUE");
    bad_case(store, "=dir", "--build-context \"=dir\": expected NAME=VALUE");
    bad_case(store, "foo=", "--build-context \"foo=\": expected NAME=VALUE");
    bad_case(store, "Foo=dir", "--build-context \"Foo=dir\": invalid context name \"Foo\"");
    bad_case(store, "foo=s3://b/k",
             "--build-context \"foo=s3://b/k\": unknown scheme \"s3://\" (use a directory, "
             "docker-image://, oci-layout://, an http(s) URL or a git URL)");

    tap_ok(builder_source_is_git("github.com/o/r"), "github.com/ shorthand is git");
    tap_ok(builder_source_is_git("https://h/r.git#main:sub"), "https .git URL is git");
    tap_ok(builder_source_is_git("git@h:o/r.git"), "git@ is git");
    tap_ok(!builder_source_is_git("https://h.git"), "a host ending in .git is no repository");
    tap_ok(!builder_source_is_git("https://h/x.tar.gz"), "a tarball URL is no repository");

    tap_ok(builder_git_commit_valid("0123456789abcdef0123456789abcdef01234567"), "40 hex");
    tap_ok(builder_git_commit_valid(
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
           "64 hex (sha256 repositories)");
    tap_ok(!builder_git_commit_valid("0123456789ABCDEF0123456789abcdef01234567"), "uppercase");
    tap_ok(!builder_git_commit_valid("0123456"), "abbreviated");
    tap_ok(!builder_git_commit_valid("sha256:0123456789abcdef0123456789abcdef01234567"),
           "a digest prefix");
    mk_strv_release(&specs);
    mk_strv_release(&nc);
    layerstore_free(store);
    return tap_done();
}
