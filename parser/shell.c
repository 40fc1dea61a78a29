/* parser/shell.c - word expansion: BuildKit's shell lexer (frontend/dockerfile/shell/lex.go).
 *
 * The structure mirrors upstream's processStopOn / processDollar so that the corner cases
 * its tests pin down (escapes, quotes, unset versus empty, word splitting after expansion)
 * come out the same. Text is handled per code point; invalid UTF-8 becomes U+FFFD like Go's
 * text/scanner. Shell patterns (${V#p}, ${V/p/r}) are matched with a small NFA over code
 * points instead of Go's regexp; the semantics kept are those of the regexps upstream
 * builds: `*` and `?` never match a newline (Go's "." does not), "#"/"%" pick the shortest
 * match and "##"/"%%" the longest, "/" replaces the leftmost-longest match.
 */
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <wctype.h>

#include "parser/internal.h"
#include "parser/parser.h"

#define SH_EOF (-1)

struct sh {
    const char *s;
    size_t len, pos;
    const struct mk_strv *env;
    int escape;
    bool raw_escapes;
    bool skip_quotes; /* SkipProcessQuotes: quotes are ordinary characters */
    unsigned depth;
    struct mk_strv *used; /* names looked up, deduplicated; may be NULL */
    char *reason;         /* the failure, without the "failed to process" prefix */
};

/* Go's utf8.DecodeRune: overlong forms, surrogates and values past U+10FFFF are invalid and
 * decode as U+FFFD with width 1. */
int32_t parser_utf8_decode(const char *s, size_t len, size_t *ret_width)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c = p[0];
    *ret_width = 1;
    if (c < 0x80)
        return c;
    int n;
    int32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 1, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return 0xfffd;
    }
    if ((size_t)n >= len)
        return 0xfffd;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0xfffd;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0xfffd;
    *ret_width = (size_t)n + 1;
    return cp;
}

/* Decodes a whole string into code points (with the byte offset of each, plus one past the
 * end) for pattern matching. */
static int32_t *to_runes(const char *s, size_t len, size_t **ret_offs, size_t *ret_n)
{
    int32_t *r = mk_xreallocarray(NULL, len + 1, sizeof(*r));
    size_t *offs = mk_xreallocarray(NULL, len + 1, sizeof(*offs));
    size_t n = 0, pos = 0;
    while (pos < len) {
        size_t w;
        offs[n] = pos;
        r[n++] = parser_utf8_decode(s + pos, len - pos, &w);
        pos += w;
    }
    offs[n] = len;
    *ret_offs = offs;
    *ret_n = n;
    return r;
}

/* Go's unicode.IsSpace; negative values (end of input) are no space. */
static bool is_space(int32_t c)
{
    return c >= 0 && parser_df_is_space((uint32_t)c);
}

/* Go's utf8.EncodeRune; invalid code points become U+FFFD. */
static void put_rune(struct mk_buf *b, int32_t cp)
{
    parser_df_encode_rune(b, cp < 0 ? 0xfffd : (uint32_t)cp);
}

static locale_t letter_locale;

static void letter_locale_init(void)
{
    letter_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static bool is_letter(int32_t c)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (c == 0xfffd || is_space(c))
        return false;
    pthread_once(&once, letter_locale_init);
    if (letter_locale)
        return iswalpha_l((wint_t)c, letter_locale) != 0;
    return true;
}

static bool is_digit(int32_t c)
{
    return c >= '0' && c <= '9';
}

static int32_t peek(const struct sh *sh)
{
    size_t w;
    if (sh->pos >= sh->len)
        return SH_EOF;
    return parser_utf8_decode(sh->s + sh->pos, sh->len - sh->pos, &w);
}

static int32_t next(struct sh *sh)
{
    size_t w;
    if (sh->pos >= sh->len)
        return SH_EOF;
    int32_t c = parser_utf8_decode(sh->s + sh->pos, sh->len - sh->pos, &w);
    sh->pos += w;
    return c;
}

