/* parser/instructions.c - the typed instruction layer (BuildKit's frontend/dockerfile/
 * instructions): nodes become struct mk_inst with typed flags, and every rule about an
 * instruction is checked here, once. Messages follow upstream's wording except where our
 * own (older) messages are what users and tests know, and for unknown instructions and
 * flags, which quote the user's text in our house style. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"
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

static int where_err(struct mk_error **err, const char *file, const struct mk_df_node *n)
{
    _cleanup_free_ char *where = mk_xasprintf("%s:%d", file ? file : "Dockerfile", n->start_line);
    return mk_error_set_where(err, where);
}

static char *upper_dup(const char *s)
{
    char *u = mk_xstrdup(s);
    for (char *c = u; *c; c++)
        *c = (char)(*c - 32 * (*c >= 'a' && *c <= 'z'));
    return u;
}

static char *lower_dup(const char *s)
{
    char *l = mk_xstrdup(s);
    for (char *c = l; *c; c++)
        *c = (char)(*c + 32 * (*c >= 'A' && *c <= 'Z'));
    return l;
}

/* A bool flag BFlags accepted: bare or "true"/"false" in any case. */
static bool flag_bool(const struct mk_df_node *n, const char *name)
{
    const char *v = NULL;
    return mk_df_node_flag(n, name, &v) && (!v || strcasecmp(v, "true") == 0);
}

static char *flag_string(const struct mk_df_node *n, const char *name)
{
    const char *v = NULL;
    return mk_df_node_flag(n, name, &v) ? mk_xstrdup(v ? v : "") : NULL;
}

/* The values of a repeatable --NAME=VALUE flag, in order. */
static void flag_strings(const struct mk_df_node *n, const char *name, struct mk_strv *ret)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n->flags.n; i++) {
        const char *f = n->flags.v[i];
        if (!strncmp(f, "--", 2) && !strncmp(f + 2, name, len) && f[2 + len] == '=')
            mk_strv_push(ret, f + 3 + len);
    }
}

/* ---- RUN --mount --------------------------------------------------------------------------- */

static int mount_fail(struct mk_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int mount_fail(struct mk_error **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_error_setv(err, MK_ERR_INVALID, 0, fmt, ap);
    va_end(ap);
    return -1;
}

/* strconv.ParseBool, plus the empty value of a bare "ro". */
static int parse_bool(const char *v, bool *ret)
{
    static const char *const yes[] = {"", "1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(yes); i++)
        if (!strcmp(v, yes[i]))
            return *ret = true, 0;
    for (size_t i = 0; i < MK_ARRAY_SIZE(no); i++)
        if (!strcmp(v, no[i]))
            return *ret = false, 0;
    return -1;
}

/* Octal, at most 07777. */
static int parse_mode(const char *v, unsigned *ret)
{
    unsigned m = 0;
    if (!*v)
        return -1;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '7' || m > 07777)
            return -1;
        m = m * 8 + (unsigned)(*p - '0');
    }
    if (m > 07777)
        return -1;
    *ret = m;
    return 0;
}

static int parse_id(const char *v, uint32_t *ret)
{
    uint64_t u;
    if (mk_parse_u64(v, &u) < 0 || u > UINT32_MAX)
        return -1;
    *ret = (uint32_t)u;
    return 0;
}

static bool is_word_key(const char *key, char ***ret_field, struct mk_run_mount *m)
{
    static const char *const names[] = {"target", "dst", "destination", "source", "src",
                                        "from",   "id",  "env",         "size"};
    char **fields[] = {&m->target, &m->target, &m->target, &m->source, &m->source,
                       &m->from,   &m->id,     &m->env,    &m->size};
    for (size_t i = 0; i < MK_ARRAY_SIZE(names); i++)
        if (!strcmp(key, names[i])) {
            *ret_field = fields[i];
            return true;
        }
    return false;
}

static int mount_type(struct mk_run_mount *m, const char *value, struct mk_error **err)
{
    static const char *const types[] = {"bind", "cache", "tmpfs", "secret"};
    _cleanup_free_ char *t = lower_dup(value);
    for (size_t i = 0; i < MK_ARRAY_SIZE(types); i++)
        if (!strcmp(t, types[i])) {
            m->type = (enum mk_run_mount_type)i;
            return 0;
        }
    return mount_fail(
        err, "--mount type \"%s\" is not supported (use bind, cache, tmpfs or secret)", value);
}

