/* cli/options.c - argv from a command's option table (cli/options.h), and its --help. The
 * parsing itself is getopt_long's: the table is turned into its longopts and optstring. */
#include <ctype.h>
#include <stdarg.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/options.h"

#define HELP_ROW 999 /* the id of --help, answered here; commands use other ids */
#define LONG_VAL_BASE 0x10000
#define HELP_COLUMN 27
#define HELP_WIDTH 80

/* A table of its own (ended like the others), added to every command's. */
static const struct cli_opt help_rows[] = {
    {HELP_ROW, 'h', "help", NULL, "print this help", 0, NULL},
    {0},
};

static void add_row(struct cli_args *a, const struct cli_opt *o)
{
    if (a->n_rows >= CLI_OPTS_MAX)
        MK_BUG("option table too long");
    size_t i = a->n_rows++;
    a->rows[i] = o;
    bool optional = o->arg && o->arg[0] == '[';
    a->longopts[i] = (struct option){o->name,
                                     !o->arg    ? no_argument
                                     : optional ? optional_argument
                                                : required_argument,
                                     NULL, LONG_VAL_BASE + (int)i};
    if (o->short_name) {
        char *p = a->shortopts + strlen(a->shortopts);
        *p++ = o->short_name;
        if (o->arg)
            *p++ = ':';
        if (optional)
            *p++ = ':';
        *p = '\0';
    }
}

void cli_args_init(struct cli_args *a, const struct cli_cmd *cmd, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    /* "+": stop at the first operand; ":": report a missing value apart from an unknown
     * option. */
    snprintf(a->shortopts, sizeof(a->shortopts), "%s", cmd->options_first ? "+:" : ":");
    for (const struct cli_opt *o = cmd->opts; o && o->id; o++)
        add_row(a, o);
    for (const struct cli_opt *o = cmd->more; o && o->id; o++)
        add_row(a, o);
    add_row(a, &help_rows[0]);
    a->longopts[a->n_rows] = (struct option){NULL, 0, NULL, 0};
    /* 0, not 1: GNU getopt starts afresh (main parsed its own options with another table). */
    optind = 0;
    opterr = 0;
}

static const char *where(const struct cli_cmd *cmd, char *buf, size_t n)
{
    if (strcmp(cmd->name, "mkimg") == 0)
        return "";
    snprintf(buf, n, "%s: ", cmd->name);
    return buf;
}

static const char *see(const struct cli_cmd *cmd, char *buf, size_t n)
{
    if (strcmp(cmd->name, "mkimg") == 0)
        return "mkimg --help";
    snprintf(buf, n, "mkimg %s --help", cmd->name);
    return buf;
}

int cli_args_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
    char w[64], s[64];
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *what = mk_xvasprintf(fmt, ap);
    va_end(ap);
    return cli_usage("%s%s (see \"%s\")", where(cmd, w, sizeof(w)), what, see(cmd, s, sizeof(s)));
}

static const struct cli_opt *row_of(const struct cli_args *a, int c)
{
    if (c >= LONG_VAL_BASE && (size_t)(c - LONG_VAL_BASE) < a->n_rows)
        return a->rows[c - LONG_VAL_BASE];
    for (size_t i = 0; i < a->n_rows; i++)
        if (c > 0 && a->rows[i]->short_name == c)
            return a->rows[i];
    return NULL;
}

int cli_args_next(struct cli_args *a)
{
    int c = getopt_long(a->argc, a->argv, a->shortopts, a->longopts, NULL);
    if (c == -1) {
        a->first = optind;
        return CLI_ARGS_END;
    }
    a->arg = optarg;
    const struct cli_opt *o = row_of(a, c == ':' ? optopt : c);
    if (c == ':' && o) {
        a->status = cli_args_usage(a->cmd, "--%s needs a value (%s)", o->name, o->arg);
        return CLI_ARGS_EXIT;
    }
    if (c == '?' || c == ':' || !o) {
        char shown[4] = {'-', (char)optopt, 0, 0};
        const char *bad = optopt > 0 && optopt < 128 ? shown : a->argv[optind - 1];
        a->status = cli_args_usage(a->cmd, "unknown option \"%s\"", bad);
        return CLI_ARGS_EXIT;
    }
    if (o->id == HELP_ROW) {
        cli_cmd_help(a->cmd, stdout);
        a->status = 0;
        return CLI_ARGS_EXIT;
    }
    return o->id;
}

char *cli_opt_label(const struct cli_opt *o)
{
    const char *arg = o->arg ? o->arg : "";
    const char *sep = o->arg && o->arg[0] != '[' ? " " : "";
    if (o->short_name)
        return mk_xasprintf("-%c, --%s%s%s", o->short_name, o->name, sep, arg);
    return mk_xasprintf("    --%s%s%s", o->name, sep, arg);
}

/* text from column col on, wrapped at HELP_WIDTH with later lines indented to col. */
static void print_wrapped(FILE *f, const char *text, int col, int at)
{
    const char *p = text;
    while (*p) {
        int room = HELP_WIDTH - at;
        size_t len = strlen(p);
        size_t cut = len;
        if ((int)len > room) {
            cut = (size_t)room;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = strcspn(p, " ");
        }
        fprintf(f, "%.*s\n", (int)cut, p);
        p += cut;
        while (*p == ' ')
            p++;
        if (*p)
            fprintf(f, "%*s", col, "");
        at = col;
    }
}

static void print_rows(FILE *f, const struct cli_opt *rows)
{
    for (const struct cli_opt *o = rows; o && o->id; o++) {
        _cleanup_free_ char *label = cli_opt_label(o);
        int n = fprintf(f, "  %s", label);
        if (n + 1 >= HELP_COLUMN) {
            fprintf(f, "\n%*s", HELP_COLUMN, "");
        } else {
            fprintf(f, "%*s", HELP_COLUMN - n, "");
        }
        print_wrapped(f, o->help, HELP_COLUMN, HELP_COLUMN);
    }
}

void cli_cmd_help(const struct cli_cmd *cmd, FILE *f)
{
    bool top = strcmp(cmd->name, "mkimg") == 0;
    fprintf(f, "usage: mkimg %s%s%s\n\n", top ? "" : cmd->name, top ? "" : " ", cmd->synopsis);
    if (top)
        fprintf(f, "mkimg: %s.\n", cmd->summary);
    else /* the summary as a sentence */
        fprintf(f, "%c%s.\n", toupper((unsigned char)cmd->summary[0]), cmd->summary + 1);
    if (cmd->description) {
        /* Paragraphs as written; the man page reflows them. */
        fprintf(f, "\n");
        for (const char *p = cmd->description; *p;) {
            size_t n = strcspn(p, "\n");
            _cleanup_free_ char *line = mk_xstrndup(p, n);
            print_wrapped(f, line, 0, 0);
            p += n;
            while (*p == '\n') {
                if (p[1] == '\n')
                    fputc('\n', f);
                p++;
            }
        }
    }
    if (top) {
        fprintf(f, "\ncommands:\n");
        for (size_t i = 0; cli_commands[i]; i++)
            fprintf(f, "  %-9s %s\n", cli_commands[i]->name, cli_commands[i]->summary);
    }
    fprintf(f, "\noptions:\n");
    print_rows(f, cmd->opts);
    print_rows(f, cmd->more);
    print_rows(f, help_rows);
}
