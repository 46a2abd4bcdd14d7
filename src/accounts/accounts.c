/* The account list and the account name check (see accounts.h). */
#include "config.h"
#include "accounts/accounts.h"

#include <stdlib.h>
#include <string.h>

void
piv_accounts_free(struct piv_accounts *acc)
{
	for (size_t i = 0; i < acc->n; i++)
		free(acc->name[i]);
	memset(acc, 0, sizeof(*acc));
}

bool
piv_valid_account_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 256 || name[0] == '-' || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == '@' || c == '$'))
			return false;
	}
	return true;
}
