/* fresh-c: a client of gRPC core's C API whose forked child and grandchild
 * make their calls through a fresh gRPC of their own: private copies of the
 * libraries loaded by fs_copyset_load (shim/copyset.c, linked in directly,
 * no shim preloaded and no fork handlers anywhere).
 *
 * Usage: fresh-c --target HOST:PORT --cache DIR [--run ID] [--deadline-ms N]
 *                [--interval-ms N] [--siblings N] [--grpcxx 1]
 *
 * The parent makes one Say call, then a thread of its starts a Count stream
 * (4 replies, one every interval, 1000 ms) and reads it; right after the first
 * reply, with the stream's call in flight and the next reply a second away,
 * the parent forks. The child loads generation 1 of the copy set, finds the
 * C API functions in it with dlsym (each inside the new set's address ranges,
 * none inside the old set's), runs grpc_init and makes a Say call through
 * the copy on a channel of its own; the reply's peer must be a TCP
 * connection the child holds and the parent did not. The child then forks a
 * grandchild that does the same with generation 2 (copied from the child's
 * generation 1), on a connection neither the parent nor the child had. The
 * parent's stream must deliver every reply in order with status OK, and its
 * next Say call succeed.
 *
 * With --grpcxx 1 the parent first loads libgrpc++ (dlopen), as a grpc++
 * program has it: each generation must then have a copy of it too, with
 * grpc::Version() inside the new set.
 *
 * With --siblings N the parent instead forks N children at once, which load
 * generation 1 together (released by one pipe) and each make a Say call
 * through it: sibling children racing to write the same set must all end
 * up loading one.
 *
 * One line per check ("<role> pid=<pid> <what>: ok" or "... FAIL ..."),
 * "TIMING <role> gen=<g> built|reused closure_ms=.. build_ms=.. load_ms=..
 * members=N" per load, and "RESULT pid=<pid> fresh: ok" from the parent when
 * every check in all three processes passed (exit status 0).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "copyset.h"

#define MAX_PORTS 32
#define STREAM_REPLIES 4

static const char *role = "parent";
static int failures;
static const char *target, *cache_dir, *run_id = "fresh";
static int deadline_ms = 5000, interval_ms = 1000, siblings, grpcxx;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	char what[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	printf(ok ? "%s pid=%d %s: ok\n" : "%s pid=%d FAIL %s\n", role, (int)getpid(), what);
	failures += !ok;
}

/* --- the C API, from the libraries linked in or from a copy ---------------- */

struct api {
	void (*init)(void);
	void (*shutdown)(void);
	grpc_channel_credentials *(*insecure_credentials_create)(void);
	void (*channel_credentials_release)(grpc_channel_credentials *);
	grpc_channel *(*channel_create)(const char *, grpc_channel_credentials *, const grpc_channel_args *);
	void (*channel_destroy)(grpc_channel *);
	grpc_completion_queue *(*cq_create_for_next)(void *);
	grpc_event (*cq_next)(grpc_completion_queue *, gpr_timespec, void *);
	void (*cq_shutdown)(grpc_completion_queue *);
	void (*cq_destroy)(grpc_completion_queue *);
	grpc_call *(*channel_create_call)(grpc_channel *, grpc_call *, uint32_t, grpc_completion_queue *,
					  grpc_slice, const grpc_slice *, gpr_timespec, void *);
	grpc_call_error (*call_start_batch)(grpc_call *, const grpc_op *, size_t, void *, void *);
	void (*call_unref)(grpc_call *);
	grpc_slice (*slice_from_static_string)(const char *);
	grpc_slice (*slice_from_copied_buffer)(const char *, size_t);
	void (*slice_unref)(grpc_slice);
	grpc_slice (*empty_slice)(void);
	char *(*slice_to_c_string)(grpc_slice);
	grpc_byte_buffer *(*raw_byte_buffer_create)(grpc_slice *, size_t);
	void (*byte_buffer_destroy)(grpc_byte_buffer *);
	int (*reader_init)(grpc_byte_buffer_reader *, grpc_byte_buffer *);
	grpc_slice (*reader_readall)(grpc_byte_buffer_reader *);
	void (*reader_destroy)(grpc_byte_buffer_reader *);
	void (*metadata_array_init)(grpc_metadata_array *);
	void (*metadata_array_destroy)(grpc_metadata_array *);
	gpr_timespec (*now)(gpr_clock_type);
	gpr_timespec (*time_add)(gpr_timespec, gpr_timespec);
	gpr_timespec (*time_from_millis)(int64_t, gpr_clock_type);
	void (*free)(void *);
};

