/* cli/df.c - `mkimg df`: the store's disk usage by kind. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

int cli_parse_size(const char *s, uint64_t *ret)
{
    static const struct {
        const char *name;
        double mult;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1e3},
                 {"kb", 1e3},
                 {"m", 1e6},
                 {"mb", 1e6},
                 {"g", 1e9},
                 {"gb", 1e9},
                 {"t", 1e12},
                 {"tb", 1e12},
                 {"kib", 1024.0},
                 {"mib", 1048576.0},
                 {"gib", 1073741824.0},
                 {"tib", 1099511627776.0}};
    const char *p = s;
    double whole = 0, frac = 0, scale = 1;
    bool digits = false;
    for (; *p >= '0' && *p <= '9'; p++, digits = true)
        whole = whole * 10 + (*p - '0');
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, digits = true)
            frac += (*p - '0') * (scale /= 10);
    if (!digits)
        return -1;
    for (size_t i = 0; i < MK_ARRAY_SIZE(units); i++) {
        if (strcasecmp(p, units[i].name) != 0)
            continue;
        double v = (whole + frac) * units[i].mult;
        if (v >= 18446744073709551616.0)
            return -1;
        *ret = (uint64_t)v;
        return 0;
    }
    return -1;
}

static void row(const char *type, uint64_t count, uint64_t bytes, uint64_t reclaimable)
{
    _cleanup_free_ char *b = cli_human_size(bytes);
    _cleanup_free_ char *r = cli_human_size(reclaimable);
    printf("%-20s %8llu %12s %12s\n", type, (unsigned long long)count, b, r);
}

const struct cli_cmd cli_cmd_df = {
    .name = "df",
    .synopsis = "",
    .summary = "show the store's disk usage",
    .fn = cmd_df,
};

int cmd_df(struct mk_cli *cli, int argc, char **argv)
{
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_df, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;)
        if (id == CLI_ARGS_EXIT)
            return a.status;
    if (a.first < argc)
        return cli_args_usage(&cli_cmd_df, "unexpected argument \"%s\"", argv[a.first]);
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
    row("cache mounts", r.cache_mounts, r.cache_mount_bytes, r.cache_mount_bytes);
    row("compressed copies", r.compressed, r.compressed_bytes, 0);
    row("unreferenced blobs", r.unused_blobs, r.unused_blob_bytes, r.unused_blob_bytes);
    row("temp files", r.temp, r.temp_bytes, 0);
    row("total",
        r.blobs + r.compressed + r.unused_blobs + r.snapshots + r.cache_entries + r.cache_mounts +
            r.temp,
        r.blob_bytes + r.compressed_bytes + r.unused_blob_bytes + r.snapshot_bytes + r.cache_bytes +
            r.cache_mount_bytes + r.temp_bytes,
        r.unused_blob_bytes + r.unused_snapshot_bytes + r.cache_mount_bytes);
    return 0;
}
