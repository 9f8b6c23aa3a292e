/*
 * ngx_http_ucaasauth_module: the EnableX UCaaS Authorization header at the
 * proxy, from libucaasauth's shared token cache.
 *
 *     ucaasauth_profile NAME | off;        http, server, location
 *     $ucaasauth_authorization             "Token ..." or "Basic ..."
 *
 * Written in nginx's own style (it is built by nginx's build system, as
 * Debian's libnginx-mod-* are), and against the public C ABI only
 * (ucaasauth.h, libucaasauth.so.1). See docs/nginx.md.
 *
 * SPDX-License-Identifier: MIT
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ucaasauth.h>


#define NGX_HTTP_UCAASAUTH_PREFIX      "Authorization: "
#define NGX_HTTP_UCAASAUTH_BUF         4096
#define NGX_HTTP_UCAASAUTH_ERROR_MAX   1024
/* A profile that did not open is tried again at most this often. */
#define NGX_HTTP_UCAASAUTH_REOPEN      1000


/* One profile named by ucaasauth_profile: opened once per worker. */
typedef struct {
    ngx_str_t                  name;        /* NUL-terminated */
    struct ucaasauth          *ua;          /* this worker's handle */
    int                        open_status;
    ngx_msec_t                 reopen_at;
    u_char                     open_error[NGX_HTTP_UCAASAUTH_ERROR_MAX];
} ngx_http_ucaasauth_profile_t;


typedef struct {
    /* ngx_http_ucaasauth_profile_t *: each allocated once, as locations
     * point to them and the array may move when it grows */
    ngx_array_t                profiles;
} ngx_http_ucaasauth_main_conf_t;


typedef struct {
    /* NULL: off; NGX_CONF_UNSET_PTR: not set at this level */
    ngx_http_ucaasauth_profile_t  *profile;
} ngx_http_ucaasauth_loc_conf_t;


/*
 * The header line sent for one request. Found through the request's ctx,
 * or, after an internal redirect zeroed the ctx, through the pool cleanup
 * that wipes it (as ngx_http_realip_module finds its own).
 */
typedef struct {
    ngx_http_request_t            *request;
    ngx_http_ucaasauth_profile_t  *profile;
    u_char                        *line;    /* "Authorization: ...", NUL */
    size_t                         len;
    /* r->upstream_states->nelts when the line was fetched: the upstream
     * attempts made with this line are the ones after it. */
    ngx_uint_t                     states;
    unsigned                       rejected:1;
} ngx_http_ucaasauth_req_t;


