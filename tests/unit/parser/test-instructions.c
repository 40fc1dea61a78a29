/* mk_inst_parse: the typed instruction layer. Good inputs give the typed fields (shown in a
 * compact text form); bad inputs give the exact error, with its line. Also the expansion of
 * RUN --mount words (mk_run_mount_expand) and EXPOSE ports. */
#include <string.h>

#include "parser/parser.h"
#include "tap.h"

static void add_opt(struct mk_buf *b, const char *name, const char *v)
{
    if (v)
        mk_buf_addf(b, " %s=%s", name, v);
}

static void add_list(struct mk_buf *b, const char *name, const struct mk_strv *l)
{
    if (!l->n)
        return;
    mk_buf_addf(b, " %s=[", name);
    for (size_t i = 0; i < l->n; i++)
        mk_buf_addf(b, "%s%s", i ? "," : "", l->v[i]);
    mk_buf_addc(b, ']');
}

static void describe_mount(struct mk_buf *b, const struct mk_run_mount *m)
{
    static const char *const types[] = {"bind", "cache", "tmpfs", "secret"};
    static const char *const sharing[] = {"shared", "private", "locked"};
    mk_buf_addf(b, " {%s", types[m->type]);
    add_opt(b, "target", m->target);
    add_opt(b, "source", m->source);
    add_opt(b, "from", m->from);
    add_opt(b, "id", m->id);
    add_opt(b, "env", m->env);
    add_opt(b, "size", m->size);
    if (m->sharing != MK_RUN_MOUNT_SHARED)
        mk_buf_addf(b, " %s", sharing[m->sharing]);
    if (m->has_mode)
        mk_buf_addf(b, " mode=%o", m->mode);
    if (m->has_uid)
        mk_buf_addf(b, " uid=%u", m->uid);
    if (m->has_gid)
        mk_buf_addf(b, " gid=%u", m->gid);
    mk_buf_adds(b, m->readonly ? " ro" : "");
    mk_buf_adds(b, m->readwrite ? " rw" : "");
    mk_buf_adds(b, m->required ? " required" : "");
    mk_buf_addc(b, '}');
}

static void describe(struct mk_buf *b, const struct mk_inst *i)
{
    static const char *const nets[] = {"", "default", "none", "host"};
    mk_buf_adds(b, i->node->keyword);
    switch (i->kind) {
    case MK_INST_FROM:
        add_opt(b, "image", i->from.image);
        add_opt(b, "name", i->from.name);
        add_opt(b, "platform", i->from.platform);
        break;
    case MK_INST_RUN:
        if (i->run.network)
            mk_buf_addf(b, " network=%s", nets[i->run.network]);
        mk_buf_adds(b, i->run.insecure ? " insecure" : "");
        for (size_t k = 0; k < i->run.n_mounts; k++)
            describe_mount(b, &i->run.mounts[k]);
        break;
    case MK_INST_COPY:
    case MK_INST_ADD:
        add_opt(b, "from", i->copy.from);
        add_opt(b, "chown", i->copy.chown);
        add_opt(b, "chmod", i->copy.chmod);
        add_opt(b, "checksum", i->copy.checksum);
        mk_buf_adds(b, i->copy.link ? " link" : "");
        mk_buf_adds(b, i->copy.parents ? " parents" : "");
        mk_buf_adds(b, i->copy.keep_git_dir ? " keep-git-dir" : "");
        if (i->copy.unpack >= 0)
            mk_buf_addf(b, " unpack=%d", i->copy.unpack);
        add_list(b, "exclude", &i->copy.excludes);
        break;
    case MK_INST_ENV:
    case MK_INST_LABEL:
    case MK_INST_ARG:
        for (size_t k = 0; k < i->n_kvs; k++)
            mk_buf_addf(b, " %s%s%s", i->kvs[k].key, i->kvs[k].value ? "=" : "",
                        i->kvs[k].value ? i->kvs[k].value : "");
        break;
    case MK_INST_HEALTHCHECK:
        add_list(b, "test", &i->healthcheck.test);
        mk_buf_addf(b, " %lld/%lld/%lld/%lld/%d", (long long)i->healthcheck.interval,
                    (long long)i->healthcheck.timeout, (long long)i->healthcheck.start_period,
                    (long long)i->healthcheck.start_interval, i->healthcheck.retries);
        break;
    case MK_INST_ONBUILD:
        mk_buf_addf(b, " \"%s\" -> ", i->rest);
        describe(b, i->trigger);
        break;
    case MK_INST_WORKDIR:
    case MK_INST_USER:
    case MK_INST_STOPSIGNAL:
    case MK_INST_MAINTAINER:
        mk_buf_addf(b, " %s", i->word);
        break;
    default:
        mk_buf_adds(b, i->json ? " json" : "");
        add_list(b, "words", &i->words);
        break;
    }
}

