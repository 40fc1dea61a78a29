/* Manifest documents: media types, schema 1 refusal, platform selection, descriptor checks. */
#include <string.h>

#include "layerstore/layerstore.h"
#include "registry/internal.h"
#include "tap.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static int load(const char *json, const char *ctype, struct reg_manifest *m, struct mk_error **err)
{
    return reg_manifest_load(mk_xstrdup(json), strlen(json), ctype, "t", m, err);
}

static const char index_json[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":["
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DA "\","
    "\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DB "\","
    "\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DC "\","
    "\"size\":1,\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}";

static void test_index(void)
{
    struct reg_manifest m = {0};
    struct mk_error *err = NULL;
    if (!tap_ok(load(index_json, NULL, &m, &err) == 0, "load an index"))
        return;
    tap_ok(reg_is_index(m.media_type), "it is an index");
    struct mk_platform p;
    char d[MK_DIGEST_SIZE];
    mk_platform_parse("linux/amd64", &p, NULL);
    tap_ok(reg_index_select(&m, &p, d, NULL) == 0 && strcmp(d, DB) == 0, "linux/amd64");
    mk_platform_parse("linux/arm64/v8", &p, NULL);
    tap_ok(reg_index_select(&m, &p, d, NULL) == 0 && strcmp(d, DA) == 0, "linux/arm64/v8");
    mk_platform_parse("linux/arm64", &p, NULL);
    tap_ok(reg_index_select(&m, &p, d, NULL) == 0 && strcmp(d, DA) == 0,
           "no variant asked: any variant");
    mk_platform_parse("linux/arm64/v7", &p, NULL);
    int r = reg_index_select(&m, &p, d, &err);
    tap_ok(r < 0 && err && err->code == MK_ERR_NOT_FOUND, "a missing variant is not found");
    if (err)
        tap_is_str(err->msg,
                   "no image for linux/arm64/v7 in the index (it has: linux/arm64/v8, "
                   "linux/amd64, unknown/unknown)",
                   "the message lists what the index has");
    mk_error_free(err);
    err = NULL;
    reg_manifest_release(&m);
}

static void test_image(void)
{
    const char *json = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" DA
                       "\",\"size\":10},\"layers\":[{\"mediaType\":\"application/vnd.oci."
                       "image.layer.v1.tar+gzip\",\"digest\":\"" DB "\",\"size\":5}]}";
    struct reg_manifest m = {0};
    struct mk_error *err = NULL;
    if (!tap_ok(load(json, NULL, &m, &err) == 0, "load a manifest without mediaType"))
        return;
    tap_is_str(m.media_type, MK_MEDIA_OCI_MANIFEST, "recognised by its shape");
    char want[MK_DIGEST_SIZE];
    mk_sha256_buffer(json, strlen(json), want);
    tap_is_str(m.digest, want, "digest of the exact bytes");
    struct reg_blob_desc config, *layers = NULL;
    size_t n = 0;
    tap_ok(reg_manifest_blobs(&m, &config, &layers, &n, NULL) == 0 && n == 1 &&
               strcmp(config.digest, DA) == 0 && config.size == 10 &&
               strcmp(layers[0].digest, DB) == 0 && layers[0].size == 5,
           "descriptors");
    free(layers);
    reg_manifest_release(&m);

    const char *foreign = "{\"schemaVersion\":2,\"config\":{\"digest\":\"" DA "\",\"size\":1},"
                          "\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs."
                          "foreign.diff.tar.gzip\",\"digest\":\"" DB "\",\"size\":5}]}";
    load(foreign, NULL, &m, NULL);
    tap_ok(reg_manifest_blobs(&m, &config, &layers, &n, &err) < 0 && err &&
               err->code == MK_ERR_UNSUPPORTED,
           "foreign layers refused");
    mk_error_free(err);
    err = NULL;
    reg_manifest_release(&m);

    const char *baddesc = "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:x\",\"size\":1},"
                          "\"layers\":[]}";
    load(baddesc, NULL, &m, NULL);
    tap_ok(reg_manifest_blobs(&m, &config, &layers, &n, &err) < 0 && err &&
               err->code == MK_ERR_PARSE,
           "a bad config digest refused");
    mk_error_free(err);
    err = NULL;
    reg_manifest_release(&m);
}

static void test_refusals(void)
{
    struct reg_manifest m = {0};
    struct mk_error *err = NULL;
    int r = load("{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", NULL, &m, &err);
    tap_ok(r < 0 && err && err->code == MK_ERR_UNSUPPORTED && strstr(err->msg, "schema 1"),
           "schema 1 refused clearly");
    mk_error_free(err);
    err = NULL;
    r = load("{}", "application/vnd.docker.distribution.manifest.v1+prettyjws", &m, &err);
    tap_ok(r < 0 && err && err->code == MK_ERR_UNSUPPORTED, "signed schema 1 by Content-Type");
    mk_error_free(err);
    err = NULL;
    r = load("[1]", NULL, &m, &err);
    tap_ok(r < 0 && err && err->code == MK_ERR_PARSE, "not an object");
    mk_error_free(err);
    err = NULL;
    r = load("{\"a\":1,\"a\":2}", NULL, &m, &err);
    tap_ok(r < 0 && err && err->code == MK_ERR_PARSE, "duplicate keys refused");
    mk_error_free(err);
    err = NULL;
    r = load("{\"manifests\":[]}", "application/vnd.docker.distribution.manifest.list.v2+json; x",
             &m, &err);
    tap_ok(r == 0 && reg_is_index(m.media_type), "media type from the Content-Type");
    reg_manifest_release(&m);
}

int main(void)
{
    tap_tmpdir();
    test_index();
    test_image();
    test_refusals();
    return tap_done();
}
