/* channel-api-c: an ordinary C client of gRPC core (no grpc++) that forks and
 * uses, in the child, the channel API on the channel it inherited.
 *
 * Usage: channel-api-c c-channel-api --target HOST:PORT [--run ID] [--deadline-ms N]
 *
 * The parent creates a channel (grpc_channel_create with insecure credentials,
 * released at once), waits until it is READY, makes one Say call and notes
 * the local ports of its own TCP connections to the server. The child then
 * checks, on the inherited channel: grpc_channel_get_target, a
 * try-to-connect grpc_channel_check_connectivity_state followed by
 * grpc_channel_watch_connectivity_state on a completion queue until READY
 * (bounded), that at READY the kernel shows a TCP connection to the server
 * held by the child itself and not the parent's, support_connectivity_watcher,
 * num_external_connectivity_watchers around a pending watch,
 * reset_connect_backoff, grpc_channel_get_info, one Say call (over the
 * connection it was READY on), and grpc_channel_destroy; it shuts down the
 * parent's completion queue it inherited, too. The parent waits for
 * the child, checks its channel still reaches READY on its own connection,
 * and makes one more call.
 *
 * One line per check ("<role> pid=<pid> <what>: ok" or "... FAIL ..."); the
 * server sees calls tagged "<run>:parent-before", "<run>:child-1" and
 * "<run>:parent-after". Exits 0 only if every check in both processes passed.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#define MAX_PORTS 16

static const char *role = "parent";
static int failures;
static const char *target;
static const char *run_id = "c-channel-api";
static int deadline_ms = 2000;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (ok) {
		printf("%s pid=%d %s: ok\n", role, (int)getpid(), what);
	} else {
		printf("%s pid=%d FAIL %s\n", role, (int)getpid(), what);
		failures++;
	}
}

static gpr_timespec in_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static const char *state_name(grpc_connectivity_state s)
{
	switch (s) {
	case GRPC_CHANNEL_IDLE: return "IDLE";
	case GRPC_CHANNEL_CONNECTING: return "CONNECTING";
	case GRPC_CHANNEL_READY: return "READY";
	case GRPC_CHANNEL_TRANSIENT_FAILURE: return "TRANSIENT_FAILURE";
	case GRPC_CHANNEL_SHUTDOWN: return "SHUTDOWN";
	}
	return "?";
}

static int port_of(const char *address)
{
	const char *colon = strrchr(address, ':');
	return colon == NULL ? -1 : atoi(colon + 1);
}

static int by_value(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The local ports of this process's own ESTABLISHED TCP connections to
 * remote_port: socket inodes from /proc/self/fd, matched in /proc/self/net/tcp. */
static int own_connections(int remote_port, int *ports, int max)
{
	unsigned long inodes[256];
	int n_inodes = 0, n = 0;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	while (dir != NULL && (e = readdir(dir)) != NULL && n_inodes < 256) {
		char path[300], link[PATH_MAX];
		ssize_t len;

		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		len = readlink(path, link, sizeof link - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &inodes[n_inodes]) == 1)
			n_inodes++;
	}
	if (dir != NULL)
		closedir(dir);

	static const char *const tables[] = {"/proc/self/net/tcp", "/proc/self/net/tcp6"};
	for (size_t t = 0; t < 2; t++) {
		FILE *f = fopen(tables[t], "r");
		char line[512];

		if (f == NULL)
			continue;
		if (fgets(line, sizeof line, f) == NULL) { /* the header */
			fclose(f);
			continue;
		}
		while (fgets(line, sizeof line, f) != NULL) {
			char local[64], remote[64];
			unsigned st;
			unsigned long inode;
			const char *lp, *rp;

			if (sscanf(line, "%*s %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st,
				   &inode) != 4 || st != 1 /* ESTABLISHED */)
				continue;
			lp = strrchr(local, ':');
			rp = strrchr(remote, ':');
			if (lp == NULL || rp == NULL || strtol(rp + 1, NULL, 16) != remote_port)
				continue;
			for (int i = 0; i < n_inodes; i++)
				if (inodes[i] == inode && n < max)
					ports[n++] = (int)strtol(lp + 1, NULL, 16);
		}
		fclose(f);
	}
	qsort(ports, (size_t)n, sizeof *ports, by_value);
	return n;
}

