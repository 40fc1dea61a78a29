/* cli/import.c - `mkimg import TARBALL|DIR NAME`: a rootfs as a one-layer image. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define IMPORT_USAGE "usage: mkimg import [--platform OS/ARCH[/VARIANT]] TARBALL|DIR NAME"

int cmd_import(struct mk_cli *cli, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("%s\n", IMPORT_USAGE);
        return 0;
    }
    /* --platform: the rootfs is that platform's, added to NAME next to the ones it holds. */
    struct mk_platform platform;
    bool has_platform = false;
    int prc = cli_platform_arg(&argc, &argv, IMPORT_USAGE, &platform, &has_platform);
    if (prc)
        return prc;
    if (argc != 3)
        return cli_usage(IMPORT_USAGE);
    int64_t epoch;
    if ((prc = cli_epoch(NULL, NULL, &epoch)) != 0)
        return prc;
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_image *img = NULL;
    if (layerstore_import_platform(store, argv[1], argv[2], has_platform ? &platform : NULL, epoch,
                                   &img, &err) < 0)
        return cli_fail(err);
    printf("%s\n", img->config_digest);
    layerstore_image_free(img);
    return 0;
}
