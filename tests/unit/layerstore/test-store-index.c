/* Names and index.json: normalization, tag/retag/untag, lookup by name, digest and ID prefix,
 * listing, rmi, and two processes tagging at once losing nothing. */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/layerstore.h"
#include "tap.h"
#include "store-fixture.h"

static struct mk_image *make_image(struct mk_store *st, const char *tag_content)
{
    /* A fake one-layer image: the layer blob is any bytes (never unpacked here). */
    struct mk_error *err = NULL;
    struct mk_layer_desc l;
    memset(&l, 0, sizeof(l));
    if (layerstore_blob_put_buf(st, tag_content, strlen(tag_content), l.digest, &err) < 0)
        return NULL;
    memcpy(l.diff_id, l.digest, MK_DIGEST_SIZE);
    l.size = strlen(tag_content);
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.os = mk_xstrdup("linux");
    cfg.architecture = mk_xstrdup("amd64");
    cfg.created = mk_xstrdup("2024-01-01T00:00:00Z");
    mk_strv_push(&cfg.diff_ids, l.diff_id);
    mk_strv_push(&cfg.env, tag_content);
    struct mk_image *img = NULL;
    if (layerstore_image_write(st, &cfg, &l, 1, &img, &err) < 0) {
        tap_diag("image_write: %s", err->msg);
        mk_error_free(err);
    }
    layerstore_config_release(&cfg);
    return img;
}

static int get_ok(struct mk_store *st, const char *name, const struct mk_image *want)
{
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    int r = layerstore_image_get(st, name, &img, &err);
    bool ok = r == 0 && strcmp(img->config_digest, want->config_digest) == 0;
    if (r < 0) {
        tap_diag("get \"%s\": %s", name, err->msg);
        mk_error_free(err);
    }
    layerstore_image_free(img);
    return ok;
}

static int get_code(struct mk_store *st, const char *name)
{
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    if (layerstore_image_get(st, name, &img, &err) == 0) {
        layerstore_image_free(img);
        return 0;
    }
    int code = err->code;
    mk_error_free(err);
    return code;
}

