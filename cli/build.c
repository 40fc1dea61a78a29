/* cli/build.c - mkimg build [OPTIONS] CONTEXT */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "common/fsutil.h"

static void build_usage(FILE *f)
{
    fputs("usage: mkimg build [OPTIONS] CONTEXT\n"
          "  -t, --tag NAME[:TAG]     name the image (repeatable)\n"
          "  -f, --file FILE          the Dockerfile (default CONTEXT/Dockerfile)\n"
          "      --build-arg K[=V]    set a build-time variable (V from the environment if omitted)\n"
          "      --target STAGE       build up to this stage\n"
          "      --secret id=ID,src=PATH|env=VAR   a secret for RUN --mount=type=secret\n"
          "      --network MODE       default (host), host or none for RUN\n"
          "      --no-cache           do not use the build cache\n"
          "      --push               push every -t name to its registry after the build\n"
          "      --explain-cache      for each step that misses the cache, say which input changed\n"
          "      --pull[=POLICY]      base images: missing (default), always, never (offline)\n"
          "      --tls-verify=BOOL    verify registry certificates (default true)\n"
          "      --ignorefile FILE    use FILE instead of the context's .dockerignore\n"
          "      --iidfile FILE       write the image ID to FILE\n"
          "      --progress MODE      auto, plain, tty or quiet\n"
          "  -q, --quiet              print only the image ID\n",
          f);
}

int cmd_build(struct mk_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tag", required_argument, NULL, 't'},
        {"file", required_argument, NULL, 'f'},
        {"build-arg", required_argument, NULL, 'a'},
        {"secret", required_argument, NULL, 's'},
        {"target", required_argument, NULL, 'T'},
        {"network", required_argument, NULL, 'n'},
        {"no-cache", no_argument, NULL, 'N'},
        {"push", no_argument, NULL, 'U'},
        {"explain-cache", no_argument, NULL, 'X'},
        {"pull", optional_argument, NULL, 'P'},
        {"tls-verify", required_argument, NULL, 'V'},
        {"ignorefile", required_argument, NULL, 'I'},
        {"iidfile", required_argument, NULL, 'i'},
        {"progress", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct mk_build_opts opts;
    memset(&opts, 0, sizeof(opts));
    struct registry_opts ropts;
    memset(&ropts, 0, sizeof(ropts));
    opts.registry = &ropts;
    opts.log_fd = STDERR_FILENO;
    const char *iidfile = NULL;
    bool push = false;
    int rc = 2;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+t:f:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            mk_strv_push(&opts.tags, optarg);
            break;
        case 'f':
            opts.dockerfile = optarg;
            break;
        case 'a':
            mk_strv_push(&opts.build_args, optarg);
            break;
        case 'T':
            opts.target = optarg;
            break;
        case 's':
            if (!strstr(optarg, "id=")) {
                rc = cli_usage("build: --secret needs id=ID,src=PATH or id=ID,env=VAR");
                goto out;
            }
            mk_strv_push(&opts.secrets, optarg);
            break;
        case 'n':
            if (strcmp(optarg, "none") == 0)
                opts.network = MK_NET_NONE;
            else if (strcmp(optarg, "host") == 0 || strcmp(optarg, "default") == 0)
                opts.network = MK_NET_HOST;
            else {
                rc = cli_usage("build: unknown --network \"%s\" (use default, host or none)",
                               optarg);
                goto out;
            }
            break;
        case 'N':
            opts.no_cache = true;
            break;
        case 'U':
            push = true;
            break;
        case 'X':
            opts.explain_cache = true;
            break;
        case 'P': {
            int p = registry_pull_policy_parse(optarg ? optarg : "always");
            if (p < 0) {
                rc = cli_usage("build: unknown --pull \"%s\" (use missing, always or never)",
                               optarg);
                goto out;
            }
            opts.pull = (enum registry_pull_policy)p;
            break;
        }
        case 'V':
            if (strcmp(optarg, "false") == 0)
                ropts.tls = REGISTRY_TLS_INSECURE;
            else if (strcmp(optarg, "true") == 0)
                ropts.tls = REGISTRY_TLS_VERIFY;
            else {
                rc = cli_usage("build: --tls-verify takes true or false");
                goto out;
            }
            break;
        case 'I':
            opts.ignorefile = optarg;
            break;
        case 'i':
            iidfile = optarg;
            break;
        case 'p':
            if (strcmp(optarg, "quiet") == 0)
                opts.quiet = true;
            else if (strcmp(optarg, "auto") && strcmp(optarg, "plain") && strcmp(optarg, "tty")) {
                rc = cli_usage("build: unknown --progress \"%s\"", optarg);
                goto out;
            }
            break;
        case 'q':
            opts.quiet = true;
            break;
        case 'h':
            build_usage(stdout);
            rc = 0;
            goto out;
        default:
            rc = cli_usage("build: unknown option \"%s\" (see \"mkimg build --help\")",
                           argv[optind - 1]);
            goto out;
        }
    }
    if (optind != argc - 1) {
        rc = cli_usage("build: expected exactly one CONTEXT directory (see \"mkimg build --help\")");
        goto out;
    }
    opts.context_dir = argv[optind];

    struct mk_store *store = cli_store(cli);
    if (!store) {
        rc = 1;
        goto out;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    if (builder_build(store, &opts, &img, &err) < 0) {
        rc = cli_fail(err);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!opts.quiet) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        for (size_t i = 0; i < opts.tags.n; i++)
            fprintf(stderr, "tagged %s\n", opts.tags.v[i]);
        fprintf(stderr, "built %s in %.2fs\n", img->config_digest, secs);
    }
    printf("%s\n", img->config_digest);
    rc = 0;
    if (push && opts.tags.n == 0) {
        cli_warn("--push without -t: nothing to push");
    }
    for (size_t i = 0; push && rc == 0 && i < opts.tags.n; i++) {
        char digest[MK_DIGEST_SIZE];
        if (registry_push(store, opts.tags.v[i], NULL, &ropts, digest, &err) < 0) {
            rc = cli_fail(err);
            break;
        }
        if (!opts.quiet)
            fprintf(stderr, "pushed %s@%s\n", opts.tags.v[i], digest);
    }
    if (iidfile) {
        _cleanup_free_ char *line = mk_xasprintf("%s", img->config_digest);
        if (mk_write_file_atomic(AT_FDCWD, iidfile, line, strlen(line), 0644, &err) < 0) {
            mk_error_set_where(&err, iidfile);
            rc = cli_fail(err);
        }
    }
    layerstore_image_free(img);
out:
    mk_strv_release(&opts.tags);
    mk_strv_release(&opts.build_args);
    mk_strv_release(&opts.secrets);
    return rc;
}
