/* builder/step.c - helpers shared by the builder's rooms: errors at a Dockerfile line,
 * logging, word expansion, history entries, a stage's layers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/internal.h"
#include "builder/rooms.h"
#include "common/fsutil.h"
#include "parser/parser.h"

/* ---- small helpers ------------------------------------------------------------------------ */

char *where_of(struct build *b, const struct mk_df_node *n)
{
    return mk_xasprintf("%s:%d", b->df_name, n->start_line);
}

__attribute__((format(printf, 4, 5))) int node_error(struct build *b, const struct mk_df_node *n,
                                                     struct mk_error **err, const char *fmt, ...)
{
    _cleanup_free_ char *where = where_of(b, n);
    if (err && *err) {
        /* Keep the cause, add the context; the Dockerfile line is where the user looks, so
         * it replaces a callee's location (an image name the context names anyway). */
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *ctx = mk_xvasprintf(fmt, ap);
        va_end(ap);
        mk_error_wrap(err, "%s", ctx);
        if ((*err)->where && !mk_str_has_prefix((*err)->where, b->df_name)) {
            free((*err)->where);
            (*err)->where = NULL;
        }
        return mk_error_set_where(err, where);
    }
    va_list ap;
    va_start(ap, fmt);
    mk_error_setv(err, MK_ERR_INVALID, 0, fmt, ap);
    va_end(ap);
    return mk_error_set_where(err, where);
}

/* Adds the instruction's location to an error a callee set. */
int node_where(struct build *b, const struct mk_df_node *n, struct mk_error **err)
{
    _cleanup_free_ char *where = where_of(b, n);
    return mk_error_set_where(err, where);
}

void logf_(struct build *b, const char *fmt, ...)
{
    if (b->silent)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = mk_xvasprintf(fmt, ap);
    va_end(ap);
    builder_progress_log(b->ui, s);
}

/* Expansion environment of a stage: ARGs first, ENV after (ENV wins, as in BuildKit). */
void stage_expand_env(const struct stage *s, struct mk_strv *env)
{
    mk_strv_copy(env, &s->args);
    mk_strv_copy(env, &s->config.env);
}

int expand_word(struct build *b, const struct stage *s, const struct mk_df_node *n,
                const char *word, char **ret, struct mk_error **err)
{
    struct mk_strv env = MK_STRV_INIT;
    stage_expand_env(s, &env);
    int r = mk_shell_word(word, &env, b->df->escape, ret, err);
    mk_strv_release(&env);
    if (r < 0)
        return node_where(b, n, err);
    return 0;
}

void history(struct build *b, struct stage *s, const char *created_by, bool empty)
{
    layerstore_config_add_history(&s->config, b->created, created_by,
                                  empty ? NULL : "buildkit.dockerfile.v0", empty);
}

void stage_release(struct stage *s)
{
    free(s->name);
    stage_reset(s);
    free(s->deps);
}

void stage_add_layer(struct stage *s, const struct mk_layer_desc *d, const char *chain,
                     const char *snapshot)
{
    s->layers = mk_xreallocarray(s->layers, s->n_layers + 1, sizeof(*s->layers));
    s->layers[s->n_layers] = *d;
    s->layers[s->n_layers].media_type =
        mk_xstrdup(d->media_type ? d->media_type : MK_MEDIA_OCI_LAYER);
    s->n_layers++;
    mk_strv_push(&s->config.diff_ids, d->diff_id);
    memcpy(s->chain, chain, MK_DIGEST_SIZE);
    /* lowerdirs are top-most first */
    struct mk_strv nl = MK_STRV_INIT;
    mk_strv_push(&nl, snapshot);
    mk_strv_copy(&nl, &s->lowerdirs);
    mk_strv_release(&s->lowerdirs);
    s->lowerdirs = nl;
}

bool strv_has(const struct mk_strv *l, const char *v)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], v) == 0)
            return true;
    return false;
}

/* Splits "k=v,k2=v2,flag" into a KEY=VALUE list ("flag" alone = "flag="). */
void split_kv(const char *spec, struct mk_strv *out)
{
    _cleanup_free_ char *copy = mk_xstrdup(spec);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const char *eq = strchr(t, '=');
        if (eq) {
            _cleanup_free_ char *k = mk_xstrndup(t, (size_t)(eq - t));
            for (char *p = k; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            mk_strv_pushf(out, "%s=%s", k, eq + 1);
        } else {
            mk_strv_pushf(out, "%s=", t);
        }
    }
}

/* A list as Go's fmt prints a []string in BuildKit's history lines: %v gives
 * "[a b]", %q gives "[\"a\" \"b\"]" (strconv.Quote escapes). */
char *go_list(const struct mk_strv *l, bool quote)
{
    struct mk_buf out = MK_BUF_INIT;
    mk_buf_addc(&out, '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            mk_buf_addc(&out, ' ');
        if (!quote) {
            mk_buf_adds(&out, l->v[i]);
            continue;
        }
        mk_buf_addc(&out, '"');
        for (const unsigned char *p = (const unsigned char *)l->v[i]; *p; p++) {
            static const char named[] = "abtnvfr";
            if (*p == '"' || *p == '\\') {
                mk_buf_addc(&out, '\\');
                mk_buf_addc(&out, (char)*p);
            } else if (*p >= 7 && *p <= 13) {
                mk_buf_addc(&out, '\\');
                mk_buf_addc(&out, named[*p - 7]);
            } else if (*p < 0x20 || *p == 0x7f) {
                mk_buf_addf(&out, "\\x%02x", *p);
            } else {
                mk_buf_addc(&out, (char)*p);
            }
        }
        mk_buf_addc(&out, '"');
    }
    mk_buf_addc(&out, ']');
    return mk_buf_detach(&out);
}

void strv_add_unique(struct mk_strv *l, const char *v)
{
    if (!strv_has(l, v))
        mk_strv_push(l, v);
}
