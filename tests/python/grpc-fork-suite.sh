#!/bin/bash
# gRPC's own Python fork tests (src/python/grpcio_tests/tests/fork/ of gRPC
# 1.51.1, Debian's grpc source package) against the shim, with Debian's
# python3-grpcio.
#
# The suite is fetched once into the cache directory (Debian's source package
# through apt-get, only the files it needs extracted, its protos compiled with
# protoc and grpc_python_plugin); nothing of gRPC's is in this repository.
# gRPC's interop test server runs without the shim; each scenario is one run
# of gRPC's tests/fork/client.py --test_case NAME (what `setup.py run_fork`
# runs), under timeout(1): a hang is a failure.
#
#   default mode   (LD_PRELOAD=SO) every scenario passes as written, except
#                  the five whose child calls on the channel it inherited
#                  (the four *_same_channel ones and
#                  in_progress_bidi_continue_call): grpcio 1.51 promises a
#                  ValueError there, the shim a call that works. They run as
#                  grpc_fork_suite.py inherited: gRPC's same steps, with its
#                  own helpers, asserting that the child's call succeeds (and
#                  that the stream it inherited in progress ends CANCELLED,
#                  "Channel closed due to fork", as grpcio ends it).
#   close mode     (GRPC_FORKSAFE_MODE=close) every scenario passes as written.
#
# Usage: grpc-fork-suite.sh --shim SO --out DIR [--cache DIR] [--survey RUNS]
#   --cache   where the suite is fetched to and kept (default: build/grpc-fork-suite)
#   --survey  instead of judging, runs every scenario RUNS times as written
#             under stock grpcio, stock with GRPC_ENABLE_FORK_SUPPORT=1 (also
#             with GRPC_DNS_RESOLVER=native, which the shim sets), the shim's
#             default and close mode, and the five inherited checks under the
#             shim's default; prints a table of passes, and each run in
#             survey.log
# Environment: PYTHON (/usr/bin/python3, the interpreter Debian's
# python3-grpcio is installed for); SETTINGS, for --survey: some of stock
# fork-support fork-native shim shim-close shim-check (default: all). Fetching needs root (apt-get) and
# Debian's mirrors; without them the script says which commands to run.
# Prints "PASS name" or "FAIL name: reason" per check, then a summary.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/scripts/verdicts.sh"

usage() { echo "usage: grpc-fork-suite.sh --shim SO --out DIR [--cache DIR] [--survey RUNS]" >&2; exit 2; }
SHIM='' OUT='' CACHE=$ROOT/build/grpc-fork-suite SURVEY=''
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case $1 in
	--shim) SHIM=$(realpath "$2") ;;
	--out) OUT=$2 ;;
	--cache) CACHE=$2 ;;
	--survey) SURVEY=$2 ;;
	*) usage ;;
	esac
	shift 2
done
if [ -z "$SHIM" ] || [ -z "$OUT" ]; then usage; fi
case $SURVEY in '' | [1-9] | [1-9][0-9]) ;; *) usage ;; esac
PYTHON=${PYTHON:-/usr/bin/python3}
if ! "$PYTHON" -c 'import grpc' 2>/dev/null; then
	echo "grpc-fork-suite.sh: $PYTHON cannot import grpc; install python3-grpcio" >&2
	exit 2
fi
# The suite's own limit for one scenario (_fork_interop_test.py); the
# slowest takes some 6 s.
LIMIT=30

mkdir -p "$CACHE" || exit 2
CACHE=$(realpath "$CACHE")
SUITE=$CACHE/suite

# --- Fetching the suite: Debian's grpc source package of the installed
# python3-grpcio, through a private apt state (deb-src entries made from the
# system's deb822 entries; the system's own lists and cache are untouched).
fetch_commands() {
	cat <<-EOF
	  mkdir -p $CACHE/apt/sources $CACHE/apt/lists/partial $CACHE/apt/cache $CACHE/download
	  sed 's/^Types: deb\$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >$CACHE/apt/sources/debian-src.sources
	  apt-get $(apt_options) update
	  cd $CACHE/download && apt-get $(apt_options) source --download-only grpc=$SOURCE_VERSION
	EOF
}
apt_options() {
	echo "-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$CACHE/apt/sources" \
		"-o Dir::State::Lists=$CACHE/apt/lists -o Dir::Cache=$CACHE/apt/cache -o APT::Sandbox::User=root"
}

