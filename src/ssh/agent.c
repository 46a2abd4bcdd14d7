/* A minimal ssh-agent client: socket checks, framed I/O against a
 * deadline, REQUEST_IDENTITIES and SIGN_REQUEST. The agent's answers are
 * parsed as untrusted input; nothing here keeps state between calls. */
#include "config.h"
#include "ssh/agent.h"
#include "ssh/sshkey.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* draft-miller-ssh-agent message numbers. */
#define SSH_AGENT_FAILURE 5
#define SSH2_AGENTC_REQUEST_IDENTITIES 11
#define SSH2_AGENT_IDENTITIES_ANSWER 12
#define SSH2_AGENTC_SIGN_REQUEST 13
#define SSH2_AGENT_SIGN_RESPONSE 14

enum io_rc { IO_OK = 0, IO_ERROR = -1, IO_TIMEOUT = -2, IO_CLOSED = -3 };

/* ---- I/O ----------------------------------------------------------- */

/* Wait until fd is ready for events; IO_TIMEOUT once deadline_ms passes. */
static int
wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int64_t left = deadline_ms - piv_now_ms();
		int rc;

		if (left <= 0)
			return IO_TIMEOUT;
		rc = poll(&pfd, 1, left > 60 * 1000 ? 60 * 1000 : (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return IO_ERROR;
		if (rc == 0)
			continue; /* re-check the deadline */
		if (pfd.revents & POLLNVAL) {
			errno = EBADF;
			return IO_ERROR;
		}
		return IO_OK; /* POLLHUP/POLLERR: the next send/recv says what */
	}
}

static int
send_all(int fd, const uint8_t *p, size_t len, int64_t deadline_ms)
{
	while (len > 0) {
		ssize_t n;
		int rc = wait_fd(fd, POLLOUT, deadline_ms);

		if (rc != IO_OK)
			return rc;
		/* MSG_NOSIGNAL: an agent that hangs up must not kill the
		 * process with SIGPIPE. */
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return IO_CLOSED;
		if (n <= 0)
			return IO_ERROR;
		p += n;
		len -= (size_t)n;
	}
	return IO_OK;
}

static int
recv_all(int fd, uint8_t *p, size_t len, int64_t deadline_ms)
{
	while (len > 0) {
		ssize_t n;
		int rc = wait_fd(fd, POLLIN, deadline_ms);

		if (rc != IO_OK)
			return rc;
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return IO_CLOSED;
		if (n < 0)
			return IO_ERROR;
		p += n;
		len -= (size_t)n;
	}
	return IO_OK;
}

static void
io_why(int rc, const char *what, char *why, size_t why_size)
{
	switch (rc) {
	case IO_TIMEOUT:
		piv_fmt(why, why_size, "ssh-agent: timed out %s", what);
		break;
	case IO_CLOSED:
		piv_fmt(why, why_size, "ssh-agent closed the connection %s", what);
		break;
	default:
		piv_fmt(why, why_size, "ssh-agent: error %s: %s", what, strerror(errno));
		break;
	}
}

/* Send one request (payload = type byte and body) and read one answer.
 * *answer (malloc'd) holds the type byte and body, 1..PIV_AGENT_MAX_MSG
 * bytes. */
