/* tests/unit/parser/tsv.h - reading the conformance tables (tab-separated, one header row,
 * JSON-encoded cells) for the word expansion, .dockerignore and context walker tests. */
#ifndef MK_TESTS_TSV_H
#define MK_TESTS_TSV_H

#include <jansson.h>
#include <stdbool.h>

#include "common/util.h"
#include "tap.h"

/* Rows that do not apply call tsv_skip_row (after their own tap_skip) and return true. */
static int tsv_skipped;
static inline void tsv_skip_row(void)
{
    tsv_skipped++;
}

/* Gets a row's cells (at least the count each_row was asked for); false = the row failed. */
typedef bool (*tsv_row_fn)(char **cells, int ncells);

/* Splits a line in place at tabs into at most max cells; returns the count. */
static inline int tsv_split(char *line, char **cells, int max)
{
    int n = 0;
    size_t len = strlen(line);
    if (len && line[len - 1] == '\n')
        line[len - 1] = '\0';
    cells[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == '\t') {
            *p = '\0';
            cells[n++] = p + 1;
        }
    }
    return n;
}

/* A JSON cell; a malformed one ends the test binary (the data is broken, not the code). */
static inline json_t *tsv_json(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (!j) {
        tap_ok(0, "json cell %s: %s", s, e.text);
        exit(tap_done());
    }
    return j;
}

static inline void tsv_strv_from_json(json_t *list, struct mk_strv *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) mk_strv_push(out, json_string_value(v));
}

static inline bool tsv_strv_equals_json(const struct mk_strv *got, json_t *want)
{
    if (got->n != json_array_size(want))
        return false;
    for (size_t i = 0; i < got->n; i++)
        if (strcmp(got->v[i], json_string_value(json_array_get(want, i))) != 0)
            return false;
    return true;
}

/* Runs row() over every data row of $MKIMG_CONFORMANCE/relpath and prints one line with the
 * pass count; each failing row also gets its own "not ok" line. */
static inline void tsv_each_row(const char *relpath, int min_cells, int want_rows, tsv_row_fn row)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", tap_conformance_dir(), relpath);
    FILE *f = fopen(path, "r");
    if (!f) {
        tap_ok(0, "open %s", path);
        return;
    }
    char *line = NULL, *c[12];
    size_t cap = 0;
    int n = 0, passed = 0, lineno = 1, skipped_before = tsv_skipped;
    if (getline(&line, &cap, f) < 0)
        tap_ok(0, "%s has a header", relpath);
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (tsv_split(line, c, 12) < min_cells)
            continue;
        n++;
        if (row(c, min_cells))
            passed++;
        else
            tap_ok(0, "%s line %d", relpath, lineno);
    }
    free(line);
    fclose(f);
    int skipped = tsv_skipped - skipped_before;
    tap_ok(n == want_rows && passed == n, "%s: %d/%d rows pass, %d not applicable (%d expected)",
           relpath, passed - skipped, n - skipped, skipped, want_rows);
}

#endif
