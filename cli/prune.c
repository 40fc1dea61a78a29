/* cli/prune.c - `mkimg prune [--all] [--keep-storage SIZE]`: remove what no image needs. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define PRUNE_USAGE "usage: mkimg prune [--all] [--keep-storage SIZE] [-q]"

int cmd_prune(struct mk_cli *cli, int argc, char **argv)
{
    struct mk_prune_opts opts = {0};
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *size = NULL;
        if (strcmp(a, "--all") == 0 || strcmp(a, "-a") == 0)
            opts.all = true;
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)
            quiet = true;
        else if (strncmp(a, "--keep-storage=", 15) == 0)
            size = a + 15;
        else if (strcmp(a, "--keep-storage") == 0) {
            if (i + 1 == argc)
                return cli_usage("prune: --keep-storage needs a size (" PRUNE_USAGE ")");
            size = argv[++i];
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf(PRUNE_USAGE
                   "\n"
                   "Removes what no image needs: blobs and snapshots of no tagged or untagged\n"
                   "image in the store, build-cache entries whose layer is gone or no longer\n"
                   "needed, compressed copies of layers no image has, stale temp files.\n"
                   "  -a, --all              also every build-cache entry, compressed copy and\n"
                   "                         RUN --mount=type=cache directory\n"
                   "      --keep-storage SIZE  stop once the store (blobs, snapshots, cache,\n"
                   "                         cache mounts) takes at most SIZE (500MB, 2GiB,\n"
                   "                         1.5G, bytes); of what may go and the cache mounts,\n"
                   "                         the least recently used by a build, pull, load,\n"
                   "                         save or push goes first\n"
                   "  -q, --quiet            print nothing\n");
            return 0;
        } else
            return cli_usage("prune: unknown option \"%s\" (" PRUNE_USAGE ")", a);
        if (size) {
            if (cli_parse_size(size, &opts.keep_storage) < 0)
                return cli_usage("prune: invalid size \"%s\" (e.g. 500MB, 2GiB, 1048576)", size);
            opts.keep_storage_set = true;
        }
    }
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