static const char *port_list(const int *ports, int n, char *buf, size_t size)
{
	size_t used = (size_t)snprintf(buf, size, "[");
	for (int i = 0; i < n && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? " " : "", ports[i]);
	if (used < size)
		snprintf(buf + used, size - used, "]");
	return buf;
}

static int contains(const int *ports, int n, int port)
{
	for (int i = 0; i < n; i++)
		if (ports[i] == port)
			return 1;
	return 0;
}

/* Polls the completion queue for `tag` until `limit`; the event, or a
 * GRPC_QUEUE_TIMEOUT one. */
static grpc_event next_for(grpc_completion_queue *cq, void *tag, gpr_timespec limit)
{
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, limit, NULL);
		if (ev.type != GRPC_OP_COMPLETE || ev.tag == tag)
			return ev;
		printf("%s pid=%d unexpected completion %p\n", role, (int)getpid(), ev.tag);
	}
}

/* Asks the channel to connect and watches its state on cq until READY or
 * ms have passed; the last state seen, or -1 if the queue never answered. */
static int wait_ready(grpc_channel *ch, grpc_completion_queue *cq, int ms)
{
	gpr_timespec deadline = in_ms(ms);
	grpc_connectivity_state state = grpc_channel_check_connectivity_state(ch, 1);
	int tag;

	while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_SHUTDOWN) {
		grpc_channel_watch_connectivity_state(ch, state, deadline, cq, &tag);
		/* The watch ends by the deadline at the latest; a margin on top of it. */
		grpc_event ev = next_for(cq, &tag, gpr_time_add(deadline, gpr_time_from_seconds(2, GPR_TIMESPAN)));
		if (ev.type != GRPC_OP_COMPLETE)
			return -1;
		if (!ev.success)
			break; /* the deadline passed with no change */
		state = grpc_channel_check_connectivity_state(ch, 1);
	}
	return (int)state;
}

/* --- one Say call through the core API, the messages encoded by hand ------ */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
	return n;
}

static size_t put_bytes(uint8_t *p, int field, const char *s)
{
	size_t len = strlen(s), n = 0;
	p[n++] = (uint8_t)(field << 3 | 2);
	n += put_varint(p + n, len);
	memcpy(p + n, s, len);
	return n + len;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 1;
	}
	return 0;
}

/* SayReply: the string fields peer (2) and tag (3); everything else skipped. */
static int parse_reply(const uint8_t *p, size_t size, char *peer, size_t peer_size, char *tag,
		       size_t tag_size)
{
	const uint8_t *end = p + size;
	uint64_t key, v;

	*peer = *tag = '\0';
	while (p < end) {
		if (!get_varint(&p, end, &key))
			return 0;
		if ((key & 7) == 0) {
			if (!get_varint(&p, end, &v))
				return 0;
		} else if ((key & 7) == 2) {
			if (!get_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return 0;
			char *dst = (key >> 3) == 2 ? peer : (key >> 3) == 3 ? tag : NULL;
			size_t dst_size = (key >> 3) == 2 ? peer_size : tag_size;
			if (dst != NULL) {
				size_t n = v < dst_size - 1 ? (size_t)v : dst_size - 1;
				memcpy(dst, p, n);
				dst[n] = '\0';
			}
			p += v;
		} else {
			return 0;
		}
	}
	return 1;
}

/* One Say call tagged "<run>:<name>" on ch; its peer port, or -1 on failure. */
static int say(grpc_channel *ch, grpc_completion_queue *cq, const char *name)
{
	char full_tag[256], peer[128] = "", tag[256] = "";
	uint8_t req[600];
	size_t len = 0;
	int port = -1;

	snprintf(full_tag, sizeof full_tag, "%s:%s", run_id, name);
	req[len++] = 1 << 3 | 0; /* pid */
	len += put_varint(req + len, (uint64_t)getpid());
	len += put_bytes(req + len, 2, full_tag); /* tag */
	len += put_bytes(req + len, 3, full_tag); /* payload, echoed */

	gpr_timespec deadline = in_ms(deadline_ms);
	grpc_slice method = grpc_slice_from_static_string("/forksafe.echo.Echo/Say");
	grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
						   deadline, NULL);
	grpc_slice req_slice = grpc_slice_from_copied_buffer((const char *)req, len);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&req_slice, 1);
	grpc_byte_buffer *recv = NULL;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	int tag_done;

	grpc_slice_unref(req_slice);
	grpc_metadata_array_init(&initial_md);
	grpc_metadata_array_init(&trailing_md);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;

	grpc_call_error err = grpc_call_start_batch(call, ops, 6, &tag_done, NULL);
	grpc_event ev = {0};
	if (err == GRPC_CALL_OK)
		ev = next_for(cq, &tag_done, gpr_time_add(deadline, gpr_time_from_seconds(3, GPR_TIMESPAN)));
	if (err != GRPC_CALL_OK) {
		check(0, "%s: grpc_call_start_batch: error %d", full_tag, (int)err);
	} else if (ev.type != GRPC_OP_COMPLETE) {
		/* The call cannot be released while its batch is pending. */
		printf("%s pid=%d %s: FAIL no completion 3 s after the deadline (hang)\n", role,
		       (int)getpid(), full_tag);
		fflush(stdout);
		_exit(3);
	} else if (status != GRPC_STATUS_OK || recv == NULL) {
		char *msg = grpc_slice_to_c_string(details);
		check(0, "%s: status %d \"%s\"", full_tag, (int)status, msg);
		gpr_free(msg);
	} else {
		grpc_byte_buffer_reader reader;
		grpc_slice all;

		grpc_byte_buffer_reader_init(&reader, recv);
		all = grpc_byte_buffer_reader_readall(&reader);
		grpc_byte_buffer_reader_destroy(&reader);
		if (!parse_reply(GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), peer, sizeof peer, tag,
				 sizeof tag) ||
		    strcmp(tag, full_tag) != 0) {
			check(0, "%s: reply for another call (tag %s) peer=%s", full_tag, tag, peer);
		} else {
			printf("%s pid=%d %s: ok peer=%s\n", role, (int)getpid(), full_tag, peer);
			port = port_of(peer);
		}
		grpc_slice_unref(all);
	}
	grpc_byte_buffer_destroy(send);
	if (recv != NULL)
		grpc_byte_buffer_destroy(recv);
	grpc_metadata_array_destroy(&initial_md);
	grpc_metadata_array_destroy(&trailing_md);
	grpc_slice_unref(details);
	grpc_call_unref(call);
	return port;
}

