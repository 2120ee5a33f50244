/* lookup_batch.c: batch lookups (EXPORT_SERVICE_<NAME>_BATCH_URL).
 *
 * The stage (lookup_stage.c) hands over up to _BATCH_MAX entries at a time,
 * so that a job's n keys (its cache misses, with the cache on) go in
 * ceil(n / _BATCH_MAX) requests. A batch is one pool task: one turn of the
 * job's queue, one permit and one slot of the fleet-wide caps, one request
 * in lookup_requests per attempt (lookup_fetch, which retries it whole under
 * the rules of single lookups). Its answer is a JSON object with one member
 * per key, each holding what the single lookup would have answered: each
 * key's cells are read from its member as from a single answer, and each
 * member is offered to the shared cache as that key's answer. A key with no
 * member is a final lookup error for that key alone; an answer that is not
 * JSON, or not an object, fails every key of the batch. The first of several
 * members with one name wins, as in a JSON Pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exw/json.h"
#include "exw/log.h"
#include "lookup_int.h"

#define ANSWER_MAX_BYTES (256u << 20) /* whatever EXPORT_MAX_RESPONSE_BYTES times the keys */

struct batch_task {
    struct exw_task task; /* first: the pool hands this back */
    struct lookups *owner;
    struct lookup_entry **es;
    size_t n;
};

/* Fails every entry of @bt that has no result yet with @why. */
static void fail_rest(struct batch_task *bt, const char *why)
{
    size_t i;

    for (i = 0; i < bt->n; i++)
        if (bt->es[i]->cells == NULL && bt->es[i]->error == NULL)
            lookup_fail(bt->es[i], "%s", why);
}

/* The index of the entry whose key is the @len bytes at @name, by binary
 * search over @order (entry indexes sorted by key); -1 when none. */
static long find_key(const struct batch_task *bt, const size_t *order, const char *name, size_t len)
{
    size_t lo = 0, hi = bt->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *key = bt->es[order[mid]]->key;
        size_t klen = strlen(key);
        int c = memcmp(key, name, klen < len ? klen : len);

        if (c == 0)
            c = klen < len ? -1 : klen > len ? 1 : 0;
        if (c == 0)
            return (long)order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* An entry's index and key: qsort's comparison sees only what it sorts, so
 * the keys are sorted with their indexes. */
struct keyed {
    size_t index;
    const char *key;
};

static int compare_keyed(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

/* Reads the answer @body (@len bytes) into the entries of @bt. */
static void read_answer(struct batch_task *bt, const char *body, size_t len)
{
    struct lookups *l = bt->owner;
    struct keyed *sorted = exw_xcalloc(bt->n, sizeof(*sorted));
    size_t *order = exw_xcalloc(bt->n, sizeof(*order));
    struct exw_json_value root, name, value;
    struct exw_json_iter it;
    struct exw_errbuf eb;
    char *decoded = NULL;
    size_t cap = 0, i;
    char why[512];

    /* Each member is an answer, one level down. */
    if (exw_json_check(body, len, EXW_LOOKUP_MAX_DEPTH + 1, &eb) != EXW_OK) {
        snprintf(why, sizeof(why), "the batch answer of service %s is not JSON (%.150s)",
                 l->svc->name, eb.msg);
        fail_rest(bt, why);
        goto out;
    }
    exw_json_root(body, len, &root);
    if (root.kind != EXW_JSON_OBJECT) {
        snprintf(why, sizeof(why), "the batch answer of service %s is %s %s, not an object",
                 l->svc->name, root.kind == EXW_JSON_ARRAY ? "an" : "a",
                 exw_json_kind_name(root.kind));
        fail_rest(bt, why);
        goto out;
    }
    for (i = 0; i < bt->n; i++) {
        sorted[i].index = i;
        sorted[i].key = bt->es[i]->key;
    }
    qsort(sorted, bt->n, sizeof(*sorted), compare_keyed);
    for (i = 0; i < bt->n; i++)
        order[i] = sorted[i].index;
    exw_json_iter_init(&it, &root);
    while (exw_json_iter_next(&it, &name, &value)) {
        struct lookup_entry *e;
        size_t nlen;
        long at;

        if (name.len + 1 > cap) {
            cap = name.len + 1;
            decoded = exw_xrealloc(decoded, cap);
        }
        nlen = exw_json_string_decode(&name, decoded);
        at = find_key(bt, order, decoded, nlen);
        if (at < 0)
            continue;
        e = bt->es[at];
        if (e->cells != NULL || e->error != NULL)
            continue; /* the first member of a name wins */
        lookup_fill(l, e, value.text, value.len);
        lookup_stage_offer(l, e->key, value.text, value.len);
    }
    snprintf(why, sizeof(why), "missing from the batch answer of service %s", l->svc->name);
    fail_rest(bt, why);
out:
    free(decoded);
    free(order);
    free(sorted);
}

static void run_batch(struct exw_task *task, void *thread_ctx)
{
    struct batch_task *bt = (struct batch_task *)task;
    struct lookup_thread *t = thread_ctx;
    struct lookups *l = bt->owner;
    const char **keys = exw_xcalloc(bt->n, sizeof(*keys));
    size_t max_body = l->max_response_bytes;
    struct exw_http_response resp;
    struct exw_errbuf eb;
    char *url = NULL;
    char why[256];
    size_t i;

    exw_metrics_gauge_add(t->metrics, EXW_GAUGE_POOL_BUSY, 1);
    if (max_body <= ANSWER_MAX_BYTES / bt->n)
        max_body *= bt->n;
    else
        max_body = ANSWER_MAX_BYTES;
    exw_http_response_init(&resp, max_body);
    for (i = 0; i < bt->n; i++)
        keys[i] = bt->es[i]->key;
    if (exw_http_expand_batch(l->svc->batch_url, keys, bt->n, &url, &eb) != EXW_OK) {
        fail_rest(bt, eb.msg);
        goto out;
    }
    if (!lookup_fetch(l, t, url, bt->es, bt->n, &resp, why, sizeof(why))) {
        fail_rest(bt, why);
        goto out;
    }
    read_answer(bt, resp.body.data ? resp.body.data : "", resp.body.len);
out:
    free(url);
    free(keys);
    exw_http_response_cleanup(&resp);
    exw_metrics_gauge_add(t->metrics, EXW_GAUGE_POOL_BUSY, -1);
}

static void batch_done(struct exw_task *task, exw_err rc)
{
    struct batch_task *bt = (struct batch_task *)task;

    lookup_finish(bt->owner, bt->es, bt->n, 1, rc);
    free(bt->es);
    free(bt);
}

void lookup_batch_submit(struct lookups *l, struct lookup_entry **es, size_t n)
{
    struct batch_task *bt = exw_xcalloc(1, sizeof(*bt));

    bt->task.run = run_batch;
    bt->task.done = batch_done;
    bt->owner = l;
    bt->n = n;
    bt->es = exw_xmalloc(n * sizeof(*bt->es));
    memcpy(bt->es, es, n * sizeof(*bt->es));
    exw_mutex_lock(&l->mu);
    l->inflight += (long long)n;
    exw_mutex_unlock(&l->mu);
    if (exw_pool_submit(l->pool, &l->queue, &bt->task) != EXW_OK)
        batch_done(&bt->task, EXW_ESHUTDOWN);
}
