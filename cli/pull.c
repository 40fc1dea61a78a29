/* cli/pull.c - `mkimg pull [OPTIONS] REF`, and the registry options pull, push and login share. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "registry/registry.h"

const struct cli_opt cli_registry_opts[] = {
    {CLI_REG_TLS_VERIFY, 0, "tls-verify", "[=BOOL]",
     "verify TLS (default: yes, but plain HTTP for localhost without a certs.d directory)",
     CLI_COMP_WORDS, "true false"},
    {CLI_REG_CERT_DIR, 0, "cert-dir", "DIR",
     "CAs (*.crt) and client certificate (*.cert, *.key); default "
     "/etc/containers/certs.d/HOST:PORT, /etc/docker/certs.d/HOST:PORT",
     CLI_COMP_DIR, NULL},
    {CLI_REG_AUTHFILE, 0, "authfile", "FILE", "credentials file (default: podman's auth.json)",
     CLI_COMP_FILE, NULL},
    {CLI_REG_CREDS, 0, "creds", "USER:PASS", "credentials for this command", 0, NULL},
    {CLI_REG_RETRY, 0, "retry", "N", "attempts after a failure (default 5)", 0, NULL},
    {0},
};

int cli_registry_opt(struct registry_opts *o, int id, const char *arg)
{
    switch (id) {
    case CLI_REG_TLS_VERIFY:
        if (!arg || strcmp(arg, "true") == 0)
            o->tls = REGISTRY_TLS_VERIFY;
        else if (strcmp(arg, "false") == 0)
            o->tls = REGISTRY_TLS_INSECURE;
        else
            return cli_usage("--tls-verify takes true or false, not \"%s\"", arg);
        break;
    case CLI_REG_CERT_DIR:
        o->cert_dir = arg;
        break;
    case CLI_REG_AUTHFILE:
        o->authfile = arg;
        break;
    case CLI_REG_CREDS:
        if (!strchr(arg, ':'))
            return cli_usage("--creds takes USER:PASSWORD");
        o->creds = arg;
        break;
    case CLI_REG_RETRY:
        if (mk_parse_int(arg, &o->retries) < 0 || o->retries < 0 || o->retries > 100)
            return cli_usage("--retry takes a number from 0 to 100, not \"%s\"", arg);
        break;
    default:
        MK_BUG("not a registry option");
    }
    return 0;
}

enum { OPT_PLATFORM = 1, OPT_QUIET };

static const struct cli_opt pull_opts[] = {
    {OPT_PLATFORM, 0, "platform", "OS/ARCH[/VARIANT]",
     "the image to take from an index (default: this machine's); several, comma-separated: REF "
     "keeps them all",
     CLI_COMP_WORDS, "linux/amd64 linux/arm64 linux/arm/v7 linux/386 linux/ppc64le linux/s390x"},
    {OPT_QUIET, 'q', "quiet", NULL, "print only the image ID", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_pull = {
    .name = "pull",
    .synopsis = "[OPTIONS] REF",
    .summary = "pull an image from a registry",
    .opts = pull_opts,
    .more = cli_registry_opts,
    .operand = CLI_COMP_IMAGE,
    .fn = cmd_pull,
};

int cmd_pull(struct mk_cli *cli, int argc, char **argv)
{
    struct registry_opts opts = {.retries = -1,
                                 .log = cli_log_level <= CLI_LOG_INFO ? stderr : NULL};
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_pull, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id >= CLI_REG_FIRST && id <= CLI_REG_LAST) {
            if (cli_registry_opt(&opts, id, a.arg) != 0)
                return 2;
        } else if (id == OPT_PLATFORM) {
            opts.platform = a.arg;
        } else if (id == OPT_QUIET) {
            opts.log = NULL;
        }
    }
    if (a.first != argc - 1)
        return cli_args_usage(&cli_cmd_pull, "expected one image reference");
    const char *ref = argv[a.first];
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    /* Several platforms: each is pulled and added to the name, which holds them all. */
    _cleanup_free_ char *list = opts.platform ? mk_xstrdup(opts.platform) : NULL;
    opts.add_platform = list && strchr(list, ',');
    char *save = NULL;
    /* One window of deferred durability (layerstore_sync_defer): the blobs and snapshots
     * reach the disk with one syncfs before the tag names them, not an fsync per blob and a
     * syncfs per layer; a power cut before the tag costs the pull, never a tagged image. */
    if (layerstore_sync_defer(store, &err) < 0)
        return cli_fail(err);
    int r = 0;
    for (char *p = list ? strtok_r(list, ",", &save) : NULL;; p = strtok_r(NULL, ",", &save)) {
        if (list && !p)
            break;
        opts.platform = p;
        struct mk_image *img = NULL;
        if (registry_pull(store, ref, &opts, &img, &err) < 0) {
            r = -1;
            break;
        }
        printf("%s\n", img->config_digest);
        layerstore_image_free(img);
        if (!list)
            break;
    }
    struct mk_error *e = NULL;
    if (layerstore_sync_end(store, r < 0 ? NULL : &e) < 0 && r == 0) {
        err = e;
        r = -1;
    }
    return r < 0 ? cli_fail(err) : 0;
}
