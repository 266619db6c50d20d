#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from the Go module proxy and installs
# it where setup-envtest keeps its binaries, so KUBEBUILDER_ASSETS works the same for everyone.
#
# setup-envtest downloads prebuilt binaries, which this project's build machines cannot reach; the
# module proxy can, so we compile the same release from source. Cold: ~6 minutes on 2 cores; warm:
# a no-op. Prints the assets directory on stdout (for KUBEBUILDER_ASSETS=$(hack/envtest.sh)).
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-v3.7.0}"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
ASSETS="${KUBEBUILDER_ASSETS_DIR:-$DATA_HOME/kubebuilder-envtest/k8s/${K8S_VERSION}-$(go env GOOS)-$(go env GOARCH)}"

if [[ -x "$ASSETS/kube-apiserver" && -x "$ASSETS/etcd" ]]; then
  echo "$ASSETS"
  exit 0
fi

staging_minor="0.${K8S_VERSION#1.}"   # 1.37.2 -> 0.37.2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$ASSETS" "$work/apiserver" "$work/etcd"

log() { echo "envtest: $*" >&2; }

# kube-apiserver: k8s.io/kubernetes replaces every staging module with a relative path, which a
# dependent module cannot follow, so pin each one to its published v0.X.Y instead.
log "building kube-apiserver v${K8S_VERSION} (cold builds take several minutes)"
(
  cd "$work/apiserver"
  go mod init envtest.local/apiserver >/dev/null 2>&1
  go mod edit -require="k8s.io/kubernetes@v${K8S_VERSION}"
  gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="${m}=${m}@v${staging_minor}"
  done
  printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
  go mod tidy >&2
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ASSETS/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
)

# etcd: the server module's root package is etcd's main.
log "building etcd ${ETCD_VERSION}"
(
  cd "$work/etcd"
  go mod init envtest.local/etcd >/dev/null 2>&1
  go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go mod tidy >&2
  CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ASSETS/etcd" go.etcd.io/etcd/server/v3
)

log "installed in $ASSETS"
echo "$ASSETS"
