/* cli/main.c - option parsing, dispatch, signals and the one place errors are printed. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"

#define MKIMG_VERSION "0.1.0"

enum cli_log_level cli_log_level = CLI_LOG_INFO;

enum { OPT_ROOT = 1, OPT_LOG_LEVEL, OPT_DEBUG, OPT_VERSION };

static const struct cli_opt mkimg_opts[] = {
    {OPT_ROOT, 0, "root", "DIR",
     "the store (default: $MKIMG_ROOT, else /var/lib/mkimg for root and $XDG_DATA_HOME/mkimg "
     "for other users)",
     CLI_COMP_DIR, NULL},
    {OPT_LOG_LEVEL, 0, "log-level", "LEVEL",
     "debug, info (default), warn or error: debug adds what mkimg decides (store, command, "
     "timings); warn drops pull and push progress; error drops warnings too",
     CLI_COMP_WORDS, "debug info warn error"},
    {OPT_DEBUG, 'D', "debug", NULL, "the same as --log-level=debug", 0, NULL},
    {OPT_VERSION, 0, "version", NULL, "print the version and exit", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_mkimg = {
    .name = "mkimg",
    .synopsis = "[--root DIR] [--log-level LEVEL] COMMAND [OPTIONS] [ARGS...]",
    .summary = "daemonless, rootless container image builder",
    .description = "Builds OCI images from Dockerfiles without a daemon, as root or as any "
                   "user, and keeps them in a local store that pull, push, save, load and the "
                   "other commands share. \"mkimg COMMAND --help\" describes each command.",
    .opts = mkimg_opts,
    .options_first = true,
};

static int cmd_version(struct mk_cli *cli, int argc, char **argv)
{
    (void)cli;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_version, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;)
        if (id == CLI_ARGS_EXIT)
            return a.status;
    if (a.first < argc)
        return cli_args_usage(&cli_cmd_version, "unexpected argument \"%s\"", argv[a.first]);
    printf("mkimg version %s\n", MKIMG_VERSION);
    return 0;
}

const struct cli_cmd cli_cmd_version = {
    .name = "version",
    .synopsis = "",
    .summary = "print mkimg's version",
    .fn = cmd_version,
};

/* The order of `mkimg --help`. */
const struct cli_cmd *const cli_commands[] = {
    &cli_cmd_build,   &cli_cmd_run,      &cli_cmd_parse,
    &cli_cmd_import,  &cli_cmd_images,   &cli_cmd_inspect,
    &cli_cmd_history, &cli_cmd_rmi,      &cli_cmd_tag,
    &cli_cmd_save,    &cli_cmd_load,     &cli_cmd_prune,
    &cli_cmd_fsck,    &cli_cmd_df,       &cli_cmd_pull,
    &cli_cmd_push,    &cli_cmd_manifest, &cli_cmd_login,
    &cli_cmd_logout,  &cli_cmd_version,  NULL,
};

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

/* "mkimg: KIND: message" when the log level lets level through. */
static void log_line(enum cli_log_level level, const char *kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void log_line(enum cli_log_level level, const char *kind, const char *fmt, va_list ap)
{
    if (cli_log_level > level)
        return;
    fprintf(stderr, "mkimg: %s: ", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(CLI_LOG_WARN, "warning", fmt, ap);
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
    cli_debug("opened the store %s (%s)", cli->root,
              single ? "rootless, one id mapped" : "ids mapped as /etc/subuid says, or root");
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

void cli_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(CLI_LOG_DEBUG, "debug", fmt, ap);
    va_end(ap);
}

static int parse_log_level(const char *v)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(names); i++)
        if (strcmp(v, names[i]) == 0 || (i == 2 && strcmp(v, "warning") == 0)) {
            cli_log_level = (enum cli_log_level)i;
            return 0;
        }
    return cli_usage("unknown --log-level \"%s\" (debug, info, warn or error)", v);
}

/* The global options, before the command. 0 to go on (*ret_root set), else the exit status + 1
 * (so that 0 from --help or --version is 1). */
static int global_options(struct mk_cli *cli, int argc, char **argv, const char **ret_root,
                          int *ret_first)
{
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_mkimg, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        switch (id) {
        case CLI_ARGS_EXIT:
            return a.status + 1;
        case OPT_ROOT:
            *ret_root = a.arg;
            cli->root_given = true;
            break;
        case OPT_LOG_LEVEL:
            if (parse_log_level(a.arg) != 0)
                return 3;
            break;
        case OPT_DEBUG:
            cli_log_level = CLI_LOG_DEBUG;
            break;
        case OPT_VERSION:
            printf("mkimg version %s\n", MKIMG_VERSION);
            return 1;
        }
    }
    *ret_first = a.first;
    return 0;
}

/* "mkimg help [COMMAND]", as git and docker take it. */
static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        cli_cmd_help(&cli_cmd_mkimg, stdout);
        return 0;
    }
    for (size_t c = 0; cli_commands[c]; c++)
        if (strcmp(argv[1], cli_commands[c]->name) == 0) {
            cli_cmd_help(cli_commands[c], stdout);
            return 0;
        }
    return cli_usage("help: unknown command \"%s\" (see \"mkimg --help\")", argv[1]);
}

/* The command argv[0] with the store cli says. */
static int run_command(struct mk_cli *cli, int argc, char **argv)
{
    if (strcmp(argv[0], "help") == 0)
        return cmd_help(argc, argv);
    if (strcmp(argv[0], "__generate") == 0)
        return cli_generate(argc, argv);
    const struct cli_cmd *cmd = NULL;
    for (size_t c = 0; cli_commands[c]; c++)
        if (strcmp(argv[0], cli_commands[c]->name) == 0)
            cmd = cli_commands[c];
    if (!cmd)
        return cli_usage("unknown command \"%s\" (see \"mkimg --help\")", argv[0]);
    install_signals();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = cmd->fn(cli, argc, argv);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cli_debug("%s exited with status %d after %.3fs", cmd->name, rc,
              (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return rc;
}

int main(int argc, char **argv)
{
    struct mk_cli cli = {0};
    const char *root = NULL;
    int i = 0;
    int g = global_options(&cli, argc, argv, &root, &i);
    if (g)
        return g - 1;
    if (i >= argc) {
        cli_cmd_help(&cli_cmd_mkimg, stderr);
        return 2;
    }
    const char *root_from = root ? "--root" : "$MKIMG_ROOT";
    if (!root)
        root = getenv("MKIMG_ROOT");
    cli.root = root && *root ? mk_xstrdup(root) : layerstore_default_root();
    cli_debug("mkimg %s, store %s (from %s)", MKIMG_VERSION, cli.root,
              root && *root ? root_from : "the default");
    int rc = run_command(&cli, argc - i, argv + i);
    layerstore_free(cli.store);
    free(cli.root);
    fflush(stdout);
    return rc;
}