static ngx_int_t ngx_http_ucaasauth_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_ucaasauth_init(ngx_conf_t *cf);
static void *ngx_http_ucaasauth_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_ucaasauth_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ucaasauth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ucaasauth_profile(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ucaasauth_init_process(ngx_cycle_t *cycle);
static void ngx_http_ucaasauth_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_ucaasauth_commands[] = {

    { ngx_string("ucaasauth_profile"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ucaasauth_profile,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ucaasauth_module_ctx = {
    ngx_http_ucaasauth_add_variables,      /* preconfiguration */
    ngx_http_ucaasauth_init,               /* postconfiguration */

    ngx_http_ucaasauth_create_main_conf,   /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ucaasauth_create_loc_conf,    /* create location configuration */
    ngx_http_ucaasauth_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_ucaasauth_module = {
    NGX_MODULE_V1,
    &ngx_http_ucaasauth_module_ctx,        /* module context */
    ngx_http_ucaasauth_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_ucaasauth_init_process,       /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_ucaasauth_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_ucaasauth_variable_name =
    ngx_string("ucaasauth_authorization");

static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


/* The public statuses by name, for the error log. */
static const char *
ngx_http_ucaasauth_status_name(int status)
{
    switch (status) {
    case UCAASAUTH_OK:            return "UCAASAUTH_OK";
    case UCAASAUTH_E_INVALID:     return "UCAASAUTH_E_INVALID";
    case UCAASAUTH_E_CONFIG:      return "UCAASAUTH_E_CONFIG";
    case UCAASAUTH_E_CREDENTIALS: return "UCAASAUTH_E_CREDENTIALS";
    case UCAASAUTH_E_DENIED:      return "UCAASAUTH_E_DENIED";
    case UCAASAUTH_E_UNAVAILABLE: return "UCAASAUTH_E_UNAVAILABLE";
    case UCAASAUTH_E_PROTOCOL:    return "UCAASAUTH_E_PROTOCOL";
    case UCAASAUTH_E_CACHE:       return "UCAASAUTH_E_CACHE";
    case UCAASAUTH_E_TIMEOUT:     return "UCAASAUTH_E_TIMEOUT";
    case UCAASAUTH_E_TOOSMALL:    return "UCAASAUTH_E_TOOSMALL";
    case UCAASAUTH_E_NOMEM:       return "UCAASAUTH_E_NOMEM";
    }

    return "UCAASAUTH_E_?";
}


static const char *
ngx_http_ucaasauth_last_error(void)
{
    const char  *e;

    e = ucaasauth_last_error();

    return e ? e : "no detail";
}


static void
ngx_http_ucaasauth_open(ngx_log_t *log, ngx_http_ucaasauth_profile_t *p)
{
    int  rc;

    rc = ucaasauth_open(&p->ua, (const char *) p->name.data, 0);

    if (rc == UCAASAUTH_OK) {
        p->open_status = UCAASAUTH_OK;
        p->open_error[0] = '\0';

        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "ucaasauth: profile \"%V\" opened", &p->name);
        return;
    }

    p->ua = NULL;
    p->open_status = rc;
    p->reopen_at = ngx_current_msec + NGX_HTTP_UCAASAUTH_REOPEN;

    /* last_error() is this thread's and changes with the next failure:
     * keep the text (it never holds a secret) for the requests' log. */
    ngx_cpystrn(p->open_error, (u_char *) ngx_http_ucaasauth_last_error(),
                sizeof(p->open_error));

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "ucaasauth: profile \"%V\" cannot be opened: %s (%s): %s",
                  &p->name, ucaasauth_strerror(rc),
                  ngx_http_ucaasauth_status_name(rc), p->open_error);
}


static void
ngx_http_ucaasauth_wipe(ngx_http_ucaasauth_req_t *rq)
{
    if (rq->line) {
        ngx_explicit_memzero(rq->line, rq->len);
        rq->line = NULL;
        rq->len = 0;
    }
}


static void
ngx_http_ucaasauth_cleanup(void *data)
{
    ngx_http_ucaasauth_wipe(data);
}


static ngx_http_ucaasauth_req_t *
ngx_http_ucaasauth_get_req(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t        *cln;
    ngx_http_ucaasauth_req_t  *rq;

    rq = ngx_http_get_module_ctx(r, ngx_http_ucaasauth_module);

    if (rq) {
        return rq;
    }

    /* An internal redirect or a named location (error_page, try_files,
     * "rewrite ... last") zeroed the ctx: the line sent before it is still
     * ours to reject and wipe. */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_ucaasauth_cleanup) {
            rq = cln->data;

            if (rq->request == r) {
                ngx_http_set_ctx(r, rq, ngx_http_ucaasauth_module);
                return rq;
            }
        }
    }

    return NULL;
}


/*
 * A 401 or 403 from the upstream to the line this request sent: tell the
 * library, so that the next request gets a fresh token. The library drops
 * the token only if it is still the host's current one, so N workers that
 * see the same 401 cause one login.
 */
static void
ngx_http_ucaasauth_check_refused(ngx_http_request_t *r,
    ngx_http_ucaasauth_req_t *rq)
{
    int                         rc;
    ngx_uint_t                  i, status;
    ngx_http_upstream_state_t  *state;

    if (rq->rejected || rq->line == NULL || rq->profile->ua == NULL
        || r->upstream_states == NULL)
    {
        return;
    }

    state = r->upstream_states->elts;
    status = 0;

    /* Every attempt made with this line (proxy_next_upstream resends the
     * same request, header included). */

    for (i = rq->states; i < r->upstream_states->nelts; i++) {
        if (state[i].status == NGX_HTTP_UNAUTHORIZED
            || state[i].status == NGX_HTTP_FORBIDDEN)
        {
            status = state[i].status;
            break;
        }
    }

    if (status == 0) {
        return;
    }

    rq->rejected = 1;

    rc = ucaasauth_reject(rq->profile->ua, (const char *) rq->line);

    if (rc != UCAASAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ucaasauth: profile \"%V\": the upstream answered %ui "
                      "and the header could not be rejected: %s (%s): %s",
                      &rq->profile->name, status, ucaasauth_strerror(rc),
                      ngx_http_ucaasauth_status_name(rc),
                      ngx_http_ucaasauth_last_error());
        return;
    }

    /* info, as nginx logs what clients cause: a 403 for one endpoint's
     * permission comes with every such request. */
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ucaasauth: profile \"%V\": the upstream answered %ui, "
                  "header rejected", &rq->profile->name, status);
}


