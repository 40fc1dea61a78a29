/* parser/parser.h - the Dockerfile language: bytes in, instructions out.
 *
 * Pure code: no files, processes or network. Three parts:
 *   1. The Dockerfile parser (BuildKit's parser package): directives, line continuations,
 *      heredocs, the per-keyword argument rules, the parse-tree dump and a JSON document.
 *   2. Word expansion (BuildKit's shell lexer): $V ${V:-w} ... with quotes and escapes.
 *   3. .dockerignore: reading the file and matching context paths (moby/patternmatcher).
 * Every input is bounded: line length, nesting depth and counts are capped, and malformed
 * input is an error, never a crash.
 */
#ifndef MK_PARSER_H
#define MK_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "common/util.h"

/* ---- 1. Dockerfile parser ---------------------------------------------------------------- */

struct mk_df_heredoc {
    char *name;    /* delimiter, quotes removed */
    char *content; /* body, lines verbatim with their newlines */
    bool expand;   /* false when any part of the delimiter was quoted */
    bool chomp;    /* <<- : leading tabs to be stripped by the consumer */
    int fd;        /* the optional digits before <<, or -1 */
};

struct mk_df_node {
    char
        *keyword; /* lowercase: "from", "run", ... (unknown keywords kept as written, lowercased) */
    char *original;             /* the instruction as written, continuation lines joined */
    struct mk_strv flags;       /* raw flags as written after unquoting, e.g. "--from=build" */
    struct mk_strv args;        /* argument nodes in BuildKit's shape (see the dump) */
    size_t *arg_lens;           /* byte length of each args.v[i]: a JSON "\u0000" embeds a NUL */
    bool json;                  /* exec (JSON array) form */
    struct mk_df_node *onbuild; /* ONBUILD: the nested instruction; args is then empty */
    struct mk_df_heredoc *heredocs;
    size_t n_heredocs;
    int start_line, end_line; /* 1-based, inclusive */
};

struct mk_df_warning {
    char *msg;
    int line;
};

struct mk_df {
    struct mk_df_node *nodes;
    size_t n_nodes;
    char escape;  /* '\\' or '`' */
    char *syntax; /* "# syntax=" value or NULL */
    char *check;  /* "# check=" value or NULL */
    struct mk_df_warning *warnings;
    size_t n_warnings;
};

/* Parses a whole Dockerfile. filename is used only for error locations ("Dockerfile:7").
 * On failure *err has code MK_ERR_PARSE and where = "FILENAME:LINE". Caller frees with
 * mk_df_free. */
int mk_df_parse(const char *data, size_t len, const char *filename, struct mk_df **ret,
                struct mk_error **err);
void mk_df_free(struct mk_df *df);

/* BuildKit's Node.Dump() format (one "(...)" line per instruction, each followed by "\n"). */
void mk_df_dump(const struct mk_df *df, struct mk_buf *out);
/* A stable JSON document: {"directives":{...},"stages":[{"name":..,"base":..,
 * "instructions":[{"keyword","flags","args","json","heredocs","start_line","end_line"}]}],
 * "warnings":[{"line","message"}]}. Instructions before the first FROM (global ARGs) form a
 * first stage whose name and base are null; ONBUILD adds "onbuild":{instruction}; heredocs are
 * {"name","content","expand","chomp","fd"} with fd -1 when absent. Ends with "\n". */
void mk_df_to_json(const struct mk_df *df, struct mk_buf *out);

/* Looks up --NAME=VALUE / --NAME in a node's flags; the last occurrence wins.
 * Returns true when present; *ret_value (when ret_value is not NULL) is the text after '='
 * (NULL for a bare --NAME), pointing into n. */
bool mk_df_node_flag(const struct mk_df_node *n, const char *name, const char **ret_value);

/* BuildKit's instruction-level checks (instructions.Parse), run by the builder before a build:
 * unknown instructions ("unknown instruction \"RUNN\" (did you mean \"RUN\"?)"), flags not
 * allowed for an instruction ("unknown flag: --foo"), wrong argument counts ("FROM requires
 * either one or three arguments", "COPY requires at least two arguments", ...), ONBUILD
 * ONBUILD / ONBUILD FROM / ONBUILD MAINTAINER, bad JSON where JSON is required (SHELL),
 * HEALTHCHECK option errors, no FROM before an instruction that needs a stage. Errors carry
 * where = "FILENAME:LINE" and code MK_ERR_INVALID. */
int mk_df_validate(const struct mk_df *df, const char *filename, struct mk_error **err);

/* Known instruction keywords (lowercase), for "did you mean" hints. NULL-terminated. */
extern const char *const mk_df_keywords[];
/* The closest keyword to word (edit distance <= 2), or NULL. */
const char *mk_df_suggest_keyword(const char *word);

/* ---- 2. Word expansion (shell lexer) ----------------------------------------------------- */

/* env is a list of "KEY=VALUE" (last entry wins; "KEY" alone means set to empty).
 * escape is '\\' or '`'. */

/* ProcessWord: expands and unquotes, one string, spaces kept. */
int mk_shell_word(const char *word, const struct mk_strv *env, char escape, char **ret,
                  struct mk_error **err);
/* ProcessWords: the same, then split into words at whitespace outside quotes. Appends to
 * ret_words. */
int mk_shell_words(const char *word, const struct mk_strv *env, char escape,
                   struct mk_strv *ret_words, struct mk_error **err);
/* Like mk_shell_word, also reports the names of variables the word referenced (appended
 * to ret_used, may be NULL), for cache keys. */
int mk_shell_word_used(const char *word, const struct mk_strv *env, char escape, char **ret,
                       struct mk_strv *ret_used, struct mk_error **err);

/* The expansion of a heredoc body (BuildKit's ExpandRaw: a lexer with SkipProcessQuotes and
 * the escape character '\\' whatever the Dockerfile's is): variables are expanded and
 * escapes taken, quotes are kept as they are. */
int mk_shell_word_keep_quotes(const char *word, const struct mk_strv *env, char **ret,
                              struct mk_error **err);

/* ---- 3. .dockerignore --------------------------------------------------------------------- */

struct mk_ignore;

/* ignorefile.ReadAll: the patterns of a .dockerignore file, in order. */
int mk_ignore_read(const char *data, size_t len, struct mk_strv *ret_patterns,
                   struct mk_error **err);
/* patternmatcher.New: compiles patterns ("!" prefix = exception). Caller frees. */
int mk_ignore_new(const struct mk_strv *patterns, struct mk_ignore **ret, struct mk_error **err);
void mk_ignore_free(struct mk_ignore *ig);
/* MatchesOrParentMatches: is the slash-separated context-relative path excluded? */
int mk_ignore_matches(const struct mk_ignore *ig, const char *path, bool *ret,
                      struct mk_error **err);
/* For walking: may some exception pattern re-include something below the excluded
 * directory dir? When false the walker skips the directory without descending. */
bool mk_ignore_dir_may_have_exceptions(const struct mk_ignore *ig, const char *dir);
bool mk_ignore_has_exceptions(const struct mk_ignore *ig);

#endif
