<?php
/*
 * libucaasauth from PHP: the Authorization header for the EnableX UCaaS
 * REST API, through PHP's FFI extension (PHP >= 7.4, ext-ffi).
 *
 *     require 'UcaasAuth.php';
 *     $ua = UcaasAuth\Handle::open('prod');
 *     $ctx = stream_context_create(['http' => [
 *         'header' => $ua->header() . "\r\n"]]);
 *     ...
 *     $ua->reject($header_that_got_401);   // then ask again
 *
 * The C declarations come from ucaasauth/ffi.h, the plain-declarations
 * header that libucaasauth installs (no preprocessor lines, so that
 * FFI::cdef() reads it as is), and the library is libucaasauth.so.1
 * through the dynamic loader. Both can be overridden: see
 * bindings/php/README.md, which also shows the PHP-FPM set-up
 * (ffi.preload) that loads both once per worker instead of once per
 * request.
 *
 * A handle keeps working in a child after pcntl_fork(): the child shares
 * the host's token. Failures throw UcaasAuth\Error (a subclass per
 * status), with ->status, ->name ("UCAASAUTH_E_DENIED") and ->detail
 * (ucaasauth_last_error()); no exception ever holds a secret or a header.
 *
 * SPDX-License-Identifier: MIT
 */

namespace UcaasAuth;

/* libucaasauth.so.1 or ffi.h could not be loaded. */
class LibraryError extends \RuntimeException
{
}

/*
 * A libucaasauth call failed. $status: the negative C status; $name: its
 * name ("UCAASAUTH_E_DENIED"); $detail: the library's message for this
 * failure, read right after the failing call (or null). getCode() is the
 * status too.
 */
class Error extends \RuntimeException
{
    /** @var int */
    public $status;
    /** @var string */
    public $name;
    /** @var string|null */
    public $detail;

    public function __construct(int $status, ?string $detail = null)
    {
        $this->status = $status;
        $this->name = Handle::statusName($status);
        $this->detail = $detail;
        $text = $this->name . ': ' . Handle::strerror($status);
        if ($detail !== null && $detail !== '') {
            $text .= ': ' . $detail;
        }
        parent::__construct($text, $status);
    }

    public function getStatus(): int
    {
        return $this->status;
    }

    public function getName(): string
    {
        return $this->name;
    }

    public function getDetail(): ?string
    {
        return $this->detail;
    }
}

class InvalidError extends Error
{
}
class ConfigError extends Error
{
}
class CredentialsError extends Error
{
}
class DeniedError extends Error
{
}
class UnavailableError extends Error
{
}
class ProtocolError extends Error
{
}
class CacheError extends Error
{
}
class TimeoutError extends Error
{
}
class TooSmallError extends Error
{
}
class NoMemoryError extends Error
{
}

final class Handle
{
    const SONAME = 'libucaasauth.so.1';
    /* ffi_preload's scope name, see README.md. */
    const SCOPE = 'UCAASAUTH';

    /* The statuses of ucaasauth.h (ABI version 1), and their classes. */
    const OK = 0;
    const E_INVALID = -1;
    const E_CONFIG = -2;
    const E_CREDENTIALS = -3;
    const E_DENIED = -4;
    const E_UNAVAILABLE = -5;
    const E_PROTOCOL = -6;
    const E_CACHE = -7;
    const E_TIMEOUT = -8;
    const E_TOOSMALL = -9;
    const E_NOMEM = -10;

    const STATUS_NAMES = [
        0 => 'UCAASAUTH_OK',
        -1 => 'UCAASAUTH_E_INVALID',
        -2 => 'UCAASAUTH_E_CONFIG',
        -3 => 'UCAASAUTH_E_CREDENTIALS',
        -4 => 'UCAASAUTH_E_DENIED',
        -5 => 'UCAASAUTH_E_UNAVAILABLE',
        -6 => 'UCAASAUTH_E_PROTOCOL',
        -7 => 'UCAASAUTH_E_CACHE',
        -8 => 'UCAASAUTH_E_TIMEOUT',
        -9 => 'UCAASAUTH_E_TOOSMALL',
        -10 => 'UCAASAUTH_E_NOMEM',
    ];
    const CLASSES = [
        -1 => InvalidError::class,
        -2 => ConfigError::class,
        -3 => CredentialsError::class,
        -4 => DeniedError::class,
        -5 => UnavailableError::class,
        -6 => ProtocolError::class,
        -7 => CacheError::class,
        -8 => TimeoutError::class,
        -9 => TooSmallError::class,
        -10 => NoMemoryError::class,
    ];