static int
agent_call(int fd, int64_t deadline_ms, const uint8_t *payload, size_t payload_len,
           uint8_t **answer, size_t *answer_len, char *why, size_t why_size)
{
	uint8_t head[4];
	uint8_t *body = NULL;
	uint32_t len;
	int rc;

	*answer = NULL;
	*answer_len = 0;
	if (fd < 0 || payload_len == 0 || payload_len > PIV_AGENT_MAX_MSG) {
		piv_fmt(why, why_size, "ssh-agent: request of %zu bytes not sent", payload_len);
		return -1;
	}
	head[0] = (uint8_t)(payload_len >> 24);
	head[1] = (uint8_t)(payload_len >> 16);
	head[2] = (uint8_t)(payload_len >> 8);
	head[3] = (uint8_t)payload_len;
	if ((rc = send_all(fd, head, sizeof(head), deadline_ms)) != IO_OK ||
	    (rc = send_all(fd, payload, payload_len, deadline_ms)) != IO_OK) {
		io_why(rc, "sending the request", why, why_size);
		return -1;
	}
	if ((rc = recv_all(fd, head, sizeof(head), deadline_ms)) != IO_OK) {
		io_why(rc, "waiting for the answer", why, why_size);
		return -1;
	}
	len = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
	if (len == 0 || len > PIV_AGENT_MAX_MSG) {
		piv_fmt(why, why_size, "ssh-agent: answer length %u is out of range (1..%u)",
		        (unsigned)len, (unsigned)PIV_AGENT_MAX_MSG);
		return -1;
	}
	if ((body = malloc(len)) == NULL) {
		piv_fmt(why, why_size, "ssh-agent: out of memory");
		return -1;
	}
	if ((rc = recv_all(fd, body, len, deadline_ms)) != IO_OK) {
		io_why(rc, "in the middle of the answer", why, why_size);
		free(body);
		return -1;
	}
	*answer = body;
	*answer_len = len;
	return 0;
}

/* ---- connect ------------------------------------------------------- */

static int
connect_until(int sock, const struct sockaddr_un *addr, int64_t deadline_ms)
{
	for (;;) {
		int err = 0;
		socklen_t err_len = sizeof(err);
		int rc;

		if (connect(sock, (const struct sockaddr *)addr, sizeof(*addr)) == 0 ||
		    errno == EISCONN)
			return IO_OK;
		if (errno == EAGAIN) {
			/* A full listen backlog (AF_UNIX): try again shortly. */
			int64_t left = deadline_ms - piv_now_ms();

			if (left <= 0)
				return IO_TIMEOUT;
			(void)poll(NULL, 0, left > 20 ? 20 : (int)left);
			continue;
		}
		if (errno != EINPROGRESS && errno != EALREADY && errno != EINTR)
			return IO_ERROR;
		if ((rc = wait_fd(sock, POLLOUT, deadline_ms)) != IO_OK)
			return rc;
		if (getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0)
			return IO_ERROR;
		if (err == 0)
			return IO_OK;
		errno = err;
		return IO_ERROR;
	}
}

int
piv_agent_connect(const char *socket_path, uid_t expected_owner, int64_t deadline_ms,
                  int *fd, char *why, size_t why_size)
{
	struct sockaddr_un addr;
	struct stat st;
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	char dir[sizeof(addr.sun_path)];
	char path_esc[160];
	char *slash;
	size_t path_len;
	int sock = -1, rc;

	return_val_if_fail(fd != NULL, -1);
	*fd = -1;
	piv_fmt(why, why_size, "ssh-agent: internal error");
	if (socket_path == NULL || socket_path[0] != '/') {
		piv_fmt(why, why_size, "ssh-agent socket %s is not an absolute path",
		        piv_escape_str(socket_path, path_esc, sizeof(path_esc)));
		return -1;
	}
	piv_escape_str(socket_path, path_esc, sizeof(path_esc));
	path_len = strnlen(socket_path, sizeof(addr.sun_path));
	if (path_len >= sizeof(addr.sun_path)) {
		piv_fmt(why, why_size, "ssh-agent socket %s: path too long", path_esc);
		return -1;
	}
	if (lstat(socket_path, &st) != 0) {
		piv_fmt(why, why_size, "ssh-agent socket %s: %s", path_esc, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		piv_fmt(why, why_size, "ssh-agent socket %s is not a socket", path_esc);
		return -1;
	}
	if (st.st_uid != expected_owner) {
		piv_fmt(why, why_size, "ssh-agent socket %s is owned by uid %u, not %u", path_esc,
		        (unsigned)st.st_uid, (unsigned)expected_owner);
		return -1;
	}
	/* Whoever can rename entries in the directory can put another
	 * socket in its place. */
	memcpy(dir, socket_path, path_len + 1);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (lstat(dir, &st) != 0) {
		piv_fmt(why, why_size, "ssh-agent socket %s: directory: %s", path_esc,
		        strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		piv_fmt(why, why_size, "ssh-agent socket %s: its directory is a symbolic link",
		        path_esc);
		return -1;
	}
	if (st.st_uid != expected_owner && st.st_uid != 0) {
		piv_fmt(why, why_size, "ssh-agent socket %s: its directory is owned by uid %u",
		        path_esc, (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) {
		piv_fmt(why, why_size,
		        "ssh-agent socket %s: its directory is writable by others and not sticky",
		        path_esc);
		return -1;
	}

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, socket_path, path_len + 1);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sock < 0) {
		piv_fmt(why, why_size, "ssh-agent: socket: %s", strerror(errno));
		return -1;
	}
	if ((rc = connect_until(sock, &addr, deadline_ms)) != IO_OK) {
		if (rc == IO_TIMEOUT)
			piv_fmt(why, why_size, "ssh-agent socket %s: connect timed out", path_esc);
		else
			piv_fmt(why, why_size, "ssh-agent socket %s: connect: %s", path_esc,
			        strerror(errno));
		goto fail;
	}
	/* The checks above are on a name; this one is on the process that
	 * actually answers. */
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 ||
	    cred_len != sizeof(cred)) {
		piv_fmt(why, why_size, "ssh-agent socket %s: SO_PEERCRED: %s", path_esc,
		        strerror(errno));
		goto fail;
	}
	if (cred.uid != expected_owner && cred.uid != 0) {
		piv_fmt(why, why_size, "ssh-agent socket %s: the agent runs as uid %u, not %u",
		        path_esc, (unsigned)cred.uid, (unsigned)expected_owner);
		goto fail;
	}
	*fd = sock;
	piv_fmt(why, why_size, "ok");
	return 0;
fail:
	close(sock);
	return -1;
}

/* ---- requests ------------------------------------------------------ */

void
piv_agent_keys_free(struct piv_agent_keys *keys)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; keys->keys != NULL && i < keys->n_keys; i++) {
		free(keys->keys[i].blob);
		free(keys->keys[i].comment);
	}
	free(keys->keys);
	keys->keys = NULL;
	keys->n_keys = 0;
}

