#include "chanargs.h"

#include <stdlib.h>
#include <string.h>

static int copy_arg(grpc_arg *dst, const grpc_arg *src)
{
	*dst = *src;
	dst->key = strdup(src->key != NULL ? src->key : "");
	if (dst->key == NULL)
		return 0;
	switch (src->type) {
	case GRPC_ARG_STRING:
		dst->value.string = strdup(src->value.string != NULL ? src->value.string : "");
		if (dst->value.string == NULL) {
			free(dst->key);
			return 0;
		}
		break;
	case GRPC_ARG_POINTER:
		if (src->value.pointer.vtable != NULL && src->value.pointer.vtable->copy != NULL)
			dst->value.pointer.p = src->value.pointer.vtable->copy(src->value.pointer.p);
		break;
	case GRPC_ARG_INTEGER:
		break;
	}
	return 1;
}

static void free_arg(grpc_arg *a)
{
	if (a->type == GRPC_ARG_STRING)
		free(a->value.string);
	else if (a->type == GRPC_ARG_POINTER && a->value.pointer.vtable != NULL &&
		 a->value.pointer.vtable->destroy != NULL)
		a->value.pointer.vtable->destroy(a->value.pointer.p);
	free(a->key);
}

grpc_channel_args *fs_chanargs_copy(const grpc_channel_args *src, int *ok)
{
	grpc_channel_args *dst;

	*ok = 1;
	if (src == NULL)
		return NULL;
	dst = calloc(1, sizeof(*dst));
	if (dst == NULL)
		goto fail;
	if (src->num_args > 0) {
		dst->args = calloc(src->num_args, sizeof(grpc_arg));
		if (dst->args == NULL)
			goto fail;
	}
	for (size_t i = 0; i < src->num_args; i++) {
		if (!copy_arg(&dst->args[i], &src->args[i]))
			goto fail;
		dst->num_args = i + 1;
	}
	return dst;
fail:
	fs_chanargs_free(dst);
	*ok = 0;
	return NULL;
}

void fs_chanargs_free(grpc_channel_args *args)
{
	if (args == NULL)
		return;
	for (size_t i = 0; i < args->num_args; i++)
		free_arg(&args->args[i]);
	free(args->args);
	free(args);
}

grpc_channel_args *fs_chanargs_with_generation(const grpc_channel_args *src, unsigned generation)
{
	size_t n = src != NULL ? src->num_args : 0;
	/* One block: the header, then n + 1 arguments. */
	grpc_channel_args *view = malloc(sizeof(*view) + (n + 1) * sizeof(grpc_arg));

	if (view == NULL)
		return NULL;
	view->args = (grpc_arg *)(view + 1);
	view->num_args = n + 1;
	if (n > 0)
		memcpy(view->args, src->args, n * sizeof(grpc_arg));
	view->args[n].type = GRPC_ARG_INTEGER;
	view->args[n].key = (char *)FS_GENERATION_ARG;
	view->args[n].value.integer = (int)generation;
	return view;
}

void fs_chanargs_free_view(grpc_channel_args *view)
{
	free(view);
}

static bool arg_equal(const grpc_arg *a, const grpc_arg *b)
{
	if (a->type != b->type || strcmp(a->key, b->key) != 0)
		return false;
	switch (a->type) {
	case GRPC_ARG_STRING:
		return strcmp(a->value.string, b->value.string) == 0;
	case GRPC_ARG_INTEGER:
		return a->value.integer == b->value.integer;
	case GRPC_ARG_POINTER:
		if (a->value.pointer.vtable != b->value.pointer.vtable)
			return false;
		if (a->value.pointer.vtable == NULL || a->value.pointer.vtable->cmp == NULL)
			return a->value.pointer.p == b->value.pointer.p;
		return a->value.pointer.vtable->cmp(a->value.pointer.p, b->value.pointer.p) == 0;
	}
	return false;
}

bool fs_chanargs_equal(const grpc_channel_args *a, const grpc_channel_args *b)
{
	size_t na = a != NULL ? a->num_args : 0, nb = b != NULL ? b->num_args : 0;

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!arg_equal(&a->args[i], &b->args[i]))
			return false;
	return true;
}
