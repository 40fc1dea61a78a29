/* cli/run.c - mkimg run [--network MODE] IMAGE [COMMAND [ARG...]] */
#include <stdio.h>
#include <string.h>

#include "builder/builder.h"
#include "cli/cli.h"

enum { OPT_NETWORK = 1, OPT_RM };

static const struct cli_opt run_opts[] = {
    {OPT_NETWORK, 0, "network", "MODE", "default (host), host or none", CLI_COMP_WORDS,
     "default host none"},
    {OPT_RM, 0, "rm", NULL, "accepted for docker: the container is always thrown away", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_run = {
    .name = "run",
    .synopsis = "[--network MODE] IMAGE [COMMAND [ARG...]]",
    .summary = "run an image's command in a throwaway container",
    .description = "Runs COMMAND (else the image's entrypoint and command) in the same sandbox "
                   "as a RUN instruction; the exit status is the command's.",
    .opts = run_opts,
    .operand = CLI_COMP_IMAGE,
    .options_first = true,
    .fn = cmd_run,
};

int cmd_run(struct mk_cli *cli, int argc, char **argv)
{
    enum mk_network net = MK_NET_HOST;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_run, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id == OPT_NETWORK) {
            if (strcmp(a.arg, "none") == 0)
                net = MK_NET_NONE;
            else if (strcmp(a.arg, "host") && strcmp(a.arg, "default"))
                return cli_usage("run: unknown --network \"%s\" (use default, host or none)",
                                 a.arg);
        }
    }
    int i = a.first;
    if (i >= argc)
        return cli_args_usage(&cli_cmd_run, "expected an IMAGE");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    /* A lazy image (built with --push from a registry cache) gets its layers first. */
    if (builder_lazy_complete(store, argv[i], NULL, &err) < 0 ||
        layerstore_image_get(store, argv[i], &img, &err) < 0)
        return cli_fail(err);
    int status = 0;
    int r = builder_run_image(store, img, argv + i + 1, net, &status, &err);
    layerstore_image_free(img);
    if (r < 0)
        return cli_fail(err);
    return status;
}
