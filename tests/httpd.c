/* tests/httpd: loopback-only HTTP/1.0 file server for the test suite. It owns
 * serving DOCROOT's CRLs (later OCSP responses) to the module's OpenSSL HTTP
 * client, and misbehaving on purpose, per request, as DOCROOT/.mode says. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Hung connections are kept so the client meets a silent peer, but a test
 * that leaks them must not exhaust our descriptors. The extra slots keep the
 * server answering while the hung list is full. */
#define MAX_HUNG 64
#define MAX_CONNS (MAX_HUNG + 16)
#define MAX_HEAD 8192
#define MAX_POST 65536
/* One stuck client must not hold a slot for ever, reading or writing. */
#define READ_TIMEOUT_MS 10000LL
#define STALL_TIMEOUT_MS 10000LL
/* After our last byte we wait briefly for the client's FIN: closing with its
 * input unread would send an RST that can destroy the response in flight. */
#define LINGER_MS 2000LL
#define SLOW_STEP_MS 200LL
#define GARBAGE_LEN 1024
#define HUGE_LEN ((off_t)2147483647)
#define DEFAULT_LIFETIME 900L
#define MAX_LIFETIME 604800L

enum mode { M_NORMAL, M_HANG, M_SLOW, M_TRUNCATE, M_GARBAGE, M_500, M_HUGE };

static const char *const mode_name[] = {
	[M_NORMAL] = "normal", [M_HANG] = "hang", [M_SLOW] = "slow",
	[M_TRUNCATE] = "truncate", [M_GARBAGE] = "garbage", [M_500] = "500",
	[M_HUGE] = "huge",
};

enum cstate { C_FREE, C_READ, C_WRITE, C_LINGER, C_HUNG };
enum bsrc { B_NONE, B_FILE, B_MEM, B_ZERO };

struct conn {
	enum cstate state;
	int fd;
	long long deadline;		/* monotonic ms, 0 = none */
	/* C_READ */
	char *in;
	size_t in_len;
	size_t head_end;		/* 0 until the blank line is seen */
	size_t need;			/* 0 until a POST's full size is known */
	/* C_WRITE */
	char head[512];
	size_t head_len, head_off;
	enum bsrc src;
	int file_fd;
	const char *mem;
	off_t body_off, body_end;	/* body_end < Content-Length if truncating */
	bool slow;
	long long next_send;
	/* C_HUNG */
	unsigned long long hung_seq;
};

struct request {
	char copy[MAX_HEAD + 1];	/* the head, tokenised in place */
	const char *method;		/* NULL if absent */
	const char *target;		/* NULL if absent */
	const char *name;		/* file to serve, NULL if target invalid */
	long long clen;			/* -1 if absent */
	time_t ims;			/* If-Modified-Since, 0 if absent */
	bool bad;
};

struct reply {
	int status;
	const char *ctype;
	enum bsrc src;
	int file_fd;
	const char *mem;
	off_t len;
	time_t mtime;			/* Last-Modified of a file, 0 for none */
};

static const struct {
	int code;
	const char *reason;
	const char *body;
} statuses[] = {
	{ 200, "OK", "" },
	{ 304, "Not Modified", "" },
	{ 400, "Bad Request", "400 Bad Request\n" },
	{ 404, "Not Found", "404 Not Found\n" },
	{ 405, "Method Not Allowed", "405 Method Not Allowed\n" },
	{ 411, "Length Required", "411 Length Required\n" },
	{ 413, "Request Entity Too Large", "413 Request Entity Too Large\n" },
	{ 500, "Internal Server Error", "500 Internal Server Error\n" },
};

static struct conn conns[MAX_CONNS];
static unsigned long long hung_counter;
static int doc_fd = -1;
static volatile sig_atomic_t got_signal;
static char garbage[GARBAGE_LEN];
static const char zeros[65536];

