/* parser/df-validate.c - BuildKit's instruction-level checks (frontend/dockerfile/instructions):
 * what the parser accepts but a build must refuse before it starts. Messages follow
 * upstream's wording except for unknown instructions and flags, which quote the user's text
 * in our house style. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "parser/internal.h"

enum flag_type { FLAG_STRING, FLAG_STRINGS, FLAG_BOOL };

struct flag_rule {
    const char *keyword;
    const char *name;
    enum flag_type type;
};

/* docker/dockerfile:1 */
static const struct flag_rule flag_rules[] = {
    {"from", "platform", FLAG_STRING},
    {"run", "mount", FLAG_STRINGS},
    {"run", "network", FLAG_STRING},
    {"run", "security", FLAG_STRING},
    {"copy", "from", FLAG_STRING},
    {"copy", "chown", FLAG_STRING},
    {"copy", "chmod", FLAG_STRING},
    {"copy", "link", FLAG_BOOL},
    {"copy", "parents", FLAG_BOOL},
    {"copy", "exclude", FLAG_STRINGS},
    {"add", "chown", FLAG_STRING},
    {"add", "chmod", FLAG_STRING},
    {"add", "link", FLAG_BOOL},
    {"add", "checksum", FLAG_STRING},
    {"add", "keep-git-dir", FLAG_BOOL},
    {"add", "exclude", FLAG_STRINGS},
    {"add", "unpack", FLAG_BOOL},
    {"healthcheck", "interval", FLAG_STRING},
    {"healthcheck", "timeout", FLAG_STRING},
    {"healthcheck", "start-period", FLAG_STRING},
    {"healthcheck", "start-interval", FLAG_STRING},
    {"healthcheck", "retries", FLAG_STRING},
};

static int fail(struct mk_error **err, const char *filename, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct mk_error **err, const char *filename, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = mk_xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *where = mk_xasprintf("%s:%d", filename ? filename : "Dockerfile", line);
    return mk_error_set_at(err, MK_ERR_INVALID, where, "%s", msg);
}

static const struct flag_rule *find_rule(const char *keyword, const char *name, size_t len)
{
    for (size_t i = 0; i < MK_ARRAY_SIZE(flag_rules); i++)
        if (!strcmp(flag_rules[i].keyword, keyword) && strlen(flag_rules[i].name) == len &&
            !strncmp(flag_rules[i].name, name, len))
            return &flag_rules[i];
    return NULL;
}

/* BFlags.Parse */
static int check_flags(const struct mk_df_node *n, const char *file, struct mk_error **err)
{
    for (size_t i = 0; i < n->flags.n; i++) {
        const char *f = n->flags.v[i];
        const char *name = f + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag_rule *rule = find_rule(n->keyword, name, len);
        if (!mk_str_has_prefix(f, "--") || !rule)
            return fail(err, file, n->start_line, "unknown flag: %.*s", (int)(len + 2), f);
        for (size_t j = 0; j < i && rule->type != FLAG_STRINGS; j++) {
            const char *g = n->flags.v[j] + 2;
            if (!strncmp(g, name, len) && (g[len] == 0 || g[len] == '='))
                return fail(err, file, n->start_line, "duplicate flag specified: %.*s", (int)len,
                            name);
        }
        if (rule->type == FLAG_BOOL && eq && strcasecmp(eq + 1, "true") != 0 &&
            strcasecmp(eq + 1, "false") != 0)
            return fail(err, file, n->start_line, "expecting boolean value for flag %.*s, not: %s",
                        (int)len, name, eq + 1);
        if (rule->type != FLAG_BOOL && !eq)
            return fail(err, file, n->start_line, "missing a value on flag: %.*s", (int)len, name);
    }
    return 0;
}

