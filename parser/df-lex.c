/* parser/df-lex.c - the word-level helpers of the Dockerfile parser: ARG/ENV/LABEL "words",
 * heredoc detection and the parser directives.
 *
 * Heredoc detection needs a shell lexer with raw quotes and escapes and unset variables kept
 * as written. BuildKit's parser uses its shell package for that; like the parser package we
 * keep a small private lexer here, since with no variables defined only the splitting,
 * quoting and error behaviour matter.
 */
#include <string.h>

#include "parser/internal.h"

#define RUNE_EOF UINT32_MAX

/* ---- parseWords ---------------------------------------------------------------------------- */

void parser_df_words(const char *s, size_t len, char escape, struct mk_strv *ret_words)
{
    enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
    struct mk_buf word = MK_BUF_INIT;
    uint32_t quote = 0, ch = 0;
    bool blank_ok = false;
    size_t w = 0;

    mk_buf_add(&word, "", 0);
    for (size_t pos = 0; pos <= len; pos += w) {
        if (pos != len)
            ch = (uint32_t)parser_utf8_decode(s + pos, len - pos, &w);
        if (phase == IN_SPACES) {
            if (pos == len)
                break;
            if (parser_df_is_space(ch))
                continue;
            phase = IN_WORD;
        }
        if (pos == len) {
            if (blank_ok || word.len > 0)
                mk_strv_push(ret_words, word.data);
            break;
        }
        if (phase == IN_WORD) {
            if (parser_df_is_space(ch)) {
                phase = IN_SPACES;
                if (blank_ok || word.len > 0)
                    mk_strv_push(ret_words, word.data);
                mk_buf_reset(&word);
                mk_buf_add(&word, "", 0);
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = IN_QUOTE;
            }
            if (ch == (uint32_t)escape) {
                if (pos + w == len)
                    continue;
                /* Unquoted, the escape and the escaped character both stay in the word. */
                parser_df_encode_rune(&word, ch);
                pos += w;
                ch = (uint32_t)parser_utf8_decode(s + pos, len - pos, &w);
            }
            parser_df_encode_rune(&word, ch);
            continue;
        }
        /* IN_QUOTE */
        if (ch == quote)
            phase = IN_WORD;
        if (ch == (uint32_t)escape && quote != '\'') {
            if (pos + w == len) {
                phase = IN_WORD;
                continue;
            }
            pos += w;
            parser_df_encode_rune(&word, ch);
            ch = (uint32_t)parser_utf8_decode(s + pos, len - pos, &w);
        }
        parser_df_encode_rune(&word, ch);
    }
    mk_buf_release(&word);
}

/* ---- the private shell lexer for heredocs ----------------------------------------------- */

struct lex {
    const char *s;
    size_t len, pos;
    bool raw_quotes, raw_escapes;
    const char *errmsg;
};

struct lex_words {
    struct mk_buf word;
    struct mk_strv words;
    bool in_word;
};

static uint32_t lex_peek(struct lex *l)
{
    size_t w;
    if (l->pos >= l->len)
        return RUNE_EOF;
    return (uint32_t)parser_utf8_decode(l->s + l->pos, l->len - l->pos, &w);
}

static uint32_t lex_next(struct lex *l)
{
    size_t w;
    if (l->pos >= l->len)
        return RUNE_EOF;
    uint32_t r = (uint32_t)parser_utf8_decode(l->s + l->pos, l->len - l->pos, &w);
    l->pos += w;
    return r;
}

static void words_add_raw_char(struct lex_words *w, uint32_t ch)
{
    parser_df_encode_rune(&w->word, ch);
    w->in_word = true;
}

static void words_add_char(struct lex_words *w, uint32_t ch)
{
    if (parser_df_is_space(ch) && w->in_word) {
        if (w->word.len != 0) {
            mk_strv_push(&w->words, w->word.data);
            mk_buf_reset(&w->word);
            mk_buf_add(&w->word, "", 0);
            w->in_word = false;
        }
    } else if (!parser_df_is_space(ch)) {
        words_add_raw_char(w, ch);
    }
}

static void words_add_string(struct lex_words *w, const char *s, size_t len)
{
    size_t n;
    for (size_t i = 0; i < len; i += n)
        words_add_char(w, (uint32_t)parser_utf8_decode(s + i, len - i, &n));
}

