/* parser/ignore.c - .dockerignore: moby/patternmatcher and its ignorefile reader.
 *
 * Upstream turns each pattern into a Go regexp (or an exact / prefix / suffix test) and
 * matches the whole path. We build the same regexp text, then parse it into a small token
 * list and match that with a memoised backtracking matcher, which keeps Go's semantics for
 * what the text can contain: literals, classes (ranges, negation, \d\s\w, [:name:]), "."
 * (no newline), "*", the "**" group and "^". A pattern whose regexp Go would reject (such as the
 * class range "[l-O]") is accepted by mk_ignore_new and fails every match, like upstream.
 * Escapes RE2 gives a special meaning to beyond \d\s\w\a\f\t\n\r\v (\x, \p, octal, \b, \Q)
 * are treated as such a bad pattern.
 */
#include <stdint.h>
#include <string.h>

#include "parser/internal.h"
#include "parser/parser.h"

#define IGNORE_MAX_LINE 65536 /* bufio.Scanner's token limit */
#define IGNORE_MAX_PATTERNS 100000
#define IGNORE_BAD_PATTERN "syntax error in pattern"

enum match_type { MATCH_EXACT, MATCH_PREFIX, MATCH_SUFFIX, MATCH_REGEXP };
enum rx_type { RX_LIT, RX_CLASS, RX_DOT, RX_DIRS, RX_BOL };

struct rx_range {
    int32_t lo, hi;
};

struct rx_tok {
    enum rx_type type;
    bool star;
    int32_t c;
    bool neg;
    struct rx_range *ranges;
    size_t n_ranges;
};

struct pattern {
    char *cleaned;
    bool exclusion;
    size_t n_dirs; /* components of cleaned */
    enum match_type type;
    bool bad; /* Go's regexp.Compile would fail: every match call fails */
    struct rx_tok *toks;
    size_t n_toks;
    /* Cheap prefilter for regexps: ASCII literals every match must start / end with. */
    char *head, *tail;
    size_t len, head_len, tail_len; /* strlen of cleaned, head, tail */
};

struct mk_ignore {
    struct pattern *p;
    size_t n;
    bool exclusions;
};

/* ---- helpers ---- */

/* One code point of a NUL-terminated string (Go's decoding rules). */
static int32_t decode(const char *s, size_t *ret_width)
{
    return parser_utf8_decode(s, strnlen(s, 4), ret_width);
}

static bool is_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* strings.TrimSpace for the ASCII white space .dockerignore files use. */
static char *trim_space(const char *s, size_t len)
{
    while (len && is_ascii_space(*s))
        s++, len--;
    while (len && is_ascii_space(s[len - 1]))
        len--;
    return mk_xstrndup(s, len);
}

