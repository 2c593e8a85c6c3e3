# Judging the logs of a memcheck run started with --trace-children=yes and
# --log-file=DIR/memcheck.%p, for the test scripts. Source this file (bash),
# then:
#   memcheck_logs_problems DIR   prints what is wrong, silent if nothing:
#                                a process with errors or without a summary
#                                (killed or hung), a definite leak with a
#                                frame of the shim, fewer than two processes
#                                (parent and child)
#   memcheck_logs_evidence DIR [LINES]
#                                the error reports of each such process, for
#                                a failure's log (LINES per process, 80)

# The processes whose log has errors or no summary.
memcheck_logs_bad() {
  local f
  for f in "$1"/memcheck.*; do
    grep -q "ERROR SUMMARY: 0 errors" "$f" || printf ' %s' "${f##*.}"
  done
}

memcheck_logs_problems() {
  local dir=$1 f bad shim_leaks="" n
  bad=$(memcheck_logs_bad "$dir")
  for f in "$dir"/memcheck.*; do
    # A frame of the shim: its object, or (with debug information) one of its sources.
    awk '/definitely lost in loss record/ { inrec = 1 } inrec && /libgrpc_forksafe|\/shim\/[a-z_]+\.c:/ { hit = 1 }
         /^==[0-9]+== $/ { inrec = 0 } END { exit !hit }' "$f" && shim_leaks+=" ${f##*.}"
  done
  [ -z "$bad" ] || printf 'memcheck errors or no summary in process(es)%s; ' "$bad"
  [ -z "$shim_leaks" ] || printf 'definite leak through the shim in process(es)%s; ' "$shim_leaks"
  n=$(find "$dir" -name 'memcheck.*' | wc -l)
  [ "$n" -ge 2 ] || printf 'memcheck logs for %d processes, expected parent and child; ' "$n"
}

memcheck_logs_evidence() {
  local dir=$1 lines=${2:-80} p
  for p in $(memcheck_logs_bad "$dir"); do
    echo "  --- $dir/memcheck.$p (errors)"
    awk '/ERROR SUMMARY|definitely lost in loss record|Invalid|uninitialised|Conditional|Syscall param/ { p = 1 }
         p { print } /^==[0-9]+== $/ { p = 0 }' "$dir/memcheck.$p" | head -n "$lines" | sed 's/^/  | /'
  done
}
