/* cli/template.h - `--format` as docker and podman take it: "json" (one JSON object a line),
 * "table TEMPLATE" (a header row, aligned columns) or a Go-template subset rendered for each
 * item (a jansson object; json_t stays inside cli/):
 *
 *   {{.Field}}  {{.A.B}}  {{.}}        a value; objects print as map[k:v], arrays as [a b]
 *   {{json .X}}                        the value as JSON
 *   {{index .M "key"}}                 a map entry ("" when missing) or array element
 *   {{upper .X}} {{lower .X}} {{join .X ", "}}
 *   {{range .X}}...{{end}}             the body for each element (then "." is the element)
 *   {{if .X}}...{{else}}...{{end}}     false, 0, "", null and empty lists/maps are false
 *   {{- ... -}}                        trims the whitespace beside the action
 *
 * "\t" and "\n" written as two characters become a tab and a newline; tabs separate columns
 * that are aligned when printed (docker's tabwriter: cells padded by 3, at least 10 wide).
 * A field that is not there is an error naming it, not an empty string.
 */
#ifndef MK_CLI_TEMPLATE_H
#define MK_CLI_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/error.h"
#include "common/util.h"

/* Renders tmpl over data into out. 0, or -1 with MK_ERR_USAGE naming the problem. */
int cli_template_render(const char *tmpl, json_t *data, struct mk_buf *out, struct mk_error **err);

struct cli_format {
    char *tmpl; /* NULL for "json" */
    bool table;
    struct mk_strv lines;
};

/* spec: "json", "table TEMPLATE" or a template; a bad template is found by cli_format_add. */
void cli_format_init(struct cli_format *f, const char *spec);
/* Renders one item; 0 or -1 (MK_ERR_USAGE). */
int cli_format_add(struct cli_format *f, json_t *item, struct mk_error **err);
/* Prints the rows (a header first for "table": the template over headers, an object mapping
 * each field to its column title) with aligned columns. */
void cli_format_print(struct cli_format *f, json_t *headers, FILE *out);
void cli_format_release(struct cli_format *f);

#endif