/* Go's filepath.Clean (Unix). Caller frees. */
static char *path_clean(const char *path)
{
    size_t n = strlen(path);
    if (n == 0)
        return mk_xstrdup(".");
    bool rooted = path[0] == '/';
    char *out = mk_xmalloc(n + 2);
    size_t w = 0, r = 0, dotdot = 0;
    if (rooted) {
        out[w++] = '/';
        r = dotdot = 1;
    }
    while (r < n) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < n && path[r] != '/'; r++)
                out[w++] = path[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

/* ---- ignorefile.ReadAll ---- */

int mk_ignore_read(const char *data, size_t len, struct mk_strv *ret_patterns,
                   struct mk_error **err)
{
    struct mk_strv out = MK_STRV_INIT;
    size_t pos = 0;
    bool first = true;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        const char *line = data + pos;
        size_t n = end - pos;
        pos = nl ? end + 1 : len;
        if (n > IGNORE_MAX_LINE) {
            mk_strv_release(&out);
            return mk_error_set(err, MK_ERR_INVALID, 0,
                                "reading .dockerignore: line longer than %d bytes",
                                IGNORE_MAX_LINE);
        }
        if (first && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
            line += 3, n -= 3;
        first = false;
        if (n > 0 && line[0] == '#')
            continue;
        _cleanup_free_ char *p = trim_space(line, n);
        if (!*p)
            continue;
        bool invert = p[0] == '!';
        _cleanup_free_ char *body = invert ? trim_space(p + 1, strlen(p + 1)) : mk_xstrdup(p);
        char *cleaned = NULL;
        if (*body) {
            cleaned = path_clean(body);
            if (strlen(cleaned) > 1 && cleaned[0] == '/')
                memmove(cleaned, cleaned + 1, strlen(cleaned));
        } else {
            cleaned = mk_xstrdup("");
        }
        if (out.n >= IGNORE_MAX_PATTERNS) {
            free(cleaned);
            mk_strv_release(&out);
            return mk_error_set(err, MK_ERR_INVALID, 0,
                                "reading .dockerignore: more than %d patterns",
                                IGNORE_MAX_PATTERNS);
        }
        mk_strv_pushf(&out, "%s%s", invert ? "!" : "", cleaned);
        free(cleaned);
    }
    mk_strv_copy(ret_patterns, &out);
    mk_strv_release(&out);
    return 0;
}

/* ---- filepath.Match syntax check ---- */

/* getEsc: one class character; '-' and ']' need a backslash, and the class must go on. */
static bool class_char_ok(const char **pp)
{
    const char *p = *pp;
    size_t w;
    if (!*p || *p == '-' || *p == ']')
        return false;
    if (*p == '\\') {
        p++;
        if (!*p)
            return false;
    }
    decode(p, &w);
    p += w;
    if (!*p)
        return false;
    *pp = p;
    return true;
}

/* The errors filepath.Match reports for a pattern, whatever the name. */
static bool go_match_syntax_ok(const char *p)
{
    while (*p) {
        size_t w;
        if (*p == '\\') {
            p++;
            if (!*p)
                return false;
            decode(p, &w);
            p += w;
        } else if (*p == '[') {
            p++;
            if (*p == '^')
                p++;
            int nrange = 0;
            for (;;) {
                if (*p == ']' && nrange > 0) {
                    p++;
                    break;
                }
                if (!class_char_ok(&p))
                    return false;
                if (*p == '-') {
                    p++;
                    if (!class_char_ok(&p))
                        return false;
                }
                nrange++;
            }
        } else {
            decode(p, &w);
            p += w;
        }
    }
    return true;
}

/* ---- the regexp text and its parse ---- */

static void pattern_free_toks(struct pattern *p)
{
    for (size_t i = 0; i < p->n_toks; i++)
        free(p->toks[i].ranges);
    free(p->toks);
    p->toks = NULL;
    p->n_toks = 0;
}

static void add_range(struct rx_tok *t, int32_t lo, int32_t hi)
{
    t->ranges = mk_xreallocarray(t->ranges, t->n_ranges + 1, sizeof(*t->ranges));
    t->ranges[t->n_ranges++] = (struct rx_range){lo, hi};
}

static void add_ranges(struct rx_tok *t, const int32_t *pairs, size_t n, bool negate)
{
    if (!negate) {
        for (size_t i = 0; i < n; i += 2)
            add_range(t, pairs[i], pairs[i + 1]);
        return;
    }
    int32_t next = 0;
    for (size_t i = 0; i < n; i += 2) {
        if (pairs[i] > next)
            add_range(t, next, pairs[i] - 1);
        next = pairs[i + 1] + 1;
    }
    add_range(t, next, 0x10ffff);
}

/* \d \s \w and the POSIX classes: sorted range pairs. */
static const int32_t *named_class(const char *name, size_t len, size_t *ret_n)
{
    static const struct {
        const char *name;
        int32_t pairs[8];
        size_t n;
    } tab[] = {
        {"d", {'0', '9'}, 2},
        {"s", {'\t', '\n', '\f', '\r', ' ', ' '}, 6},
        {"w", {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'}, 8},
        {"alnum", {'0', '9', 'A', 'Z', 'a', 'z'}, 6},
        {"alpha", {'A', 'Z', 'a', 'z'}, 4},
        {"ascii", {0, 0x7f}, 2},
        {"blank", {'\t', '\t', ' ', ' '}, 4},
        {"cntrl", {0, 0x1f, 0x7f, 0x7f}, 4},
        {"digit", {'0', '9'}, 2},
        {"graph", {'!', '~'}, 2},
        {"lower", {'a', 'z'}, 2},
        {"print", {' ', '~'}, 2},
        {"punct", {'!', '/', ':', '@', '[', '`', '{', '~'}, 8},
        {"space", {'\t', '\r', ' ', ' '}, 4},
        {"upper", {'A', 'Z'}, 2},
        {"word", {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'}, 8},
        {"xdigit", {'0', '9', 'A', 'F', 'a', 'f'}, 6},
    };
    for (size_t i = 0; i < MK_ARRAY_SIZE(tab); i++) {
        if (strlen(tab[i].name) == len && memcmp(tab[i].name, name, len) == 0) {
            *ret_n = tab[i].n;
            return tab[i].pairs;
        }
    }
    return NULL;
}

/* One RE2 escape after '\': a literal (*ret_c) or a class added to t. -1 = invalid. */
static int parse_escape(const char **pp, struct rx_tok *t, int32_t *ret_c, bool *ret_is_class)
{
    size_t w;
    int32_t c = decode(*pp, &w);
    if (!**pp)
        return -1;
    *pp += w;
    *ret_is_class = false;
    if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
        *ret_c = c;
        return 0;
    }
    switch (c) {
    case 'a':
        *ret_c = 7;
        return 0;
    case 'f':
        *ret_c = '\f';
        return 0;
    case 't':
        *ret_c = '\t';
        return 0;
    case 'n':
        *ret_c = '\n';
        return 0;
    case 'r':
        *ret_c = '\r';
        return 0;
    case 'v':
        *ret_c = '\v';
        return 0;
    case 'd':
    case 's':
    case 'w':
    case 'D':
    case 'S':
    case 'W': {
        char lower = (char)(c | 0x20);
        size_t n;
        const int32_t *pairs = named_class(&lower, 1, &n);
        add_ranges(t, pairs, n, c != lower);
        *ret_is_class = true;
        return 0;
    }
    }
    return -1;
}

/* A class after '['. */
static int parse_class(const char **pp, struct rx_tok *t)
{
    const char *p = *pp;
    t->type = RX_CLASS;
    if (*p == '^') {
        t->neg = true;
        p++;
    }
    bool first = true;
    for (;;) {
        if (!*p)
            return -1;
        if (*p == ']' && !first) {
            p++;
            break;
        }
        first = false;
        if (p[0] == '[' && p[1] == ':') {
            const char *end = strstr(p + 2, ":]");
            if (end) {
                const char *name = p + 2;
                bool negate = *name == '^';
                if (negate)
                    name++;
                size_t n;
                const int32_t *pairs = named_class(name, (size_t)(end - name), &n);
                if (!pairs || (size_t)(end - name) <= 1)
                    return -1;
                add_ranges(t, pairs, n, negate);
                p = end + 2;
                continue;
            }
        }
        int32_t lo, hi;
        bool is_class;
        size_t w;
        if (*p == '\\') {
            p++;
            if (parse_escape(&p, t, &lo, &is_class) < 0)
                return -1;
            if (is_class)
                continue;
        } else {
            lo = decode(p, &w);
            p += w;
        }
        hi = lo;
        if (p[0] == '-' && p[1] && p[1] != ']') {
            p++;
            if (*p == '\\') {
                p++;
                if (parse_escape(&p, t, &hi, &is_class) < 0 || is_class)
                    return -1;
            } else {
                hi = decode(p, &w);
                p += w;
            }
            if (hi < lo)
                return -1;
        }
        add_range(t, lo, hi);
    }
    *pp = p;
    return 0;
}

/* Parses the regexp text upstream builds (anchored "^...$") into tokens. */
static int parse_regexp(const char *re, struct pattern *pat)
{
    const char *p = re + 1; /* the leading ^ */
    size_t len = strlen(re);
    const char *end = re + len - 1; /* the trailing $ */
    while (p < end) {
        struct rx_tok t = {0};
        size_t w;
        if (*p == '*') {
            if (pat->n_toks == 0 || pat->toks[pat->n_toks - 1].star ||
                pat->toks[pat->n_toks - 1].type == RX_DIRS ||
                pat->toks[pat->n_toks - 1].type == RX_BOL)
                return -1;
            pat->toks[pat->n_toks - 1].star = true;
            p++;
            continue;
        }
        if (mk_str_has_prefix(p, "(.*/)?")) {
            t.type = RX_DIRS;
            p += 6;
        } else if (*p == '^') {
            t.type = RX_BOL;
            p++;
        } else if (*p == '.') {
            t.type = RX_DOT;
            p++;
        } else if (*p == '[') {
            p++;
            if (parse_class(&p, &t) < 0 || p > end) {
                free(t.ranges);
                return -1;
            }
        } else if (*p == '\\') {
            p++;
            bool is_class;
            t.type = RX_LIT;
            if (parse_escape(&p, &t, &t.c, &is_class) < 0) {
                free(t.ranges);
                return -1;
            }
            if (is_class)
                t.type = RX_CLASS;
        } else if (*p == '(' || *p == ')' || *p == '?' || *p == '+' || *p == '|' || *p == '{') {
            return -1; /* never produced unescaped; refuse rather than guess */
        } else {
            t.type = RX_LIT;
            t.c = decode(p, &w);
            p += w;
        }
        pat->toks = mk_xreallocarray(pat->toks, pat->n_toks + 1, sizeof(*pat->toks));
        pat->toks[pat->n_toks++] = t;
    }
    return 0;
}

/* Pattern.compile's first half: the match type and the Go regexp text (in re, which must be
 * empty, complete with ^ and $ only for MATCH_REGEXP). */
static enum match_type build_regexp(const char *p, struct mk_buf *re_out)
{
    struct mk_buf re = MK_BUF_INIT;
    enum match_type type = MATCH_EXACT;
    mk_buf_addc(&re, '^');
    for (int i = 0; *p; i++) {
        size_t w;
        int32_t ch = decode(p, &w);
        const char *chp = p;
        p += w;
        if (ch == '*') {
            if (*p == '*') {
                p++;
                if (*p == '/')
                    p++;
                if (!*p) {
                    if (type == MATCH_EXACT) {
                        type = MATCH_PREFIX;
                    } else {
                        mk_buf_adds(&re, ".*");
                        type = MATCH_REGEXP;
                    }
                } else {
                    mk_buf_adds(&re, "(.*/)?");
                    type = MATCH_REGEXP;
                }
                if (i == 0)
                    type = MATCH_SUFFIX;
            } else {
                mk_buf_adds(&re, "[^/]*");
                type = MATCH_REGEXP;
            }
        } else if (ch == '?') {
            mk_buf_adds(&re, "[^/]");
            type = MATCH_REGEXP;
        } else if (ch > 0 && ch < 0x80 && strchr(".+()|{}$", (int)ch)) {
            mk_buf_addc(&re, '\\');
            mk_buf_addc(&re, (char)ch);
        } else if (ch == '\\') {
            if (*p) {
                decode(p, &w);
                mk_buf_addc(&re, '\\');
                mk_buf_add(&re, p, w);
                p += w;
                type = MATCH_REGEXP;
            } else {
                mk_buf_addc(&re, '\\');
            }
        } else if (ch == '[' || ch == ']') {
            mk_buf_addc(&re, (char)ch);
            type = MATCH_REGEXP;
        } else {
            mk_buf_add(&re, chp, w);
        }
    }
    if (type == MATCH_REGEXP)
        mk_buf_addc(&re, '$');
    *re_out = re;
    return type;
}

static bool plain_ascii_lit(const struct rx_tok *t)
{
    return t->type == RX_LIT && !t->star && t->c > 0 && t->c < 0x80;
}

/* Pattern.compile: the match type and, for regexps, the token list. */
static void pattern_compile(struct pattern *pat)
{
    struct mk_buf re;
    pat->type = build_regexp(pat->cleaned, &re);
    if (pat->type == MATCH_REGEXP && parse_regexp(re.data, pat) < 0) {
        pattern_free_toks(pat);
        pat->bad = true;
    }
    mk_buf_release(&re);
    if (pat->type != MATCH_REGEXP || pat->bad)
        return;
    size_t h = 0, t = pat->n_toks;
    while (h < pat->n_toks && plain_ascii_lit(&pat->toks[h]))
        h++;
    while (t > h && plain_ascii_lit(&pat->toks[t - 1]))
        t--;
    pat->head = mk_xmalloc(h + 1);
    for (size_t i = 0; i < h; i++)
        pat->head[i] = (char)pat->toks[i].c;
    pat->head[h] = '\0';
    pat->tail = mk_xmalloc(pat->n_toks - t + 1);
    for (size_t i = t; i < pat->n_toks; i++)
        pat->tail[i - t] = (char)pat->toks[i].c;
    pat->tail[pat->n_toks - t] = '\0';
    pat->head_len = h;
    pat->tail_len = pat->n_toks - t;
}

const char *parser_ignore_compile_debug(const char *pattern, char **ret_regexp)
{
    static const char *const names[] = {"exact", "prefix", "suffix", "regexp"};
    struct mk_buf re;
    enum match_type type = build_regexp(pattern, &re);
    *ret_regexp = type == MATCH_REGEXP ? mk_buf_detach(&re) : NULL;
    mk_buf_release(&re);
    return names[type];
}

static bool tok_accepts(const struct rx_tok *t, int32_t c)
{
    if (t->type == RX_LIT)
        return t->c == c;
    if (t->type == RX_DOT)
        return c != '\n';
    bool in = false;
    for (size_t i = 0; i < t->n_ranges && !in; i++)
        in = c >= t->ranges[i].lo && c <= t->ranges[i].hi;
    return in != t->neg;
}

struct rx_run {
    const struct pattern *pat;
    const int32_t *s;
    size_t n;
    uint8_t *failed; /* (token, position) pairs known not to match */
};

static bool rx_match_at(struct rx_run *run, size_t ti, size_t pos)
{
    const struct pattern *pat = run->pat;
    if (ti == pat->n_toks)
        return pos == run->n;
    size_t key = ti * (run->n + 1) + pos;
    if (run->failed[key / 8] & (1u << (key % 8)))
        return false;
    const struct rx_tok *t = &pat->toks[ti];
    bool ok = false;
    if (t->type == RX_BOL) {
        ok = pos == 0 && rx_match_at(run, ti + 1, pos);
    } else if (t->type == RX_DIRS) {
        /* (.*\/)?: nothing, or any run without newline ending in '/'. */
        ok = rx_match_at(run, ti + 1, pos);
        for (size_t j = pos; !ok && j < run->n && run->s[j] != '\n'; j++)
            if (run->s[j] == '/')
                ok = rx_match_at(run, ti + 1, j + 1);
    } else if (t->star) {
        ok = rx_match_at(run, ti + 1, pos);
        for (size_t j = pos; !ok && j < run->n && tok_accepts(t, run->s[j]); j++)
            ok = rx_match_at(run, ti + 1, j + 1);
    } else {
        ok = pos < run->n && tok_accepts(t, run->s[pos]) && rx_match_at(run, ti + 1, pos + 1);
    }
    if (!ok)
        run->failed[key / 8] |= (uint8_t)(1u << (key % 8));
    return ok;
}

static bool rx_match(const struct pattern *pat, const char *path, size_t len)
{
    /* Paths are short: stack buffers avoid two allocations per pattern and ancestor. */
    int32_t stack_s[256];
    uint8_t stack_memo[1024];
    int32_t *s =
        len < MK_ARRAY_SIZE(stack_s) ? stack_s : mk_xreallocarray(NULL, len + 1, sizeof(*s));
    size_t n = 0;
    for (size_t pos = 0; pos < len;) {
        size_t w = 1;
        s[n++] = (unsigned char)path[pos] < 0x80 ? path[pos] : decode(path + pos, &w);
        pos += w;
    }
    size_t bytes = (pat->n_toks + 1) * (n + 1) / 8 + 1;
    uint8_t *memo = bytes <= sizeof(stack_memo) ? stack_memo : mk_xmalloc(bytes);
    memset(memo, 0, bytes);
    struct rx_run run = {pat, s, n, memo};
    bool ok = rx_match_at(&run, 0, 0);
    if (memo != stack_memo)
        free(memo);
    if (s != stack_s)
        free(s);
    return ok;
}

/* Pattern.match on the first len bytes of path. */
static int pattern_match(const struct pattern *pat, const char *path, size_t len, bool *ret)
{
    const char *c = pat->cleaned;
    size_t clen = pat->len;
    if (pat->bad)
        return -1;
    switch (pat->type) {
    case MATCH_EXACT:
        *ret = len == clen && memcmp(path, c, len) == 0;
        return 0;
    case MATCH_PREFIX:
        *ret = len >= clen - 2 && memcmp(path, c, clen - 2) == 0;
        return 0;
    case MATCH_SUFFIX: {
        const char *suffix = c + 2;
        size_t slen = clen - 2;
        *ret =
            (len >= slen && memcmp(path + len - slen, suffix, slen) == 0) ||
            (slen > 0 && suffix[0] == '/' && len == slen - 1 && memcmp(path, suffix + 1, len) == 0);
        return 0;
    }
    case MATCH_REGEXP: {
        size_t hl = pat->head_len, tl = pat->tail_len;
        if (len < hl + tl || memcmp(path, pat->head, hl) != 0 ||
            memcmp(path + len - tl, pat->tail, tl) != 0) {
            *ret = false;
            return 0;
        }
        *ret = rx_match(pat, path, len);
        return 0;
    }
    }
    return -1;
}

/* ---- patternmatcher.New and MatchesOrParentMatches ---- */

void mk_ignore_free(struct mk_ignore *ig)
{
    if (!ig)
        return;
    for (size_t i = 0; i < ig->n; i++) {
        free(ig->p[i].cleaned);
        free(ig->p[i].head);
        free(ig->p[i].tail);
        pattern_free_toks(&ig->p[i]);
    }
    free(ig->p);
    free(ig);
}

MK_DEFINE_CLEANUP(struct mk_ignore, mk_ignore_free)

int mk_ignore_new(const struct mk_strv *patterns, struct mk_ignore **ret, struct mk_error **err)
{
    _cleanup_(mk_ignore_freep) struct mk_ignore *ig = mk_xcalloc(1, sizeof(*ig));
    if (patterns->n > IGNORE_MAX_PATTERNS)
        return mk_error_set(err, MK_ERR_INVALID, 0, "more than %d ignore patterns",
                            IGNORE_MAX_PATTERNS);
    ig->p = mk_xcalloc(patterns->n + 1, sizeof(*ig->p));
    for (size_t i = 0; i < patterns->n; i++) {
        _cleanup_free_ char *trimmed = trim_space(patterns->v[i], strlen(patterns->v[i]));
        if (!*trimmed)
            continue;
        _cleanup_free_ char *p = path_clean(trimmed);
        struct pattern pat = {0};
        const char *body = p;
        if (p[0] == '!') {
            if (!p[1])
                return mk_error_set(err, MK_ERR_PARSE, 0, "illegal exclusion pattern: \"!\"");
            pat.exclusion = true;
            ig->exclusions = true;
            body++;
        }
        if (!go_match_syntax_ok(body))
            return mk_error_set(err, MK_ERR_PARSE, 0, "%s: \"%s\"", IGNORE_BAD_PATTERN, body);
        pat.cleaned = mk_xstrdup(body);
        pat.len = strlen(body);
        pat.n_dirs = 1;
        for (const char *s = body; *s; s++)
            pat.n_dirs += *s == '/';
        pattern_compile(&pat);
        ig->p[ig->n++] = pat;
    }
    *ret = MK_TAKE_PTR(ig);
    return 0;
}

int mk_ignore_matches(const struct mk_ignore *ig, const char *path, bool *ret,
                      struct mk_error **err)
{
    _cleanup_free_ char *file = path_clean(path);
    bool matched = false;
    if (strcmp(file, ".") == 0) {
        /* The context root is never excluded. */
        *ret = false;
        return 0;
    }
    size_t flen = strlen(file);
    const char *slash = strrchr(file, '/');
    /* filepath.Dir: "." for no slash, "/" for a top-level absolute path. */
    size_t parent_len = !slash ? 0 : slash == file ? 1 : (size_t)(slash - file);
    for (size_t i = 0; i < ig->n; i++) {
        const struct pattern *pat = &ig->p[i];
        if (pat->exclusion != matched)
            continue;
        bool m;
        if (pattern_match(pat, file, flen, &m) < 0)
            return mk_error_set(err, MK_ERR_PARSE, 0, "%s: \"%s\"", IGNORE_BAD_PATTERN,
                                pat->cleaned);
        /* Each ancestor "a", "a/b", ... of the path (the parent split at '/'). */
        for (size_t end = 0; !m && parent_len > 0 && end <= parent_len; end++) {
            if (end == parent_len || file[end] == '/') {
                if (pattern_match(pat, file, end, &m) < 0)
                    m = false;
            }
        }
        if (m)
            matched = !pat->exclusion;
    }
    *ret = matched;
    return 0;
}

bool mk_ignore_has_exceptions(const struct mk_ignore *ig)
{
    return ig && ig->exclusions;
}

/* fsutil's rule. An exception written with glob characters (such as "!**" then "/keep")
 * may match anywhere, so every excluded directory is walked; otherwise only those an
 * exception lies below ("!dir/keep" for dir), comparing each pattern without a trailing
 * "/" + "**" or "/" + "*". */
bool mk_ignore_dir_may_have_exceptions(const struct mk_ignore *ig, const char *dir)
{
    if (!mk_ignore_has_exceptions(ig))
        return false;
    size_t dlen = strlen(dir);
    for (size_t i = 0; i < ig->n; i++) {
        const char *c = ig->p[i].cleaned;
        size_t clen = ig->p[i].len;
        if (!ig->p[i].exclusion)
            continue;
        if (clen >= 3 && strcmp(c + clen - 3, "/**") == 0)
            clen -= 3;
        else if (clen >= 2 && strcmp(c + clen - 2, "/*") == 0)
            clen -= 2;
        if (memchr(c, '*', clen) || memchr(c, '[', clen) || memchr(c, ']', clen) ||
            memchr(c, '?', clen) || memchr(c, '^', clen) || memchr(c, '\\', clen))
            return true;
        /* HasPrefix(pattern + "/", dir + "/") */
        if (clen >= dlen && memcmp(c, dir, dlen) == 0 && (clen == dlen || c[dlen] == '/'))
            return true;
    }
    return false;
}

void parser_ignore_patterns(const struct mk_ignore *ig, struct mk_strv *ret_patterns)
{
    for (size_t i = 0; i < ig->n; i++)
        mk_strv_pushf(ret_patterns, "%s%s", ig->p[i].exclusion ? "!" : "", ig->p[i].cleaned);
}
