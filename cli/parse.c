/* cli/parse.c - `mkimg parse`: print a Dockerfile's parse tree (BuildKit's dump) or its JSON
 * document, optionally with the build-time instruction checks. Never opens the store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "parser/parser.h"

/* A Dockerfile is text written by people; anything this large is a mistake or an attack. */
#define DOCKERFILE_MAX (16u << 20)

static int read_all(const char *path, struct mk_buf *out, struct mk_error **err)
{
    _cleanup_close_ int fd = -1;
    char chunk[65536];
    ssize_t n;

    if (strcmp(path, "-") == 0) {
        fd = dup(STDIN_FILENO);
        if (fd < 0)
            return mk_error_errno(err, "reading standard input");
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return mk_error_errno(err, "opening \"%s\"", path);
    }
    mk_buf_add(out, "", 0);
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR && !mk_interrupted)
                continue;
            return mk_error_errno(err, "reading \"%s\"", path);
        }
        if (out->len + (size_t)n > DOCKERFILE_MAX)
            return mk_error_set(err, MK_ERR_INVALID, 0, "reading \"%s\": file larger than %u MiB",
                                path, DOCKERFILE_MAX >> 20);
        mk_buf_add(out, chunk, (size_t)n);
    }
    return 0;
}

enum { OPT_DUMP = 1, OPT_JSON, OPT_CHECK, OPT_FILE };

static const struct cli_opt parse_opts[] = {
    {OPT_DUMP, 0, "dump", NULL, "print BuildKit's parse-tree dump (default)", 0, NULL},
    {OPT_JSON, 0, "json", NULL, "print the parsed instructions as a JSON document", 0, NULL},
    {OPT_CHECK, 0, "check", NULL, "also run the build's instruction checks", 0, NULL},
    {OPT_FILE, 'f', "file", "FILE", "the Dockerfile (default ./Dockerfile, \"-\": stdin)",
     CLI_COMP_FILE, NULL},
    {0},
};

const struct cli_cmd cli_cmd_parse = {
    .name = "parse",
    .synopsis = "[--dump | --json] [--check] [-f FILE] [FILE]",
    .summary = "parse a Dockerfile and print it (--dump, --json)",
    .description = "Never opens the store: a quick check of a Dockerfile's syntax, with the "
                   "errors a build would give.",
    .opts = parse_opts,
    .operand = CLI_COMP_FILE,
    .fn = cmd_parse,
};

int cmd_parse(struct mk_cli *cli, int argc, char **argv)
{
    enum { DUMP, JSON } mode = DUMP;
    const char *file = NULL;
    bool check = false;
    struct mk_error *err = NULL;
    struct mk_df *df = NULL;

    (void)cli;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_parse, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id == OPT_DUMP)
            mode = DUMP;
        else if (id == OPT_JSON)
            mode = JSON;
        else if (id == OPT_CHECK)
            check = true;
        else if (id == OPT_FILE && file)
            return cli_usage("more than one Dockerfile given");
        else if (id == OPT_FILE)
            file = a.arg;
    }
    if (argc - a.first > 1 || (file && a.first < argc))
        return cli_usage("more than one Dockerfile given");
    if (a.first < argc)
        file = argv[a.first];

    /* Locations read "Dockerfile:7" for the default and for stdin, else the path given. */
    const char *path = file ? file : "Dockerfile";
    const char *name = !file || !strcmp(file, "-") ? "Dockerfile" : file;
    struct mk_buf data = MK_BUF_INIT, out = MK_BUF_INIT;
    int rc = 1;
    if (read_all(path, &data, &err) < 0 || mk_df_parse(data.data, data.len, name, &df, &err) < 0)
        goto out;
    for (size_t i = 0; i < df->n_warnings; i++)
        cli_warn("%s:%d: %s", name, df->warnings[i].line, df->warnings[i].msg);
    if (check && mk_df_validate(df, name, &err) < 0)
        goto out;
    if (mode == DUMP)
        mk_df_dump(df, &out);
    else
        mk_df_to_json(df, &out);
    if (fwrite(out.data ? out.data : "", 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
        mk_error_errno(&err, "writing standard output");
        goto out;
    }
    rc = 0;
out:
    if (err)
        rc = cli_fail(MK_TAKE_PTR(err));
    mk_df_free(df);
    mk_buf_release(&data);
    mk_buf_release(&out);
    return rc;
}
