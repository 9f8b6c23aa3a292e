/*
 * libucaasauth - the public ABI (version 1) as plain declarations, for
 * foreign function interfaces that parse C declarations but have no
 * preprocessor: PHP's FFI::cdef(), Python's cffi (ffi.cdef()), and the
 * like.
 *
 *     $ffi = FFI::cdef(file_get_contents('/usr/include/ucaasauth/ffi.h'),
 *                      'libucaasauth.so.1');
 *
 * (PHP's ffi.preload wants a copy with FFI_SCOPE and FFI_LIB defined at
 * its top: see bindings/php/README.md in the source.)
 *
 * This file has no #include, #define or #if: size_t is the only type it
 * uses that it does not declare, and both FFIs named above know it. It
 * says nothing that ucaasauth.h does not say; C programs include
 * <ucaasauth.h>, which has the documentation (and ucaasauth(3)). The
 * build's ABI check (tests/check-abi.sh) fails when the prototypes or the
 * status values here and in ucaasauth.h disagree.
 *
 * SPDX-License-Identifier: MIT
 */

enum {
	UCAASAUTH_OK = 0,
	UCAASAUTH_E_INVALID = -1,
	UCAASAUTH_E_CONFIG = -2,
	UCAASAUTH_E_CREDENTIALS = -3,
	UCAASAUTH_E_DENIED = -4,
	UCAASAUTH_E_UNAVAILABLE = -5,
	UCAASAUTH_E_PROTOCOL = -6,
	UCAASAUTH_E_CACHE = -7,
	UCAASAUTH_E_TIMEOUT = -8,
	UCAASAUTH_E_TOOSMALL = -9,
	UCAASAUTH_E_NOMEM = -10
};

struct ucaasauth;

int ucaasauth_open(struct ucaasauth **ret, const char *profile, unsigned flags);
int ucaasauth_header(struct ucaasauth *ua, char *buf, size_t size,
                     size_t *ret_len);
int ucaasauth_reject(struct ucaasauth *ua, const char *header);
void ucaasauth_close(struct ucaasauth *ua);
const char *ucaasauth_strerror(int status);
const char *ucaasauth_last_error(void);
