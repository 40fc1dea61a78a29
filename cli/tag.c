/* cli/tag.c - `mkimg tag SOURCE TARGET...`: more names for an image. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_tag(struct mk_cli *cli, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: mkimg tag SOURCE TARGET...\n");
        return 0;
    }
    if (argc < 3)
        return cli_usage("usage: mkimg tag SOURCE TARGET...");
    for (int i = 2; i < argc; i++)
        if (cli_check_new_name(argv[i]) != 0)
            return 1;
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_image *img = NULL;
    if (layerstore_image_get(store, argv[1], &img, &err) < 0)
        return cli_fail(err);
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        if (layerstore_tag(store, img, argv[i], &err) < 0) {
            rc = cli_fail(err);
            err = NULL;
        }
    }
    layerstore_image_free(img);
    return rc;
}
