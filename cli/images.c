/* cli/images.c - `mkimg images [-q] [--no-trunc] [--filter F] [--format F]`: one row per name
 * and platform, like podman (which has no PLATFORM column: a name holding several platforms
 * shows one row each). */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/template.h"

time_t cli_created_time(const char *created)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!created || sscanf(created, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                           &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return (time_t)-1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

char *cli_created_at(const char *created)
{
    time_t t = cli_created_time(created);
    struct tm tm;
    char buf[64];
    if (t == (time_t)-1 || !gmtime_r(&t, &tm) ||
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm) == 0)
        return mk_xstrdup("unknown");
    return mk_xstrdup(buf);
}

/* "5 minutes ago", the way docker and podman round. */
char *cli_human_ago(const char *created)
{
    time_t t = cli_created_time(created);
    if (t == (time_t)-1)
        return mk_xstrdup("unknown");
    long long d = (long long)difftime(time(NULL), t);
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

enum { OPT_QUIET = 1, OPT_NO_TRUNC, OPT_FILTER, OPT_FORMAT, OPT_ALL };

static const struct cli_opt images_opts[] = {
    {OPT_QUIET, 'q', "quiet", NULL, "print only the image IDs", 0, NULL},
    {OPT_NO_TRUNC, 0, "no-trunc", NULL, "print whole image IDs", 0, NULL},
    {OPT_FILTER, 'f', "filter", "FILTER",
     "only the images that match: reference=PATTERN, dangling=true|false, label=KEY[=VALUE], "
     "before=IMAGE, since=IMAGE (repeatable: values of one key any, different keys all)",
     CLI_COMP_WORDS, "reference= dangling=true dangling=false label= before= since="},
    {OPT_FORMAT, 0, "format", "FORMAT",
     "json (an object a line), \"table TEMPLATE\" or a Go template over the fields ID, "
     "Repository, Tag, Digest, CreatedAt, CreatedSince, Size, Platform",
     CLI_COMP_WORDS, "json table"},
    {OPT_ALL, 'a', "all", NULL, "accepted for docker: every image is listed", 0, NULL},
    {0},
};

const struct cli_cmd cli_cmd_images = {
    .name = "images",
    .synopsis = "[-q] [--no-trunc] [--filter FILTER] [--format FORMAT]",
    .summary = "list images",
    .description = "One row per name and platform; the PLATFORM column shows once an image is "
                   "not for this machine.",
    .opts = images_opts,
    .fn = cmd_images,
};

/* --filter, as docker images takes it: the values of one key are alternatives, keys all
 * apply. */
struct filters {
    struct mk_strv reference, label;
    int dangling; /* -1: any */
    time_t before, since;
    bool has_before, has_since;
};

static int filter_time(struct mk_cli *cli, const char *name, time_t *ret)
{
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    struct mk_error *err = NULL;
    struct mk_image *img = NULL;
    if (layerstore_image_get(store, name, &img, &err) < 0)
        return cli_fail(err);
    *ret = cli_created_time(img->config.created);
    layerstore_image_free(img);
    return 0;
}

static int filter_add(struct mk_cli *cli, struct filters *f, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec)
        return cli_usage("images: --filter \"%s\" is not KEY=VALUE", spec);
    _cleanup_free_ char *key = mk_xstrndup(spec, (size_t)(eq - spec));
    const char *v = eq + 1;
    if (strcmp(key, "reference") == 0)
        mk_strv_push(&f->reference, v);
    else if (strcmp(key, "label") == 0)
        mk_strv_push(&f->label, v);
    else if (strcmp(key, "dangling") == 0 && (!strcmp(v, "true") || !strcmp(v, "false")))
        f->dangling = strcmp(v, "true") == 0;
    else if (strcmp(key, "dangling") == 0)
        return cli_usage("images: --filter dangling= takes true or false, not \"%s\"", v);
    else if (strcmp(key, "before") == 0)
        return f->has_before = true, filter_time(cli, v, &f->before);
    else if (strcmp(key, "since") == 0)
        return f->has_since = true, filter_time(cli, v, &f->since);
    else
        return cli_usage("images: unknown --filter \"%s\" (reference, dangling, label, before or "
                         "since)",
                         key);
    return 0;
}

