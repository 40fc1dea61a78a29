/* cli/prune.c - `mkimg prune [--all] [--keep-storage SIZE]`: remove what no image needs. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

enum { OPT_ALL = 1, OPT_KEEP_STORAGE, OPT_QUIET };

static const struct cli_opt prune_opts[] = {
    {OPT_ALL, 'a', "all", NULL,
     "also every build-cache entry, compressed copy and RUN --mount=type=cache directory", 0, NULL},
    {OPT_KEEP_STORAGE, 0, "keep-storage", "SIZE",
     "stop once the store (blobs, snapshots, cache, cache mounts) takes at most SIZE (500MB, "
     "2GiB, 1.5G, bytes); of what may go and the cache mounts, the least recently used by a "
     "build, pull, load, save or push goes first",
     0, NULL},
    {OPT_QUIET, 'q', "quiet", NULL, "print nothing", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_prune = {
    .name = "prune",
    .synopsis = "[--all] [--keep-storage SIZE] [-q]",
    .summary = "remove what no image needs (blobs, snapshots, cache)",
    .description = "Removes what no image needs: blobs and snapshots of no tagged or untagged "
                   "image in the store, build-cache entries whose layer is gone or no longer "
                   "needed, compressed copies of layers no image has, stale temp files.",
    .opts = prune_opts,
    .fn = cmd_prune,
};

int cmd_prune(struct mk_cli *cli, int argc, char **argv)
{
    struct mk_prune_opts opts = {0};
    bool quiet = false;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_prune, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id == OPT_ALL) {
            opts.all = true;
        } else if (id == OPT_QUIET) {
            quiet = true;
        } else if (id == OPT_KEEP_STORAGE) {
            if (cli_parse_size(a.arg, &opts.keep_storage) < 0)
                return cli_usage("prune: invalid size \"%s\" (e.g. 500MB, 2GiB, 1048576)", a.arg);
            opts.keep_storage_set = true;
        }
    }
    if (a.first < argc)
        return cli_args_usage(&cli_cmd_prune, "unexpected argument \"%s\"", argv[a.first]);
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_prune_report rep;
    if (layerstore_prune(store, &opts, &rep, &err) < 0)
        return cli_fail(err);
    if (quiet)
        return 0;
    _cleanup_free_ char *mounts =
        rep.cache_mounts ? mk_xasprintf(", %llu cache mounts", (unsigned long long)rep.cache_mounts)
                         : mk_xstrdup("");
    printf("removed %llu blobs, %llu snapshots, %llu cache entries%s; freed %.1f MB\n",
           (unsigned long long)rep.blobs, (unsigned long long)rep.snapshots,
           (unsigned long long)rep.cache_entries, mounts, (double)rep.bytes / 1e6);
    if (opts.keep_storage_set)
        printf("store size %.1f MB (%llu bytes)\n", (double)rep.remaining / 1e6,
               (unsigned long long)rep.remaining);
    return 0;
}
