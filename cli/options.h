/* cli/options.h - one table per command: what it parses, what --help prints, what the man
 * pages and the shell completions say (cli/generate.c). The tables are the single source.
 *
 * A command declares `const struct cli_cmd cli_cmd_NAME` with a table of cli_opt rows ending
 * with a row whose id is 0, and walks argv with cli_args_next():
 *
 *     struct cli_args a;
 *     cli_args_init(&a, &cli_cmd_tag, argc, argv);
 *     for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;)
 *         switch (id) { case CLI_ARGS_EXIT: return a.status; case OPT_X: ... a.arg ... }
 *     operands: argv[a.first .. argc)
 *
 * --help / -h are answered by the helper from the table (exit status 0); unknown options and
 * missing values are one usage line "mkimg: CMD: ..." (exit status 2). Options may follow
 * operands (argv is permuted, as getopt_long does) unless the command sets options_first.
 */
#ifndef MK_CLI_OPTIONS_H
#define MK_CLI_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

struct mk_cli;

/* What a value (or an operand) completes to in the shells. */
enum cli_complete {
    CLI_COMP_NONE = 0,
    CLI_COMP_FILE,
    CLI_COMP_DIR,
    CLI_COMP_IMAGE, /* the names in the store (`mkimg images --format`) */
    CLI_COMP_WORDS, /* the space-separated words of cli_opt.words */
};

struct cli_opt {
    int id;           /* > 0, returned by cli_args_next; 0 ends a table */
    char short_name;  /* 0: none */
    const char *name; /* the long name, without "--" */
    /* NULL: a flag; "WORD": takes a value; "[=WORD]": the value is optional (--pull[=P]) */
    const char *arg;
    const char *help; /* one sentence, lowercase, no final period; wrapped when printed */
    enum cli_complete complete;
    const char *words; /* CLI_COMP_WORDS: "a b c" */
};

struct cli_cmd {
    const char *name;        /* "build"; "mkimg" for the global options */
    const char *synopsis;    /* after "mkimg NAME ": "[OPTIONS] CONTEXT" */
    const char *summary;     /* one line: the command list, the man page's NAME */
    const char *description; /* paragraphs separated by "\n\n", or NULL */
    const struct cli_opt *opts;
    const struct cli_opt *more; /* a shared group (cli_registry_opts), or NULL */
    enum cli_complete operand;  /* what operands complete to */
    const char *operand_words;  /* CLI_COMP_WORDS for the first operand */
    bool options_first;         /* options end at the first operand (run IMAGE CMD...) */
    int (*fn)(struct mk_cli *cli, int argc, char **argv);
};

#define CLI_OPTS_MAX 64

struct cli_args {
    const struct cli_cmd *cmd;
    int argc;
    char **argv;
    const char *arg; /* the value of the option just returned (NULL for a flag) */
    int first;       /* after CLI_ARGS_END: the first operand in (permuted) argv */
    int status;      /* after CLI_ARGS_EXIT: the exit status (0 after --help, else 2) */
    const struct cli_opt *rows[CLI_OPTS_MAX];
    size_t n_rows;
    struct option longopts[CLI_OPTS_MAX + 2];
    char shortopts[3 * CLI_OPTS_MAX + 8];
};

enum { CLI_ARGS_END = 0, CLI_ARGS_EXIT = -1 };

void cli_args_init(struct cli_args *a, const struct cli_cmd *cmd, int argc, char **argv);
/* The next option's id (its value in a->arg), CLI_ARGS_END after the last option, or
 * CLI_ARGS_EXIT after printing --help or a usage error (a->status). */
int cli_args_next(struct cli_args *a);
/* A usage error about the command's operands: "mkimg: CMD: WHAT (see "mkimg CMD --help")",
 * returns 2. */
int cli_args_usage(const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The --help text of cmd, from its table. */
void cli_cmd_help(const struct cli_cmd *cmd, FILE *f);
/* "--tag" / "-t, --tag" with its argument, as --help and the man pages show it. Caller frees. */
char *cli_opt_label(const struct cli_opt *o);

/* The options every registry command takes (cli/pull.c): ids from CLI_REG_FIRST, handed to
 * cli_registry_opt. */
enum {
    CLI_REG_TLS_VERIFY = 1000,
    CLI_REG_CERT_DIR,
    CLI_REG_AUTHFILE,
    CLI_REG_CREDS,
    CLI_REG_RETRY,
};
#define CLI_REG_FIRST CLI_REG_TLS_VERIFY
#define CLI_REG_LAST CLI_REG_RETRY
extern const struct cli_opt cli_registry_opts[];

/* Every command, for main's dispatch, `mkimg --help` and cli/generate.c; NULL-terminated. */
extern const struct cli_cmd *const cli_commands[];
extern const struct cli_cmd cli_cmd_mkimg;

#endif
