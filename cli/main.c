/* cli/main.c - option parsing, dispatch, signals and the one place errors are printed. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"

#define MKIMG_VERSION "0.1.0"

struct command {
    const char *name;
    int (*fn)(struct mk_cli *cli, int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"build", cmd_build, "build an image from a Dockerfile"},
    {"run", cmd_run, "run an image's command in a throwaway container"},
    {"parse", cmd_parse, "parse a Dockerfile and print it (--dump, --json)"},
    {"import", cmd_import, "import a rootfs tarball or directory as an image"},
    {"images", cmd_images, "list images"},
    {"inspect", cmd_inspect, "show an image's manifest and config as JSON"},
    {"rmi", cmd_rmi, "remove images"},
    {"tag", cmd_tag, "add a name to an image"},
    {"save", cmd_save, "write images to an OCI or Docker archive"},
    {"load", cmd_load, "read images from an OCI or Docker archive"},
    {"prune", cmd_prune, "remove what no image needs (blobs, snapshots, cache)"},
    {"fsck", cmd_fsck, "verify the store (--deep: snapshot contents; --repair fixes)"},
    {"df", cmd_df, "show the store's disk usage"},
    {"pull", cmd_pull, "pull an image from a registry"},
    {"push", cmd_push, "push an image to a registry"},
    {"manifest", cmd_manifest,
     "join images of several platforms into one index (create, add, ...)"},
    {"login", cmd_login, "store credentials for a registry"},
    {"logout", cmd_logout, "remove stored credentials for a registry"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: mkimg [--root DIR] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < MK_ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nThe store is --root, else $MKIMG_ROOT, else /var/lib/mkimg (root) or\n"
               "$XDG_DATA_HOME/mkimg (other users).\n");
}

int cli_fail(struct mk_error *err)
{
    _cleanup_free_ char *msg = mk_error_format(err);
    /* Messages quote Dockerfiles, archives and servers: no raw control bytes to the terminal. */
    _cleanup_free_ char *shown = mk_str_escape_control(msg);
    fprintf(stderr, "mkimg: %s\n", shown);
    int code = err && err->code == MK_ERR_USAGE ? 2 : 1;
    if (err && err->code == MK_ERR_INTERRUPTED)
        code = 130;
    mk_error_free(err);
    return code;
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mk_xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *shown = mk_str_escape_control(msg);
    fprintf(stderr, "mkimg: %s\n", shown);
    return 2;
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mkimg: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_check_new_name(const char *name)
{
    struct mk_error *err = NULL;
    _cleanup_free_ char *norm = mk_ref_local_name(name, &err);
    if (!norm)
        return cli_fail(err);
    if (strchr(name, '@')) {
        mk_error_set(&err, MK_ERR_INVALID, 0,
                     "invalid name \"%s\": an image cannot be named with a digest (NAME[:TAG])",
                     name);
        return cli_fail(err);
    }
    return 0;
}

int cli_epoch(const char *value, const char *what, int64_t *ret)
{
    if (!value) {
        value = getenv("SOURCE_DATE_EPOCH");
        what = "SOURCE_DATE_EPOCH";
    }
    struct mk_error *err = NULL;
    if (mk_epoch_parse(value, ret, &err) < 0) {
        _cleanup_free_ char *where = mk_xasprintf("%s=%s", what, value);
        mk_error_set_where(&err, where);
        return cli_fail(err);
    }
    return 0;
}

struct mk_store *cli_store(struct mk_cli *cli)
{
    if (cli->store)
        return cli->store;
    struct mk_error *err = NULL;
    bool single = false;
    if (builder_enter_userns(&single, &err) < 0) {
        cli_fail(err);
        return NULL;
    }
    if (single)
        cli_warn("no subordinate id range for this user in /etc/subuid and /etc/subgid "
                 "(or newuidmap/newgidmap missing): only your own id is mapped, so images "
                 "whose files belong to other users cannot be built; add a range with "
                 "\"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s\"",
                 getenv("USER") ? getenv("USER") : "USER");
    /* Like podman, --root creates a store that is not there yet (scripts pass fresh dirs), but
     * not silently: a mistyped path is seen at once instead of a build landing in a new
     * tree. The default root and $MKIMG_ROOT are created quietly. */
    struct stat st;
    if (cli->root_given && stat(cli->root, &st) < 0 && errno == ENOENT)
        cli_warn("--root \"%s\" does not exist: creating a new, empty store there", cli->root);
    if (layerstore_open(cli->root, &cli->store, &err) < 0) {
        cli_fail(err);
        return NULL;
    }
    return cli->store;
}

static void on_signal(int sig)
{
    (void)sig;
    mk_interrupted = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocking wait must return EINTR so we can clean up. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    struct mk_cli cli = {0};
    const char *root = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--root") == 0) {
            if (++i >= argc)
                return cli_usage("--root needs a directory");
            root = argv[i];
            cli.root_given = true;
        } else if (mk_str_has_prefix(a, "--root=")) {
            root = a + 7;
            cli.root_given = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("mkimg version %s\n", MKIMG_VERSION);
            return 0;
        } else {
            return cli_usage("unknown option \"%s\" (see \"mkimg --help\")", a);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (!root)
        root = getenv("MKIMG_ROOT");
    cli.root = root && *root ? mk_xstrdup(root) : layerstore_default_root();
    if (strcmp(argv[i], "version") == 0) {
        printf("mkimg version %s\n", MKIMG_VERSION);
        return 0;
    }
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return 0;
    }
    install_signals();
    int rc = -1;
    for (size_t c = 0; c < MK_ARRAY_SIZE(commands); c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            rc = commands[c].fn(&cli, argc - i, argv + i);
    if (rc < 0)
        rc = cli_usage("unknown command \"%s\" (see \"mkimg --help\")", argv[i]);
    layerstore_free(cli.store);
    free(cli.root);
    fflush(stdout);
    return rc;
}
