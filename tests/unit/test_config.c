/* Configuration: every value parsed strictly; a bad one is one line and the default. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "config.h"
#include "log.h"
#include "unit.h"

#include <dirent.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *env_names[8];
static const char *env_values[8];

static void set_env(int i, const char *name, const char *value)
{
	env_names[i] = name;
	env_values[i] = value;
}

static char *fake_getenv(const char *name)
{
	for (int i = 0; i < 8; i++)
		if (env_names[i] != NULL && strcmp(env_names[i], name) == 0)
			return (char *)env_values[i];
	return NULL;
}

static void reset(void)
{
	memset(env_names, 0, sizeof(env_names));
	fs_log_level = FS_WARN;
}

TestSuite(config, .init = reset);

Test(config, defaults_when_nothing_is_set)
{
	struct fs_config cfg;

	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.mode, FS_MODE_RECONNECT);
	cr_assert_eq(cfg.log_level, FS_WARN);
	cr_assert_not(cfg.allow_untested);
}

Test(config, every_documented_value_is_accepted)
{
	struct fs_config cfg;
	static const struct {
		const char *text;
		int level;
	} levels[] = { { "error", FS_ERROR }, { "warn", FS_WARN }, { "INFO", FS_INFO }, { "debug", FS_DEBUG },
		       { "0", FS_ERROR },     { "3", FS_DEBUG } };

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		set_env(0, "GRPC_FORKSAFE_LOG", levels[i].text);
		fs_config_load(&cfg, fake_getenv);
		cr_assert_eq(cfg.log_level, levels[i].level, "GRPC_FORKSAFE_LOG=%s", levels[i].text);
		cr_assert_eq(fs_log_level, levels[i].level);
	}
	set_env(0, "GRPC_FORKSAFE_MODE", "off");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.mode, FS_MODE_OFF);
	set_env(0, "GRPC_FORKSAFE_MODE", "close");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.mode, FS_MODE_CLOSE);
	set_env(0, "GRPC_FORKSAFE_MODE", "audit");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.mode, FS_MODE_AUDIT);
	cr_assert_not(fs_mode_acts(FS_MODE_AUDIT));
	cr_assert(fs_mode_acts(FS_MODE_CLOSE));
	set_env(0, "GRPC_FORKSAFE_MODE", "reconnect");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.mode, FS_MODE_RECONNECT);
}

Test(config, bad_mode_is_one_line_naming_variable_and_choices, .init = cr_redirect_stderr)
{
	struct fs_config cfg;
	char *out;

	reset();
	set_env(0, "GRPC_FORKSAFE_MODE", "sometimes");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.mode, FS_MODE_RECONNECT);
	out = unit_read_stderr();
	cr_assert_eq(unit_count_lines(out), 1, "got: %s", out);
	cr_assert(strstr(out, "GRPC_FORKSAFE_MODE=\"sometimes\"") != NULL, "got: %s", out);
	cr_assert(strstr(out, "reconnect, close, audit, off") != NULL, "got: %s", out);
	cr_assert(strstr(out, "using reconnect") != NULL, "got: %s", out);
	cr_assert(strstr(out, "grpc-forksafe: warn: ") != NULL, "got: %s", out);
}

Test(config, bad_level_falls_back_to_warn, .init = cr_redirect_stderr)
{
	struct fs_config cfg;
	char *out;

	reset();
	set_env(0, "GRPC_FORKSAFE_LOG", "loud");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.log_level, FS_WARN);
	out = unit_read_stderr();
	cr_assert_eq(unit_count_lines(out), 1, "got: %s", out);
	cr_assert(strstr(out, "GRPC_FORKSAFE_LOG=\"loud\"") != NULL, "got: %s", out);
}

Test(config, numbers_are_strict, .init = cr_redirect_stderr)
{
	const char *bad[] = { "4", "-1", "1x", "0x1", " 2", "99999999999999999999" };
	char *out;

	reset();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(fs_parse_number("N", bad[i], 0, 3, 2), 2, "accepted \"%s\"", bad[i]);
	cr_assert_eq(fs_parse_number("N", "3", 0, 3, 2), 3);
	cr_assert_eq(fs_parse_number("N", "0", 0, 3, 2), 0);
	out = unit_read_stderr();
	cr_assert_eq(unit_count_lines(out), 6, "got: %s", out);
	cr_assert(strstr(out, "a whole number from 0 to 3") != NULL, "got: %s", out);
}

Test(config, booleans_take_the_usual_spellings_and_nothing_else, .init = cr_redirect_stderr)
{
	const char *yes[] = { "1", "yes", "TRUE", "on" }, *no[] = { "0", "No", "false", "OFF" };

	reset();
	for (int i = 0; i < 4; i++) {
		cr_assert(fs_parse_bool("B", yes[i], false), "%s", yes[i]);
		cr_assert_not(fs_parse_bool("B", no[i], true), "%s", no[i]);
	}
	cr_assert_not(fs_parse_bool("B", "y", false));
	cr_assert(fs_parse_bool("B", "2", true));
	cr_assert_eq(unit_count_lines(unit_read_stderr()), 2);
}

Test(config, filtered_levels_print_nothing, .init = cr_redirect_stderr)
{
	reset();
	fs_log_level = FS_ERROR;
	fs_log(FS_WARN, "hidden %d", 1);
	fs_log(FS_ERROR, "shown %d", 2);
	cr_assert_str_eq(strstr(unit_read_stderr(), "grpc-forksafe"), "grpc-forksafe: error: shown 2\n");
}

/* The descriptor the log went to: the one open on `path`. */
static int fd_open_on(const char *path)
{
	char link[64], target[512];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	int found = -1;

	while (dir != NULL && (d = readdir(dir)) != NULL) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", d->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (strcmp(target, path) == 0)
				found = atoi(d->d_name);
		}
	}
	if (dir != NULL)
		closedir(dir);
	return found;
}

