# Sourced by the set-up scripts. `retry CMD ARGS…` runs a download-and-install command up to
# RETRY_ATTEMPTS times (default 3), waiting 10 s, then 20 s, between tries: a registry that drops one
# connection mid-download (pip, npm and apt only retry the connection, not a torn transfer) should not fail
# a fresh set-up. The command's own error output is kept; the last failure's exit status is returned.
retry() {
  local attempts=${RETRY_ATTEMPTS:-3} n=1 rc
  while true; do
    "$@" && return 0
    rc=$?
    if (( n >= attempts )); then
      echo "retry: '$1 ${2-}' failed $n times (exit $rc); giving up" >&2
      return "$rc"
    fi
    echo "retry: '$1 ${2-}' failed (exit $rc), try $((n + 1)) of $attempts in $((10 * n)) s" >&2
    sleep $((10 * n))
    n=$((n + 1))
  done
}
