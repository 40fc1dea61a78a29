/* Conformance of the Dockerfile parser with BuildKit: every testfile, generated case and
 * vector table of conformance/buildkit-parser, read in place. Each dataset ends with a
 * "# DATASET: N/M" line. A row that cannot be checked counts as a failure. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "parser/internal.h"
#include "parser/parser.h"
#include "tap.h"

static char base[4096];

static char *slurp(const char *path, size_t *ret_len)
{
    _cleanup_fclose_ FILE *f = fopen(path, "rb");
    struct mk_buf b = MK_BUF_INIT;
    char chunk[65536];
    size_t n;
    if (!f)
        return NULL;
    mk_buf_add(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        mk_buf_add(&b, chunk, n);
    if (ret_len)
        *ret_len = b.len;
    return mk_buf_detach(&b);
}

static char *path_of(const char *fmt, const char *a, const char *b)
{
    return mk_xasprintf(fmt, base, a, b ? b : "");
}

/* Sorted subdirectory names of dir. */
static void list_dirs(const char *dir, struct mk_strv *ret)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            mk_strv_push(ret, e->d_name);
    for (size_t i = 0; i < ret->n; i++)
        for (size_t j = i + 1; j < ret->n; j++)
            if (strcmp(ret->v[i], ret->v[j]) > 0) {
                char *t = ret->v[i];
                ret->v[i] = ret->v[j];
                ret->v[j] = t;
            }
}

static void dataset(const char *name, int pass, int total)
{
    tap_diag("%s: %d/%d", name, pass, total);
    tap_ok(total > 0 && pass == total, "dataset %s: %d of %d pass", name, pass, total);
}

/* Parses data; returns the dump (caller frees) or NULL with *ret_err. */
static char *dump_of(const char *data, size_t len, struct mk_df **ret_df, struct mk_error **err)
{
    struct mk_df *df = NULL;
    struct mk_buf out = MK_BUF_INIT;
    if (mk_df_parse(data, len, "Dockerfile", &df, err) < 0)
        return NULL;
    mk_df_dump(df, &out);
    if (ret_df)
        *ret_df = df;
    else
        mk_df_free(df);
    return mk_buf_detach(&out);
}

static int where_line(const struct mk_error *e)
{
    int line = -1;
    if (!e || !e->where || !mk_str_has_prefix(e->where, "Dockerfile:"))
        return -1;
    if (mk_parse_int(e->where + strlen("Dockerfile:"), &line) < 0)
        return -1;
    return line;
}

static void ok_cases(const char *sub, const char *name)
{
    struct mk_strv cases = MK_STRV_INIT;
    _cleanup_free_ char *dir = path_of("%s/%s%s", sub, NULL);
    int pass = 0;
    list_dirs(dir, &cases);
    for (size_t i = 0; i < cases.n; i++) {
        _cleanup_free_ char *df_path = mk_xasprintf("%s/%s/Dockerfile", dir, cases.v[i]);
        _cleanup_free_ char *res_path = mk_xasprintf("%s/%s/result", dir, cases.v[i]);
        size_t len = 0;
        _cleanup_free_ char *data = slurp(df_path, &len);
        _cleanup_free_ char *want = slurp(res_path, NULL);
        struct mk_error *err = NULL;
        _cleanup_free_ char *got = data ? dump_of(data, len, NULL, &err) : NULL;
        bool ok = got && want && strcmp(got, want) == 0;
        pass += ok;
        if (!ok) {
            tap_ok(0, "%s %s", name, cases.v[i]);
            if (err)
                tap_diag("error: %s (%s)", err->msg, err->where ? err->where : "");
            else
                tap_diag("got:\n%s# want:\n%s", got ? got : "(null)", want ? want : "(null)");
        }
        mk_error_free(err);
    }
    dataset(name, pass, (int)cases.n);
    mk_strv_release(&cases);
}

