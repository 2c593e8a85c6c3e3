#include "audit_report.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Forks listed one by one; a preforking server may fork thousands of times,
 * and the verdict does not need them all. */
#define MAX_LISTED 20

/* The audit lines, after "<prog>[<pid>]: grpc-forksafe: warn: ". */
#define FORK_LINE "audit: fork: child "
#define USED_LINE "audit: inherited channel to "
#define USED_END " used in this child"
#define SHARE_LINE "audit: new channel to "
#define SHARE_END " in this child would share the connection of an inherited channel"
#define EMBEDDED_LINE "audit: embedded gRPC ("
#define EMBEDDED_END ") opened a socket in this child, which inherited "
#define EMBEDDED_WAIT_END ") waited on the epoll set it inherited in this child, which inherited "
#define EXEC_LINE "audit: exec: program started"

/* What became of a fork's child, as far as the log tells. */
enum fate {
	FATE_QUIET,  /* no use seen: it did not use gRPC, or used what the audit cannot see */
	FATE_EXEC,   /* exec'd before any use */
	FATE_SHARED, /* made a channel that would share an inherited connection */
	FATE_USED,   /* used an inherited channel, or embedded gRPC it inherited */
};

struct fork_event {
	char *parent;  /* "<prog>[<pid>]" */
	long child;    /* -1: not known (a fork inside libc: daemon, forkpty) */
	char *unknown; /* then, why: the shim's words in "child ? (...)" */
	long channels, calls;
	long servers, busy, embedded_fds, embedded_sockets;
	int initialised;
	enum fate fate;
};

/* USE_EMBEDDED: embedded gRPC opened a socket in a child that inherited it;
 * USE_EMBEDDED_WAIT: it waited on its inherited epoll set there. */
enum use_kind { USE_INHERITED, USE_SHARED, USE_EMBEDDED, USE_EMBEDDED_WAIT };

struct use_event {
	long pid;
	enum use_kind kind;
	char *target; /* the channel's target, or the object embedding gRPC */
	long count;   /* lines alike: one per channel */
};

struct audit {
	struct fork_event *forks;
	size_t nforks, forks_cap;
	struct use_event *uses;
	size_t nuses, uses_cap;
	long *execs; /* pids in which a new program started */
	size_t nexecs, execs_cap;
	int problems; /* other warn and error lines: the audit may be blind */
};

static _Noreturn void out_of_memory(void)
{
	fputs("grpc-forksafe: out of memory reading the audit log\n", stderr);
	exit(EXIT_WRAPPER);
}

static void *grow(void *array, size_t *cap, size_t want, size_t size)
{
	void *bigger;

	if (want <= *cap)
		return array;
	*cap = *cap ? *cap * 2 : 16;
	if ((bigger = realloc(array, *cap * size)) == NULL)
		out_of_memory();
	return bigger;
}

static char *dup_or_die(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (d == NULL)
		out_of_memory();
	return d;
}

/* s past the literal `lit`, or NULL if s does not start with it. */
static const char *skip(const char *s, const char *lit)
{
	size_t n = strlen(lit);

	return s != NULL && strncmp(s, lit, n) == 0 ? s + n : NULL;
}

/* s past a decimal number stored in *v, or NULL. */
static const char *number(const char *s, long *v)
{
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return NULL;
	*v = strtol(s, &end, 10);
	return end;
}

/* "channel" or "channels": the shim's wording may agree with the number. */
static const char *noun(const char *s, const char *singular)
{
	s = skip(s, singular);
	return s != NULL && *s == 's' ? s + 1 : s;
}

/* "child <pid>", or "child ? (<why>)" when the shim could not learn the pid. */
static const char *fork_child(const char *s, struct fork_event *f)
{
	const char *why, *end;

	f->unknown = NULL;
	s = skip(s, FORK_LINE);
	if ((why = skip(s, "? (")) == NULL)
		return number(s, &f->child);
	if ((end = strchr(why, ')')) == NULL)
		return NULL;
	f->child = -1;
	f->unknown = dup_or_die(why, (size_t)(end - why));
	return end + 1;
}

