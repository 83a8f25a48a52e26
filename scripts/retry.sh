# Sourced by the set-up scripts. `retry CMD ARGS…` runs a download-and-install command up to
# RETRY_ATTEMPTS times (default 5), waiting RETRY_DELAY s (default 15), then twice, three and four times
# that, between tries (2.5 minutes in all): a registry that drops connections mid-download for a minute
# (pip, npm and apt only retry the connection or resume at once, not after a pause) should not fail a fresh
# set-up. A CI run once lost all three tries of the old 30-second schedule to one outage. The command's own error output is kept; the last failure's exit
# status is returned. test/unit/scripts.test.ts covers it.
retry() {
  local attempts=${RETRY_ATTEMPTS:-5} delay=${RETRY_DELAY:-15} n=1 rc
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
