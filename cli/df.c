/* cli/df.c - `mkimg df`: the store's disk usage by kind. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

char *cli_human_size(uint64_t n)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1000 && u + 1 < MK_ARRAY_SIZE(units)) {
        v /= 1000;
        u++;
    }
    return mk_xasprintf("%.3g %s", v, units[u]);
}

static void row(const char *type, uint64_t count, uint64_t bytes, uint64_t reclaimable)
{
    _cleanup_free_ char *b = cli_human_size(bytes);
    _cleanup_free_ char *r = cli_human_size(reclaimable);
    printf("%-20s %8llu %12s %12s\n", type, (unsigned long long)count, b, r);
}

int cmd_df(struct mk_cli *cli, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: mkimg df\n");
        return 0;
    }
    if (argc != 1)
        return cli_usage("df: unexpected argument \"%s\" (usage: mkimg df)", argv[1]);
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_df_report r;
    if (layerstore_df(store, &r, &err) < 0)
        return cli_fail(err);
    printf("%-20s %8s %12s %12s\n", "TYPE", "COUNT", "SIZE", "RECLAIMABLE");
    row("images", r.images, r.blob_bytes, 0);
    row("snapshots", r.snapshots, r.snapshot_bytes, r.unused_snapshot_bytes);
    row("build cache", r.cache_entries, r.cache_bytes, 0);
    row("compressed copies", r.compressed, r.compressed_bytes, 0);
    row("unreferenced blobs", r.unused_blobs, r.unused_blob_bytes, r.unused_blob_bytes);
    return 0;
}
