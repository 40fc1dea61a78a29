/* Parallel transfers (registry/parallel.c) without a network: jobs run on clones of the
 * client, are waited for in order, and the first failure cancels the rest and is the one
 * reported. Run under ASan/UBSan by make check, which is where thread bugs show. */
#include <string.h>
#include <time.h>

#include "registry/internal.h"
#include "tap.h"

struct ctx {
    atomic_int started;
    atomic_int finished;
    atomic_bool clone_ok;
    int fail_at; /* -1 = none */
    const struct reg_client *parent;
};

static void nap(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Each job takes a little while; job fail_at fails; the others stop when cancelled. */
static int job(void *arg, struct reg_client *c, size_t i, struct mk_error **err)
{
    struct ctx *x = arg;
    atomic_fetch_add(&x->started, 1);
    if (c == x->parent || !c->cancel || strcmp(c->repo, x->parent->repo) != 0)
        atomic_store(&x->clone_ok, false);
    if ((int)i == x->fail_at) {
        nap(20);
        return mk_error_set(err, MK_ERR_FAILED, 0, "job %zu broke", i);
    }
    if (x->fail_at >= 0) {
        /* A long transfer: only cancellation ends it (bounded, so a bug fails, not hangs). */
        for (int k = 0; k < 500 && !reg_cancelled(c); k++)
            nap(10);
        if (reg_cancelled(c))
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "cancelled");
    }
    nap(5);
    atomic_fetch_add(&x->finished, 1);
    return 0;
}

int main(void)
{
    struct mk_ref *ref = NULL;
    struct reg_client *c = NULL;
    if (!tap_ok(mk_ref_parse("127.0.0.1:9/some/repo:1", &ref, NULL) == 0 &&
                    reg_client_new(ref, NULL, &c, NULL) == 0,
                "a client"))
        return tap_done();

    /* all succeed, waited for in order */
    struct ctx x = {.fail_at = -1, .parent = c};
    atomic_init(&x.started, 0);
    atomic_init(&x.finished, 0);
    atomic_init(&x.clone_ok, true);
    struct reg_pool *p = NULL;
    struct mk_error *err = NULL;
    tap_ok(reg_pool_start(c, 10, REG_PARALLEL, job, &x, &p, &err) == 0, "start 10 jobs");
    int waited = 0;
    for (size_t i = 0; i < 10; i++)
        waited += reg_pool_wait(p, i) == 0;
    tap_is_int(waited, 10, "each job waited for in turn");
    tap_is_int(reg_pool_finish(p, false, &err), 0, "finish");
    tap_ok(err == NULL, "no error");
    tap_is_int(atomic_load(&x.finished), 10, "every job ran");
    tap_ok(atomic_load(&x.clone_ok), "jobs run on clones sharing the pool's cancel flag");
    tap_ok(c->cancel == NULL, "the caller's client is left alone");

    /* job 2 fails: the others are cancelled, job 2's error is the one reported */
    atomic_store(&x.started, 0);
    atomic_store(&x.finished, 0);
    x.fail_at = 2;
    p = NULL;
    tap_ok(reg_pool_start(c, 40, REG_PARALLEL, job, &x, &p, &err) == 0, "start 40 jobs");
    tap_is_int(reg_pool_wait(p, 30), -1, "waiting for a later job reports the failure");
    tap_is_int(reg_pool_finish(p, false, &err), -1, "finish fails");
    tap_ok(err && strcmp(err->msg, "job 2 broke") == 0, "with the first failure's error");
    tap_ok(atomic_load(&x.started) < 40, "no new job starts after a failure");
    tap_is_int(atomic_load(&x.finished), 0, "running jobs were cancelled");
    mk_error_free(err);
    err = NULL;

    /* the caller gives up (its own error stays): running jobs stop */
    atomic_store(&x.started, 0);
    x.fail_at = 99;
    p = NULL;
    tap_ok(reg_pool_start(c, 8, 2, job, &x, &p, &err) == 0, "start 8 jobs on 2 threads");
    mk_error_set(&err, MK_ERR_FAILED, 0, "unpacking failed");
    nap(20);
    tap_is_int(reg_pool_finish(p, true, &err), -1, "finish with cancel");
    tap_ok(err && strcmp(err->msg, "unpacking failed") == 0, "the caller's error is kept");
    tap_ok(atomic_load(&x.started) <= 2, "only the running jobs started");
    mk_error_free(err);
    err = NULL;

    /* a backoff of a cancelled client ends at once */
    atomic_bool flag;
    atomic_init(&flag, true);
    c->cancel = &flag;
    tap_ok(!reg_backoff(c, 6), "a cancelled backoff says stop");
    tap_ok(reg_cancelled(c), "the client is cancelled");
    c->cancel = NULL;

    tap_is_int(reg_pool_finish(NULL, true, NULL), 0, "finish accepts NULL");
    reg_client_free(c);
    mk_ref_free(ref);
    return tap_done();
}