/* "; <n> servers, <n> threads inside gRPC, gRPC [not ]initialised; <n>
 * descriptors of embedded gRPC (<n> sockets)". A line without it (an older
 * shim) carried channels and calls only. */
static const char *fork_rest(const char *s, struct fork_event *f)
{
	const char *t;

	if (s != NULL && *s == '\0')
		return s;
	s = number(skip(s, "; "), &f->servers);
	s = number(skip(noun(skip(s, " "), "server"), ", "), &f->busy);
	s = skip(noun(skip(s, " "), "thread"), " inside gRPC, gRPC ");
	if ((t = skip(s, "initialised")) != NULL)
		f->initialised = 1;
	else if ((t = skip(s, "not initialised")) != NULL)
		f->initialised = 0;
	s = number(skip(t, "; "), &f->embedded_fds);
	s = number(skip(noun(skip(s, " "), "descriptor"), " of embedded gRPC ("), &f->embedded_sockets);
	return skip(noun(skip(s, " "), "socket"), ")");
}

static int parse_fork(struct audit *a, const char *who, size_t who_len, const char *text)
{
	struct fork_event f = { 0 };
	const char *s;

	s = fork_child(text, &f);
	s = number(skip(s, " inherits "), &f.channels);
	s = number(skip(noun(skip(s, " live "), "channel"), " and "), &f.calls);
	s = fork_rest(skip(noun(skip(s, " "), "call"), " in flight"), &f);
	if (s == NULL || *s != '\0') {
		free(f.unknown);
		return 0;
	}
	f.parent = dup_or_die(who, who_len);
	a->forks = grow(a->forks, &a->forks_cap, a->nforks + 1, sizeof(*a->forks));
	a->forks[a->nforks++] = f;
	return 1;
}

static int parse_use(struct audit *a, long pid, const char *text, const char *start, const char *end,
		     enum use_kind kind)
{
	const char *target = skip(text, start), *stop;
	size_t len;

	if (target == NULL)
		return 0;
	if (kind == USE_EMBEDDED || kind == USE_EMBEDDED_WAIT) {
		/* "... which inherited <n> of its descriptors": the end varies. */
		if ((stop = strstr(target, end)) == NULL)
			return 0;
		len = (size_t)(stop - target);
	} else {
		size_t end_len = strlen(end);

		if ((len = strlen(target)) <= end_len || strcmp(target + len - end_len, end) != 0)
			return 0;
		len -= end_len;
	}
	/* Alike lines (channels to one target) make one line of the report. */
	for (size_t i = 0; i < a->nuses; i++)
		if (a->uses[i].pid == pid && a->uses[i].kind == kind && strlen(a->uses[i].target) == len &&
		    strncmp(a->uses[i].target, target, len) == 0) {
			a->uses[i].count++;
			return 1;
		}
	a->uses = grow(a->uses, &a->uses_cap, a->nuses + 1, sizeof(*a->uses));
	a->uses[a->nuses++] = (struct use_event){ pid, kind, dup_or_die(target, len), 1 };
	return 1;
}

static int parse_exec(struct audit *a, long pid, const char *text)
{
	if (strcmp(text, EXEC_LINE) != 0)
		return 0;
	a->execs = grow(a->execs, &a->execs_cap, a->nexecs + 1, sizeof(*a->execs));
	a->execs[a->nexecs++] = pid;
	return 1;
}

/* One line of the log, without its newline. Returns 1 if it was an audit
 * line the report understood. */
static int parse_line(struct audit *a, const char *line)
{
	const char *mark = strstr(line, "]: grpc-forksafe: ");
	const char *open, *level, *text;
	long pid;

	if (mark == NULL)
		return 0;
	level = mark + strlen("]: grpc-forksafe: ");
	if ((text = strstr(level, ": ")) == NULL)
		return 0;
	text += 2;
	if (strncmp(text, "audit: ", 7) != 0) {
		if (strncmp(level, "warn: ", 6) == 0 || strncmp(level, "error: ", 7) == 0)
			a->problems++;
		return 0;
	}
	/* The pid is the number in the last "[...]" before the mark. */
	for (open = mark; open > line && open[-1] != '['; open--)
		;
	if (open == line || number(open, &pid) != mark)
		return 0;
	return parse_fork(a, line, (size_t)(mark + 1 - line), text) ||
	       parse_use(a, pid, text, USED_LINE, USED_END, USE_INHERITED) ||
	       parse_use(a, pid, text, SHARE_LINE, SHARE_END, USE_SHARED) ||
	       parse_use(a, pid, text, EMBEDDED_LINE, EMBEDDED_END, USE_EMBEDDED) ||
	       parse_use(a, pid, text, EMBEDDED_LINE, EMBEDDED_WAIT_END, USE_EMBEDDED_WAIT) || parse_exec(a, pid, text);
}

