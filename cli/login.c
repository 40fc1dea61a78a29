/* cli/login.c - `mkimg login` and `mkimg logout`: credentials in auth.json, like podman. */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "registry/registry.h"

#define SECRET_MAX 4096

/* "https://host:5000/v2/" -> "host:5000" (what auth files key on). */
static char *login_host(const char *arg)
{
    const char *s = arg;
    if (mk_str_has_prefix(s, "https://"))
        s += 8;
    else if (mk_str_has_prefix(s, "http://"))
        s += 7;
    return mk_xstrndup(s, strcspn(s, "/"));
}

/* One line from stdin without its newline (echo off on a terminal). */
static char *read_line(const char *prompt, bool secret)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
    }
    if (tty && secret && tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else {
        secret = false;
    }
    char buf[SECRET_MAX];
    char *line = fgets(buf, sizeof(buf), stdin);
    if (secret) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!line)
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    char *r = mk_xstrdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return r;
}

enum { OPT_USERNAME = 1, OPT_PASSWORD, OPT_PASSWORD_STDIN, OPT_AUTHFILE };

static const struct cli_opt login_opts[] = {
    {OPT_USERNAME, 'u', "username", "USER", "the user name (else asked on the terminal)", 0, NULL},
    {OPT_PASSWORD, 'p', "password", "PASSWORD",
     "the password (visible to other users: prefer --password-stdin)", 0, NULL},
    {OPT_PASSWORD_STDIN, 0, "password-stdin", NULL, "read the password from stdin", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_login = {
    .name = "login",
    .synopsis = "[OPTIONS] REGISTRY",
    .summary = "store credentials for a registry",
    .description = "The credentials are checked against REGISTRY, then kept in the auth file "
                   "podman and skopeo read (--authfile, else $REGISTRY_AUTH_FILE, else "
                   "${XDG_RUNTIME_DIR}/containers/auth.json).",
    .opts = login_opts,
    .more = cli_registry_opts,
    .fn = cmd_login,
};

int cmd_login(struct mk_cli *cli, int argc, char **argv)
{
    (void)cli;
    struct registry_opts opts = {.retries = -1};
    const char *user = NULL, *pass = NULL;
    bool pass_stdin = false;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_login, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id >= CLI_REG_FIRST && id <= CLI_REG_LAST) {
            if (cli_registry_opt(&opts, id, a.arg) != 0)
                return 2;
        } else if (id == OPT_USERNAME) {
            user = a.arg;
        } else if (id == OPT_PASSWORD) {
            pass = a.arg;
        } else if (id == OPT_PASSWORD_STDIN) {
            pass_stdin = true;
        }
    }
    if (a.first != argc - 1)
        return cli_args_usage(&cli_cmd_login, "expected one REGISTRY");
    const char *registry = argv[a.first];
    if (pass && pass_stdin)
        return cli_usage("login: --password and --password-stdin exclude each other");
    _cleanup_free_ char *host = login_host(registry);
    _cleanup_free_ char *u = user ? mk_xstrdup(user) : read_line("Username: ", false);
    _cleanup_free_ char *p = pass ? mk_xstrdup(pass) : read_line("Password: ", true);
    if (!u || !*u || !p || !*p)
        return cli_usage("login: a username and a password are needed");
    if (strchr(u, ':'))
        return cli_usage("login: a username cannot contain \":\"");
    _cleanup_free_ char *creds = mk_xasprintf("%s:%s", u, p);
    explicit_bzero(p, strlen(p));
    struct mk_error *err = NULL;
    int r = registry_login_check(mk_ref_registry_host(host), creds, &opts, &err);
    if (r == 0)
        r = registry_auth_store(opts.authfile, host, creds, &err);
    explicit_bzero(creds, strlen(creds));
    if (r < 0)
        return cli_fail(err);
    printf("Login Succeeded!\n");
    return 0;
}

static const struct cli_opt logout_opts[] = {
    {OPT_AUTHFILE, 0, "authfile", "FILE", "credentials file (default: podman's auth.json)",
     CLI_COMP_FILE, NULL},
    {0},
};

const struct cli_cmd cli_cmd_logout = {
    .name = "logout",
    .synopsis = "[--authfile FILE] REGISTRY",
    .summary = "remove stored credentials for a registry",
    .opts = logout_opts,
    .fn = cmd_logout,
};

int cmd_logout(struct mk_cli *cli, int argc, char **argv)
{
    (void)cli;
    const char *authfile = NULL;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_logout, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id == OPT_AUTHFILE)
            authfile = a.arg;
    }
    if (a.first != argc - 1)
        return cli_args_usage(&cli_cmd_logout, "expected one REGISTRY");
    _cleanup_free_ char *host = login_host(argv[a.first]);
    struct mk_error *err = NULL;
    if (registry_auth_store(authfile, host, NULL, &err) < 0)
        return cli_fail(err);
    printf("Removed login credentials for %s\n", host);
    return 0;
}
