/* cli/prune.c - `mkimg prune [--all]`: remove what no image needs. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_prune(struct mk_cli *cli, int argc, char **argv)
{
    bool all = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0 || strcmp(argv[i], "-a") == 0)
            all = true;
        else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: mkimg prune [--all] [-q]\n"
                   "Removes blobs, snapshots and build-cache entries no image needs; --all\n"
                   "also drops the whole build cache and cached compressed layers.\n");
            return 0;
        } else
            return cli_usage("prune: unknown option \"%s\" (usage: mkimg prune [--all])", argv[i]);
    }
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_prune_report rep;
    if (layerstore_prune(store, all, &rep, &err) < 0)
        return cli_fail(err);
    if (!quiet)
        printf("removed %llu blobs, %llu snapshots, %llu cache entries; freed %.1f MB\n",
               (unsigned long long)rep.blobs, (unsigned long long)rep.snapshots,
               (unsigned long long)rep.cache_entries, (double)rep.bytes / 1e6);
    return 0;
}
