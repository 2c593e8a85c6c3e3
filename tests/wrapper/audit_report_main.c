/* audit-report LOG: prints the report grpc-forksafe --audit would print for
 * LOG, on stdout; exits with the verdict: 0 does not need grpc-forksafe,
 * 1 needs it, 2 this run did not, 3 unknown. */
#include <stdio.h>

#include "audit_report.h"

int main(int argc, char **argv)
{
	enum audit_verdict verdict;
	FILE *log;

	if (argc != 2 || (log = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "usage: audit-report LOG (an existing file)\n");
		return 64;
	}
	verdict = audit_report(log, stdout);
	fclose(log);
	return (int)verdict;
}