static void negative_cases(void)
{
    struct mk_strv cases = MK_STRV_INIT;
    _cleanup_free_ char *dir = path_of("%s/%s%s", "testfiles-negative", NULL);
    int pass = 0;
    list_dirs(dir, &cases);
    for (size_t i = 0; i < cases.n; i++) {
        _cleanup_free_ char *df_path = mk_xasprintf("%s/%s/Dockerfile", dir, cases.v[i]);
        size_t len = 0;
        _cleanup_free_ char *data = slurp(df_path, &len);
        struct mk_error *err = NULL;
        _cleanup_free_ char *got = data ? dump_of(data, len, NULL, &err) : NULL;
        bool ok = data && !got && err && where_line(err) >= 0;
        pass += ok;
        if (!ok)
            tap_ok(0, "negative %s rejected with a line", cases.v[i]);
        mk_error_free(err);
    }
    dataset("testfiles-negative", pass, (int)cases.n);
    mk_strv_release(&cases);
}

static void err_cases(void)
{
    struct mk_strv cases = MK_STRV_INIT;
    _cleanup_free_ char *dir = path_of("%s/%s%s", "generated/err", NULL);
    int pass = 0;
    list_dirs(dir, &cases);
    for (size_t i = 0; i < cases.n; i++) {
        _cleanup_free_ char *df_path = mk_xasprintf("%s/%s/Dockerfile", dir, cases.v[i]);
        _cleanup_free_ char *exp_path = mk_xasprintf("%s/%s/expected-error", dir, cases.v[i]);
        size_t len = 0;
        _cleanup_free_ char *data = slurp(df_path, &len);
        _cleanup_free_ char *exp = slurp(exp_path, NULL);
        struct mk_error *err = NULL;
        _cleanup_free_ char *got = data ? dump_of(data, len, NULL, &err) : NULL;
        char msg[1024] = "", lines[64] = "";
        if (exp) {
            char *l1 = strstr(exp, "error\t"), *l2 = strstr(exp, "\nlines\t");
            if (l1 && l2) {
                snprintf(msg, sizeof(msg), "%.*s", (int)(l2 - l1 - 6), l1 + 6);
                snprintf(lines, sizeof(lines), "%s", l2 + 7);
            }
        }
        int want_line = -1;
        char *sp = strpbrk(lines, " \n");
        if (sp)
            *sp = 0;
        mk_parse_int(lines, &want_line);
        bool ok = data && !got && err && want_line >= 0 && where_line(err) == want_line &&
                  strcmp(err->msg, msg) == 0;
        pass += ok;
        if (!ok) {
            tap_ok(0, "generated/err %s", cases.v[i]);
            tap_diag("got: %s at %s; want: %s at line %d", err ? err->msg : "(success)",
                     err && err->where ? err->where : "-", msg, want_line);
        }
        mk_error_free(err);
    }
    dataset("generated/err", pass, (int)cases.n);
    mk_strv_release(&cases);
}

/* ---- TSV tables ------------------------------------------------------------------------- */

struct table {
    char *text;
    struct mk_strv header;
    struct mk_strv *rows; /* raw cells */
    size_t n_rows;
};

static void split_tabs(char *line, struct mk_strv *ret)
{
    char *save = NULL;
    for (char *c = strtok_r(line, "\t", &save); c; c = strtok_r(NULL, "\t", &save))
        mk_strv_push(ret, c);
}

static bool table_load(const char *file, struct table *t)
{
    _cleanup_free_ char *p = mk_xasprintf("%s/vectors/%s", base, file);
    memset(t, 0, sizeof(*t));
    t->text = slurp(p, NULL);
    if (!t->text)
        return false;
    char *save = NULL;
    bool first = true;
    for (char *l = strtok_r(t->text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (first) {
            split_tabs(l, &t->header);
            first = false;
            continue;
        }
        t->rows = mk_xreallocarray(t->rows, t->n_rows + 1, sizeof(*t->rows));
        t->rows[t->n_rows] = (struct mk_strv)MK_STRV_INIT;
        split_tabs(l, &t->rows[t->n_rows++]);
    }
    return true;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->n_rows; i++)
        mk_strv_release(&t->rows[i]);
    free(t->rows);
    mk_strv_release(&t->header);
    free(t->text);
}

