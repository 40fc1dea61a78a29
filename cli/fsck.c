/* cli/fsck.c - `mkimg fsck [--deep] [--repair]`: verify the store; exit 1 when something is
 * wrong. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

enum { OPT_DEEP = 1, OPT_REPAIR };

static const struct cli_opt fsck_opts[] = {
    {OPT_DEEP, 0, "deep", NULL, "also check each snapshot's files against its layer", 0, NULL},
    {OPT_REPAIR, 0, "repair", NULL, "drop what is broken and unpack bad snapshots", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_fsck = {
    .name = "fsck",
    .synopsis = "[--deep] [--repair]",
    .summary = "verify the store (--deep: snapshot contents; --repair fixes)",
    .description = "Checks every blob's digest, every image's blobs and snapshots, the cache "
                   "records and the cache mounts. The exit status is 1 when something is wrong "
                   "and was not repaired.",
    .opts = fsck_opts,
    .fn = cmd_fsck,
};

int cmd_fsck(struct mk_cli *cli, int argc, char **argv)
{
    bool repair = false, deep = false;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_fsck, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        repair |= id == OPT_REPAIR;
        deep |= id == OPT_DEEP;
    }
    if (a.first < argc)
        return cli_args_usage(&cli_cmd_fsck, "unexpected argument \"%s\"", argv[a.first]);
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_strv problems = MK_STRV_INIT;
    size_t repaired = 0;
    if (layerstore_fsck(store, repair, deep, &problems, &repaired, &err) < 0) {
        mk_strv_release(&problems);
        return cli_fail(err);
    }
    for (size_t i = 0; i < problems.n; i++)
        printf("%s\n", problems.v[i]);
    int rc = 0;
    if (problems.n == 0)
        printf("store is clean\n");
    else if (repair)
        printf("%zu problems, %zu repaired\n", problems.n, repaired);
    else {
        printf("%zu problems (\"mkimg fsck --repair\" fixes them)\n", problems.n);
        rc = 1;
    }
    mk_strv_release(&problems);
    return rc;
}