fetch_failed() {
	echo "grpc-fork-suite.sh: cannot fetch gRPC's fork tests: $1" >&2
	[ -z "${2:-}" ] || sed 's/^/  | /' "$2" | tail -n 20 >&2
	echo "grpc-fork-suite.sh: as root, with access to Debian's mirrors, run:" >&2
	fetch_commands >&2
	echo "  then run this script again (it extracts and compiles what it needs from $CACHE/download)" >&2
	exit 2
}

# The files the fork tests import: tests.fork, tests.interop (the server's
# TestService), tests.unit.test_common (the server), and the test protos.
# tests/__init__.py is left out (it imports gRPC's test runner, which needs
# coverage); tests is then a namespace package.
SUITE_FILES="src/python/grpcio_tests/tests/fork src/python/grpcio_tests/tests/interop
	src/python/grpcio_tests/tests/unit/__init__.py src/python/grpcio_tests/tests/unit/test_common.py
	src/proto/grpc/testing/empty.proto src/proto/grpc/testing/messages.proto src/proto/grpc/testing/test.proto"

fetch_suite() {
	local tarball f log=$CACHE/fetch.log
	[ -e "$SUITE/.complete" ] && return 0
	SOURCE_VERSION=$(dpkg-query -W -f='${source:Version}' python3-grpcio 2>/dev/null)
	[ -n "$SOURCE_VERSION" ] || fetch_failed "python3-grpcio is not installed"
	for f in protoc grpc_python_plugin tar; do
		command -v $f >/dev/null || fetch_failed "$f is missing (packages protobuf-compiler, protobuf-compiler-grpc)"
	done
	tarball=$(ls "$CACHE"/download/grpc_"${SOURCE_VERSION%-*}".orig.tar.* 2>/dev/null | head -1)
	if [ -z "$tarball" ]; then
		[ "$(id -u)" = 0 ] || fetch_failed "it needs root (apt-get)"
		[ -r /etc/apt/sources.list.d/debian.sources ] || fetch_failed "no /etc/apt/sources.list.d/debian.sources to make deb-src entries from"
		echo "grpc-fork-suite.sh: fetching Debian's grpc $SOURCE_VERSION source package into $CACHE/download"
		mkdir -p "$CACHE/apt/sources" "$CACHE/apt/lists/partial" "$CACHE/apt/cache" "$CACHE/download"
		sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$CACHE/apt/sources/debian-src.sources"
		# shellcheck disable=SC2046 # the options are words
		apt-get -q $(apt_options) update >"$log" 2>&1 || fetch_failed "apt-get update failed" "$log"
		# shellcheck disable=SC2046
		(cd "$CACHE/download" && apt-get -q $(apt_options) source --download-only "grpc=$SOURCE_VERSION") >>"$log" 2>&1 ||
			fetch_failed "apt-get source failed" "$log"
		tarball=$(ls "$CACHE"/download/grpc_"${SOURCE_VERSION%-*}".orig.tar.* 2>/dev/null | head -1)
		[ -n "$tarball" ] || fetch_failed "apt-get source left no orig tarball" "$log"
		# Only the package's files are kept, not the source lists.
		rm -rf "$CACHE/apt"
	fi
	rm -rf "$SUITE" "$SUITE.tmp"
	mkdir -p "$SUITE.tmp/gen"
	# shellcheck disable=SC2046 # a list of paths
	tar -xf "$tarball" -C "$SUITE.tmp" --strip-components=1 $(for f in $SUITE_FILES; do echo "grpc-${SOURCE_VERSION%-*}/$f"; done) \
		>"$log" 2>&1 || fetch_failed "$tarball does not have the files expected" "$log"
	(cd "$SUITE.tmp" && protoc -I. --python_out=gen --grpc_out=gen \
		--plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" src/proto/grpc/testing/{empty,messages,test}.proto) \
		>"$log" 2>&1 || fetch_failed "protoc failed" "$log"
	echo "$SOURCE_VERSION" >"$SUITE.tmp/.complete"
	mv "$SUITE.tmp" "$SUITE"
}

# Two runs may share the cache: one fetches, the other waits.
exec 9>"$CACHE/.lock"
flock 9
fetch_suite
flock -u 9

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
ulimit -c 0
export PYTHONPATH=$SUITE/gen:$SUITE/src/python/grpcio_tests:$HERE
SCENARIOS=$(cd "$OUT" && "$PYTHON" -c 'from tests.fork import methods; print(*(t.value for t in methods.TestCase))') ||
	{ echo "grpc-fork-suite.sh: the fetched suite cannot be imported (remove $SUITE to fetch it again)" >&2; exit 2; }
# The scenarios whose child calls on its inherited channel, as
# grpc_fork_suite.py knows them.
INHERITED=" async_unary_same_channel blocking_unary_same_channel in_progress_bidi_continue_call "
INHERITED+="in_progress_bidi_same_channel_async_call in_progress_bidi_same_channel_blocking_call "
inherited() { [[ $INHERITED == *" $1 "* ]]; }

# --- The server: gRPC's interop TestService, stock grpcio, never preloaded.
SERVER_PID=''
stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	kill "$SERVER_PID" 2>/dev/null
	wait "$SERVER_PID" 2>/dev/null
	SERVER_PID=''
}
trap stop_server EXIT
trap 'exit 130' INT TERM
(cd "$OUT" && exec env -u LD_PRELOAD -u GRPC_ENABLE_FORK_SUPPORT PYTHONDONTWRITEBYTECODE=1 \
	"$PYTHON" "$HERE/grpc_fork_suite.py" server >"$OUT/server.port" 2>"$OUT/server.err") &