/* A cell as JSON; bare words (ok, error, detect_syntax) become JSON strings. */
static json_t *cell(const struct table *t, size_t row, const char *col)
{
    for (size_t i = 0; i < t->header.n; i++) {
        if (strcmp(t->header.v[i], col) != 0)
            continue;
        if (i >= t->rows[row].n)
            return NULL;
        const char *raw = t->rows[row].v[i];
        json_t *j = json_loads(raw, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        return j ? j : json_string(raw);
    }
    return NULL;
}

static const char *jstr(json_t *j)
{
    return json_is_string(j) ? json_string_value(j) : NULL;
}

/* json array of strings vs a strv (with optional lengths). */
static bool same_list(json_t *want, const struct mk_strv *got, const size_t *lens)
{
    if (!json_is_array(want) || json_array_size(want) != got->n)
        return false;
    for (size_t i = 0; i < got->n; i++) {
        json_t *w = json_array_get(want, i);
        size_t wl = json_string_length(w), gl = lens ? lens[i] : strlen(got->v[i]);
        if (!json_is_string(w) || wl != gl || memcmp(json_string_value(w), got->v[i], gl) != 0)
            return false;
    }
    return true;
}

static void vec_parse_words(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("parse-words.tsv", &t)) {
        dataset("parse-words", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *in = cell(&t, r, "input"), *want = cell(&t, r, "words");
        struct mk_strv got = MK_STRV_INIT;
        bool ok = jstr(in) != NULL;
        if (ok) {
            parser_df_words(jstr(in), strlen(jstr(in)), '\\', &got);
            ok = same_list(want, &got, NULL);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "parse-words row %zu", r);
        mk_strv_release(&got);
        json_decref(in);
        json_decref(want);
    }
    dataset("parse-words", pass, (int)t.n_rows);
    table_free(&t);
}

static void vec_json_arrays(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("json-arrays.tsv", &t)) {
        dataset("json-arrays", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *in = cell(&t, r, "input"), *outcome = cell(&t, r, "outcome"),
               *want = cell(&t, r, "values");
        struct mk_strv got = MK_STRV_INIT;
        size_t *lens = NULL;
        bool ok = false;
        if (jstr(in) && jstr(outcome)) {
            /* The table gives the text after the keyword; the parser left-trims it. */
            const char *s = jstr(in);
            size_t len = json_string_length(in);
            while (len && (*s == ' ' || *s == '\t'))
                s++, len--;
            while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
            int rc = parser_df_json_array(s, len, &got, &lens);
            if (!strcmp(jstr(outcome), "ok"))
                ok = rc == 0 && same_list(want, &got, lens);
            else
                ok = rc == -1;
            /* And through the whole parser: CMD <input>. */
            _cleanup_free_ char *df = mk_xasprintf("CMD %s\n", jstr(in));
            struct mk_error *err = NULL;
            struct mk_df *d = NULL;
            int prc = mk_df_parse(df, strlen(df), "Dockerfile", &d, &err);
            if (!strcmp(jstr(outcome), "ok"))
                ok = ok && prc == 0 && d->nodes[0].json &&
                     same_list(want, &d->nodes[0].args, d->nodes[0].arg_lens);
            else
                ok = ok && prc < 0 && where_line(err) == 1;
            mk_df_free(d);
            mk_error_free(err);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "json-arrays row %zu", r);
        mk_strv_release(&got);
        free(lens);
        json_decref(in);
        json_decref(outcome);
        json_decref(want);
    }
    dataset("json-arrays", pass, (int)t.n_rows);
    table_free(&t);
}

static void vec_heredoc_word(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("heredoc-word.tsv", &t)) {
        dataset("heredoc-word", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *w = cell(&t, r, "word"), *outcome = cell(&t, r, "outcome"),
               *name = cell(&t, r, "name");
        bool ok = false;
        if (jstr(w) && jstr(outcome)) {
            struct mk_df_heredoc h = {0};
            struct mk_error *err = NULL;
            int rc = parser_df_heredoc_word(jstr(w), &h, &err);
            if (!strcmp(jstr(outcome), "heredoc"))
                ok = rc == 1 && jstr(name) && !strcmp(h.name, jstr(name));
            else if (!strcmp(jstr(outcome), "none"))
                ok = rc == 0;
            else if (!strcmp(jstr(outcome), "error"))
                ok = rc < 0 && err;
            if (rc == 1)
                parser_df_heredoc_release(&h);
            mk_error_free(err);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "heredoc-word row %zu", r);
        json_decref(w);
        json_decref(outcome);
        json_decref(name);
    }
    dataset("heredoc-word", pass, (int)t.n_rows);
    table_free(&t);
}

static void vec_heredoc_line(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("heredoc-line.tsv", &t)) {
        dataset("heredoc-line", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *line = cell(&t, r, "line"), *names = cell(&t, r, "heredoc_names");
        bool ok = false;
        if (jstr(line)) {
            struct mk_df_heredoc *docs = NULL;
            size_t n = 0;
            struct mk_error *err = NULL;
            if (parser_df_heredocs_from_line(jstr(line), &docs, &n, &err) == 0) {
                struct mk_strv got = MK_STRV_INIT;
                for (size_t i = 0; i < n; i++)
                    mk_strv_push(&got, docs[i].name);
                ok = same_list(names, &got, NULL);
                mk_strv_release(&got);
            }
            for (size_t i = 0; i < n; i++)
                parser_df_heredoc_release(&docs[i]);
            free(docs);
            mk_error_free(err);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "heredoc-line row %zu", r);
        json_decref(line);
        json_decref(names);
    }
    dataset("heredoc-line", pass, (int)t.n_rows);
    table_free(&t);
}

static char *node_dump(const struct mk_df_node *n)
{
    struct mk_df one = {0};
    struct mk_buf out = MK_BUF_INIT;
    one.nodes = (struct mk_df_node *)n;
    one.n_nodes = 1;
    mk_df_dump(&one, &out);
    /* "(...)\n" -> "(...)" */
    if (out.len)
        out.data[--out.len] = 0;
    return mk_buf_detach(&out);
}

static void vec_heredoc_extract(void)
{
    struct table t;
    int pass = 0;
    _cleanup_free_ char *p = mk_xasprintf("%s/vectors/heredoc-extract.Dockerfile", base);
    size_t len = 0;
    _cleanup_free_ char *data = slurp(p, &len);
    struct mk_df *df = NULL;
    struct mk_error *err = NULL;
    if (!table_load("heredoc-extract.tsv", &t) || !data ||
        mk_df_parse(data, len, "Dockerfile", &df, &err) < 0) {
        dataset("heredoc-extract", 0, 1);
        mk_error_free(err);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *idx = cell(&t, r, "child_index"), *sl = cell(&t, r, "start_line"),
               *el = cell(&t, r, "end_line"), *dump = cell(&t, r, "dump"),
               *docs = cell(&t, r, "heredocs");
        bool ok = json_is_integer(idx) && (size_t)json_integer_value(idx) < df->n_nodes &&
                  json_is_array(docs);
        if (ok) {
            const struct mk_df_node *n = &df->nodes[json_integer_value(idx)];
            _cleanup_free_ char *d = node_dump(n);
            ok = n->start_line == json_integer_value(sl) && n->end_line == json_integer_value(el) &&
                 jstr(dump) && !strcmp(d, jstr(dump)) && n->n_heredocs == json_array_size(docs);
            for (size_t i = 0; ok && i < n->n_heredocs; i++) {
                json_t *h = json_array_get(docs, i);
                const struct mk_df_heredoc *g = &n->heredocs[i];
                ok = !strcmp(g->name, jstr(json_object_get(h, "name"))) &&
                     !strcmp(g->content, jstr(json_object_get(h, "content"))) &&
                     (g->fd < 0 ? 0 : g->fd) == json_integer_value(json_object_get(h, "fd")) &&
                     g->expand == json_is_true(json_object_get(h, "expand")) &&
                     g->chomp == json_is_true(json_object_get(h, "chomp"));
            }
            if (!ok)
                tap_diag("got %d-%d %s", n->start_line, n->end_line, d);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "heredoc-extract row %zu", r);
        json_decref(idx);
        json_decref(sl);
        json_decref(el);
        json_decref(dump);
        json_decref(docs);
    }
    dataset("heredoc-extract", pass, (int)t.n_rows);
    mk_df_free(df);
    table_free(&t);
}

/* The two Dockerfiles whose expectations the README gives in prose. */
static void vec_heredoc_json_and_empty_continuation(void)
{
    static const char *const heredoc_json_dump = "(from \"alpine:3.6\")\n(run \"whoami\")\n"
                                                 "(run \"<<EOF\")\n(run \"<<'EOF'\")\n";
    static const char *const empty_cont_dump =
        "(from \"alpine:3.6\")\n(run \"valid     continuation\")\n"
        "(run \"something     following     more\")\n(run \"another     thing\")\n"
        "(run \"non-indented    after-comment\")\n(run \"indented     comment\")\n";
    int pass = 0, total = 0;
    {
        _cleanup_free_ char *p = mk_xasprintf("%s/vectors/heredoc-json.Dockerfile", base);
        size_t len = 0;
        _cleanup_free_ char *data = slurp(p, &len);
        struct mk_df *df = NULL;
        struct mk_error *err = NULL;
        _cleanup_free_ char *d = data ? dump_of(data, len, &df, &err) : NULL;
        bool ok = d && !strcmp(d, heredoc_json_dump);
        for (size_t i = 0; ok && i < df->n_nodes; i++)
            ok = df->nodes[i].n_heredocs == 0;
        total++;
        pass += ok;
        if (!ok)
            tap_ok(0, "heredoc-json: no heredocs in JSON form (%s)", d ? d : "parse failed");
        mk_df_free(df);
        mk_error_free(err);
    }
    struct table t;
    _cleanup_free_ char *p = mk_xasprintf("%s/vectors/empty-continuation.Dockerfile", base);
    size_t len = 0;
    _cleanup_free_ char *data = slurp(p, &len);
    struct mk_df *df = NULL;
    struct mk_error *err = NULL;
    _cleanup_free_ char *d = data ? dump_of(data, len, &df, &err) : NULL;
    total++;
    if (d && !strcmp(d, empty_cont_dump))
        pass++;
    else
        tap_ok(0, "empty-continuation dump");
    if (table_load("empty-continuation.tsv", &t)) {
        total++;
        if (df && df->n_warnings == t.n_rows)
            pass++;
        else
            tap_ok(0, "empty-continuation warning count");
        for (size_t r = 0; r < t.n_rows; r++) {
            json_t *i = cell(&t, r, "warning_index"), *s = cell(&t, r, "short"),
                   *l = cell(&t, r, "line");
            size_t wi = json_is_integer(i) ? (size_t)json_integer_value(i) : SIZE_MAX;
            bool ok = df && wi < df->n_warnings && jstr(s) &&
                      !strcmp(df->warnings[wi].msg, jstr(s)) &&
                      df->warnings[wi].line == json_integer_value(l);
            total++;
            pass += ok;
            if (!ok)
                tap_ok(0, "empty-continuation warning row %zu", r);
            json_decref(i);
            json_decref(s);
            json_decref(l);
        }
        table_free(&t);
    } else {
        total++;
    }
    mk_df_free(df);
    mk_error_free(err);
    dataset("heredoc-json + empty-continuation", pass, total);
}

static void vec_line_numbers(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("line-numbers.tsv", &t)) {
        dataset("line-numbers", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *file = cell(&t, r, "file"), *node = cell(&t, r, "node"),
               *sl = cell(&t, r, "start_line"), *el = cell(&t, r, "end_line");
        bool ok = false;
        if (jstr(file) && jstr(node)) {
            _cleanup_free_ char *p = mk_xasprintf("%s/%s", base, jstr(file));
            size_t len = 0;
            _cleanup_free_ char *data = slurp(p, &len);
            struct mk_df *df = NULL;
            struct mk_error *err = NULL;
            if (data && mk_df_parse(data, len, "Dockerfile", &df, &err) == 0) {
                int s = -1, e = -1, child = -1;
                if (!strcmp(jstr(node), "root")) {
                    s = df->nodes[0].start_line;
                    e = df->nodes[df->n_nodes - 1].end_line;
                } else if (sscanf(jstr(node), "child%d", &child) == 1 && child >= 0 &&
                           (size_t)child < df->n_nodes) {
                    s = df->nodes[child].start_line;
                    e = df->nodes[child].end_line;
                }
                ok = s == json_integer_value(sl) && e == json_integer_value(el);
            }
            mk_df_free(df);
            mk_error_free(err);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "line-numbers row %zu", r);
        json_decref(file);
        json_decref(node);
        json_decref(sl);
        json_decref(el);
    }
    dataset("line-numbers", pass, (int)t.n_rows);
    table_free(&t);
}

static void vec_name_val(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("name-val.tsv", &t)) {
        dataset("name-val", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *line = cell(&t, r, "instruction_line"), *outcome = cell(&t, r, "outcome"),
               *want = cell(&t, r, "dump_or_error");
        bool ok = false;
        if (jstr(line) && jstr(outcome) && jstr(want)) {
            struct mk_error *err = NULL;
            _cleanup_free_ char *d = dump_of(jstr(line), strlen(jstr(line)), NULL, &err);
            _cleanup_free_ char *w = mk_xasprintf("%s\n", jstr(want));
            if (!strcmp(jstr(outcome), "ok"))
                ok = d && !strcmp(d, w);
            else
                ok = !d && err && !strcmp(err->msg, jstr(want)) && where_line(err) == 1;
            mk_error_free(err);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "name-val row %zu", r);
        json_decref(line);
        json_decref(outcome);
        json_decref(want);
    }
    dataset("name-val", pass, (int)t.n_rows);
    table_free(&t);
}

static void vec_directives(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("directives.tsv", &t)) {
        dataset("directives", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *fn = cell(&t, r, "function"), *in = cell(&t, r, "input"),
               *found = cell(&t, r, "found"), *ref = cell(&t, r, "ref"),
               *cmdline = cell(&t, r, "cmdline"), *line = cell(&t, r, "line");
        bool ok = false;
        if (jstr(fn) && jstr(in)) {
            bool syntax = !strcmp(jstr(fn), "detect_syntax");
            bool known = syntax || !strcmp(jstr(fn), "parse_directive:check");
            char *gref = NULL, *gcmd = NULL;
            int gline = -1;
            bool gfound = known && parser_df_parse_directive(syntax ? "syntax" : "check", jstr(in),
                                                             json_string_length(in), syntax, &gref,
                                                             &gcmd, &gline);
            ok = known && gfound == json_is_true(found) && !strcmp(gfound ? gref : "", jstr(ref)) &&
                 !strcmp(gfound ? gcmd : "", jstr(cmdline)) && gline == json_integer_value(line);
            free(gref);
            free(gcmd);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "directives row %zu", r);
        json_decref(fn);
        json_decref(in);
        json_decref(found);
        json_decref(ref);
        json_decref(cmdline);
        json_decref(line);
    }
    dataset("directives", pass, (int)t.n_rows);
    table_free(&t);
}

static void vec_directives_all(void)
{
    struct table t;
    int pass = 0;
    if (!table_load("directives-parse-all.tsv", &t)) {
        dataset("directives-parse-all", 0, 1);
        return;
    }
    for (size_t r = 0; r < t.n_rows; r++) {
        json_t *in = cell(&t, r, "input"), *want = cell(&t, r, "directives");
        bool ok = false;
        if (jstr(in) && json_is_array(want)) {
            struct mk_strv got = MK_STRV_INIT, exp = MK_STRV_INIT;
            parser_df_directives_all(jstr(in), json_string_length(in), &got);
            for (size_t i = 0; i < json_array_size(want); i++) {
                json_t *pair = json_array_get(want, i);
                mk_strv_pushf(&exp, "%s=%s", jstr(json_array_get(pair, 0)),
                              jstr(json_array_get(pair, 1)));
            }
            ok = got.n == exp.n;
            for (size_t i = 0; ok && i < got.n; i++)
                ok = !strcmp(got.v[i], exp.v[i]);
            mk_strv_release(&got);
            mk_strv_release(&exp);
        }
        pass += ok;
        if (!ok)
            tap_ok(0, "directives-parse-all row %zu", r);
        json_decref(in);
        json_decref(want);
    }
    dataset("directives-parse-all", pass, (int)t.n_rows);
    table_free(&t);
}

/* Every .tsv table under vectors/ must be handled above: a new table is a failure until it is. */
static void vec_all_known(void)
{
    static const char *const known[] = {
        "parse-words.tsv",     "json-arrays.tsv",          "heredoc-word.tsv", "heredoc-line.tsv",
        "heredoc-extract.tsv", "empty-continuation.tsv",   "line-numbers.tsv", "name-val.tsv",
        "directives.tsv",      "directives-parse-all.tsv",
    };
    _cleanup_free_ char *dir = mk_xasprintf("%s/vectors", base);
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;
    int total = 0, pass = 0;
    while (d && (e = readdir(d))) {
        if (!mk_str_has_suffix(e->d_name, ".tsv"))
            continue;
        bool found = false;
        for (size_t i = 0; i < MK_ARRAY_SIZE(known); i++)
            found = found || !strcmp(known[i], e->d_name);
        total++;
        pass += found;
        if (!found)
            tap_ok(0, "vector table %s is checked", e->d_name);
    }
    dataset("vector tables covered", pass, total);
}

static void scanner_error(void)
{
    struct mk_buf b = MK_BUF_INIT;
    struct mk_error *err = NULL;
    struct mk_df *df = NULL;
    mk_buf_adds(&b, "\n\t\tFROM image\n\t\tLABEL test=");
    for (int i = 0; i < 65536; i++)
        mk_buf_addc(&b, 'a');
    mk_buf_addc(&b, '\n');
    int rc = mk_df_parse(b.data, b.len, "Dockerfile", &df, &err);
    tap_ok(rc < 0 && err &&
               !strcmp(err->msg, "dockerfile line greater than max allowed size of 65535"),
           "a line over 65535 bytes is an error (%s)", err ? err->msg : "accepted");
    mk_df_free(df);
    mk_error_free(err);
    mk_buf_release(&b);
}

int main(void)
{
    snprintf(base, sizeof(base), "%s/buildkit-parser", tap_conformance_dir());
    struct stat st;
    if (stat(base, &st) < 0) {
        /* Missing data is a failure, not a skip: the conformance suite is the spec. */
        tap_ok(0, "conformance data at %s: %s", base, strerror(errno));
        return tap_done();
    }
    ok_cases("testfiles", "testfiles");
    negative_cases();
    ok_cases("generated/ok", "generated/ok");
    err_cases();
    vec_parse_words();
    vec_json_arrays();
    vec_heredoc_word();
    vec_heredoc_line();
    vec_heredoc_extract();
    vec_heredoc_json_and_empty_continuation();
    vec_line_numbers();
    vec_name_val();
    vec_directives();
    vec_directives_all();
    vec_all_known();
    scanner_error();
    return tap_done();
}