static int
answer_type_ok(const uint8_t *answer, uint8_t want, const char *request, char *why,
               size_t why_size)
{
	if (answer[0] == want)
		return 0;
	if (answer[0] == SSH_AGENT_FAILURE)
		piv_fmt(why, why_size, "ssh-agent refused %s (SSH_AGENT_FAILURE)", request);
	else
		piv_fmt(why, why_size, "ssh-agent answered %s with message type %u", request,
		        (unsigned)answer[0]);
	return -1;
}

int
piv_agent_list(int fd, int64_t deadline_ms, struct piv_agent_keys *keys, char *why,
               size_t why_size)
{
	const uint8_t request = SSH2_AGENTC_REQUEST_IDENTITIES;
	struct piv_ssh_reader r;
	uint8_t *answer = NULL;
	size_t answer_len, i;
	uint32_t n_keys;
	int ret = -1;

	return_val_if_fail(keys != NULL, -1);
	memset(keys, 0, sizeof(*keys));
	if (agent_call(fd, deadline_ms, &request, 1, &answer, &answer_len, why, why_size) != 0)
		return -1;
	if (answer_type_ok(answer, SSH2_AGENT_IDENTITIES_ANSWER, "to list its keys", why,
	                   why_size) != 0)
		goto out;
	piv_ssh_reader_init(&r, answer + 1, answer_len - 1);
	if (piv_ssh_get_u32(&r, &n_keys) != 0) {
		piv_fmt(why, why_size, "ssh-agent: key list without a count");
		goto out;
	}
	if (n_keys > PIV_AGENT_MAX_KEYS) {
		piv_fmt(why, why_size, "ssh-agent holds %u keys, more than the %u read",
		        (unsigned)n_keys, (unsigned)PIV_AGENT_MAX_KEYS);
		goto out;
	}
	if (n_keys > 0 && (keys->keys = calloc(n_keys, sizeof(*keys->keys))) == NULL) {
		piv_fmt(why, why_size, "ssh-agent: out of memory");
		goto out;
	}
	for (i = 0; i < n_keys; i++) {
		struct piv_agent_key *key = &keys->keys[i];
		const uint8_t *blob, *comment;
		size_t blob_len, comment_len;

		if (piv_ssh_get_string(&r, &blob, &blob_len) != 0 ||
		    piv_ssh_get_string(&r, &comment, &comment_len) != 0) {
			piv_fmt(why, why_size, "ssh-agent: key %zu of %u is cut short", i + 1,
			        (unsigned)n_keys);
			goto out;
		}
		if (blob_len == 0 || blob_len > PIV_AGENT_MAX_BLOB) {
			piv_fmt(why, why_size, "ssh-agent: key %zu is %zu bytes long", i + 1,
			        blob_len);
			goto out;
		}
		keys->n_keys = i + 1;
		if ((key->blob = malloc(blob_len)) == NULL ||
		    (key->comment = malloc(comment_len + 1)) == NULL) {
			piv_fmt(why, why_size, "ssh-agent: out of memory");
			goto out;
		}
		memcpy(key->blob, blob, blob_len);
		key->blob_len = blob_len;
		if (comment_len > 0)
			memcpy(key->comment, comment, comment_len);
		key->comment[comment_len] = '\0';
	}
	if (piv_ssh_reader_end(&r) != 0) {
		piv_fmt(why, why_size, "ssh-agent: %zu stray bytes after the key list", r.left);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0)
		piv_agent_keys_free(keys);
	free(answer);
	return ret;
}

