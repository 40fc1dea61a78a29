/* cli/save.c - `mkimg save [-o FILE] [--format F] [--compression C] IMAGE...`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/atomic-file.h"

static const char save_usage[] =
    "usage: mkimg save [-o FILE] [--format oci-archive|docker-archive|oci-dir]\n"
    "                  [--compression gzip|zstd|none] [--compression-level N] IMAGE...\n"
    "  -o, --output FILE        write to FILE (a directory for oci-dir) instead of stdout\n"
    "      --format F           oci-archive (default), docker-archive or oci-dir\n"
    "      --compression C      layer compression (default none)\n"
    "      --compression-level N\n";

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
        if (r == 0)
            r = mk_atomic_file_commit(&out, err);
    }
    return r < 0 ? mk_error_set_where(err, dest) : 0;
}

int cmd_save(struct mk_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {"compression", required_argument, NULL, 'c'},
        {"compression-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int format = MK_ARCHIVE_OCI, comp = MK_COMPRESS_NONE, level = 0;
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
        switch (o) {
        case 'o':
            out = optarg;
            break;
        case 'f':
            if ((format = layerstore_archive_format_parse(optarg)) < 0)
                return cli_usage("save: unknown format \"%s\" (oci-archive, docker-archive or "
                                 "oci-dir)",
                                 optarg);
            break;
        case 'c':
            if ((comp = layerstore_compression_parse(optarg)) < 0)
                return cli_usage("save: unknown compression \"%s\" (gzip, zstd or none)", optarg);
            break;
        case 'l':
            if (mk_parse_int(optarg, &level) < 0 || level < 1)
                return cli_usage("save: bad compression level \"%s\"", optarg);
            break;
        case 'h':
            fputs(save_usage, stdout);
            return 0;
        default:
            return cli_usage("save: bad option \"%s\" (see \"mkimg save --help\")",
                             argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage("save: no image given (usage: mkimg save [-o FILE] IMAGE...)");
    if (format == MK_ARCHIVE_OCI_DIR && (!out || strcmp(out, "-") == 0))
        return cli_usage("save: --format oci-dir needs -o DIR");
    bool to_stdout = !out || strcmp(out, "-") == 0;
    if (to_stdout && isatty(STDOUT_FILENO))
        return cli_usage("save: refusing to write an archive to a terminal (use -o FILE)");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    const char *const *names = (const char *const *)&argv[optind];
    size_t n = (size_t)(argc - optind);
    if (cli_save_archive(store, names, n, format, comp, level, to_stdout ? "-" : out, &err) < 0)
        return cli_fail(err);
    return 0;
}