static void
on_signal(int sig)
{
	got_signal = sig;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Fixed so that runs are reproducible; the first byte is forced so no parser
 * can take it for a DER SEQUENCE or a PEM header by luck. */
static void
init_garbage(void)
{
	uint32_t x = 0x9e3779b9u;

	for (size_t i = 0; i < sizeof garbage; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		garbage[i] = (char)(x >> 24);
	}
	garbage[0] = (char)0xff;
}

static enum mode
read_mode(void)
{
	char buf[64], *p, *end;
	ssize_t n;
	int fd;

	fd = openat(doc_fd, ".mode", O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT)
			fprintf(stderr, "httpd: .mode: %s\n", strerror(errno));
		return M_NORMAL;
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return M_NORMAL;
	buf[n] = '\0';
	p = buf + strspn(buf, " \t\r\n");
	end = p + strcspn(p, " \t\r\n");
	*end = '\0';
	if (*p == '\0')
		return M_NORMAL;
	for (size_t i = 0; i < sizeof mode_name / sizeof mode_name[0]; i++)
		if (strcmp(p, mode_name[i]) == 0)
			return (enum mode)i;
	/* A typo must not pass silently, yet must not kill the server. */
	fprintf(stderr, "httpd: unknown mode '%s', acting normal\n", p);
	return M_NORMAL;
}

static size_t
find_head_end(const char *buf, size_t len)
{
	if (len > MAX_HEAD)
		len = MAX_HEAD;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void
strip_cr(char *s)
{
	size_t n = strlen(s);

	if (n > 0 && s[n - 1] == '\r')
		s[n - 1] = '\0';
}

static bool
parse_clen(const char *s, long long *out)
{
	long long v = 0;
	bool digits = false;

	s += strspn(s, " \t");
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > 1000000000000LL)
			return false;
		v = v * 10 + (*s - '0');
		digits = true;
	}
	s += strspn(s, " \t");
	if (!digits || *s != '\0')
		return false;
	*out = v;
	return true;
}

/* No percent-decoding and no slashes: the charset alone keeps every request
 * inside DOCROOT, and the leading-dot rule hides our control files. */
static const char *
target_name(const char *target)
{
	const char *name;
	size_t len;

	/* Absolute form is what a client sends when it thinks we are a proxy. */
	if (strncasecmp(target, "http://", 7) == 0) {
		target = strchr(target + 7, '/');
		if (target == NULL)
			return NULL;
	}
	if (target[0] != '/')
		return NULL;
	name = target + 1;
	len = strlen(name);
	if (len == 0 || len > 255 || name[0] == '.')
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '-'))
			return NULL;
	}
	return name;
}

static void
parse_request(const char *buf, size_t len, size_t head_end, struct request *rq)
{
	size_t n = head_end != 0 ? head_end : (len < MAX_HEAD ? len : MAX_HEAD);
	char *next, *line, *p, *tok[4];
	int ntok = 0;

	memcpy(rq->copy, buf, n);
	rq->copy[n] = '\0';
	rq->method = rq->target = rq->name = NULL;
	rq->clen = -1;
	rq->ims = 0;
	rq->bad = head_end == 0 || memchr(buf, '\0', n) != NULL;

	next = rq->copy;
	line = strsep(&next, "\n");
	strip_cr(line);
	p = line;
	while (ntok < 4 && p != NULL)
		tok[ntok++] = strsep(&p, " ");
	if (ntok >= 1 && tok[0][0] != '\0')
		rq->method = tok[0];
	if (ntok >= 2 && tok[1][0] != '\0')
		rq->target = tok[1];
	if (ntok != 3 || rq->method == NULL || rq->target == NULL ||
	    (strcmp(tok[2], "HTTP/1.0") != 0 && strcmp(tok[2], "HTTP/1.1") != 0))
		rq->bad = true;

	while (!rq->bad && next != NULL) {
		line = strsep(&next, "\n");
		strip_cr(line);
		if (line[0] == '\0')
			break;
		if (strncasecmp(line, "Content-Length:", 15) == 0 &&
		    (rq->clen != -1 || !parse_clen(line + 15, &rq->clen)))
			rq->bad = true;
		if (strncasecmp(line, "If-Modified-Since:", 18) == 0) {
			/* IMF-fixdate only (RFC 9110); anything else is ignored */
			struct tm tm;
			const char *end;
			memset(&tm, 0, sizeof tm);
			end = strptime(line + 18 + strspn(line + 18, " \t"), "%a, %d %b %Y %H:%M:%S GMT", &tm);
			if (end != NULL && *end == '\0')
				rq->ims = timegm(&tm);
		}
	}
	if (!rq->bad)
		rq->name = target_name(rq->target);
}

static bool
is_method(const struct request *rq, const char *m)
{
	return rq->method != NULL && strcmp(rq->method, m) == 0;
}

