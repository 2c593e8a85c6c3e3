/* A library that is not "gRPC" and imports from libid_old.so in every way a
 * relocation can: a PLT call, a GOT load of a function's address, pointers
 * in read-only-after-relocation data (one with an addend), a versioned
 * reference, and imports that must stay where they are. */
#include <string.h>

#include "id.h"
#include "third.h"

/* Calls the old version, id_ver@ID_0, not the default. */
__asm__(".symver id_ver, id_ver@ID_0");

/* Read through the accessors: the program referring to these directly would
 * copy them into itself (a copy relocation) and read its copy instead. */
static id_fn *const table[2] = { id_name, id_fast };
static int *const array_ptr = &id_array[2];

id_fn *const *third_table(void)
{
	return table;
}

int *const *third_array_ptr(void)
{
	return &array_ptr;
}

const char *third_call(void)
{
	return id_name();
}

id_fn *third_fp(void)
{
	return &id_name;
}

int third_bump(void)
{
	return id_bump();
}

const char *third_ver0(void)
{
	return id_ver();
}

const char *third_hooked(void)
{
	return id_hooked();
}

int *third_counter_addr(void)
{
	return &id_counter;
}

/* General-dynamic: -fPIC code in a shared object. */
int third_tls_get(void)
{
	return id_tls;
}

int *third_tls_addr(void)
{
	return &id_tls;
}

size_t (*third_strlen(void))(const char *)
{
	return &strlen;
}
