/*
 * Hostile and broken login servers, beyond the answers test-login.c
 * judges: each must end in the right status within the profile's
 * timeouts (timeout = 2, connect_timeout = 1), leave the caller's buffer
 * empty, and keep the process's memory bounded whatever the server sends.
 *
 *  - the mock: an answer one byte a second, no answer at all, 10 MB with
 *    a Content-Length, a redirect, tokens that would end the header line;
 *  - servers of this test's own: 10 MB without a length, 10 MB chunked,
 *    10 MB of header lines, a listener that never accepts, one whose
 *    accept queue is full (the handshake never completes), a closed port;
 *  - header injection through the configuration (app_id, api_base with
 *    CR, LF or NUL) is refused when the file is parsed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "internal.h"
#include "test.h"

#define TIMEOUTS "cache = process\ntimeout = 2\nconnect_timeout = 1\n"
/* Generous: timeout is 2 s, connect_timeout 1 s. */
#define BOUND_MS 6000
/* Peak RSS may grow by less than this while 10 MB arrive. */
#define RSS_BOUND_KB (8 * 1024)
#define FLOOD_BYTES (10 * 1024 * 1024)

static struct fixture fix;

/* ---- measuring ---- */

static long status_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long kb = -1;
	FILE *fp = fopen("/proc/self/status", "r");

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			kb = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(fp);
	return kb;
}

/* Peak RSS is reset to the current RSS (Linux 4.0, clear_refs 5), so
 * that the growth measured is this call's; without it the old peak is
 * the base, which can only make the bound easier to meet. */
static long rss_base_kb(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, "5", 1) != 1)
			fprintf(stderr, "note: cannot reset VmHWM\n");
		close(fd);
		return status_kb("VmRSS");
	}
	return status_kb("VmHWM");
}

struct outcome {
	int status;
	int64_t ms;
	long grew_kb; /* peak RSS growth */
	bool buf_empty;
};

/* One header call on a new handle of `profile`. */
static struct outcome header_call(const char *profile)
{
	struct outcome o;
	struct ucaasauth *ua;
	char buf[4096];
	size_t len;
	long base;
	int64_t t0;

	CHECK_INT(ucaasauth_open(&ua, profile, 0), 0);
	memset(buf, 'x', sizeof(buf));
	base = rss_base_kb();
	t0 = ms_now();
	o.status = ucaasauth_header(ua, buf, sizeof(buf), &len);
	o.ms = ms_now() - t0;
	o.grew_kb = status_kb("VmHWM") - base;
	o.buf_empty = buf[0] == 0;
	ucaasauth_close(ua);
	return o;
}

/* The outcome a hostile server must end in: this status, this detail,
 * in time, nothing in the buffer, memory bounded. */
static void check_outcome(const struct outcome *o, int status,
                          const char *detail, int64_t min_ms)
{
	if (o->status != status || o->ms >= BOUND_MS || o->ms < min_ms)
		fprintf(stderr, "status %d after %lld ms\n", o->status,
		        (long long)o->ms);
	CHECK_INT(o->status, status);
	CHECK_ERROR_HAS(detail);
	CHECK(o->ms < BOUND_MS);
	CHECK(o->ms >= min_ms);
	CHECK(o->buf_empty);
	if (o->grew_kb >= RSS_BOUND_KB)
		fprintf(stderr, "peak RSS grew by %ld kB\n", o->grew_kb);
	CHECK(o->grew_kb >= 0 && o->grew_kb < RSS_BOUND_KB);
}

/* The measure can fail: 16 MB touched here shows as 16 MB of growth. */
static void test_rss_control(void)
{
	size_t size = 16u << 20;
	long base = rss_base_kb(), grew;
	char *volatile p = malloc(size);

	CHECK(p != NULL);
	memset(p, 1, size);
	grew = status_kb("VmHWM") - base;
	free(p);
	CHECK(grew >= (long)(size >> 10) - 1024);
}

/* ---- profiles ---- */