static void words_finish(struct lex_words *w)
{
    if (w->word.len > 0) {
        mk_strv_push(&w->words, w->word.data);
        mk_buf_reset(&w->word);
        mk_buf_add(&w->word, "", 0);
        w->in_word = false;
    }
}

static int lex_stop_on(struct lex *l, uint32_t stop, bool raw_escapes, struct mk_buf *result,
                       struct lex_words *words, int depth);

static int lex_fail(struct lex *l, const char *msg)
{
    if (!l->errmsg)
        l->errmsg = msg;
    return -1;
}

static int lex_single_quote(struct lex *l, struct mk_buf *out)
{
    uint32_t ch = lex_next(l);
    if (l->raw_quotes)
        parser_df_encode_rune(out, ch);
    for (;;) {
        ch = lex_next(l);
        if (ch == RUNE_EOF)
            return lex_fail(l, "unexpected end of statement while looking for matching "
                               "single-quote");
        if (ch == '\'') {
            if (l->raw_quotes)
                parser_df_encode_rune(out, ch);
            return 0;
        }
        parser_df_encode_rune(out, ch);
    }
}

static void lex_name(struct lex *l, struct mk_buf *name)
{
    uint32_t ch = lex_peek(l);
    if (ch != RUNE_EOF && ch >= '0' && ch <= '9') {
        while ((ch = lex_peek(l)) != RUNE_EOF && ch >= '0' && ch <= '9')
            parser_df_encode_rune(name, lex_next(l));
        return;
    }
    if (ch != RUNE_EOF && strchr("@*#?-$!", (int)ch) && ch != 0) {
        parser_df_encode_rune(name, lex_next(l));
        return;
    }
    while ((ch = lex_peek(l)) != RUNE_EOF) {
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '_' ||
                     (ch >= 0x80 && ch != 0xFFFD && !parser_df_is_space(ch));
        if (!alnum)
            break;
        parser_df_encode_rune(name, lex_next(l));
    }
}

/* With no variables defined and unset ones kept, a substitution comes back as written;
 * only its syntax errors matter. */
static int lex_dollar(struct lex *l, struct mk_buf *out, int depth)
{
    struct mk_buf name = MK_BUF_INIT;
    int r = 0;

    mk_buf_add(&name, "", 0);
    lex_next(l);
    if (lex_peek(l) != '{') {
        lex_name(l, &name);
        mk_buf_addc(out, '$');
        mk_buf_add(out, name.data, name.len);
        goto out;
    }
    lex_next(l);
    uint32_t ch = lex_peek(l);
    if (ch == RUNE_EOF) {
        r = lex_fail(l, "syntax error: missing '}'");
        goto out;
    }
    if (ch == '{' || ch == '}' || ch == ':') {
        r = lex_fail(l, "syntax error: bad substitution");
        goto out;
    }
    lex_name(l, &name);
    ch = lex_next(l);
    mk_buf_adds(out, "${");
    mk_buf_add(out, name.data, name.len);
    if (ch == '}') {
        mk_buf_addc(out, '}');
        goto out;
    }
    if (ch == ':' || (ch != RUNE_EOF && ch != 0 && strchr("+-?#%", (int)ch))) {
        parser_df_encode_rune(out, ch);
        if (ch == ':') {
            ch = lex_next(l);
            if (ch != RUNE_EOF)
                parser_df_encode_rune(out, ch);
        }
        struct mk_buf word = MK_BUF_INIT;
        mk_buf_add(&word, "", 0);
        r = lex_stop_on(l, '}', ch == '#' || ch == '%', &word, NULL, depth + 1);
        mk_buf_add(out, word.data, word.len);
        mk_buf_release(&word);
        if (r < 0 && lex_peek(l) == RUNE_EOF) {
            l->errmsg = NULL;
            r = lex_fail(l, "syntax error: missing '}'");
        }
        mk_buf_addc(out, '}');
        goto out;
    }
    if (ch == '/') {
        struct mk_buf word = MK_BUF_INIT;
        mk_buf_add(&word, "", 0);
        if (lex_peek(l) == '/')
            lex_next(l);
        r = lex_stop_on(l, '/', true, &word, NULL, depth + 1);
        if (r == 0)
            r = lex_stop_on(l, '}', true, &word, NULL, depth + 1);
        mk_buf_add(out, word.data, word.len);
        mk_buf_release(&word);
        if (r < 0 && lex_peek(l) == RUNE_EOF) {
            l->errmsg = NULL;
            r = lex_fail(l, "syntax error: missing '}'");
        }
        goto out;
    }
    r = lex_fail(l, "unsupported modifier in substitution");
out:
    mk_buf_release(&name);
    return r;
}

