/* cli/template.c - the Go-template subset of --format (cli/template.h). Templates are short
 * and rendered once an item, so they are interpreted as they are read. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli/template.h"

#define TEMPLATE_MAX_WORDS 8
#define FORMAT_PADDING 3
#define FORMAT_MIN_WIDTH 10

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* An object's keys in Go's map order (sorted); the array is the caller's to free. */
static const char **sorted_keys(json_t *v)
{
    size_t n = json_object_size(v), k = 0;
    const char **keys = mk_xcalloc(n + 1, sizeof(*keys));
    const char *key;
    json_t *e;
    json_object_foreach(v, key, e) keys[k++] = key;
    qsort(keys, n, sizeof(*keys), cmp_str);
    return keys;
}

static int tmpl_error(struct mk_error **err, const char *action, const char *what)
{
    return mk_error_set(err, MK_ERR_USAGE, 0, "template: {{%s}}: %s", action, what);
}

/* Go's %v: strings bare, arrays "[a b]", objects "map[k:v]" with sorted keys. */
static void print_value(json_t *v, struct mk_buf *out)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        mk_buf_add(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        mk_buf_addf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        mk_buf_addf(out, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        mk_buf_adds(out, json_is_true(v) ? "true" : "false");
        break;
    case JSON_NULL:
        mk_buf_adds(out, "<no value>");
        break;
    case JSON_ARRAY: {
        mk_buf_addc(out, '[');
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i)
                mk_buf_addc(out, ' ');
            print_value(e, out);
        }
        mk_buf_addc(out, ']');
        break;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(v);
        const char **keys = sorted_keys(v);
        mk_buf_adds(out, "map[");
        for (size_t i = 0; i < n; i++) {
            mk_buf_addf(out, "%s%s:", i ? " " : "", keys[i]);
            print_value(json_object_get(v, keys[i]), out);
        }
        mk_buf_addc(out, ']');
        free(keys);
        break;
    }
    }
}

/* The words of an action: paths, identifiers and "string" literals (kept quoted). */
static int split_words(const char *action, char **words, size_t *n, struct mk_error **err)
{
    const char *p = action;
    *n = 0;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (*n == TEMPLATE_MAX_WORDS)
            return tmpl_error(err, action, "too many words");
        const char *start = p;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p != '"')
                return tmpl_error(err, action, "unterminated string");
            p++;
        } else {
            while (*p && *p != ' ')
                p++;
        }
        words[(*n)++] = mk_xstrndup(start, (size_t)(p - start));
    }
    if (*n == 0)
        return tmpl_error(err, action, "empty action");
    return 0;
}

/* A word's value, a new reference: ".", ".A.B", "string", or an integer. A field missing from
 * the item itself is an error; deeper (maps such as labels) it is null. */
static json_t *eval_word(const char *action, const char *w, json_t *data, struct mk_error **err)
{
    if (w[0] == '"') {
        struct mk_buf s = MK_BUF_INIT;
        const char *end = w + strlen(w) - 1; /* the closing quote */
        for (const char *p = w + 1; p < end; p++) {
            if (*p == '\\' && p + 1 < end) {
                p++;
                mk_buf_addc(&s, *p == 't' ? '\t' : *p == 'n' ? '\n' : *p);
            } else {
                mk_buf_addc(&s, *p);
            }
        }
        json_t *r = json_string(s.data ? s.data : "");
        mk_buf_release(&s);
        return r;
    }
    if (isdigit((unsigned char)w[0])) {
        int n;
        if (mk_parse_int(w, &n) < 0)
            return tmpl_error(err, action, "bad number"), NULL;
        return json_integer(n);
    }
    if (w[0] != '.')
        return tmpl_error(err, action, "expected .Field, a \"string\" or a number"), NULL;
    json_t *v = data;
    for (const char *p = w + 1; *p;) {
        size_t len = strcspn(p, ".");
        _cleanup_free_ char *name = mk_xstrndup(p, len);
        if (json_is_object(v)) {
            json_t *next = json_object_get(v, name);
            if (!next && v == data) {
                _cleanup_free_ char *msg = mk_xasprintf("no field \"%s\"", name);
                return tmpl_error(err, action, msg), NULL;
            }
            v = next ? next : json_null();
        } else if (!json_is_null(v)) {
            _cleanup_free_ char *msg = mk_xasprintf("\"%s\" of a value that has no fields", name);
            return tmpl_error(err, action, msg), NULL;
        }
        p += len + (p[len] == '.');
    }
    return json_incref(v);
}

