/* libFuzzer target: every GRPC_FORKSAFE_* setting parser, through
 * fs_config_load, with values taken from the input. The input is split at
 * NUL bytes into one value per setting (a missing one is unset). The log file
 * setting is never fuzzed: it would create files. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "log.h"

static const char *const names[] = {
	"GRPC_FORKSAFE_LOG",      "GRPC_FORKSAFE_MODE",     "GRPC_FORKSAFE_QUIESCE_MS",
	"GRPC_FORKSAFE_OBJECTS",  "GRPC_FORKSAFE_EMBEDDED", "GRPC_FORKSAFE_ALLOW_UNTESTED",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

static char values[NNAMES][256];
static int present[NNAMES];

static char *get(const char *name)
{
	for (size_t i = 0; i < NNAMES; i++)
		if (strcmp(name, names[i]) == 0)
			return present[i] ? values[i] : NULL;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_config cfg;
	size_t i = 0, at = 0;

	memset(present, 0, sizeof(present));
	while (i < NNAMES && at <= size) {
		size_t n = 0;

		while (at + n < size && data[at + n] != '\0' && n < sizeof(values[i]) - 1)
			n++;
		memcpy(values[i], data + at, n);
		values[i][n] = '\0';
		present[i] = 1;
		at += n + 1;
		i++;
	}
	fs_config_load(&cfg, get);
	/* What the shim relies on, whatever the input. */
	if (cfg.quiesce_ms < 0 || cfg.quiesce_ms > 600000 || cfg.log_level < FS_ERROR || cfg.log_level > FS_DEBUG ||
	    (cfg.mode != FS_MODE_OFF && cfg.mode != FS_MODE_AUDIT && cfg.mode != FS_MODE_RECONNECT &&
	     cfg.mode != FS_MODE_CLOSE) ||
	    (cfg.embedded != FS_EMBEDDED_RESET && cfg.embedded != FS_EMBEDDED_GUARD))
		__builtin_trap();
	return 0;
}
