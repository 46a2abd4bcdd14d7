/* The module↔helper wire protocol: framing, field encoding, and I/O with a
 * deadline. Both sides treat the other's bytes as untrusted. */
#include "config.h"
#include "wire/proto.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void
piv_msg_init(struct piv_msg *msg, uint8_t type)
{
	memset(msg, 0, sizeof(*msg));
	msg->type = type;
}

void
piv_msg_clear(struct piv_msg *msg)
{
	if (msg->buf != NULL) {
		piv_wipe(msg->buf, msg->cap);
		free(msg->buf);
	}
	memset(msg, 0, sizeof(*msg));
}

static int
reserve(struct piv_msg *msg, size_t extra)
{
	size_t want, cap;
	uint8_t *grown;

	if (extra > PIV_PROTO_MAX_FRAME || msg->len + extra > PIV_PROTO_MAX_FRAME - 1)
		return -1;
	want = msg->len + extra;
	if (want <= msg->cap)
		return 0;
	cap = msg->cap ? msg->cap : 256;
	while (cap < want)
		cap *= 2;
	/* Not realloc: the old buffer may hold a PIN and must be wiped. */
	grown = malloc(cap);
	if (grown == NULL)
		return -1;
	if (msg->buf != NULL) {
		memcpy(grown, msg->buf, msg->len);
		piv_wipe(msg->buf, msg->cap);
		free(msg->buf);
	}
	msg->buf = grown;
	msg->cap = cap;
	return 0;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
piv_msg_put(struct piv_msg *msg, const void *data, size_t len)
{
	if (len > PIV_PROTO_MAX_FRAME || reserve(msg, len + 4) != 0)
		return -1;
	put_be32(msg->buf + msg->len, (uint32_t)len);
	if (len > 0)
		memcpy(msg->buf + msg->len + 4, data, len);
	msg->len += len + 4;
	return 0;
}

int
piv_msg_put_str(struct piv_msg *msg, const char *s)
{
	return piv_msg_put(msg, s ? s : "", s ? strlen(s) : 0);
}

int
piv_msg_put_u32(struct piv_msg *msg, uint32_t v)
{
	uint8_t be[4];

	put_be32(be, v);
	return piv_msg_put(msg, be, sizeof(be));
}

int
piv_msg_get(struct piv_msg *msg, const uint8_t **data, size_t *len)
{
	uint32_t n;

	if (msg->len - msg->rpos < 4)
		return -1;
	n = get_be32(msg->buf + msg->rpos);
	if (n > msg->len - msg->rpos - 4)
		return -1;
	*data = msg->buf + msg->rpos + 4;
	*len = n;
	msg->rpos += 4 + (size_t)n;
	return 0;
}

int
piv_msg_get_u32(struct piv_msg *msg, uint32_t *v)
{
	const uint8_t *p;
	size_t n;

	if (piv_msg_get(msg, &p, &n) != 0 || n != 4)
		return -1;
	*v = get_be32(p);
	return 0;
}

int
piv_msg_get_str(struct piv_msg *msg, char **s)
{
	const uint8_t *p;
	size_t n;
	char *copy;

	if (piv_msg_get(msg, &p, &n) != 0 || memchr(p, '\0', n) != NULL)
		return -1;
	if ((copy = malloc(n + 1)) == NULL)
		return -1;
	if (n > 0)
		memcpy(copy, p, n);
	copy[n] = '\0';
	*s = copy;
	return 0;
}

int
piv_msg_get_dup(struct piv_msg *msg, uint8_t **data, size_t *len)
{
	const uint8_t *p;
	size_t n;
	uint8_t *copy;

	if (piv_msg_get(msg, &p, &n) != 0)
		return -1;
	if ((copy = malloc(n ? n : 1)) == NULL)
		return -1;
	if (n > 0)
		memcpy(copy, p, n);
	*data = copy;
	*len = n;
	return 0;
}

int
piv_msg_end(const struct piv_msg *msg)
{
	return msg->rpos == msg->len ? 0 : -1;
}

/* Wait until fd is ready for events or the deadline passes. */
static int
wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int timeout = -1;
		int rc;

		if (deadline_ms >= 0) {
			int64_t left = deadline_ms - piv_now_ms();
			if (left <= 0)
				return PIV_PROTO_TIMEOUT;
			timeout = left > 60 * 60 * 1000 ? 60 * 60 * 1000 : (int)left;
		}
		rc = poll(&pfd, 1, timeout);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return PIV_PROTO_ERROR;
		if (rc == 0)
			continue; /* re-check the deadline */
		return PIV_PROTO_OK;
	}
}

