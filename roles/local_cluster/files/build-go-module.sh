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

# shellcheck source=go-run.sh
source "$(dirname "$0")/go-run.sh"
# shellcheck disable=SC2034  # read by go-run.sh
GO_RUN_WHAT="building $package from $module@$version"

rm -rf "$work"; mkdir -p "$work"; cd "$work"
go mod init example.invalid/build >/dev/null 2>&1
run go get "$module@$version"
mkdir -p "$(dirname "$out")"
run go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$package"
mv "$out.tmp" "$out"
