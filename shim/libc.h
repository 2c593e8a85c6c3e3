/* The C library's own functions behind the ones the shim interposes. */
#ifndef FORKSAFE_LIBC_H
#define FORKSAFE_LIBC_H

#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

struct fs_libc {
	int (*close)(int);
	int (*socket)(int, int, int);
	int (*socketpair)(int, int, int, int[2]);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*epoll_create)(int);
	int (*epoll_create1)(int);
	int (*eventfd)(unsigned int, int);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*pipe)(int[2]);
	int (*pipe2)(int[2], int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	pid_t (*fork)(void);
	pid_t (*vfork)(void);
	int (*clone)(int (*)(void *), void *, int, void *, ...);
	int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
			   char *const[], char *const[]);
	int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
			    char *const[], char *const[]);
};

/* Filled by fs_libc_resolve(); until then, and for any symbol libc lacks, each
 * entry points at a fallback made of raw system calls, so a hook always has
 * somewhere to go, even when it runs before the shim's constructor. */
extern struct fs_libc fs_libc;

void fs_libc_resolve(void);

/* dlsym(RTLD_NEXT) that refuses to hand back the shim's own definition. */
void *fs_next_symbol(const char *name);

#endif