/* One field whose value is final (literal, or expanded). */
static int mount_field(struct mk_run_mount *m, const char *key, const char *value,
                       struct mk_error **err)
{
    char **word;
    bool b;
    if (is_word_key(key, &word, m)) {
        free(*word);
        *word = mk_xstrdup(value);
    } else if (!strcmp(key, "type")) {
        return mount_type(m, value, err);
    } else if (!strcmp(key, "sharing")) {
        if (!strcmp(value, "shared"))
            m->sharing = MK_RUN_MOUNT_SHARED;
        else if (!strcmp(value, "private"))
            m->sharing = MK_RUN_MOUNT_PRIVATE;
        else if (!strcmp(value, "locked"))
            m->sharing = MK_RUN_MOUNT_LOCKED;
        else
            return mount_fail(err, "--mount sharing=%s: unknown mode (shared, private or locked)",
                              value);
    } else if (!strcmp(key, "mode") || !strcmp(key, "uid") || !strcmp(key, "gid")) {
        int r = key[0] == 'm' ? parse_mode(value, &m->mode)
                              : parse_id(value, key[0] == 'u' ? &m->uid : &m->gid);
        if (r < 0)
            return mount_fail(err, "--mount=%s: invalid mode, uid or gid", m->spec);
        *(key[0] == 'm' ? &m->has_mode : key[0] == 'u' ? &m->has_uid : &m->has_gid) = true;
    } else if (!strcmp(key, "ro") || !strcmp(key, "readonly") || !strcmp(key, "rw") ||
               !strcmp(key, "readwrite") || !strcmp(key, "required")) {
        if (parse_bool(value, &b) < 0)
            return mount_fail(err, "--mount=%s: invalid boolean value \"%s\" for %s", m->spec,
                              value, key);
        *(key[0] == 'r' && key[1] == 'o' ? &m->readonly
          : key[2] == 'q'                ? &m->required
          : !strcmp(key, "readonly")     ? &m->readonly
                                         : &m->readwrite) = b;
    } else {
        return mount_fail(err, "--mount=%s: unknown key \"%s\"", m->spec, key);
    }
    return 0;
}

/* The rules between fields, once the type is known. */
static int mount_finish(struct mk_run_mount *m, struct mk_error **err)
{
    if (m->type != MK_RUN_MOUNT_SECRET && (!m->target || !*m->target))
        return mount_fail(err, "--mount=%s: target is required", m->spec);
    if (m->required && m->type != MK_RUN_MOUNT_SECRET)
        return mount_fail(err, "--mount=%s: required= applies to secret mounts only", m->spec);
    if (m->size && m->type != MK_RUN_MOUNT_TMPFS)
        return mount_fail(err, "--mount=%s: size= applies to tmpfs mounts only", m->spec);
    if (m->type != MK_RUN_MOUNT_SECRET)
        return 0;
    const char *id = m->id;
    if (!id && m->target) {
        const char *slash = strrchr(m->target, '/');
        id = slash ? slash + 1 : m->target;
    }
    if (!id || !*id)
        return mount_fail(err, "--mount=%s: a secret needs an id or a target", m->spec);
    if (m->env && !*m->env)
        return mount_fail(err, "--mount=%s: env= needs a variable name", m->spec);
    return 0;
}

static bool needs_expansion(const char *w, char escape)
{
    return strchr(w, '$') || strchr(w, '"') || strchr(w, '\'') || strchr(w, escape);
}

