/* What the mapping stages share, below all of them: the list of accounts a
 * certificate maps to, and which names can be accounts at all. */
#ifndef PIV_ACCOUNTS_H
#define PIV_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>

#define PIV_MAX_ACCOUNTS 16

struct piv_accounts {
	char *name[PIV_MAX_ACCOUNTS];
	size_t n;
	size_t rule; /* index of the rule that decided */
};

void piv_accounts_free(struct piv_accounts *acc);

/* Account names we accept from a certificate: what useradd accepts, and
 * nothing a later consumer could read as syntax. */
bool piv_valid_account_name(const char *name);

#endif
