/* An interposer linked ahead of libid_old.so, as the preloaded shim is ahead
 * of gRPC: imports of id_hooked bind here and must stay here. */
#include "id.h"

const char *id_hooked(void)
{
	return "hook";
}
