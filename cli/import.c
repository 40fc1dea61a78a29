/* cli/import.c - `mkimg import TARBALL|DIR NAME`: a rootfs as a one-layer image. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_import(struct mk_cli *cli, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: mkimg import TARBALL|DIR NAME\n");
        return 0;
    }
    if (argc != 3)
        return cli_usage("usage: mkimg import TARBALL|DIR NAME");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_image *img = NULL;
    if (layerstore_import(store, argv[1], argv[2], &img, &err) < 0)
        return cli_fail(err);
    printf("%s\n", img->config_digest);
    layerstore_image_free(img);
    return 0;
}
