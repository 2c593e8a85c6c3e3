/* The copy set's cache directory: code is loaded from it, so it must be the
 * user's own and writable by nobody else. And the errors fs_copyset_load
 * gives before it touches anything. (Loading a set needs RTLD_DEEPBIND,
 * which ASan refuses: tests/fresh covers that.) */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copyset.h"
#include "unit.h"

static char base[64];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/fs-copyset-unit-XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	cr_redirect_stderr();
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	(void)!system(cmd);
}

TestSuite(copyset, .init = setup, .fini = teardown, .timeout = 10);

/* base/name, in one of two buffers used in turn: two may be in use at once. */
static const char *at(const char *name)
{
	static char path[2][128];
	static int turn;

	turn = !turn;
	snprintf(path[turn], sizeof(path[turn]), "%s/%s", base, name);
	return path[turn];
}

Test(copyset, creates_a_private_directory)
{
	char err[256] = "";
	struct stat st;
	int fd = fs_copyset_cache_open(at("cache"), err, sizeof(err));

	cr_assert_geq(fd, 0, "%s", err);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 077, 0, "mode %o", st.st_mode & 0777);
	close(fd);
	/* And opens it again. */
	fd = fs_copyset_cache_open(at("cache"), err, sizeof(err));
	cr_assert_geq(fd, 0, "%s", err);
	close(fd);
	cr_assert_str_empty(unit_read_stderr());
}

Test(copyset, refuses_group_or_other_writable)
{
	char err[256] = "";

	cr_assert_eq(mkdir(at("open"), 0700), 0);
	cr_assert_eq(chmod(at("open"), 0770), 0);
	cr_assert_lt(fs_copyset_cache_open(at("open"), err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "writable by group or others (mode 770)"), "%s", err);
	cr_assert_eq(chmod(at("open"), 0702), 0);
	cr_assert_lt(fs_copyset_cache_open(at("open"), err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "writable by group or others (mode 702)"), "%s", err);

	const char *log = unit_read_stderr();
	cr_assert_eq(unit_count_lines(log), 2, "one warn line per refusal: %s", log);
	cr_assert_not_null(strstr(log, "grpc-forksafe: warn: copyset: refusing the cache directory"), "%s", log);
}

Test(copyset, refuses_a_symbolic_link)
{
	char err[256] = "";

	cr_assert_eq(mkdir(at("real"), 0700), 0);
	cr_assert_eq(symlink(at("real"), at("link")), 0);
	cr_assert_lt(fs_copyset_cache_open(at("link"), err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "it is a symbolic link"), "%s", err);
	cr_assert_eq(unit_count_lines(unit_read_stderr()), 1);
}

Test(copyset, refuses_a_file)
{
	char err[256] = "";
	int fd = open(at("file"), O_CREAT | O_WRONLY, 0600);

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_lt(fs_copyset_cache_open(at("file"), err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "not a directory"), "%s", err);
}

Test(copyset, refuses_another_users_directory)
{
	char err[256] = "";

	if (geteuid() != 0)
		cr_skip_test("needs root to give a directory away");
	cr_assert_eq(mkdir(at("theirs"), 0700), 0);
	cr_assert_eq(chown(at("theirs"), 65534, 65534), 0);
	cr_assert_lt(fs_copyset_cache_open(at("theirs"), err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "owned by uid 65534"), "%s", err);
}

Test(copyset, a_missing_parent_is_an_error_not_a_refusal)
{
	char err[256] = "";

	cr_assert_lt(fs_copyset_cache_open(at("no/such/dir"), err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "cannot create the cache directory"), "%s", err);
	cr_assert_str_empty(unit_read_stderr());
}

Test(copyset, default_directory)
{
	char buf[256], want[64];

	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	cr_assert(fs_copyset_default_dir(buf, sizeof(buf)));
	cr_assert_str_eq(buf, "/run/user/4242/grpc-forksafe");
	cr_assert_not(fs_copyset_default_dir(buf, 10));
	cr_assert_str_empty(buf);
	unsetenv("XDG_RUNTIME_DIR");
	cr_assert(fs_copyset_default_dir(buf, sizeof(buf)));
	snprintf(want, sizeof(want), "/tmp/grpc-forksafe-%u", (unsigned)geteuid());
	cr_assert_str_eq(buf, want);
	setenv("XDG_RUNTIME_DIR", "relative", 1);
	cr_assert(fs_copyset_default_dir(buf, sizeof(buf)));
	cr_assert_str_eq(buf, want, "a relative XDG_RUNTIME_DIR is ignored");
	unsetenv("XDG_RUNTIME_DIR");
}

Test(copyset, load_errors)
{
	char err[256] = "";
	struct fs_copyset_opts opts = { .cache_dir = at("cache") };

	cr_assert_null(fs_copyset_load(0, &opts, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "out of range"), "%s", err);
	cr_assert_null(fs_copyset_load(256, &opts, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "out of range"), "%s", err);
	/* This program has no gRPC loaded. */
	cr_assert_null(fs_copyset_load(1, &opts, err, sizeof(err)));
	cr_assert_str_eq(err, "no libgrpc is loaded in this process");
	cr_assert_eq(access(at("cache"), F_OK), -1, "nothing written before there is a set to write");
}