int
piv_agent_sign(int fd, int64_t deadline_ms, const uint8_t *key_blob, size_t key_len,
               const uint8_t *data, size_t data_len, uint32_t flags, uint8_t **sig_blob,
               size_t *sig_len, char *why, size_t why_size)
{
	struct piv_ssh_buf req;
	struct piv_ssh_reader r;
	uint8_t *payload = NULL, *answer = NULL, *copy;
	size_t payload_len, answer_len, sig_part_len;
	const uint8_t *sig_part;
	int ret = -1;

	return_val_if_fail(sig_blob != NULL && sig_len != NULL, -1);
	*sig_blob = NULL;
	*sig_len = 0;
	if (key_blob == NULL || key_len == 0 || key_len > PIV_AGENT_MAX_BLOB ||
	    (data == NULL && data_len > 0)) {
		piv_fmt(why, why_size, "ssh-agent: bad sign request");
		return -1;
	}
	piv_ssh_buf_init(&req, PIV_AGENT_MAX_MSG);
	piv_ssh_put_u8(&req, SSH2_AGENTC_SIGN_REQUEST);
	piv_ssh_put_string(&req, key_blob, key_len);
	piv_ssh_put_string(&req, data, data_len);
	piv_ssh_put_u32(&req, flags);
	if (piv_ssh_buf_take(&req, &payload, &payload_len) != 0) {
		piv_fmt(why, why_size, "ssh-agent: sign request too large (%zu bytes of data)",
		        data_len);
		return -1;
	}
	if (agent_call(fd, deadline_ms, payload, payload_len, &answer, &answer_len, why,
	               why_size) != 0)
		goto out;
	if (answer_type_ok(answer, SSH2_AGENT_SIGN_RESPONSE,
	                   "to sign (it does not hold the key, or signing was declined)", why,
	                   why_size) != 0)
		goto out;
	piv_ssh_reader_init(&r, answer + 1, answer_len - 1);
	if (piv_ssh_get_string(&r, &sig_part, &sig_part_len) != 0 ||
	    piv_ssh_reader_end(&r) != 0) {
		piv_fmt(why, why_size, "ssh-agent: malformed sign response");
		goto out;
	}
	if (sig_part_len == 0 || sig_part_len > PIV_AGENT_MAX_BLOB) {
		piv_fmt(why, why_size, "ssh-agent: signature of %zu bytes", sig_part_len);
		goto out;
	}
	if ((copy = malloc(sig_part_len)) == NULL) {
		piv_fmt(why, why_size, "ssh-agent: out of memory");
		goto out;
	}
	memcpy(copy, sig_part, sig_part_len);
	*sig_blob = copy;
	*sig_len = sig_part_len;
	ret = 0;
out:
	free(answer);
	if (payload != NULL) {
		piv_wipe(payload, payload_len);
		free(payload);
	}
	return ret;
}