static int lex_double_quote(struct lex *l, struct mk_buf *out, int depth)
{
    uint32_t ch = lex_next(l);
    if (l->raw_quotes)
        parser_df_encode_rune(out, ch);
    for (;;) {
        ch = lex_peek(l);
        if (ch == RUNE_EOF)
            return lex_fail(l, "unexpected end of statement while looking for matching "
                               "double-quote");
        if (ch == '"') {
            lex_next(l);
            if (l->raw_quotes)
                parser_df_encode_rune(out, ch);
            return 0;
        }
        if (ch == '$') {
            if (lex_dollar(l, out, depth) < 0)
                return -1;
            continue;
        }
        ch = lex_next(l);
        if (ch == '\\') {
            if (l->raw_escapes)
                parser_df_encode_rune(out, ch);
            uint32_t next = lex_peek(l);
            if (next == RUNE_EOF)
                continue;
            if (next == '"' || next == '$' || next == '\\')
                ch = lex_next(l);
        }
        parser_df_encode_rune(out, ch);
    }
}

/* "<<" takes the blanks after it into the same word, so "<<  EOF" stays one word. */
static void lex_possible_heredoc(struct lex *l, struct mk_buf *out)
{
    lex_next(l);
    mk_buf_addc(out, '<');
    if (lex_peek(l) != '<')
        return;
    lex_next(l);
    mk_buf_addc(out, '<');
    while (lex_peek(l) == ' ' || lex_peek(l) == '\t')
        parser_df_encode_rune(out, lex_next(l));
}

static int lex_stop_on(struct lex *l, uint32_t stop, bool raw_escapes, struct mk_buf *result,
                       struct lex_words *words, int depth)
{
    if (depth > 64)
        return lex_fail(l, "substitutions nested too deeply");
    while (lex_peek(l) != RUNE_EOF) {
        uint32_t ch = lex_peek(l);
        if (stop != RUNE_EOF && ch == stop) {
            lex_next(l);
            return 0;
        }
        if (ch == '\'' || ch == '"' || ch == '$' || ch == '<') {
            struct mk_buf tmp = MK_BUF_INIT;
            int r = 0;
            mk_buf_add(&tmp, "", 0);
            if (ch == '<')
                lex_possible_heredoc(l, &tmp);
            else if (ch == '\'')
                r = lex_single_quote(l, &tmp);
            else if (ch == '"')
                r = lex_double_quote(l, &tmp, depth);
            else
                r = lex_dollar(l, &tmp, depth);
            if (r < 0) {
                mk_buf_release(&tmp);
                return -1;
            }
            mk_buf_add(result, tmp.data, tmp.len);
            if (words) {
                if (ch == '$') {
                    words_add_string(words, tmp.data, tmp.len);
                } else {
                    mk_buf_add(&words->word, tmp.data, tmp.len);
                    words->in_word = true;
                }
            }
            mk_buf_release(&tmp);
            continue;
        }
        ch = lex_next(l);
        if (ch == '\\') {
            if (raw_escapes) {
                if (words)
                    words_add_raw_char(words, ch);
                parser_df_encode_rune(result, ch);
            }
            ch = lex_next(l);
            if (ch == RUNE_EOF)
                break;
            if (words)
                words_add_raw_char(words, ch);
        } else if (words) {
            words_add_char(words, ch);
        }
        parser_df_encode_rune(result, ch);
    }
    if (stop != RUNE_EOF)
        return lex_fail(l, stop == '}' ? "unexpected end of statement while looking for "
                                         "matching }"
                                       : "unexpected end of statement while looking for "
                                         "matching /");
    return 0;
}