__attribute__((format(printf, 2, 3))) static int fail(struct sh *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(sh->reason);
    sh->reason = mk_xvasprintf(fmt, ap);
    va_end(ap);
    return -1;
}

static int check_size(struct sh *sh, const struct mk_buf *b, size_t more)
{
    if (b->len + more > MK_SHELL_MAX_OUT)
        return fail(sh, "expansion exceeds %u bytes", MK_SHELL_MAX_OUT);
    return 0;
}

/* Looks name up (last entry wins, "KEY" alone is set to empty) and records the lookup. */
static const char *get_env(struct sh *sh, const char *name)
{
    const char *v = sh->env ? mk_strv_env_get(sh->env, name) : NULL;
    /* "${%x}" looks up the empty name; it is no variable a cache key could depend on. */
    if (sh->used && *name) {
        for (size_t i = 0; i < sh->used->n; i++)
            if (strcmp(sh->used->v[i], name) == 0)
                return v;
        mk_strv_push(sh->used, name);
    }
    return v;
}

/* ---- ProcessWords' word splitting ---- */

struct words {
    struct mk_buf word;
    bool in_word;
    struct mk_strv list;
};

static void words_raw_char(struct words *w, int32_t c)
{
    if (!w)
        return;
    put_rune(&w->word, c);
    w->in_word = true;
}

static void words_char(struct words *w, int32_t c)
{
    if (!w)
        return;
    if (is_space(c) && w->in_word) {
        /* "<<" followed by blanks stays glued to the heredoc delimiter. */
        size_t end = w->word.len;
        while (end > 0 && (w->word.data[end - 1] == ' ' || w->word.data[end - 1] == '\t'))
            end--;
        if (end >= 2 && memcmp(w->word.data + end - 2, "<<", 2) == 0) {
            words_raw_char(w, c);
        } else if (w->word.len != 0) {
            mk_strv_push(&w->list, w->word.data);
            mk_buf_reset(&w->word);
            w->in_word = false;
        }
    } else if (!is_space(c)) {
        words_raw_char(w, c);
    }
}

static void words_string(struct words *w, const char *s, size_t len)
{
    size_t pos = 0;
    while (w && pos < len) {
        size_t n;
        int32_t c = parser_utf8_decode(s + pos, len - pos, &n);
        words_char(w, c);
        pos += n;
    }
}

static void words_raw_string(struct words *w, const char *s, size_t len)
{
    if (!w)
        return;
    mk_buf_add(&w->word, s, len);
    w->in_word = true;
}

static void words_finish(struct words *w)
{
    if (w->word.len > 0) {
        mk_strv_push(&w->list, w->word.data);
        mk_buf_reset(&w->word);
        w->in_word = false;
    }
}

/* ---- shell patterns ---- */

enum { PAT_LIT, PAT_ANY, PAT_STAR };

struct pat_tok {
    int type;
    int32_t c;
};

/* convertShellPatternToRegex, minus the regexp: tokens or an "invalid escape" failure. */
static int pat_compile(struct sh *sh, const char *pattern, struct pat_tok **ret, size_t *ret_n)
{
    size_t len = strlen(pattern), pos = 0, n = 0;
    _cleanup_free_ struct pat_tok *t = mk_xreallocarray(NULL, len + 1, sizeof(*t));
    while (pos < len) {
        size_t w;
        int32_t c = parser_utf8_decode(pattern + pos, len - pos, &w);
        pos += w;
        if (c == '*') {
            t[n++] = (struct pat_tok){PAT_STAR, 0};
            continue;
        }
        if (c == '?') {
            t[n++] = (struct pat_tok){PAT_ANY, 0};
            continue;
        }
        if (c == '\\') {
            /* } and / had to be escaped inside ${}; that escape is not part of the pattern. */
            if (pos < len && (pattern[pos] == '}' || pattern[pos] == '/'))
                continue;
            int32_t e = pos < len ? parser_utf8_decode(pattern + pos, len - pos, &w) : SH_EOF;
            if (e != '*' && e != '?' && e != '\\') {
                struct mk_buf b = MK_BUF_INIT;
                put_rune(&b, e == SH_EOF ? 0xfffd : e);
                fail(sh, "invalid pattern (%s) in substitution: invalid escape '\\%s'", pattern,
                     b.data);
                mk_buf_release(&b);
                return -1;
            }
            pos += w;
            c = e;
        }
        t[n++] = (struct pat_tok){PAT_LIT, c};
    }
    *ret = MK_TAKE_PTR(t);
    *ret_n = n;
    return 0;
}

