/*
 * A stand-in for libgrpc.so.29, built twice:
 *   -DUNTESTED_VERSION  all the symbols the shim needs, but core version 30;
 *   (plain)             core version 29, but without core's fork hooks.
 * Each function reports on stderr when the shim calls what it must not call in
 * pass-through, and the channel "handles" are plain addresses, so the program
 * can tell whether its child's calls were redirected.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

static char channels[4];
static int next_channel;

void grpc_init(void) {}
int grpc_is_initialized(void) { return 1; }
#ifdef UNTESTED_VERSION
const char *grpc_version_string(void) { return "30.0.0"; }
void _Z12grpc_preforkv(void) { fprintf(stderr, "fake: grpc_prefork called\n"); }
void _Z20grpc_postfork_parentv(void) { fprintf(stderr, "fake: grpc_postfork_parent called\n"); }
void _Z19grpc_postfork_childv(void) { fprintf(stderr, "fake: grpc_postfork_child called\n"); }
void _ZN9grpc_core4Fork6EnableEb(bool on) { fprintf(stderr, "fake: Fork::Enable called\n"); }
#else
const char *grpc_version_string(void) { return "29.0.0"; }
#endif

grpc_channel *grpc_channel_create(const char *target, grpc_channel_credentials *creds, const grpc_channel_args *args)
{
	for (size_t i = 0; args != NULL && i < args->num_args; i++)
		fprintf(stderr, "fake: channel argument %s added\n", args->args[i].key);
	return (grpc_channel *)&channels[next_channel++ % 4];
}

grpc_channel *grpc_lame_client_channel_create(const char *target, grpc_status_code error_code,
					      const char *error_message)
{
	return (grpc_channel *)&channels[3];
}

void grpc_channel_destroy(grpc_channel *channel) {}

grpc_call *grpc_channel_create_call(grpc_channel *channel, grpc_call *parent_call, uint32_t propagation_mask,
				    grpc_completion_queue *completion_queue, grpc_slice method,
				    const grpc_slice *host, gpr_timespec deadline, void *reserved)
{
	Dl_info self;
	const char *name = dladdr(channels, &self) && self.dli_fname != NULL ? self.dli_fname : "?";

	/* Which instance made the call: the installed library, or a private
	 * copy of it a child runs (its file name differs). */
	printf("call on channel %d of %s\n", (int)((char *)channel - channels),
	       strrchr(name, '/') != NULL ? strrchr(name, '/') + 1 : name);
	fflush(stdout);
	return NULL;
}

grpc_call *grpc_channel_create_registered_call(grpc_channel *channel, grpc_call *parent_call,
					       uint32_t propagation_mask, grpc_completion_queue *completion_queue,
					       void *registered_call_handle, gpr_timespec deadline, void *reserved)
{
	return NULL;
}

void *grpc_channel_register_call(grpc_channel *channel, const char *method, const char *host, void *reserved)
{
	return NULL;
}

void grpc_channel_credentials_release(grpc_channel_credentials *creds) {}

grpc_event grpc_completion_queue_next(grpc_completion_queue *cq, gpr_timespec deadline, void *reserved)
{
	return (grpc_event){ .type = GRPC_QUEUE_SHUTDOWN };
}

grpc_event grpc_completion_queue_pluck(grpc_completion_queue *cq, void *tag, gpr_timespec deadline,
				       void *reserved)
{
	return (grpc_event){ .type = GRPC_QUEUE_SHUTDOWN };
}

void grpc_completion_queue_shutdown(grpc_completion_queue *cq) {}
void grpc_completion_queue_destroy(grpc_completion_queue *cq) {}
