/* cli/rmi.c - `mkimg rmi NAME...`: untag images (an image goes with its last name). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int rmi_one(struct mk_store *store, const char *name, struct mk_error **err)
{
    struct mk_image *img = NULL;
    char lazy[MK_DIGEST_SIZE];
    if (!mk_digest_valid(name) && layerstore_lazy_ref_get(store, name, lazy) == 0) {
        /* A lazy image (docs/remote-cache.md): only named in ROOT/lazy/refs/. */
        layerstore_lazy_untag(store, name);
        _cleanup_free_ char *ref = mk_ref_local_name(name, NULL);
        printf("Untagged: %s\n", ref ? ref : name);
        return 0;
    }
    if (layerstore_image_get(store, name, &img, err) < 0)
        return -1;
    if (layerstore_rmi(store, name, err) < 0) {
        layerstore_image_free(img);
        return -1;
    }
    /* Report what went: the named tag, or every tag when removed by ID. */
    char *ref = mk_digest_valid(name) ? NULL : mk_ref_local_name(name, NULL);
    bool by_ref = false;
    for (size_t i = 0; ref && i < img->tags.n; i++)
        by_ref |= strcmp(img->tags.v[i], ref) == 0;
    if (by_ref)
        printf("Untagged: %s\n", ref);
    else
        for (size_t i = 0; i < img->tags.n; i++)
            printf("Untagged: %s\n", img->tags.v[i]);
    if (!by_ref || img->tags.n <= 1)
        printf("Deleted: %s\n", img->config_digest);
    free(ref);
    layerstore_image_free(img);
    return 0;
}

enum { OPT_FORCE = 1 };

static const struct cli_opt rmi_opts[] = {
    {OPT_FORCE, 'f', "force", NULL,
     "accepted for docker and podman (no container can hold an image)", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_rmi = {
    .name = "rmi",
    .synopsis = "[-f] NAME...",
    .summary = "remove images",
    .description = "A name is untagged; an image goes with its last name. Given an ID, every "
                   "name of the image goes. Blobs and snapshots stay until \"mkimg prune\".",
    .opts = rmi_opts,
    .operand = CLI_COMP_IMAGE,
    .fn = cmd_rmi,
};

int cmd_rmi(struct mk_cli *cli, int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_rmi, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;)
        if (id == CLI_ARGS_EXIT)
            return a.status;
    int first = a.first;
    if (first >= argc)
        return cli_args_usage(&cli_cmd_rmi, "expected NAME...");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    int rc = 0;
    for (int i = first; i < argc; i++) {
        struct mk_error *err = NULL;
        if (rmi_one(store, argv[i], &err) < 0)
            rc = cli_fail(err);
    }
    return rc;
}