static void store_profile(const char *name)
{
	struct config *config = NULL;
	const struct profile *p;
	struct secrets *s = secrets_new();

	CHECK(s != NULL);
	CHECK_INT(config_load(fix.conf, &config), 0);
	CHECK_INT(config_find(config, name, &p), 0);
	snprintf(s->email, sizeof(s->email), "%s", FIX_EMAIL);
	snprintf(s->password, sizeof(s->password), "%s", FIX_PASSWORD);
	CHECK_INT(cred_store(p, s), 0);
	secrets_free(s);
	config_free(config);
}

/* "tok" (the mock, process cache), "shr" (the mock, shared cache) and
 * "raw" (127.0.0.1:raw_port, a server of this test's own), "raw" with
 * the timeouts `raw_timeouts` (TIMEOUTS when NULL). */
static void write_profiles_with(int raw_port, const char *raw_timeouts)
{
	char extra[1024];

	snprintf(extra, sizeof(extra),
	         TIMEOUTS "[profile shr]\n"
	                  "api_base = %s\napp_id = " FIX_APP_ID
	                  "\nprovider = login\n"
	                  "cache = shared\ntimeout = 2\nconnect_timeout = 1\n"
	                  "[profile raw]\n"
	                  "api_base = http://127.0.0.1:%d/ucaas/v1\n"
	                  "app_id = " FIX_APP_ID "\nprovider = login\n%s",
	         fix.mock.base, raw_port > 0 ? raw_port : 9,
	         raw_timeouts ? raw_timeouts : TIMEOUTS);
	fixture_write_config(&fix, extra);
}

static void write_profiles(int raw_port)
{
	write_profiles_with(raw_port, NULL);
}

/* One timeout far from the other, so that which one ended a call is
 * plain on any machine: e.g. connect_timeout = 1 against timeout = 30. */
#define FAR_TIMEOUTS(connect, total)                                           \
	"cache = process\ntimeout = " #total "\nconnect_timeout = " #connect   \
	"\n"

/* The connections a listening socket holds, accepted by the kernel and
 * not yet by the program (its accept queue). */
static int queued(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	CHECK_INT(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	return (int)ti.tcpi_unacked;
}

/* ---- the mock's faults ---- */

static struct outcome mock_case(const char *json, const char *profile)
{
	CHECK_INT(mock_reset(&fix.mock), 0);
	if (json)
		CHECK_INT(mock_config(&fix.mock, json), 0);
	return header_call(profile);
}

static void test_mock_faults(void)
{
	struct outcome o;

	/* One byte a second: cut off by timeout, not waited for. */
	o = mock_case("{\"login_fault\": \"slow\"}", "tok");
	check_outcome(&o, UCAASAUTH_E_UNAVAILABLE, "Timeout", 1500);
	/* Never answers. */
	o = mock_case("{\"login_fault\": \"hang\"}", "tok");
	check_outcome(&o, UCAASAUTH_E_UNAVAILABLE, "Timeout", 1500);
	/* 10 MB announced by Content-Length: refused before it is read. */
	o = mock_case("{\"login_fault\": \"huge\"}", "tok");
	check_outcome(&o, UCAASAUTH_E_PROTOCOL, "larger than", 0);
	/* A redirect is not followed: had it been, the mock's 404 for
	 * /login2 would say so. One request, to /login. */
	o = mock_case("{\"login_fault\": \"redirect\"}", "tok");
	check_outcome(&o, UCAASAUTH_E_PROTOCOL, "redirect, not followed", 0);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	/* Closes the connection without a word. */
	o = mock_case("{\"login_fault\": \"drop\"}", "tok");
	check_outcome(&o, UCAASAUTH_E_UNAVAILABLE, "POST", 0);
	CHECK_INT(mock_reset(&fix.mock), 0);
}

/*
 * Tokens that would end the header line and start another, or that no
 * header may carry: refused, never handed out, never published. The
 * body is a JSON string for the mock: \\r is an escape json-c decodes,
 * \r a raw byte in the answer.
 */
static void test_injected_tokens(void)
{
	static const char *const bodies[] = {
		"{\\\"token\\\": \\\"abc\\\\r\\\\nX-Evil: 1\\\"}",
		"{\\\"token\\\": \\\"abc\\r\\nX-Evil: 1\\\"}",
		"{\\\"token\\\": \\\"abc\\\\nX-Evil:1\\\"}",
		"{\\\"token\\\": \\\"abc\\\\rX-Evil:1\\\"}",
		"{\\\"token\\\": \\\"abc\\\\r\\\\n\\\\r\\\\nGET / HTTP/1.1\\\"}",
		"{\\\"token\\\": \\\"abc\\\\tdef\\\"}",
		"{\\\"token\\\": \\\"abc\\\\u007fdef\\\"}",
		"{\\\"token\\\": \\\"abc\\\\u00e9def\\\"}",
		"{\\\"token\\\": \\\"abc\\\\u0000def\\\"}",
		"{\\\"token\\\": \\\"abc\\\\u2028def\\\"}",
	};
	char json[256], buf[4096];
	struct ucaasauth *ua;
	struct outcome o;
	size_t len;

	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		snprintf(json, sizeof(json), "{\"login_body\": \"%s\"}",
		         bodies[i]);
		o = mock_case(json, "tok");
		if (o.status != UCAASAUTH_E_PROTOCOL)
			fprintf(stderr, "body %s\n", bodies[i]);
		check_outcome(&o, UCAASAUTH_E_PROTOCOL, "token", 0);
	}

	/* Shared cache: the refused token is not published, and the
	 * failure is shared: another handle (another process alike) gets
	 * the same status and an empty buffer, without a second login. */
	snprintf(json, sizeof(json), "{\"login_body\": \"%s\"}", bodies[0]);
	o = mock_case(json, "shr");
	check_outcome(&o, UCAASAUTH_E_PROTOCOL, "token", 0);
	CHECK_INT(ucaasauth_open(&ua, "shr", 0), 0);
	memset(buf, 'x', sizeof(buf));
	CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len),
	          UCAASAUTH_E_PROTOCOL);
	CHECK_INT(buf[0], 0);
	CHECK(memmem(buf, sizeof(buf), "X-Evil", 6) == NULL);
	ucaasauth_close(ua);
	CHECK_INT(mock_stat(&fix.mock, "logins"), 1);
	CHECK_INT(mock_reset(&fix.mock), 0);
}