static void drain(grpc_completion_queue *cq)
{
	grpc_completion_queue_shutdown(cq);
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(cq, in_ms(5000), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			check(0, "completion queue drained within 5 s of its shutdown");
			return;
		}
	}
	grpc_completion_queue_destroy(cq);
}

/* --- the child -------------------------------------------------------------- */

static void child(grpc_channel *ch, grpc_completion_queue *inherited_cq, const int *parent_ports,
		  int n_parent)
{
	int server_port = port_of(target), mine[MAX_PORTS], n_mine, state, shared = 0, port, tag;
	char buf1[128], buf2[128];
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);

	role = "child";
	failures = 0;

	char *got = grpc_channel_get_target(ch);
	check(got != NULL && strcmp(got, target) == 0, "grpc_channel_get_target \"%s\"",
	      got != NULL ? got : "(null)");
	gpr_free(got);

	state = wait_ready(ch, cq, deadline_ms * 2);
	check(state == GRPC_CHANNEL_READY,
	      "check_connectivity_state(try_to_connect) and watch_connectivity_state reach READY (%s)",
	      state < 0 ? "the completion queue never answered" : state_name((grpc_connectivity_state)state));

	n_mine = own_connections(server_port, mine, MAX_PORTS);
	for (int i = 0; i < n_mine; i++)
		shared |= contains(parent_ports, n_parent, mine[i]);
	check(n_mine > 0 && !shared, "at READY the child holds connection(s) %s of its own, the parent %s",
	      port_list(mine, n_mine, buf1, sizeof buf1), port_list(parent_ports, n_parent, buf2, sizeof buf2));

	check(grpc_channel_support_connectivity_watcher(ch) == 1, "grpc_channel_support_connectivity_watcher");

	/* A watch for a change away from READY stays pending until its deadline:
	 * while it does, the channel counts one external watcher. */
	int before = grpc_channel_num_external_connectivity_watchers(ch);
	grpc_channel_watch_connectivity_state(ch, GRPC_CHANNEL_READY, in_ms(300), cq, &tag);
	int during = grpc_channel_num_external_connectivity_watchers(ch);
	grpc_event ev = next_for(cq, &tag, in_ms(300 + deadline_ms));
	int after = grpc_channel_num_external_connectivity_watchers(ch);
	check(ev.type == GRPC_OP_COMPLETE, "a pending watch completes by its deadline");
	check(before == 0 && during == 1 && after == 0,
	      "grpc_channel_num_external_connectivity_watchers %d, %d while watching, %d after", before,
	      during, after);

	grpc_channel_reset_connect_backoff(ch);
	state = grpc_channel_check_connectivity_state(ch, 0);
	check(state == GRPC_CHANNEL_READY, "grpc_channel_reset_connect_backoff, still READY (%s)",
	      state_name((grpc_connectivity_state)state));

	grpc_channel_info info;
	char *lb = NULL, *config = NULL;
	memset(&info, 0, sizeof info);
	info.lb_policy_name = &lb;
	info.service_config_json = &config;
	grpc_channel_get_info(ch, &info);
	check(lb != NULL && lb[0] != '\0', "grpc_channel_get_info: lb policy \"%s\", service config \"%s\"",
	      lb != NULL ? lb : "(null)", config != NULL ? config : "(null)");
	gpr_free(lb);
	gpr_free(config);

	port = say(ch, cq, "child-1");
	if (port > 0)
		check(contains(mine, n_mine, port), "the call used the connection the child was READY on %s",
		      port_list(mine, n_mine, buf1, sizeof buf1));

	grpc_channel_destroy(ch);
	drain(cq);
	drain(inherited_cq); /* the parent's queue, unused here */
	grpc_shutdown();
	printf("child pid=%d destroyed the inherited channel and queue; %d failed checks\n", (int)getpid(),
	       failures);
	fflush(stdout);
	exit(failures == 0 ? 0 : 1);
}

