#!/usr/bin/env bash
# Build the Kubernetes server binaries of one release from the Go module proxy.
#
# k8s.io/kubernetes is not meant to be a dependency: its go.mod points every staging
# module at ./staging/src/..., which is not in the module zip. So we make a wrapper
# module that requires k8s.io/kubernetes and replaces each staging module with its
# published v0.X.Y twin, taking the list from the release's own go.mod.
#
# usage: build-kubernetes.sh VERSION OUT_DIR WORK_DIR   (e.g. v1.34.12)
# env:   GOMODCACHE, GOCACHE (the caller keys them outside the checkout)
set -euo pipefail
ver=$1 out=$2 work=$3
staging_ver="v0.${ver#v1.}"
components=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local

# shellcheck source=go-run.sh
source "$(dirname "$0")/go-run.sh"
# shellcheck disable=SC2034  # read by go-run.sh
GO_RUN_WHAT="build of kubernetes $ver"

final=$out; out=$out.partial
rm -rf "$work" "$out"; mkdir -p "$work" "$out"; cd "$work"
trap 'rm -rf "$out"' EXIT  # a failed build leaves no half-made output behind
run go mod download -json "k8s.io/kubernetes@$ver"
gomod=$(go mod download -json "k8s.io/kubernetes@$ver" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
goline=$(awk '$1=="go"{print $2; exit}' "$gomod")
godebug=$(awk '$1=="godebug" && $2 ~ /^default=/{print $2; exit}' "$gomod")
mapfile -t staging < <(sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+$#\1#p' "$gomod" | grep -v '/sample-')

go mod init example.invalid/kubernetes-build >/dev/null 2>&1
go mod edit -go="$goline" -require="k8s.io/kubernetes@$ver"
[ -n "$godebug" ] && go mod edit -godebug="$godebug"
for m in "${staging[@]}"; do go mod edit -replace="$m=$m@$staging_ver"; done
printf 'package tools\n\nimport (\n' > tools.go
for c in "${components[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c" >> tools.go; done
printf ')\n' >> tools.go
sed -i '1i //go:build tools\n' tools.go
run go mod tidy -e

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
minor=${ver#v1.}; minor=${minor%%.*}
ld="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ld+=" -X $pkg.gitVersion=$ver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
pkgs=(); for c in "${components[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
run go build -trimpath -tags tools -ldflags "$ld" -o "$out/" "${pkgs[@]}"
# pause.c ships in the module zip; the node's sandbox image is built from it.
src=$(go mod download -json "k8s.io/kubernetes@$ver" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
cp "$src/build/pause/linux/pause.c" "$out/pause.c"
"$out/kube-apiserver" --version
rm -rf "$final"; mv "$out" "$final"
