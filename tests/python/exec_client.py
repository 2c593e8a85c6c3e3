"""Exec hygiene, an ordinary grpcio program: with a live channel (one RPC
made), it starts a program through each of the usual ways a Python program
does (subprocess.run with close_fds=False, os.system, os.popen,
os.posix_spawn, os.fork() + os.execv) and reports which descriptors that
program got. Nothing of gRPC's (its sockets, epoll set, eventfd) may reach
it.

The control: before spawning, the parent makes one descriptor inheritable on
purpose (one end of a pipe). It must show up in every program, or the listing
cannot see inherited descriptors at all; except through os.popen, which
closes every descriptor above 2 itself (subprocess with close_fds=True), so
that nothing can reach the program there, the control included.
Descriptors this process already had when it started (from whoever ran it)
are the caller's and are left out.

Usage: exec_client.py TARGET LISTER OUT_DIR
  LISTER is list_fds.py; OUT_DIR gets one listing per way of spawning.
Prints one line per way; exit status 0 if every program got the control
descriptor (where expected) and nothing else beyond 0, 1 and 2; 1 if
something else leaked; 2 if a program did not get the control descriptor.
"""
import os


def open_fds():
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue  # the descriptor os.listdir read the directory with, closed by now
        fds.add(int(name))
    return fds


# Before grpc is imported: what this process was started with.
CALLER_FDS = open_fds()

import shlex
import subprocess
import sys

import grpc

import echo_calls

SPAWN_TIMEOUT_S = 20


def wait_pid(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def spawners(python, lister):
    """Each way of starting LISTER: a function of its OUT_FILE that returns
    its exit status."""
    def argv(out):
        return [python, lister, out]

    def shell(out):
        return " ".join(shlex.quote(a) for a in argv(out))

    def fork_exec(out):
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(python, argv(out))
            finally:
                os._exit(127)
        return wait_pid(pid)

    def popen(out):
        p = os.popen(shell(out))
        p.read()
        status = p.close()  # None for exit status 0, else a wait status
        return 0 if status is None else os.waitstatus_to_exitcode(status)

    # (name, spawn, whether the control descriptor reaches the program)
    return [
        ("subprocess.run(close_fds=False)",
         lambda out: subprocess.run(argv(out), close_fds=False, timeout=SPAWN_TIMEOUT_S).returncode, True),
        ("os.system", lambda out: os.waitstatus_to_exitcode(os.system(shell(out))), True),
        ("os.popen", popen, False),
        ("os.posix_spawn", lambda out: wait_pid(os.posix_spawn(python, argv(out), os.environ)), True),
        ("os.fork+os.execv", fork_exec, True),
    ]


def read_listing(path):
    fds = {}
    with open(path) as f:
        for line in f:
            num, _, target = line.rstrip("\n").partition(" ")
            fds[int(num)] = target
    return fds


def main():
    if len(sys.argv) != 4:
        print("usage: exec_client.py TARGET LISTER OUT_DIR", file=sys.stderr)
        return 2
    target, lister, out_dir = sys.argv[1:]
    channel = grpc.insecure_channel(target)
    if not echo_calls.say(echo_calls.stub(channel), "parent", "RPC before spawning, channel stays open"):
        return 1
    control, control_w = os.pipe()
    os.set_inheritable(control, True)
    ignored = CALLER_FDS - {0, 1, 2}
    if ignored:
        print("descriptors the caller passed in, left out: %s" % " ".join(map(str, sorted(ignored))), flush=True)

    leaked = missing = False
    for name, spawn, control_expected in spawners(sys.executable, lister):
        out = os.path.join(out_dir, "fds-%s.txt" % name.split("(")[0])
        if os.path.exists(out):
            os.unlink(out)
        status = spawn(out)
        if not os.path.exists(out):
            print("%-32s the program wrote no listing (exit status %s)" % (name, status), flush=True)
            missing = True
            continue
        fds = read_listing(out)
        others = {n: t for n, t in fds.items() if n not in (0, 1, 2, control) and n not in ignored}
        if control_expected:
            control_seen = "control fd %d %s" % (control, "inherited" if control in fds else "MISSING")
            missing = missing or control not in fds
        else:
            control_seen = "control fd %d %s" % (control, "closed by it" if control not in fds else "INHERITED")
            leaked = leaked or control in fds
        leaked = leaked or bool(others)
        print("%-32s %s; other fds: %s" % (
            name, control_seen, " ".join("%d=%s" % kv for kv in sorted(others.items())) or "none"), flush=True)
    os.close(control_w)
    return 2 if missing else 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
