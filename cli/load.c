/* cli/load.c - `mkimg load [-i FILE]`: images from an OCI or Docker archive (or stdin). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

enum { OPT_INPUT = 1, OPT_QUIET };

static const struct cli_opt load_opts[] = {
    {OPT_INPUT, 'i', "input", "FILE", "read the archive from FILE instead of stdin", CLI_COMP_FILE,
     NULL},
    {OPT_QUIET, 'q', "quiet", NULL, "print nothing", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_load = {
    .name = "load",
    .synopsis = "[-q] [-i FILE]",
    .summary = "read images from an OCI or Docker archive",
    .description = "The archive may be compressed. Each image is tagged with the names the "
                   "archive gives it; the names (or IDs of unnamed images) are printed.",
    .opts = load_opts,
    .fn = cmd_load,
};

int cmd_load(struct mk_cli *cli, int argc, char **argv)
{
    const char *in = NULL;
    bool quiet = false;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_load, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id == OPT_INPUT)
            in = a.arg;
        else if (id == OPT_QUIET)
            quiet = true;
    }
    if (a.first < argc)
        return cli_args_usage(&cli_cmd_load, "unexpected argument \"%s\"", argv[a.first]);
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
