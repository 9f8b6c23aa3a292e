<?php
/*
 * opcache.preload script for PHP-FPM (see README.md):
 *
 *     opcache.preload = /usr/share/php/ucaasauth/preload.php
 *     opcache.preload_user = www-data
 *
 * Compiles UcaasAuth\Handle once, into opcache's shared memory, when the
 * FPM master starts. Code from a preloaded file may call FFI::cdef() under
 * the default ffi.enable = preload; pair it with ffi.preload (README.md)
 * so that the declarations are parsed and the library loaded once per
 * worker, not once per request.
 */
require_once __DIR__ . '/UcaasAuth.php';
