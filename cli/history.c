/* cli/history.c - `mkimg history IMAGE`: the config's history, newest first, each step with the
 * size of the layer it made (docker history's columns). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/template.h"

#define CREATED_BY_WIDTH 45

enum { OPT_NO_TRUNC = 1, OPT_QUIET, OPT_FORMAT, OPT_HUMAN };

static const struct cli_opt history_opts[] = {
    {OPT_NO_TRUNC, 0, "no-trunc", NULL, "print whole IDs and commands", 0, NULL},
    {OPT_QUIET, 'q', "quiet", NULL, "print only the image IDs (<missing> for earlier steps)", 0,
     NULL},
    {OPT_FORMAT, 0, "format", "FORMAT",
     "json, \"table TEMPLATE\" or a Go template over the fields ID, CreatedAt, CreatedSince, "
     "CreatedBy, Size, Comment",
     CLI_COMP_WORDS, "json table"},
    {OPT_HUMAN, 'H', "human", "[=BOOL]", "sizes and dates for people (default true)",
     CLI_COMP_WORDS, "true false"},
    {0},
};

const struct cli_cmd cli_cmd_history = {
    .name = "history",
    .synopsis = "[--no-trunc] [-q] [--format FORMAT] IMAGE",
    .summary = "show the steps that made an image",
    .description = "One row per history entry, newest first: IMAGE (the image's ID on the "
                   "newest row, <missing> on the others, as docker), CREATED, CREATED BY, SIZE "
                   "(of the layer the step made; 0B when it made none) and COMMENT.",
    .opts = history_opts,
    .operand = CLI_COMP_IMAGE,
    .fn = cmd_history,
};

struct history_flags {
    bool no_trunc, quiet, human;
};

/* Rows newest first; the n-th entry that made a layer has layer n's size. */
static json_t *history_rows(const struct mk_image *img, const struct history_flags *fl)
{
    const struct mk_image_config *c = &img->config;
    json_t *rows = json_array();
    size_t layer = 0;
    for (size_t i = 0; i < c->n_history; i++) {
        const struct mk_history *h = &c->history[i];
        uint64_t size = 0;
        if (!h->empty_layer && layer < img->n_layers)
            size = img->layers[layer++].size;
        bool top = i + 1 == c->n_history;
        const char *hex = mk_digest_hex(img->config_digest);
        _cleanup_free_ char *id = !top           ? mk_xstrdup("<missing>")
                                  : fl->no_trunc ? mk_xstrdup(img->config_digest)
                                                 : mk_xstrndup(hex, 12);
        const char *by = h->created_by ? h->created_by : "";
        _cleanup_free_ char *shown_by = fl->no_trunc || strlen(by) <= CREATED_BY_WIDTH
                                            ? mk_xstrdup(by)
                                            : mk_xasprintf("%.*s…", CREATED_BY_WIDTH - 1, by);
        _cleanup_free_ char *at =
            fl->human ? cli_human_ago(h->created) : mk_xstrdup(h->created ? h->created : "");
        _cleanup_free_ char *sz =
            fl->human ? cli_human_size(size) : mk_xasprintf("%llu", (unsigned long long)size);
        _cleanup_free_ char *created_at = cli_created_at(h->created);
        json_array_insert_new(rows, 0,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ID", id, "CreatedAt",
                                        created_at, "CreatedSince", at, "CreatedBy", shown_by,
                                        "Size", sz, "Comment", h->comment ? h->comment : ""));
    }
    return rows;
}

static int print_rows(json_t *rows, const char *format, bool quiet, struct mk_error **err)
{
    struct cli_format f;
    if (quiet)
        format = "{{.ID}}";
    cli_format_init(&f, format ? format
                               : "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t"
                                 "{{.Size}}\t{{.Comment}}");
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) if (cli_format_add(&f, r, err) < 0)
    {
        cli_format_release(&f);
        return -1;
    }
    json_t *h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "IMAGE", "CreatedAt",
                          "CREATED AT", "CreatedSince", "CREATED", "CreatedBy", "CREATED BY",
                          "Size", "SIZE", "Comment", "COMMENT");
    cli_format_print(&f, h, stdout);
    json_decref(h);
    cli_format_release(&f);
    return 0;
}

int cmd_history(struct mk_cli *cli, int argc, char **argv)
{
    struct history_flags fl = {.human = true};
    const char *format = NULL;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_history, argc, argv);
    for (int id; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        fl.no_trunc |= id == OPT_NO_TRUNC;
        fl.quiet |= id == OPT_QUIET;
        if (id == OPT_FORMAT) /* "table" alone is the default table, as docker's */
            format = strcmp(a.arg, "table") == 0 ? NULL : a.arg;
        if (id == OPT_HUMAN && a.arg && strcmp(a.arg, "true") && strcmp(a.arg, "false"))
            return cli_usage("history: --human takes true or false, not \"%s\"", a.arg);
        if (id == OPT_HUMAN)
            fl.human = !a.arg || strcmp(a.arg, "true") == 0;
    }
    if (a.first != argc - 1)
        return cli_args_usage(&cli_cmd_history, "expected one IMAGE");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_image *img = NULL;
    char lazy[MK_DIGEST_SIZE];
    if (layerstore_image_get(store, cli_lazy_name(store, argv[a.first], lazy), &img, &err) < 0)
        return cli_fail(err);
    json_t *rows = history_rows(img, &fl);
    int r = print_rows(rows, format, fl.quiet, &err);
    json_decref(rows);
    layerstore_image_free(img);
    if (r < 0) {
        mk_error_set_where(&err, "history --format");
        return cli_fail(err);
    }
    return 0;
}
