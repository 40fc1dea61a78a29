/* cli/import.c - `mkimg import TARBALL|DIR NAME`: a rootfs as a one-layer image. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

enum { OPT_PLATFORM = 1 };

static const struct cli_opt import_opts[] = {
    {OPT_PLATFORM, 0, "platform", "OS/ARCH[/VARIANT]",
     "the rootfs is that platform's, added to NAME next to the ones it holds (default: this "
     "machine's)",
     CLI_COMP_WORDS, cli_platform_words},
    {0},
};

const struct cli_cmd cli_cmd_import = {
    .name = "import",
    .synopsis = "[--platform OS/ARCH[/VARIANT]] TARBALL|DIR NAME",
    .summary = "import a rootfs tarball or directory as an image",
    .opts = import_opts,
    .operand = CLI_COMP_FILE,
    .fn = cmd_import,
};

int cmd_import(struct mk_cli *cli, int argc, char **argv)
{
    struct mk_platform platform;
    bool has_platform = false;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_import, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id == OPT_PLATFORM) {
            int rc = cli_platform_value(a.arg, &platform);
            if (rc)
                return rc;
            has_platform = true;
        }
    }
    if (argc - a.first != 2)
        return cli_args_usage(&cli_cmd_import, "expected TARBALL|DIR NAME");
    argv += a.first - 1;
    int64_t epoch;
    int prc = cli_epoch(NULL, NULL, &epoch);
    if (prc)
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
