/* cli/login.c - `mkimg login` and `mkimg logout`: credentials in auth.json, like podman. */
#include <getopt.h>
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

int cmd_login(struct mk_cli *cli, int argc, char **argv)
{
    (void)cli;
    static const struct option longopts[] = {
        CLI_REGISTRY_LONGOPTS,
        {"username", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'p'},
        {"password-stdin", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct registry_opts opts = {.retries = -1};
    const char *user = NULL, *pass = NULL;
    bool pass_stdin = false;
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+u:p:h", longopts, &idx)) != -1) {
        if (c == 1) {
            if (cli_registry_opt(&opts, longopts[idx].name, optarg) != 0)
                return 2;
        } else if (c == 'u') {
            user = optarg;
        } else if (c == 'p') {
            pass = optarg;
        } else if (c == 's') {
            pass_stdin = true;
        } else if (c == 'h') {
            fputs("usage: mkimg login [OPTIONS] REGISTRY\n"
                  "  -u, --username USER\n"
                  "  -p, --password PASSWORD  (visible to other users: prefer --password-stdin)\n"
                  "      --password-stdin     read the password from stdin\n" CLI_REGISTRY_HELP,
                  stdout);
            return 0;
        } else {
            return cli_usage("login: unknown option \"%s\" (see \"mkimg login --help\")",
                             argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage("login: expected one REGISTRY (see \"mkimg login --help\")");
    if (pass && pass_stdin)
        return cli_usage("login: --password and --password-stdin exclude each other");
    _cleanup_free_ char *host = login_host(argv[optind]);
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

int cmd_logout(struct mk_cli *cli, int argc, char **argv)
{
    (void)cli;
    static const struct option longopts[] = {
        {"authfile", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *authfile = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (c == 'a') {
            authfile = optarg;
        } else if (c == 'h') {
            fputs("usage: mkimg logout [--authfile FILE] REGISTRY\n", stdout);
            return 0;
        } else {
            return cli_usage("logout: unknown option \"%s\" (see \"mkimg logout --help\")",
                             argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage("logout: expected one REGISTRY (see \"mkimg logout --help\")");
    _cleanup_free_ char *host = login_host(argv[optind]);
    struct mk_error *err = NULL;
    if (registry_auth_store(authfile, host, NULL, &err) < 0)
        return cli_fail(err);
    printf("Removed login credentials for %s\n", host);
    return 0;
}