/* ProcessWords with an empty environment and SkipUnsetEnv. */
static int lex_words(const char *s, bool raw_quotes, bool raw_escapes, struct mk_strv *ret,
                     const char **ret_errmsg)
{
    struct lex l = {s, strlen(s), 0, raw_quotes, raw_escapes, NULL};
    struct lex_words w = {MK_BUF_INIT, MK_STRV_INIT, false};
    struct mk_buf result = MK_BUF_INIT;

    mk_buf_add(&w.word, "", 0);
    int r = lex_stop_on(&l, RUNE_EOF, raw_escapes, &result, &w, 0);
    if (r == 0) {
        words_finish(&w);
        mk_strv_copy(ret, &w.words);
    } else if (ret_errmsg) {
        *ret_errmsg = l.errmsg;
    }
    mk_buf_release(&result);
    mk_buf_release(&w.word);
    mk_strv_release(&w.words);
    return r;
}

/* ---- heredocs ------------------------------------------------------------------------------ */

void parser_df_heredoc_release(struct mk_df_heredoc *h)
{
    free(h->name);
    free(h->content);
    h->name = h->content = NULL;
}

static size_t count_quotes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\'' || *s == '"';
    return n;
}

int parser_df_heredoc_word(const char *word, struct mk_df_heredoc *ret, struct mk_error **err)
{
    /* ^(\d*)<<(-?)\s*([^<]*)$ */
    const char *p = word;
    while (*p >= '0' && *p <= '9')
        p++;
    size_t ndigits = (size_t)(p - word);
    if (p[0] != '<' || p[1] != '<')
        return 0;
    p += 2;
    bool chomp = *p == '-';
    if (chomp)
        p++;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\f' || *p == '\r')
        p++;
    if (strchr(p, '<') || !*p)
        return 0;

    struct mk_strv words = MK_STRV_INIT, raw = MK_STRV_INIT;
    const char *msg = NULL;
    int r = 0;
    if (lex_words(p, false, false, &words, &msg) < 0) {
        r = mk_error_set(err, MK_ERR_PARSE, 0, "failed to process \"%s\": %s", p, msg);
        goto out;
    }
    if (words.n != 1)
        goto out;
    if (lex_words(p, true, false, &raw, &msg) < 0) {
        r = mk_error_set(err, MK_ERR_PARSE, 0, "failed to process \"%s\": %s", p, msg);
        goto out;
    }
    if (raw.n != words.n) {
        r = mk_error_set(err, MK_ERR_PARSE, 0,
                         "internal lexing of heredoc produced inconsistent results: %s", p);
        goto out;
    }
    int fd = -1;
    if (ndigits > 0) {
        fd = 0;
        for (size_t i = 0; i < ndigits; i++)
            fd = fd > 100000000 ? 1000000000 : fd * 10 + (word[i] - '0');
    }
    *ret = (struct mk_df_heredoc){
        .name = mk_xstrdup(words.v[0]),
        .content = mk_xstrdup(""),
        .expand = count_quotes(words.v[0]) == count_quotes(raw.v[0]),
        .chomp = chomp,
        .fd = fd,
    };
    r = 1;
out:
    mk_strv_release(&words);
    mk_strv_release(&raw);
    return r;
}

int parser_df_heredocs_from_line(const char *line, struct mk_df_heredoc **ret, size_t *ret_n,
                                 struct mk_error **err)
{
    struct mk_strv words = MK_STRV_INIT;
    struct mk_df_heredoc *docs = NULL;
    size_t n = 0;

    /* A line that does not lex simply announces no heredocs. */
    if (lex_words(line, true, true, &words, NULL) < 0) {
        *ret = NULL;
        *ret_n = 0;
        return 0;
    }
    for (size_t i = 0; i < words.n; i++) {
        struct mk_df_heredoc h;
        int r = parser_df_heredoc_word(words.v[i], &h, err);
        if (r < 0) {
            for (size_t j = 0; j < n; j++)
                parser_df_heredoc_release(&docs[j]);
            free(docs);
            mk_strv_release(&words);
            return -1;
        }
        if (r == 1) {
            docs = mk_xreallocarray(docs, n + 1, sizeof(*docs));
            docs[n++] = h;
        }
    }
    mk_strv_release(&words);
    *ret = docs;
    *ret_n = n;
    return 0;
}

/* ---- directives ---------------------------------------------------------------------------- */

