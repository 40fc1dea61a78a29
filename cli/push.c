/* cli/push.c - `mkimg push [OPTIONS] IMAGE [DESTINATION]`. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fsutil.h"
#include "registry/registry.h"

enum { OPT_DIGESTFILE = 1, OPT_COMPRESSION, OPT_QUIET };

static const struct cli_opt push_opts[] = {
    {OPT_DIGESTFILE, 0, "digestfile", "FILE", "write the pushed manifest's digest to FILE",
     CLI_COMP_FILE, NULL},
    {OPT_COMPRESSION, 0, "compression-format", "FORMAT",
     "how layers travel: gzip (default), zstd or none", CLI_COMP_WORDS, "gzip zstd none"},
    {OPT_QUIET, 'q', "quiet", NULL, "print only the manifest digest", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_push = {
    .name = "push",
    .synopsis = "[OPTIONS] IMAGE [DESTINATION]",
    .summary = "push an image to a registry",
    .description = "DESTINATION is a registry reference; without it, IMAGE's own name says "
                   "where it goes.",
    .opts = push_opts,
    .more = cli_registry_opts,
    .operand = CLI_COMP_IMAGE,
    .fn = cmd_push,
};

int cmd_push(struct mk_cli *cli, int argc, char **argv)
{
    struct registry_opts opts = {.retries = -1,
                                 .log = cli_log_level <= CLI_LOG_INFO ? stderr : NULL};
    const char *digestfile = NULL;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_push, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id >= CLI_REG_FIRST && id <= CLI_REG_LAST) {
            if (cli_registry_opt(&opts, id, a.arg) != 0)
                return 2;
        } else if (id == OPT_DIGESTFILE) {
            digestfile = a.arg;
        } else if (id == OPT_COMPRESSION) {
            opts.compression = a.arg;
        } else if (id == OPT_QUIET) {
            opts.log = NULL;
        }
    }
    int first = a.first;
    if (first != argc - 1 && first != argc - 2)
        return cli_args_usage(&cli_cmd_push, "expected IMAGE [DESTINATION]");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    char digest[MK_DIGEST_SIZE], lazy[MK_DIGEST_SIZE];
    const char *image = argv[first], *dest = first + 1 < argc ? argv[first + 1] : NULL;
    /* A lazy image (docs/remote-cache.md) goes by its manifest: its layers are mounted or
     * copied from the registry cache that holds them. */
    if (layerstore_lazy_ref_get(store, image, lazy) == 0) {
        dest = dest ? dest : image;
        image = lazy;
    }
    if (registry_push(store, image, dest, &opts, digest, &err) < 0)
        return cli_fail(err);
    printf("%s\n", digest);
    if (digestfile &&
        mk_write_file_atomic(AT_FDCWD, digestfile, digest, strlen(digest), 0644, &err) < 0) {
        mk_error_set_where(&err, digestfile);
        return cli_fail(err);
    }
    return 0;
}
