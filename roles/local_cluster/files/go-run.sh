# shellcheck shell=bash
# Sourced by the build scripts: run a go command, turning a refused download into one clear line.
#
# The Go module proxy here has gaps: some versions answer "403 ... not available". That is the
# proxy's gap, not a bug of ours: name the module and version on one line and stop.

proxy_refusal() {  # proxy_refusal LOG: print the one-line reason when LOG shows a refused download
  { grep -oE '[a-zA-Z0-9./_-]+@v[0-9][^: ]*: (reading|verifying|downloading) .*(403|404|410)' "$1" || true; } |
    head -n1 |
    sed -E 's/^([^:]+): .*/Go module proxy refused \1 (not available); pin a version whose modules all download/'
}

run() {  # run CMD...: on failure print its output, then the reason as the last line, and exit 1
  local log msg
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    msg=$(proxy_refusal "$log")
    cat "$log" >&2
    rm -f "$log"
    echo "${msg:-${GO_RUN_WHAT:-go} failed: $*}" >&2
    exit 1
  fi
  rm -f "$log"
}
