/* Word expansion against BuildKit's shell lexer tests (buildkit-shell/ in the conformance
 * data): envVarTest, wordsTest and every table in vectors/. */
#include "parser/internal.h"
#include "parser/parser.h"
#include "tap.h"
#include "tsv.h"

static const char *dir;

static FILE *open_data(const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/buildkit-shell/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        tap_ok(0, "open %s", path);
        exit(tap_done());
    }
    return f;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static const struct mk_strv *fixed_env(void)
{
    static struct mk_strv env = MK_STRV_INIT;
    if (!env.n) {
        mk_strv_push(&env, "PWD=/home");
        mk_strv_push(&env, "SHELL=bash");
        mk_strv_push(&env, "KOREAN=한국어");
        mk_strv_push(&env, "NULL=");
    }
    return &env;
}

/* One expansion compared with an expected result (NULL = must fail). */
static bool check_word(const char *in, const struct mk_strv *env, const char *want)
{
    char *got = NULL;
    struct mk_error *err = NULL;
    int r = mk_shell_word(in, env, '\\', &got, &err);
    bool ok = want ? (r == 0 && strcmp(got, want) == 0) : r < 0;
    if (!ok)
        tap_diag("input \"%s\": got %s \"%s\", want \"%s\"", in, r < 0 ? "error" : "ok",
                 r < 0 ? err->msg : got, want ? want : "error");
    free(got);
    mk_error_free(err);
    return ok;
}

static void test_env_var_test(void)
{
    FILE *f = open_data("envVarTest");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, n = 0, passed = 0, skipped = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (line[0] == '#')
            continue;
        char *l = trim(line);
        if (!*l)
            continue;
        char *p1 = strchr(l, '|'), *p2 = p1 ? strchr(p1 + 1, '|') : NULL;
        if (!p2 || strchr(p2 + 1, '|')) {
            tap_ok(0, "envVarTest:%d has 3 fields", lineno);
            continue;
        }
        *p1 = *p2 = '\0';
        char *plat = trim(l), *in = trim(p1 + 1), *want = trim(p2 + 1);
        if (strcmp(plat, "W") == 0) {
            skipped++;
            continue;
        }
        n++;
        bool ok = check_word(in, fixed_env(), strcmp(want, "error") == 0 ? NULL : want);
        passed += ok;
        if (!ok)
            tap_ok(0, "envVarTest:%d %s", lineno, in);
    }
    free(line);
    fclose(f);
    tap_ok(n == 228 && passed == n, "envVarTest: %d/%d A+U cases pass (%d W skipped)", passed, n,
           skipped);
}

static int w_skipped;

static bool env_var_row(char **c, int nc)
{
    (void)nc;
    if (strcmp(c[1], "W") == 0) {
        /* Windows-only: case-insensitive names. */
        w_skipped++;
        tsv_skip_row();
        return true;
    }
    json_t *in = tsv_json(c[2]), *res = tsv_json(c[4]);
    bool ok = check_word(json_string_value(in), fixed_env(),
                         strcmp(c[3], "ok") == 0 ? json_string_value(res) : NULL);
    json_decref(in);
    json_decref(res);
    return ok;
}

static void diag_words(const char *in, int r, const struct mk_strv *got)
{
    tap_diag("input \"%s\": %s, %zu words", in, r < 0 ? "error" : "ok", got->n);
    for (size_t i = 0; i < got->n; i++)
        tap_diag("  [%zu] \"%s\"", i, got->v[i]);
}

static void test_words_test(void)
{
    FILE *f = open_data("wordsTest");
    char *line = NULL;
    size_t cap = 0;
    int n = 0, passed = 0;
    struct mk_strv env = MK_STRV_INIT;
    while (getline(&line, &cap, f) > 0) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        if (line[0] == '#' || strspn(line, " \t\r") == len)
            continue;
        if (mk_str_has_prefix(line, "ENV ")) {
            char *e = line + 4;
            while (*e == ' ')
                e++;
            mk_strv_push(&env, e);
            continue;
        }
        char *bar = strchr(line, '|');
        if (!bar)
            continue;
        *bar = '\0';
        char *exp = bar + 1;
        while (*exp == ' ' || *exp == '\t')
            exp++;
        char *in = trim(line);
        struct mk_strv want = MK_STRV_INIT, got = MK_STRV_INIT;
        char *save = NULL;
        /* strtok_r would merge empty fields; expected lists never have them. */
        for (char *w = strtok_r(exp, ",", &save); w; w = strtok_r(NULL, ",", &save))
            mk_strv_push(&want, w);
        struct mk_error *err = NULL;
        int r = mk_shell_words(in, &env, '\\', &got, &err);
        bool ok;
        if (want.n == 1 && strcmp(want.v[0], "error") == 0) {
            ok = r < 0;
        } else {
            ok = r == 0 && got.n == want.n;
            for (size_t i = 0; ok && i < got.n; i++)
                ok = strcmp(got.v[i], want.v[i]) == 0;
        }
        n++;
        passed += ok;
        if (!ok) {
            tap_ok(0, "wordsTest %s", in);
            diag_words(in, r, &got);
        }
        mk_error_free(err);
        mk_strv_release(&want);
        mk_strv_release(&got);
    }
    free(line);
    fclose(f);
    mk_strv_release(&env);
    tap_ok(n == 24 && passed == n, "wordsTest: %d/%d cases pass", passed, n);
}