/* time.ParseDuration, in nanoseconds. */
static int parse_duration(const char *s, double *ret)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1},   {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
                 {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},        {"h", 3600e9}};
    const char *p = s;
    double total = 0, sign = 1;
    if (*p == '-' || *p == '+')
        sign = *p++ == '-' ? -1 : 1;
    if (!strcmp(p, "0")) {
        *ret = 0;
        return 0;
    }
    if (!*p)
        return -1;
    while (*p) {
        const char *start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        bool pre = p > start;
        if (*p == '.') {
            p++;
            const char *frac = p;
            while (*p >= '0' && *p <= '9')
                p++;
            if (!pre && p == frac)
                return -1;
        } else if (!pre) {
            return -1;
        }
        _cleanup_free_ char *num = mk_xstrndup(start, (size_t)(p - start));
        double v = strtod(num, NULL);
        const char *u = p;
        while (*p && *p != '.' && (*p < '0' || *p > '9'))
            p++;
        if (u == p)
            return -1;
        size_t ul = (size_t)(p - u);
        bool known = false;
        for (size_t i = 0; i < MK_ARRAY_SIZE(units); i++)
            if (strlen(units[i].unit) == ul && !strncmp(units[i].unit, u, ul)) {
                total += v * units[i].ns;
                known = true;
            }
        if (!known)
            return -1;
    }
    if (total > 9.3e18)
        return -1;
    *ret = sign * total;
    return 0;
}

static int check_healthcheck(const struct mk_df_node *n, const char *file, struct mk_error **err)
{
    static const char *const intervals[] = {"interval", "timeout", "start-period",
                                            "start-interval"};
    if (n->args.n == 0)
        return fail(err, file, n->start_line, "HEALTHCHECK requires at least one argument");
    _cleanup_free_ char *typ = mk_xstrdup(n->args.v[0]);
    for (char *c = typ; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 32);
    if (!strcmp(typ, "NONE")) {
        if (n->args.n != 1)
            return fail(err, file, n->start_line, "HEALTHCHECK NONE takes no arguments");
        return 0;
    }
    if (strcmp(typ, "CMD") != 0) {
        struct mk_buf q = MK_BUF_INIT;
        parser_df_go_quote(&q, typ, strlen(typ));
        int r = fail(err, file, n->start_line, "Unknown type %s in HEALTHCHECK (try CMD)", q.data);
        mk_buf_release(&q);
        return r;
    }
    if (n->args.n < 2)
        return fail(err, file, n->start_line, "Missing command after HEALTHCHECK CMD");
    for (size_t i = 0; i < MK_ARRAY_SIZE(intervals); i++) {
        const char *v = NULL;
        double d;
        if (!mk_df_node_flag(n, intervals[i], &v) || !v || !*v)
            continue;
        if (parse_duration(v, &d) < 0)
            return fail(err, file, n->start_line, "time: invalid duration \"%s\"", v);
        if (d < 0)
            return fail(err, file, n->start_line, "Interval \"%s\" cannot be negative",
                        intervals[i]);
        if (d > 0 && d < 1e6)
            return fail(err, file, n->start_line, "Interval \"%s\" cannot be less than 1ms",
                        intervals[i]);
    }
    const char *retries = NULL;
    if (mk_df_node_flag(n, "retries", &retries) && retries && *retries) {
        int v;
        if (mk_parse_int(retries[0] == '-' ? retries + 1 : retries, &v) < 0)
            return fail(err, file, n->start_line,
                        "strconv.ParseInt: parsing \"%s\": invalid syntax", retries);
        if (retries[0] == '-' && v > 0)
            return fail(err, file, n->start_line, "--retries cannot be negative (-%d)", v);
    }
    return 0;
}

static bool valid_stage_name(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
              *s == '.'))
            return false;
    return true;
}

static bool kw(const struct mk_df_node *n, const char *k)
{
    return strcmp(n->keyword, k) == 0;
}

static bool known_keyword(const char *k)
{
    for (size_t i = 0; mk_df_keywords[i]; i++)
        if (!strcmp(mk_df_keywords[i], k))
            return true;
    return false;
}

static int check_unknown(const struct mk_df_node *n, const char *file, struct mk_error **err)
{
    /* The keyword as the user wrote it. */
    const char *o = n->original;
    while (*o == ' ' || *o == '\t' || *o == '\v' || *o == '\f' || *o == '\r')
        o++;
    size_t len = strcspn(o, " \t\v\f\r");
    _cleanup_free_ char *written = mk_xstrndup(o, len);
    const char *hint = mk_df_suggest_keyword(written);
    if (!hint)
        return fail(err, file, n->start_line, "unknown instruction \"%s\"", written);
    _cleanup_free_ char *upper = mk_xstrdup(hint);
    for (char *c = upper; *c; c++)
        *c = (char)(*c - 32 * (*c >= 'a' && *c <= 'z'));
    return fail(err, file, n->start_line, "unknown instruction \"%s\" (did you mean \"%s\"?)",
                written, upper);
}