static const char *plural(long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* What the child did, after "child <pid> ". */
static void print_what(const struct use_event *u, FILE *out)
{
	if (u->kind == USE_EMBEDDED)
		fprintf(out, "used gRPC compiled into %s, which it inherited (it opened a socket of its own)", u->target);
	else if (u->kind == USE_EMBEDDED_WAIT)
		fprintf(out,
			"used gRPC compiled into %s, which it inherited (it waited on that gRPC's epoll set, which it "
			"shares with its parent, with the connections in it)",
			u->target);
	else if (u->kind == USE_INHERITED && u->count == 1)
		fprintf(out, "used its inherited channel to %s", u->target);
	else if (u->kind == USE_INHERITED)
		fprintf(out, "used %ld inherited channels to %s", u->count, u->target);
	else if (u->count == 1)
		fprintf(out, "made a new channel to %s, which would share the connection of an inherited channel",
			u->target);
	else
		fprintf(out,
			"made %ld new channels to %s, which would share the connection of an inherited channel",
			u->count, u->target);
}

static void print_use(const struct use_event *u, const char *indent, FILE *out)
{
	fprintf(out, "grpc-forksafe: audit: %schild %ld ", indent, u->pid);
	print_what(u, out);
	fputc('\n', out);
}

/* What the fork carried across, after "forked child <pid>". Channels and
 * calls of embedded gRPC cannot be seen: no count is given for them there. */
static void print_carried(const struct fork_event *f, FILE *out)
{
	const char *sep = " with ";

	if (f->channels > 0 || f->calls > 0 || f->embedded_fds == 0) {
		fprintf(out, "%s%ld live %s and %ld %s in flight", sep, f->channels,
			plural(f->channels, "channel", "channels"), f->calls, plural(f->calls, "call", "calls"));
		sep = ", ";
	}
	if (f->servers > 0) {
		fprintf(out, "%s%ld live %s", sep, f->servers, plural(f->servers, "server", "servers"));
		sep = ", ";
	}
	if (f->busy > 0) {
		fprintf(out, "%s%ld other %s inside gRPC", sep, f->busy, plural(f->busy, "thread", "threads"));
		sep = ", ";
	}
	if (f->initialised) {
		fprintf(out, "%sgRPC initialised", sep);
		sep = ", ";
	}
	if (f->embedded_fds > 0)
		fprintf(out, "%s%ld %s of gRPC compiled into the program (%ld %s; its channels are not seen)", sep,
			f->embedded_fds, plural(f->embedded_fds, "descriptor", "descriptors"), f->embedded_sockets,
			plural(f->embedded_sockets, "socket", "sockets"));
}

static void print_fork(const struct fork_event *f, FILE *out)
{
	if (f->child >= 0)
		fprintf(out, "%s forked child %ld", f->parent, f->child);
	else
		fprintf(out, "%s forked a child (pid unknown: %s)", f->parent, f->unknown);
}

static int exec_seen(const struct audit *a, long pid)
{
	for (size_t i = 0; i < a->nexecs; i++)
		if (a->execs[i] == pid)
			return 1;
	return 0;
}

static const struct use_event *first_use(const struct audit *a, long pid, enum fate fate)
{
	for (size_t i = 0; i < a->nuses; i++)
		if (a->uses[i].pid == pid &&
		    (fate == FATE_SHARED ? a->uses[i].kind == USE_SHARED : a->uses[i].kind != USE_SHARED))
			return &a->uses[i];
	return NULL;
}

static void classify(struct audit *a)
{
	for (size_t i = 0; i < a->nforks; i++) {
		struct fork_event *f = &a->forks[i];

		f->fate = FATE_QUIET;
		if (f->child < 0)
			continue;
		if (first_use(a, f->child, FATE_USED) != NULL)
			f->fate = FATE_USED;
		else if (first_use(a, f->child, FATE_SHARED) != NULL)
			f->fate = FATE_SHARED;
		else if (exec_seen(a, f->child))
			f->fate = FATE_EXEC;
	}
}

/* The kinds of fork the verdict rests on; a fork may be of several. A child
 * that exec'd at once is harmless whatever its parent held, and counts there
 * alone. */
enum kind { K_EXEC, K_USED, K_SHARED, K_BUSY, K_SERVER, K_EMBEDDED, K_COUNT };

static int is_kind(const struct fork_event *f, enum kind k)
{
	switch (k) {
	case K_EXEC:
		return f->fate == FATE_EXEC;
	case K_USED:
		return f->fate == FATE_USED;
	case K_SHARED:
		return f->fate == FATE_SHARED;
	case K_BUSY:
		return f->fate != FATE_EXEC && f->busy > 0;
	case K_SERVER:
		return f->fate != FATE_EXEC && f->servers > 0;
	case K_EMBEDDED:
		return f->fate != FATE_EXEC && f->embedded_fds > 0;
	case K_COUNT:
		break;
	}
	return 0;
}

static const char *const kind_words[K_COUNT] = {
	[K_EXEC] = "whose child exec'd at once (harmless)",
	[K_USED] = "whose child used gRPC state it inherited",
	[K_SHARED] = "whose child made a channel that would share an inherited connection",
	[K_BUSY] = "made while other threads were inside gRPC (with stock gRPC a child that uses gRPC can "
		   "deadlock on their locks)",
	[K_SERVER] = "made while a gRPC server was running (it serves in the parent only)",
	[K_EMBEDDED] = "made while gRPC compiled into the program held descriptors (the audit cannot see that "
		       "gRPC's channels or calls)",
};

/* One line per kind: how many, and the first. */
static void print_kinds(const struct audit *a, long counts[K_COUNT], FILE *out)
{
	for (int k = 0; k < K_COUNT; k++) {
		const struct fork_event *first = NULL;
		const struct use_event *u;

		counts[k] = 0;
		for (size_t i = 0; i < a->nforks; i++)
			if (is_kind(&a->forks[i], k)) {
				counts[k]++;
				if (first == NULL)
					first = &a->forks[i];
			}
		if (counts[k] == 0)
			continue;
		fprintf(out, "grpc-forksafe: audit: %ld %s %s; first: ", counts[k], plural(counts[k], "fork", "forks"),
			kind_words[k]);
		print_fork(first, out);
		if (k == K_USED || k == K_SHARED) {
			u = first_use(a, first->child, k == K_USED ? FATE_USED : FATE_SHARED);
			fputs(", which ", out);
			print_what(u, out);
		} else if (k == K_EXEC) {
			fputs(", which exec'd", out);
		} else if (k == K_BUSY) {
			fprintf(out, " with %ld other %s inside gRPC", first->busy, plural(first->busy, "thread", "threads"));
		} else if (k == K_SERVER) {
			fprintf(out, " with %ld live %s", first->servers, plural(first->servers, "server", "servers"));
		} else {
			fprintf(out, " with %ld %s (%ld %s)", first->embedded_fds,
				plural(first->embedded_fds, "descriptor", "descriptors"), first->embedded_sockets,
				plural(first->embedded_sockets, "socket", "sockets"));
		}
		fputc('\n', out);
	}
}

/* Processes that used inherited state: each pid counted once. */
static long count_users(const struct audit *a)
{
	long n = 0;

	for (size_t i = 0; i < a->nuses; i++) {
		size_t j = 0;

		while (j < i && a->uses[j].pid != a->uses[i].pid)
			j++;
		n += j == i;
	}
	return n;
}

static enum audit_verdict print_verdict(const struct audit *a, const long counts[K_COUNT], FILE *out)
{
	long users = count_users(a), quiet = 0;

	for (size_t i = 0; i < a->nforks; i++)
		quiet += a->forks[i].fate == FATE_QUIET;
	if (users > 0) {
		fprintf(out,
			"grpc-forksafe: verdict: this program needs grpc-forksafe: %ld child %s used gRPC state "
			"inherited across fork(); run it as: grpc-forksafe COMMAND\n",
			users, plural(users, "process", "processes"));
		return AUDIT_NEEDS;
	}
	if (counts[K_EMBEDDED] > 0) {
		fprintf(out,
			"grpc-forksafe: verdict: unknown: %ld %s made while gRPC compiled into the program (Python's "
			"grpcio, libgrpc.a) held descriptors, and the audit cannot see that gRPC's channels or calls, "
			"so it cannot tell whether a child used them; to be safe, run it as: grpc-forksafe COMMAND\n",
			counts[K_EMBEDDED], plural(counts[K_EMBEDDED], "fork was", "forks were"));
		return AUDIT_UNKNOWN;
	}
	if (quiet > 0) {
		fprintf(out,
			"grpc-forksafe: verdict: %zu %s with live gRPC state, but no child used it: this run did not "
			"need grpc-forksafe; a child that used gRPC would%s\n",
			a->nforks, plural((long)a->nforks, "fork", "forks"),
			counts[K_BUSY] > 0 ? ", and with other threads inside gRPC at the fork it could deadlock" : "");
		return AUDIT_NOT_THIS_RUN;
	}
	if (a->nforks > 0) {
		fprintf(out,
			"grpc-forksafe: verdict: %zu %s with live gRPC state, and every child exec'd at once, which is "
			"harmless: this program does not need grpc-forksafe\n",
			a->nforks, plural((long)a->nforks, "fork", "forks"));
		return AUDIT_DOES_NOT_NEED;
	}
	if (a->problems > 0) {
		fputs("grpc-forksafe: verdict: no fork with live gRPC state seen, but the library reported "
		      "problems (above), so it may not have been watching: read them before concluding\n",
		      out);
		return AUDIT_UNKNOWN;
	}
	fputs("grpc-forksafe: verdict: no fork with live gRPC state: this program does not need "
	      "grpc-forksafe\n",
	      out);
	return AUDIT_DOES_NOT_NEED;
}

enum audit_verdict audit_report(FILE *log, FILE *out)
{
	struct audit a = { 0 };
	long counts[K_COUNT];
	enum audit_verdict verdict;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int *shown;

	while ((n = getline(&line, &cap, log)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (!parse_line(&a, line))
			fprintf(out, "%s\n", line);
	}
	free(line);
	classify(&a);

	if (a.nforks > 0)
		fprintf(out, "grpc-forksafe: audit: %zu %s with live gRPC state:\n", a.nforks,
			plural((long)a.nforks, "fork", "forks"));
	shown = calloc(a.nuses + 1, sizeof(*shown));
	if (shown == NULL)
		out_of_memory();
	for (size_t i = 0; i < a.nforks && i < MAX_LISTED; i++) {
		const struct fork_event *f = &a.forks[i];

		fputs("grpc-forksafe: audit: ", out);
		print_fork(f, out);
		print_carried(f, out);
		fputc('\n', out);
		if (f->fate == FATE_EXEC)
			fprintf(out, "grpc-forksafe: audit:   child %ld exec'd at once\n", f->child);
		for (size_t j = 0; j < a.nuses && f->child >= 0; j++)
			if (a.uses[j].pid == f->child) {
				print_use(&a.uses[j], "  ", out);
				shown[j] = 1;
			}
	}
	if (a.nforks > MAX_LISTED)
		fprintf(out, "grpc-forksafe: audit: ... and %zu more forks\n", a.nforks - MAX_LISTED);
	else
		/* Uses by a process whose fork line has no pid, or has no line. */
		for (size_t j = 0; j < a.nuses; j++)
			if (!shown[j])
				print_use(&a.uses[j], "", out);
	print_kinds(&a, counts, out);
	verdict = print_verdict(&a, counts, out);

	free(shown);
	for (size_t i = 0; i < a.nforks; i++) {
		free(a.forks[i].parent);
		free(a.forks[i].unknown);
	}
	for (size_t i = 0; i < a.nuses; i++)
		free(a.uses[i].target);
	free(a.forks);
	free(a.uses);
	free(a.execs);
	return verdict;
}
