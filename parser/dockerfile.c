/* parser/dockerfile.c - BuildKit's Dockerfile parser (frontend/dockerfile/parser): lines,
 * directives, continuations, per-keyword argument rules, heredoc bodies, the dump and JSON.
 *
 * The behaviour, quirks included, follows the upstream code so that the parse-tree dump is
 * byte-identical; conformance/buildkit-parser/README.md is the reference. Where upstream works
 * on bytes as if they were runes (flag splitting, HEALTHCHECK), so do we.
 */
#include <string.h>

#include "parser/internal.h"

const char *const mk_df_keywords[] = {
    "add",        "arg",         "cmd",    "copy",       "entrypoint", "env", "expose",
    "from",       "healthcheck", "label",  "maintainer", "onbuild",    "run", "shell",
    "stopsignal", "user",        "volume", "workdir",    NULL,
};

/* ---- small string helpers ------------------------------------------------------------------ */

struct span {
    const char *s;
    size_t len;
};

/* [\t\v\f\r ] : BuildKit's reWhitespace. */
static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* unicode.IsSpace(rune(b)) on a single byte, as upstream does when it indexes strings. */
static bool byte_is_space(unsigned char b)
{
    return parser_df_is_space(b);
}

static struct span trim_left_space(struct span s)
{
    while (s.len > 0) {
        size_t w;
        uint32_t r = (uint32_t)parser_utf8_decode(s.s, s.len, &w);
        if (!parser_df_is_space(r))
            break;
        s.s += w;
        s.len -= w;
    }
    return s;
}

/* Go's strings.TrimSpace: Unicode white space from both ends. */
static struct span trim_space(struct span s)
{
    s = trim_left_space(s);
    while (s.len > 0) {
        /* Step back to the start of the last rune. */
        size_t start = s.len - 1, w;
        while (start > 0 && s.len - start < 4 && ((unsigned char)s.s[start] & 0xC0) == 0x80)
            start--;
        uint32_t r = (uint32_t)parser_utf8_decode(s.s + start, s.len - start, &w);
        if (start + w != s.len) {
            start = s.len - 1;
            r = 0xFFFD;
        }
        if (!parser_df_is_space(r))
            break;
        s.len = start;
    }
    return s;
}

/* ---- nodes ----------------------------------------------------------------------------------- */

static void node_release(struct mk_df_node *n)
{
    if (!n)
        return;
    free(n->keyword);
    free(n->original);
    mk_strv_release(&n->flags);
    mk_strv_release(&n->args);
    free(n->arg_lens);
    if (n->onbuild) {
        node_release(n->onbuild);
        free(n->onbuild);
    }
    for (size_t i = 0; i < n->n_heredocs; i++)
        parser_df_heredoc_release(&n->heredocs[i]);
    free(n->heredocs);
    memset(n, 0, sizeof(*n));
}

/* Copies len bytes: a JSON "\u0000" or a raw NUL byte may sit inside an argument. */
static void node_arg(struct mk_df_node *n, const char *s, size_t len)
{
    char *copy = mk_xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = 0;
    n->arg_lens = mk_xreallocarray(n->arg_lens, n->args.n + 1, sizeof(*n->arg_lens));
    n->arg_lens[n->args.n] = len;
    mk_strv_push_take(&n->args, copy);
}

/* parseStringsWhitespaceDelimited */
static void args_split_ws(struct mk_df_node *n, struct span rest)
{
    size_t i = 0;
    if (rest.len == 0)
        return;
    for (;;) {
        size_t start = i;
        while (i < rest.len && !is_ws(rest.s[i]))
            i++;
        node_arg(n, rest.s + start, i - start);
        if (i == rest.len)
            break;
        while (i < rest.len && is_ws(rest.s[i]))
            i++;
    }
}

