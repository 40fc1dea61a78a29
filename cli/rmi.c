/* cli/rmi.c - `mkimg rmi NAME...`: untag images (an image goes with its last name). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int rmi_one(struct mk_store *store, const char *name, struct mk_error **err)
{
    struct mk_image *img = NULL;
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

int cmd_rmi(struct mk_cli *cli, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: mkimg rmi [-f] NAME...\n"
               "  -f, --force   accepted for docker and podman (no container can hold an image)\n");
        return 0;
    }
    /* Options before the names, as docker rmi takes them; "--" ends them. */
    int first = 1;
    for (; first < argc && argv[first][0] == '-' && argv[first][1]; first++) {
        if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        }
        if (strcmp(argv[first], "-f") != 0 && strcmp(argv[first], "--force") != 0)
            return cli_usage("rmi: unknown option \"%s\" (see \"mkimg rmi --help\")", argv[first]);
    }
    if (first >= argc)
        return cli_usage("usage: mkimg rmi [-f] NAME...");
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
