/* Small helpers shared by the module, the helper and the tools: wiping
 * secrets, escaping untrusted bytes, monotonic time. */
#include "config.h"
#include "common/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void
piv_wipe(void *p, size_t len)
{
	if (p == NULL || len == 0)
		return;
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(p, len);
#else
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
#endif
}

void
piv_free_secret(char **secret)
{
	if (secret == NULL || *secret == NULL)
		return;
	piv_wipe(*secret, strlen(*secret));
	free(*secret);
	*secret = NULL;
}

char *
piv_escape(const void *in, size_t in_len, char *out, size_t out_size)
{
	static const char hexdig[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t o = 0;

	if (out == NULL || out_size == 0)
		return out;
	for (size_t i = 0; i < in_len; i++) {
		unsigned char c = p[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') ? 1 : 4;
		if (o + need + 1 > out_size) {
			/* Leave room for the truncation mark. */
			while (o > 0 && o + 4 > out_size)
				o--;
			if (o + 4 <= out_size) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hexdig[c >> 4];
			out[o++] = hexdig[c & 0xf];
		}
	}
	out[o] = '\0';
	return out;
}

char *
piv_escape_str(const char *in, char *out, size_t out_size)
{
	if (in == NULL)
		in = "(none)";
	return piv_escape(in, strlen(in), out, out_size);
}

char *
piv_hex(const uint8_t *in, size_t len, char sep, char *out, size_t out_size)
{
	static const char hexdig[] = "0123456789ABCDEF";
	size_t o = 0;

	if (out == NULL || out_size == 0)
		return out;
	for (size_t i = 0; i < len; i++) {
		if (o + (sep && i ? 3 : 2) + 1 > out_size)
			break;
		if (sep && i)
			out[o++] = sep;
		out[o++] = hexdig[in[i] >> 4];
		out[o++] = hexdig[in[i] & 0xf];
	}
	out[o] = '\0';
	return out;
}

void
piv_fmt(char *out, size_t out_size, const char *fmt, ...)
{
	va_list ap;

	if (out == NULL || out_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(out, out_size, fmt, ap);
	va_end(ap);
}

int64_t
piv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
piv_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end = NULL;
	unsigned long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

void
piv_sigpipe_block(struct piv_sigpipe_guard *g)
{
	sigset_t pipe_set, pending;

	memset(g, 0, sizeof(*g));
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigemptyset(&pending);
	g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
	g->active = pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old) == 0;
}

void
piv_sigpipe_restore(struct piv_sigpipe_guard *g)
{
	sigset_t pipe_set, pending;
	const struct timespec zero = { 0, 0 };

	if (!g->active)
		return;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigemptyset(&pending);
	/* A SIGPIPE pending before we started was not ours to take. */
	if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1)
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
	g->active = false;
}

/* A DN as written: spaces around separators dropped, for a
 * case-insensitive comparison with the certificate's. false when it does
 * not fit in out (compared cut short, a longer DN would match). */
static bool
norm_dn(const char *in, char *out, size_t out_size)
{
	size_t o = 0;

	while (*in == ' ')
		in++;
	for (; *in && o + 1 < out_size; in++) {
		if (*in == ' ') {
			const char *next = in;
			while (*next == ' ')
				next++;
			if (*next == ',' || *next == '+' || *next == '=' || *next == '\0' ||
			    (o > 0 && (out[o - 1] == ',' || out[o - 1] == '+' || out[o - 1] == '=')))
				continue;
		}
		if (*in == '\\' && in[1] != '\0' && o + 2 < out_size) {
			out[o++] = *in++; /* keep an escaped character as it is */
		}
		out[o++] = *in;
	}
	out[o] = '\0';
	while (*in == ' ')
		in++;
	return *in == '\0';
}

bool
piv_dn_equal(const char *written, const char *cert_dn)
{
	char a[1024], b[1024];

	if (!norm_dn(written, a, sizeof(a)) || !norm_dn(cert_dn, b, sizeof(b)))
		return false;
	return a[0] != '\0' && strcasecmp(a, b) == 0;
}