/* The last instruction described, or "LINE: error". */
static char *check(const char *text)
{
    struct mk_df *df = NULL;
    struct mk_error *err = NULL;
    struct mk_inst_list l = {NULL, 0};
    struct mk_buf out = MK_BUF_INIT;
    if (mk_df_parse(text, strlen(text), "Dockerfile", &df, &err) < 0) {
        mk_buf_addf(&out, "parse: %s", err->msg);
    } else if (mk_inst_parse(df, "Dockerfile", &l, &err) < 0) {
        const char *w = err->where ? err->where : "?";
        mk_buf_addf(&out, "%s: %s",
                    mk_str_has_prefix(w, "Dockerfile:") ? w + strlen("Dockerfile:") : w, err->msg);
    } else {
        tap_ok(l.n == df->n_nodes && l.v[l.n - 1].node == &df->nodes[df->n_nodes - 1],
               "one instruction per node");
        describe(&out, &l.v[l.n - 1]);
    }
    mk_inst_list_release(&l);
    mk_error_free(err);
    mk_df_free(df);
    return mk_buf_detach(&out);
}

#define F "FROM a\n"
#define SUM "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct {
    const char *text, *want;
} cases[] = {
    /* good inputs: typed fields */
    {"FROM --platform=$BUILDPLATFORM Alpine:3 AS Build\n",
     "from image=Alpine:3 name=build platform=$BUILDPLATFORM"},
    {F "RUN --network=none --security=insecure true\n", "run network=none insecure"},
    {F "RUN --mount=type=cache,target=/c,id=x,sharing=locked,mode=0750,uid=1,gid=2 true\n",
     "run {cache target=/c id=x locked mode=750 uid=1 gid=2}"},
    {F "RUN --mount=TYPE=bind,src=s,dst=/d,from=b,ro --mount=type=tmpfs,destination=/t,size=1m "
       "true\n",
     "run {bind target=/d source=s from=b ro} {tmpfs target=/t size=1m}"},
    {F "RUN --mount=type=secret,id=tok,env=TOKEN,required=true,mode=0444 true\n",
     "run {secret id=tok env=TOKEN mode=444 required}"},
    {F "RUN --mount=type=secret,target=/run/t true\n", "run {secret target=/run/t}"},
    {F "RUN --mount=target=/x,rw=false,readwrite true\n", "run {bind target=/x rw}"},
    {F "RUN --mount=type=cache,target=$T,id=${ID},sharing=$S,mode=$M true\n",
     "run {cache target=$T id=${ID}}"},
    {F "COPY --from=b --chown=1:2 --chmod=u=rwx,go=rx --link --parents --exclude=*.o "
       "--exclude=x a /d/\n",
     "copy from=b chown=1:2 chmod=u=rwx,go=rx link parents exclude=[*.o,x]"},
    {F "ADD --checksum=" SUM " --keep-git-dir=true --unpack=false http://h/a /d\n",
     "add checksum=" SUM " keep-git-dir unpack=0"},
    {F "ADD --checksum=0123456789abcdef0123456789abcdef01234567 https://h/r.git /d\n",
     "add checksum=0123456789abcdef0123456789abcdef01234567"},
    {F "ENV A=1 B=\"two words\"\n", "env A=1 B=\"two words\""},
    {"ARG A=1 B\n" F, "from image=a"},
    {F "ARG A=${X:-1} B\n", "arg A=${X:-1} B"},
    {F "HEALTHCHECK --interval=1m30s --timeout=0 --start-interval=5ms --retries=3 CMD true\n",
     "healthcheck test=[CMD-SHELL,true] 90000000000/0/0/5000000/3"},
    {F "HEALTHCHECK CMD [\"a\", \"b\"]\n", "healthcheck test=[CMD,a,b] 0/0/0/0/0"},
    {F "HEALTHCHECK none\n", "healthcheck test=[NONE] 0/0/0/0/0"},
    {F "ONBUILD RUN --mount=type=tmpfs,target=/t echo\n",
     "onbuild \"RUN --mount=type=tmpfs,target=/t echo\" -> run {tmpfs target=/t}"},
    {F "SHELL [\"/bin/bash\", \"-c\"]\n", "shell json words=[/bin/bash,-c]"},
    {F "EXPOSE 80/tcp 53/UDP $P 1000-1002\n", "expose words=[80/tcp,53/UDP,$P,1000-1002]"},
    {F "USER me:grp\n", "user me:grp"},
    /* bad inputs: the exact error */
    {F "RUN --mount=type=ssh true\n",
     "2: --mount type \"ssh\" is not supported (use bind, cache, tmpfs or secret)"},
    {F "RUN --mount=type=cache,target=/c,sharing=sometimes true\n",
     "2: --mount sharing=sometimes: unknown mode (shared, private or locked)"},
    {F "RUN --mount=type=cache true\n", "2: --mount=type=cache: target is required"},
    {F "RUN --mount=type=cache,target=/c,mode=0999 true\n",
     "2: --mount=type=cache,target=/c,mode=0999: invalid mode, uid or gid"},
    {F "RUN --mount=type=cache,target=/c,uid=4294967296 true\n",
     "2: --mount=type=cache,target=/c,uid=4294967296: invalid mode, uid or gid"},
    {F "RUN --mount=target=/c,color=red true\n", "2: --mount=target=/c,color=red: unknown key "
                                                 "\"color\""},
    {F "RUN --mount=target=/c,ro=maybe true\n",
     "2: --mount=target=/c,ro=maybe: invalid boolean value \"maybe\" for ro"},
    {F "RUN --mount=target=/c,=x true\n", "2: --mount=target=/c,=x: a field has no key"},
    {F "RUN --mount=type=secret true\n",
     "2: --mount=type=secret: a secret needs an id or a target"},
    {F "RUN --mount=type=secret,id=a,env= true\n",
     "2: --mount=type=secret,id=a,env=: env= needs a variable name"},
    {F "RUN --mount=type=cache,target=/c,required true\n",
     "2: --mount=type=cache,target=/c,required: required= applies to secret mounts only"},
    {F "RUN --mount=type=bind,target=/c,size=1 true\n",
     "2: --mount=type=bind,target=/c,size=1: size= applies to tmpfs mounts only"},
    {F "RUN --network=bridge true\n",
     "2: unknown network mode \"bridge\" (use default, none or host)"},
    {F "RUN --security=lax true\n", "2: unknown security mode \"lax\" (use sandbox or insecure)"},
    {F "COPY --chmod=u+z a b\n", "2: invalid --chmod value \"u+z\" (octal, e.g. 0755, or "
                                 "symbolic, e.g. u=rwx,go=rx)"},
    {F "COPY --from=b <<EOF /d\nx\nEOF\n",
     "2: COPY with heredoc sources takes only heredocs as sources"},
    {F "ADD --checksum=md5:1 http://h/a /d\n",
     "2: invalid --checksum value \"md5:1\" (want sha256:<64 hex digits>)"},
    {F "ADD --checksum=" SUM " http://h/a http://h/b /d/\n",
     "2: checksum can't be specified for multiple sources"},
    {F "EXPOSE 80/http\n", "2: EXPOSE: invalid port \"80/http\": invalid proto \"http\""},
    {F "EXPOSE 2-1\n", "2: EXPOSE: invalid port \"2-1\": invalid containerPort: 2-1"},
    {F "HEALTHCHECK NONE --interval=1s\n", "2: HEALTHCHECK NONE takes no arguments"},
    {F "HEALTHCHECK --interval=1s NONE\n", "2: HEALTHCHECK NONE takes no arguments"},
    {F "ONBUILD RUN --mount=type=ssh x\n",
     "2: --mount type \"ssh\" is not supported (use bind, cache, tmpfs or secret)"},
    {F "ONBUILD RUNN x\n", "2: unknown instruction \"RUNN\" (did you mean \"RUN\"?)"},
};

