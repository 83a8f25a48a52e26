# Sourced by the set-up scripts. `retry CMD ARGS…` runs a download-and-install command up to
# RETRY_ATTEMPTS times (default 3), waiting RETRY_DELAY s (default 10), then twice that, between tries:
# a registry that drops one connection mid-download (pip, npm and apt only retry the connection, not a torn
# transfer) should not fail a fresh set-up. The command's own error output is kept; the last failure's exit
# status is returned. test/unit/scripts.test.ts covers it.
retry() {
  local attempts=${RETRY_ATTEMPTS:-3} delay=${RETRY_DELAY:-10} n=1 rc
  while true; do
    "$@" && return 0
    rc=$?
    if (( n >= attempts )); then
      echo "retry: '$1 ${2-}' failed $n times (exit $rc); giving up" >&2
      return "$rc"
    fi
    echo "retry: '$1 ${2-}' failed (exit $rc), try $((n + 1)) of $attempts in $((delay * n)) s" >&2
    sleep $((delay * n))
    n=$((n + 1))
  done
}