static bool is_re_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* ^PREFIX\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$ on one line. */
bool parser_df_directive_match(const char *line, size_t len, const char *prefix, char **ret_key,
                               char **ret_value)
{
    size_t plen = strlen(prefix), i = plen;
    if (len < plen || memcmp(line, prefix, plen) != 0)
        return false;
    while (i < len && is_re_space(line[i]))
        i++;
    size_t k = i;
    if (i >= len || !((line[i] >= 'a' && line[i] <= 'z') || (line[i] >= 'A' && line[i] <= 'Z')))
        return false;
    while (i < len && ((line[i] >= 'a' && line[i] <= 'z') || (line[i] >= 'A' && line[i] <= 'Z') ||
                       (line[i] >= '0' && line[i] <= '9')))
        i++;
    size_t kend = i;
    while (i < len && is_re_space(line[i]))
        i++;
    if (i >= len || line[i] != '=')
        return false;
    i++;
    size_t v = i;
    while (v < len && is_re_space(line[v]))
        v++;
    size_t vend = len;
    if (v == len) {
        /* Only blanks after '=': the lazy group still takes one, the last. */
        if (i == len)
            return false;
        v = len - 1;
    } else {
        while (vend > v && is_re_space(line[vend - 1]))
            vend--;
    }
    /* Go's "." does not match a newline. */
    if (memchr(line + v, '\n', vend - v))
        return false;
    *ret_key = parser_df_go_lower(line + k, kend - k);
    *ret_value = mk_xstrndup(line + v, vend - v);
    return true;
}

bool parser_df_valid_directive(const char *key)
{
    return strcmp(key, "syntax") == 0 || strcmp(key, "escape") == 0 || strcmp(key, "check") == 0;
}

/* Scans the leading directive lines with the given comment prefix: stops at the first other
 * line, returns 1 with the value of want when found, collects all of them into all. */
static int scan_directives(const char *data, size_t len, int line, const char *prefix,
                           const char *want, char **ret_value, int *ret_line, struct mk_strv *all)
{
    size_t pos = 0;
    struct mk_strv seen = MK_STRV_INIT;
    int r = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len, l = end - pos;
        if (l > 0 && data[pos + l - 1] == '\r')
            l--;
        line++;
        char *key = NULL, *value = NULL;
        if (!parser_df_directive_match(data + pos, l, prefix, &key, &value) ||
            !parser_df_valid_directive(key)) {
            free(key);
            free(value);
            break;
        }
        bool dup = false;
        for (size_t i = 0; i < seen.n; i++)
            dup = dup || strcmp(seen.v[i], key) == 0;
        if (dup) {
            free(key);
            free(value);
            break;
        }
        mk_strv_push(&seen, key);
        if (all)
            mk_strv_pushf(all, "%s=%s", key, value);
        if (want && strcmp(key, want) == 0 && ret_value) {
            *ret_value = value;
            *ret_line = line;
            free(key);
            r = 1;
            break;
        }
        free(key);
        free(value);
        pos = end + 1;
    }
    mk_strv_release(&seen);
    return r;
}

static const char *skip_bom(const char *data, size_t *len)
{
    if (*len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        *len -= 3;
        return data + 3;
    }
    return data;
}

bool parser_df_parse_directive(const char *key, const char *data, size_t len, bool any_format,
                               char **ret_ref, char **ret_cmdline, int *ret_line)
{
    const char *d = skip_bom(data, &len);
    const char *body = d;
    size_t blen = len;
    int line = 0;
    char *value = NULL;
    int vline = -1;

    if (len >= 2 && d[0] == '#' && d[1] == '!') {
        const char *nl = memchr(d, '\n', len);
        body = nl ? nl + 1 : d + len;
        blen = len - (size_t)(body - d);
        line = 1;
    }
    if (!scan_directives(body, blen, line, "#", key, &value, &vline, NULL) && any_format &&
        !scan_directives(body, blen, line, "//", key, &value, &vline, NULL)) {
        if (!parser_df_json_syntax(d, len, &value))
            return false;
        vline = 0;
    }
    if (!value)
        return false;
    const char *sp = strchr(value, ' ');
    *ret_ref = sp ? mk_xstrndup(value, (size_t)(sp - value)) : mk_xstrdup(value);
    *ret_cmdline = value;
    *ret_line = vline;
    return true;
}

void parser_df_directives_all(const char *data, size_t len, struct mk_strv *ret)
{
    const char *d = skip_bom(data, &len);
    scan_directives(d, len, 0, "#", NULL, NULL, NULL, ret);
}