/* ---- servers of this test's own ---- */

enum raw_mode {
	RAW_NO_LENGTH, /* 10 MB body, no Content-Length, then close */
	RAW_CHUNKED,   /* 10 MB body, chunked */
	RAW_HEADERS,   /* 10 MB of header lines */
};

static int listener(int backlog, int *ret_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(listen(fd, backlog), 0);
	CHECK_INT(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

static bool send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false; /* the client hung up: as it should */
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool send_str(int fd, const char *s)
{
	return send_all(fd, s, strlen(s));
}

/* Reads the request, headers and Content-Length body, so that closing
 * the socket afterwards sends a FIN, not a reset. */
static void read_request(int fd)
{
	char buf[8192], *end, *cl;
	size_t len = 0;
	long body = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (n <= 0)
			return;
		len += (size_t)n;
		buf[len] = 0;
		end = strstr(buf, "\r\n\r\n");
		if (end || len == sizeof(buf) - 1)
			break;
	}
	if (!end)
		return;
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl && cl < end)
		body = strtol(cl + 17, NULL, 10);
	body -= (long)(len - (size_t)(end + 4 - buf));
	while (body > 0) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return;
		body -= n;
	}
}

static void serve(int fd, enum raw_mode mode)
{
	static char junk[65536];
	char line[64];
	size_t sent = 0;

	memset(junk, 'A', sizeof(junk));
	read_request(fd);
	switch (mode) {
	case RAW_NO_LENGTH:
		if (!send_str(fd, "HTTP/1.1 200 OK\r\n"
		                  "Content-Type: application/json\r\n"
		                  "Connection: close\r\n\r\n{\"token\": \""))
			return;
		while (sent < FLOOD_BYTES && send_all(fd, junk, sizeof(junk)))
			sent += sizeof(junk);
		send_str(fd, "\"}");
		break;
	case RAW_CHUNKED:
		if (!send_str(fd, "HTTP/1.1 200 OK\r\n"
		                  "Content-Type: application/json\r\n"
		                  "Transfer-Encoding: chunked\r\n\r\n"))
			return;
		while (sent < FLOOD_BYTES) {
			int n = snprintf(line, sizeof(line), "%zx\r\n",
			                 sizeof(junk));
			if (!send_all(fd, line, (size_t)n) ||
			    !send_all(fd, junk, sizeof(junk)) ||
			    !send_str(fd, "\r\n"))
				return;
			sent += sizeof(junk);
		}
		send_str(fd, "0\r\n\r\n");
		break;
	case RAW_HEADERS:
		if (!send_str(fd, "HTTP/1.1 200 OK\r\n"))
			return;
		memcpy(junk, "X-Junk: ", 8);
		memcpy(junk + 1000, "\r\n", 2);
		while (sent < FLOOD_BYTES && send_all(fd, junk, 1002))
			sent += 1002;
		break;
	}
}