static void
sanitize(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	if (src == NULL || *src == '\0')
		src = "-";
	for (; src[i] != '\0' && i + 1 < size; i++)
		dst[i] = (src[i] > ' ' && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

static void
log_request(const struct request *rq, enum mode mode)
{
	char m[64], t[512], line[640];
	int len, fd;

	sanitize(m, sizeof m, rq->method);
	sanitize(t, sizeof t, rq->target);
	len = snprintf(line, sizeof line, "%s %s %s\n", m, t, mode_name[mode]);
	if (len < 0 || (size_t)len >= sizeof line)
		return;
	/* Reopened each time so tests may truncate or delete the log. */
	fd = openat(doc_fd, ".requests",
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write_all(fd, line, (size_t)len) != 0)
		fprintf(stderr, "httpd: .requests: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* DOCROOT/.statuses: one line per response, its status code. */
static void
log_status(int status)
{
	char line[16];
	int len = snprintf(line, sizeof line, "%d\n", status);
	int fd = openat(doc_fd, ".statuses",
	    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);

	if (fd < 0 || write_all(fd, line, (size_t)len) != 0)
		fprintf(stderr, "httpd: .statuses: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void
save_post(const char *body, size_t len)
{
	int fd, err;

	/* Renamed into place so a test never reads half a body. */
	fd = openat(doc_fd, ".last-post.tmp",
	    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		goto fail;
	if (write_all(fd, body, len) != 0) {
		err = errno;
		close(fd);
		errno = err;
		goto fail;
	}
	if (close(fd) != 0 ||
	    renameat(doc_fd, ".last-post.tmp", doc_fd, ".last-post") != 0)
		goto fail;
	return;
fail:
	fprintf(stderr, "httpd: .last-post: %s\n", strerror(errno));
}

static const char *
content_type(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n > 4 && strcmp(name + n - 4, ".crl") == 0)
		return "application/pkix-crl";
	if (n > 5 && strcmp(name + n - 5, ".ocsp") == 0)
		return "application/ocsp-response";
	return "application/octet-stream";
}

static void
set_status(struct reply *r, int code)
{
	r->status = code;
	r->ctype = "text/plain";
	r->src = B_MEM;
	r->mem = "";
	r->len = 0;
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
		if (statuses[i].code == code) {
			r->mem = statuses[i].body;
			r->len = (off_t)strlen(r->mem);
		}
}

static const char *
reason(int code)
{
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
		if (statuses[i].code == code)
			return statuses[i].reason;
	return "Unknown";
}

/* The answer a well-behaved server would give: 200 with r filled in, or the
 * error status. */
static int
route(const struct request *rq, struct reply *r)
{
	struct stat st;
	bool post = is_method(rq, "POST");
	int fd;

	if (rq->bad)
		return 400;
	if (!is_method(rq, "GET") && !is_method(rq, "HEAD") && !post)
		return 405;
	if (post && rq->clen < 0)
		return 411;
	if (post && rq->clen > MAX_POST)
		return 413;
	if (rq->name == NULL)
		return 404;
	/* O_NONBLOCK: a FIFO dropped in DOCROOT must not freeze the server. */
	fd = openat(doc_fd, rq->name,
	    O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 404;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 404;
	}
	/* a conditional GET of a file not changed since */
	if (rq->ims != 0 && st.st_mtime <= rq->ims && !post) {
		close(fd);
		r->mtime = st.st_mtime;
		return 304;
	}
	r->status = 200;
	r->ctype = content_type(rq->name);
	r->src = B_FILE;
	r->file_fd = fd;
	r->len = st.st_size;
	r->mtime = st.st_mtime;
	return 200;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->file_fd >= 0)
		close(c->file_fd);
	free(c->in);
	c->fd = -1;
	c->file_fd = -1;
	c->in = NULL;
	c->state = C_FREE;
	c->deadline = 0;
}

static void
make_hung(struct conn *c)
{
	struct conn *oldest = NULL;
	int hung = 0;

	for (size_t i = 0; i < MAX_CONNS; i++) {
		if (conns[i].state != C_HUNG)
			continue;
		hung++;
		if (oldest == NULL || conns[i].hung_seq < oldest->hung_seq)
			oldest = &conns[i];
	}
	if (hung >= MAX_HUNG && oldest != NULL)
		conn_close(oldest);
	c->state = C_HUNG;
	c->hung_seq = ++hung_counter;
	c->deadline = 0;
}

static void
finish(struct conn *c, long long now)
{
	if (c->file_fd >= 0)
		close(c->file_fd);
	c->file_fd = -1;
	shutdown(c->fd, SHUT_WR);
	c->state = C_LINGER;
	c->deadline = now + LINGER_MS;
}

static void
send_response(struct conn *c, long long now)
{
	while (c->head_off < c->head_len) {
		ssize_t n = send(c->fd, c->head + c->head_off,
		    c->head_len - c->head_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->head_off += (size_t)n;
		c->deadline = now + STALL_TIMEOUT_MS;
	}
	while (c->body_off < c->body_end) {
		off_t left = c->body_end - c->body_off;
		size_t chunk = left > (off_t)sizeof zeros ?
		    sizeof zeros : (size_t)left;
		ssize_t n = -1;

		if (c->slow) {
			if (now < c->next_send)
				return;
			chunk = 1;
		}
		switch (c->src) {
		case B_FILE: {
			off_t off = c->body_off;

			n = sendfile(c->fd, c->file_fd, &off, chunk);
			/* The file shrank under us: all we can do is cut. */
			if (n == 0) {
				conn_close(c);
				return;
			}
			break;
		}
		case B_MEM:
			n = send(c->fd, c->mem + c->body_off, chunk,
			    MSG_NOSIGNAL);
			break;
		case B_ZERO:
			n = send(c->fd, zeros, chunk, MSG_NOSIGNAL);
			break;
		case B_NONE:
			c->body_end = c->body_off;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->body_off += n;
		c->deadline = now + STALL_TIMEOUT_MS;
		if (c->slow) {
			c->next_send = now + SLOW_STEP_MS;
			c->deadline = c->next_send + STALL_TIMEOUT_MS;
		}
	}
	finish(c, now);
}

static void
serve(struct conn *c, long long now)
{
	struct request rq;
	struct reply r = { .file_fd = -1 };
	enum mode mode = read_mode();
	char last_modified[80] = "";
	bool head;
	int len, code;

	parse_request(c->in, c->in_len, c->head_end, &rq);
	head = is_method(&rq, "HEAD");
	if (!rq.bad && is_method(&rq, "POST") && rq.clen >= 0 &&
	    rq.clen <= MAX_POST)
		save_post(c->in + c->head_end, (size_t)rq.clen);
	log_request(&rq, mode);
	free(c->in);
	c->in = NULL;

	switch (mode) {
	case M_HANG:
		make_hung(c);
		return;
	case M_500:
		set_status(&r, 500);
		break;
	case M_GARBAGE:
		r.status = 200;
		r.ctype = content_type(rq.name);
		r.src = B_MEM;
		r.mem = garbage;
		r.len = GARBAGE_LEN;
		break;
	case M_HUGE:
		r.status = 200;
		r.ctype = content_type(rq.name);
		r.src = B_ZERO;
		r.len = HUGE_LEN;
		break;
	case M_NORMAL:
	case M_SLOW:
	case M_TRUNCATE:
		code = route(&rq, &r);
		if (code == 304) {
			r.status = 304;
			r.ctype = content_type(rq.name);
			r.src = B_NONE;
			r.len = 0;
		} else if (code != 200) {
			set_status(&r, code);
		}
		break;
	}

	{
		struct tm tm;
		if (r.mtime != 0 && gmtime_r(&r.mtime, &tm) != NULL)
			strftime(last_modified, sizeof last_modified,
			    "Last-Modified: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	}
	log_status(r.status);
	len = snprintf(c->head, sizeof c->head,
	    "HTTP/1.0 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %lld\r\n"
	    "%s%s"
	    "Connection: close\r\n"
	    "\r\n",
	    r.status, reason(r.status), r.ctype, (long long)r.len, last_modified,
	    r.status == 405 ? "Allow: GET, HEAD, POST\r\n" : "");
	if (len < 0 || (size_t)len >= sizeof c->head) {
		if (r.file_fd >= 0)
			close(r.file_fd);
		conn_close(c);
		return;
	}
	c->head_len = (size_t)len;
	c->head_off = 0;
	c->src = head ? B_NONE : r.src;
	c->file_fd = r.file_fd;
	c->mem = r.mem;
	c->body_off = 0;
	c->body_end = head ? 0 : mode == M_TRUNCATE ? r.len / 2 : r.len;
	c->slow = mode == M_SLOW;
	c->next_send = now + SLOW_STEP_MS;
	c->state = C_WRITE;
	c->deadline = now + STALL_TIMEOUT_MS;
	send_response(c, now);
}

/* Size of the whole request once its head is known: more than the head only
 * for a POST whose body we are willing to take. */
static size_t
request_size(const struct conn *c)
{
	struct request rq;

	parse_request(c->in, c->in_len, c->head_end, &rq);
	if (rq.bad || !is_method(&rq, "POST") || rq.clen < 0 ||
	    rq.clen > MAX_POST)
		return c->head_end;
	return c->head_end + (size_t)rq.clen;
}

static void
read_request(struct conn *c, long long now)
{
	for (;;) {
		size_t want = c->need != 0 ? c->need : MAX_HEAD;

		if (c->in_len < want) {
			ssize_t n = recv(c->fd, c->in + c->in_len,
			    want - c->in_len, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			/* Gone before asking anything: nothing to log. */
			if (n <= 0) {
				conn_close(c);
				return;
			}
			c->in_len += (size_t)n;
		}
		if (c->need == 0) {
			c->head_end = find_head_end(c->in, c->in_len);
			if (c->head_end == 0) {
				if (c->in_len >= MAX_HEAD) {
					serve(c, now);
					return;
				}
				continue;
			}
			c->need = request_size(c);
		}
		if (c->in_len >= c->need) {
			serve(c, now);
			return;
		}
	}
}

/* Hung and lingering sockets: swallow input, notice when the client leaves. */
static void
drain(struct conn *c)
{
	char buf[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);

		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(c);
		return;
	}
}

static struct conn *
free_slot(void)
{
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (conns[i].state == C_FREE)
			return &conns[i];
	return NULL;
}

static void
accept_all(int lfd, long long now)
{
	struct conn *c;

	while ((c = free_slot()) != NULL) {
		int one = 1;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "httpd: accept: %s\n",
				    strerror(errno));
			return;
		}
		c->in = malloc(MAX_HEAD + MAX_POST);
		if (c->in == NULL) {
			close(fd);
			return;
		}
		/* Slow mode's single bytes must not wait for Nagle. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->fd = fd;
		c->file_fd = -1;
		c->state = C_READ;
		c->in_len = 0;
		c->head_end = 0;
		c->need = 0;
		c->deadline = now + READ_TIMEOUT_MS;
	}
}

static int
listen_loopback(unsigned *port)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

static int
write_portfile(const char *path, unsigned port)
{
	char buf[16], *tmp;
	size_t plen = strlen(path);
	int len, fd, rc = -1;

	len = snprintf(buf, sizeof buf, "%u\n", port);
	tmp = malloc(plen + sizeof ".tmp");
	if (tmp == NULL || len < 0)
		goto out;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", sizeof ".tmp");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto out;
	if (write_all(fd, buf, (size_t)len) != 0) {
		close(fd);
		goto out;
	}
	if (close(fd) == 0 && rename(tmp, path) == 0)
		rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "httpd: %s: %s\n", path, strerror(errno));
	free(tmp);
	return rc;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: httpd DOCROOT PORTFILE [--lifetime SECONDS]\n");
	exit(2);
}

static long
parse_lifetime(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 ||
	    v > MAX_LIFETIME)
		usage();
	return v;
}

/* Before the listener is considered, so slots freed here are offered to the
 * backlog in the same round rather than after an unrelated wake-up. */
static void
expire(long long now)
{
	for (size_t i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &conns[i];
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		if (c->state == C_FREE || c->deadline == 0 || now < c->deadline)
			continue;
		if (c->state == C_READ)
			fprintf(stderr, "httpd: read timeout\n");
		/* Reset: a plain close would leave the kernel trickling our
		 * queued megabytes to a client that stopped reading. */
		if (c->state == C_WRITE) {
			fprintf(stderr, "httpd: send stalled\n");
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		conn_close(c);
	}
}

static void
run(int lfd, long long end)
{
	struct pollfd fds[MAX_CONNS + 1];
	size_t owner[MAX_CONNS + 1];
	sigset_t waitmask;

	sigprocmask(SIG_BLOCK, NULL, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);

	while (!got_signal) {
		long long now = now_ms(), wake = end;
		struct timespec ts;
		nfds_t nfds = 0, first;
		int rc;

		if (now >= end) {
			fprintf(stderr, "httpd: lifetime over, exiting\n");
			return;
		}
		expire(now);
		if (free_slot() != NULL) {
			fds[nfds].fd = lfd;
			fds[nfds].events = POLLIN;
			fds[nfds++].revents = 0;
		}
		first = nfds;
		for (size_t i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &conns[i];
			short ev = POLLIN;

			if (c->state == C_FREE)
				continue;
			if (c->deadline != 0 && c->deadline < wake)
				wake = c->deadline;
			if (c->state == C_WRITE) {
				ev = POLLOUT;
				if (c->head_off == c->head_len && c->slow &&
				    now < c->next_send) {
					ev = 0;
					if (c->next_send < wake)
						wake = c->next_send;
				}
			}
			owner[nfds] = i;
			fds[nfds].fd = c->fd;
			fds[nfds].events = ev;
			fds[nfds++].revents = 0;
		}

		ts.tv_sec = (time_t)((wake - now) / 1000);
		ts.tv_nsec = (long)((wake - now) % 1000 * 1000000);
		rc = ppoll(fds, nfds, &ts, &waitmask);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "httpd: poll: %s\n", strerror(errno));
			return;
		}
		now = now_ms();
		/* Connections first: a slot freed here must not be reused by
		 * accept before its stale pollfd is looked at. */
		for (nfds_t k = first; k < nfds; k++) {
			struct conn *c = &conns[owner[k]];
			short re = fds[k].revents;

			if (c->state == C_FREE || c->fd != fds[k].fd)
				continue;
			if (c->state == C_WRITE) {
				if (re & (POLLERR | POLLHUP | POLLNVAL))
					conn_close(c);
				else if ((re & POLLOUT) || (fds[k].events == 0 &&
				    now >= c->next_send))
					send_response(c, now);
			} else if (re != 0) {
				if (c->state == C_READ)
					read_request(c, now);
				else
					drain(c);
			}
		}
		if (first == 1 && (fds[0].revents & POLLIN))
			accept_all(lfd, now);
	}
	fprintf(stderr, "httpd: signal %d, exiting\n", (int)got_signal);
}

int
main(int argc, char **argv)
{
	const char *docroot = NULL, *portfile = NULL;
	long lifetime = DEFAULT_LIFETIME;
	struct sigaction sa;
	sigset_t block;
	unsigned port;
	int lfd;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--lifetime") == 0) {
			if (++i >= argc)
				usage();
			lifetime = parse_lifetime(argv[i]);
		} else if (strncmp(argv[i], "--lifetime=", 11) == 0) {
			lifetime = parse_lifetime(argv[i] + 11);
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			usage();
		} else if (docroot == NULL) {
			docroot = argv[i];
		} else if (portfile == NULL) {
			portfile = argv[i];
		} else {
			usage();
		}
	}
	if (docroot == NULL || portfile == NULL)
		usage();

	init_garbage();
	for (size_t i = 0; i < MAX_CONNS; i++) {
		conns[i].fd = -1;
		conns[i].file_fd = -1;
	}
	doc_fd = open(docroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (doc_fd < 0) {
		fprintf(stderr, "httpd: %s: %s\n", docroot, strerror(errno));
		return 1;
	}

	/* Blocked except inside ppoll, so a signal can never slip in between
	 * the flag test and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	lfd = listen_loopback(&port);
	if (lfd < 0) {
		fprintf(stderr, "httpd: listen: %s\n", strerror(errno));
		close(doc_fd);
		return 1;
	}
	/* Only once we listen, so a reader of PORTFILE can connect at once. */
	if (write_portfile(portfile, port) != 0) {
		close(lfd);
		close(doc_fd);
		return 1;
	}
	fprintf(stderr, "httpd: serving %s on 127.0.0.1:%u for %lds\n",
	    docroot, port, lifetime);

	run(lfd, now_ms() + lifetime * 1000LL);

	for (size_t i = 0; i < MAX_CONNS; i++)
		if (conns[i].state != C_FREE)
			conn_close(&conns[i]);
	close(lfd);
	close(doc_fd);
	return 0;
}
