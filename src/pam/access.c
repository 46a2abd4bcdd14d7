/* Who may use the local reader (see access.h). */
#include "config.h"
#include "pam/access.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The first label of a host name: "admin1" of "admin1.example.gov". */
static size_t
first_label_len(const char *name)
{
	return strcspn(name, ".");
}

bool
piv_rhost_is_local(const char *rhost, const char *hostname)
{
	unsigned char addr[16];
	size_t len;
	char name[256];

	if (rhost == NULL || *rhost == '\0')
		return true;
	len = strlen(rhost);
	if (len >= sizeof(name))
		return false;
	memcpy(name, rhost, len + 1);
	if (len > 1 && name[len - 1] == '.') /* an absolute name */
		name[--len] = '\0';
	if (strcasecmp(name, "localhost") == 0 || strcasecmp(name, "localhost.localdomain") == 0 ||
	    strcasecmp(name, "localhost6") == 0 || strcasecmp(name, "ip6-localhost") == 0)
		return true;
	if (inet_pton(AF_INET, name, addr) == 1)
		return addr[0] == 127;
	if (inet_pton(AF_INET6, name, addr) == 1) {
		static const unsigned char loopback6[16] = { [15] = 1 };
		static const unsigned char mapped4[12] = { [10] = 0xff, [11] = 0xff };
		return memcmp(addr, loopback6, 16) == 0 ||
		       (memcmp(addr, mapped4, 12) == 0 && addr[12] == 127);
	}
	if (hostname == NULL || *hostname == '\0')
		return false;
	if (strcasecmp(name, hostname) == 0)
		return true;
	/* "admin1" for "admin1.example.gov" and the other way round, but not
	 * "admin1.evil.example" for "admin1.example.gov" */
	if (strchr(name, '.') == NULL || strchr(hostname, '.') == NULL) {
		size_t a = first_label_len(name), b = first_label_len(hostname);
		return a == b && a > 0 && strncasecmp(name, hostname, a) == 0;
	}
	return false;
}

bool
piv_service_allowed(const struct piv_strlist *rules, const char *service)
{
	bool replaced = false, allowed;

	for (size_t i = 0; i < rules->n; i++)
		if (rules->v[i][0] != '+' && rules->v[i][0] != '-')
			replaced = true;
	/* sshd's users are somewhere else: the reader here is not theirs */
	allowed = !replaced && strcmp(service, "sshd") != 0;
	for (size_t i = 0; i < rules->n; i++) {
		const char *rule = rules->v[i];
		bool add = rule[0] != '-';
		if (rule[0] == '+' || rule[0] == '-')
			rule++;
		if (strcmp(rule, service) == 0)
			allowed = add;
	}
	return allowed;
}

enum piv_status
piv_reader_access(const struct piv_conf *conf, const char *service, const char *rhost, char *why,
                  size_t why_size)
{
	char host[256] = "", esc[300];

	if (service != NULL && !piv_service_allowed(&conf->allowed_services, service)) {
		piv_fmt(why, why_size, "the card reader is not used for the PAM service %s "
		        "(allowed_services)", piv_escape_str(service, esc, sizeof(esc)));
		return PIV_E_NO_CARD;
	}
	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	if (!conf->allow_remote && !piv_rhost_is_local(rhost, host)) {
		piv_fmt(why, why_size, "the card reader is not used for a login from %s "
		        "(PAM_RHOST; allow_remote = no)", piv_escape_str(rhost, esc, sizeof(esc)));
		return PIV_E_NO_CARD;
	}
	return PIV_OK;
}