/* A server in a child process; killed by the caller (and with us). */
static pid_t raw_server(enum raw_mode mode, int *ret_port)
{
	int fd = listener(16, ret_port);
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		for (;;) {
			int c = accept(fd, NULL, NULL);
			if (c < 0)
				continue;
			serve(c, mode);
			close(c);
		}
	}
	close(fd);
	return pid;
}

static void stop_server(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_floods(void)
{
	static const struct {
		enum raw_mode mode;
		const char *what;
		int status;
		const char *detail;
	} cases[] = {
		{RAW_NO_LENGTH, "10 MB, no length", UCAASAUTH_E_PROTOCOL,
	         "larger than"},
		{RAW_CHUNKED, "10 MB, chunked", UCAASAUTH_E_PROTOCOL,
	         "larger than"},
		/* libcurl refuses headers over 300 kB: the transfer fails,
		 * which reads as a broken connection. */
		{RAW_HEADERS, "10 MB of headers", UCAASAUTH_E_UNAVAILABLE,
	         "POST"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct outcome o;
		int port;
		pid_t pid = raw_server(cases[i].mode, &port);

		write_profiles(port);
		o = header_call("raw");
		stop_server(pid);
		if (o.status != cases[i].status)
			fprintf(stderr, "case: %s\n", cases[i].what);
		check_outcome(&o, cases[i].status, cases[i].detail, 0);
	}
}

/* A server that takes the connection and never reads or answers; one
 * whose accept queue is full, so the handshake never completes; a port
 * nobody listens on. */
static void test_silent_servers(void)
{
	struct outcome o;
	int fd, filler, port;
	struct sockaddr_in sa = {.sin_family = AF_INET};

	/* Connected (the kernel completes the handshake into the backlog),
	 * request sent, nothing back: timeout. */
	fd = listener(16, &port);
	write_profiles(port);
	o = header_call("raw");
	check_outcome(&o, UCAASAUTH_E_UNAVAILABLE, "Timeout", 1500);
	CHECK(o.ms < (1 + 2) * 1000 + 1000); /* connect_timeout + timeout */
	close(fd);

	/* Backlog 0 holds one connection; with it taken by a connection
	 * nobody accepts, the kernel drops further SYNs: connect_timeout. */
	fd = listener(0, &port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(filler >= 0);
	CHECK_INT(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);
	/* The queue is full once the kernel holds the filler in it. */
	for (int64_t end = ms_now() + 30000; queued(fd) < 1 && ms_now() < end;)
		ms_sleep(10);
	CHECK_MSG(queued(fd) >= 1, "the filler connection is not queued");
	/* connect_timeout (1 s), not timeout (30 s): the bound, 15 s, is
	 * far from both. */
	write_profiles_with(port, FAR_TIMEOUTS(1, 30));
	o = header_call("raw");
	check_outcome(&o, UCAASAUTH_E_UNAVAILABLE, "Timeout", 800);
	CHECK_MSG(o.ms < 15000,
	          "%lld ms: ended by timeout (30 s), not by "
	          "connect_timeout (1 s)",
	          (long long)o.ms);
	close(filler);
	close(fd);

	/* Refused at once: not after connect_timeout or timeout (30 s
	 * each, against a bound of 15 s). */
	fd = listener(1, &port);
	close(fd);
	write_profiles_with(port, FAR_TIMEOUTS(30, 30));
	o = header_call("raw");
	check_outcome(&o, UCAASAUTH_E_UNAVAILABLE, "POST", 0);
	CHECK_MSG(o.ms < 15000, "a refused connection took %lld ms",
	          (long long)o.ms);
	CHECK_MSG(!strstr(ucaasauth_last_error(), "Timeout"),
	          "refused, yet timed out");
	write_profiles(0);
}

/* ---- header injection through the configuration ---- */

static void write_raw_config(const char *text, size_t len)
{
	int fd = open(fix.conf, O_WRONLY | O_TRUNC | O_CLOEXEC);

	CHECK(fd >= 0);
	CHECK_INT(write(fd, text, len), (long long)len);
	CHECK_INT(close(fd), 0);
}

static void test_config_injection(void)
{
	static const struct {
		const char *app_id_line; /* between api_base and provider */
		size_t len;
		const char *detail;
		const char *where; /* the line the message names */
	} cases[] = {
#define C(s, d, w) {s, sizeof(s) - 1, d, w}
		C("app_id = app\rX-Evil: 1\n", "control character", ":3:"),
		C("app_id = app\r\nX-Evil: 1\n", "expected 'key = value'",
	          ":4:"),
		C("app_id = app\nX-Evil: 1\n", "expected 'key = value'", ":4:"),
		C("app_id = app\nX-Evil = 1\n", "unknown key", ":4:"),
		C("app_id = app\r\n\r\nGET / HTTP/1.1\n",
	          "expected 'key = value'", ":5:"),
		C("app_id = app\tX-Evil:1\n", "app_id", ":3:"),
		C("app_id = app X-Evil: 1\n", "app_id", ":3:"),
		C("app_id = app\vX-Evil:1\n", "control character", ":3:"),
		C("app_id = app\0X-Evil:1\n", "NUL byte", ":3:"),
#undef C
	};
	char text[1024];
	struct ucaasauth *ua;
	size_t n;

	CHECK_INT(mock_reset(&fix.mock), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		n = (size_t)snprintf(text, sizeof(text),
		                     "[profile tok]\napi_base = %s\n",
		                     fix.mock.base);
		memcpy(text + n, cases[i].app_id_line, cases[i].len);
		n += cases[i].len;
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		                      "provider = login\n" TIMEOUTS);
		write_raw_config(text, n);
		if (ucaasauth_open(&ua, "tok", 0) == 0) {
			fprintf(stderr, "case %zu accepted\n", i);
			ucaasauth_close(ua);
		}
		CHECK_INT(ucaasauth_open(&ua, "tok", 0), UCAASAUTH_E_CONFIG);
		CHECK_ERROR_HAS(cases[i].detail);
		CHECK_ERROR_HAS(cases[i].where);
	}
	/* api_base too decides where a request goes. */
	n = (size_t)snprintf(text, sizeof(text),
	                     "[profile tok]\napi_base = %s\r/x\n"
	                     "app_id = " FIX_APP_ID "\nprovider = login\n",
	                     fix.mock.base);
	write_raw_config(text, n);
	CHECK_INT(ucaasauth_open(&ua, "tok", 0), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("control character");
	/* Nothing of the above reached the server. */
	CHECK_INT(mock_stat(&fix.mock, "logins"), 0);

	/* The control: CRLF line endings are only line endings. The mock
	 * insists on X-Api-Id being exactly app_id. */
	n = (size_t)snprintf(text, sizeof(text),
	                     "[profile tok]\r\napi_base = %s\r\n"
	                     "app_id = " FIX_APP_ID "\r\n"
	                     "provider = login\r\ncache = process\r\n",
	                     fix.mock.base);
	write_raw_config(text, n);
	{
		char buf[4096];
		size_t len;

		CHECK_INT(ucaasauth_open(&ua, "tok", 0), 0);
		CHECK_INT(ucaasauth_header(ua, buf, sizeof(buf), &len), 0);
		CHECK_INT(mock_customers(&fix.mock, buf), 200);
		ucaasauth_close(ua);
	}
	CHECK_INT(mock_stat(&fix.mock, "logins_ok"), 1);
	write_profiles(0);
}

int main(void)
{
	fixture_start(&fix, 900, TIMEOUTS);
	write_profiles(0);
	store_profile("shr");
	store_profile("raw");

	test_rss_control();
	test_mock_faults();
	test_injected_tokens();
	test_floods();
	test_silent_servers();
	test_config_injection();
	fixture_stop(&fix);
	TEST_DONE();
}
