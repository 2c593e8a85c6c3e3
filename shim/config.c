#include "config.h"

#include <bsd/stdlib.h>
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

#include "log.h"

struct fs_config fs_cfg = { .mode = FS_MODE_RECONNECT, .log_level = FS_WARN };

static const struct fs_choice mode_choices[] = {
	{ "reconnect", FS_MODE_RECONNECT },
	{ "close", FS_MODE_CLOSE },
	{ "audit", FS_MODE_AUDIT },
	{ "off", FS_MODE_OFF },
	{ NULL, 0 },
};

static const struct fs_choice embedded_choices[] = {
	{ "reset", FS_EMBEDDED_RESET },
	{ "guard", FS_EMBEDDED_GUARD },
	{ NULL, 0 },
};

static const struct fs_choice level_choices[] = {
	{ "error", FS_ERROR }, { "warn", FS_WARN }, { "info", FS_INFO }, { "debug", FS_DEBUG }, { NULL, 0 },
};

static const struct fs_choice child_grpc_choices[] = {
	{ "inherited", FS_CHILD_INHERITED }, { "fresh", FS_CHILD_FRESH }, { NULL, 0 },
};

void fs_config_defaults(struct fs_config *cfg)
{
	cfg->mode = FS_MODE_RECONNECT;
	cfg->log_level = FS_WARN;
	cfg->allow_untested = false;
	cfg->log_file = NULL;
	cfg->log_fd = -1;
	cfg->quiesce_ms = FS_QUIESCE_MS_DEFAULT;
	cfg->objects = NULL;
	cfg->embedded = FS_EMBEDDED_RESET;
	cfg->child_grpc = FS_CHILD_FRESH;
	cfg->cache_dir = NULL;
}

static const char *choice_name(const struct fs_choice *choices, int value)
{
	for (; choices->name != NULL; choices++)
		if (choices->value == value)
			return choices->name;
	return "?";
}

int fs_parse_choice(const char *var, const char *text, const struct fs_choice *choices, int def)
{
	char accepted[128];
	size_t used = 0;
	const struct fs_choice *c;

	for (c = choices; c->name != NULL; c++)
		if (strcasecmp(text, c->name) == 0)
			return c->value;
	accepted[0] = '\0';
	for (c = choices; c->name != NULL && used < sizeof(accepted); c++) {
		int n = snprintf(accepted + used, sizeof(accepted) - used, "%s%s", c == choices ? "" : ", ",
				 c->name);
		used += n > 0 ? (size_t)n : 0;
	}
	fs_log(FS_WARN, "%s=\"%s\" is not valid (accepted: %s); using %s", var, text, accepted,
	       choice_name(choices, def));
	return def;
}

long long fs_parse_number(const char *var, const char *text, long long min, long long max, long long def)
{
	const char *why = NULL;
	const char *digits = text[0] == '-' ? text + 1 : text;
	long long v = 0;

	/* strtonum (strtoll underneath) would skip leading white space and a '+'. */
	if (!isdigit((unsigned char)digits[0]))
		why = "invalid";
	else
		v = strtonum(text, min, max, &why);
	if (why == NULL)
		return v;
	fs_log(FS_WARN, "%s=\"%s\" is %s (accepted: a whole number from %lld to %lld); using %lld", var, text,
	       why, min, max, def);
	return def;
}

bool fs_parse_bool(const char *var, const char *text, bool def)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0)
			return true;
		if (strcasecmp(text, no[i]) == 0)
			return false;
	}
	fs_log(FS_WARN, "%s=\"%s\" is not valid (accepted: 1, yes, true, on, 0, no, false, off); using %s", var,
	       text, def ? "1" : "0");
	return def;
}

/* GRPC_FORKSAFE_LOG_FD, a number: -1 when unset or not a descriptor number. */
static int log_fd_setting(const char *text)
{
	const char *why = NULL;
	long long n = -1;

	if (text == NULL || *text == '\0')
		return -1;
	if (!isdigit((unsigned char)text[0]))
		why = "invalid";
	else
		n = strtonum(text, 0, INT_MAX, &why);
	if (why == NULL)
		return (int)n;
	fs_log(FS_WARN, "GRPC_FORKSAFE_LOG_FD=\"%s\" is %s (accepted: a descriptor number from 0 to %d); not used",
	       text, why, INT_MAX);
	return -1;
}