/*
 * Gets the header line into rq, or logs why not. A line is only ever one
 * the library returned as valid just now: never an older one.
 */
static ngx_int_t
ngx_http_ucaasauth_fetch(ngx_http_request_t *r,
    ngx_http_ucaasauth_profile_t *p, ngx_http_ucaasauth_req_t *rq)
{
    int        rc;
    u_char    *line;
    size_t     len, size;
    ngx_log_t  *log;
    u_char     buf[NGX_HTTP_UCAASAUTH_BUF];

    log = r->connection->log;

    if (p->ua == NULL && ngx_current_msec >= p->reopen_at) {
        ngx_http_ucaasauth_open(log, p);
    }

    if (p->ua == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ucaasauth: profile \"%V\" is not open, no "
                      "Authorization header: %s (%s): %s",
                      &p->name, ucaasauth_strerror(p->open_status),
                      ngx_http_ucaasauth_status_name(p->open_status),
                      p->open_error);
        return NGX_ERROR;
    }

    line = buf;
    size = sizeof(buf);

    /* The lock-free path, unless a login is due: then this call is the
     * one login on the host, or waits for it (bounded by wait_timeout). */

    rc = ucaasauth_header(p->ua, (char *) line, size, &len);

    if (rc == UCAASAUTH_E_TOOSMALL) {
        size = len + 1;
        line = ngx_pnalloc(r->pool, size);

        if (line == NULL) {
            ngx_explicit_memzero(buf, sizeof(buf));
            return NGX_ERROR;
        }

        rc = ucaasauth_header(p->ua, (char *) line, size, &len);
    }

    if (rc != UCAASAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ucaasauth: profile \"%V\": no Authorization header: "
                      "%s (%s): %s",
                      &p->name, ucaasauth_strerror(rc),
                      ngx_http_ucaasauth_status_name(rc),
                      ngx_http_ucaasauth_last_error());
        goto failed;
    }

    if (len <= sizeof(NGX_HTTP_UCAASAUTH_PREFIX) - 1
        || ngx_strncmp(line, NGX_HTTP_UCAASAUTH_PREFIX,
                       sizeof(NGX_HTTP_UCAASAUTH_PREFIX) - 1) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "ucaasauth: profile \"%V\": the library's header is "
                      "not an Authorization header", &p->name);
        goto failed;
    }

    if (line == buf) {
        line = ngx_pnalloc(r->pool, len + 1);

        if (line == NULL) {
            goto failed;
        }

        ngx_memcpy(line, buf, len + 1);
        ngx_explicit_memzero(buf, sizeof(buf));
    }

    rq->profile = p;
    rq->line = line;
    rq->len = len;
    rq->states = r->upstream_states ? r->upstream_states->nelts : 0;
    rq->rejected = 0;

    return NGX_OK;