/* reference=PATTERN: a glob over "name:tag" or "name", as docker matches the short name. */
static bool match_reference(const struct filters *f, const char *repo, const char *tag)
{
    if (!f->reference.n)
        return true;
    _cleanup_free_ char *full = mk_xasprintf("%s:%s", repo, tag);
    const char *shortname = mk_str_has_prefix(full, "docker.io/library/") ? full + 18
                            : mk_str_has_prefix(full, "docker.io/")       ? full + 10
                                                                          : full;
    for (size_t i = 0; i < f->reference.n; i++) {
        const char *pat = f->reference.v[i];
        size_t repo_len = strlen(shortname) - strlen(tag) - 1;
        _cleanup_free_ char *short_repo = mk_xstrndup(shortname, repo_len);
        if (fnmatch(pat, full, FNM_PATHNAME) == 0 || fnmatch(pat, shortname, FNM_PATHNAME) == 0 ||
            fnmatch(pat, short_repo, FNM_PATHNAME) == 0 || fnmatch(pat, repo, FNM_PATHNAME) == 0)
            return true;
    }
    return false;
}

static bool match_labels(struct mk_store *store, const struct filters *f, const char *digest)
{
    if (!f->label.n)
        return true;
    struct mk_image *img = NULL;
    if (layerstore_image_get(store, digest, &img, NULL) < 0)
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < f->label.n; i++) {
        const char *want = f->label.v[i];
        const char *eq = strchr(want, '=');
        _cleanup_free_ char *key = eq ? mk_xstrndup(want, (size_t)(eq - want)) : mk_xstrdup(want);
        const char *have = mk_strv_env_get(&img->config.labels, key);
        ok = have && (!eq || strcmp(have, eq + 1) == 0);
    }
    layerstore_image_free(img);
    return ok;
}

static bool filters_match(struct mk_store *store, const struct filters *f,
                          const struct mk_image_entry *e, const char *repo, const char *tag)
{
    if (f->dangling >= 0 && (e->ref == NULL) != (f->dangling == 1))
        return false;
    if (f->reference.n && (!e->ref || !match_reference(f, repo, tag)))
        return false;
    time_t t = cli_created_time(e->created);
    if ((f->has_before && !(t < f->before)) || (f->has_since && !(t > f->since)))
        return false;
    return match_labels(store, f, e->manifest_digest);
}

/* The repository and tag of a ref ("<none>" for what is missing). */
static void split_ref(const char *ref, char **ret_repo, char **ret_tag)
{
    if (!ref) {
        *ret_repo = mk_xstrdup("<none>");
        *ret_tag = mk_xstrdup("<none>");
        return;
    }
    const char *at = strchr(ref, '@');
    size_t name_end = at ? (size_t)(at - ref) : strlen(ref);
    const char *slash = memrchr(ref, '/', name_end);
    const char *base = slash ? slash : ref;
    const char *colon = memrchr(base, ':', name_end - (size_t)(base - ref));
    if (colon) {
        *ret_repo = mk_xstrndup(ref, (size_t)(colon - ref));
        *ret_tag = mk_xstrndup(colon + 1, name_end - (size_t)(colon + 1 - ref));
    } else {
        *ret_repo = mk_xstrndup(ref, name_end);
        *ret_tag = mk_xstrdup("<none>");
    }
}

/* One row as the fields docker's --format knows, plus Platform. */
static json_t *entry_json(const struct mk_image_entry *e, const char *repo, const char *tag,
                          bool no_trunc)
{
    const char *id = e->config_digest[0] ? e->config_digest : e->manifest_digest;
    _cleanup_free_ char *shown_id = no_trunc ? mk_xstrdup(id) : mk_xstrndup(mk_digest_hex(id), 12);
    _cleanup_free_ char *at = cli_created_at(e->created), *ago = cli_human_ago(e->created);
    _cleanup_free_ char *size = cli_human_size(e->size);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Containers",
                     "N/A", "CreatedAt", at, "CreatedSince", ago, "Digest", e->manifest_digest,
                     "ID", shown_id, "Repository", repo, "SharedSize", "N/A", "Size", size, "Tag",
                     tag, "UniqueSize", "N/A", "VirtualSize", size, "Platform",
                     e->platform[0] ? e->platform : "<unknown>");
}

