/* .dockerignore against moby/patternmatcher's tests (dockerignore/ in the conformance data):
 * matches.tsv, readall.tsv, new-patterns.tsv and internal-compile.tsv. */
#include "parser/internal.h"
#include "parser/parser.h"
#include "tap.h"
#include "tsv.h"

/* Matches and MatchesOrParentMatches: New, then the match; error = either fails. The walker
 * relies on the same call, so this also covers the tree-walk requirement of the table. */
static bool matches_row(char **c, int nc)
{
    (void)nc;
    json_t *pats = tsv_json(c[2]), *path = tsv_json(c[3]);
    struct mk_strv pv = MK_STRV_INIT;
    tsv_strv_from_json(pats, &pv);
    struct mk_ignore *ig = NULL;
    struct mk_error *err = NULL;
    bool m = false, m2 = false;
    int r = mk_ignore_new(&pv, &ig, &err);
    if (r == 0) {
        r = mk_ignore_matches(ig, json_string_value(path), &m, &err);
        /* A second call must answer the same way (upstream regression test). */
        struct mk_error *err2 = NULL;
        int r2 = mk_ignore_matches(ig, json_string_value(path), &m2, &err2);
        if (r2 != r || (r == 0 && m2 != m))
            r = -2;
        mk_error_free(err2);
    }
    bool ok;
    if (strcmp(c[4], "error") == 0)
        ok = r == -1 && err && err->code == MK_ERR_PARSE;
    else
        ok = r == 0 && m == (strcmp(c[4], "match") == 0);
    if (!ok)
        tap_diag("%s %s: got %s", c[2], c[3],
                 r < 0 ? (err ? err->msg : "inconsistent")
                 : m   ? "match"
                       : "nomatch");
    mk_ignore_free(ig);
    mk_error_free(err);
    mk_strv_release(&pv);
    json_decref(pats);
    json_decref(path);
    return ok;
}

static bool readall_row(char **c, int nc)
{
    (void)nc;
    json_t *content = tsv_json(c[1]), *want = tsv_json(c[2]);
    struct mk_strv got = MK_STRV_INIT;
    struct mk_error *err = NULL;
    int r = mk_ignore_read(json_string_value(content), json_string_length(content), &got, &err);
    bool ok = r == 0 && tsv_strv_equals_json(&got, want);
    if (!ok)
        for (size_t i = 0; i < got.n; i++)
            tap_diag("  got [%zu] \"%s\"", i, got.v[i]);
    mk_strv_release(&got);
    mk_error_free(err);
    json_decref(content);
    json_decref(want);
    return ok;
}

static bool new_patterns_row(char **c, int nc)
{
    (void)nc;
    json_t *in = tsv_json(c[1]), *cleaned = tsv_json(c[3]), *has = tsv_json(c[4]),
           *note = tsv_json(c[5]);
    struct mk_strv pv = MK_STRV_INIT, got = MK_STRV_INIT;
    tsv_strv_from_json(in, &pv);
    struct mk_ignore *ig = NULL;
    struct mk_error *err = NULL;
    int r = mk_ignore_new(&pv, &ig, &err);
    bool ok;
    if (strcmp(c[2], "ok") == 0) {
        ok = r == 0;
        if (ok) {
            parser_ignore_patterns(ig, &got);
            ok = tsv_strv_equals_json(&got, cleaned) &&
                 mk_ignore_has_exceptions(ig) == json_is_true(has);
        }
    } else {
        ok = r < 0 && strcmp(err->msg, json_string_value(note)) == 0;
    }
    if (!ok)
        for (size_t i = 0; i < got.n; i++)
            tap_diag("  got [%zu] \"%s\"", i, got.v[i]);
    mk_ignore_free(ig);
    mk_error_free(err);
    mk_strv_release(&pv);
    mk_strv_release(&got);
    json_decref(in);
    json_decref(cleaned);
    json_decref(has);
    json_decref(note);
    return ok;
}

/* The match kind and Go regexp text are built exactly as upstream does (our matcher then
 * parses that text), so the whole table applies. */
