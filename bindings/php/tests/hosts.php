<?php
/*
 * The PHP binding in a prefork host (pcntl_fork), driven by
 * bindings/php/tests/test_php.py, which builds the world, runs the mock,
 * and checks what this script prints (one JSON object) against the
 * mock's counters.
 *
 *     php hosts.php SCENARIO DIR
 *
 * cold       16 children, released together, each opens "tok" and gets
 *            a header;
 * inherited  the parent opens "tok", 16 children use that handle;
 * reject     the parent opens "tok" and gets the (cached) header; 16
 *            children reject it and get a new one; then the parent
 *            rejects it late and asks again;
 * errors     the failures and their exceptions (see the driver);
 * preload    the ffi.preload scope is used when php.ini declares it.
 *
 * Children write their results to DIR/result-N.json; nothing here waits
 * without a bound but waitpid(), and the driver bounds the whole run.
 */

require __DIR__ . '/../UcaasAuth.php';

use UcaasAuth\Handle;

const WORKERS = 16;

function out(array $result): void
{
    echo json_encode($result), "\n";
}

function describe(\Throwable $e): array
{
    // The trace with its arguments, as an error tracker would keep it.
    $r = ['class' => get_class($e), 'message' => $e->getMessage(),
          'string' => (string)$e, 'trace' => print_r($e->getTrace(), true)];
    if ($e instanceof UcaasAuth\Error) {
        $r += ['status' => $e->status, 'name' => $e->name,
               'detail' => $e->detail, 'code' => $e->getCode(),
               'is_error' => true];
    }
    return $r;
}

/* Runs $fn($i) in WORKERS children released together; returns their
 * results and exit statuses. */
function run_children(string $dir, callable $fn): array
{
    $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM,
                               STREAM_IPPROTO_IP);
    if ($pair === false) {
        throw new RuntimeException('stream_socket_pair failed');
    }
    $pids = [];
    for ($i = 0; $i < WORKERS; $i++) {
        $pid = pcntl_fork();
        if ($pid < 0) {
            throw new RuntimeException('pcntl_fork failed');
        }
        if ($pid === 0) {
            fclose($pair[0]);
            // Released when every copy of the writing end is closed.
            fread($pair[1], 1);
            try {
                $r = ['ok' => true, 'pid' => getmypid(), 'header' => $fn($i)];
            } catch (\Throwable $e) {
                $r = ['ok' => false, 'pid' => getmypid()] + describe($e);
            }
            $path = "$dir/result-$i.json";
            file_put_contents("$path.tmp", json_encode($r));
            rename("$path.tmp", $path);
            exit(0);
        }
        $pids[$i] = $pid;
    }
    fclose($pair[0]);
    $results = [];
    foreach ($pids as $i => $pid) {
        pcntl_waitpid($pid, $status);
        $path = "$dir/result-$i.json";
        $r = is_readable($path) ? json_decode(file_get_contents($path), true)
                                : ['ok' => false, 'message' => 'no result'];
        $r['exit'] = pcntl_wifexited($status) ? pcntl_wexitstatus($status)
                                              : -pcntl_wtermsig($status);
        $results[] = $r;
    }
    fclose($pair[1]);
    return $results;
}

function scenario_cold(string $dir): array
{
    return ['library' => Handle::libraryPath(),
            'results' => run_children($dir, function (int $i): string {
                $ua = Handle::open('tok');
                $h = $ua->header();
                $ua->close();
                return $h;
            })];
}

function scenario_inherited(string $dir): array
{
    $ua = Handle::open('tok');
    $results = run_children($dir, function (int $i) use ($ua): string {
        return $ua->header();
    });
    return ['results' => $results, 'parent' => $ua->header()];
}

function scenario_reject(string $dir): array
{
    $ua = Handle::open('tok');
    $old = $ua->header();
    $results = run_children($dir, function (int $i) use ($ua, $old): string {
        $ua->reject($old);
        return $ua->header();
    });
    $ua->reject($old);              // late: nothing to drop any more
    return ['old' => $old, 'results' => $results, 'parent' => $ua->header()];
}

function attempt(callable $fn): array
{
    try {
        return ['ok' => true, 'value' => $fn()];
    } catch (\Throwable $e) {
        return ['ok' => false] + describe($e);
    }
}

function scenario_errors(string $dir): array
{
    $r = [];
    $r['denied'] = attempt(function () {
        return Handle::open('tok')->header();
    });
    $r['nosuch'] = attempt(function () {
        return Handle::open('nosuch');
    });
    $r['invalid'] = attempt(function () {
        return Handle::open('bad name!');
    });

    $srv = Handle::open('srv');
    $basic = $srv->header();
    $r['basic'] = $basic;
    $r['value'] = $srv->value();
    // The E_TOOSMALL retry: a buffer far too small first.
    Handle::$initialSize = 8;
    $r['small'] = $srv->header();
    Handle::$initialSize = 512;
    $r['debug'] = print_r($srv, true) . var_export($srv->__debugInfo(), true);
    $srv->close();
    // Through globals, not `use`: a closure's bound variables show in
    // traces, and the point is what the binding itself lets through.
    $GLOBALS['closed_handle'] = $srv;
    $GLOBALS['basic'] = $basic;
    $r['closed'] = attempt(function () {
        $GLOBALS['closed_handle']->reject($GLOBALS['basic']);
        return 'rejected';
    });

    // The class's status table against ffi.h's enum, as FFI read it.
    $ffi = Handle::ffi();
    $mismatch = [];
    foreach (Handle::STATUS_NAMES as $status => $name) {
        if ($ffi->$name !== $status) {
            $mismatch[] = "$name: ffi.h " . $ffi->$name . ", class $status";
        }
        $const = constant(Handle::class . '::' . substr($name, 10));
        if ($const !== $status) {
            $mismatch[] = "Handle::" . substr($name, 10) . " = $const";
        }
    }
    $r['mismatch'] = $mismatch;
    $r['library'] = Handle::libraryPath();
    return $r;
}

function scenario_preload(string $dir): array
{
    $ua = Handle::open('srv');
    $status = function_exists('opcache_get_status') ? opcache_get_status() : [];
    $classes = $status['preload_statistics']['classes'] ?? [];
    return ['library' => Handle::libraryPath(), 'header' => $ua->header(),
            'preloaded' => in_array(Handle::class, $classes, true)];
}

function scenario_lookup(string $dir): array
{
    return attempt(function () {
        return Handle::libraryPath();
    });
}

if ($argc !== 3) {
    fwrite(STDERR, "usage: php hosts.php SCENARIO DIR\n");
    exit(2);
}
$fn = 'scenario_' . $argv[1];
if (!function_exists($fn)) {
    fwrite(STDERR, "hosts.php: no scenario {$argv[1]}\n");
    exit(2);
}
out($fn($argv[2]));
