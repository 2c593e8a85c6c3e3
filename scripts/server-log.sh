# Reading the echo server's call log ("<caller pid> <run>:<tag> <peer>" per
# call), for the test scripts. Source this file (bash), then:
#   check_connections_per_pid RUN [LOG]

# Checks that in run $1 no connection (peer address) carried the calls of
# more than one process (caller pid), whatever their roles: each process,
# through any number of generations, used connections of its own. $2,
# optional: the server log. Prints the problems; silent if none.
check_connections_per_pid() {
  local run=$1 log=${2:-$SERVER_LOG}
  awk -v run="$run" '
    index($2, run ":") == 1 {
      if (!(($3) in owner)) owner[$3] = $1
      else if (owner[$3] != $1 && !(($3, $1) in told)) {
        told[$3, $1] = 1
        printf "connection %s carried calls of pid %s and pid %s; ", $3, owner[$3], $1
      }
    }' "$log"
}
