/*
 * c-ares, the resolver library gRPC uses, is a library that programs use for
 * their own DNS too: whose a c-ares socket is cannot be told from the
 * caller's address (it is libcares either way). What tells is the channel:
 * gRPC creates its own with ares_init_options. When gRPC's code (shared or
 * embedded) makes that call, the shim gives the new channel socket functions
 * of its own (ares_set_socket_functions, c-ares 1.13 and later; gRPC sets
 * none on POSIX), through which every socket of that channel is opened,
 * registered as gRPC's and closed. Sockets c-ares opens for any other channel
 * go through libcares' own socket() calls, which the fd hooks leave to the
 * application.
 */
#include <dlfcn.h>
#include <ares.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "config.h"
#include "fdreg.h"
#include "grpclib.h"
#include "libc.h"
#include "owner.h"

#define EXPORT __attribute__((visibility("default")))

/* user_data of gRPC's channels: which gRPC made it. */
#define AS_USER_DATA(owner) ((void *)(uintptr_t)(owner))
#define OWNER_OF(user_data) ((enum fs_owner)(uintptr_t)(user_data))

static ares_socket_t grpc_ares_socket(int domain, int type, int protocol, void *user_data)
{
	bool embedded = OWNER_OF(user_data) == FS_OWNER_EMBEDDED;
	struct fs_fd_creating *c = fs_fdreg_begin_add(FS_FD_SOCKET, embedded, false);
	int fd = fs_libc.socket(domain, type | SOCK_CLOEXEC, protocol), err = errno;

	fs_fdreg_end_add(c, fd >= 0 ? &fd : NULL, 1, FS_FD_SOCKET, embedded);
	errno = err;
	return fd;
}

static int grpc_ares_close(ares_socket_t fd, void *user_data)
{
	return fs_fdreg_close_as(fd, true, fs_libc.close);
}

static int grpc_ares_connect(ares_socket_t fd, const struct sockaddr *addr, ares_socklen_t len, void *user_data)
{
	return connect(fd, addr, len);
}

static ares_ssize_t grpc_ares_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags, struct sockaddr *from,
				       ares_socklen_t *from_len, void *user_data)
{
	return recvfrom(fd, buf, len, flags, from, from_len);
}

static ares_ssize_t grpc_ares_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *user_data)
{
	return writev(fd, iov, n);
}

static const struct ares_socket_functions grpc_socket_functions = {
	grpc_ares_socket, grpc_ares_close, grpc_ares_connect, grpc_ares_recvfrom, grpc_ares_sendv,
};

typedef int (*init_options_fn)(ares_channel *, struct ares_options *, int);
typedef void (*set_socket_functions_fn)(ares_channel, const struct ares_socket_functions *, void *);

/* libcares loaded RTLD_LOCAL (with a libgrpc a plugin loaded, say) is not
 * in the global scope: look it up from the object that called, whose own
 * dependencies include it. *scope gets that object's handle (kept: it pins an
 * object that is loaded anyway). */
static void *from_callers_scope(const void *caller, const char *name, void **scope)
{
	Dl_info info;

	if (dladdr(caller, &info) == 0 || info.dli_fname == NULL ||
	    (*scope = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD)) == NULL)
		return NULL;
	return dlsym(*scope, name);
}

EXPORT int ares_init_options(ares_channel *channelptr, struct ares_options *options, int optmask)
{
	static _Atomic(init_options_fn) real;
	static _Atomic(set_socket_functions_fn) set_functions;
	init_options_fn init = atomic_load(&real);
	enum fs_owner owner = FS_OWNER_OTHER;
	int rc;

	if (init == NULL) {
		/* Only a program with libcares loaded calls this; the lookup is repeated
		 * harmlessly by threads that race here. */
		void *scope = NULL;

		init = (init_options_fn)fs_next_symbol("ares_init_options");
		if (init == NULL)
			init = (init_options_fn)from_callers_scope(__builtin_return_address(0), "ares_init_options", &scope);
		if (init == NULL)
			return ARES_ENOTINITIALIZED;
		atomic_store(&set_functions, scope != NULL ? (set_socket_functions_fn)dlsym(scope, "ares_set_socket_functions")
							   : (set_socket_functions_fn)fs_next_symbol("ares_set_socket_functions"));
		atomic_store(&real, init);
	}
	if (fs_mode_acts(fs_cfg.mode)) {
		owner = fs_owner_of(__builtin_return_address(0));
		if (owner == FS_OWNER_SHARED && fs_grpc_state() == FS_GRPC_PASSTHROUGH)
			owner = FS_OWNER_OTHER;
	}
	rc = init(channelptr, options, optmask);
	if (rc == ARES_SUCCESS && owner != FS_OWNER_OTHER && atomic_load(&set_functions) != NULL)
		atomic_load(&set_functions)(*channelptr, &grpc_socket_functions, AS_USER_DATA(owner));
	return rc;
}