/* parseJSON: 0 = JSON, 1 = not JSON, -1 = error already set. */
static int args_json(struct mk_df_node *n, struct span rest, struct mk_error **err)
{
    struct mk_strv values = MK_STRV_INIT;
    size_t *lens = NULL;
    rest = trim_left_space(rest);
    int r = parser_df_json_array(rest.s, rest.len, &values, &lens);
    if (r < 0)
        return mk_error_set(err, MK_ERR_PARSE, 0,
                            "when using JSON array syntax, arrays must be comprised of strings "
                            "only");
    if (r > 0)
        return 1;
    for (size_t i = 0; i < values.n; i++)
        node_arg(n, values.v[i], lens[i]);
    n->json = true;
    mk_strv_release(&values);
    free(lens);
    return 0;
}

/* parseMaybeJSON (RUN, CMD, ENTRYPOINT, SHELL) */
static int args_maybe_json(struct mk_df_node *n, struct span rest, struct mk_error **err)
{
    if (rest.len == 0)
        return 0;
    int r = args_json(n, rest, err);
    if (r < 0)
        return -1;
    if (r > 0)
        node_arg(n, rest.s, rest.len);
    return 0;
}

/* parseNameVal (ENV, LABEL) */
static int args_name_val(struct mk_df_node *n, struct span rest, const char *what, char escape,
                         struct mk_error **err)
{
    struct mk_strv words = MK_STRV_INIT;
    int r = 0;

    parser_df_words(rest.s, rest.len, escape, &words);
    if (words.n == 0)
        goto out;
    if (!strchr(words.v[0], '=')) {
        size_t i = 0;
        while (i < rest.len && !is_ws(rest.s[i]))
            i++;
        if (i == rest.len) {
            r = mk_error_set(err, MK_ERR_PARSE, 0, "%s must have two arguments", what);
            goto out;
        }
        node_arg(n, rest.s, i);
        while (i < rest.len && is_ws(rest.s[i]))
            i++;
        node_arg(n, rest.s + i, rest.len - i);
        node_arg(n, "", 0);
        goto out;
    }
    for (size_t i = 0; i < words.n; i++) {
        const char *eq = strchr(words.v[i], '=');
        if (!eq) {
            struct mk_buf q = MK_BUF_INIT;
            parser_df_go_quote(&q, words.v[i], strlen(words.v[i]));
            r = mk_error_set(err, MK_ERR_PARSE, 0,
                             "Syntax error - can't find = in %s. Must be of the form: name=value",
                             q.data);
            mk_buf_release(&q);
            goto out;
        }
        node_arg(n, words.v[i], (size_t)(eq - words.v[i]));
        node_arg(n, eq + 1, strlen(eq + 1));
        node_arg(n, "=", 1);
    }
out:
    mk_strv_release(&words);
    return r;
}

/* extractBuilderFlags: works byte by byte and appends each byte as the rune of that value,
 * so non-ASCII bytes come out Latin-1-to-UTF-8 converted, exactly like upstream. */
static struct span extract_flags(struct span line, char escape, struct mk_strv *flags)
{
    enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
    struct mk_buf word = MK_BUF_INIT;
    unsigned char quote = 0, ch = 0;
    bool blank_ok = false;
    struct span rest = {line.s + line.len, 0};

    mk_buf_add(&word, "", 0);
    for (size_t pos = 0; pos <= line.len; pos++) {
        if (pos != line.len)
            ch = (unsigned char)line.s[pos];
        if (phase == IN_SPACES) {
            if (pos == line.len)
                break;
            if (byte_is_space(ch))
                continue;
            if (ch != '-' || pos + 1 == line.len || line.s[pos + 1] != '-') {
                rest = (struct span){line.s + pos, line.len - pos};
                break;
            }
            phase = IN_WORD;
        }
        if (pos == line.len) {
            if (strcmp(word.data, "--") != 0 && (blank_ok || word.len > 0))
                mk_strv_push(flags, word.data);
            break;
        }
        if (phase == IN_WORD) {
            if (byte_is_space(ch)) {
                phase = IN_SPACES;
                if (word.len == 2 && strcmp(word.data, "--") == 0) {
                    rest = (struct span){line.s + pos, line.len - pos};
                    break;
                }
                if (blank_ok || word.len > 0)
                    mk_strv_push(flags, word.data);
                mk_buf_reset(&word);
                mk_buf_add(&word, "", 0);
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = IN_QUOTE;
                continue;
            }
            if (ch == (unsigned char)escape) {
                if (pos + 1 == line.len)
                    continue;
                ch = (unsigned char)line.s[++pos];
            }
            parser_df_encode_rune(&word, ch);
            continue;
        }
        /* IN_QUOTE */
        if (ch == quote) {
            phase = IN_WORD;
            continue;
        }
        if (ch == (unsigned char)escape) {
            if (pos + 1 == line.len) {
                phase = IN_WORD;
                continue;
            }
            ch = (unsigned char)line.s[++pos];
        }
        parser_df_encode_rune(&word, ch);
    }
    mk_buf_release(&word);
    return rest;
}