static bool words_row(char **c, int nc)
{
    (void)nc;
    json_t *envj = tsv_json(c[1]), *in = tsv_json(c[2]), *words = tsv_json(c[4]);
    struct mk_strv env = MK_STRV_INIT, got = MK_STRV_INIT;
    tsv_strv_from_json(envj, &env);
    struct mk_error *err = NULL;
    int r = mk_shell_words(json_string_value(in), &env, '\\', &got, &err);
    bool ok = strcmp(c[3], "ok") == 0 ? r == 0 && tsv_strv_equals_json(&got, words) : r < 0;
    if (!ok)
        diag_words(json_string_value(in), r, &got);
    mk_error_free(err);
    mk_strv_release(&env);
    mk_strv_release(&got);
    json_decref(envj);
    json_decref(in);
    json_decref(words);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool process_word_row(char **c, int nc)
{
    (void)nc;
    json_t *in = tsv_json(c[1]), *envj = tsv_json(c[2]), *res = tsv_json(c[4]),
           *matched = tsv_json(c[5]), *unmatched = tsv_json(c[6]), *contains = tsv_json(c[7]);
    struct mk_strv env = MK_STRV_INIT, used = MK_STRV_INIT, want_used = MK_STRV_INIT;
    const char *k;
    json_t *v;
    json_object_foreach(envj, k, v) mk_strv_pushf(&env, "%s=%s", k, json_string_value(v));
    char *got = NULL;
    struct mk_error *err = NULL;
    int r = mk_shell_word_used(json_string_value(in), &env, '\\', &got, &used, &err);
    bool ok;
    if (strcmp(c[3], "ok") == 0) {
        /* mk_shell_word_used reports every name looked up, found or not. */
        tsv_strv_from_json(matched, &want_used);
        tsv_strv_from_json(unmatched, &want_used);
        if (want_used.n)
            qsort(want_used.v, want_used.n, sizeof(char *), cmp_str);
        if (used.n)
            qsort(used.v, used.n, sizeof(char *), cmp_str);
        ok = r == 0 && strcmp(got, json_string_value(res)) == 0 && used.n == want_used.n;
        for (size_t i = 0; ok && i < used.n; i++)
            ok = strcmp(used.v[i], want_used.v[i]) == 0;
    } else {
        ok = r < 0 &&
             (!json_is_string(contains) || strstr(err->msg, json_string_value(contains)) != NULL);
    }
    if (!ok)
        tap_diag("%s: got %s \"%s\" (%zu names)", json_string_value(in), r < 0 ? "error" : "ok",
                 r < 0 ? err->msg : got, used.n);
    free(got);
    mk_error_free(err);
    mk_strv_release(&env);
    mk_strv_release(&used);
    mk_strv_release(&want_used);
    json_decref(in);
    json_decref(envj);
    json_decref(res);
    json_decref(matched);
    json_decref(unmatched);
    json_decref(contains);
    return ok;
}

static bool env_list_row(char **c, int nc)
{
    (void)nc;
    json_t *envj = tsv_json(c[0]), *name = tsv_json(c[1]), *value = tsv_json(c[2]);
    struct mk_strv env = MK_STRV_INIT;
    tsv_strv_from_json(envj, &env);
    char *word = mk_xasprintf("${%s}", json_string_value(name));
    bool ok = check_word(word, &env, json_string_value(value));
    free(word);
    mk_strv_release(&env);
    json_decref(envj);
    json_decref(name);
    json_decref(value);
    return ok;
}

/* Optional internal helpers: the Go regexp text does not apply to a regexp-free matcher, so
 * only each pattern's validity is checked. */
static bool pattern_row(char **c, int nc)
{
    (void)nc;
    json_t *pat = tsv_json(c[0]);
    struct mk_error *err = NULL;
    int r = parser_shell_pattern_check(json_string_value(pat), &err);
    bool ok = strcmp(c[1], "ok") == 0 ? r == 0 : r < 0;
    mk_error_free(err);
    json_decref(pat);
    return ok;
}

static bool reverse_row(char **c, int nc)
{
    (void)nc;
    json_t *pat = tsv_json(c[0]), *want = tsv_json(c[1]);
    char *got = parser_shell_reverse_pattern(json_string_value(pat));
    bool ok = strcmp(got, json_string_value(want)) == 0;
    if (!ok)
        tap_diag("reverse \"%s\": got \"%s\"", json_string_value(pat), got);
    free(got);
    json_decref(pat);
    json_decref(want);
    return ok;
}

/* Behaviour the tables do not cover: the backtick escape, error text, caps. */
static void test_extra(void)
{
    struct mk_strv env = MK_STRV_INIT;
    mk_strv_push(&env, "A=1  2");
    tap_ok(check_word("a`$A`b", &env, "a`1  2`b"), "backtick is literal with the \\ escape");
    char *got = NULL;
    struct mk_error *err = NULL;
    tap_ok(mk_shell_word("x`$A", &env, '`', &got, &err) == 0 && strcmp(got, "x$A") == 0,
           "backtick escapes $");
    free(got);
    tap_ok(mk_shell_word("${A:?boom}x${:}", &env, '\\', &got, &err) < 0 &&
               err->code == MK_ERR_PARSE &&
               strcmp(err->msg, "failed to process \"${A:?boom}x${:}\": "
                                "syntax error: bad substitution") == 0,
           "error message follows BuildKit");
    mk_error_free(err);
    err = NULL;
    tap_ok(mk_shell_word("${B:?must be set}", &env, '\\', &got, &err) < 0 &&
               strstr(err->msg, "B: must be set"),
           "${V:?msg} message");
    mk_error_free(err);
    err = NULL;
    struct mk_buf deep = MK_BUF_INIT;
    for (int i = 0; i < 200; i++)
        mk_buf_adds(&deep, "${X:-");
    for (int i = 0; i < 200; i++)
        mk_buf_adds(&deep, "}");
    tap_ok(mk_shell_word(deep.data, &env, '\\', &got, &err) < 0, "nesting depth is capped");
    mk_error_free(err);
    err = NULL;
    mk_buf_release(&deep);
    struct mk_strv words = MK_STRV_INIT;
    int r = mk_shell_words("x<<  EOF y", &env, '\\', &words, &err);
    if (r < 0 || words.n != 2)
        diag_words("x<<  EOF y", r, &words);
    tap_ok(r == 0 && words.n == 2 && strcmp(words.v[0], "x<<  EOF") == 0 &&
               strcmp(words.v[1], "y") == 0,
           "<< stays glued to its delimiter");
    mk_strv_clear(&words);
    tap_ok(mk_shell_words("a \"\" b $A", &env, '\\', &words, &err) == 0 && words.n == 4 &&
               strcmp(words.v[2], "1") == 0 && strcmp(words.v[3], "2") == 0,
           "empty quotes make no word, unquoted expansion splits");
    mk_strv_release(&words);
    /* Fuzz finding (corpus: empty-name-in-braces): "${%x}" looks up the empty name, which
     * must not be reported as a used variable. */
    struct mk_strv used = MK_STRV_INIT;
    r = mk_shell_word_used("${%x}$P", &env, '\\', &got, &used, &err);
    tap_ok(r == 0 && used.n == 1 && strcmp(used.v[0], "P") == 0, "the empty name is not reported");
    free(got);
    mk_strv_release(&used);
    mk_strv_push(&env, "P=a.b.c");
    tap_ok(check_word("${P%.*}|${P%%.*}|${P#*.}|${P##*.}|${P//./-}", &env, "a.b|a|b.c|c|a-b-c"),
           "trim and replace");
    mk_strv_release(&env);
}

int main(void)
{
    dir = tap_conformance_dir();
    test_env_var_test();
    tsv_each_row("buildkit-shell/vectors/env-var.tsv", 5, 230, env_var_row);
    tap_ok(w_skipped == 2, "env-var.tsv: the %d W rows are skipped", w_skipped);
    test_words_test();
    tsv_each_row("buildkit-shell/vectors/words.tsv", 5, 24, words_row);
    tsv_each_row("buildkit-shell/vectors/process-word.tsv", 8, 56, process_word_row);
    tsv_each_row("buildkit-shell/vectors/env-list-lookup.tsv", 3, 7, env_list_row);
    tsv_each_row("buildkit-shell/vectors/internal-pattern-regex.tsv", 3, 7, pattern_row);
    tsv_each_row("buildkit-shell/vectors/internal-reverse-pattern.tsv", 2, 5, reverse_row);
    test_extra();
    return tap_done();
}