/* --- the parent -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	int server_port, parent_ports[MAX_PORTS], n_parent, now_ports[MAX_PORTS], n_now, state, port,
	    status = 0;
	char buf1[128], buf2[128];

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--target") == 0) target = argv[i + 1];
		else if (strcmp(argv[i], "--run") == 0) run_id = argv[i + 1];
		else if (strcmp(argv[i], "--deadline-ms") == 0) deadline_ms = atoi(argv[i + 1]);
		else target = NULL;
	}
	if (argc < 2 || strcmp(argv[1], "c-channel-api") != 0 || argc % 2 != 0 || target == NULL ||
	    deadline_ms <= 0) {
		fprintf(stderr, "usage: channel-api-c c-channel-api --target HOST:PORT [--run ID] "
				"[--deadline-ms N]\n");
		return 2;
	}
	server_port = port_of(target);

	grpc_init();
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);

	state = wait_ready(ch, cq, deadline_ms * 2);
	check(state == GRPC_CHANNEL_READY, "parent channel READY (%s)",
	      state < 0 ? "no answer" : state_name((grpc_connectivity_state)state));
	say(ch, cq, "parent-before");
	n_parent = own_connections(server_port, parent_ports, MAX_PORTS);
	check(n_parent > 0, "parent holds connection(s) %s", port_list(parent_ports, n_parent, buf1, sizeof buf1));

	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		check(0, "fork: %s", strerror(errno));
		return 1;
	}
	if (pid == 0)
		child(ch, cq, parent_ports, n_parent);

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d exited %d (status 0x%x)", (int)pid,
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1, status);

	state = wait_ready(ch, cq, deadline_ms * 2);
	check(state == GRPC_CHANNEL_READY, "parent channel still READY (%s)",
	      state < 0 ? "no answer" : state_name((grpc_connectivity_state)state));
	n_now = own_connections(server_port, now_ports, MAX_PORTS);
	check(n_now == n_parent && memcmp(now_ports, parent_ports, sizeof(int) * (size_t)n_now) == 0,
	      "parent still holds connection(s) %s, before the fork %s",
	      port_list(now_ports, n_now, buf1, sizeof buf1), port_list(parent_ports, n_parent, buf2, sizeof buf2));
	port = say(ch, cq, "parent-after");
	check(port > 0 && contains(parent_ports, n_parent, port), "the parent's call used its connection %s",
	      port_list(parent_ports, n_parent, buf1, sizeof buf1));

	grpc_channel_destroy(ch);
	drain(cq);
	grpc_shutdown();
	if (failures == 0)
		printf("RESULT pid=%d c-channel-api: ok\n", (int)getpid());
	else
		printf("RESULT pid=%d c-channel-api: FAIL (%d failed calls or checks)\n", (int)getpid(), failures);
	return failures == 0 ? 0 : 1;
}
