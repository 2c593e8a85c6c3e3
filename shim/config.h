/* The GRPC_FORKSAFE_* settings, parsed strictly: a bad value is reported in one
 * line naming the variable and what it accepts, and the default is used. */
#ifndef FORKSAFE_CONFIG_H
#define FORKSAFE_CONFIG_H

#include <stdbool.h>

enum fs_mode {
	FS_MODE_OFF,       /* pure pass-through */
	FS_MODE_AUDIT,     /* behave as without the shim, report what forks inherit */
	FS_MODE_RECONNECT, /* calls on inherited channels go to replacements */
	FS_MODE_CLOSE,     /* calls on inherited channels fail at once */
};

/* The modes in which the shim changes what happens at a fork. */
static inline bool fs_mode_acts(enum fs_mode m)
{
	return m == FS_MODE_RECONNECT || m == FS_MODE_CLOSE;
}

/* What the shim does for gRPC compiled into another object (embedded.c). */
enum fs_embedded {
	FS_EMBEDDED_RESET, /* guard descriptors; turn on grpcio's own fork handling */
	FS_EMBEDDED_GUARD, /* guard descriptors only */
};

/* What a child's gRPC is (fresh.c). */
enum fs_child_grpc {
	FS_CHILD_INHERITED, /* the parent's, stopped and restarted around the fork by core's handlers */
	FS_CHILD_FRESH,     /* private copies of gRPC core, initialised on the child's first gRPC call */
};

struct fs_config {
	enum fs_mode mode;
	int log_level;       /* enum fs_level */
	bool allow_untested; /* act on a gRPC core version the shim was not tested with */
	const char *log_file; /* append log lines here instead of stderr */
	int log_fd;           /* GRPC_FORKSAFE_LOG_FD: an inherited descriptor for them, or -1 */
	long quiesce_ms;      /* how long a fork waits for threads to leave gRPC */
	const char *objects;  /* GRPC_FORKSAFE_OBJECTS: more objects with gRPC inside */
	int embedded;         /* enum fs_embedded */
	int child_grpc;       /* enum fs_child_grpc: GRPC_FORKSAFE_CHILD_GRPC */
	const char *cache_dir; /* GRPC_FORKSAFE_CACHE_DIR: the children's copies of gRPC; NULL: the default */
};

/* Long enough for synchronous calls in progress to finish and leave gRPC,
 * short enough that no fork stalls a server for long when a thread cannot be
 * brought out (a stream still being read, say). */
#define FS_QUIESCE_MS_DEFAULT 1000

/* How settings are read: secure_getenv in the shim, a table in the tests. */
typedef char *(*fs_getenv_fn)(const char *name);

void fs_config_defaults(struct fs_config *cfg);
/* Reads every setting; reports bad values through the log (so the level is read first). */
void fs_config_load(struct fs_config *cfg, fs_getenv_fn get);

struct fs_choice {
	const char *name;
	int value;
};

/* Each returns the parsed value, or `def` after logging one warning. */
int fs_parse_choice(const char *var, const char *text, const struct fs_choice *choices, int def);
long long fs_parse_number(const char *var, const char *text, long long min, long long max, long long def);
bool fs_parse_bool(const char *var, const char *text, bool def);

extern struct fs_config fs_cfg __attribute__((visibility("hidden")));

#endif
