/* cli/save.c - `mkimg save [-o FILE] [--format F] [--compression C] IMAGE...`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "common/atomic-file.h"

int cli_save_archive(struct mk_store *store, const char *const *names, size_t n,
                     enum mk_archive_format f, enum mk_compression c, int level, const char *dest,
                     struct mk_error **err)
{
    if (f != MK_ARCHIVE_OCI_DIR && strcmp(dest, "-") == 0)
        return layerstore_save(store, names, n, f, c, level, STDOUT_FILENO, NULL, err);
    int r;
    if (f == MK_ARCHIVE_OCI_DIR) {
        r = layerstore_save(store, names, n, f, c, level, -1, dest, err);
    } else {
        _cleanup_(mk_atomic_file_release) struct mk_atomic_file out = {.fd = -1, .dirfd = -1};
        r = mk_atomic_file_init(&out, AT_FDCWD, dest, 0644, err);
        if (r == 0)
            r = layerstore_save(store, names, n, f, c, level, out.fd, NULL, err);
        /* Renamed into place whole, not synced: an export, as `docker save`, `skopeo copy`
         * and tar write one (docs/save.md). */
        if (r == 0)
            r = mk_atomic_file_commit_unsynced(&out, err);
    }
    return r < 0 ? mk_error_set_where(err, dest) : 0;
}

enum { OPT_OUTPUT = 1, OPT_FORMAT, OPT_COMPRESSION, OPT_LEVEL };

static const struct cli_opt save_opts[] = {
    {OPT_OUTPUT, 'o', "output", "FILE", "write to FILE (a directory for oci-dir) instead of stdout",
     CLI_COMP_FILE, NULL},
    {OPT_FORMAT, 0, "format", "FORMAT", "oci-archive (default), docker-archive or oci-dir",
     CLI_COMP_WORDS, "oci-archive docker-archive oci-dir"},
    {OPT_COMPRESSION, 0, "compression", "C", "layer compression: none (default), gzip or zstd",
     CLI_COMP_WORDS, "none gzip zstd"},
    {OPT_LEVEL, 0, "compression-level", "N", "the compression level", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_save = {
    .name = "save",
    .synopsis = "[-o FILE] [--format F] [--compression C] IMAGE...",
    .summary = "write images to an OCI or Docker archive",
    .description = "Each image is recorded under the name it was asked by, or under all its "
                   "tags when asked by ID. The archive appears under its name whole or not at "
                   "all, also when save is interrupted. Like docker save, skopeo copy and tar, "
                   "save does not wait for the archive to reach the disk: run sync after it if "
                   "it must survive a power cut.",
    .opts = save_opts,
    .operand = CLI_COMP_IMAGE,
    .fn = cmd_save,
};

int cmd_save(struct mk_cli *cli, int argc, char **argv)
{
    const char *out = NULL;
    int format = MK_ARCHIVE_OCI, comp = MK_COMPRESS_NONE, level = 0;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_save, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        switch (id) {
        case CLI_ARGS_EXIT:
            return a.status;
        case OPT_OUTPUT:
            out = a.arg;
            break;
        case OPT_FORMAT:
            if ((format = layerstore_archive_format_parse(a.arg)) < 0)
                return cli_usage("save: unknown format \"%s\" (oci-archive, docker-archive or "
                                 "oci-dir)",
                                 a.arg);
            break;
        case OPT_COMPRESSION:
            if ((comp = layerstore_compression_parse(a.arg)) < 0)
                return cli_usage("save: unknown compression \"%s\" (gzip, zstd or none)", a.arg);
            break;
        case OPT_LEVEL:
            if (mk_parse_int(a.arg, &level) < 0 || level < 1)
                return cli_usage("save: bad compression level \"%s\"", a.arg);
            break;
        }
    }
    int first = a.first;
    if (first >= argc)
        return cli_args_usage(&cli_cmd_save, "no image given");
    if (format == MK_ARCHIVE_OCI_DIR && (!out || strcmp(out, "-") == 0))
        return cli_usage("save: --format oci-dir needs -o DIR");
    bool to_stdout = !out || strcmp(out, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO))
        return cli_usage("save: refusing to write an archive to a terminal (use -o FILE)");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    const char *const *names = (const char *const *)&argv[first];
    size_t n = (size_t)(argc - first);
    /* A lazy image (built with --push from a registry cache) gets its layers first. */
    for (size_t i = 0; i < n; i++)
        if (builder_lazy_complete(store, names[i], NULL, &err) < 0)
            return cli_fail(err);
    if (cli_save_archive(store, names, n, format, comp, level, to_stdout ? "-" : out, &err) < 0)
        return cli_fail(err);
    return 0;
}