SERVER_PID=$!
for _ in $(seq 100); do
	[ -s "$OUT/server.port" ] && break
	kill -0 $SERVER_PID 2>/dev/null || break
	sleep 0.1
done
PORT=$(head -1 "$OUT/server.port" 2>/dev/null)
if [ -z "$PORT" ]; then
	echo "grpc-fork-suite.sh: gRPC's interop server did not start within 10 s:" >&2
	cat "$OUT/server.err" >&2
	exit 2
fi

# --- One run. run NAME [VAR=VALUE...] -- ARGS...: "$PYTHON" ARGS with that
# environment, in the output directory; output in $OUT/NAME.out (stdout and
# stderr: the suite logs to stderr). Sets STATUS and LEFT (processes of the
# run still there once it ended: they are killed). A hung run gets SIGABRT,
# on which Python prints every thread's traceback (PYTHONFAULTHANDLER).
# timeout(1) puts the run in a process group of its own: the child processes
# the scenario forks are in it too.
run() {
	local name=$1 envs=() pid
	shift
	while [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	mkdir -p "$(dirname "$OUT/$name")"
	(cd "$OUT" && exec timeout -s ABRT -k 5 $LIMIT env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_EMBEDDED \
		-u GRPC_FORKSAFE_LOG -u GRPC_FORKSAFE_LOG_FILE -u GRPC_ENABLE_FORK_SUPPORT -u GRPC_DNS_RESOLVER \
		-u GRPC_POLL_STRATEGY PYTHONDONTWRITEBYTECODE=1 PYTHONFAULTHANDLER=1 "${envs[@]}" "$PYTHON" "$@" \
		</dev/null >"$OUT/$name.out" 2>&1) &
	pid=$!
	wait $pid
	STATUS=$?
	LEFT=$(pgrep -g $pid | wc -l)
	if [ "$LEFT" -gt 0 ]; then
		kill -KILL -- -$pid 2>/dev/null
		echo "grpc-fork-suite.sh: $LEFT process(es) of the run were left; killed" >>"$OUT/$name.out"
	fi
}
client() { echo -m tests.fork.client --server_host localhost --server_port "$PORT" --test_case "$1"; }
check() { echo "$HERE/grpc_fork_suite.py" inherited --server_host localhost --server_port "$PORT" --test_case "$1"; }

describe_status() {
	if [ "$STATUS" = 124 ] || [ "$STATUS" = 137 ]; then echo "hung (stopped after $LIMIT s)"
	elif [ "$STATUS" -gt 128 ]; then echo "killed by signal $((STATUS - 128))"
	else echo "exit status $STATUS"
	fi
}
# why NAME: the error that ended a failed run, in a line.
why() {
	local out=$OUT/$1.out line
	line=$(grep -E '^[A-Za-z_.]*(Error|Exception): ' "$out" | tail -1 | cut -c1-300)
	echo "$(describe_status)${line:+: $line}"
}
left_note() { [ "$LEFT" = 0 ] || echo "; $LEFT process(es) left behind"; }

# fork_hang NAME: the run hung inside os.fork() itself, in C (the top frame
# of a thread is multiprocessing's os.fork() call): gRPC core's prefork
# handler now and then waits there for its executor thread, which waits for
# the fork, with or without the shim (see tests/python/run.sh, check a).
fork_hang() {
	[ "$STATUS" = 124 ] || [ "$STATUS" = 137 ] || return 1
	grep -A1 -E '^(Current thread|Thread) 0x' "$OUT/$1.out" |
		grep -q "popen_fork.py\", line $FORK_LINE in _launch\$"
}
FORK_LINE=$(grep -n '= os.fork()' "$("$PYTHON" -c 'import multiprocessing.popen_fork as p; print(p.__file__)')" | cut -d: -f1)

# judge NAME WHAT [VAR=VALUE...] -- ARGS...: one check. A run that hung
# inside os.fork() is made again, twice at most, and the PASS line says so.
judge() {
	local name=$1 what=$2 again=0
	shift 2
	run "$name" "$@"
	while fork_hang "$name" && [ $again -lt 2 ]; do
		again=$((again + 1))
		mv "$OUT/$name.out" "$OUT/$name.fork-hang-$again.out"
		run "$name" "$@"
	done
	if [ "$STATUS" = 0 ] && [ "$LEFT" = 0 ]; then
		pass "$name: $what$([ $again = 0 ] || echo "; $again run(s) before hung inside os.fork()")"
	else
		fail "$name" "$(why "$name")$(left_note)$([ $again = 0 ] || echo "; $again run(s) before hung inside os.fork() too")" \
			"$OUT/$name.out"
	fi
}

if [ -z "$SURVEY" ]; then
	for tc in $INHERITED; do
		[[ " $SCENARIOS " == *" $tc "* ]] || fail "default/$tc" "gRPC's suite has no such scenario: grpc_fork_suite.py does not match it"
	done
	for tc in $SCENARIOS; do
		if inherited "$tc"; then
			what="the child's call on its inherited channel succeeds"
			[ "$tc" != in_progress_bidi_continue_call ] || what+="; the stream it inherited ends CANCELLED, as grpcio ends it"
			# shellcheck disable=SC2046 # the command's words
			judge "default/$tc" "$what" LD_PRELOAD="$SHIM" -- $(check "$tc")
		else
			# shellcheck disable=SC2046
			judge "default/$tc" "passes as written" LD_PRELOAD="$SHIM" -- $(client "$tc")
		fi
	done
	for tc in $SCENARIOS; do
		# shellcheck disable=SC2046
		judge "close/$tc" "passes as written" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_MODE=close -- $(client "$tc")
	done
	summary grpc-fork-suite
	exit
fi

# --- The survey: passes per scenario and setting, out of SURVEY runs.
ALL_SETTINGS="stock fork-support fork-native shim shim-close shim-check"
SETTINGS=${SETTINGS:-$ALL_SETTINGS}
for s in $SETTINGS; do
	[[ " $ALL_SETTINGS " == *" $s "* ]] || { echo "grpc-fork-suite.sh: unknown setting $s ($ALL_SETTINGS)" >&2; exit 2; }
done
setting_env() {
	case $1 in
	stock) ;;
	fork-support) echo GRPC_ENABLE_FORK_SUPPORT=1 ;;
	fork-native) echo GRPC_ENABLE_FORK_SUPPORT=1 GRPC_DNS_RESOLVER=native ;;
	shim | shim-check) echo LD_PRELOAD="$SHIM" ;;
	shim-close) echo LD_PRELOAD="$SHIM" GRPC_FORKSAFE_MODE=close ;;
	esac
}
declare -A PASSES
printf '%s\n' "$SETTINGS" >"$OUT/survey.settings"
for tc in $SCENARIOS; do
	for s in $SETTINGS; do
		[ "$s" != shim-check ] || inherited "$tc" || continue
		PASSES[$tc/$s]=0
		for i in $(seq "$SURVEY"); do
			start=$(date +%s%N)
			if [ "$s" = shim-check ]; then
				# shellcheck disable=SC2046
				run "survey/$s/$tc-$i" $(setting_env "$s") -- $(check "$tc")
			else
				# shellcheck disable=SC2046
				run "survey/$s/$tc-$i" $(setting_env "$s") -- $(client "$tc")
			fi
			ms=$((($(date +%s%N) - start) / 1000000))
			[ "$STATUS" = 0 ] && [ "$LEFT" = 0 ] && PASSES[$tc/$s]=$((PASSES[$tc/$s] + 1))
			echo "$s $tc run $i: $([ "$STATUS" = 0 ] && echo pass || echo "FAIL $(why "survey/$s/$tc-$i")")$(left_note), $ms ms" |
				tee -a "$OUT/survey.log"
		done
	done
done
echo
printf '%-44s' scenario
for s in $SETTINGS; do printf ' %12s' "$s"; done
echo
for tc in $SCENARIOS; do
	printf '%-44s' "$tc"
	for s in $SETTINGS; do
		if [ -n "${PASSES[$tc/$s]+x}" ]; then printf ' %12s' "${PASSES[$tc/$s]}/$SURVEY"; else printf ' %12s' -; fi
	done
	echo
done
