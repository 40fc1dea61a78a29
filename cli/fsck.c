/* cli/fsck.c - `mkimg fsck [--deep] [--repair]`: verify the store; exit 1 when something is
 * wrong. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_fsck(struct mk_cli *cli, int argc, char **argv)
{
    bool repair = false, deep = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repair") == 0)
            repair = true;
        else if (strcmp(argv[i], "--deep") == 0)
            deep = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: mkimg fsck [--deep] [--repair]\n"
                   "Checks every blob's digest, every image's blobs and snapshots, the\n"
                   "cache records and the cache mounts; --deep also checks each snapshot's\n"
                   "files against its layer;\n"
                   "--repair drops what is broken and unpacks missing or bad snapshots.\n");
            return 0;
        } else
            return cli_usage("fsck: unknown option \"%s\" (usage: mkimg fsck [--deep] "
                             "[--repair])",
                             argv[i]);
    }
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
