/* layerstore/config.c - the OCI image config (with Docker's extensions) to and from JSON. */
#include <string.h>

#include "layerstore/internal.h"

/* Caps on what an untrusted config may hold. */
#define CFG_MAX_LIST 100000
#define CFG_MAX_HISTORY 10000

/* ---- parse -------------------------------------------------------------------------------- */

static int get_str(json_t *obj, const char *key, char **ret, struct mk_error **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"%s\" is not a string", key);
    *ret = mk_xstrdup(json_string_value(v));
    return 0;
}

/* Returns 1 when the list was present (even empty), 0 when absent or null. */
static int get_strv(json_t *obj, const char *key, struct mk_strv *ret, struct mk_error **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > CFG_MAX_LIST)
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"%s\" is not a string list", key);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return mk_error_set(err, MK_ERR_PARSE, 0,
                                "image config: \"%s\" holds a value that is not a string", key);
        mk_strv_push(ret, json_string_value(e));
    }
    return 1;
}

/* {"K": "V"} -> "K=V"; with keys_only {"K": {}} -> "K". */
static int get_map(json_t *obj, const char *key, bool keys_only, struct mk_strv *ret,
                   struct mk_error **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > CFG_MAX_LIST)
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"%s\" is not an object", key);
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        if (keys_only) {
            mk_strv_push(ret, k);
        } else if (json_is_string(e)) {
            mk_strv_pushf(ret, "%s=%s", k, json_string_value(e));
        } else {
            return mk_error_set(err, MK_ERR_PARSE, 0,
                                "image config: \"%s\" value of \"%s\" is not a string", key, k);
        }
    }
    return 0;
}

static int get_int64(json_t *obj, const char *key, int64_t *ret, struct mk_error **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"%s\" is not an integer", key);
    *ret = (int64_t)json_integer_value(v);
    return 0;
}

static int get_bool(json_t *obj, const char *key, bool *ret, struct mk_error **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"%s\" is not a boolean", key);
    *ret = json_is_true(v);
    return 0;
}

static int parse_healthcheck(json_t *hc, struct mk_healthcheck *ret, struct mk_error **err)
{
    if (!hc || json_is_null(hc))
        return 0;
    if (!json_is_object(hc))
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"Healthcheck\" is not an object");
    int64_t retries = 0;
    ret->set = true;
    if (get_strv(hc, "Test", &ret->test, err) < 0 ||
        get_int64(hc, "Interval", &ret->interval, err) < 0 ||
        get_int64(hc, "Timeout", &ret->timeout, err) < 0 ||
        get_int64(hc, "StartPeriod", &ret->start_period, err) < 0 ||
        get_int64(hc, "StartInterval", &ret->start_interval, err) < 0 ||
        get_int64(hc, "Retries", &retries, err) < 0)
        return -1;
    if (retries < 0 || retries > 1000000)
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"Retries\" is out of range");
    ret->retries = (int)retries;
    return 0;
}

static int parse_exec(json_t *c, struct mk_image_config *cfg, struct mk_error **err)
{
    if (!c || json_is_null(c))
        return 0;
    if (!json_is_object(c))
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"config\" is not an object");
    int r;
    if (get_str(c, "User", &cfg->user, err) < 0 ||
        get_str(c, "WorkingDir", &cfg->working_dir, err) < 0 ||
        get_str(c, "StopSignal", &cfg->stop_signal, err) < 0 ||
        get_strv(c, "Env", &cfg->env, err) < 0)
        return -1;
    if ((r = get_strv(c, "Entrypoint", &cfg->entrypoint, err)) < 0)
        return -1;
    cfg->has_entrypoint = r > 0;
    if ((r = get_strv(c, "Cmd", &cfg->cmd, err)) < 0)
        return -1;
    cfg->has_cmd = r > 0;
    if (get_strv(c, "Shell", &cfg->shell, err) < 0 ||
        get_strv(c, "OnBuild", &cfg->onbuild, err) < 0 ||
        get_map(c, "Labels", false, &cfg->labels, err) < 0 ||
        get_map(c, "ExposedPorts", true, &cfg->exposed_ports, err) < 0 ||
        get_map(c, "Volumes", true, &cfg->volumes, err) < 0 ||
        get_bool(c, "ArgsEscaped", &cfg->args_escaped, err) < 0 ||
        parse_healthcheck(json_object_get(c, "Healthcheck"), &cfg->healthcheck, err) < 0)
        return -1;
    return 0;
}

