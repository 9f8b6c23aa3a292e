/*
 * libucaasauth - the Authorization header for the EnableX UCaaS REST API.
 *
 * ABI promise: this header describes ABI version 1 (soname libucaasauth.so.1,
 * symbol version UCAASAUTH_1). Functions are only ever added, never changed
 * or removed, within one soname; status numbers are assigned once and never
 * renumbered, new statuses are added after the last one. Programs should
 * treat any negative status they do not know as a failure.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef UCAASAUTH_H
#define UCAASAUTH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UCAASAUTH_VERSION_MAJOR 0
#define UCAASAUTH_VERSION_MINOR 1
#define UCAASAUTH_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, for compile-time comparisons. */
#define UCAASAUTH_VERSION_NUM 100
#define UCAASAUTH_VERSION "0.1.0"

#if defined(__GNUC__) || defined(__clang__)
#define UCAASAUTH_WARN_UNUSED __attribute__((__warn_unused_result__))
#else
#define UCAASAUTH_WARN_UNUSED
#endif

/* Status codes. Every function that can fail returns one of these. */
enum {
	UCAASAUTH_OK = 0,
	UCAASAUTH_E_INVALID = -1, /* a bad argument */
	UCAASAUTH_E_CONFIG = -2,  /* bad or missing configuration or profile */
	UCAASAUTH_E_CREDENTIALS = -3, /* credential store unreadable, wrong key,
	                                 tampered or unsafe permissions */
	UCAASAUTH_E_DENIED = -4,      /* the server refused the credentials */
	UCAASAUTH_E_UNAVAILABLE = -5, /* server unreachable, 5xx or timed out,
	                                 and no valid token cached */
	UCAASAUTH_E_PROTOCOL = -6,    /* malformed server answer */
	UCAASAUTH_E_CACHE = -7,       /* shared cache unsafe or unusable */
	UCAASAUTH_E_TIMEOUT = -8,     /* waited too long for another process's
	                                 refresh */
	UCAASAUTH_E_TOOSMALL = -9,    /* the output buffer is too small */
	UCAASAUTH_E_NOMEM = -10,      /* out of memory */
};

/* An open profile. Opaque; only reached through the functions below. */
struct ucaasauth;

/*
 * Opens a profile: reads the configuration file, picks the profile `profile`
 * (NULL picks the file's default_profile, or the profile named "default"),
 * decrypts the secrets that profile's providers need into guarded memory
 * (locked, excluded from core dumps), opens its provider stack (loading
 * provider modules) and attaches to the host's shared token cache. For a
 * profile with cache = daemon it reads no credential: it attaches to
 * ucaas-authd's read-only segment (or, if the daemon is not running yet,
 * at the first ucaasauth_header() call). It does no network I/O.
 *
 * The configuration file is $UCAASAUTH_CONFIG when set (ignored in
 * set-uid programs; a missing file is then an error, not a reason to look
 * elsewhere), else the first of ~/.config/ucaasauth/ucaasauth.conf and
 * /etc/ucaasauth/ucaasauth.conf that exists.
 *
 * `flags` is reserved and must be 0.
 *
 * On success *ret points to a new handle owned by the caller, to be freed
 * with ucaasauth_close(); on failure *ret is not written. A handle may be
 * used by many threads at once, and keeps working in a child after fork().
 *
 * Returns UCAASAUTH_OK, or:
 *   UCAASAUTH_E_INVALID      ret is NULL, profile is not a valid name,
 *                            or flags is not 0;
 *   UCAASAUTH_E_CONFIG       no configuration file, a syntax error, an
 *                            unknown or duplicate key, a bad value, a
 *                            missing required key, no such profile, an
 *                            unreadable ca_file, or a provider module or
 *                            exec command that is missing, unsafe
 *                            (writable by others) or of another
 *                            interface version;
 *   UCAASAUTH_E_CREDENTIALS  the key file or credential file is missing,
 *                            unreadable, of unsafe ownership or mode,
 *                            truncated, tampered with, encrypted with
 *                            another key or for another profile;
 *   UCAASAUTH_E_CACHE        the shared cache is unsafe or unusable;
 *   UCAASAUTH_E_DENIED       ucaas-authd refused this user the profile;
 *   UCAASAUTH_E_PROTOCOL     ucaas-authd's answer was malformed;
 *   UCAASAUTH_E_NOMEM        out of memory.
 * ucaasauth_last_error() then names the file, line, key or profile at fault.
 */
