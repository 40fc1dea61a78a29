/* cli/load.c - `mkimg load [-i FILE]`: images from an OCI or Docker archive (or stdin). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

int cmd_load(struct mk_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *in = NULL;
    bool quiet = false;
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "+i:qh", opts, NULL)) != -1) {
        switch (o) {
        case 'i':
            in = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            printf("usage: mkimg load [-q] [-i FILE]\n"
                   "  -i, --input FILE   read the archive from FILE instead of stdin\n");
            return 0;
        default:
            return cli_usage("load: bad option \"%s\" (see \"mkimg load --help\")",
                             argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage("load: unexpected argument \"%s\" (usage: mkimg load [-i FILE])",
                         argv[optind]);
    _cleanup_close_ int fd = STDIN_FILENO;
    struct mk_error *err = NULL;
    if (in && strcmp(in, "-") != 0) {
        fd = open(in, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            mk_error_set(&err, errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO, errno,
                         "opening \"%s\"", in);
            return cli_fail(err);
        }
    } else if (isatty(STDIN_FILENO)) {
        fd = -1;
        return cli_usage("load: refusing to read an archive from a terminal (use -i FILE)");
    }
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_strv loaded = MK_STRV_INIT;
    if (layerstore_load(store, fd, &loaded, &err) < 0) {
        if (in)
            mk_error_set_where(&err, in);
        return cli_fail(err);
    }
    for (size_t i = 0; !quiet && i < loaded.n; i++)
        printf(mk_digest_valid(loaded.v[i]) ? "Loaded image ID: %s\n" : "Loaded image: %s\n",
               loaded.v[i]);
    mk_strv_release(&loaded);
    return 0;
}
