/* Lazy images (layerstore/cache-lazy.c): a lazy layer record reads back what was written, a
 * damaged one is an error, a lazy name maps to its manifest and goes with untag, and prune
 * keeps the records a lazy image uses and drops the rest. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic-file.h"
#include "common/fsutil.h"
#include "layerstore/layerstore.h"
#include "tap.h"
#include "store-fixture.h"

static void digest_of(const char *s, char out[MK_DIGEST_SIZE])
{
    mk_sha256_buffer(s, strlen(s), out);
}

static void test_layers(struct mk_store *st)
{
    struct mk_error *err = NULL;
    struct mk_lazy_layer l = {.media_type = (char *)"application/vnd.oci.image.layer.v1.tar+gzip",
                              .size = 4242,
                              .source = (char *)"127.0.0.1:5000/cache/app:main"};
    digest_of("blob", l.digest);
    digest_of("diff", l.diff_id);
    mk_chain_id("", l.diff_id, l.chain_id);
    tap_ok(layerstore_lazy_layer_put(st, &l, &err) == 0, "a lazy layer is recorded");
    struct mk_lazy_layer got;
    tap_ok(layerstore_lazy_layer_get(st, l.diff_id, &got, &err) == 0, "and read back");
    tap_ok(strcmp(got.digest, l.digest) == 0 && strcmp(got.chain_id, l.chain_id) == 0 &&
               got.parent[0] == '\0' && got.size == 4242,
           "with its blob, chain and size");
    tap_is_str(got.source, l.source, "its source");
    tap_is_str(got.media_type, l.media_type, "and media type");
    layerstore_lazy_layer_release(&got);

    char other[MK_DIGEST_SIZE];
    digest_of("other", other);
    tap_ok(layerstore_lazy_layer_get(st, other, &got, &err) < 0 && err->code == MK_ERR_NOT_FOUND,
           "an unknown diff ID is MK_ERR_NOT_FOUND");
    mk_error_free(err);
    err = NULL;

    _cleanup_free_ char *path = mk_xasprintf("store/lazy/layers/%s", mk_digest_hex(l.diff_id));
    tap_ok(mk_write_file_atomic(AT_FDCWD, path, "{\"digest\": 1}", 13, 0644, NULL) == 0 &&
               layerstore_lazy_layer_get(st, l.diff_id, &got, &err) < 0 &&
               err->code == MK_ERR_PARSE,
           "a damaged record is MK_ERR_PARSE");
    mk_error_free(err);
    err = NULL;
    layerstore_lazy_layer_drop(st, l.diff_id);
    tap_ok(access(path, F_OK) < 0, "drop removes the record");
}

static void test_refs(struct mk_store *st)
{
    struct mk_error *err = NULL;
    char m1[MK_DIGEST_SIZE], m2[MK_DIGEST_SIZE], got[MK_DIGEST_SIZE];
    digest_of("manifest 1", m1);
    digest_of("manifest 2", m2);
    tap_ok(layerstore_lazy_ref_get(st, "app", got) < 0, "no lazy name yet");
    tap_ok(layerstore_lazy_tag(st, "app", m1, &err) == 0 &&
               layerstore_lazy_ref_get(st, "app:latest", got) == 0 && strcmp(got, m1) == 0,
           "a lazy name maps to its manifest (as a local name)");
    tap_ok(layerstore_lazy_tag(st, "app:latest", m2, &err) == 0 &&
               layerstore_lazy_ref_get(st, "app", got) == 0 && strcmp(got, m2) == 0,
           "tagging again moves it");
    tap_ok(layerstore_lazy_tag(st, "other:1", m1, &err) == 0, "a second lazy name");
    struct mk_strv all = MK_STRV_INIT;
    tap_ok(layerstore_lazy_manifests(st, &all, &err) == 0 && all.n == 2, "both are listed");
    mk_strv_release(&all);
    layerstore_lazy_untag(st, "app");
    tap_ok(layerstore_lazy_ref_get(st, "app", got) < 0, "untag removes the name");
    tap_ok(layerstore_lazy_tag(st, "not a valid name!", m1, &err) < 0, "a bad name is refused");
    mk_error_free(err);
    layerstore_lazy_untag(st, "other:1");
}

int main(void)
{
    struct mk_store *st = fixture_store();
    test_layers(st);
    test_refs(st);
    layerstore_free(st);
    return tap_done();
}