static int parse_history(json_t *h, struct mk_image_config *cfg, struct mk_error **err)
{
    if (!h || json_is_null(h))
        return 0;
    if (!json_is_array(h) || json_array_size(h) > CFG_MAX_HISTORY)
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"history\" is not a list");
    cfg->history = mk_xcalloc(json_array_size(h) + 1, sizeof(*cfg->history));
    size_t i;
    json_t *e;
    json_array_foreach(h, i, e)
    {
        if (!json_is_object(e))
            return mk_error_set(err, MK_ERR_PARSE, 0,
                                "image config: a history entry is not an object");
        struct mk_history *hi = &cfg->history[cfg->n_history++];
        if (get_str(e, "created", &hi->created, err) < 0 ||
            get_str(e, "created_by", &hi->created_by, err) < 0 ||
            get_str(e, "author", &hi->author, err) < 0 ||
            get_str(e, "comment", &hi->comment, err) < 0 ||
            get_bool(e, "empty_layer", &hi->empty_layer, err) < 0)
            return -1;
    }
    return 0;
}

static int parse_rootfs(json_t *r, struct mk_image_config *cfg, struct mk_error **err)
{
    if (!r || json_is_null(r))
        return 0;
    if (!json_is_object(r))
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: \"rootfs\" is not an object");
    json_t *type = json_object_get(r, "type");
    if (type && !json_is_null(type) &&
        !(json_is_string(type) && strcmp(json_string_value(type), "layers") == 0))
        return mk_error_set(err, MK_ERR_INVALID, 0, "image config: rootfs type is not \"layers\"");
    if (get_strv(r, "diff_ids", &cfg->diff_ids, err) < 0)
        return -1;
    for (size_t i = 0; i < cfg->diff_ids.n; i++)
        if (!mk_digest_valid(cfg->diff_ids.v[i]))
            return mk_error_set(err, MK_ERR_INVALID, 0, "image config: unsupported diff_id \"%s\"",
                                cfg->diff_ids.v[i]);
    return 0;
}

int layerstore_config_parse(const char *json, size_t len, struct mk_image_config *ret,
                            struct mk_error **err)
{
    json_error_t jerr;
    _cleanup_json_ json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: %s (at offset %d)", jerr.text,
                            jerr.position);
    if (!json_is_object(root))
        return mk_error_set(err, MK_ERR_PARSE, 0, "image config: not a JSON object");
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (get_str(root, "architecture", &cfg.architecture, err) < 0 ||
        get_str(root, "os", &cfg.os, err) < 0 || get_str(root, "variant", &cfg.variant, err) < 0 ||
        get_str(root, "created", &cfg.created, err) < 0 ||
        get_str(root, "author", &cfg.author, err) < 0 ||
        parse_exec(json_object_get(root, "config"), &cfg, err) < 0 ||
        parse_rootfs(json_object_get(root, "rootfs"), &cfg, err) < 0 ||
        parse_history(json_object_get(root, "history"), &cfg, err) < 0) {
        layerstore_config_release(&cfg);
        return -1;
    }
    *ret = cfg;
    return 0;
}

/* ---- serialize ---------------------------------------------------------------------------- */

json_t *ls_strv_json(const struct mk_strv *sv)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sv->n; i++)
        json_array_append_new(a, json_string(sv->v[i]));
    return a;
}