Test(config, log_file_is_appended_private_and_closed_on_exec)
{
	char dir[] = "/tmp/forksafe-log-XXXXXX", path[128], buf[256];
	struct fs_config cfg;
	struct stat st;
	int fd;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
	set_env(0, "GRPC_FORKSAFE_LOG_FILE", path);
	fs_config_load(&cfg, fake_getenv);
	fs_log(FS_WARN, "first %d", 1);
	fs_log(FS_WARN, "second %d", 2);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	fd = fd_open_on(path);
	cr_assert_geq(fd, 100, "the log descriptor should sit out of the way, got %d", fd);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert(fcntl(fd, F_GETFL) & O_APPEND);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
	fclose(f);
	cr_assert(strstr(buf, "warn: first 1\n") != NULL && strstr(buf, "warn: second 2\n") != NULL, "got: %s", buf);
}

Test(config, log_file_through_a_symlink_is_refused, .init = cr_redirect_stderr)
{
	char dir[] = "/tmp/forksafe-log-XXXXXX", real[128], link[128];
	struct fs_config cfg;
	struct stat st;
	char *out;

	reset();
	cr_assert_not_null(mkdtemp(dir));
	snprintf(real, sizeof(real), "%s/elsewhere", dir);
	snprintf(link, sizeof(link), "%s/log", dir);
	cr_assert_eq(symlink(real, link), 0);
	set_env(0, "GRPC_FORKSAFE_LOG_FILE", link);
	fs_config_load(&cfg, fake_getenv);
	fs_log(FS_WARN, "after");
	cr_assert_neq(stat(real, &st), 0, "the link was followed");
	out = unit_read_stderr();
	cr_assert_eq(unit_count_lines(out), 2, "got: %s", out);
	cr_assert(strstr(out, "GRPC_FORKSAFE_LOG_FILE=") != NULL && strstr(out, "logging to stderr") != NULL, "got: %s",
		  out);
	cr_assert(strstr(out, "warn: after\n") != NULL, "got: %s", out);
}

Test(config, a_reused_log_descriptor_is_not_written_to, .init = cr_redirect_stderr)
{
	char dir[] = "/tmp/forksafe-log-XXXXXX", path[128];
	struct fs_config cfg;
	int fd, sv[2];
	char buf[64];

	reset();
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
	set_env(0, "GRPC_FORKSAFE_LOG_FILE", path);
	fs_config_load(&cfg, fake_getenv);
	fd = fd_open_on(path);
	/* The program closes the log's descriptor and the number is reused by a socket. */
	close(fd);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cr_assert_eq(dup2(sv[0], fd), fd);
	fs_log(FS_WARN, "must not reach the socket");
	cr_assert_lt(read(sv[1], buf, sizeof(buf)), 0, "a log line went to the socket");
	cr_assert(strstr(unit_read_stderr(), "must not reach the socket") != NULL);
}

Test(config, embedded_policy_and_objects, .init = cr_redirect_stderr)
{
	struct fs_config cfg;
	char *out;

	reset();
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.embedded, FS_EMBEDDED_RESET, "reset is the default");
	cr_assert_null(cfg.objects);
	set_env(0, "GRPC_FORKSAFE_EMBEDDED", "guard");
	set_env(1, "GRPC_FORKSAFE_OBJECTS", "libvendor.so:myprog");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.embedded, FS_EMBEDDED_GUARD);
	cr_assert_str_eq(cfg.objects, "libvendor.so:myprog");
	set_env(0, "GRPC_FORKSAFE_EMBEDDED", "always");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_eq(cfg.embedded, FS_EMBEDDED_RESET);
	out = unit_read_stderr();
	cr_assert_eq(unit_count_lines(out), 1, "got: %s", out);
	cr_assert(strstr(out, "GRPC_FORKSAFE_EMBEDDED=\"always\"") != NULL, "got: %s", out);
	cr_assert(strstr(out, "reset, guard") != NULL, "got: %s", out);
}

/* A file opened for appending at a known descriptor, as the wrapper passes it. */
static int append_fd(const char *path, int want)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(dup2(fd, want), want);
	close(fd);
	return want;
}

static void read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f);
	buf[fread(buf, 1, size - 1, f)] = '\0';
	fclose(f);
}

