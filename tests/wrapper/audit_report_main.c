/* audit-report LOG: prints the report grpc-forksafe --audit would print for
 * LOG, on stdout; exits 1 if the verdict is "needs grpc-forksafe", else 0. */
#include <stdio.h>

#include "audit_report.h"

int main(int argc, char **argv)
{
	FILE *log;
	int needs;

	if (argc != 2 || (log = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "usage: audit-report LOG (an existing file)\n");
		return 2;
	}
	needs = audit_report(log, stdout);
	fclose(log);
	return needs;
}