/* Splits SPEC ("k=v,k2=v2,flag") into fields; keys lowercased, a bare key gets "". */
static int mount_split(const char *spec, struct mk_run_mount *m, struct mk_error **err)
{
    memset(m, 0, sizeof(*m));
    m->spec = mk_xstrdup(spec);
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        if (len && !klen)
            return mount_fail(err, "--mount=%s: a field has no key", spec);
        if (len) {
            _cleanup_free_ char *k = mk_xstrndup(p, klen);
            mk_strv_push_take(&m->keys, lower_dup(k));
            mk_strv_push_take(&m->values,
                              eq ? mk_xstrndup(eq + 1, len - klen - 1) : mk_xstrdup(""));
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* At parse time (env NULL): words kept as written, other values that need expanding left
 * for mk_run_mount_expand. */
static int mount_build(const struct mk_run_mount *src, const struct mk_strv *env, char escape,
                       struct mk_run_mount *m, struct mk_error **err)
{
    bool type_known = true;
    for (size_t i = 0; i < src->keys.n; i++) {
        const char *key = src->keys.v[i], *value = src->values.v[i];
        char **word;
        _cleanup_free_ char *exp = NULL;
        if (env) {
            if (mk_shell_word(value, env, escape, &exp, err) < 0)
                return mk_error_wrap(err, "--mount=%s", src->spec);
            value = exp;
        } else if (needs_expansion(value, escape) && !is_word_key(key, &word, m)) {
            type_known &= strcmp(key, "type") != 0;
            continue;
        }
        if (mount_field(m, key, value, err) < 0)
            return -1;
    }
    return type_known ? mount_finish(m, err) : 0;
}

static int mount_parse(const char *spec, char escape, struct mk_run_mount *ret,
                       struct mk_error **err)
{
    if (mount_split(spec, ret, err) < 0)
        return -1;
    return mount_build(ret, NULL, escape, ret, err);
}

void mk_run_mount_release(struct mk_run_mount *m)
{
    if (!m)
        return;
    free(m->spec);
    mk_strv_release(&m->keys);
    mk_strv_release(&m->values);
    free(m->target);
    free(m->source);
    free(m->from);
    free(m->id);
    free(m->env);
    free(m->size);
    memset(m, 0, sizeof(*m));
}

int mk_run_mount_expand(const struct mk_run_mount *m, const struct mk_strv *env, char escape,
                        struct mk_run_mount *ret, struct mk_error **err)
{
    static const struct mk_strv none = MK_STRV_INIT;
    struct mk_run_mount r;
    memset(&r, 0, sizeof(r));
    r.spec = mk_xstrdup(m->spec);
    mk_strv_copy(&r.keys, &m->keys);
    mk_strv_copy(&r.values, &m->values);
    r.expanded = true;
    if (mount_build(m, env ? env : &none, escape, &r, err) < 0) {
        mk_run_mount_release(&r);
        return -1;
    }
    *ret = r;
    return 0;
}

/* ---- EXPOSE, --chmod, --checksum ------------------------------------------------------------ */

/* One port number of EXPOSE: decimal, 0-65535. */
static bool expose_port_number(const char *s, size_t len, unsigned *ret)
{
    if (!len || len > 5 || strspn(s, "0123456789") < len)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    if (v > 65535)
        return false;
    *ret = v;
    return true;
}

static char *expose_why(const char *raw, struct mk_strv *out)
{
    const char *cport = strrchr(raw, ':') ? strrchr(raw, ':') + 1 : raw;
    const char *slash = strchr(cport, '/');
    size_t plen = slash ? (size_t)(slash - cport) : strlen(cport);
    _cleanup_free_ char *proto = lower_dup(slash ? slash + 1 : "");
    if (!plen)
        return mk_xstrdup("no port specified");
    if (*proto && strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 &&
        strcmp(proto, "sctp") != 0)
        return mk_xasprintf("invalid proto \"%s\"", slash + 1);
    const char *dash = memchr(cport, '-', plen);
    unsigned start, end = 0;
    if (!expose_port_number(cport, dash ? (size_t)(dash - cport) : plen, &start) ||
        (dash && !expose_port_number(dash + 1, plen - (size_t)(dash + 1 - cport), &end)) ||
        (dash && end < start))
        return mk_xasprintf("invalid containerPort: %.*s", (int)plen, cport);
    if (!dash)
        end = start;
    for (unsigned p = start; out && p <= end; p++)
        mk_strv_pushf(out, "%u/%s", p, *proto ? proto : "tcp");
    return NULL;
}

int mk_inst_expose_ports(const char *word, struct mk_strv *ret_ports, struct mk_error **err)
{
    _cleanup_free_ char *why = expose_why(word, ret_ports);
    if (why)
        return mk_error_set(err, MK_ERR_INVALID, 0, "EXPOSE: invalid port \"%s\": %s", word, why);
    return 0;
}

/* Permission bits a symbolic --chmod clause names after its operator. */
static unsigned chmod_perm(const char **pp, unsigned cur, bool is_dir)
{
    const char *p = *pp;
    unsigned perm = 0;
    if (*p == 'u' || *p == 'g' || *p == 'o') {
        /* "g=u": copy another class's current bits. */
        int shift = *p == 'u' ? 6 : *p == 'g' ? 3 : 0;
        *pp = p + 1;
        return ((cur >> shift) & 7) * 0111;
    }
    for (; *p && strchr("rwxXst", *p); p++) {
        if (*p == 'r')
            perm |= 0444;
        else if (*p == 'w')
            perm |= 0222;
        else if (*p == 'x' || (*p == 'X' && (is_dir || (cur & 0111))))
            perm |= 0111;
        else if (*p == 's')
            perm |= 06000;
        else if (*p == 't')
            perm |= 01000;
    }
    *pp = p;
    return perm;
}

int mk_chmod_apply(const char *spec, unsigned cur, bool is_dir, unsigned *ret)
{
    if (!spec || !*spec)
        return -1;
    if (strspn(spec, "01234567") == strlen(spec)) {
        if (strlen(spec) > 4)
            return -1;
        *ret = (unsigned)strtoul(spec, NULL, 8);
        return 0;
    }
    unsigned m = cur & 07777;
    const char *p = spec;
    for (;;) {
        unsigned who = 0;
        for (; *p && strchr("ugoa", *p); p++)
            who |= *p == 'u' ? 04700u : *p == 'g' ? 02070u : *p == 'o' ? 01007u : 07777u;
        if (!who)
            who = 07777;
        if (!*p || !strchr("+-=", *p))
            return -1;
        while (*p && strchr("+-=", *p)) {
            char op = *p++;
            unsigned perm = chmod_perm(&p, m, is_dir) & who;
            if (op == '+')
                m |= perm;
            else if (op == '-')
                m &= ~perm;
            else
                m = (m & ~who) | perm;
        }
        if (!*p)
            break;
        if (*p != ',' || !*++p)
            return -1;
    }
    *ret = m;
    return 0;
}

/* ADD --checksum: a content digest (HTTP sources) or a commit (git sources). */
static bool valid_checksum(const char *v)
{
    size_t len = strlen(v);
    return mk_digest_valid(v) || ((len == 40 || len == 64) && strspn(v, "0123456789abcdef") == len);
}

/* ---- HEALTHCHECK --------------------------------------------------------------------------- */

static int parse_healthcheck(const struct mk_df_node *n, const char *file,
                             struct mk_inst_healthcheck *h, struct mk_error **err)
{
    static const char *const names[] = {"interval", "timeout", "start-period", "start-interval"};
    int64_t *fields[] = {&h->interval, &h->timeout, &h->start_period, &h->start_interval};
    if (n->args.n == 0)
        return fail(err, file, n->start_line, "HEALTHCHECK requires at least one argument");
    _cleanup_free_ char *typ = upper_dup(n->args.v[0]);
    if (!strcmp(typ, "NONE")) {
        if (n->args.n != 1 || n->flags.n)
            return fail(err, file, n->start_line, "HEALTHCHECK NONE takes no arguments");
        mk_strv_push(&h->test, "NONE");
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
    mk_strv_push(&h->test, n->json ? "CMD" : "CMD-SHELL");
    for (size_t i = 1; i < n->args.n; i++)
        mk_strv_push(&h->test, n->args.v[i]);
    for (size_t i = 0; i < MK_ARRAY_SIZE(names); i++) {
        const char *v = NULL;
        double d;
        if (!mk_df_node_flag(n, names[i], &v) || !v || !*v)
            continue;
        if (parse_duration(v, &d) < 0)
            return fail(err, file, n->start_line, "time: invalid duration \"%s\"", v);
        if (d < 0)
            return fail(err, file, n->start_line, "Interval \"%s\" cannot be negative", names[i]);
        if (d > 0 && d < 1e6)
            return fail(err, file, n->start_line, "Interval \"%s\" cannot be less than 1ms",
                        names[i]);
        *fields[i] = (int64_t)d;
    }
    const char *retries = NULL;
    if (mk_df_node_flag(n, "retries", &retries) && retries && *retries) {
        int v;
        if (mk_parse_int(retries[0] == '-' ? retries + 1 : retries, &v) < 0)
            return fail(err, file, n->start_line,
                        "strconv.ParseInt: parsing \"%s\": invalid syntax", retries);
        if (retries[0] == '-' && v > 0)
            return fail(err, file, n->start_line, "--retries cannot be negative (-%d)", v);
        h->retries = retries[0] == '-' ? 0 : v;
    }
    return 0;
}

/* ---- one instruction ----------------------------------------------------------------------- */

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

static const char *const kind_keywords[] = {
    [MK_INST_FROM] = "from",
    [MK_INST_RUN] = "run",
    [MK_INST_COPY] = "copy",
    [MK_INST_ADD] = "add",
    [MK_INST_WORKDIR] = "workdir",
    [MK_INST_ENV] = "env",
    [MK_INST_LABEL] = "label",
    [MK_INST_ARG] = "arg",
    [MK_INST_CMD] = "cmd",
    [MK_INST_ENTRYPOINT] = "entrypoint",
    [MK_INST_SHELL] = "shell",
    [MK_INST_EXPOSE] = "expose",
    [MK_INST_HEALTHCHECK] = "healthcheck",
    [MK_INST_USER] = "user",
    [MK_INST_VOLUME] = "volume",
    [MK_INST_STOPSIGNAL] = "stopsignal",
    [MK_INST_ONBUILD] = "onbuild",
    [MK_INST_MAINTAINER] = "maintainer",
};

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
    _cleanup_free_ char *upper = upper_dup(hint);
    return fail(err, file, n->start_line, "unknown instruction \"%s\" (did you mean \"%s\"?)",
                written, upper);
}

/* The instruction text after the keyword and flags, as written (for history and logs). */
static const char *node_rest(const struct mk_df_node *n)
{
    const char *p = n->original;
    while (*p == ' ' || *p == '\t')
        p++;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (p[0] != '-' || p[1] != '-')
            return p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
}

static int check_arity(const struct mk_df_node *n, const char *file, struct mk_error **err)
{
    size_t argc = n->args.n;
    _cleanup_free_ char *upper = upper_dup(n->keyword);
    if ((kw(n, "copy") || kw(n, "add")) && argc < 2)
        return fail(err, file, n->start_line, "%s requires at least two arguments", upper);
    if ((kw(n, "run") || kw(n, "env") || kw(n, "label") || kw(n, "arg") || kw(n, "expose") ||
         kw(n, "volume")) &&
        argc == 0)
        return fail(err, file, n->start_line, "%s requires at least one argument", upper);
    if ((kw(n, "maintainer") || kw(n, "user") || kw(n, "workdir") || kw(n, "stopsignal")) &&
        argc != 1)
        return fail(err, file, n->start_line, "%s requires exactly one argument", upper);
    for (size_t i = 0; kw(n, "volume") && i < argc; i++)
        if (n->arg_lens[i] == 0)
            return fail(err, file, n->start_line, "VOLUME specified can not be an empty string");
    return 0;
}

static int parse_from(const struct mk_df_node *n, const char *file, struct mk_inst_from *f,
                      struct mk_error **err)
{
    size_t argc = n->args.n;
    if (!(argc == 1 || (argc == 3 && !strcasecmp(n->args.v[1], "as"))))
        return fail(err, file, n->start_line, "FROM requires either one or three arguments");
    if (argc == 3) {
        f->name = parser_df_go_lower(n->args.v[2], strlen(n->args.v[2]));
        if (!valid_stage_name(f->name)) {
            struct mk_buf q = MK_BUF_INIT;
            parser_df_go_quote(&q, n->args.v[2], strlen(n->args.v[2]));
            int r = fail(err, file, n->start_line,
                         "invalid name for build stage: %s, name can't start with a number "
                         "or contain symbols",
                         q.data);
            mk_buf_release(&q);
            return r;
        }
    }
    f->image = mk_xstrdup(n->args.v[0]);
    f->platform = flag_string(n, "platform");
    return 0;
}

static int parse_run(const struct mk_df_node *n, const char *file, char escape,
                     struct mk_inst_run *run, struct mk_error **err)
{
    _cleanup_free_ char *net = flag_string(n, "network"), *sec = flag_string(n, "security");
    static const char *const nets[] = {"default", "none", "host"};
    for (size_t i = 0; net && i < MK_ARRAY_SIZE(nets) && !run->network; i++)
        if (!strcmp(net, nets[i]))
            run->network = (enum mk_run_network)(MK_RUN_NET_DEFAULT + i);
    if (net && !run->network)
        return fail(err, file, n->start_line,
                    "unknown network mode \"%s\" (use default, none or host)", net);
    run->insecure = sec && !strcmp(sec, "insecure");
    if (sec && !run->insecure && strcmp(sec, "sandbox") != 0)
        return fail(err, file, n->start_line,
                    "unknown security mode \"%s\" (use sandbox or insecure)", sec);
    _cleanup_(mk_strv_release) struct mk_strv specs = MK_STRV_INIT;
    flag_strings(n, "mount", &specs);
    run->mounts = mk_xcalloc(specs.n ? specs.n : 1, sizeof(*run->mounts));
    for (size_t i = 0; i < specs.n; i++) {
        run->n_mounts++;
        if (mount_parse(specs.v[i], escape, &run->mounts[i], err) < 0)
            return where_err(err, file, n);
    }
    return 0;
}

static int parse_copy(const struct mk_df_node *n, const char *file, struct mk_inst_copy *c,
                      struct mk_error **err)
{
    const char *upper = kw(n, "add") ? "ADD" : "COPY";
    c->from = flag_string(n, "from");
    c->chown = flag_string(n, "chown");
    c->chmod = flag_string(n, "chmod");
    c->checksum = flag_string(n, "checksum");
    c->link = flag_bool(n, "link");
    c->parents = flag_bool(n, "parents");
    c->keep_git_dir = flag_bool(n, "keep-git-dir");
    c->unpack = mk_df_node_flag(n, "unpack", NULL) ? flag_bool(n, "unpack") : -1;
    flag_strings(n, "exclude", &c->excludes);
    unsigned mode;
    if (c->chmod && mk_chmod_apply(c->chmod, 0644, false, &mode) < 0)
        return fail(err, file, n->start_line,
                    "invalid --chmod value \"%s\" (octal, e.g. 0755, or symbolic, "
                    "e.g. u=rwx,go=rx)",
                    c->chmod);
    if (n->n_heredocs && (c->from || n->args.n != n->n_heredocs + 1))
        return fail(err, file, n->start_line,
                    "%s with heredoc sources takes only heredocs as sources", upper);
    if (c->checksum && n->args.n != 2)
        return fail(err, file, n->start_line, "checksum can't be specified for multiple sources");
    if (c->checksum && !valid_checksum(c->checksum))
        return fail(err, file, n->start_line,
                    "invalid --checksum value \"%s\" (want sha256:<64 hex digits>)", c->checksum);
    return 0;
}

static void parse_kvs(const struct mk_df_node *n, struct mk_inst *inst)
{
    bool triples = inst->kind != MK_INST_ARG;
    size_t step = triples ? 3 : 1;
    inst->kvs = mk_xcalloc(n->args.n / step + 1, sizeof(*inst->kvs));
    for (size_t i = 0; i + step - 1 < n->args.n; i += step) {
        struct mk_inst_kv *kv = &inst->kvs[inst->n_kvs++];
        const char *eq = triples ? NULL : strchr(n->args.v[i], '=');
        if (triples) {
            kv->key = mk_xstrdup(n->args.v[i]);
            kv->value = mk_xstrdup(n->args.v[i + 1]);
        } else {
            kv->key = eq ? mk_xstrndup(n->args.v[i], (size_t)(eq - n->args.v[i]))
                         : mk_xstrdup(n->args.v[i]);
            kv->value = eq ? mk_xstrdup(eq + 1) : NULL;
        }
    }
}

static int parse_onbuild(const struct mk_df_node *n, const char *file, char escape,
                         struct mk_inst *inst, struct mk_error **err);

static int parse_kind(const struct mk_df_node *n, const char *file, char escape,
                      struct mk_inst *inst, struct mk_error **err)
{
    switch (inst->kind) {
    case MK_INST_FROM:
        return parse_from(n, file, &inst->from, err);
    case MK_INST_RUN:
        return parse_run(n, file, escape, &inst->run, err);
    case MK_INST_COPY:
    case MK_INST_ADD:
        return parse_copy(n, file, &inst->copy, err);
    case MK_INST_ENV:
    case MK_INST_LABEL:
    case MK_INST_ARG:
        parse_kvs(n, inst);
        return 0;
    case MK_INST_SHELL:
        if (!n->json)
            return fail(err, file, n->start_line,
                        "SHELL requires the arguments to be in JSON form");
        if (n->args.n == 0)
            return fail(err, file, n->start_line, "SHELL requires at least one argument");
        /* fall through */
    case MK_INST_CMD:
    case MK_INST_ENTRYPOINT:
    case MK_INST_EXPOSE:
    case MK_INST_VOLUME:
        mk_strv_copy(&inst->words, &n->args);
        for (size_t i = 0; inst->kind == MK_INST_EXPOSE && i < n->args.n; i++) {
            if (needs_expansion(n->args.v[i], escape) || strpbrk(n->args.v[i], " \t"))
                continue; /* checked once expanded */
            if (mk_inst_expose_ports(n->args.v[i], NULL, err) < 0)
                return where_err(err, file, n);
        }
        return 0;
    case MK_INST_HEALTHCHECK:
        return parse_healthcheck(n, file, &inst->healthcheck, err);
    case MK_INST_ONBUILD:
        return parse_onbuild(n, file, escape, inst, err);
    case MK_INST_WORKDIR:
    case MK_INST_USER:
    case MK_INST_STOPSIGNAL:
    case MK_INST_MAINTAINER:
        inst->word = mk_xstrdup(n->args.v[0]);
        return 0;
    }
    return 0;
}

static int parse_node(const struct mk_df_node *n, const char *file, char escape,
                      struct mk_inst *ret, struct mk_error **err)
{
    memset(ret, 0, sizeof(*ret));
    size_t k = 0;
    while (k < MK_ARRAY_SIZE(kind_keywords) && strcmp(kind_keywords[k], n->keyword) != 0)
        k++;
    if (k == MK_ARRAY_SIZE(kind_keywords))
        return check_unknown(n, file, err);
    ret->kind = (enum mk_inst_kind)k;
    ret->node = n;
    ret->rest = node_rest(n);
    ret->json = n->json;
    if (check_flags(n, file, err) < 0 || check_arity(n, file, err) < 0 ||
        parse_kind(n, file, escape, ret, err) < 0) {
        mk_inst_release(ret);
        return -1;
    }
    return 0;
}

static int parse_onbuild(const struct mk_df_node *n, const char *file, char escape,
                         struct mk_inst *inst, struct mk_error **err)
{
    if (!n->onbuild)
        return fail(err, file, n->start_line, "ONBUILD requires at least one argument");
    if (kw(n->onbuild, "onbuild"))
        return fail(err, file, n->start_line,
                    "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (kw(n->onbuild, "from") || kw(n->onbuild, "maintainer"))
        return fail(err, file, n->start_line, "%s isn't allowed as an ONBUILD trigger",
                    kw(n->onbuild, "from") ? "FROM" : "MAINTAINER");
    inst->trigger = mk_xcalloc(1, sizeof(*inst->trigger));
    if (parse_node(n->onbuild, file, escape, inst->trigger, err) < 0) {
        free(inst->trigger);
        inst->trigger = NULL;
        /* The nested node has no line of its own. */
        if (err && *err) {
            free((*err)->where);
            (*err)->where = NULL;
        }
        return where_err(err, file, n);
    }
    /* The trigger as written, for the image config. */
    inst->rest = node_rest(n);
    return 0;
}

int mk_inst_parse_node(const struct mk_df_node *n, const char *filename, struct mk_inst *ret,
                       struct mk_error **err)
{
    return parse_node(n, filename, '\\', ret, err);
}

void mk_inst_release(struct mk_inst *inst)
{
    if (!inst || !inst->node)
        return;
    switch (inst->kind) {
    case MK_INST_FROM:
        free(inst->from.image);
        free(inst->from.name);
        free(inst->from.platform);
        break;
    case MK_INST_RUN:
        for (size_t i = 0; i < inst->run.n_mounts; i++)
            mk_run_mount_release(&inst->run.mounts[i]);
        free(inst->run.mounts);
        break;
    case MK_INST_COPY:
    case MK_INST_ADD:
        free(inst->copy.from);
        free(inst->copy.chown);
        free(inst->copy.chmod);
        free(inst->copy.checksum);
        mk_strv_release(&inst->copy.excludes);
        break;
    case MK_INST_ENV:
    case MK_INST_LABEL:
    case MK_INST_ARG:
        for (size_t i = 0; i < inst->n_kvs; i++) {
            free(inst->kvs[i].key);
            free(inst->kvs[i].value);
        }
        free(inst->kvs);
        break;
    case MK_INST_CMD:
    case MK_INST_ENTRYPOINT:
    case MK_INST_SHELL:
    case MK_INST_EXPOSE:
    case MK_INST_VOLUME:
        mk_strv_release(&inst->words);
        break;
    case MK_INST_HEALTHCHECK:
        mk_strv_release(&inst->healthcheck.test);
        break;
    case MK_INST_ONBUILD:
        mk_inst_release(inst->trigger);
        free(inst->trigger);
        break;
    case MK_INST_WORKDIR:
    case MK_INST_USER:
    case MK_INST_STOPSIGNAL:
    case MK_INST_MAINTAINER:
        free(inst->word);
        break;
    }
    memset(inst, 0, sizeof(*inst));
}

/* ---- the whole file ------------------------------------------------------------------------ */

void mk_inst_list_release(struct mk_inst_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        mk_inst_release(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* No instruction but ARG before the first FROM, no stage name twice, at least one stage. */
static int check_stages(const struct mk_inst_list *l, const struct mk_df *df, const char *file,
                        struct mk_error **err)
{
    bool in_stage = false;
    for (size_t i = 0; i < l->n; i++) {
        const struct mk_inst *inst = &l->v[i];
        if (inst->kind != MK_INST_FROM) {
            if (!in_stage && inst->kind != MK_INST_ARG)
                return fail(err, file, inst->node->start_line, "no build stage in current context");
            continue;
        }
        in_stage = true;
        for (size_t j = 0; inst->from.name && j < i; j++)
            if (l->v[j].kind == MK_INST_FROM && l->v[j].from.name &&
                !strcmp(l->v[j].from.name, inst->from.name))
                return fail(err, file, inst->node->start_line, "duplicate stage name \"%s\"",
                            inst->from.name);
    }
    if (!in_stage)
        return fail(err, file, df->n_nodes ? df->nodes[0].start_line : 1,
                    "dockerfile contains no stages to build");
    return 0;
}

int mk_inst_parse(const struct mk_df *df, const char *filename, struct mk_inst_list *ret,
                  struct mk_error **err)
{
    struct mk_inst_list l = {mk_xcalloc(df->n_nodes + 1, sizeof(*l.v)), 0};
    for (; l.n < df->n_nodes; l.n++)
        if (parse_node(&df->nodes[l.n], filename, df->escape, &l.v[l.n], err) < 0) {
            mk_inst_list_release(&l);
            return -1;
        }
    if (check_stages(&l, df, filename, err) < 0) {
        mk_inst_list_release(&l);
        return -1;
    }
    *ret = l;
    return 0;
}

int mk_df_validate(const struct mk_df *df, const char *filename, struct mk_error **err)
{
    struct mk_inst_list l;
    if (mk_inst_parse(df, filename, &l, err) < 0)
        return -1;
    mk_inst_list_release(&l);
    return 0;
}
