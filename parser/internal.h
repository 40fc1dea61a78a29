/* parser/internal.h - declarations shared by the parser's files. Not a public API. */
#ifndef MK_PARSER_INTERNAL_H
#define MK_PARSER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parser/parser.h"

/* ---- shell lexer / dockerignore internals (parser/shell.c, parser/ignore.c) --------------- */

/* Caps on untrusted words: expansion output bytes and ${...} nesting depth. */
#define MK_SHELL_MAX_OUT (1u << 20)
#define MK_SHELL_MAX_DEPTH 64

/* Go's utf8.DecodeRune of s (len > 0): invalid sequences give U+FFFD with width 1. */
int32_t parser_utf8_decode(const char *s, size_t len, size_t *ret_width);
/* BuildKit's reversePattern: reverses a ${V%pat} pattern by code point, keeping each
 * backslash-escape pair in order ("a\*c" -> "c\*a"). Caller frees. */
char *parser_shell_reverse_pattern(const char *pattern);
/* Checks a ${V#pat} / ${V/pat/r} shell pattern the way convertShellPatternToRegex does
 * (only \*, \?, \\, \} and \/ are valid escapes). MK_ERR_PARSE on a bad pattern. */
int parser_shell_pattern_check(const char *pattern, struct mk_error **err);

/* patternmatcher's cleaned pattern list (for tests): "!" prefix on exclusions. */
void parser_ignore_patterns(const struct mk_ignore *ig, struct mk_strv *ret_patterns);
/* Pattern.compile for one cleaned pattern: "exact", "prefix", "suffix" or "regexp", and for
 * "regexp" the Go regexp text upstream would build (*ret_regexp, caller frees; else NULL). */
const char *parser_ignore_compile_debug(const char *pattern, char **ret_regexp);

/* ---- end shell lexer / dockerignore internals -------------------------------------------- */

/* ---- Dockerfile parser internals (parser/dockerfile.c, parser/df-*.c) -------------------- */

/* BuildKit reads lines with a bufio.Scanner capped at 64 KiB. */
#define MK_DF_MAX_LINE 65535
/* ONBUILD nests by recursion; upstream has no cap, we stop absurd chains. */
#define MK_DF_MAX_NESTING 32
/* Go's encoding/json nesting limit, so deep arrays fall back to shell form like upstream. */
#define MK_DF_JSON_MAX_DEPTH 10000

/* UTF-8 decoding is parser_utf8_decode (shell lexer section), Go's utf8.DecodeRune. */
void parser_df_encode_rune(struct mk_buf *out, uint32_t r);
/* Go's unicode.IsSpace. */
bool parser_df_is_space(uint32_t r);
/* Go's strconv.Quote of len bytes at s, appended to out. */
void parser_df_go_quote(struct mk_buf *out, const char *s, size_t len);
/* Go's strings.ToLower; caller frees. */
char *parser_df_go_lower(const char *s, size_t len);

/* parseWords (ARG/ENV/LABEL), escape is '\\' or '`'. Appends to ret_words. */
void parser_df_words(const char *s, size_t len, char escape, struct mk_strv *ret_words);

/* parseJSON: 0 = a JSON array of strings (ret_values and ret_lens filled; strings may hold
 * NULs, hence the lengths), 1 = not a JSON array (the caller falls back to shell form),
 * -1 = valid JSON array with a non-string element. */
int parser_df_json_array(const char *s, size_t len, struct mk_strv *ret_values, size_t **ret_lens);

/* ParseHeredoc on one word: 1 = heredoc (*ret filled, caller releases with
 * parser_df_heredoc_release), 0 = not a heredoc, -1 = lexing error. */
int parser_df_heredoc_word(const char *word, struct mk_df_heredoc *ret, struct mk_error **err);
/* heredocsFromLine: the heredocs an instruction line announces, in order. */
int parser_df_heredocs_from_line(const char *line, struct mk_df_heredoc **ret, size_t *ret_n,
                                 struct mk_error **err);
void parser_df_heredoc_release(struct mk_df_heredoc *h);

/* DetectSyntax / ParseDirective(key): the value of the first directive named key at the top
 * of data. Returns true when found; *ret_cmdline is the whole value, *ret_ref the value up to
 * the first space, *ret_line its 1-based line (0 for the JSON form). Callers free the strings.
 * any_format also accepts "//key=" comments and a whole-file JSON object (syntax only). */
bool parser_df_parse_directive(const char *key, const char *data, size_t len, bool any_format,
                               char **ret_ref, char **ret_cmdline, int *ret_line);
/* One line against ^PREFIX\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$: key lowercased. */
bool parser_df_directive_match(const char *line, size_t len, const char *prefix, char **ret_key,
                               char **ret_value);
/* syntax, escape or check. */
bool parser_df_valid_directive(const char *key);
/* The whole-file {"syntax": "..."} form (Go json.Unmarshal into a struct). */
bool parser_df_json_syntax(const char *s, size_t len, char **ret_value);
/* The directives at the top of data, as "name=value" in order (names lowercased). */
void parser_df_directives_all(const char *data, size_t len, struct mk_strv *ret);

/* ---- end Dockerfile parser internals ----------------------------------------------------- */

#endif