static int check_node(const struct mk_df_node *n, const char *file, struct mk_error **err)
{
    size_t argc = n->args.n;
    int line = n->start_line;
    if (!known_keyword(n->keyword))
        return check_unknown(n, file, err);
    if (check_flags(n, file, err) < 0)
        return -1;
    if (kw(n, "from")) {
        if (argc == 3 && !strcasecmp(n->args.v[1], "as")) {
            _cleanup_free_ char *lower = parser_df_go_lower(n->args.v[2], strlen(n->args.v[2]));
            if (!valid_stage_name(lower)) {
                struct mk_buf q = MK_BUF_INIT;
                parser_df_go_quote(&q, n->args.v[2], strlen(n->args.v[2]));
                int r = fail(err, file, line,
                             "invalid name for build stage: %s, name can't start with a number "
                             "or contain symbols",
                             q.data);
                mk_buf_release(&q);
                return r;
            }
        } else if (argc != 1) {
            return fail(err, file, line, "FROM requires either one or three arguments");
        }
    } else if (kw(n, "copy") || kw(n, "add")) {
        if (argc < 2)
            return fail(err, file, line, "%s requires at least two arguments",
                        kw(n, "copy") ? "COPY" : "ADD");
    } else if (kw(n, "run") || kw(n, "env") || kw(n, "label") || kw(n, "arg") || kw(n, "expose") ||
               kw(n, "volume")) {
        if (argc == 0) {
            _cleanup_free_ char *upper = mk_xstrdup(n->keyword);
            for (char *c = upper; *c; c++)
                *c = (char)(*c - 32);
            return fail(err, file, line, "%s requires at least one argument", upper);
        }
        if (kw(n, "volume"))
            for (size_t i = 0; i < argc; i++)
                if (n->arg_lens[i] == 0)
                    return fail(err, file, line, "VOLUME specified can not be an empty string");
    } else if (kw(n, "maintainer") || kw(n, "user") || kw(n, "workdir") || kw(n, "stopsignal")) {
        if (argc != 1) {
            _cleanup_free_ char *upper = mk_xstrdup(n->keyword);
            for (char *c = upper; *c; c++)
                *c = (char)(*c - 32);
            return fail(err, file, line, "%s requires exactly one argument", upper);
        }
    } else if (kw(n, "shell")) {
        if (!n->json)
            return fail(err, file, line, "SHELL requires the arguments to be in JSON form");
        if (argc == 0)
            return fail(err, file, line, "SHELL requires at least one argument");
    } else if (kw(n, "healthcheck")) {
        return check_healthcheck(n, file, err);
    } else if (kw(n, "onbuild")) {
        if (!n->onbuild)
            return fail(err, file, line, "ONBUILD requires at least one argument");
        if (kw(n->onbuild, "onbuild"))
            return fail(err, file, line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        if (kw(n->onbuild, "from") || kw(n->onbuild, "maintainer"))
            return fail(err, file, line, "%s isn't allowed as an ONBUILD trigger",
                        kw(n->onbuild, "from") ? "FROM" : "MAINTAINER");
    }
    return 0;
}

int mk_df_validate(const struct mk_df *df, const char *filename, struct mk_error **err)
{
    struct mk_strv stages = MK_STRV_INIT;
    bool in_stage = false;
    int r = 0;

    for (size_t i = 0; i < df->n_nodes && r == 0; i++) {
        const struct mk_df_node *n = &df->nodes[i];
        r = check_node(n, filename, err);
        if (r < 0)
            break;
        if (kw(n, "from")) {
            in_stage = true;
            if (n->args.n == 3) {
                _cleanup_free_ char *name = parser_df_go_lower(n->args.v[2], strlen(n->args.v[2]));
                for (size_t j = 0; j < stages.n; j++)
                    if (!strcmp(stages.v[j], name)) {
                        r = fail(err, filename, n->start_line, "duplicate stage name \"%s\"", name);
                        break;
                    }
                mk_strv_push(&stages, name);
            }
        } else if (!in_stage && !kw(n, "arg")) {
            r = fail(err, filename, n->start_line, "no build stage in current context");
        }
    }
    if (r == 0 && !in_stage)
        r = fail(err, filename, df->n_nodes ? df->nodes[0].start_line : 1,
                 "dockerfile contains no stages to build");
    mk_strv_release(&stages);
    return r;
}