/* The descriptor first: it needs no permission a process may have lost (one
 * that changed user cannot open a private file of its parent's). A complaint
 * that neither can be used is made once: the process marks its environment,
 * and its children and the programs they exec stay silent about it. */
static void open_log(struct fs_config *cfg, fs_getenv_fn get)
{
	const char *path = get("GRPC_FORKSAFE_LOG_FILE"), *marked = get("GRPC_FORKSAFE_LOG_WARNED");
	const char *fd_why = NULL;
	bool warned = false, said = false;
	int file_err = 0;

	if (marked != NULL && *marked != '\0')
		warned = fs_parse_bool("GRPC_FORKSAFE_LOG_WARNED", marked, false);
	cfg->log_fd = log_fd_setting(get("GRPC_FORKSAFE_LOG_FD"));
	if (cfg->log_fd >= 0 && (fd_why = fs_log_use_fd(cfg->log_fd)) == NULL)
		return;
	if (path != NULL && *path != '\0') {
		cfg->log_file = path;
		file_err = fs_log_open_file(path);
	}
	if (fd_why != NULL && !warned) {
		fs_log(FS_WARN, "GRPC_FORKSAFE_LOG_FD=%d cannot be used (%s); logging to %s", cfg->log_fd, fd_why,
		       cfg->log_file != NULL && file_err == 0 ? "GRPC_FORKSAFE_LOG_FILE" : "stderr");
		said = true;
	}
	if (file_err != 0 && !warned) {
		fs_log(FS_WARN, "GRPC_FORKSAFE_LOG_FILE=\"%s\" cannot be opened (%s); logging to stderr", path,
		       strerror(file_err));
		said = true;
	}
	if (said && setenv("GRPC_FORKSAFE_LOG_WARNED", "1", 1) != 0)
		fs_log(FS_DEBUG, "cannot set GRPC_FORKSAFE_LOG_WARNED: its children will say so again");
}

void fs_config_load(struct fs_config *cfg, fs_getenv_fn get)
{
	const char *v;

	fs_config_defaults(cfg);
	/* The level first, so that a bad value of any other setting is reported at it. */
	if ((v = get("GRPC_FORKSAFE_LOG")) != NULL && *v != '\0') {
		/* A level by name, or by number as in syslog-style tools (0 error ... 3 debug). */
		if (isdigit((unsigned char)*v))
			cfg->log_level = (int)fs_parse_number("GRPC_FORKSAFE_LOG", v, FS_ERROR, FS_DEBUG, FS_WARN);
		else
			cfg->log_level = fs_parse_choice("GRPC_FORKSAFE_LOG", v, level_choices, FS_WARN);
	}
	fs_log_level = cfg->log_level;
	/* Opened before anything else is reported, so that it all goes there. */
	open_log(cfg, get);
	if ((v = get("GRPC_FORKSAFE_MODE")) != NULL && *v != '\0')
		cfg->mode = fs_parse_choice("GRPC_FORKSAFE_MODE", v, mode_choices, FS_MODE_RECONNECT);
	if ((v = get("GRPC_FORKSAFE_QUIESCE_MS")) != NULL && *v != '\0')
		cfg->quiesce_ms = fs_parse_number("GRPC_FORKSAFE_QUIESCE_MS", v, 0, 600000, FS_QUIESCE_MS_DEFAULT);
	if ((v = get("GRPC_FORKSAFE_OBJECTS")) != NULL && *v != '\0')
		cfg->objects = v;
	if ((v = get("GRPC_FORKSAFE_EMBEDDED")) != NULL && *v != '\0')
		cfg->embedded = fs_parse_choice("GRPC_FORKSAFE_EMBEDDED", v, embedded_choices, FS_EMBEDDED_RESET);
	if ((v = get("GRPC_FORKSAFE_CHILD_GRPC")) != NULL && *v != '\0')
		cfg->child_grpc = fs_parse_choice("GRPC_FORKSAFE_CHILD_GRPC", v, child_grpc_choices, FS_CHILD_FRESH);
	if ((v = get("GRPC_FORKSAFE_CACHE_DIR")) != NULL && *v != '\0')
		cfg->cache_dir = v;
	if ((v = get("GRPC_FORKSAFE_ALLOW_UNTESTED")) != NULL && *v != '\0')
		cfg->allow_untested = fs_parse_bool("GRPC_FORKSAFE_ALLOW_UNTESTED", v, false);
}
