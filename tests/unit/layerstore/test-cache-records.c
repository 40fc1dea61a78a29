/* The typed caches: every record kind reads back what was written, a record of another
 * key, kind or format is a miss, cache mounts lock as their sharing says. */
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

static void test_step(struct mk_store *st)
{
    struct mk_error *err = NULL;
    struct mk_step_record rec, got;
    memset(&rec, 0, sizeof(rec));
    digest_of("step key", rec.key);
    digest_of("layer", rec.layer.digest);
    memcpy(rec.layer.diff_id, rec.layer.digest, MK_DIGEST_SIZE);
    rec.layer.media_type = (char *)MK_MEDIA_OCI_LAYER;
    rec.layer.size = 12345;
    mk_chain_id("", rec.layer.diff_id, rec.chain_id);
    rec.history.created_by = (char *)"RUN /bin/sh -c make # buildkit";
    rec.history.comment = (char *)"buildkit.dockerfile.v0";
    struct mk_strv cfg = MK_STRV_INIT;
    mk_strv_push(&cfg, "WorkingDir=/src");
    rec.config = cfg;
    tap_ok(layerstore_step_record_put(st, &rec, &err) == 0, "a step record is stored");
    tap_ok(layerstore_step_record_get(st, rec.key, &got, &err) == 0, "and read back");
    tap_ok(!got.empty && strcmp(got.layer.digest, rec.layer.digest) == 0 &&
               strcmp(got.layer.diff_id, rec.layer.diff_id) == 0 && got.layer.size == 12345 &&
               strcmp(got.chain_id, rec.chain_id) == 0,
           "with its layer and chain");
    tap_is_str(got.layer.media_type, MK_MEDIA_OCI_LAYER, "and media type");
    tap_is_str(got.history.created_by, rec.history.created_by, "its history entry");
    tap_ok(got.history.created == NULL && !got.history.empty_layer, "without a time");
    tap_ok(got.config.n == 1 && strcmp(got.config.v[0], "WorkingDir=/src") == 0,
           "and its config changes");
    layerstore_step_record_release(&got);
    mk_strv_release(&cfg);

    struct mk_step_record empty = {.empty = true};
    digest_of("empty step", empty.key);
    empty.history.created_by = (char *)"WORKDIR /";
    empty.history.empty_layer = true;
    tap_ok(layerstore_step_record_put(st, &empty, &err) == 0 &&
               layerstore_step_record_get(st, empty.key, &got, &err) == 0 && got.empty &&
               got.history.empty_layer,
           "a step without a layer");
    layerstore_step_record_release(&got);

    struct mk_step_record bad = {.empty = false};
    digest_of("bad", bad.key);
    tap_ok(layerstore_step_record_put(st, &bad, &err) < 0 && err->code == MK_ERR_INVALID,
           "a step record without a valid layer is refused");
    mk_error_free(err);
    err = NULL;

    /* The same bytes under another key: the header names the key, so it is a miss. */
    char other[MK_DIGEST_SIZE];
    digest_of("other key", other);
    _cleanup_free_ char *from = mk_xasprintf("store/cache/steps/%s", mk_digest_hex(rec.key));
    _cleanup_free_ char *to = mk_xasprintf("store/cache/steps/%s", mk_digest_hex(other));
    char *bytes = NULL;
    size_t len = 0;
    mk_read_file_at(AT_FDCWD, from, 1 << 20, &bytes, &len, NULL);
    tap_ok(bytes && mk_str_has_prefix(bytes, "mkimg-cache steps 1 "),
           "records start with a header");
    mk_write_file_atomic(AT_FDCWD, to, bytes, len, 0600, NULL);
    tap_ok(layerstore_step_record_get(st, other, &got, &err) < 0 && err->code == MK_ERR_NOT_FOUND,
           "a record copied under another key is a miss");
    mk_error_free(err);
    err = NULL;
    /* An earlier mkimg's value in its place: a miss too. */
    mk_write_file_atomic(AT_FDCWD, from, "layer sha256:1 sha256:2\n", 24, 0600, NULL);
    tap_ok(layerstore_step_record_get(st, rec.key, &got, &err) < 0 && err->code == MK_ERR_NOT_FOUND,
           "an untyped value is a miss");
    mk_error_free(err);
    free(bytes);
}