    /* Where ffi.h is looked for when $UCAASAUTH_FFI_HEADER is not set. */
    const HEADER_PATHS = [
        '/usr/include/ucaasauth/ffi.h',
        '/usr/local/include/ucaasauth/ffi.h',
    ];

    /* The first buffer header() tries; a longer header is fetched again
     * with the size UCAASAUTH_E_TOOSMALL reports. */
    public static $initialSize = 512;
    /* Overrides of $UCAASAUTH_LIBRARY and $UCAASAUTH_FFI_HEADER (PHP-FPM
     * clears the environment by default). */
    public static $library = null;
    public static $header = null;

    /** @var \FFI|null */
    private static $ffi = null;
    /** @var string|null */
    private static $loadedFrom = null;

    /** @var \FFI\CData|null */
    private $ptr;
    /** @var string|null */
    private $profile;

    /*
     * The FFI instance: the preloaded scope when php.ini's ffi.preload
     * declared one, else FFI::cdef(ffi.h, library). Kept in a static,
     * which a child inherits across pcntl_fork().
     */
    public static function ffi(): \FFI
    {
        if (self::$ffi !== null) {
            return self::$ffi;
        }
        try {
            self::$ffi = \FFI::scope(self::SCOPE);
            self::$loadedFrom = 'ffi.preload scope ' . self::SCOPE;
            return self::$ffi;
        } catch (\Throwable $e) {
            // No preloaded scope: load it ourselves.
        }
        $decls = self::declarations();
        $explicit = self::$library ?? (getenv('UCAASAUTH_LIBRARY') ?: null);
        $tried = [];
        foreach (array_filter([$explicit, self::SONAME]) as $lib) {
            try {
                self::$ffi = \FFI::cdef($decls, $lib);
                self::$loadedFrom = $lib;
                return self::$ffi;
            } catch (\FFI\Exception $e) {
                $tried[] = "$lib (" . $e->getMessage() . ')';
            }
        }
        throw new LibraryError('cannot load libucaasauth: tried ' .
            ($explicit !== null ? "UCAASAUTH_LIBRARY=$explicit, then " : '') .
            self::SONAME . ' through the dynamic loader: ' .
            implode('; ', $tried));
    }

    /* What the FFI was loaded from: a path, the soname, or the scope. */
    public static function libraryPath(): string
    {
        self::ffi();
        return self::$loadedFrom;
    }

    private static function declarations(): string
    {
        $explicit = self::$header ?? (getenv('UCAASAUTH_FFI_HEADER') ?: null);
        $paths = $explicit !== null ? [$explicit] : self::HEADER_PATHS;
        foreach ($paths as $path) {
            if (is_readable($path)) {
                $text = file_get_contents($path);
                if ($text !== false) {
                    return $text;
                }
            }
        }
        throw new LibraryError('cannot read the declarations of ' .
            'libucaasauth: tried ' . implode(', ', $paths) .
            ' (set UCAASAUTH_FFI_HEADER or UcaasAuth\\Handle::$header)');
    }

    public static function statusName(int $status): string
    {
        return self::STATUS_NAMES[$status] ?? ('UCAASAUTH_E_' . -$status);
    }

    /* The library's fixed English sentence for a status. */
    public static function strerror(int $status): string
    {
        try {
            $text = self::ffi()->ucaasauth_strerror($status);
        } catch (LibraryError $e) {
            return "status $status";
        }
        return $text === null ? "status $status" : (string)$text;
    }

    private static function error(int $status, ?string $detail): Error
    {
        $class = self::CLASSES[$status] ?? Error::class;
        return new $class($status, $detail);
    }

