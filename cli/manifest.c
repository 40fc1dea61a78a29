/* cli/manifest.c - `mkimg manifest create|add|remove|inspect|push`: podman's verbs for
 * joining images built apart (on native runners of each architecture) into one index.
 *
 * A manifest list is a local name that points at an OCI image index (layerstore/platform.c):
 * entries keep the order they were added in, one per platform, so `create LIST a b` of the
 * images a one-shot `build --platform A,B` made gives that build's index, digest and all. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* The list's entries; a name that is not there yet is an empty list when may_be_new. */
static int list_load(struct mk_store *store, const char *list, bool may_be_new,
                     struct mk_platform_entry **ret, size_t *ret_n, struct mk_error **err)
{
    struct mk_error *e = NULL;
    if (layerstore_ref_platforms(store, list, ret, ret_n, &e) == 0)
        return 0;
    if (may_be_new && e->code == MK_ERR_NOT_FOUND) {
        mk_error_free(e);
        *ret = NULL;
        *ret_n = 0;
        return 0;
    }
    *err = e;
    return -1;
}

int cli_manifest_add(struct mk_store *store, const char *list, const char *const *images,
                     size_t n_images, bool create, char ret_digest[MK_DIGEST_SIZE],
                     struct mk_error **err)
{
    /* create starts from an empty list; each add is layerstore's compare-and-swap, so
     * builds adding to one list at once lose nothing. */
    if (create && layerstore_tag_index(store, NULL, 0, list, ret_digest, err) < 0)
        return -1;
    if (!create && n_images == 0 && !layerstore_ref_is_index(store, list))
        return mk_error_set_at(err, MK_ERR_NOT_FOUND, list, "not a manifest list");
    for (size_t i = 0; i < n_images; i++) {
        struct mk_image *img = NULL;
        int r = layerstore_image_get(store, images[i], &img, err);
        if (r == 0)
            r = layerstore_manifest_add(store, img, list, ret_digest, err);
        layerstore_image_free(img);
        if (r < 0)
            return -1;
    }
    return 0;
}

static int manifest_remove(struct mk_store *store, const char *list, const char *digest,
                           struct mk_error **err)
{
    struct mk_platform_entry *e = NULL;
    size_t n = 0;
    if (list_load(store, list, false, &e, &n, err) < 0)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].manifest_digest, digest) != 0)
            e[k++] = e[i];
    int r = 0;
    char out[MK_DIGEST_SIZE];
    if (k == n)
        r = mk_error_set_at(err, MK_ERR_NOT_FOUND, digest, "not in manifest list \"%s\"", list);
    else
        r = layerstore_tag_index(store, e, k, list, out, err);
    layerstore_platform_entries_free(e);
    if (r == 0)
        printf("%s\n", out);
    return r;
}

static int manifest_inspect(struct mk_store *store, const char *list, struct mk_error **err)
{
    if (!layerstore_ref_is_index(store, list))
        return mk_error_set_at(err, MK_ERR_NOT_FOUND, list, "not a manifest list");
    struct mk_platform_entry *e = NULL;
    size_t n = 0;
    if (list_load(store, list, false, &e, &n, err) < 0)
        return -1;
    /* The index as stored (the same entries give the same bytes). */
    char digest[MK_DIGEST_SIZE];
    uint64_t size;
    int r = layerstore_index_write(store, e, n, digest, &size, err);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (r == 0)
        r = layerstore_blob_read(store, digest, 1u << 22, &data, &len, err);
    layerstore_platform_entries_free(e);
    if (r == 0)
        printf("%s\n", data);
    return r;
}

const struct cli_cmd cli_cmd_manifest = {
    .name = "manifest",
    .synopsis = "create LIST [IMAGE...] | add LIST IMAGE | remove LIST DIGEST | inspect LIST | "
                "push [OPTIONS] LIST [DESTINATION]",
    .summary = "join images of several platforms into one index (create, add, ...)",
    .description = "A manifest list is a local name that points at an OCI image index, one "
                   "entry per platform in the order they were added. \"manifest push\" takes "
                   "the options of \"mkimg push\".",
    .operand = CLI_COMP_WORDS,
    .operand_words = "create add remove inspect push",
    .options_first = true,
    .fn = cmd_manifest,
};

int cmd_manifest(struct mk_cli *cli, int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_manifest, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;)
        if (id == CLI_ARGS_EXIT)
            return a.status;
    argc -= a.first - 1;
    argv += a.first - 1;
    if (argc < 2)
        return cli_args_usage(&cli_cmd_manifest, "expected a verb (create, add, remove, inspect "
                                                 "or push)");
    const char *verb = argv[1];
    if (strcmp(verb, "push") == 0)
        return cmd_push(cli, argc - 1, argv + 1);
    bool ok =
        (strcmp(verb, "create") == 0 && argc >= 3) || (strcmp(verb, "add") == 0 && argc == 4) ||
        (strcmp(verb, "remove") == 0 && argc == 4) || (strcmp(verb, "inspect") == 0 && argc == 3);
    if (!ok)
        return cli_args_usage(&cli_cmd_manifest, "expected %s", cli_cmd_manifest.synopsis);
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    char digest[MK_DIGEST_SIZE];
    int r;
    if (strcmp(verb, "create") == 0 || strcmp(verb, "add") == 0) {
        bool create = strcmp(verb, "create") == 0;
        r = cli_manifest_add(store, argv[2], (const char *const *)argv + 3,
                             create ? (size_t)argc - 3 : 1, create, digest, &err);
        if (r == 0)
            printf("%s\n", digest);
    } else if (strcmp(verb, "remove") == 0) {
        r = manifest_remove(store, argv[2], argv[3], &err);
    } else {
        r = manifest_inspect(store, argv[2], &err);
    }
    return r < 0 ? cli_fail(err) : 0;
}