static void print_default(json_t *rows, bool quiet)
{
    size_t i;
    json_t *r;
    if (quiet) {
        json_t *seen = json_object();
        json_array_foreach(rows, i, r)
        {
            const char *id = json_string_value(json_object_get(r, "ID"));
            if (!json_object_get(seen, id))
                printf("%s\n", id);
            json_object_set_new(seen, id, json_true());
        }
        json_decref(seen);
        return;
    }
    static const char *const head[6] = {"REPOSITORY", "TAG",  "IMAGE ID",
                                        "CREATED",    "SIZE", "PLATFORM"};
    static const char *const key[6] = {"Repository",   "Tag",  "ID",
                                       "CreatedSince", "Size", "Platform"};
    struct mk_platform hp;
    mk_platform_host(&hp);
    char host[MK_PLATFORM_MAX];
    mk_platform_format(&hp, host);
    bool foreign = false;
    int w[6];
    for (int c = 0; c < 6; c++)
        w[c] = (int)strlen(head[c]);
    json_array_foreach(rows, i, r)
    {
        foreign |= strcmp(json_string_value(json_object_get(r, "Platform")), host) != 0;
        for (int c = 0; c < 6; c++)
            if ((int)strlen(json_string_value(json_object_get(r, key[c]))) > w[c])
                w[c] = (int)strlen(json_string_value(json_object_get(r, key[c])));
    }
    /* podman's five columns, and the platform once one image is not the host's. */
    int nc = foreign ? 6 : 5;
    for (size_t k = 0; k <= json_array_size(rows); k++) {
        for (int c = 0; c < nc; c++) {
            const char *v =
                k ? json_string_value(json_object_get(json_array_get(rows, k - 1), key[c]))
                  : head[c];
            if (c == nc - 1)
                printf("%s\n", v);
            else
                printf("%-*s  ", w[c], v);
        }
    }
}

static int print_formatted(json_t *rows, const char *spec)
{
    struct cli_format f;
    cli_format_init(&f, spec);
    size_t i;
    json_t *r;
    struct mk_error *err = NULL;
    json_array_foreach(rows, i, r) if (cli_format_add(&f, r, &err) < 0)
    {
        cli_format_release(&f);
        mk_error_set_where(&err, "images --format");
        return cli_fail(err);
    }
    json_t *h = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Containers", "CONTAINERS",
        "CreatedAt", "CREATED AT", "CreatedSince", "CREATED", "Digest", "DIGEST", "ID", "IMAGE ID",
        "Repository", "REPOSITORY", "SharedSize", "SHARED SIZE", "Size", "SIZE", "Tag", "TAG",
        "UniqueSize", "UNIQUE SIZE", "VirtualSize", "SIZE", "Platform", "PLATFORM");
    cli_format_print(&f, h, stdout);
    json_decref(h);
    cli_format_release(&f);
    return 0;
}

int cmd_images(struct mk_cli *cli, int argc, char **argv)
{
    bool quiet = false, no_trunc = false;
    const char *format = NULL;
    struct filters flt = {.dangling = -1};
    struct cli_args a;
    int rc = 0;
    cli_args_init(&a, &cli_cmd_images, argc, argv);
    for (int id; rc == 0 && (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            rc = a.status;
        quiet |= id == OPT_QUIET;
        no_trunc |= id == OPT_NO_TRUNC;
        if (id == OPT_FORMAT) /* "table" alone is the default table, as docker's */
            format = strcmp(a.arg, "table") == 0 ? NULL : a.arg;
        if (id == OPT_FILTER)
            rc = filter_add(cli, &flt, a.arg);
    }
    if (rc == 0 && a.first < argc)
        rc = cli_args_usage(&cli_cmd_images, "unexpected argument \"%s\"", argv[a.first]);
    struct mk_store *store = rc == 0 ? cli_store(cli) : NULL;
    struct mk_error *err = NULL;
    struct mk_image_entry *e = NULL;
    size_t n = 0;
    if (rc == 0 && !store)
        rc = 1;
    if (rc == 0 && layerstore_list(store, &e, &n, &err) < 0)
        rc = cli_fail(err);
    json_t *rows = json_array();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        _cleanup_free_ char *repo = NULL, *tag = NULL;
        split_ref(e[i].ref, &repo, &tag);
        if (filters_match(store, &flt, &e[i], repo, tag))
            json_array_append_new(rows, entry_json(&e[i], repo, tag, no_trunc));
    }
    if (rc == 0 && format && !quiet)
        rc = print_formatted(rows, format);
    else if (rc == 0)
        print_default(rows, quiet);
    json_decref(rows);
    layerstore_list_free(e, n);
    mk_strv_release(&flt.reference);
    mk_strv_release(&flt.label);
    return rc;
}