static void set_str(json_t *obj, const char *key, const char *v)
{
    if (v)
        json_object_set_new(obj, key, json_string(v));
}

static void set_strv(json_t *obj, const char *key, const struct mk_strv *sv, bool even_empty)
{
    if (sv->n || even_empty)
        json_object_set_new(obj, key, ls_strv_json(sv));
}

static void set_map(json_t *obj, const char *key, const struct mk_strv *sv, bool keys_only)
{
    if (!sv->n)
        return;
    json_t *m = json_object();
    for (size_t i = 0; i < sv->n; i++) {
        const char *eq = keys_only ? NULL : strchr(sv->v[i], '=');
        if (keys_only) {
            json_object_set_new(m, sv->v[i], json_object());
        } else {
            _cleanup_free_ char *k =
                eq ? mk_xstrndup(sv->v[i], (size_t)(eq - sv->v[i])) : mk_xstrdup(sv->v[i]);
            json_object_set_new(m, k, json_string(eq ? eq + 1 : ""));
        }
    }
    json_object_set_new(obj, key, m);
}

json_t *ls_config_exec_json(const struct mk_image_config *cfg)
{
    json_t *c = json_object();
    set_str(c, "User", cfg->user);
    set_map(c, "ExposedPorts", &cfg->exposed_ports, true);
    set_strv(c, "Env", &cfg->env, false);
    set_strv(c, "Entrypoint", &cfg->entrypoint, cfg->has_entrypoint);
    set_strv(c, "Cmd", &cfg->cmd, cfg->has_cmd);
    set_map(c, "Volumes", &cfg->volumes, true);
    set_str(c, "WorkingDir", cfg->working_dir);
    set_map(c, "Labels", &cfg->labels, false);
    set_str(c, "StopSignal", cfg->stop_signal);
    if (cfg->healthcheck.set) {
        const struct mk_healthcheck *hc = &cfg->healthcheck;
        json_t *h = json_object();
        set_strv(h, "Test", &hc->test, true);
        if (hc->interval)
            json_object_set_new(h, "Interval", json_integer(hc->interval));
        if (hc->timeout)
            json_object_set_new(h, "Timeout", json_integer(hc->timeout));
        if (hc->start_period)
            json_object_set_new(h, "StartPeriod", json_integer(hc->start_period));
        if (hc->start_interval)
            json_object_set_new(h, "StartInterval", json_integer(hc->start_interval));
        if (hc->retries)
            json_object_set_new(h, "Retries", json_integer(hc->retries));
        json_object_set_new(c, "Healthcheck", h);
    }
    if (cfg->args_escaped)
        json_object_set_new(c, "ArgsEscaped", json_true());
    set_strv(c, "OnBuild", &cfg->onbuild, false);
    set_strv(c, "Shell", &cfg->shell, false);
    return c;
}

json_t *ls_history_json(const struct mk_image_config *cfg)
{
    json_t *h = json_array();
    for (size_t i = 0; i < cfg->n_history; i++) {
        const struct mk_history *hi = &cfg->history[i];
        json_t *e = json_object();
        set_str(e, "created", hi->created);
        set_str(e, "created_by", hi->created_by);
        set_str(e, "author", hi->author);
        set_str(e, "comment", hi->comment);
        if (hi->empty_layer)
            json_object_set_new(e, "empty_layer", json_true());
        json_array_append_new(h, e);
    }
    return h;
}

char *layerstore_config_serialize(const struct mk_image_config *cfg)
{
    _cleanup_json_ json_t *root = json_object();
    set_str(root, "created", cfg->created);
    set_str(root, "author", cfg->author);
    json_object_set_new(root, "architecture",
                        json_string(cfg->architecture ? cfg->architecture : ""));
    set_str(root, "variant", cfg->variant);
    json_object_set_new(root, "os", json_string(cfg->os ? cfg->os : ""));
    json_object_set_new(root, "config", ls_config_exec_json(cfg));
    json_t *rootfs = json_object();
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", ls_strv_json(&cfg->diff_ids));
    json_object_set_new(root, "rootfs", rootfs);
    if (cfg->n_history)
        json_object_set_new(root, "history", ls_history_json(cfg));
    /* Insertion order is the fixed key order; map keys come out in the order they are held. */
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        MK_BUG("json_dumps failed");
    /* Hand out memory the caller can free() whatever jansson's allocator is. */
    char *out = mk_xstrdup(s);
    free(s);
    return out;
}

