/* cli/images.c - `mkimg images [-q] [--no-trunc]`: one row per name and platform, like podman
 * (which has no PLATFORM column: a name holding several platforms shows one row each). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* "5 minutes ago", the way docker and podman round. */
static char *human_ago(const char *created)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!created || sscanf(created, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                           &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return mk_xstrdup("unknown");
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long long d = (long long)difftime(time(NULL), timegm(&tm));
    if (d < 1)
        return mk_xstrdup("Less than a second ago");
    if (d < 60)
        return mk_xasprintf("%lld seconds ago", d);
    long long m = d / 60, h = (d + 1800) / 3600;
    if (m == 1)
        return mk_xstrdup("About a minute ago");
    if (m < 60)
        return mk_xasprintf("%lld minutes ago", m);
    if (h == 1)
        return mk_xstrdup("About an hour ago");
    h = d / 3600;
    if (h < 48)
        return mk_xasprintf("%lld hours ago", h);
    if (h < 24 * 7 * 2)
        return mk_xasprintf("%lld days ago", h / 24);
    if (h < 24 * 30 * 2)
        return mk_xasprintf("%lld weeks ago", h / 24 / 7);
    if (h < 24 * 365 * 2)
        return mk_xasprintf("%lld months ago", h / 24 / 30);
    return mk_xasprintf("%lld years ago", h / 24 / 365);
}

struct row {
    char *col[6];
};

int cmd_images(struct mk_cli *cli, int argc, char **argv)
{
    bool quiet = false, no_trunc = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else if (strcmp(argv[i], "--no-trunc") == 0)
            no_trunc = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: mkimg images [-q] [--no-trunc]\n");
            return 0;
        } else
            return cli_usage("images: unknown option \"%s\" (usage: mkimg images [-q] "
                             "[--no-trunc])",
                             argv[i]);
    }
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_image_entry *e = NULL;
    size_t n = 0;
    if (layerstore_list(store, &e, &n, &err) < 0)
        return cli_fail(err);
    struct row *rows = mk_xcalloc(n + 1, sizeof(*rows));
    struct mk_platform hp;
    mk_platform_host(&hp);
    char host[MK_PLATFORM_MAX];
    mk_platform_format(&hp, host);
    bool foreign = false;
    size_t nrows = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = e[i].config_digest[0] ? e[i].config_digest : e[i].manifest_digest;
        char *shown_id = no_trunc ? mk_xstrdup(id) : mk_xstrndup(mk_digest_hex(id), 12);
        if (quiet) {
            bool seen = false;
            for (size_t j = 0; j < nrows; j++)
                seen |= strcmp(rows[j].col[2], shown_id) == 0;
            if (seen) {
                free(shown_id);
                continue;
            }
        }
        struct row *r = &rows[nrows++];
        const char *ref = e[i].ref;
        const char *at = ref ? strchr(ref, '@') : NULL;
        size_t name_end = ref ? (at ? (size_t)(at - ref) : strlen(ref)) : 0;
        const char *slash = ref ? memrchr(ref, '/', name_end) : NULL;
        const char *base = slash ? slash : ref;
        const char *colon = ref ? memrchr(base, ':', name_end - (size_t)(base - ref)) : NULL;
        if (!ref) {
            r->col[0] = mk_xstrdup("<none>");
            r->col[1] = mk_xstrdup("<none>");
        } else if (colon) {
            r->col[0] = mk_xstrndup(ref, (size_t)(colon - ref));
            r->col[1] = mk_xstrndup(colon + 1, name_end - (size_t)(colon + 1 - ref));
        } else {
            r->col[0] = mk_xstrndup(ref, name_end);
            r->col[1] = mk_xstrdup("<none>");
        }
        r->col[2] = shown_id;
        r->col[3] = human_ago(e[i].created);
        r->col[4] = cli_human_size(e[i].size);
        r->col[5] = mk_xstrdup(e[i].platform[0] ? e[i].platform : "<unknown>");
        foreign |= strcmp(r->col[5], host) != 0;
    }
    if (quiet) {
        for (size_t i = 0; i < nrows; i++)
            printf("%s\n", rows[i].col[2]);
    } else {
        static const char *const head[6] = {"REPOSITORY", "TAG",  "IMAGE ID",
                                            "CREATED",    "SIZE", "PLATFORM"};
        int w[6];
        for (int c = 0; c < 6; c++) {
            w[c] = (int)strlen(head[c]);
            for (size_t i = 0; i < nrows; i++)
                if ((int)strlen(rows[i].col[c]) > w[c])
                    w[c] = (int)strlen(rows[i].col[c]);
        }
        /* podman's five columns, and the platform once one image is not the host's. */
        int nc = foreign ? 6 : 5;
        for (size_t i = 0; i <= nrows; i++) {
            char *const *col = i ? rows[i - 1].col : (char *const *)head;
            for (int c = 0; c < nc; c++)
                if (c == nc - 1)
                    printf("%s\n", col[c]);
                else
                    printf("%-*s  ", w[c], col[c]);
        }
    }
    for (size_t i = 0; i < nrows; i++)
        for (int c = 0; c < 6; c++)
            free(rows[i].col[c]);
    free(rows);
    layerstore_list_free(e, n);
    return 0;
}
