/* Platforms: parsing and containerd's normalization, formatting, malformed input refused. */
#include "layerstore/layerstore.h"
#include "tap.h"

static void parses_to(const char *in, const char *want)
{
    struct mk_platform p;
    struct mk_error *err = NULL;
    char got[MK_PLATFORM_MAX] = "";
    if (layerstore_platform_parse(in, &p, &err) == 0)
        layerstore_platform_format(&p, got);
    else
        snprintf(got, sizeof(got), "error: %s", err->msg);
    tap_ok(strcmp(got, want) == 0, "\"%s\" -> %s (got %s)", in, want, got);
    mk_error_free(err);
}

static void refused(const char *in)
{
    struct mk_platform p;
    struct mk_error *err = NULL;
    int r = layerstore_platform_parse(in, &p, &err);
    tap_ok(r < 0 && err && err->code == MK_ERR_USAGE, "\"%s\" refused as a usage error", in);
    mk_error_free(err);
}

int main(void)
{
    parses_to("linux/amd64", "linux/amd64");
    parses_to("linux/arm64", "linux/arm64");
    parses_to("linux/arm64/v8", "linux/arm64");
    parses_to("linux/aarch64", "linux/arm64");
    parses_to("linux/x86_64", "linux/amd64");
    parses_to("arm64", "linux/arm64");
    parses_to("linux/arm", "linux/arm/v7");
    parses_to("linux/arm/v6", "linux/arm/v6");
    parses_to("linux/riscv64", "linux/riscv64");
    parses_to("windows/amd64", "windows/amd64");
    refused("linux/");
    refused("/amd64");
    refused("linux/arm64/v8/x");
    refused("Linux/amd64");
    refused("linux/amd64 ");
    refused("linux/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");

    struct mk_platform host, empty, null;
    layerstore_platform_host(&host);
    tap_ok(layerstore_platform_parse("", &empty, NULL) == 0 &&
               layerstore_platform_parse(NULL, &null, NULL) == 0 &&
               layerstore_platform_equal(&host, &empty) && layerstore_platform_equal(&host, &null),
           "empty and NULL are the host's platform");
    tap_ok(strcmp(host.os, "linux") == 0 && strcmp(host.arch, layerstore_host_arch()) == 0,
           "the host is linux/%s", layerstore_host_arch());

    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.architecture = (char *)"aarch64";
    cfg.variant = (char *)"v8";
    struct mk_platform p;
    layerstore_config_platform(&cfg, &p);
    char s[MK_PLATFORM_MAX];
    layerstore_platform_format(&p, s);
    tap_ok(strcmp(s, "linux/arm64") == 0, "a config's platform is normalized (got %s)", s);
    return tap_done();
}
