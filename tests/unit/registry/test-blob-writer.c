/* The store's verifying writer for downloads (layerstore/pull.c): nothing unverified is
 * stored; a reset starts over; a layer unpacks to its diff_id or fails. */
#include <string.h>

#include "layerstore/layerstore.h"
#include "tap.h"

static int count_tmp(const char *root)
{
    char *cmd = mk_xasprintf("ls -A %s/tmp | wc -l", root);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    free(cmd);
    return n;
}

int main(void)
{
    const char *dir = tap_tmpdir();
    char *root = mk_xasprintf("%s/store", dir);
    struct mk_store *store = NULL;
    if (!tap_ok(layerstore_open(root, &store, NULL) == 0, "open a store"))
        return tap_done();
    const char data[] = "hello blob";
    char digest[MK_DIGEST_SIZE];
    mk_sha256_buffer(data, strlen(data), digest);

    struct mk_blob_writer *w = NULL;
    struct mk_error *err = NULL;
    tap_ok(layerstore_blob_writer_new(store, digest, strlen(data), &w, NULL) == 0, "new writer");
    layerstore_blob_writer_write(w, "junk", 4, NULL);
    tap_is_int(layerstore_blob_writer_size(w), 4, "size counts");
    tap_ok(layerstore_blob_writer_reset(w, NULL) == 0, "reset");
    tap_ok(layerstore_blob_writer_write(w, data, 5, NULL) == 0 &&
               layerstore_blob_writer_write(w, data + 5, strlen(data) - 5, NULL) == 0,
           "write in pieces");
    tap_ok(layerstore_blob_writer_write(w, "x", 1, &err) < 0 && err && err->code == MK_ERR_INVALID,
           "a byte past the expected size is refused");
    mk_error_free(err);
    err = NULL;
    tap_ok(layerstore_blob_writer_commit(w, NULL) == 0, "commit");
    layerstore_blob_writer_free(w);
    tap_ok(layerstore_blob_exists(store, digest), "the blob is stored");

    char other[MK_DIGEST_SIZE];
    mk_sha256_buffer("other", 5, other);
    w = NULL;
    layerstore_blob_writer_new(store, other, 5, &w, NULL);
    layerstore_blob_writer_write(w, "0ther", 5, NULL);
    tap_ok(layerstore_blob_writer_commit(w, &err) < 0 && err && err->code == MK_ERR_DIGEST,
           "a digest mismatch fails");
    mk_error_free(err);
    err = NULL;
    layerstore_blob_writer_free(w);
    tap_ok(!layerstore_blob_exists(store, other), "and stores nothing");
    w = NULL;
    layerstore_blob_writer_new(store, other, 5, &w, NULL);
    layerstore_blob_writer_write(w, "oth", 3, NULL);
    tap_ok(layerstore_blob_writer_commit(w, &err) < 0 && err && err->code == MK_ERR_DIGEST,
           "a short blob fails");
    mk_error_free(err);
    err = NULL;
    layerstore_blob_writer_free(w);
    w = NULL;
    layerstore_blob_writer_new(store, other, 5, &w, NULL);
    layerstore_blob_writer_write(w, "oth", 3, NULL);
    layerstore_blob_writer_free(w); /* abandoned mid-download */
    tap_is_int(count_tmp(root), 0, "no temp file is left behind");
    tap_ok(layerstore_blob_writer_new(store, "sha256:nope", 1, &w, &err) < 0 && err,
           "an invalid digest is refused");
    mk_error_free(err);
    err = NULL;

    /* a "layer" that is not a tar: unpacking fails, no snapshot appears */
    char chain[MK_DIGEST_SIZE];
    tap_ok(layerstore_layer_unpack(store, digest, digest, "", chain, &err) < 0 && err,
           "a blob that is not a layer does not unpack");
    mk_error_free(err);
    err = NULL;
    tap_ok(!layerstore_snapshot_exists(store, digest), "and leaves no snapshot");
    layerstore_free(store);
    free(root);
    return tap_done();
}