static int node_from_line(struct span line, char escape, int depth, struct mk_df_node *n,
                          struct mk_error **err);

/* parseHealthConfig */
static int args_health(struct mk_df_node *n, struct span rest, struct mk_error **err)
{
    size_t sep = 0, next;
    while (sep < rest.len && !byte_is_space((unsigned char)rest.s[sep]))
        sep++;
    next = sep;
    while (next < rest.len && byte_is_space((unsigned char)rest.s[next]))
        next++;
    if (sep == 0)
        return 0;
    node_arg(n, rest.s, sep);
    return args_maybe_json(n, (struct span){rest.s + next, rest.len - next}, err);
}

/* newNodeFromLine */
static int node_from_line(struct span line, char escape, int depth, struct mk_df_node *n,
                          struct mk_error **err)
{
    struct span t = trim_space(line), rest = {t.s + t.len, 0};
    size_t k = 0;

    while (k < t.len && !is_ws(t.s[k]))
        k++;
    n->original = mk_xstrndup(line.s, line.len);
    n->keyword = parser_df_go_lower(t.s, k);
    if (k < t.len) {
        size_t a = k;
        while (a < t.len && is_ws(t.s[a]))
            a++;
        rest = extract_flags((struct span){t.s + a, t.len - a}, escape, &n->flags);
        rest = trim_space(rest);
    }

    const char *kw = n->keyword;
    if (!strcmp(kw, "add") || !strcmp(kw, "copy") || !strcmp(kw, "volume")) {
        int r = args_json(n, rest, err);
        if (r < 0)
            return -1;
        if (r > 0)
            args_split_ws(n, rest);
    } else if (!strcmp(kw, "run") || !strcmp(kw, "cmd") || !strcmp(kw, "entrypoint") ||
               !strcmp(kw, "shell")) {
        return args_maybe_json(n, rest, err);
    } else if (!strcmp(kw, "from") || !strcmp(kw, "expose")) {
        args_split_ws(n, rest);
    } else if (!strcmp(kw, "maintainer") || !strcmp(kw, "stopsignal") || !strcmp(kw, "user") ||
               !strcmp(kw, "workdir")) {
        if (rest.len > 0)
            node_arg(n, rest.s, rest.len);
    } else if (!strcmp(kw, "arg")) {
        struct mk_strv words = MK_STRV_INIT;
        parser_df_words(rest.s, rest.len, escape, &words);
        for (size_t i = 0; i < words.n; i++)
            node_arg(n, words.v[i], strlen(words.v[i]));
        mk_strv_release(&words);
    } else if (!strcmp(kw, "env")) {
        return args_name_val(n, rest, "ENV", escape, err);
    } else if (!strcmp(kw, "label")) {
        return args_name_val(n, rest, "LABEL", escape, err);
    } else if (!strcmp(kw, "healthcheck")) {
        return args_health(n, rest, err);
    } else if (!strcmp(kw, "onbuild")) {
        if (rest.len == 0)
            return 0;
        if (depth >= MK_DF_MAX_NESTING)
            return mk_error_set(err, MK_ERR_PARSE, 0, "ONBUILD nested too deeply");
        n->onbuild = mk_xcalloc(1, sizeof(*n->onbuild));
        return node_from_line(rest, escape, depth + 1, n->onbuild, err);
    } else {
        /* parseIgnore: unknown instructions are the next stage's problem. */
        node_arg(n, "", 0);
    }
    return 0;
}