    /* Throws for a failed call, with the detail of this thread's failure,
     * read right after it. */
    private static function check(\FFI $ffi, int $status): void
    {
        if ($status !== self::OK) {
            $detail = $ffi->ucaasauth_last_error();
            throw self::error($status, $detail === null ? null : (string)$detail);
        }
    }

    /*
     * Opens a profile (null: the configuration's default profile): reads
     * the configuration and the credentials and attaches to the host's
     * shared token cache. No network I/O.
     */
    public static function open(?string $profile = null): Handle
    {
        return new Handle($profile);
    }

    public function __construct(?string $profile = null)
    {
        $ffi = self::ffi();
        $this->profile = $profile;
        $ptr = $ffi->new('struct ucaasauth *');
        self::check($ffi, $ffi->ucaasauth_open(\FFI::addr($ptr), $profile, 0));
        $this->ptr = $ptr;
    }

    private function handle(): \FFI\CData
    {
        if ($this->ptr === null) {
            throw new InvalidError(self::E_INVALID, 'the handle is closed');
        }
        return $this->ptr;
    }

    /*
     * The whole header line, "Authorization: Token ...", without CR/LF.
     * May log in (once for the host), bounded by the profile's
     * wait_timeout and the provider's timeout. The FFI buffer is wiped
     * once the bytes are copied out; the PHP string is the caller's.
     */
    public function header(): string
    {
        $ffi = self::ffi();
        $ptr = $this->handle();
        $size = max(1, (int)self::$initialSize);
        $len = $ffi->new('size_t');
        for ($try = 0; $try < 4; $try++) {
            $buf = $ffi->new("char[$size]");
            try {
                $r = $ffi->ucaasauth_header($ptr, $buf, $size, \FFI::addr($len));
                if ($r === self::OK) {
                    return \FFI::string($buf, $len->cdata);
                }
                if ($r !== self::E_TOOSMALL) {
                    self::check($ffi, $r);
                }
            } finally {
                \FFI::memset($buf, 0, $size);
            }
            $size = $len->cdata + 1;
        }
        throw self::error(self::E_TOOSMALL, 'the header kept growing');
    }

    /* The header's value, without "Authorization: ". */
    public function value(): string
    {
        $line = $this->header();
        $colon = strpos($line, ':');
        return $colon === false ? $line : ltrim(substr($line, $colon + 1));
    }

    /*
     * Tells the library that the API answered 401 or 403 to $header (the
     * line header() returned, or its value()). If that token is still the
     * host's current one it is dropped and the next header() logs in
     * again; otherwise nothing happens: N processes rejecting the same
     * header cause one login.
     */
    public function reject(
        // Redacted from stack traces (PHP >= 8.2; a comment before).
        #[\SensitiveParameter]
        string $header
    ): void {
        $ffi = self::ffi();
        $ptr = $this->handle();
        if (strpos($header, "\0") !== false) {
            throw new InvalidError(self::E_INVALID, 'the header holds a NUL byte');
        }
        if (strncasecmp($header, 'Authorization:', 14) !== 0) {
            $header = 'Authorization: ' . $header;
        }
        self::check($ffi, $ffi->ucaasauth_reject($ptr, $header));
    }

    /* Wipes and frees the handle. Idempotent. */
    public function close(): void
    {
        $ptr = $this->ptr;
        $this->ptr = null;
        if ($ptr !== null) {
            self::ffi()->ucaasauth_close($ptr);
        }
    }

    public function isClosed(): bool
    {
        return $this->ptr === null;
    }

    public function profile(): ?string
    {
        return $this->profile;
    }

    public function __destruct()
    {
        $this->close();
    }

    /* var_dump() and print_r() show no pointer and nothing secret. */
    public function __debugInfo(): array
    {
        return ['profile' => $this->profile, 'closed' => $this->ptr === null];
    }

    public function __clone()
    {
        throw new \LogicException('a UcaasAuth\\Handle cannot be cloned');
    }

    public function __serialize(): array
    {
        throw new \LogicException('a UcaasAuth\\Handle cannot be serialized');
    }
}
