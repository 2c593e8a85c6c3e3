/* Stands for a gRPC library: built twice from this source, as libid_old.so
 * (what the test program links) and libid_new.so (the fresh copy it loads),
 * which differ only in ID_NAME/ID_NUM and in what ID_OLD adds. */
#include "id.h"

int id_counter = ID_NUM;
int id_array[4] = { ID_NUM, ID_NUM + 1, ID_NUM + 2, ID_NUM + 3 };
/* A thread-local: libthird reaches it general-dynamic (a module id and an
 * offset), the program initial-exec (an offset from the thread pointer). */
__thread int id_tls = ID_NUM;

const char *id_name(void)
{
	return ID_NAME;
}

int id_bump(void)
{
	return ++id_counter;
}

/* An interposer (libhook.so) defines this too, ahead of us. */
const char *id_hooked(void)
{
	return ID_NAME;
}

/* A function chosen by a resolver at load time (STT_GNU_IFUNC). */
static const char *id_fast_impl(void)
{
	return ID_NAME " ifunc";
}

static id_fn *id_fast_resolver(void)
{
	return id_fast_impl;
}

const char *id_fast(void) __attribute__((ifunc("id_fast_resolver")));

/* Two versions of one name: id_ver@ID_0 and the default id_ver@@ID_1. */
const char *id_ver_0(void);
const char *id_ver_1(void);

const char *id_ver_0(void)
{
	return ID_NAME " ID_0";
}

const char *id_ver_1(void)
{
	return ID_NAME " ID_1";
}

__asm__(".symver id_ver_0, id_ver@ID_0");
__asm__(".symver id_ver_1, id_ver@@ID_1");

#ifdef ID_OLD
/* What the new copy lacks. */
const char *id_only_old(void)
{
	return "old only";
}
#endif
