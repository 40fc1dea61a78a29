/* cli/tag.c - `mkimg tag SOURCE TARGET...`: more names for an image. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

const struct cli_cmd cli_cmd_tag = {
    .name = "tag",
    .synopsis = "SOURCE TARGET...",
    .summary = "add a name to an image",
    .description = "A name holding several platforms is tagged whole, index and all.",
    .operand = CLI_COMP_IMAGE,
    .options_first = true,
    .fn = cmd_tag,
};

int cmd_tag(struct mk_cli *cli, int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_tag, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;)
        if (id == CLI_ARGS_EXIT)
            return a.status;
    argc -= a.first - 1;
    argv += a.first - 1;
    if (argc < 3)
        return cli_args_usage(&cli_cmd_tag, "expected SOURCE TARGET...");
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
    /* A name holding several platforms is tagged whole, index and all. */
    struct mk_platform_entry *pe = NULL;
    size_t np = 0;
    if (mk_digest_valid(argv[1]) || layerstore_ref_platforms(store, argv[1], &pe, &np, NULL) < 0)
        np = 0;
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        int r = np > 1 ? layerstore_tag_entries(store, pe, np, argv[i], NULL, &err)
                       : layerstore_tag(store, img, argv[i], &err);
        if (r < 0) {
            rc = cli_fail(err);
            err = NULL;
        }
    }
    layerstore_platform_entries_free(pe);
    layerstore_image_free(img);
    return rc;
}