failed:

    ngx_explicit_memzero(line, size);
    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_ERROR;
}


/*
 * Precontent phase: after access control (an unauthenticated client never
 * causes a login), before proxy_pass builds the upstream request. The
 * variable cannot refuse a request (an empty value only drops the header
 * line), so the refusal is here: a clear 502, never a request without the
 * header.
 */
static ngx_int_t
ngx_http_ucaasauth_handler(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_ucaasauth_req_t       *rq;
    ngx_http_ucaasauth_loc_conf_t  *ulcf;

    ulcf = ngx_http_get_module_loc_conf(r, ngx_http_ucaasauth_module);

    if (ulcf->profile == NULL) {
        return NGX_DECLINED;
    }

    rq = ngx_http_ucaasauth_get_req(r);

    if (rq) {
        /* Another pass of this request, after an internal redirect: an
         * error_page retry after a 401 rejects the line it sent first. */
        ngx_http_ucaasauth_check_refused(r, rq);
        ngx_http_ucaasauth_wipe(rq);

    } else {
        cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_ucaasauth_req_t));
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rq = cln->data;
        ngx_memzero(rq, sizeof(ngx_http_ucaasauth_req_t));
        rq->request = r;
        rq->profile = ulcf->profile;

        cln->handler = ngx_http_ucaasauth_cleanup;

        ngx_http_set_ctx(r, rq, ngx_http_ucaasauth_module);
    }

    if (ngx_http_ucaasauth_fetch(r, ulcf->profile, rq) != NGX_OK) {
        return NGX_HTTP_BAD_GATEWAY;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_ucaasauth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    size_t                     n;
    ngx_http_ucaasauth_req_t  *rq;

    rq = ngx_http_ucaasauth_get_req(r);

    if (rq == NULL || rq->line == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ucaasauth: $ucaasauth_authorization is empty here: "
                      "no ucaasauth_profile applies to this location");
        v->not_found = 1;
        return NGX_OK;
    }

    n = sizeof(NGX_HTTP_UCAASAUTH_PREFIX) - 1;

    v->data = rq->line + n;
    v->len = rq->len - n;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ucaasauth_header_filter(ngx_http_request_t *r)
{
    ngx_http_ucaasauth_req_t        *rq;
    ngx_http_ucaasauth_main_conf_t  *umcf;

    umcf = ngx_http_get_module_main_conf(r, ngx_http_ucaasauth_module);

    /* Only proxied answers, in a configuration that uses the module. */

    if (r->upstream_states && umcf->profiles.nelts) {
        rq = ngx_http_ucaasauth_get_req(r);

        if (rq) {
            ngx_http_ucaasauth_check_refused(r, rq);
        }
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_ucaasauth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_http_ucaasauth_variable_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_ucaasauth_variable;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ucaasauth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ucaasauth_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_ucaasauth_header_filter;

    return NGX_OK;
}


static void *
ngx_http_ucaasauth_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ucaasauth_main_conf_t  *umcf;

    umcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ucaasauth_main_conf_t));
    if (umcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&umcf->profiles, cf->pool, 2,
                       sizeof(ngx_http_ucaasauth_profile_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return umcf;
}


static void *
ngx_http_ucaasauth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ucaasauth_loc_conf_t  *ulcf;

    ulcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ucaasauth_loc_conf_t));
    if (ulcf == NULL) {
        return NULL;
    }

    ulcf->profile = NGX_CONF_UNSET_PTR;

    return ulcf;
}


static char *
ngx_http_ucaasauth_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ucaasauth_loc_conf_t  *prev = parent;
    ngx_http_ucaasauth_loc_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->profile, prev->profile, NULL);

    return NGX_CONF_OK;
}