/* Each member's symbol name, in the struct's order. */
static const char *const api_names[] = {
	"grpc_init", "grpc_shutdown", "grpc_insecure_credentials_create", "grpc_channel_credentials_release",
	"grpc_channel_create", "grpc_channel_destroy", "grpc_completion_queue_create_for_next",
	"grpc_completion_queue_next", "grpc_completion_queue_shutdown", "grpc_completion_queue_destroy",
	"grpc_channel_create_call", "grpc_call_start_batch", "grpc_call_unref",
	"grpc_slice_from_static_string", "grpc_slice_from_copied_buffer", "grpc_slice_unref",
	"grpc_empty_slice", "grpc_slice_to_c_string", "grpc_raw_byte_buffer_create",
	"grpc_byte_buffer_destroy", "grpc_byte_buffer_reader_init", "grpc_byte_buffer_reader_readall",
	"grpc_byte_buffer_reader_destroy", "grpc_metadata_array_init", "grpc_metadata_array_destroy",
	"gpr_now", "gpr_time_add", "gpr_time_from_millis", "gpr_free",
};
#define API_N (sizeof(api_names) / sizeof(api_names[0]))
_Static_assert(sizeof(struct api) == API_N * sizeof(void (*)(void)), "api_names matches struct api");

/* The functions the program is linked with: the inherited gRPC. */
static void api_linked(struct api *a)
{
	*a = (struct api){
		grpc_init, grpc_shutdown, grpc_insecure_credentials_create, grpc_channel_credentials_release,
		grpc_channel_create, grpc_channel_destroy, grpc_completion_queue_create_for_next,
		grpc_completion_queue_next, grpc_completion_queue_shutdown, grpc_completion_queue_destroy,
		grpc_channel_create_call, grpc_call_start_batch, grpc_call_unref,
		grpc_slice_from_static_string, grpc_slice_from_copied_buffer, grpc_slice_unref,
		grpc_empty_slice, grpc_slice_to_c_string, grpc_raw_byte_buffer_create,
		grpc_byte_buffer_destroy, grpc_byte_buffer_reader_init, grpc_byte_buffer_reader_readall,
		grpc_byte_buffer_reader_destroy, grpc_metadata_array_init, grpc_metadata_array_destroy,
		gpr_now, gpr_time_add, gpr_time_from_millis, gpr_free,
	};
}

/* The copy's functions, each checked to lie in the new set and not in the
 * set copied from. Returns 0 if any is missing. */
static int api_from_copy(struct api *a, const struct fs_copyset *cs)
{
	void (**slot)(void) = (void (**)(void))a;
	int missing = 0, outside = 0;

	for (size_t i = 0; i < API_N; i++) {
		void *p = fs_copyset_sym(cs, api_names[i]);

		if (p == NULL) {
			check(0, "dlsym %s in generation %u: %s", api_names[i], cs->gen, dlerror());
			missing++;
			continue;
		}
		memcpy(&slot[i], &p, sizeof(p));
		if (!fs_copyset_in_new(cs, p) || fs_copyset_in_old(cs, p)) {
			check(0, "%s at %p lies in the new set (%d) and not the old (%d)", api_names[i], p,
			      fs_copyset_in_new(cs, p), fs_copyset_in_old(cs, p));
			outside++;
		}
	}
	check(missing == 0 && outside == 0, "%zu C API functions found in generation %u, all in its copies",
	      API_N - (size_t)missing, cs->gen);
	return missing == 0;
}

/* --- connections ---------------------------------------------------------------- */

static int port_of(const char *address)
{
	const char *colon = strrchr(address, ':');
	return colon == NULL ? -1 : atoi(colon + 1);
}

static int contains(const int *ports, int n, int port)
{
	for (int i = 0; i < n; i++)
		if (ports[i] == port)
			return 1;
	return 0;
}

/* The local ports of this process's ESTABLISHED TCP connections to
 * remote_port: socket inodes from /proc/self/fd, matched in /proc/self/net. */