static int
write_full(int fd, const uint8_t *p, size_t len, int64_t deadline_ms)
{
	while (len > 0) {
		ssize_t n;
		int rc = wait_fd(fd, POLLOUT, deadline_ms);
		if (rc != PIV_PROTO_OK)
			return rc;
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0)
			return PIV_PROTO_ERROR;
		p += n;
		len -= (size_t)n;
	}
	return PIV_PROTO_OK;
}

/* Reads exactly len bytes. EOF before the first byte is PIV_PROTO_EOF when
 * eof_ok, a protocol error otherwise (a frame cut short). */
static int
read_full(int fd, uint8_t *p, size_t len, int64_t deadline_ms, int eof_ok)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		int rc = wait_fd(fd, POLLIN, deadline_ms);
		if (rc != PIV_PROTO_OK)
			return rc;
		n = recv(fd, p + got, len - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n == 0)
			return (got == 0 && eof_ok) ? PIV_PROTO_EOF : PIV_PROTO_ERROR;
		if (n < 0)
			return PIV_PROTO_ERROR;
		got += (size_t)n;
	}
	return PIV_PROTO_OK;
}

int
piv_msg_send(int fd, const struct piv_msg *msg, int64_t deadline_ms)
{
	uint8_t head[5];
	int rc;

	if (msg->len + 1 > PIV_PROTO_MAX_FRAME)
		return PIV_PROTO_ERROR;
	put_be32(head, (uint32_t)(msg->len + 1));
	head[4] = msg->type;
	rc = write_full(fd, head, sizeof(head), deadline_ms);
	if (rc == PIV_PROTO_OK && msg->len > 0)
		rc = write_full(fd, msg->buf, msg->len, deadline_ms);
	return rc;
}

int
piv_msg_parse(struct piv_msg *msg, const uint8_t *body, size_t len)
{
	piv_msg_clear(msg);
	if (len < 1 || len > PIV_PROTO_MAX_FRAME)
		return PIV_PROTO_ERROR;
	piv_msg_init(msg, body[0]);
	if (len > 1) {
		if (reserve(msg, len - 1) != 0)
			return PIV_PROTO_ERROR;
		memcpy(msg->buf, body + 1, len - 1);
		msg->len = len - 1;
	}
	return PIV_PROTO_OK;
}

int
piv_msg_recv(int fd, struct piv_msg *msg, int64_t deadline_ms)
{
	uint8_t head[5];
	uint32_t len;
	int rc;

	piv_msg_clear(msg);
	rc = read_full(fd, head, 4, deadline_ms, 1);
	if (rc != PIV_PROTO_OK)
		return rc;
	len = get_be32(head);
	if (len < 1 || len > PIV_PROTO_MAX_FRAME)
		return PIV_PROTO_ERROR;
	rc = read_full(fd, head + 4, 1, deadline_ms, 0);
	if (rc != PIV_PROTO_OK)
		return rc;
	piv_msg_init(msg, head[4]);
	if (len > 1) {
		if (reserve(msg, len - 1) != 0)
			return PIV_PROTO_ERROR;
		rc = read_full(fd, msg->buf, len - 1, deadline_ms, 0);
		if (rc != PIV_PROTO_OK) {
			piv_msg_clear(msg);
			return rc;
		}
		msg->len = len - 1;
	}
	return PIV_PROTO_OK;
}