static void test_others(struct mk_store *st)
{
    struct mk_error *err = NULL;
    char key[MK_DIGEST_SIZE], d1[MK_DIGEST_SIZE], d2[MK_DIGEST_SIZE];
    digest_of("explain key", key);
    digest_of("a", d1);
    digest_of("b", d2);
    struct mk_explain_record ex = {0}, exgot;
    layerstore_explain_add(&ex, "env VERSION", d1);
    layerstore_explain_add(&ex, "file src/a.c", d2);
    tap_ok(layerstore_explain_put(st, key, &ex, &err) == 0 &&
               layerstore_explain_get(st, key, &exgot, &err) == 0 && exgot.n == 2 &&
               strcmp(exgot.inputs[1].name, "file src/a.c") == 0 &&
               strcmp(exgot.inputs[1].digest, d2) == 0,
           "explain records keep their inputs in order");
    layerstore_explain_release(&ex);
    layerstore_explain_release(&exgot);

    char m[MK_DIGEST_SIZE];
    tap_ok(layerstore_image_record_put(st, key, d1, &err) == 0 &&
               layerstore_image_record_get(st, key, m, &err) == 0 && strcmp(m, d1) == 0,
           "image records: key -> manifest");
    tap_ok(layerstore_image_record_get(st, d2, m, &err) < 0 && err->code == MK_ERR_NOT_FOUND,
           "a missing record is MK_ERR_NOT_FOUND");
    mk_error_free(err);
    err = NULL;

    struct mk_context_file files[3] = {
        {.path = (char *)"src/a.c", .size = 1, .mtime_ns = 2, .ino = 3},
        {.path = (char *)"tab\there", .size = 1},
        {.path = (char *)"b", .size = 7, .mtime_ns = 8, .ino = 9},
    };
    memcpy(files[0].digest, d1, MK_DIGEST_SIZE);
    memcpy(files[1].digest, d1, MK_DIGEST_SIZE);
    memcpy(files[2].digest, d2, MK_DIGEST_SIZE);
    struct mk_context_file *cgot = NULL;
    size_t n = 0;
    tap_ok(layerstore_context_table_put(st, key, files, 3, &err) == 0 &&
               layerstore_context_table_get(st, key, &cgot, &n, &err) == 0,
           "context tables round-trip");
    tap_ok(n == 2 && strcmp(cgot[0].path, "src/a.c") == 0 && cgot[0].ino == 3 &&
               strcmp(cgot[1].path, "b") == 0 && cgot[1].mtime_ns == 8 &&
               strcmp(cgot[1].digest, d2) == 0,
           "without the path that has a tab");
    layerstore_context_table_free(cgot, n);

    tap_ok(layerstore_blob_source_put(st, "reg:5000", "team/app", d1, &err) == 0,
           "a blob source is stored");
    char *repo = layerstore_blob_source_get(st, "reg:5000", d1);
    tap_is_str(repo, "team/app", "and found for its host and digest");
    free(repo);
    tap_ok(layerstore_blob_source_get(st, "other:5000", d1) == NULL, "not for another host");
}

static void test_mounts(struct mk_store *st)
{
    struct mk_error *err = NULL;
    char id[MK_DIGEST_SIZE];
    digest_of("cache-mount\n/root/.cache", id);
    char *d1 = NULL, *d2 = NULL, *d3 = NULL;
    int f1 = layerstore_cache_mount_lock(st, id, MK_CACHE_SHARED, &d1, &err);
    int f2 = layerstore_cache_mount_lock(st, id, MK_CACHE_SHARED, &d2, &err);
    tap_ok(f1 >= 0 && f2 >= 0 && strcmp(d1, d2) == 0, "shared: two users, one directory");
    _cleanup_free_ char *want =
        mk_xasprintf("%s/cache/mounts/%s/data", layerstore_root(st), mk_digest_hex(id));
    tap_is_str(d1, want, "the directory is the store's");
    close(f2);
    free(d2);
    int f3 = layerstore_cache_mount_lock(st, id, MK_CACHE_PRIVATE, &d3, &err);
    tap_ok(f3 >= 0 && strcmp(d3, d1) != 0 && mk_str_has_suffix(d3, "-1/data"),
           "private: the instance in use is skipped");
    close(f1);
    close(f3);
    free(d1);
    free(d3);
    tap_ok(layerstore_cache_mount_lock(st, "nope", MK_CACHE_SHARED, &d1, &err) < 0 &&
               err->code == MK_ERR_INVALID,
           "an id that is not a digest is refused");
    mk_error_free(err);
}

int main(void)
{
    struct mk_store *st = fixture_store();
    test_step(st);
    test_others(st);
    test_mounts(st);
    layerstore_free(st);
    return tap_done();
}