/* canContainHeredoc */
static bool node_may_heredoc(const struct mk_df_node *n)
{
    if (!strcmp(n->keyword, "onbuild") && n->onbuild)
        n = n->onbuild;
    return !n->json && (!strcmp(n->keyword, "run") || !strcmp(n->keyword, "copy") ||
                        !strcmp(n->keyword, "add"));
}

/* ---- line reading ---------------------------------------------------------------------------- */

struct reader {
    const char *data;
    size_t len, pos;
    bool too_long; /* bufio.ErrTooLong: reading stops, the error comes after the loop */
};

/* bufio.ScanLines: a line without its "\n" and at most one "\r" before it. */
static bool read_line(struct reader *rd, struct span *ret)
{
    if (rd->too_long || rd->pos >= rd->len)
        return false;
    const char *start = rd->data + rd->pos;
    const char *nl = memchr(start, '\n', rd->len - rd->pos);
    size_t l = nl ? (size_t)(nl - start) : rd->len - rd->pos;
    if (l > MK_DF_MAX_LINE) {
        rd->too_long = true;
        return false;
    }
    rd->pos += l + (nl ? 1 : 0);
    if (l > 0 && start[l - 1] == '\r')
        l--;
    *ret = (struct span){start, l};
    return true;
}

static struct span trim_newline(struct span s)
{
    while (s.len > 0 && (s.s[s.len - 1] == '\r' || s.s[s.len - 1] == '\n'))
        s.len--;
    return s;
}

static bool is_comment(struct span raw)
{
    struct span s = trim_left_space(trim_newline(raw));
    return s.len > 0 && s.s[0] == '#';
}

struct directives {
    char escape;
    bool done;
    char *syntax, *check;
    bool seen_escape;
};

static int directive_line(struct directives *d, struct span line, struct mk_error **err)
{
    _cleanup_free_ char *key = NULL, *value = NULL;
    if (d->done)
        return 0;
    if (!parser_df_directive_match(line.s, line.len, "#", &key, &value) ||
        !parser_df_valid_directive(key)) {
        d->done = true;
        return 0;
    }
    char **slot = !strcmp(key, "syntax") ? &d->syntax : !strcmp(key, "check") ? &d->check : NULL;
    if ((slot && *slot) || (!slot && d->seen_escape))
        return mk_error_set(err, MK_ERR_PARSE, 0, "only one %s parser directive can be used", key);
    if (slot) {
        *slot = MK_TAKE_PTR(value);
        return 0;
    }
    d->seen_escape = true;
    if (strcmp(value, "`") != 0 && strcmp(value, "\\") != 0)
        return mk_error_set(err, MK_ERR_PARSE, 0,
                            "invalid escape token '%s' does not match ` or \\", value);
    d->escape = value[0];
    return 0;
}

/* trimContinuationCharacter: ([^E])E[ \t]*$|^E[ \t]*$ replaced by $1. */
static bool trim_continuation(struct span *s, char escape)
{
    size_t p = s->len;
    while (p > 0 && (s->s[p - 1] == ' ' || s->s[p - 1] == '\t'))
        p--;
    if (p == 0 || s->s[p - 1] != escape)
        return false;
    if (p >= 2 && s->s[p - 2] == escape)
        return false;
    s->len = p - 1;
    return true;
}

static void add_warning(struct mk_df *df, int line, const char *fmt, const char *arg)
{
    df->warnings = mk_xreallocarray(df->warnings, df->n_warnings + 1, sizeof(*df->warnings));
    df->warnings[df->n_warnings++] = (struct mk_df_warning){mk_xasprintf(fmt, arg), line};
}