static int own_connections(int remote_port, int *ports, int max)
{
	unsigned long inodes[512];
	int n_inodes = 0, n = 0;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	while (dir != NULL && (e = readdir(dir)) != NULL && n_inodes < 512) {
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
	static const char *const tables[] = { "/proc/self/net/tcp", "/proc/self/net/tcp6" };
	for (size_t t = 0; t < 2; t++) {
		FILE *f = fopen(tables[t], "r");
		char line[512];

		if (f == NULL)
			continue;
		while (fgets(line, sizeof line, f) != NULL) {
			char local[64], remote[64];
			unsigned st;
			unsigned long inode;
			const char *lp, *rp;

			if (sscanf(line, "%*s %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st, &inode) != 4 ||
			    st != 1 /* ESTABLISHED */)
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

/* --- the messages, encoded by hand ---------------------------------------------- */

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

struct reply {
	char peer[128], tag[256];
	int64_t seq;
};

/* SayReply: peer (2), tag (3), seq (5); the rest skipped. */
static int parse_reply(const uint8_t *p, size_t size, struct reply *r)
{
	const uint8_t *end = p + size;
	uint64_t key, v;

	memset(r, 0, sizeof(*r));
	while (p < end) {
		if (!get_varint(&p, end, &key))
			return 0;
		if ((key & 7) == 0) {
			if (!get_varint(&p, end, &v))
				return 0;
			if ((key >> 3) == 5)
				r->seq = (int64_t)v;
		} else if ((key & 7) == 2) {
			if (!get_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return 0;
			char *dst = (key >> 3) == 2 ? r->peer : (key >> 3) == 3 ? r->tag : NULL;
			size_t dst_size = (key >> 3) == 2 ? sizeof(r->peer) : sizeof(r->tag);
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

static gpr_timespec in_ms(const struct api *a, int ms)
{
	return a->time_add(a->now(GPR_CLOCK_MONOTONIC), a->time_from_millis(ms, GPR_TIMESPAN));
}

/* Waits on cq for tag until the deadline plus a margin; a hang ends the
 * process (a call with a pending batch cannot be released). */
static grpc_event wait_for(const struct api *a, grpc_completion_queue *cq, void *tag, int ms, const char *what)
{
	for (;;) {
		grpc_event ev = a->cq_next(cq, in_ms(a, ms + 3000), NULL);

		if (ev.type == GRPC_OP_COMPLETE && ev.tag == tag)
			return ev;
		if (ev.type != GRPC_OP_COMPLETE) {
			printf("%s pid=%d FAIL %s: no completion 3 s after the deadline (hang)\n", role, (int)getpid(),
			       what);
			fflush(stdout);
			_exit(3);
		}
	}
}

static grpc_byte_buffer *request(const struct api *a, const char *full_tag, int count, int interval)
{
	uint8_t req[600];
	size_t len = 0;

	req[len++] = 1 << 3 | 0; /* pid */
	len += put_varint(req + len, (uint64_t)getpid());
	len += put_bytes(req + len, 2, full_tag);
	if (count > 0) { /* CountRequest: count (3), interval_ms (4) */
		req[len++] = 3 << 3 | 0;
		len += put_varint(req + len, (uint64_t)count);
		req[len++] = 4 << 3 | 0;
		len += put_varint(req + len, (uint64_t)interval);
	} else {
		len += put_bytes(req + len, 3, full_tag); /* SayRequest payload */
	}
	grpc_slice s = a->slice_from_copied_buffer((const char *)req, len);
	grpc_byte_buffer *bb = a->raw_byte_buffer_create(&s, 1);
	a->slice_unref(s);
	return bb;
}

static int read_reply(const struct api *a, grpc_byte_buffer *bb, struct reply *r)
{
	grpc_byte_buffer_reader reader;
	grpc_slice all;
	int ok;

	if (!a->reader_init(&reader, bb))
		return 0;
	all = a->reader_readall(&reader);
	a->reader_destroy(&reader);
	ok = parse_reply(GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), r);
	a->slice_unref(all);
	return ok;
}

/* One Say call tagged "<run>:<name>"; the port of its peer, or -1. */
static int say(const struct api *a, grpc_channel *ch, grpc_completion_queue *cq, const char *name)
{
	char full_tag[256];
	struct reply r;
	int port = -1, tag;

	snprintf(full_tag, sizeof full_tag, "%s:%s", run_id, name);
	grpc_call *call = a->channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
						 a->slice_from_static_string("/forksafe.echo.Echo/Say"), NULL,
						 in_ms(a, deadline_ms), NULL);
	grpc_byte_buffer *send = request(a, full_tag, 0, 0), *recv = NULL;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = a->empty_slice();
	grpc_op ops[6];

	a->metadata_array_init(&initial_md);
	a->metadata_array_init(&trailing_md);
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

	grpc_call_error err = a->call_start_batch(call, ops, 6, &tag, NULL);
	if (err != GRPC_CALL_OK) {
		check(0, "%s: grpc_call_start_batch: error %d", full_tag, (int)err);
	} else {
		wait_for(a, cq, &tag, deadline_ms, full_tag);
		if (status != GRPC_STATUS_OK || recv == NULL) {
			char *msg = a->slice_to_c_string(details);
			check(0, "%s: status %d \"%s\"", full_tag, (int)status, msg);
			a->free(msg);
		} else if (!read_reply(a, recv, &r) || strcmp(r.tag, full_tag) != 0) {
			check(0, "%s: a reply for another call (tag %s)", full_tag, r.tag);
		} else {
			check(1, "%s peer=%s", full_tag, r.peer);
			port = port_of(r.peer);
		}
	}
	a->byte_buffer_destroy(send);
	if (recv != NULL)
		a->byte_buffer_destroy(recv);
	a->metadata_array_destroy(&initial_md);
	a->metadata_array_destroy(&trailing_md);
	a->slice_unref(details);
	a->call_unref(call);
	return port;
}

static void drain(const struct api *a, grpc_completion_queue *cq)
{
	a->cq_shutdown(cq);
	for (;;) {
		grpc_event ev = a->cq_next(cq, in_ms(a, 5000), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_QUEUE_TIMEOUT) {
			check(0, "completion queue drained within 5 s of its shutdown");
			return;
		}
	}
	a->cq_destroy(cq);
}

/* --- the parent's stream --------------------------------------------------------- */

static struct api linked;
static grpc_channel *parent_channel;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int first_reply_seen, stream_replies, stream_ok;
static char stream_problem[256];
/* What the stream's thread holds lives here, not on its stack: a forked
 * child has no copy of that thread, and memcheck would call memory only its
 * stack pointed to lost in the child. */
static struct {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *send;
	grpc_metadata_array initial_md, trailing_md;
	grpc_slice details;
} st;

static void *stream_thread(void *arg)
{
	const struct api *a = &linked;
	char full_tag[128];
	int total = STREAM_REPLIES * interval_ms + deadline_ms, tag;
	int64_t last_seq = 0;
	int in_order = 1;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_op ops[4];

	snprintf(full_tag, sizeof full_tag, "%s:parent-stream", run_id);
	st.cq = a->cq_create_for_next(NULL);
	grpc_completion_queue *cq = st.cq;
	st.call = a->channel_create_call(parent_channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
					 a->slice_from_static_string("/forksafe.echo.Echo/Count"), NULL,
					 in_ms(a, total), NULL);
	grpc_call *call = st.call;
	st.send = request(a, full_tag, STREAM_REPLIES, interval_ms);
	st.details = a->empty_slice();

	a->metadata_array_init(&st.initial_md);
	a->metadata_array_init(&st.trailing_md);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = st.send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &st.initial_md;
	if (a->call_start_batch(call, ops, 4, &tag, NULL) != GRPC_CALL_OK)
		snprintf(stream_problem, sizeof stream_problem, "the stream's first batch was refused");
	else
		wait_for(a, cq, &tag, total, full_tag);

	for (int i = 0; stream_problem[0] == '\0'; i++) {
		grpc_byte_buffer *recv = NULL;
		struct reply r;

		memset(ops, 0, sizeof ops);
		ops[0].op = GRPC_OP_RECV_MESSAGE;
		ops[0].data.recv_message.recv_message = &recv;
		if (a->call_start_batch(call, ops, 1, &tag, NULL) != GRPC_CALL_OK) {
			snprintf(stream_problem, sizeof stream_problem, "a read batch was refused");
			break;
		}
		wait_for(a, cq, &tag, total, full_tag);
		if (recv == NULL)
			break; /* the end of the stream */
		if (!read_reply(a, recv, &r) || strcmp(r.tag, full_tag) != 0)
			snprintf(stream_problem, sizeof stream_problem, "reply %d unreadable or for another call", i);
		in_order &= r.seq > last_seq;
		last_seq = r.seq;
		a->byte_buffer_destroy(recv);
		pthread_mutex_lock(&mu);
		stream_replies++;
		first_reply_seen = 1;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &st.trailing_md;
	ops[0].data.recv_status_on_client.status = &status;
	ops[0].data.recv_status_on_client.status_details = &st.details;
	if (a->call_start_batch(call, ops, 1, &tag, NULL) == GRPC_CALL_OK)
		wait_for(a, cq, &tag, total, full_tag);
	if (!in_order && stream_problem[0] == '\0')
		snprintf(stream_problem, sizeof stream_problem, "replies out of order");
	stream_ok = status == GRPC_STATUS_OK && stream_problem[0] == '\0';
	if (status != GRPC_STATUS_OK && stream_problem[0] == '\0') {
		char *msg = a->slice_to_c_string(st.details);
		snprintf(stream_problem, sizeof stream_problem, "status %d \"%s\"", (int)status, msg);
		a->free(msg);
	}
	a->byte_buffer_destroy(st.send);
	a->metadata_array_destroy(&st.initial_md);
	a->metadata_array_destroy(&st.trailing_md);
	a->slice_unref(st.details);
	a->call_unref(call);
	drain(a, cq);
	pthread_mutex_lock(&mu);
	first_reply_seen = 1; /* also when it failed: the parent must not wait forever */
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return arg;
}

/* --- child and grandchild ----------------------------------------------------------- */

/* Generation gen, in a process forked with other processes' connections in
 * others[]: loads the copies, makes a Say call through them on a connection
 * of its own. Forks the next generation first if gen < last. Exits. */
static void fresh_generation(unsigned gen, unsigned last, int *others, int n_others) __attribute__((noreturn));
static void fresh_generation(unsigned gen, unsigned last, int *others, int n_others)
{
	char err[512], name[32], buf1[256], buf2[256];
	struct fs_copyset_opts opts = { .cache_dir = cache_dir };
	struct fs_copyset *cs;
	struct api a;
	int mine[MAX_PORTS], n_mine, port, server_port = port_of(target), status = 0;
	void *inherited_init = dlsym(RTLD_DEFAULT, "grpc_init");

	role = gen == 1 ? "child" : "grandchild";
	failures = 0;
	cs = fs_copyset_load(gen, &opts, err, sizeof err);
	check(cs != NULL, "fs_copyset_load(%u): %s", gen, cs != NULL ? "loaded" : err);
	if (cs == NULL)
		goto out;
	printf("TIMING %s gen=%u %s closure_ms=%.2f build_ms=%.2f load_ms=%.2f members=%zu from_gen=%u\n", role,
	       cs->gen, cs->built ? "built" : "reused", cs->closure_ms, cs->build_ms, cs->load_ms, cs->nmembers,
	       cs->from_gen);
	check(cs->from_gen == gen - 1, "generation %u copied from generation %u", gen, cs->from_gen);
	if (grpcxx) {
		void *version = fs_copyset_sym(cs, "_ZN4grpc7VersionB5cxx11Ev"); /* grpc::Version() */

		check(cs->grpc != NULL && cs->grpcxx != NULL, "copies of libgrpc and of libgrpc++ (%zu libraries)",
		      cs->nmembers);
		check(version != NULL && fs_copyset_in_new(cs, version) && !fs_copyset_in_old(cs, version),
		      "grpc::Version() of the copy lies in the new set only");
	} else {
		check(cs->grpc != NULL && cs->grpcxx == NULL,
		      "a copy of libgrpc, none of libgrpc++ (the program has none)");
	}
	if (gen == 1)
		check(fs_copyset_in_old(cs, inherited_init) && !fs_copyset_in_new(cs, inherited_init),
		      "the inherited grpc_init lies in the old set only");
	if (!api_from_copy(&a, cs))
		goto out;
	check((void *)a.init != inherited_init, "the copy's grpc_init is not the inherited one");

	struct timespec s0, s1;
	clock_gettime(CLOCK_MONOTONIC, &s0);
	a.init();
	grpc_channel_credentials *creds = a.insecure_credentials_create();
	grpc_channel *ch = a.channel_create(target, creds, NULL);
	a.channel_credentials_release(creds);
	grpc_completion_queue *cq = a.cq_create_for_next(NULL);
	snprintf(name, sizeof name, "gen%u-say", gen);
	port = say(&a, ch, cq, name);
	clock_gettime(CLOCK_MONOTONIC, &s1);
	printf("TIMING %s gen=%u grpc_init+first_rpc_ms=%.2f\n", role, gen,
	       (double)(s1.tv_sec - s0.tv_sec) * 1e3 + (double)(s1.tv_nsec - s0.tv_nsec) / 1e6);

	n_mine = own_connections(server_port, mine, MAX_PORTS);
	check(port > 0 && contains(mine, n_mine, port) && !contains(others, n_others, port),
	      "the call's peer port %d is a connection of this process %s, not an ancestor's %s", port,
	      port_list(mine, n_mine, buf1, sizeof buf1), port_list(others, n_others, buf2, sizeof buf2));

	if (gen < last) {
		int all[MAX_PORTS * 2], n_all = 0;

		for (int i = 0; i < n_others; i++)
			all[n_all++] = others[i];
		if (port > 0)
			all[n_all++] = port;
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0)
			fresh_generation(gen + 1, last, all, n_all);
		check(pid > 0, "fork of generation %u", gen + 1);
		while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		check(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "generation %u's process exited %d (status 0x%x)", gen + 1,
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1, status);
		/* The copy still works after the fork. */
		snprintf(name, sizeof name, "gen%u-say-again", gen);
		port = say(&a, ch, cq, name);
		check(port > 0, "generation %u calls again after its child's run", gen);
	}
	a.channel_destroy(ch);
	drain(&a, cq);
	a.shutdown();
out:
	fs_copyset_free(cs);
	printf("%s pid=%d generation %u done; %d failed checks\n", role, (int)getpid(), gen, failures);
	fflush(stdout);
	exit(failures == 0 ? 0 : 1);
}

/* One of --siblings children: waits for the parent's go (the pipe's end of
 * file), then loads generation 1 and calls through it. Exits. */
static void sibling(int k, int go, const int *parent_ports, int n_parent)
{
	char err[512], name[32], buf[256];
	struct fs_copyset_opts opts = { .cache_dir = cache_dir };
	struct fs_copyset *cs;
	struct api a;
	int mine[MAX_PORTS], n_mine, port;

	role = "sibling";
	failures = 0;
	(void)!read(go, buf, 1);
	close(go);
	cs = fs_copyset_load(1, &opts, err, sizeof err);
	check(cs != NULL, "fs_copyset_load(1): %s", cs != NULL ? "loaded" : err);
	if (cs == NULL || !api_from_copy(&a, cs))
		goto out;
	printf("TIMING sibling gen=1 %s%s closure_ms=%.2f build_ms=%.2f load_ms=%.2f members=%zu from_gen=%u\n",
	       cs->built ? "built" : "reused", cs->lost_race ? " lost-race" : "", cs->closure_ms, cs->build_ms,
	       cs->load_ms, cs->nmembers, cs->from_gen);
	a.init();
	grpc_channel_credentials *creds = a.insecure_credentials_create();
	grpc_channel *ch = a.channel_create(target, creds, NULL);
	a.channel_credentials_release(creds);
	grpc_completion_queue *cq = a.cq_create_for_next(NULL);
	snprintf(name, sizeof name, "sibling-%d", k);
	port = say(&a, ch, cq, name);
	n_mine = own_connections(port_of(target), mine, MAX_PORTS);
	check(port > 0 && contains(mine, n_mine, port) && !contains(parent_ports, n_parent, port),
	      "the call's peer port %d is a connection of this process, not the parent's %s", port,
	      port_list(parent_ports, n_parent, buf, sizeof buf));
	a.channel_destroy(ch);
	drain(&a, cq);
	a.shutdown();
out:
	fs_copyset_free(cs);
	fflush(stdout);
	exit(failures == 0 ? 0 : 1);
}

static void run_siblings(const int *parent_ports, int n_parent)
{
	pid_t pids[64];
	int go[2], status;

	if (pipe(go) != 0) {
		check(0, "pipe: %s", strerror(errno));
		return;
	}
	fflush(stdout);
	for (int k = 0; k < siblings; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			close(go[1]);
			sibling(k, go[0], parent_ports, n_parent);
		}
		check(pids[k] > 0, "fork of sibling %d", k);
	}
	close(go[0]);
	close(go[1]); /* go */
	for (int k = 0; k < siblings; k++) {
		status = 0;
		while (pids[k] > 0 && waitpid(pids[k], &status, 0) < 0 && errno == EINTR)
			;
		check(pids[k] > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "sibling %d exited %d (status 0x%x)", k, WIFEXITED(status) ? WEXITSTATUS(status) : -1, status);
	}
}

/* --- the parent --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	int parent_ports[MAX_PORTS], n_parent, port, status = 0;
	char buf[256];
	pthread_t stream;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--target") == 0) target = argv[i + 1];
		else if (strcmp(argv[i], "--cache") == 0) cache_dir = argv[i + 1];
		else if (strcmp(argv[i], "--run") == 0) run_id = argv[i + 1];
		else if (strcmp(argv[i], "--deadline-ms") == 0) deadline_ms = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--interval-ms") == 0) interval_ms = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--siblings") == 0) siblings = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--grpcxx") == 0) grpcxx = atoi(argv[i + 1]);
		else target = NULL;
	}
	if (argc % 2 != 1 || target == NULL || cache_dir == NULL || deadline_ms <= 0 || interval_ms <= 0 ||
	    siblings < 0 || siblings > 64) {
		fprintf(stderr, "usage: fresh-c --target HOST:PORT --cache DIR [--run ID] [--deadline-ms N] "
				"[--interval-ms N] [--siblings N] [--grpcxx 1]\n");
		return 2;
	}

	if (grpcxx && dlopen("libgrpc++.so.1.51", RTLD_NOW) == NULL) {
		fprintf(stderr, "cannot load libgrpc++: %s\n", dlerror());
		return 2;
	}
	api_linked(&linked);
	linked.init();
	grpc_channel_credentials *creds = linked.insecure_credentials_create();
	parent_channel = linked.channel_create(target, creds, NULL);
	linked.channel_credentials_release(creds);
	grpc_completion_queue *cq = linked.cq_create_for_next(NULL);

	port = say(&linked, parent_channel, cq, "parent-before");
	n_parent = own_connections(port_of(target), parent_ports, MAX_PORTS);
	check(port > 0 && contains(parent_ports, n_parent, port), "the parent's call used its connection %s",
	      port_list(parent_ports, n_parent, buf, sizeof buf));

	if (siblings > 0) {
		run_siblings(parent_ports, n_parent);
		goto done;
	}
	pthread_create(&stream, NULL, stream_thread, NULL);
	pthread_mutex_lock(&mu);
	while (!first_reply_seen)
		pthread_cond_wait(&cv, &mu);
	int seen = stream_replies;
	pthread_mutex_unlock(&mu);
	check(seen == 1, "the stream's first reply came; the next is %d ms away", interval_ms);

	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0)
		fresh_generation(1, 2, parent_ports, n_parent);
	check(pid > 0, "fork: %s", pid > 0 ? "forked" : strerror(errno));

	pthread_join(stream, NULL);
	check(stream_ok && stream_replies == STREAM_REPLIES, "the parent's stream delivered %d of %d replies%s%s",
	      stream_replies, STREAM_REPLIES, stream_problem[0] ? ": " : "", stream_problem);
	port = say(&linked, parent_channel, cq, "parent-after");
	check(port > 0 && contains(parent_ports, n_parent, port), "the parent's next call used its connection %s",
	      port_list(parent_ports, n_parent, buf, sizeof buf));

	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	check(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child exited %d (status 0x%x)",
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1, status);
done:

	linked.channel_destroy(parent_channel);
	drain(&linked, cq);
	linked.shutdown();
	printf(failures == 0 ? "RESULT pid=%d fresh: ok\n" : "RESULT pid=%d fresh: FAIL (%d failed checks)\n",
	       (int)getpid(), failures);
	return failures == 0 ? 0 : 1;
}
