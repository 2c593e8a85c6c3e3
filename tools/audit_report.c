#include "audit_report.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Forks listed one by one; a preforking server may fork thousands of times,
 * and the verdict does not need them all. */
#define MAX_LISTED 20

/* The three audit lines, after "<prog>[<pid>]: grpc-forksafe: warn: ". */
#define FORK_LINE "audit: fork: child "
#define USED_LINE "audit: inherited channel to "
#define USED_END " used in this child"
#define SHARE_LINE "audit: new channel to "
#define SHARE_END " in this child would share the connection of an inherited channel"

struct fork_event {
	char *parent;  /* "<prog>[<pid>]" */
	long child;    /* -1: not known (a fork inside libc: daemon, forkpty) */
	char *unknown; /* then, why: the shim's words in "child ? (...)" */
	long channels, calls;
};

enum use_kind { USE_INHERITED, USE_SHARED };

struct use_event {
	long pid;
	enum use_kind kind;
	char *target;
	long count; /* lines alike: one per channel */
};

struct audit {
	struct fork_event *forks;
	size_t nforks, forks_cap;
	struct use_event *uses;
	size_t nuses, uses_cap;
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

static int parse_fork(struct audit *a, const char *who, size_t who_len, const char *text)
{
	struct fork_event f;
	const char *s;

	s = fork_child(text, &f);
	s = number(skip(s, " inherits "), &f.channels);
	s = number(skip(noun(skip(s, " live "), "channel"), " and "), &f.calls);
	s = skip(noun(skip(s, " "), "call"), " in flight");
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
	const char *target = skip(text, start);
	size_t len, end_len = strlen(end);

	if (target == NULL || (len = strlen(target)) <= end_len || strcmp(target + len - end_len, end) != 0)
		return 0;
	len -= end_len;
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
	       parse_use(a, pid, text, SHARE_LINE, SHARE_END, USE_SHARED);
}

static const char *plural(long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void print_use(const struct use_event *u, const char *indent, FILE *out)
{
	if (u->kind == USE_INHERITED && u->count == 1)
		fprintf(out, "grpc-forksafe: audit: %schild %ld used its inherited channel to %s\n", indent, u->pid,
			u->target);
	else if (u->kind == USE_INHERITED)
		fprintf(out, "grpc-forksafe: audit: %schild %ld used %ld inherited channels to %s\n", indent, u->pid,
			u->count, u->target);
	else if (u->count == 1)
		fprintf(out,
			"grpc-forksafe: audit: %schild %ld made a new channel to %s, which would share the "
			"connection of an inherited channel\n",
			indent, u->pid, u->target);
	else
		fprintf(out,
			"grpc-forksafe: audit: %schild %ld made %ld new channels to %s, which would share the "
			"connection of an inherited channel\n",
			indent, u->pid, u->count, u->target);
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

static void print_verdict(const struct audit *a, long users, FILE *out)
{
	if (users > 0)
		fprintf(out,
			"grpc-forksafe: verdict: this program needs grpc-forksafe: %ld child %s used gRPC state "
			"inherited across fork(); run it as: grpc-forksafe COMMAND\n",
			users, plural(users, "process", "processes"));
	else if (a->nforks > 0)
		fprintf(out,
			"grpc-forksafe: verdict: %zu %s with live gRPC state, but no child used it: this run did not "
			"need grpc-forksafe; a child that used gRPC would\n",
			a->nforks, plural((long)a->nforks, "fork", "forks"));
	else if (a->problems > 0)
		fputs("grpc-forksafe: verdict: no fork with live gRPC state seen, but the library reported "
		      "problems (above), so it may not have been watching: read them before concluding\n",
		      out);
	else
		fputs("grpc-forksafe: verdict: no fork with live gRPC state: this program does not need "
		      "grpc-forksafe\n",
		      out);
}

int audit_report(FILE *log, FILE *out)
{
	struct audit a = { 0 };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int *shown;
	long users;

	while ((n = getline(&line, &cap, log)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (!parse_line(&a, line))
			fprintf(out, "%s\n", line);
	}
	free(line);

	if (a.nforks > 0)
		fprintf(out, "grpc-forksafe: audit: %zu %s with live gRPC channels or calls in flight:\n", a.nforks,
			plural((long)a.nforks, "fork", "forks"));
	shown = calloc(a.nuses + 1, sizeof(*shown));
	if (shown == NULL)
		out_of_memory();
	for (size_t i = 0; i < a.nforks && i < MAX_LISTED; i++) {
		const struct fork_event *f = &a.forks[i];

		if (f->child >= 0)
			fprintf(out, "grpc-forksafe: audit: %s forked child %ld", f->parent, f->child);
		else
			fprintf(out, "grpc-forksafe: audit: %s forked a child (pid unknown: %s)", f->parent, f->unknown);
		fprintf(out, " with %ld live %s and %ld %s in flight\n", f->channels,
			plural(f->channels, "channel", "channels"), f->calls, plural(f->calls, "call", "calls"));
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

	users = count_users(&a);
	print_verdict(&a, users, out);

	free(shown);
	for (size_t i = 0; i < a.nforks; i++) {
		free(a.forks[i].parent);
		free(a.forks[i].unknown);
	}
	for (size_t i = 0; i < a.nuses; i++)
		free(a.uses[i].target);
	free(a.forks);
	free(a.uses);
	return users > 0;
}