/* A mount spec expanded with env: the typed result or the error. */
static char *expand(const char *spec, const char *env1)
{
    _cleanup_free_ char *text = mk_xasprintf(F "RUN --mount=%s true\n", spec);
    struct mk_df *df = NULL;
    struct mk_error *err = NULL;
    struct mk_inst_list l = {NULL, 0};
    struct mk_strv env = MK_STRV_INIT;
    struct mk_buf out = MK_BUF_INIT;
    struct mk_run_mount m;
    mk_strv_push(&env, env1);
    if (mk_df_parse(text, strlen(text), "Dockerfile", &df, &err) < 0 ||
        mk_inst_parse(df, "Dockerfile", &l, &err) < 0)
        mk_buf_addf(&out, "parse: %s", err->msg);
    else if (mk_run_mount_expand(&l.v[1].run.mounts[0], &env, '\\', &m, &err) < 0)
        mk_buf_addf(&out, "%s%s", err->where ? "where! " : "", err->msg);
    else {
        describe_mount(&out, &m);
        tap_ok(m.expanded, "expanded is set");
        mk_run_mount_release(&m);
    }
    mk_strv_release(&env);
    mk_inst_list_release(&l);
    mk_error_free(err);
    mk_df_free(df);
    return mk_buf_detach(&out);
}

