/* cli/run.c - mkimg run [--network MODE] IMAGE [COMMAND [ARG...]] */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "builder/builder.h"
#include "cli/cli.h"

int cmd_run(struct mk_cli *cli, int argc, char **argv)
{
    enum mk_network net = MK_NET_HOST;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--network") == 0 && i + 1 < argc) {
            const char *m = argv[++i];
            if (strcmp(m, "none") == 0)
                net = MK_NET_NONE;
            else if (strcmp(m, "host") && strcmp(m, "default"))
                return cli_usage("run: unknown --network \"%s\" (use default, host or none)", m);
        } else if (strcmp(argv[i], "--rm") == 0) {
            /* Containers are always thrown away; accepted for docker's muscle memory. */
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: mkimg run [--network MODE] IMAGE [COMMAND [ARG...]]\n");
            return 0;
        } else {
            return cli_usage("run: unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc)
        return cli_usage("run: expected an IMAGE (see \"mkimg run --help\")");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    if (layerstore_image_get(store, argv[i], &img, &err) < 0)
        return cli_fail(err);
    int status = 0;
    int r = builder_run_image(store, img, argv + i + 1, net, &status, &err);
    layerstore_image_free(img);
    if (r < 0)
        return cli_fail(err);
    return status;
}