static int fail_at(struct mk_error **err, const char *filename, int line)
{
    _cleanup_free_ char *where = mk_xasprintf("%s:%d", filename ? filename : "Dockerfile", line);
    if (err && *err) {
        (*err)->code = MK_ERR_PARSE;
        mk_error_set_where(err, where);
    }
    return -1;
}

int mk_df_parse(const char *data, size_t len, const char *filename, struct mk_df **ret,
                struct mk_error **err)
{
    struct reader rd = {data, len, 0, false};
    struct directives d = {'\\', false, NULL, NULL, false};
    struct mk_df *df = mk_xcalloc(1, sizeof(*df));
    struct mk_buf line = MK_BUF_INIT;
    struct span raw;
    int cur = 0, r = -1;

    while (read_line(&rd, &raw)) {
        if (cur == 0 && raw.len >= 3 && memcmp(raw.s, "\xEF\xBB\xBF", 3) == 0) {
            raw.s += 3;
            raw.len -= 3;
        }
        struct span tok = trim_left_space(trim_newline(raw));
        if (directive_line(&d, tok, err) < 0) {
            fail_at(err, filename, cur);
            goto out;
        }
        if (is_comment(tok))
            tok.len = 0;
        cur++;
        int start = cur;
        bool cont = trim_continuation(&tok, d.escape);
        if (!cont && tok.len == 0)
            continue;
        mk_buf_reset(&line);
        mk_buf_add(&line, tok.s, tok.len);

        bool empty_cont = false;
        while (cont && read_line(&rd, &raw)) {
            tok = trim_newline(raw);
            if (directive_line(&d, tok, err) < 0) {
                fail_at(err, filename, cur);
                goto out;
            }
            cur++;
            if (is_comment(raw))
                continue;
            if (trim_left_space(tok).len == 0) {
                empty_cont = true;
                continue;
            }
            cont = trim_continuation(&tok, d.escape);
            mk_buf_add(&line, tok.s, tok.len);
        }
        if (empty_cont)
            add_warning(df, cur, "Empty continuation line found in: %s", line.data);

        struct mk_df_node n = {0};
        if (node_from_line((struct span){line.data, line.len}, d.escape, 0, &n, err) < 0) {
            node_release(&n);
            fail_at(err, filename, start);
            goto out;
        }
        if (node_may_heredoc(&n) && memmem(line.data, line.len, "<<", 2)) {
            if (parser_df_heredocs_from_line(line.data, &n.heredocs, &n.n_heredocs, err) < 0) {
                node_release(&n);
                fail_at(err, filename, start);
                goto out;
            }
            for (size_t i = 0; i < n.n_heredocs; i++) {
                struct mk_df_heredoc *h = &n.heredocs[i];
                struct mk_buf body = MK_BUF_INIT;
                bool terminated = false;
                mk_buf_add(&body, "", 0);
                while (read_line(&rd, &raw)) {
                    cur++;
                    struct span t = trim_newline(raw);
                    if (h->chomp)
                        while (t.len > 0 && t.s[0] == '\t')
                            t.s++, t.len--;
                    if (t.len == strlen(h->name) && memcmp(t.s, h->name, t.len) == 0) {
                        terminated = true;
                        break;
                    }
                    mk_buf_add(&body, raw.s, raw.len);
                    mk_buf_addc(&body, '\n');
                }
                free(h->content);
                h->content = mk_buf_detach(&body);
                if (!terminated) {
                    node_release(&n);
                    mk_error_set(err, MK_ERR_PARSE, 0, "unterminated heredoc");
                    fail_at(err, filename, start);
                    goto out;
                }
            }
        }
        n.start_line = start;
        n.end_line = cur;
        df->nodes = mk_xreallocarray(df->nodes, df->n_nodes + 1, sizeof(*df->nodes));
        df->nodes[df->n_nodes++] = n;
    }
    if (df->n_nodes == 0) {
        mk_error_set(err, MK_ERR_PARSE, 0, "file with no instructions");
        fail_at(err, filename, cur);
        goto out;
    }
    if (rd.too_long) {
        mk_error_set(err, MK_ERR_PARSE, 0, "dockerfile line greater than max allowed size of %d",
                     MK_DF_MAX_LINE);
        fail_at(err, filename, cur);
        goto out;
    }
    df->escape = d.escape;
    df->syntax = MK_TAKE_PTR(d.syntax);
    df->check = MK_TAKE_PTR(d.check);
    *ret = MK_TAKE_PTR(df);
    r = 0;
out:
    free(d.syntax);
    free(d.check);
    mk_buf_release(&line);
    mk_df_free(df);
    return r;
}

