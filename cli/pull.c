/* cli/pull.c - `mkimg pull [OPTIONS] REF`, and the registry options pull, push and login share. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "registry/registry.h"

int cli_registry_opt(struct registry_opts *o, const char *name, const char *arg)
{
    if (strcmp(name, "tls-verify") == 0) {
        if (!arg || strcmp(arg, "true") == 0)
            o->tls = REGISTRY_TLS_VERIFY;
        else if (strcmp(arg, "false") == 0)
            o->tls = REGISTRY_TLS_INSECURE;
        else
            return cli_usage("--tls-verify takes true or false, not \"%s\"", arg);
    } else if (strcmp(name, "cert-dir") == 0) {
        o->cert_dir = arg;
    } else if (strcmp(name, "authfile") == 0) {
        o->authfile = arg;
    } else if (strcmp(name, "creds") == 0) {
        if (!strchr(arg, ':'))
            return cli_usage("--creds takes USER:PASSWORD");
        o->creds = arg;
    } else if (strcmp(name, "retry") == 0) {
        if (mk_parse_int(arg, &o->retries) < 0 || o->retries < 0 || o->retries > 100)
            return cli_usage("--retry takes a number from 0 to 100, not \"%s\"", arg);
    } else if (strcmp(name, "platform") == 0) {
        o->platform = arg;
    } else {
        return cli_usage("unknown option \"--%s\"", name);
    }
    return 0;
}

static void pull_usage(FILE *f)
{
    fputs("usage: mkimg pull [OPTIONS] REF\n"
          "      --platform OS/ARCH[/VARIANT]  the image to take from an index (default: "
          "this machine's);\n"
          "                           several, comma-separated: REF keeps them "
          "all\n" CLI_REGISTRY_HELP "  -q, --quiet              print only the image ID\n",
          f);
}

int cmd_pull(struct mk_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_REGISTRY_LONGOPTS,
        {"platform", required_argument, NULL, 1},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct registry_opts opts = {.retries = -1, .log = stderr};
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+qh", longopts, &idx)) != -1) {
        if (c == 1) {
            if (cli_registry_opt(&opts, longopts[idx].name, optarg) != 0)
                return 2;
        } else if (c == 'q') {
            opts.log = NULL;
        } else if (c == 'h') {
            pull_usage(stdout);
            return 0;
        } else {
            return cli_usage("pull: unknown option \"%s\" (see \"mkimg pull --help\")",
                             argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage("pull: expected one image reference (see \"mkimg pull --help\")");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    /* Several platforms: each is pulled and added to the name, which holds them all. */
    _cleanup_free_ char *list = opts.platform ? mk_xstrdup(opts.platform) : NULL;
    opts.add_platform = list && strchr(list, ',');
    char *save = NULL;
    for (char *p = list ? strtok_r(list, ",", &save) : NULL;; p = strtok_r(NULL, ",", &save)) {
        if (list && !p)
            break;
        opts.platform = p;
        struct mk_image *img = NULL;
        if (registry_pull(store, argv[optind], &opts, &img, &err) < 0)
            return cli_fail(err);
        printf("%s\n", img->config_digest);
        layerstore_image_free(img);
        if (!list)
            break;
    }
    return 0;
}