int main(void)
{
    struct mk_store *st = fixture_store();
    struct mk_error *err = NULL;
    struct mk_image *a = make_image(st, "A=1"), *b = make_image(st, "B=2");
    tap_ok(a && b && strcmp(a->config_digest, b->config_digest) != 0, "two images written");
    tap_is_int(get_code(st, "hello"), MK_ERR_NOT_FOUND, "untagged image has no name");
    tap_ok(get_ok(st, a->manifest_digest, a), "untagged image found by manifest digest");

    tap_ok(layerstore_tag(st, a, "hello", &err) == 0, "tag hello");
    tap_ok(get_ok(st, "hello", a) && get_ok(st, "hello:latest", a), "get by short and full name");
    tap_ok(get_ok(st, a->config_digest, a), "get by config digest (image ID)");
    tap_ok(get_ok(st, a->manifest_digest, a), "get by manifest digest");
    char *by_digest = mk_xasprintf("hello@%s", a->manifest_digest);
    tap_ok(get_ok(st, by_digest, a), "get by name@manifest-digest");
    free(by_digest);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.12s", a->config_digest + 7);
    tap_ok(get_ok(st, prefix, a), "get by 12-digit ID prefix");
    snprintf(prefix, sizeof(prefix), "%.3s", a->config_digest + 7);
    tap_is_int(get_code(st, prefix), MK_ERR_NOT_FOUND, "a 3-digit prefix is not an ID");
    struct mk_image *got = NULL;
    tap_ok(layerstore_image_get(st, "hello", &got, &err) == 0 && got->tags.n == 1 &&
               strcmp(got->tags.v[0], "hello:latest") == 0 && got->n_layers == 1 &&
               strcmp(got->layers[0].digest, a->layers[0].digest) == 0 &&
               strcmp(got->layers[0].media_type, MK_MEDIA_OCI_LAYER) == 0 &&
               got->manifest_size == a->manifest_size && got->config.env.n == 1,
           "loaded image has tags, layers and config");
    layerstore_image_free(got);

    char *idx = NULL;
    mk_read_file_at(AT_FDCWD, "store/index.json", 1 << 20, &idx, NULL, NULL);
    tap_ok(idx && strstr(idx, "\"org.opencontainers.image.ref.name\": \"hello:latest\"") &&
               strstr(idx, a->manifest_digest) && strstr(idx, MK_MEDIA_OCI_MANIFEST),
           "index.json holds the ref.name annotation");
    free(idx);

    tap_ok(layerstore_tag(st, a, "127.0.0.1:5000/lib/app:v2", &err) == 0, "second tag");
    tap_ok(layerstore_tag(st, b, "other:1", &err) == 0, "tag the other image");
    struct mk_image_entry *e = NULL;
    size_t n = 0;
    tap_ok(layerstore_list(st, &e, &n, &err) == 0 && n == 3, "list has three refs");
    tap_ok(n == 3 && strcmp(e[0].ref, "hello:latest") == 0 &&
               strcmp(e[1].ref, "127.0.0.1:5000/lib/app:v2") == 0 &&
               strcmp(e[2].ref, "other:1") == 0 &&
               strcmp(e[0].config_digest, a->config_digest) == 0 && e[0].size == 3 &&
               strcmp(e[0].created, "2024-01-01T00:00:00Z") == 0,
           "list entries in index order with ID, size and created");
    layerstore_list_free(e, n);

    tap_ok(layerstore_tag(st, b, "hello", &err) == 0 && get_ok(st, "hello", b),
           "retagging moves the name");
    tap_ok(layerstore_list(st, &e, &n, &err) == 0 && n == 3 &&
               strcmp(e[0].config_digest, b->config_digest) == 0,
           "a moved tag keeps its place and is not duplicated");
    layerstore_list_free(e, n);
    tap_ok(layerstore_untag(st, "other:1", &err) == 0 &&
               get_code(st, "other:1") == MK_ERR_NOT_FOUND,
           "untag");
    tap_ok(layerstore_untag(st, "other:1", &err) < 0 && err->code == MK_ERR_NOT_FOUND,
           "untag of a missing ref: MK_ERR_NOT_FOUND");
    mk_error_free(err);
    err = NULL;

    /* rmi by name removes one tag; by ID every tag. */
    tap_ok(layerstore_tag(st, a, "x1", &err) == 0 && layerstore_rmi(st, "x1", &err) == 0 &&
               get_code(st, "x1") == MK_ERR_NOT_FOUND && get_ok(st, "127.0.0.1:5000/lib/app:v2", a),
           "rmi NAME removes only that name");
    tap_ok(
        layerstore_tag(st, a, "x2", &err) == 0 && layerstore_rmi(st, a->config_digest, &err) == 0 &&
            get_code(st, "x2") == MK_ERR_NOT_FOUND &&
            get_code(st, "127.0.0.1:5000/lib/app:v2") == MK_ERR_NOT_FOUND && get_ok(st, "hello", b),
        "rmi ID removes every name of that image only");
    tap_ok(layerstore_rmi(st, "nosuch", &err) < 0 && err->code == MK_ERR_NOT_FOUND && err->where &&
               strcmp(err->where, "nosuch") == 0 && strcmp(err->msg, "image not known") == 0,
           "rmi of a missing name: \"nosuch: image not known\"");
    mk_error_free(err);
    err = NULL;
    tap_ok(layerstore_tag(st, a, "Bad", &err) < 0 && err->code == MK_ERR_INVALID,
           "tag refuses a bad name");
    mk_error_free(err);
    err = NULL;

    /* Two processes tagging 50 times each: every tag survives the read-modify-writes. */
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            struct mk_store *cs = NULL;
            if (layerstore_open("store", &cs, NULL) < 0)
                _exit(2);
            for (int i = 0; i < 50; i++) {
                char ref[64];
                snprintf(ref, sizeof(ref), "p%d/img:t%d", p, i);
                if (layerstore_tag(cs, p ? a : b, ref, NULL) < 0)
                    _exit(3);
            }
            layerstore_free(cs);
            _exit(0);
        }
    }
    int ok = 1;
    for (int p = 0; p < 2; p++) {
        int status = 0;
        waitpid(pids[p], &status, 0);
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    tap_ok(ok, "two processes tagged 50 times each");
    int found = 0;
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 50; i++) {
            char ref[64];
            snprintf(ref, sizeof(ref), "p%d/img:t%d", p, i);
            found += get_ok(st, ref, p ? a : b);
        }
    tap_is_int(found, 100, "no tag lost");
    tap_ok(layerstore_list(st, &e, &n, &err) == 0 && n == 101, "list has 101 refs");
    layerstore_list_free(e, n);

    layerstore_image_free(a);
    layerstore_image_free(b);
    layerstore_free(st);
    return tap_done();
}