void mk_df_free(struct mk_df *df)
{
    if (!df)
        return;
    for (size_t i = 0; i < df->n_nodes; i++)
        node_release(&df->nodes[i]);
    free(df->nodes);
    for (size_t i = 0; i < df->n_warnings; i++)
        free(df->warnings[i].msg);
    free(df->warnings);
    free(df->syntax);
    free(df->check);
    free(df);
}

/* ---- output ---------------------------------------------------------------------------------- */

static void dump_node(const struct mk_df_node *n, struct mk_buf *out)
{
    struct mk_buf s = MK_BUF_INIT;
    mk_buf_adds(&s, n->keyword);
    if (n->flags.n > 0) {
        mk_buf_adds(&s, " [");
        for (size_t i = 0; i < n->flags.n; i++) {
            if (i)
                mk_buf_addc(&s, ' ');
            parser_df_go_quote(&s, n->flags.v[i], strlen(n->flags.v[i]));
        }
        mk_buf_addc(&s, ']');
    }
    if (n->onbuild) {
        mk_buf_adds(&s, " (");
        dump_node(n->onbuild, &s);
        mk_buf_addc(&s, ')');
    }
    for (size_t i = 0; i < n->args.n; i++) {
        mk_buf_addc(&s, ' ');
        parser_df_go_quote(&s, n->args.v[i], n->arg_lens[i]);
    }
    mk_buf_add(&s, "", 0);
    struct span t = trim_space((struct span){s.data, s.len});
    mk_buf_add(out, t.s, t.len);
    mk_buf_release(&s);
}

void mk_df_dump(const struct mk_df *df, struct mk_buf *out)
{
    for (size_t i = 0; i < df->n_nodes; i++) {
        mk_buf_addc(out, '(');
        dump_node(&df->nodes[i], out);
        mk_buf_adds(out, ")\n");
    }
}

static void json_str(struct mk_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    mk_buf_addc(out, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            mk_buf_addc(out, '\\');
            mk_buf_addc(out, (char)c);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            mk_buf_addf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            i++;
        } else if (c < 0x80) {
            mk_buf_addc(out, (char)c);
            i++;
        } else {
            size_t w;
            uint32_t r = (uint32_t)parser_utf8_decode(s + i, len - i, &w);
            if (r == 0xFFFD && w == 1)
                mk_buf_adds(out, "\\ufffd");
            else
                mk_buf_add(out, s + i, w);
            i += w;
        }
    }
    mk_buf_addc(out, '"');
}

static void json_cstr(struct mk_buf *out, const char *s)
{
    if (s)
        json_str(out, s, strlen(s));
    else
        mk_buf_adds(out, "null");
}