static const struct {
    const char *spec, *env, *want;
} expansions[] = {
    {"type=cache,target=/c/$V,id=i-$V,sharing=$V", "V=private",
     " {cache target=/c/private id=i-private private}"},
    {"type=cache,target=/c,sharing=$V", "V=sometimes",
     "--mount sharing=sometimes: unknown mode (shared, private or locked)"},
    {"type=$V,target=/c", "V=ssh",
     "--mount type \"ssh\" is not supported (use bind, cache, tmpfs or secret)"},
    {"type=$V", "V=tmpfs", "--mount=type=$V: target is required"},
    {"type=cache,target=$V", "V=", "--mount=type=cache,target=$V: target is required"},
    {"type=secret,id=s,mode=$V,uid=${V:-1}", "V=0440", " {secret id=s mode=440 uid=440}"},
    {"target=/m,from=${V}", "V=builder", " {bind target=/m from=builder}"},
    {"target=/m,from=${V", "V=x",
     "--mount=target=/m,from=${V: failed to process \"${V\": unsupported modifier "
     "(\xef\xbf\xbd) in substitution"},
};

int main(void)
{
    for (size_t i = 0; i < MK_ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *got = check(cases[i].text);
        tap_is_str(got, cases[i].want, "case %zu: %s", i, cases[i].text);
    }
    for (size_t i = 0; i < MK_ARRAY_SIZE(expansions); i++) {
        _cleanup_free_ char *got = expand(expansions[i].spec, expansions[i].env);
        tap_is_str(got, expansions[i].want, "expand %s", expansions[i].spec);
    }
    struct mk_strv ports = MK_STRV_INIT;
    tap_ok(mk_inst_expose_ports("127.0.0.1:8080:80-81/UDP", &ports, NULL) == 0 && ports.n == 2 &&
               !strcmp(ports.v[0], "80/udp") && !strcmp(ports.v[1], "81/udp"),
           "EXPOSE range with host part");
    mk_strv_release(&ports);
    return tap_done();
}
