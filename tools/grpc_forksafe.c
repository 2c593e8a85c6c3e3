/* grpc-forksafe: run a command with libgrpc_forksafe.so preloaded.
 *
 *   grpc-forksafe [--mode M] [--log LEVEL] [--quiesce-ms N] [--audit] [--] COMMAND [ARGS...]
 *
 * Without --audit the command replaces this process (exec), so its exit
 * status and signals reach the caller untouched. The options only set the
 * shim's environment variables; the shim reads and checks them again. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <bsd/stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "audit_run.h"
#include "cli.h"
#include "preload.h"

#ifndef FORKSAFE_VERSION
#define FORKSAFE_VERSION "unknown"
#endif

#define USAGE "grpc-forksafe [--mode MODE] [--log LEVEL] [--quiesce-ms N] [--audit] [--] COMMAND [ARG]..."

static const char *const modes[] = { "reconnect", "close", "audit", "off", NULL };
static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const level_numbers[] = { "0", "1", "2", "3" };

static void help(void)
{
	printf("Usage: " USAGE "\n"
	       "Run COMMAND with libgrpc_forksafe.so preloaded, so that it can call fork()\n"
	       "while it uses gRPC.\n"
	       "\n"
	       "  --mode MODE   what to do about gRPC state inherited across fork():\n"
	       "                reconnect, close, audit or off (sets GRPC_FORKSAFE_MODE;\n"
	       "                default: the environment's value, else reconnect)\n"
	       "  --log LEVEL   error, warn, info or debug, or 0-3 (sets GRPC_FORKSAFE_LOG;\n"
	       "                default: the environment's value, else warn)\n"
	       "  --quiesce-ms N  how long a fork waits for threads to leave gRPC, 0-600000\n"
	       "                (sets GRPC_FORKSAFE_QUIESCE_MS; default: the environment's\n"
	       "                value, else 1000)\n"
	       "  --audit       run COMMAND unchanged, then report on stderr each fork made\n"
	       "                with live gRPC channels or calls, whether a child used them,\n"
	       "                and a verdict: does COMMAND need grpc-forksafe?\n"
	       "  -h, --help    show this help and exit\n"
	       "  --version     show the version and exit\n"
	       "\n"
	       "The library is put first in LD_PRELOAD, before the entries already there.\n"
	       "Exit status: COMMAND's (or its signal); 2 for a usage error, 125 if\n"
	       "grpc-forksafe failed, 126 if COMMAND cannot be run, 127 if it is not found.\n"
	       "See grpc-forksafe(1) and libgrpc_forksafe(7).\n");
}

/* One line naming what is wrong and what is accepted; the command never runs. */
static _Noreturn __attribute__((format(printf, 1, 2))) void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("grpc-forksafe: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

/* The accepted spelling of `value` from `names` (any case), or NULL. */
static const char *choose(const char *value, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcasecmp(value, *names) == 0)
			return *names;
	return NULL;
}

/* A level by name, or by number 0-3, as the shim accepts it. */
static const char *level_of(const char *value)
{
	char *end;
	long n;

	if (*value >= '0' && *value <= '9') {
		n = strtol(value, &end, 10);
		return *end == '\0' && n <= 3 ? level_numbers[n] : NULL;
	}
	return choose(value, levels);
}

/* True when the level in the environment would hide warn lines. */
static int hides_warnings(const char *level)
{
	return level != NULL && ((level = level_of(level)) != NULL) &&
	       (strcmp(level, "error") == 0 || strcmp(level, "0") == 0);
}

/* "--name value" or "--name=value": the value, advancing *i past it;
 * NULL if argv[*i] is not this option. */
static const char *option_value(char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (argv[*i + 1] == NULL)
		usage_error("%s needs a value", name);
	return argv[++*i];
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *level = NULL, *quiesce = NULL, *value, *why;
	int audit = 0, i;
	char *lib;

	for (i = 1; argv[i] != NULL && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			help();
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("grpc-forksafe %s\n", FORKSAFE_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--audit") == 0) {
			audit = 1;
		} else if ((value = option_value(argv, &i, "--mode")) != NULL) {
			if ((mode = choose(value, modes)) == NULL)
				usage_error("--mode '%s' is not valid (accepted: reconnect, close, audit, off)", value);
		} else if ((value = option_value(argv, &i, "--log")) != NULL) {
			if ((level = level_of(value)) == NULL)
				usage_error("--log '%s' is not valid (accepted: error, warn, info, debug, or 0-3)",
					    value);
		} else if ((value = option_value(argv, &i, "--quiesce-ms")) != NULL) {
			/* The library's own rule: digits only, 0 to 600000. */
			why = NULL;
			if (value[0] < '0' || value[0] > '9')
				why = "invalid";
			else
				(void)strtonum(value, 0, 600000, &why);
			if (why != NULL)
				usage_error("--quiesce-ms '%s' is %s (accepted: a whole number from 0 to 600000)",
					    value, why);
			quiesce = value;
		} else {
			usage_error("unknown option '%s' (accepted: --mode, --log, --quiesce-ms, --audit, --help, "
				    "--version, --)",
				    argv[i]);
		}
	}
	if (argv[i] == NULL)
		usage_error("no command given (usage: " USAGE ")");
	if (audit && mode != NULL && strcmp(mode, "audit") != 0)
		usage_error("--audit runs the command in mode audit; it cannot be combined with --mode %s", mode);
	if (audit && hides_warnings(level))
		usage_error("--audit reads lines logged at warn; --log %s would hide them (use warn, info or debug)",
			    level);

	if ((lib = preload_find_library()) == NULL || preload_install(lib) != 0)
		return EXIT_WRAPPER;
	free(lib);
	if (audit) {
		mode = "audit";
		/* A level inherited from the environment must not hide the audit. */
		if (level == NULL && hides_warnings(getenv("GRPC_FORKSAFE_LOG")))
			level = "warn";
	}
	if ((mode != NULL && setenv("GRPC_FORKSAFE_MODE", mode, 1) != 0) ||
	    (level != NULL && setenv("GRPC_FORKSAFE_LOG", level, 1) != 0) ||
	    (quiesce != NULL && setenv("GRPC_FORKSAFE_QUIESCE_MS", quiesce, 1) != 0)) {
		cli_say("cannot set the environment: %s", strerror(errno));
		return EXIT_WRAPPER;
	}

	if (audit)
		audit_run(argv + i);
	execvp(argv[i], argv + i);
	return cli_exec_failed(argv[i], errno);
}