static char *
ngx_http_ucaasauth_profile(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ucaasauth_loc_conf_t  *ulcf = conf;

    u_char                           c;
    ngx_str_t                       *value;
    ngx_uint_t                       i;
    ngx_http_ucaasauth_profile_t    *p, **pp;
    ngx_http_ucaasauth_main_conf_t  *umcf;

    if (ulcf->profile != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ulcf->profile = NULL;
        return NGX_CONF_OK;
    }

    /* The library's rule for profile names, checked here so that
     * "nginx -t" reports it rather than every worker's first request. */

    if (value[1].len == 0 || value[1].len > 64) {
        goto invalid;
    }

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if ((c < 'a' || c > 'z') && (c < 'A' || c > 'Z')
            && (c < '0' || c > '9') && c != '-' && c != '_')
        {
            goto invalid;
        }
    }

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ucaasauth_module);

    pp = umcf->profiles.elts;

    for (i = 0; i < umcf->profiles.nelts; i++) {
        if (pp[i]->name.len == value[1].len
            && ngx_strcmp(pp[i]->name.data, value[1].data) == 0)
        {
            ulcf->profile = pp[i];
            return NGX_CONF_OK;
        }
    }

    p = ngx_pcalloc(cf->pool, sizeof(ngx_http_ucaasauth_profile_t));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    pp = ngx_array_push(&umcf->profiles);
    if (pp == NULL) {
        return NGX_CONF_ERROR;
    }

    *pp = p;

    /* value[1].data is NUL-terminated by the configuration parser. */
    p->name = value[1];
    p->open_status = UCAASAUTH_E_CONFIG;
    ngx_cpystrn(p->open_error, (u_char *) "not opened yet",
                sizeof(p->open_error));

    ulcf->profile = p;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid profile name \"%V\": 1 to 64 letters, "
                       "digits, \"-\" or \"_\"", &value[1]);
    return NGX_CONF_ERROR;
}


/*
 * Each worker opens the profiles itself, after nginx has switched it to
 * the "user" of the configuration, rather than the master (init_module)
 * handing down one handle over fork(). The library's cache and daemon
 * access belong to a uid: opened by a root master, the worker would use
 * root's cache (not shared with www-data's other clients) and ucaas-authd
 * would check root against allow_groups. On "nginx -s reload" the master
 * never holds a handle, the new workers open the new configuration, and
 * the old ones keep their own handle until they have drained and exit.
 */
static ngx_int_t
ngx_http_ucaasauth_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                       i;
    ngx_http_ucaasauth_profile_t   **pp;
    ngx_http_ucaasauth_main_conf_t  *umcf;

    /* Not in the cache manager and loader: they serve no request, and
     * need neither the secrets nor the cache. */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_get_conf(cycle->conf_ctx, ngx_http_module) == NULL) {
        return NGX_OK;
    }

    umcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ucaasauth_module);
    if (umcf == NULL) {
        return NGX_OK;
    }

    pp = umcf->profiles.elts;

    /* A profile that fails to open is logged and tried again by the
     * requests that need it; returning NGX_ERROR would make the master
     * give up on the worker altogether. */

    for (i = 0; i < umcf->profiles.nelts; i++) {
        ngx_http_ucaasauth_open(cycle->log, pp[i]);
    }

    return NGX_OK;
}


static void
ngx_http_ucaasauth_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                       i;
    ngx_http_ucaasauth_profile_t   **pp;
    ngx_http_ucaasauth_main_conf_t  *umcf;

    if (ngx_get_conf(cycle->conf_ctx, ngx_http_module) == NULL) {
        return;
    }

    umcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_ucaasauth_module);
    if (umcf == NULL) {
        return;
    }

    pp = umcf->profiles.elts;

    for (i = 0; i < umcf->profiles.nelts; i++) {
        ucaasauth_close(pp[i]->ua);
        pp[i]->ua = NULL;
    }
}