static bool compile_row(char **c, int nc)
{
    (void)nc;
    json_t *pat = tsv_json(c[0]), *re = tsv_json(c[2]);
    char *got_re = NULL;
    const char *type = parser_ignore_compile_debug(json_string_value(pat), &got_re);
    bool ok =
        strcmp(type, c[1]) == 0 &&
        (json_is_null(re) ? got_re == NULL : got_re && strcmp(got_re, json_string_value(re)) == 0);
    if (!ok)
        tap_diag("%s: got %s %s", c[0], type, got_re ? got_re : "null");
    free(got_re);
    json_decref(pat);
    json_decref(re);
    return ok;
}

/* Cases beyond the tables: walking helpers and caps. */
static void test_extra(void)
{
    struct mk_strv pv = MK_STRV_INIT;
    struct mk_ignore *ig = NULL;
    struct mk_error *err = NULL;
    mk_strv_push(&pv, "foo*");
    mk_strv_push(&pv, "!foo/bar2");
    tap_ok(mk_ignore_new(&pv, &ig, &err) == 0, "new");
    tap_ok(mk_ignore_has_exceptions(ig), "has exceptions");
    tap_ok(mk_ignore_dir_may_have_exceptions(ig, "foo"), "foo may hold exceptions");
    tap_ok(!mk_ignore_dir_may_have_exceptions(ig, "foo2"), "foo2 holds none");
    tap_ok(!mk_ignore_dir_may_have_exceptions(ig, "fo"), "prefix of a name is not a parent");
    bool m = true;
    tap_ok(mk_ignore_matches(ig, "foo/bar2", &m, &err) == 0 && !m, "exception re-includes");
    tap_ok(mk_ignore_matches(ig, "./foo/x/../bar", &m, &err) == 0 && m, "path cleaned first");
    tap_ok(mk_ignore_matches(ig, ".", &m, &err) == 0 && !m, "root never excluded");
    mk_ignore_free(ig);
    mk_strv_clear(&pv);
    mk_strv_push(&pv, "build");
    mk_strv_push(&pv, "!build/keep/**");
    tap_ok(mk_ignore_new(&pv, &ig, &err) == 0 && mk_ignore_dir_may_have_exceptions(ig, "build") &&
               mk_ignore_dir_may_have_exceptions(ig, "build/keep") &&
               !mk_ignore_dir_may_have_exceptions(ig, "build/other"),
           "a trailing /** is ignored when comparing exceptions with directories");
    mk_ignore_free(ig);
    mk_strv_push(&pv, "!**/important.txt");
    tap_ok(mk_ignore_new(&pv, &ig, &err) == 0 &&
               mk_ignore_dir_may_have_exceptions(ig, "build/other"),
           "a glob exception may re-include anything: every excluded dir is walked");
    mk_ignore_free(ig);
    mk_strv_release(&pv);

    mk_strv_push(&pv, "a\\yb");
    tap_ok(mk_ignore_new(&pv, &ig, &err) == 0 && mk_ignore_matches(ig, "ayb", &m, &err) < 0,
           "escape RE2 rejects fails at match time");
    mk_ignore_free(ig);
    mk_error_free(err);
    err = NULL;
    mk_strv_clear(&pv);
    mk_strv_push(&pv, "[*]x");
    tap_ok(mk_ignore_new(&pv, &ig, &err) == 0 && mk_ignore_matches(ig, "[/]x", &m, &err) == 0 && m,
           "a * inside a class follows upstream's regexp text");
    mk_ignore_free(ig);
    mk_strv_release(&pv);

    struct mk_buf big = MK_BUF_INIT;
    for (int i = 0; i < 70000; i++)
        mk_buf_addc(&big, 'a');
    struct mk_strv got = MK_STRV_INIT;
    tap_ok(mk_ignore_read(big.data, big.len, &got, &err) < 0 && err->code == MK_ERR_INVALID,
           "overlong line is refused");
    mk_error_free(err);
    mk_buf_release(&big);
    mk_strv_release(&got);
}

int main(void)
{
    tsv_each_row("dockerignore/matches.tsv", 5, 138, matches_row);
    tsv_each_row("dockerignore/readall.tsv", 3, 12, readall_row);
    tsv_each_row("dockerignore/new-patterns.tsv", 6, 8, new_patterns_row);
    tsv_each_row("dockerignore/internal-compile.tsv", 3, 21, compile_row);
    test_extra();
    return tap_done();
}