Test(config, log_fd_takes_the_lines_before_log_file, .init = cr_redirect_stderr)
{
	char dir[] = "/tmp/forksafe-log-XXXXXX", path[128], other[128], buf[256];
	struct fs_config cfg;
	struct stat st;

	reset();
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/inherited", dir);
	snprintf(other, sizeof(other), "%s/by-path", dir);
	append_fd(path, 117);
	set_env(0, "GRPC_FORKSAFE_LOG_FD", "117");
	set_env(1, "GRPC_FORKSAFE_LOG_FILE", other);
	fs_config_load(&cfg, fake_getenv);
	fs_log(FS_WARN, "through the descriptor");
	read_file(path, buf, sizeof(buf));
	cr_assert(strstr(buf, "warn: through the descriptor\n") != NULL, "got: %s", buf);
	cr_assert_neq(stat(other, &st), 0, "GRPC_FORKSAFE_LOG_FILE was opened although the descriptor was usable");
	cr_assert_str_empty(unit_read_stderr());
}

Test(config, log_fd_that_is_a_socket_or_not_appending_is_refused, .init = cr_redirect_stderr)
{
	char dir[] = "/tmp/forksafe-log-XXXXXX", path[128], other[128], buf[512];
	struct fs_config cfg;
	int sv[2], fd;
	char *out;

	reset();
	cr_assert_not_null(mkdtemp(dir));
	/* A socket at the number: the program's own connection, never written to. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	cr_assert_eq(dup2(sv[0], 118), 118);
	set_env(0, "GRPC_FORKSAFE_LOG_FD", "118");
	fs_config_load(&cfg, fake_getenv);
	fs_log(FS_WARN, "not to the socket");
	cr_assert_lt(read(sv[1], buf, sizeof(buf)), 0, "a log line went to the socket");
	/* A file opened without O_APPEND: refused, and the path is used instead. */
	snprintf(path, sizeof(path), "%s/plain", dir);
	snprintf(other, sizeof(other), "%s/by-path", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_eq(dup2(fd, 119), 119);
	set_env(0, "GRPC_FORKSAFE_LOG_FD", "119");
	set_env(1, "GRPC_FORKSAFE_LOG_FILE", other);
	set_env(2, "GRPC_FORKSAFE_LOG_WARNED", "0");
	fs_config_load(&cfg, fake_getenv);
	fs_log(FS_WARN, "to the file by its path");
	read_file(other, buf, sizeof(buf));
	cr_assert(strstr(buf, "GRPC_FORKSAFE_LOG_FD=119 cannot be used (it is a file not opened for appending); "
			      "logging to GRPC_FORKSAFE_LOG_FILE\n") != NULL,
		  "got: %s", buf);
	cr_assert(strstr(buf, "to the file by its path\n") != NULL, "got: %s", buf);
	out = unit_read_stderr();
	cr_assert(strstr(out, "GRPC_FORKSAFE_LOG_FD=118 cannot be used (it is neither a file nor a pipe); logging "
			      "to stderr\n") != NULL,
		  "got: %s", out);
	cr_assert(strstr(out, "not to the socket") != NULL, "got: %s", out);
}

Test(config, log_fd_values_are_parsed_strictly, .init = cr_redirect_stderr)
{
	static const char *const bad[] = { "-1", "+3", " 3", "3x", "99999999999" };
	struct fs_config cfg;
	char *out;

	reset();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_env(0, "GRPC_FORKSAFE_LOG_FD", bad[i]);
		fs_config_load(&cfg, fake_getenv);
		cr_assert_eq(cfg.log_fd, -1, "GRPC_FORKSAFE_LOG_FD=\"%s\" was taken", bad[i]);
	}
	out = unit_read_stderr();
	cr_assert_eq(unit_count_lines(out), 5, "got: %s", out);
	cr_assert(strstr(out, "GRPC_FORKSAFE_LOG_FD=\"3x\" is invalid (accepted: a descriptor number") != NULL,
		  "got: %s", out);
}

/* A process that cannot open the file says so and marks its environment; one
 * that finds the mark (a child, a program it execs) does not say it again. */
Test(config, an_unopenable_log_file_is_reported_once, .init = cr_redirect_stderr)
{
	struct fs_config cfg;
	char *out;

	reset();
	unsetenv("GRPC_FORKSAFE_LOG_WARNED");
	set_env(0, "GRPC_FORKSAFE_LOG_FILE", "/nonexistent-forksafe-dir/log");
	fs_config_load(&cfg, fake_getenv);
	cr_assert_str_eq(getenv("GRPC_FORKSAFE_LOG_WARNED") ? getenv("GRPC_FORKSAFE_LOG_WARNED") : "", "1");
	set_env(1, "GRPC_FORKSAFE_LOG_WARNED", getenv("GRPC_FORKSAFE_LOG_WARNED"));
	fs_config_load(&cfg, fake_getenv);
	out = unit_read_stderr();
	cr_assert_eq(unit_count_lines(out), 1, "got: %s", out);
	cr_assert(strstr(out, "GRPC_FORKSAFE_LOG_FILE=\"/nonexistent-forksafe-dir/log\" cannot be opened") != NULL,
		  "got: %s", out);
}
