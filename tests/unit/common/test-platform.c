/* Platforms: parsing and containerd's normalization, formatting, malformed input refused. */
#include <string.h>

#include "common/platform.h"
#include "common/util.h"
#include "tap.h"

static const struct {
    const char *in, *want;
} good[] = {
    {"linux/amd64", "linux/amd64"},     {"linux/arm64", "linux/arm64"},
    {"linux/arm64/v8", "linux/arm64"},  {"linux/arm64/v9", "linux/arm64/v9"},
    {"linux/aarch64", "linux/arm64"},   {"linux/x86_64", "linux/amd64"},
    {"linux/x86-64", "linux/amd64"},    {"linux/i386", "linux/386"},
    {"linux/i686", "linux/386"},        {"linux/armhf", "linux/arm/v7"},
    {"linux/armel/v6", "linux/arm/v6"}, {"linux/ppc64el", "linux/ppc64le"},
    {"arm64", "linux/arm64"},           {"aarch64", "linux/arm64"},
    {"riscv64", "linux/riscv64"},       {"linux/arm", "linux/arm/v7"},
    {"linux/arm/v6", "linux/arm/v6"},   {"linux/riscv64", "linux/riscv64"},
    {"windows/amd64", "windows/amd64"}, {"linux/s390x", "linux/s390x"},
    {"freebsd/amd64", "freebsd/amd64"}, {"linux/my_arch-1", "linux/my_arch-1"},
};

static const char *const bad[] = {
    "linux",
    "windows",
    "linux/",
    "/amd64",
    "/",
    "linux//v7",
    "linux/amd64/",
    "linux/arm64/v8/x",
    "a/b/c/d",
    "Linux/amd64",
    "linux/AMD64",
    "linux/amd64 ",
    " linux/amd64",
    "linux/am.d64",
    "linux,linux/arm64",
    "linux/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/amd64",
};

int main(void)
{
    struct mk_platform host;
    mk_platform_host(&host);
    char host_s[MK_PLATFORM_MAX];
    mk_platform_format(&host, host_s);
    for (size_t i = 0; i < MK_ARRAY_SIZE(good); i++) {
        struct mk_platform p;
        struct mk_error *err = NULL;
        char got[MK_PLATFORM_MAX] = "";
        if (mk_platform_parse(good[i].in, &p, &err) == 0)
            mk_platform_format(&p, got);
        else
            snprintf(got, sizeof(got), "error: %s", err->msg);
        tap_is_str(got, good[i].want, "parse \"%s\"", good[i].in);
        mk_error_free(err);
    }
    for (size_t i = 0; i < MK_ARRAY_SIZE(bad); i++) {
        struct mk_platform p;
        struct mk_error *err = NULL;
        int r = mk_platform_parse(bad[i], &p, &err);
        _cleanup_free_ char *want = mk_xasprintf(
            "invalid platform \"%s\" (expected OS/ARCH[/VARIANT], e.g. linux/arm64)", bad[i]);
        tap_ok(r < 0 && err && err->code == MK_ERR_USAGE, "\"%s\" refused as a usage error",
               bad[i]);
        tap_is_str(err ? err->msg : "(no error)", want, "\"%s\": the message", bad[i]);
        mk_error_free(err);
    }

    struct mk_platform empty, null;
    tap_ok(mk_platform_parse("", &empty, NULL) == 0 && mk_platform_parse(NULL, &null, NULL) == 0 &&
               mk_platform_equal(&host, &empty) && mk_platform_equal(&host, &null),
           "empty and NULL are the host's platform (%s)", host_s);
    tap_ok(strcmp(host.os, "linux") == 0 && strcmp(host.arch, mk_host_arch()) == 0 &&
               strcmp(mk_host_arch(), "unknown") != 0,
           "the host is linux/%s", mk_host_arch());

    struct mk_platform a, b;
    mk_platform_set(&a, "linux", "aarch64", "v8");
    mk_platform_set(&b, "linux", "arm64", NULL);
    tap_ok(mk_platform_equal(&a, &b), "set normalizes: linux/aarch64/v8 is linux/arm64");
    mk_platform_set(&a, "linux", "arm", "");
    tap_is_str(a.variant, "v7", "set normalizes: arm without a variant is v7");
    mk_platform_set(&b, "linux", "arm", "v6");
    tap_ok(!mk_platform_equal(&a, &b), "arm/v6 is not arm/v7");
    return tap_done();
}