static json_t *index_value(json_t *v, json_t *key)
{
    if (json_is_object(v) && json_is_string(key)) {
        json_t *e = json_object_get(v, json_string_value(key));
        return json_incref(e ? e : json_string(""));
    }
    if (json_is_array(v) && json_is_integer(key)) {
        json_t *e = json_array_get(v, (size_t)json_integer_value(key));
        return e ? json_incref(e) : NULL;
    }
    return NULL;
}

/* A function applied to its argument values; appends the result to out. */
static int call(const char *action, const char *fn, json_t **args, size_t n, struct mk_buf *out,
                struct mk_error **err)
{
    if (strcmp(fn, "json") == 0 && n == 1) {
        char *s = json_dumps(args[0], JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        mk_buf_adds(out, s ? s : "null");
        free(s);
        return 0;
    }
    if (strcmp(fn, "index") == 0 && n >= 2) {
        json_t *v = json_incref(args[0]);
        for (size_t i = 1; v && i < n; i++) {
            json_t *next = index_value(v, args[i]);
            json_decref(v);
            v = next;
        }
        if (!v)
            return tmpl_error(err, action, "index of a value that has no such entry");
        print_value(v, out);
        json_decref(v);
        return 0;
    }
    if ((strcmp(fn, "upper") == 0 || strcmp(fn, "lower") == 0) && n == 1) {
        struct mk_buf s = MK_BUF_INIT;
        print_value(args[0], &s);
        for (size_t i = 0; i < s.len; i++)
            s.data[i] = (char)(fn[0] == 'u' ? toupper((unsigned char)s.data[i])
                                            : tolower((unsigned char)s.data[i]));
        mk_buf_add(out, s.data ? s.data : "", s.len);
        mk_buf_release(&s);
        return 0;
    }
    if (strcmp(fn, "join") == 0 && n == 2 && json_is_array(args[0]) && json_is_string(args[1])) {
        size_t i;
        json_t *e;
        json_array_foreach(args[0], i, e)
        {
            if (i)
                mk_buf_adds(out, json_string_value(args[1]));
            print_value(e, out);
        }
        return 0;
    }
    _cleanup_free_ char *msg = mk_xasprintf(
        "unknown function or wrong arguments \"%s\" (json, index, upper, lower, join)", fn);
    return tmpl_error(err, action, msg);
}

static int render_action(const char *action, json_t *data, struct mk_buf *out,
                         struct mk_error **err)
{
    char *words[TEMPLATE_MAX_WORDS];
    size_t n = 0;
    json_t *args[TEMPLATE_MAX_WORDS] = {NULL};
    int r = split_words(action, words, &n, err);
    bool fn =
        r == 0 && words[0][0] != '.' && words[0][0] != '"' && !isdigit((unsigned char)words[0][0]);
    if (r == 0 && !fn && n > 1)
        r = tmpl_error(err, action, "one value, or a function and its arguments");
    for (size_t i = fn ? 1 : 0; r == 0 && i < n; i++)
        if (!(args[i] = eval_word(action, words[i], data, err)))
            r = -1;
    if (r == 0 && fn)
        r = call(action, words[0], args + 1, n - 1, out, err);
    else if (r == 0)
        print_value(args[0], out);
    for (size_t i = 0; i < n; i++) {
        free(words[i]);
        json_decref(args[i]);
    }
    return r;
}

/* One {{action}}: text before it ends at text_end ("{{-" trims), text after it starts at next
 * ("-}}" trims). */
struct action {
    const char *open, *text_end, *next;
    char *words; /* the content, trimmed */
};

/* The next action in [p, end): 0, 1 when there is none, -1 on a malformed one. */
static int next_action(const char *p, const char *end, struct action *ret, struct mk_error **err)
{
    const char *open = memmem(p, (size_t)(end - p), "{{", 2);
    if (!open)
        return 1;
    const char *close = memmem(open + 2, (size_t)(end - open - 2), "}}", 2);
    if (!close)
        return mk_error_set(err, MK_ERR_USAGE, 0, "template: unclosed action \"%.*s\"",
                            (int)(end - open), open);
    const char *a = open + 2, *b = close;
    ret->open = open;
    ret->text_end = open;
    if (*a == '-' && a[1] == ' ') {
        while (ret->text_end > p && isspace((unsigned char)ret->text_end[-1]))
            ret->text_end--;
        a++;
    }
    bool trim_after = b - a >= 2 && b[-1] == '-' && b[-2] == ' ';
    if (trim_after)
        b--;
    ret->next = close + 2;
    while (trim_after && ret->next < end && isspace((unsigned char)*ret->next))
        ret->next++;
    while (a < b && *a == ' ')
        a++;
    while (b > a && b[-1] == ' ')
        b--;
    ret->words = mk_xstrndup(a, (size_t)(b - a));
    return 0;
}

static bool is_block(const char *w, const char *kw)
{
    size_t n = strlen(kw);
    return strncmp(w, kw, n) == 0 && (w[n] == ' ' || w[n] == '\0');
}

/* From just after a {{range}} or {{if}}: where its {{else}} (or NULL) and its {{end}} are. */
static int find_end(const char *p, const char *end, struct action *ret_else, struct action *ret_end,
                    struct mk_error **err)
{
    int depth = 0;
    ret_else->open = NULL;
    for (;;) {
        struct action x;
        int r = next_action(p, end, &x, err);
        if (r != 0)
            return r < 0 ? -1 : mk_error_set(err, MK_ERR_USAGE, 0, "template: missing {{end}}");
        if (is_block(x.words, "range") || is_block(x.words, "if"))
            depth++;
        else if (strcmp(x.words, "end") == 0 && depth-- == 0)
            return free(x.words), *ret_end = x, 0;
        else if (strcmp(x.words, "else") == 0 && depth == 0)
            *ret_else = x;
        free(x.words);
        p = x.next;
    }
}

static bool truthy(json_t *v)
{
    return !(json_is_null(v) || json_is_false(v) ||
             (json_is_string(v) && json_string_length(v) == 0) ||
             (json_is_integer(v) && json_integer_value(v) == 0) ||
             (json_is_array(v) && json_array_size(v) == 0) ||
             (json_is_object(v) && json_object_size(v) == 0));
}

static int render_span(const char *p, const char *end, json_t *data, struct mk_buf *out, int depth,
                       struct mk_error **err);

/* {{range .X}}BODY{{end}} (BODY for each element, as "."), {{if .X}}A{{else}}B{{end}}. */
static int render_block(const struct action *x, json_t *data, const char *end, struct mk_buf *out,
                        int depth, const char **ret_next, struct mk_error **err)
{
    bool range = is_block(x->words, "range");
    struct action els = {0}, fin = {0};
    *ret_next = x->next;
    if (depth > 16)
        return tmpl_error(err, x->words, "nested too deep");
    if (find_end(x->next, end, &els, &fin, err) < 0)
        return -1;
    *ret_next = fin.next;
    json_t *v = eval_word(x->words, x->words + (range ? 6 : 3), data, err);
    if (!v)
        return -1;
    const char *body_end = els.open ? els.text_end : fin.text_end;
    int r = 0;
    if (range && json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (r == 0) r =
            render_span(x->next, body_end, e, out, depth + 1, err);
    } else if (range && json_is_object(v)) {
        const char **keys = sorted_keys(v);
        for (size_t i = 0; r == 0 && keys[i]; i++)
            r = render_span(x->next, body_end, json_object_get(v, keys[i]), out, depth + 1, err);
        free(keys);
    } else if (range && !json_is_null(v)) {
        r = tmpl_error(err, x->words, "range over a value that is not a list or a map");
    } else if (!range && truthy(v)) {
        r = render_span(x->next, body_end, data, out, depth + 1, err);
    } else if (!range && els.open) {
        r = render_span(els.next, fin.text_end, data, out, depth + 1, err);
    }
    json_decref(v);
    return r;
}

static int render_span(const char *p, const char *end, json_t *data, struct mk_buf *out, int depth,
                       struct mk_error **err)
{
    for (;;) {
        struct action x;
        int r = next_action(p, end, &x, err);
        if (r < 0)
            return -1;
        if (r > 0) {
            mk_buf_add(out, p, (size_t)(end - p));
            return 0;
        }
        mk_buf_add(out, p, (size_t)(x.text_end - p));
        p = x.next;
        if (is_block(x.words, "range") || is_block(x.words, "if"))
            r = render_block(&x, data, end, out, depth, &p, err);
        else if (strcmp(x.words, "end") == 0 || strcmp(x.words, "else") == 0)
            r = tmpl_error(err, x.words, "without {{range}} or {{if}}");
        else
            r = render_action(x.words, data, out, err);
        free(x.words);
        if (r < 0)
            return -1;
    }
}

int cli_template_render(const char *tmpl, json_t *data, struct mk_buf *out, struct mk_error **err)
{
    if (render_span(tmpl, tmpl + strlen(tmpl), data, out, 0, err) < 0)
        return -1;
    if (!out->data)
        mk_buf_adds(out, "");
    return 0;
}

void cli_format_init(struct cli_format *f, const char *spec)
{
    memset(f, 0, sizeof(*f));
    if (strcmp(spec, "json") == 0)
        return;
    if (mk_str_has_prefix(spec, "table")) {
        f->table = true;
        spec += strlen("table");
        while (*spec == ' ')
            spec++;
    }
    /* As docker: the two-character escapes \t and \n are a tab and a newline. */
    struct mk_buf t = MK_BUF_INIT;
    for (const char *p = spec; *p; p++) {
        if (p[0] == '\\' && (p[1] == 't' || p[1] == 'n')) {
            mk_buf_addc(&t, p[1] == 't' ? '\t' : '\n');
            p++;
        } else {
            mk_buf_addc(&t, *p);
        }
    }
    f->tmpl = mk_buf_detach(&t);
}

int cli_format_add(struct cli_format *f, json_t *item, struct mk_error **err)
{
    if (!f->tmpl) {
        char *s = json_dumps(item, JSON_COMPACT | JSON_PRESERVE_ORDER);
        mk_strv_push_take(&f->lines, s);
        return 0;
    }
    struct mk_buf out = MK_BUF_INIT;
    if (cli_template_render(f->tmpl, item, &out, err) < 0) {
        mk_buf_release(&out);
        return -1;
    }
    mk_strv_push_take(&f->lines, mk_buf_detach(&out));
    return 0;
}

/* docker's tabwriter: each tab-ended cell padded to its column's widest plus 3, at least 10. */
static void print_aligned(const struct mk_strv *lines, FILE *out)
{
    size_t w[64] = {0};
    for (size_t i = 0; i < lines->n; i++) {
        const char *p = lines->v[i];
        for (size_t c = 0; c < MK_ARRAY_SIZE(w); c++) {
            size_t len = strcspn(p, "\t\n");
            if (p[len] != '\t')
                break;
            if (len + FORMAT_PADDING > w[c])
                w[c] = len + FORMAT_PADDING;
            p += len + 1;
        }
    }
    for (size_t i = 0; i < lines->n; i++) {
        const char *p = lines->v[i];
        for (size_t c = 0; *p; c++) {
            size_t len = strcspn(p, "\t");
            if (!p[len] || c >= MK_ARRAY_SIZE(w)) {
                fputs(p, out);
                break;
            }
            size_t width = w[c] < FORMAT_MIN_WIDTH ? FORMAT_MIN_WIDTH : w[c];
            fprintf(out, "%.*s%*s", (int)len, p, (int)(width - len), "");
            p += len + 1;
        }
        fputc('\n', out);
    }
}

void cli_format_print(struct cli_format *f, json_t *headers, FILE *out)
{
    struct mk_strv all = MK_STRV_INIT;
    struct mk_buf h = MK_BUF_INIT;
    if (f->table && f->tmpl && cli_template_render(f->tmpl, headers, &h, NULL) == 0)
        mk_strv_push(&all, h.data);
    mk_buf_release(&h);
    mk_strv_copy(&all, &f->lines);
    print_aligned(&all, out);
    mk_strv_release(&all);
}

void cli_format_release(struct cli_format *f)
{
    free(f->tmpl);
    mk_strv_release(&f->lines);
}
