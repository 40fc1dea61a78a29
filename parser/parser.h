/* parser/parser.h - the Dockerfile language: bytes in, instructions out.
 *
 * Pure code: no files, processes or network. Three parts:
 *   1. The Dockerfile parser (BuildKit's parser package): directives, line continuations,
 *      heredocs, the per-keyword argument rules, the parse-tree dump and a JSON document.
 *      Then the typed instructions (BuildKit's instructions package): one struct mk_inst per
 *      node with typed flags, and every rule about an instruction, checked once.
 *   2. Word expansion (BuildKit's shell lexer): $V ${V:-w} ... with quotes and escapes.
 *   3. .dockerignore: reading the file and matching context paths (moby/patternmatcher).
 * Every input is bounded: line length, nesting depth and counts are capped, and malformed
 * input is an error, never a crash.
 */
#ifndef MK_PARSER_H
#define MK_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- 1b. Typed instructions (BuildKit's instructions.Parse) --------------------------------
 *
 * Every rule about an instruction is checked here, once: known keywords, allowed flags and
 * their types, duplicates, argument counts, RUN --mount keys and values, allowed network,
 * security, sharing and checksum values, HEALTHCHECK durations, EXPOSE ports, COPY --chmod.
 * Errors have code MK_ERR_INVALID and where = "FILENAME:LINE".
 *
 * Flag values and arguments are words: they may hold $VAR that only the builder can expand
 * (with the stage's ARGs and ENV, as BuildKit does). Such words are kept as written; a value
 * whose meaning depends on its expansion (a --mount "mode=$M") is checked when the builder
 * expands it through the functions below, with the same messages. Everything else is final
 * after mk_inst_parse: the builder never reads a flag string. */

enum mk_inst_kind {
    MK_INST_FROM,
    MK_INST_RUN,
    MK_INST_COPY,
    MK_INST_ADD,
    MK_INST_WORKDIR,
    MK_INST_ENV,
    MK_INST_LABEL,
    MK_INST_ARG,
    MK_INST_CMD,
    MK_INST_ENTRYPOINT,
    MK_INST_SHELL,
    MK_INST_EXPOSE,
    MK_INST_HEALTHCHECK,
    MK_INST_USER,
    MK_INST_VOLUME,
    MK_INST_STOPSIGNAL,
    MK_INST_ONBUILD,
    MK_INST_MAINTAINER,
};

enum mk_run_mount_type {
    MK_RUN_MOUNT_BIND,
    MK_RUN_MOUNT_CACHE,
    MK_RUN_MOUNT_TMPFS,
    MK_RUN_MOUNT_SECRET,
};

enum mk_run_mount_sharing {
    MK_RUN_MOUNT_SHARED,
    MK_RUN_MOUNT_PRIVATE,
    MK_RUN_MOUNT_LOCKED,
};

/* One RUN --mount=SPEC. The fields are split and their keys checked (type, target|dst|
 * destination, source|src, from, id, sharing, mode, uid, gid, ro|readonly, rw|readwrite,
 * required, env, size). Straight from mk_inst_parse the words (target, source, from, id,
 * env, size) are as written and the typed fields hold only what needed no expansion; from
 * mk_run_mount_expand everything is expanded and checked. */
struct mk_run_mount {
    char *spec;          /* the flag value as written, for cache keys and messages */
    struct mk_strv keys; /* the fields, keys lowercased ("ro" alone: value "") */
    struct mk_strv values;
    bool expanded; /* made by mk_run_mount_expand */
    enum mk_run_mount_type type;
    char *target, *source, *from, *id, *env, *size; /* NULL when absent */
    enum mk_run_mount_sharing sharing;
    bool readonly;  /* ro / readonly */
    bool readwrite; /* rw / readwrite */
    bool required;  /* secrets only */
    bool has_mode, has_uid, has_gid;
    unsigned mode; /* <= 07777 */
    uint32_t uid, gid;
};

enum mk_run_network { MK_RUN_NET_UNSET, MK_RUN_NET_DEFAULT, MK_RUN_NET_NONE, MK_RUN_NET_HOST };

struct mk_inst_run {
    struct mk_run_mount *mounts;
    size_t n_mounts;
    enum mk_run_network network;
    bool insecure; /* --security=insecure (--security=sandbox is the default) */
};

/* COPY and ADD. Words: from, chown, excludes. chmod is checked (octal or symbolic) and used
 * as written, as before. */
struct mk_inst_copy {
    char *from, *chown, *chmod; /* NULL when absent */
    bool link, parents;
    struct mk_strv excludes;
    /* ADD only */
    char *checksum; /* "sha256:<64 hex>" or a git commit (40 or 64 hex digits), or NULL */
    bool keep_git_dir;
    int unpack; /* --unpack: -1 absent, 0 false, 1 true */
};

struct mk_inst_from {
    char *image;    /* word, expanded with the global ARGs */
    char *name;     /* AS name, lowercased, or NULL */
    char *platform; /* --platform word, or NULL */
};

/* ENV and LABEL (value always set) and ARG (value NULL without a default): words. */
struct mk_inst_kv {
    char *key, *value;
};

struct mk_inst_healthcheck {
    struct mk_strv test; /* {"NONE"}, {"CMD", args...} or {"CMD-SHELL", command} */
    int64_t interval, timeout, start_period, start_interval; /* ns, 0 when absent */
    int retries;                                             /* 0 when absent */
};

struct mk_inst {
    enum mk_inst_kind kind;
    const struct mk_df_node *node; /* borrowed: lines, original text, args, heredocs */
    const char *rest;              /* node->original after the keyword and flags */
    union {
        struct mk_inst_from from;
        struct mk_inst_run run;
        struct mk_inst_copy copy; /* COPY, ADD */
        struct {                  /* ENV, LABEL, ARG */
            struct mk_inst_kv *kvs;
            size_t n_kvs;
        };
        struct mk_strv words; /* EXPOSE, VOLUME: words; CMD, ENTRYPOINT, SHELL: the command
                               * (exec form: the array; shell form: one string) */
        char *word;           /* WORKDIR, USER, STOPSIGNAL, MAINTAINER */
        struct mk_inst_healthcheck healthcheck;
        struct mk_inst *trigger; /* ONBUILD: the nested instruction */
    };
    bool json; /* CMD, ENTRYPOINT, SHELL, RUN: exec form */
};

/* The instructions of df, v[i] made from df->nodes[i]; df must outlive them. Also checks
 * the file as a whole: no instruction but ARG before the first FROM, no duplicate stage
 * name, at least one stage. Caller releases with mk_inst_list_release. */
struct mk_inst_list {
    struct mk_inst *v;
    size_t n;
};
int mk_inst_parse(const struct mk_df *df, const char *filename, struct mk_inst_list *ret,
                  struct mk_error **err);
void mk_inst_list_release(struct mk_inst_list *l);
/* One instruction (ONBUILD triggers of a base image). Caller releases ret. */
int mk_inst_parse_node(const struct mk_df_node *n, const char *filename, struct mk_inst *ret,
                       struct mk_error **err);
void mk_inst_release(struct mk_inst *inst);

/* Expands every word of m with env (mk_shell_word) and checks the result; errors have no
 * location (the caller adds the instruction's). Caller releases ret. */
int mk_run_mount_expand(const struct mk_run_mount *m, const struct mk_strv *env, char escape,
                        struct mk_run_mount *ret, struct mk_error **err);
void mk_run_mount_release(struct mk_run_mount *m);

/* One expanded EXPOSE word as BuildKit's parsePort reads it ([[ip:]host:]port[-end][/proto]):
 * appends "PORT/proto" for every port of the range. MK_ERR_INVALID with
 * "EXPOSE: invalid port \"WORD\": why" (no location). */
int mk_inst_expose_ports(const char *word, struct mk_strv *ret_ports, struct mk_error **err);

/* The mode a COPY --chmod value gives an entry whose mode is cur: octal ("755", "0755") or
 * symbolic as chmod(1) ("u=rwx,go=rx", "a+X", "g=u-w"; no umask applies). Returns -1 when
 * spec is neither. */
int mk_chmod_apply(const char *spec, unsigned cur, bool is_dir, unsigned *ret);

/* mk_inst_parse without keeping the result: the checks alone (`mkimg parse --check`). */
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
