/* bench/parse-bench.c - parser figures for issue 3: parse + expand a generated
 * 10,000-instruction Dockerfile, and match 100,000 context paths against a 50-pattern
 * .dockerignore. Prints best-of-N times; asserts nothing. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "parser/parser.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parse and expand a generated 10,000-instruction Dockerfile. */
static int bench_parse(void)
{
    struct mk_buf df = MK_BUF_INIT;
    mk_buf_adds(&df, "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE} AS build\n");
    for (int i = 0; df.len < (1u << 30) && i < 10000; i++) {
        switch (i % 8) {
        case 0:
            mk_buf_addf(&df, "ENV VAR%d=\"value $BASE %d\" OTHER%d=${BASE:-x}\n", i, i, i);
            break;
        case 1:
            mk_buf_addf(&df, "RUN echo step %d && \\\n    ls -la /tmp/%d\n", i, i);
            break;
        case 2:
            mk_buf_addf(&df, "COPY --chown=1000:1000 src/file%d.txt /app/dir%d/\n", i, i);
            break;
        case 3:
            mk_buf_addf(&df, "WORKDIR /app/${VAR%d:-w%d}\n", i - 3, i);
            break;
        case 4:
            mk_buf_addf(&df, "LABEL org.example.k%d=\"v %d\"\n", i, i);
            break;
        case 5:
            mk_buf_addf(&df, "ARG A%d=default%d\n", i, i);
            break;
        case 6:
            mk_buf_addf(&df, "RUN [\"/bin/sh\", \"-c\", \"echo %d\"]\n", i);
            break;
        default:
            mk_buf_addf(&df, "EXPOSE %d/tcp\n", 1000 + i);
            break;
        }
    }
    int reps = 20;
    double best_parse = 1e9, best_expand = 1e9;
    size_t n_nodes = 0, n_words = 0;
    for (int r = 0; r < reps; r++) {
        struct mk_df *d = NULL;
        struct mk_error *err = NULL;
        double t0 = now();
        if (mk_df_parse(df.data, df.len, "Dockerfile", &d, &err) < 0) {
            fprintf(stderr, "parse failed: %s\n", err->msg);
            mk_buf_release(&df);
            return 1;
        }
        double t1 = now();
        struct mk_strv env = MK_STRV_INIT;
        mk_strv_push(&env, "BASE=busybox");
        n_words = 0;
        for (size_t i = 0; i < d->n_nodes; i++) {
            const struct mk_df_node *nd = &d->nodes[i];
            if (!strcmp(nd->keyword, "run") || !strcmp(nd->keyword, "cmd"))
                continue; /* left to the shell */
            for (size_t a = 0; a < nd->args.n; a++) {
                char *out = NULL;
                if (mk_shell_word(nd->args.v[a], &env, '\\', &out, NULL) == 0)
                    n_words++;
                free(out);
            }
        }
        double t2 = now();
        if (t1 - t0 < best_parse)
            best_parse = t1 - t0;
        if (t2 - t1 < best_expand)
            best_expand = t2 - t1;
        n_nodes = d->n_nodes;
        mk_strv_release(&env);
        mk_df_free(d);
    }
    printf("parse:  %zu instructions (%zu bytes): %.2f ms (best of %d)\n", n_nodes, df.len,
           best_parse * 1e3, reps);
    printf("expand: %zu words: %.2f ms (best of %d)\n", n_words, best_expand * 1e3, reps);
    mk_buf_release(&df);
    return 0;
}

/* Match 100,000 context paths against a 50-pattern .dockerignore. */
static int bench_ignore(void)
{
    struct mk_strv pats = MK_STRV_INIT;
    for (int i = 0; i < 50; i++) {
        switch (i % 5) {
        case 0:
            mk_strv_pushf(&pats, "**/*.tmp%d", i % 4);
            break;
        case 1:
            mk_strv_pushf(&pats, "build%d/", i);
            break;
        case 2:
            mk_strv_pushf(&pats, "dir%d/*/cache", i);
            break;
        case 3:
            mk_strv_pushf(&pats, "!dir%d/keep*", i);
            break;
        default:
            mk_strv_pushf(&pats, "dir%d/**/*.log%d", i, i % 5);
            break;
        }
    }
    struct mk_ignore *ig = NULL;
    struct mk_error *err = NULL;
    if (mk_ignore_new(&pats, &ig, &err) < 0) {
        fprintf(stderr, "ignore: %s\n", err->msg);
        return 1;
    }
    struct mk_strv paths = MK_STRV_INIT;
    for (int i = 0; i < 100000; i++)
        mk_strv_pushf(&paths, "dir%d/sub%d/file%d.%s", i % 50, i % 97, i,
                      i % 3 ? "c" : (i % 2 ? "tmp3" : "log4"));
    double best_match = 1e9;
    size_t excluded = 0;
    for (int r = 0; r < 5; r++) {
        excluded = 0;
        double t0 = now();
        for (size_t i = 0; i < paths.n; i++) {
            bool m = false;
            mk_ignore_matches(ig, paths.v[i], &m, NULL);
            excluded += m;
        }
        double t1 = now();
        if (t1 - t0 < best_match)
            best_match = t1 - t0;
    }
    printf("ignore: %zu paths x %zu patterns: %.1f ms (%.2f us/path, %zu excluded, best of 5)\n",
           paths.n, pats.n, best_match * 1e3, best_match * 1e6 / (double)paths.n, excluded);
    mk_ignore_free(ig);
    mk_strv_release(&paths);
    mk_strv_release(&pats);
    return 0;
}

int main(void)
{
    return bench_parse() || bench_ignore() ? 1 : 0;
}