UCAASAUTH_WARN_UNUSED
int ucaasauth_open(struct ucaasauth **ret, const char *profile, unsigned flags);

/*
 * Writes the whole header line, "Authorization: Token <t>" or
 * "Authorization: Basic <b64>" (or whatever scheme a provider of the
 * profile's stack gives), without CR/LF and NUL-terminated, into
 * buf[0..size), ready for curl_slist_append(). Its length without the NUL
 * goes to *ret_len. The header comes from the host's shared cache; the
 * first caller on the host that needs a new one runs the profile's
 * providers (a login), the others wait for it (bounded by the profile's
 * wait_timeout). With cache = daemon, ucaas-authd does that part.
 *
 * On UCAASAUTH_E_TOOSMALL (buf NULL with size 0 included), *ret_len holds
 * the length needed without the NUL, and buf is not written. On other
 * failures *ret_len is not written and buf, when size > 0, holds an empty
 * string. Safe to call from many threads on one handle.
 *
 * Returns UCAASAUTH_OK, or:
 *   UCAASAUTH_E_INVALID      ua or ret_len is NULL, or buf is NULL with a
 *                            size other than 0;
 *   UCAASAUTH_E_TOOSMALL     size is less than the length plus one;
 *   UCAASAUTH_E_CONFIG       the api_base URL was refused by the HTTP
 *                            client, or an exec command failed its
 *                            checks when it was about to run;
 *   UCAASAUTH_E_DENIED       the server refused the credentials;
 *   UCAASAUTH_E_UNAVAILABLE  the server (or an exec command, or
 *                            ucaas-authd) is unreachable, answered 5xx or
 *                            timed out, and no valid token is cached;
 *   UCAASAUTH_E_PROTOCOL     the server's answer was malformed;
 *   UCAASAUTH_E_CACHE        the shared cache became unusable;
 *   UCAASAUTH_E_TIMEOUT      another process's refresh took longer than
 *                            wait_timeout;
 *   UCAASAUTH_E_NOMEM        out of memory.
 * After a failed login every process on the host backs off; during the
 * backoff callers get the recorded status at once.
 */
UCAASAUTH_WARN_UNUSED
int ucaasauth_header(struct ucaasauth *ua, char *buf, size_t size,
                     size_t *ret_len);

/*
 * Tells the library that the API answered 401 or 403 to the header line
 * `header` (as written by ucaasauth_header(), without CR/LF). If that
 * token is still the host's current one it is dropped, and the next
 * ucaasauth_header() call on the host logs in again; if another process
 * already replaced it, nothing happens, so N processes rejecting the same
 * header cause one login. A token younger than the profile's
 * reject_min_age (default 30 s) is not dropped: the reject counts as a
 * failed refresh for the host's backoff, and the token is replaced once
 * that backoff step ends, so a persistent 403 causes at most one login per
 * step. For Basic profiles there is nothing to drop and the call succeeds. Does no network I/O (with cache = daemon, it tells
 * ucaas-authd over its Unix socket). Thread-safe.
 *
 * Returns UCAASAUTH_OK, or:
 *   UCAASAUTH_E_INVALID      ua or header is NULL;
 *   UCAASAUTH_E_CACHE        the shared cache became unusable (it is
 *                            rebuilt, and the token goes with it);
 *   UCAASAUTH_E_UNAVAILABLE  ucaas-authd is not running or did not answer;
 *   UCAASAUTH_E_DENIED       ucaas-authd refused this user the profile;
 *   UCAASAUTH_E_PROTOCOL     ucaas-authd's answer was malformed.
 */
UCAASAUTH_WARN_UNUSED
int ucaasauth_reject(struct ucaasauth *ua, const char *header);

/*
 * Wipes and frees everything the handle holds, and detaches from the
 * shared cache (the cache itself, and its token, stay for the other
 * processes). Accepts NULL. No other thread may use the handle during or
 * after the call.
 */
void ucaasauth_close(struct ucaasauth *ua);

/*
 * Returns a fixed English sentence for a status, or "unknown status" for a
 * number this version does not know. The string is static; never free it.
 */
const char *ucaasauth_strerror(int status);

/*
 * Returns this thread's detailed message for the last failure of a
 * ucaasauth_* call (which file, line, key, profile, HTTP status or server
 * message), or NULL if this thread has seen no failure. The string belongs
 * to the thread and stays valid until its next failing ucaasauth_* call.
 * It never contains a secret.
 */
const char *ucaasauth_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
