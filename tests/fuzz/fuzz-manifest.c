/* libFuzzer target: manifest and index documents as a registry could send them. The first
 * byte picks the Content-Type the "registry" claims; the rest is the body. Loading either
 * fails with an error or yields a media type; an index resolves (or not) for a few
 * platforms; an image manifest's descriptors are valid digests. Also compiled into
 * tests/unit/registry/test-manifest-fuzz-corpus.c, which replays the corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"
#include "registry/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_ctypes[] = {
    NULL,
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "",
    "text/plain",
};

static const char *const fuzz_platforms[] = {NULL, "linux/amd64", "linux/arm64/v8", "a/b"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *ctype = fuzz_ctypes[data[0] % (sizeof(fuzz_ctypes) / sizeof(fuzz_ctypes[0]))];
    /* Bodies may hold NUL bytes: an exact copy, NUL-terminated like a received buffer. */
    size_t len = size - 1;
    char *body = mk_xmalloc(len + 1);
    memcpy(body, data + 1, len);
    body[len] = '\0';
    struct reg_manifest m = {0};
    struct mk_error *err = NULL;
    if (reg_manifest_load(body, len, ctype, "fuzz", &m, &err) < 0) {
        if (!err || !err->msg[0])
            abort();
        mk_error_free(err);
        return 0;
    }
    if (!m.media_type || !m.json || !mk_digest_valid(m.digest))
        abort();
    if (reg_is_index(m.media_type)) {
        for (size_t i = 0; i < sizeof(fuzz_platforms) / sizeof(fuzz_platforms[0]); i++) {
            struct mk_platform p;
            char d[MK_DIGEST_SIZE];
            if (mk_platform_parse(fuzz_platforms[i], &p, NULL) < 0)
                continue;
            err = NULL;
            if (reg_index_select(&m, &p, d, &err) == 0) {
                if (!mk_digest_valid(d) || err)
                    abort();
            } else if (!err) {
                abort();
            }
            mk_error_free(err);
        }
    } else {
        struct reg_blob_desc config, *layers = NULL;
        size_t n = 0;
        err = NULL;
        if (reg_manifest_blobs(&m, &config, &layers, &n, &err) == 0) {
            if (!mk_digest_valid(config.digest) || n > 4096)
                abort();
            for (size_t i = 0; i < n; i++)
                if (!mk_digest_valid(layers[i].digest))
                    abort();
            free(layers);
        } else if (!err || layers) {
            abort();
        }
        mk_error_free(err);
    }
    reg_manifest_release(&m);
    return 0;
}
