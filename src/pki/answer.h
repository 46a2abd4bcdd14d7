/* What a revocation method (OCSP, CRLs) says of one certificate, and how
 * it logs: shared by the methods and by revocation.c, which asks them. */
#ifndef PIV_ANSWER_H
#define PIV_ANSWER_H

enum piv_rev_answer {
	PIV_REV_GOOD,
	PIV_REV_REVOKED,
	PIV_REV_UNKNOWN,
};

typedef void (*piv_rev_log_fn)(void *ud, int prio, const char *text);

#endif
