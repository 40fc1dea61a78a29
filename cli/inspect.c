/* cli/inspect.c - `mkimg inspect NAME...`: a JSON array of image documents. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

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

#define INSPECT_USAGE "usage: mkimg inspect [--platform OS/ARCH[/VARIANT]] NAME..."

int cmd_inspect(struct mk_cli *cli, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("%s\n", INSPECT_USAGE);
        return 0;
    }
    /* --platform picks the image of a name that holds several (default: the host's). */
    struct mk_platform platform;
    bool has_platform = false;
    int prc = cli_platform_arg(&argc, &argv, INSPECT_USAGE, &platform, &has_platform);
    if (prc)
        return prc;
    if (argc < 2)
        return cli_usage(INSPECT_USAGE);
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    int rc = 0;
    size_t shown = 0;
    fputs("[", stdout);
    for (int i = 1; i < argc; i++) {
        struct mk_error *err = NULL;
        struct mk_image *img = NULL;
        if (layerstore_image_get_platform(store, argv[i], has_platform ? &platform : NULL, &img,
                                          &err) < 0) {
            fflush(stdout);
            rc = cli_fail(err);
            continue;
        }
        char *doc = layerstore_image_inspect_json(store, img);
        fputs(shown++ ? ",\n" : "\n", stdout);
        print_nested(doc);
        free(doc);
        layerstore_image_free(img);
    }
    fputs(shown ? "\n]\n" : "]\n", stdout);
    return rc;
}
