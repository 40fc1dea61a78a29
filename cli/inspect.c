/* cli/inspect.c - `mkimg inspect [--format F] NAME...`: a JSON array of image documents, or a
 * Go template rendered over each. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/template.h"

/* Indents every line of doc by four spaces so it nests inside the array. */
static void print_nested(const char *doc)
{
    fputs("    ", stdout);
    for (const char *p = doc; *p; p++) {
        putchar(*p);
        if (*p == '\n')
            fputs("    ", stdout);
    }
}

enum { OPT_PLATFORM = 1, OPT_FORMAT, OPT_TYPE };

static const struct cli_opt inspect_opts[] = {
    {OPT_PLATFORM, 0, "platform", "OS/ARCH[/VARIANT]",
     "the image of a name that holds several (default: this machine's)", CLI_COMP_WORDS,
     cli_platform_words},
    {OPT_FORMAT, 'f', "format", "TEMPLATE",
     "a Go template over each document, e.g. '{{.Config.Env}}' or '{{json .Config}}' (json: the "
     "documents, as without --format)",
     0, NULL},
    {OPT_TYPE, 0, "type", "TYPE", "accepted for podman: only images are known", CLI_COMP_WORDS,
     "image"},
    {0},
};

const struct cli_cmd cli_cmd_inspect = {
    .name = "inspect",
    .synopsis = "[--platform OS/ARCH[/VARIANT]] [--format TEMPLATE] NAME...",
    .summary = "show an image's manifest and config as JSON",
    .description = "The document has Id, Digest, RepoTags, Created, Architecture, Os, Config, "
                   "RootFS, History, Layers and Size, as podman's.",
    .opts = inspect_opts,
    .operand = CLI_COMP_IMAGE,
    .fn = cmd_inspect,
};

/* One image's document, or the template over it. */
static int show(const char *doc, const char *format, size_t *shown, struct mk_error **err)
{
    if (!format) {
        fputs((*shown)++ ? ",\n" : "\n", stdout);
        print_nested(doc);
        return 0;
    }
    json_error_t jerr;
    json_t *v = json_loads(doc, 0, &jerr);
    if (!v)
        return mk_error_set(err, MK_ERR_PARSE, 0, "inspect document: %s", jerr.text);
    struct cli_format f;
    cli_format_init(&f, format);
    int r = cli_format_add(&f, v, err);
    if (r == 0)
        cli_format_print(&f, NULL, stdout);
    else
        mk_error_set_where(err, "inspect --format");
    cli_format_release(&f);
    json_decref(v);
    return r;
}

int cmd_inspect(struct mk_cli *cli, int argc, char **argv)
{
    struct mk_platform platform;
    bool has_platform = false;
    const char *format = NULL;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_inspect, argc, argv);
    for (int id, prc; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if (id == OPT_FORMAT)
            format = strcmp(a.arg, "json") == 0 ? NULL : a.arg;
        if (id == OPT_TYPE && strcmp(a.arg, "image") != 0)
            return cli_usage("inspect: --type \"%s\": only images are known", a.arg);
        if (id == OPT_PLATFORM && (prc = cli_platform_value(a.arg, &platform)) != 0)
            return prc;
        has_platform |= id == OPT_PLATFORM;
    }
    if (a.first >= argc)
        return cli_args_usage(&cli_cmd_inspect, "expected NAME...");
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    int rc = 0;
    size_t shown = 0;
    if (!format)
        fputs("[", stdout);
    for (int i = a.first; i < argc; i++) {
        struct mk_error *err = NULL;
        struct mk_image *img = NULL;
        char lazy[MK_DIGEST_SIZE];
        if (layerstore_image_get_platform(store, cli_lazy_name(store, argv[i], lazy),
                                          has_platform ? &platform : NULL, &img, &err) < 0) {
            fflush(stdout);
            rc = cli_fail(err);
            continue;
        }
        char *doc = layerstore_image_inspect_json(store, img);
        int r = show(doc, format, &shown, &err);
        free(doc);
        layerstore_image_free(img);
        if (r < 0) {
            fflush(stdout);
            rc = cli_fail(err);
            break;
        }
    }
    if (!format)
        fputs(shown ? "\n]\n" : "]\n", stdout);
    return rc;
}
