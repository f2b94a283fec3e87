#!/usr/bin/env bash
# Build one Go program of a pinned module version from the Go module proxy.
#
# A throwaway wrapper module requires MODULE@VERSION and builds PACKAGE from it. This
# also works for modules whose own go.mod has relative `replace` lines (etcd's server),
# which `go install pkg@version` refuses.
#
# usage: build-go-module.sh MODULE VERSION PACKAGE OUT_FILE WORK_DIR [LDFLAGS]
# env:   GOMODCACHE, GOCACHE (the caller keys them outside the checkout), GOTOOLCHAIN
set -euo pipefail
module=$1 version=$2 package=$3 out=$4 work=$5 ldflags=${6:-}
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}

run() {  # run a go command; a refused download becomes one line naming the module and version
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    msg=$(grep -oE '[a-zA-Z0-9./_-]+@v[0-9][^: ]*: (reading|verifying|downloading)[^\n]*(403|404|410)' "$log" | head -n1 |
      sed -E 's/^([^:]+): .*/Go module proxy refused \1 (not available); pin a version whose modules all download/')
    cat "$log" >&2; rm -f "$log"
    echo "${msg:-building $package from $module@$version failed: $*}" >&2; exit 1
  fi
  rm -f "$log"
}

rm -rf "$work"; mkdir -p "$work" "$(dirname "$out")"; cd "$work"
go mod init example.invalid/build >/dev/null 2>&1
run go get "$module@$version"
run go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$package"
mv "$out.tmp" "$out"