static void json_node(const struct mk_df_node *n, struct mk_buf *out)
{
    mk_buf_adds(out, "{\"keyword\":");
    json_cstr(out, n->keyword);
    mk_buf_adds(out, ",\"flags\":[");
    for (size_t i = 0; i < n->flags.n; i++) {
        if (i)
            mk_buf_addc(out, ',');
        json_cstr(out, n->flags.v[i]);
    }
    mk_buf_adds(out, "],\"args\":[");
    for (size_t i = 0; i < n->args.n; i++) {
        if (i)
            mk_buf_addc(out, ',');
        json_str(out, n->args.v[i], n->arg_lens[i]);
    }
    mk_buf_addf(out, "],\"json\":%s,\"heredocs\":[", n->json ? "true" : "false");
    for (size_t i = 0; i < n->n_heredocs; i++) {
        const struct mk_df_heredoc *h = &n->heredocs[i];
        if (i)
            mk_buf_addc(out, ',');
        mk_buf_adds(out, "{\"name\":");
        json_cstr(out, h->name);
        mk_buf_adds(out, ",\"content\":");
        json_cstr(out, h->content);
        mk_buf_addf(out, ",\"expand\":%s,\"chomp\":%s,\"fd\":%d}", h->expand ? "true" : "false",
                    h->chomp ? "true" : "false", h->fd);
    }
    mk_buf_adds(out, "]");
    if (n->onbuild) {
        mk_buf_adds(out, ",\"onbuild\":");
        json_node(n->onbuild, out);
    }
    mk_buf_addf(out, ",\"start_line\":%d,\"end_line\":%d}", n->start_line, n->end_line);
}

void mk_df_to_json(const struct mk_df *df, struct mk_buf *out)
{
    char esc[2] = {df->escape ? df->escape : '\\', 0};
    bool open = false;
    size_t count = 0;

    mk_buf_adds(out, "{\"directives\":{\"escape\":");
    json_cstr(out, esc);
    mk_buf_adds(out, ",\"syntax\":");
    json_cstr(out, df->syntax);
    mk_buf_adds(out, ",\"check\":");
    json_cstr(out, df->check);
    mk_buf_adds(out, "},\"stages\":[");
    /* Instructions before the first FROM (global ARGs) form a stage whose base is null. */
    for (size_t i = 0; i < df->n_nodes; i++) {
        const struct mk_df_node *n = &df->nodes[i];
        bool from = !strcmp(n->keyword, "from");
        if (from || !open) {
            if (open)
                mk_buf_adds(out, "]},");
            mk_buf_adds(out, "{\"name\":");
            if (from && n->args.n == 3 && !strcasecmp(n->args.v[1], "as"))
                json_cstr(out, n->args.v[2]);
            else
                mk_buf_adds(out, "null");
            mk_buf_adds(out, ",\"base\":");
            json_cstr(out, from && n->args.n > 0 ? n->args.v[0] : NULL);
            mk_buf_adds(out, ",\"instructions\":[");
            open = true;
            count = 0;
        }
        if (count++)
            mk_buf_addc(out, ',');
        json_node(n, out);
    }
    if (open)
        mk_buf_adds(out, "]}");
    mk_buf_adds(out, "],\"warnings\":[");
    for (size_t i = 0; i < df->n_warnings; i++) {
        if (i)
            mk_buf_addc(out, ',');
        mk_buf_adds(out, "{\"line\":");
        mk_buf_addf(out, "%d,\"message\":", df->warnings[i].line);
        json_cstr(out, df->warnings[i].msg);
        mk_buf_addc(out, '}');
    }
    mk_buf_adds(out, "]}\n");
}

/* ---- lookups ----------------------------------------------------------------------------------
 */

bool mk_df_node_flag(const struct mk_df_node *n, const char *name, const char **ret_value)
{
    size_t nl = strlen(name);
    const char *value = NULL;
    bool found = false;
    for (size_t i = 0; i < n->flags.n; i++) {
        const char *f = n->flags.v[i];
        if (strncmp(f, "--", 2) != 0 || strncmp(f + 2, name, nl) != 0)
            continue;
        if (f[2 + nl] == '=' || f[2 + nl] == 0) {
            value = f[2 + nl] == '=' ? f + 3 + nl : NULL;
            found = true;
        }
    }
    if (found && ret_value)
        *ret_value = value;
    return found;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[32];
    if (la >= 31 || lb >= 31)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

const char *mk_df_suggest_keyword(const char *word)
{
    _cleanup_free_ char *lower = parser_df_go_lower(word, strlen(word));
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; mk_df_keywords[i]; i++) {
        size_t dist = edit_distance(lower, mk_df_keywords[i]);
        if (dist < best_d) {
            best_d = dist;
            best = mk_df_keywords[i];
        }
    }
    return best;
}