/* ---- copy, release, history --------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? mk_xstrdup(s) : NULL;
}

void layerstore_config_copy(struct mk_image_config *dst, const struct mk_image_config *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->architecture = dup_or_null(src->architecture);
    dst->os = dup_or_null(src->os);
    dst->variant = dup_or_null(src->variant);
    dst->created = dup_or_null(src->created);
    dst->author = dup_or_null(src->author);
    dst->user = dup_or_null(src->user);
    dst->working_dir = dup_or_null(src->working_dir);
    dst->stop_signal = dup_or_null(src->stop_signal);
    mk_strv_copy(&dst->env, &src->env);
    mk_strv_copy(&dst->entrypoint, &src->entrypoint);
    dst->has_entrypoint = src->has_entrypoint;
    mk_strv_copy(&dst->cmd, &src->cmd);
    dst->has_cmd = src->has_cmd;
    mk_strv_copy(&dst->shell, &src->shell);
    mk_strv_copy(&dst->onbuild, &src->onbuild);
    mk_strv_copy(&dst->labels, &src->labels);
    mk_strv_copy(&dst->exposed_ports, &src->exposed_ports);
    mk_strv_copy(&dst->volumes, &src->volumes);
    dst->healthcheck = src->healthcheck;
    memset(&dst->healthcheck.test, 0, sizeof(dst->healthcheck.test));
    mk_strv_copy(&dst->healthcheck.test, &src->healthcheck.test);
    dst->args_escaped = src->args_escaped;
    mk_strv_copy(&dst->diff_ids, &src->diff_ids);
    for (size_t i = 0; i < src->n_history; i++) {
        const struct mk_history *h = &src->history[i];
        layerstore_config_add_history(dst, h->created, h->created_by, h->comment, h->empty_layer);
        dst->history[dst->n_history - 1].author = dup_or_null(h->author);
    }
}

void layerstore_config_release(struct mk_image_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->architecture);
    free(cfg->os);
    free(cfg->variant);
    free(cfg->created);
    free(cfg->author);
    free(cfg->user);
    free(cfg->working_dir);
    free(cfg->stop_signal);
    mk_strv_release(&cfg->env);
    mk_strv_release(&cfg->entrypoint);
    mk_strv_release(&cfg->cmd);
    mk_strv_release(&cfg->shell);
    mk_strv_release(&cfg->onbuild);
    mk_strv_release(&cfg->labels);
    mk_strv_release(&cfg->exposed_ports);
    mk_strv_release(&cfg->volumes);
    mk_strv_release(&cfg->healthcheck.test);
    mk_strv_release(&cfg->diff_ids);
    for (size_t i = 0; i < cfg->n_history; i++) {
        free(cfg->history[i].created);
        free(cfg->history[i].created_by);
        free(cfg->history[i].author);
        free(cfg->history[i].comment);
    }
    free(cfg->history);
    memset(cfg, 0, sizeof(*cfg));
}

void layerstore_config_add_history(struct mk_image_config *cfg, const char *created,
                                   const char *created_by, const char *comment, bool empty_layer)
{
    cfg->history = mk_xreallocarray(cfg->history, cfg->n_history + 1, sizeof(*cfg->history));
    struct mk_history *h = &cfg->history[cfg->n_history++];
    memset(h, 0, sizeof(*h));
    h->created = dup_or_null(created);
    h->created_by = dup_or_null(created_by);
    h->comment = dup_or_null(comment);
    h->empty_layer = empty_layer;
}
