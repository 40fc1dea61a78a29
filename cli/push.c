/* cli/push.c - `mkimg push [OPTIONS] IMAGE [DESTINATION]`. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fsutil.h"
#include "registry/registry.h"

static void push_usage(FILE *f)
{
    fputs("usage: mkimg push [OPTIONS] IMAGE [DESTINATION]\n"
          "      --digestfile FILE    write the pushed manifest's digest to FILE\n"
          "      --compression-format gzip|zstd|none   how layers travel (default "
          "gzip)\n" CLI_REGISTRY_HELP "  -q, --quiet              print only the manifest digest\n",
          f);
}

int cmd_push(struct mk_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_REGISTRY_LONGOPTS,
        {"digestfile", required_argument, NULL, 'd'},
        {"compression-format", required_argument, NULL, 'c'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct registry_opts opts = {.retries = -1, .log = stderr};
    const char *digestfile = NULL;
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+qh", longopts, &idx)) != -1) {
        if (c == 1) {
            if (cli_registry_opt(&opts, longopts[idx].name, optarg) != 0)
                return 2;
        } else if (c == 'd') {
            digestfile = optarg;
        } else if (c == 'c') {
            opts.compression = optarg;
        } else if (c == 'q') {
            opts.log = NULL;
        } else if (c == 'h') {
            push_usage(stdout);
            return 0;
        } else {
            return cli_usage("push: unknown option \"%s\" (see \"mkimg push --help\")",
                             argv[optind - 1]);
        }
    }
    if (optind != argc - 1 && optind != argc - 2)
        return cli_usage("push: expected IMAGE [DESTINATION] (see \"mkimg push --help\")");
    if (opts.platform)
        return cli_usage("push: --platform is for pull");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    char digest[MK_DIGEST_SIZE];
    if (registry_push(store, argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL, &opts,
                      digest, &err) < 0)
        return cli_fail(err);
    printf("%s\n", digest);
    if (digestfile &&
        mk_write_file_atomic(AT_FDCWD, digestfile, digest, strlen(digest), 0644, &err) < 0) {
        mk_error_set_where(&err, digestfile);
        return cli_fail(err);
    }
    return 0;
}