static void pat_closure(const struct pat_tok *t, size_t nt, bool *set)
{
    for (size_t i = 0; i < nt; i++)
        if (set[i] && t[i].type == PAT_STAR)
            set[i + 1] = true;
}

/* Runs the pattern NFA over r[from..n) and returns the shortest (longest when greedy)
 * length of a prefix the pattern matches entirely, or -1. */
static ssize_t pat_match_prefix(const struct pat_tok *t, size_t nt, const int32_t *r, size_t from,
                                size_t n, bool greedy)
{
    _cleanup_free_ bool *cur = mk_xcalloc(nt + 1, sizeof(bool));
    _cleanup_free_ bool *nxt = mk_xcalloc(nt + 1, sizeof(bool));
    ssize_t best = -1;
    cur[0] = true;
    pat_closure(t, nt, cur);
    for (size_t k = from;; k++) {
        if (cur[nt]) {
            best = (ssize_t)(k - from);
            if (!greedy)
                return best;
        }
        if (k == n)
            break;
        bool any = false;
        memset(nxt, 0, nt + 1);
        for (size_t i = 0; i < nt; i++) {
            if (!cur[i])
                continue;
            int32_t c = r[k];
            if (t[i].type == PAT_STAR && c != '\n')
                nxt[i] = any = true;
            else if ((t[i].type == PAT_ANY && c != '\n') || (t[i].type == PAT_LIT && t[i].c == c))
                nxt[i + 1] = any = true;
        }
        if (!any)
            break;
        pat_closure(t, nt, nxt);
        bool *tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    return best;
}

char *parser_shell_reverse_pattern(const char *pattern)
{
    size_t n, *offs;
    _cleanup_free_ int32_t *r = to_runes(pattern, strlen(pattern), &offs, &n);
    _cleanup_free_ int32_t *out = mk_xreallocarray(NULL, n + 1, sizeof(*out));
    free(offs);
    for (size_t i = 0; i < n;) {
        size_t o = n - 1 - i;
        if (r[i] == '\\' && i != n - 1) {
            out[o - 1] = r[i];
            out[o] = r[i + 1];
            i += 2;
        } else {
            out[o] = r[i];
            i++;
        }
    }
    struct mk_buf b = MK_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        put_rune(&b, out[i]);
    return mk_buf_detach(&b);
}

int parser_shell_pattern_check(const char *pattern, struct mk_error **err)
{
    struct sh sh = {0};
    _cleanup_free_ struct pat_tok *t = NULL;
    size_t nt;
    if (pat_compile(&sh, pattern, &t, &nt) < 0) {
        mk_error_set(err, MK_ERR_PARSE, 0, "%s", sh.reason);
        free(sh.reason);
        return -1;
    }
    return 0;
}

/* ${V#p} ${V##p} ${V%p} ${V%%p} */
static int trim(struct sh *sh, const char *pattern, const char *value, bool suffix, bool greedy,
                struct mk_buf *out)
{
    _cleanup_free_ char *rpat = suffix ? parser_shell_reverse_pattern(pattern) : NULL;
    _cleanup_free_ struct pat_tok *t = NULL;
    size_t nt, n, *offs_raw;
    if (pat_compile(sh, suffix ? rpat : pattern, &t, &nt) < 0)
        return -1;
    _cleanup_free_ int32_t *r = to_runes(value, strlen(value), &offs_raw, &n);
    _cleanup_free_ size_t *offs = offs_raw;
    if (suffix) {
        for (size_t i = 0; i < n / 2; i++) {
            int32_t tmp = r[i];
            r[i] = r[n - 1 - i];
            r[n - 1 - i] = tmp;
        }
    }
    ssize_t m = pat_match_prefix(t, nt, r, 0, n, greedy);
    if (m < 0)
        m = 0;
    if (suffix)
        mk_buf_add(out, value, offs[n - (size_t)m]);
    else
        mk_buf_adds(out, value + offs[m]);
    return 0;
}

/* Go's Regexp.ReplaceAllString expands $0 (the match), $N / ${N} / $name (no such groups:
 * empty) and $$ in the replacement. */
static void expand_replacement(struct mk_buf *out, const char *tmpl, const char *match,
                               size_t match_len)
{
    const char *p = tmpl, *end = tmpl + strlen(tmpl);
    while (*p) {
        if (*p != '$') {
            size_t run = strcspn(p, "$");
            mk_buf_add(out, p, run);
            p += run;
            continue;
        }
        p++;
        if (*p == '$') {
            mk_buf_addc(out, '$');
            p++;
            continue;
        }
        bool brace = *p == '{';
        const char *q = brace ? p + 1 : p;
        const char *name = q;
        while (*q) {
            size_t w;
            int32_t c = parser_utf8_decode(q, (size_t)(end - q), &w);
            if (!is_letter(c) && !is_digit(c) && c != '_')
                break;
            q += w;
        }
        size_t nlen = (size_t)(q - name);
        if (nlen == 0 || (brace && *q != '}')) {
            mk_buf_addc(out, '$');
            continue;
        }
        bool all_zero_num = true, numeric = true;
        for (size_t i = 0; i < nlen; i++) {
            if (!is_digit(name[i]))
                numeric = false;
            else if (name[i] != '0')
                all_zero_num = false;
        }
        if (numeric && all_zero_num && nlen < 9)
            mk_buf_add(out, match, match_len);
        p = brace ? q + 1 : q;
    }
}

/* ${V/p/r} and ${V//p/r}: leftmost match, longest at that position. */
static int replace(struct sh *sh, const char *pattern, const char *repl, const char *value,
                   bool all, struct mk_buf *out)
{
    _cleanup_free_ struct pat_tok *t = NULL;
    size_t nt, n, *offs_raw;
    if (pat_compile(sh, pattern, &t, &nt) < 0)
        return -1;
    _cleanup_free_ int32_t *r = to_runes(value, strlen(value), &offs_raw, &n);
    _cleanup_free_ size_t *offs = offs_raw;
    size_t search = 0, last_end = 0;
    while (search <= n) {
        ssize_t m = -1;
        size_t start = search;
        for (; start <= n; start++) {
            m = pat_match_prefix(t, nt, r, start, n, true);
            if (m >= 0)
                break;
        }
        if (m < 0)
            break;
        size_t end = start + (size_t)m;
        if (!all) {
            mk_buf_add(out, value, offs[start]);
            mk_buf_adds(out, repl);
            mk_buf_adds(out, value + offs[end]);
            return check_size(sh, out, 0);
        }
        mk_buf_add(out, value + offs[last_end], offs[start] - offs[last_end]);
        /* Like Go: no replacement for an empty match right after a previous match. */
        if (end > last_end || start == 0)
            expand_replacement(out, repl, value + offs[start], offs[end] - offs[start]);
        last_end = end;
        if (check_size(sh, out, 0) < 0)
            return -1;
        search = end > search ? end : search + 1;
    }
    if (!all) {
        mk_buf_adds(out, value);
        return 0;
    }
    mk_buf_adds(out, value + offs[last_end]);
    return 0;
}

/* ---- the lexer ---- */

static int process_stop_on(struct sh *sh, int32_t stop, bool raw_escapes, struct mk_buf *out,
                           struct words *w);
static int process_dollar(struct sh *sh, struct mk_buf *out);

static int process_single_quote(struct sh *sh, struct mk_buf *out)
{
    next(sh);
    for (;;) {
        int32_t c = next(sh);
        if (c == SH_EOF)
            return fail(sh, "unexpected end of statement while looking for matching single-quote");
        if (c == '\'')
            return 0;
        put_rune(out, c);
    }
}

static int process_double_quote(struct sh *sh, struct mk_buf *out)
{
    next(sh);
    for (;;) {
        int32_t c = peek(sh);
        if (c == SH_EOF)
            return fail(sh, "unexpected end of statement while looking for matching double-quote");
        if (c == '"') {
            next(sh);
            return 0;
        }
        if (c == '$') {
            if (process_dollar(sh, out) < 0)
                return -1;
            if (check_size(sh, out, 0) < 0)
                return -1;
            continue;
        }
        c = next(sh);
        if (c == sh->escape) {
            if (sh->raw_escapes)
                put_rune(out, c);
            int32_t e = peek(sh);
            if (e == SH_EOF)
                continue; /* a trailing escape is dropped */
            if (e == '"' || e == '$' || e == sh->escape)
                c = next(sh);
        }
        put_rune(out, c);
    }
}

/* A name: letters, digits and _; a leading digit run or one special parameter char. */
static void process_name(struct sh *sh, struct mk_buf *name)
{
    int32_t c;
    while ((c = peek(sh)) != SH_EOF) {
        if (name->len == 0 && is_digit(c)) {
            while ((c = peek(sh)) != SH_EOF && is_digit(c))
                put_rune(name, next(sh));
            return;
        }
        if (name->len == 0 && c < 0x80 && c != 0 && strchr("@*#?-$!0", (int)c)) {
            put_rune(name, next(sh));
            return;
        }
        if (!is_letter(c) && !is_digit(c) && c != '_')
            return;
        put_rune(name, next(sh));
    }
}

static int process_braced(struct sh *sh, struct mk_buf *out)
{
    next(sh); /* { */
    int32_t c = peek(sh);
    if (c == SH_EOF)
        return fail(sh, "syntax error: missing '}'");
    if (c == '{' || c == '}' || c == ':')
        return fail(sh, "syntax error: bad substitution");

    struct mk_buf name_buf = MK_BUF_INIT;
    process_name(sh, &name_buf);
    _cleanup_free_ char *name = mk_buf_detach(&name_buf);
    int32_t ch = next(sh);
    struct mk_buf mods = MK_BUF_INIT;
    put_rune(&mods, ch == SH_EOF ? 0xfffd : ch);
    _cleanup_free_ char *chs = mk_buf_detach(&mods);
    bool null_is_unset = false;

    if (ch == '}') {
        const char *v = get_env(sh, name);
        mk_buf_adds(out, v ? v : "");
        return 0;
    }
    if (ch == ':' || ch == '+' || ch == '-' || ch == '?' || ch == '#' || ch == '%') {
        if (ch == ':') {
            null_is_unset = true;
            ch = next(sh);
            struct mk_buf m2 = MK_BUF_INIT;
            mk_buf_adds(&m2, chs);
            if (ch != SH_EOF)
                put_rune(&m2, ch);
            free(chs);
            chs = mk_buf_detach(&m2);
        }
        struct mk_buf word_buf = MK_BUF_INIT;
        int r = process_stop_on(sh, '}', ch == '#' || ch == '%', &word_buf, NULL);
        _cleanup_free_ char *word = mk_buf_detach(&word_buf);
        if (r < 0) {
            if (peek(sh) == SH_EOF)
                return fail(sh, "syntax error: missing '}'");
            return -1;
        }
        const char *v = get_env(sh, name);
        bool set = v != NULL;
        if (!v)
            v = "";
        switch (ch) {
        case '-':
            mk_buf_adds(out, !set || (null_is_unset && !*v) ? word : v);
            return 0;
        case '+':
            if (set && !(null_is_unset && !*v))
                mk_buf_adds(out, word);
            return 0;
        case '?':
            if (!set)
                return fail(sh, "%s: %s", name, *word ? word : "is not allowed to be unset");
            if (null_is_unset && !*v)
                return fail(sh, "%s: %s", name, *word ? word : "is not allowed to be empty");
            mk_buf_adds(out, v);
            return 0;
        case '#':
        case '%':
            if (!null_is_unset) {
                const char *pat = word;
                bool greedy = false;
                if (*pat == (char)ch) {
                    greedy = true;
                    pat++;
                }
                return trim(sh, pat, v, ch == '%', greedy, out);
            }
            break;
        default:
            break;
        }
        return fail(sh, "unsupported modifier (%s) in substitution", chs);
    }
    if (ch == '/') {
        bool all = peek(sh) == '/';
        if (all)
            next(sh);
        struct mk_buf pat_buf = MK_BUF_INIT;
        int r = process_stop_on(sh, '/', true, &pat_buf, NULL);
        _cleanup_free_ char *pat = mk_buf_detach(&pat_buf);
        if (r < 0) {
            if (peek(sh) == SH_EOF)
                return fail(sh, "syntax error: missing '/' in ${}");
            return -1;
        }
        struct mk_buf repl_buf = MK_BUF_INIT;
        r = process_stop_on(sh, '}', true, &repl_buf, NULL);
        _cleanup_free_ char *repl = mk_buf_detach(&repl_buf);
        if (r < 0) {
            if (peek(sh) == SH_EOF)
                return fail(sh, "syntax error: missing '}'");
            return -1;
        }
        const char *v = get_env(sh, name);
        return replace(sh, pat, repl, v ? v : "", all, out);
    }
    return fail(sh, "unsupported modifier (%s) in substitution", chs);
}

static int process_dollar(struct sh *sh, struct mk_buf *out)
{
    next(sh); /* $ */
    if (peek(sh) != '{') {
        struct mk_buf name_buf = MK_BUF_INIT;
        process_name(sh, &name_buf);
        _cleanup_free_ char *name = mk_buf_detach(&name_buf);
        if (!*name) {
            mk_buf_addc(out, '$');
            return 0;
        }
        const char *v = get_env(sh, name);
        mk_buf_adds(out, v ? v : "");
        return 0;
    }
    if (sh->depth >= MK_SHELL_MAX_DEPTH)
        return fail(sh, "substitutions nested deeper than %d", MK_SHELL_MAX_DEPTH);
    sh->depth++;
    int r = process_braced(sh, out);
    sh->depth--;
    return r;
}

static int process_stop_on(struct sh *sh, int32_t stop, bool raw_escapes, struct mk_buf *out,
                           struct words *w)
{
    bool saved_raw = sh->raw_escapes;
    int r = 0;
    sh->raw_escapes = raw_escapes;
    for (;;) {
        int32_t c = peek(sh);
        if (c == SH_EOF)
            break;
        if (stop != SH_EOF && c == stop) {
            next(sh);
            goto out;
        }
        if (c == '$' || (!sh->skip_quotes && (c == '\'' || c == '"'))) {
            struct mk_buf tmp = MK_BUF_INIT;
            if (c == '$')
                r = process_dollar(sh, &tmp);
            else if (c == '\'')
                r = process_single_quote(sh, &tmp);
            else
                r = process_double_quote(sh, &tmp);
            if (r == 0)
                r = check_size(sh, out, tmp.len);
            if (r == 0) {
                mk_buf_add(out, tmp.data ? tmp.data : "", tmp.len);
                if (c == '$')
                    words_string(w, tmp.data, tmp.len);
                else
                    words_raw_string(w, tmp.data ? tmp.data : "", tmp.len);
            }
            mk_buf_release(&tmp);
            if (r < 0)
                goto out;
            continue;
        }
        c = next(sh);
        if (c == sh->escape) {
            if (sh->raw_escapes) {
                words_raw_char(w, c);
                put_rune(out, c);
            }
            c = next(sh);
            if (c == SH_EOF)
                break;
            words_raw_char(w, c);
        } else {
            words_char(w, c);
        }
        put_rune(out, c);
        if ((r = check_size(sh, out, 0)) < 0)
            goto out;
    }
    if (stop != SH_EOF) {
        struct mk_buf sb = MK_BUF_INIT;
        put_rune(&sb, stop);
        r = fail(sh, "unexpected end of statement while looking for matching %s", sb.data);
        mk_buf_release(&sb);
    }
out:
    sh->raw_escapes = saved_raw;
    return r;
}

static int process(const char *word, const struct mk_strv *env, char escape, bool skip_quotes,
                   struct mk_buf *out, struct words *w, struct mk_strv *used, struct mk_error **err)
{
    struct sh sh = {
        .s = word,
        .len = strlen(word),
        .env = env,
        .escape = (unsigned char)escape,
        .skip_quotes = skip_quotes,
        .used = used,
    };
    /* Go's text/scanner skips a leading byte order mark. */
    if (mk_str_has_prefix(word, "\xef\xbb\xbf"))
        sh.pos = 3;
    mk_buf_add(out, "", 0);
    if (process_stop_on(&sh, SH_EOF, false, out, w) < 0) {
        mk_error_set(err, MK_ERR_PARSE, 0, "failed to process \"%s\": %s", word, sh.reason);
        free(sh.reason);
        return -1;
    }
    return 0;
}

int mk_shell_word_used(const char *word, const struct mk_strv *env, char escape, char **ret,
                       struct mk_strv *ret_used, struct mk_error **err)
{
    struct mk_buf out = MK_BUF_INIT;
    struct mk_strv used = MK_STRV_INIT;
    if (process(word, env, escape, false, &out, NULL, &used, err) < 0) {
        mk_buf_release(&out);
        mk_strv_release(&used);
        return -1;
    }
    if (ret_used)
        mk_strv_copy(ret_used, &used);
    mk_strv_release(&used);
    *ret = mk_buf_detach(&out);
    return 0;
}

int mk_shell_word(const char *word, const struct mk_strv *env, char escape, char **ret,
                  struct mk_error **err)
{
    return mk_shell_word_used(word, env, escape, ret, NULL, err);
}

int mk_shell_words(const char *word, const struct mk_strv *env, char escape,
                   struct mk_strv *ret_words, struct mk_error **err)
{
    struct mk_buf out = MK_BUF_INIT;
    struct words w = {MK_BUF_INIT, false, MK_STRV_INIT};
    mk_buf_add(&w.word, "", 0);
    int r = process(word, env, escape, false, &out, &w, NULL, err);
    if (r == 0) {
        words_finish(&w);
        mk_strv_copy(ret_words, &w.list);
    }
    mk_buf_release(&out);
    mk_buf_release(&w.word);
    mk_strv_release(&w.list);
    return r;
}

int mk_shell_word_keep_quotes(const char *word, const struct mk_strv *env, char **ret,
                              struct mk_error **err)
{
    struct mk_buf out = MK_BUF_INIT;
    if (process(word, env, '\\', true, &out, NULL, NULL, err) < 0) {
        mk_buf_release(&out);
        return -1;
    }
    *ret = mk_buf_detach(&out);
    return 0;
}
