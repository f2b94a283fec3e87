#!/usr/bin/env bash
# Create (up) or remove (down) the node's network namespace, idempotently.
#
# iproute2 has no Ansible module, so the role runs this script; it prints one
# "changed: ..." line per thing it changed, which the task turns into changed_when.
#
# The node namespace gets a veth pair to the host and a port-less bridge as its default
# route: anything a pod sends to an address that is not ours ends there, so no cluster,
# pod, Service or load-balancer traffic can leave through the machine's interfaces.
#
# The cluster's own ranges (pods, Services) exist only inside the namespace. On the host they get blackhole
# routes: without them the host's default route would send a request to a Service address out through the
# machine's interface.
#
# env: NS HOST_IF NODE_IF HOST_IP NODE_IP LB_POOL CLUSTER_CIDRS (space-separated)
set -euo pipefail
: "${NS:?}" "${HOST_IF:?}" "${NODE_IF:?}" "${HOST_IP:?}" "${NODE_IP:?}" "${LB_POOL:?}" "${CLUSTER_CIDRS:?}"
note() { echo "changed: $*"; }
in_ns() { ip netns exec "$NS" "$@"; }
set_sysctl() {  # set_sysctl KEY VALUE, inside the namespace
  [ "$(in_ns sysctl -n "$1")" = "$2" ] || { in_ns sysctl -qw "$1=$2"; note "sysctl $1=$2"; }
}
link_up() {  # link_up [ip args] DEV
  ip "${@:1:$#-1}" -o link show dev "${!#}" | grep -q '[<,]UP[,>]' || { ip "${@:1:$#-1}" link set dev "${!#}" up; note "link ${!#} up"; }
}

up() {
  [ -e "/run/netns/$NS" ] || { ip netns add "$NS"; note "netns $NS"; }
  if ! ip link show dev "$HOST_IF" >/dev/null 2>&1; then
    ip -n "$NS" link del "$NODE_IF" 2>/dev/null || true
    ip link add "$HOST_IF" type veth peer name "$NODE_IF" netns "$NS"
    note "veth $HOST_IF <-> $NODE_IF"
  fi
  echo 1 > "/proc/sys/net/ipv6/conf/$HOST_IF/disable_ipv6"
  ip -4 -o addr show dev "$HOST_IF" | grep -q " $HOST_IP/30 " || { ip addr add "$HOST_IP/30" dev "$HOST_IF"; note "address $HOST_IP"; }
  link_up "$HOST_IF"

  set_sysctl net.ipv6.conf.all.disable_ipv6 1
  set_sysctl net.ipv6.conf.default.disable_ipv6 1
  link_up -n "$NS" lo
  ip -n "$NS" -4 -o addr show dev "$NODE_IF" | grep -q " $NODE_IP/30 " || { ip -n "$NS" addr add "$NODE_IP/30" dev "$NODE_IF"; note "address $NODE_IP"; }
  link_up -n "$NS" "$NODE_IF"
  # No dummy driver on this kernel kind: a bridge without ports is the null device.
  ip -n "$NS" link show dev nullout >/dev/null 2>&1 || { ip -n "$NS" link add nullout type bridge; note "nullout"; }
  link_up -n "$NS" nullout
  ip -n "$NS" route show default | grep -q 'dev nullout' || { ip -n "$NS" route replace default dev nullout; note "default route to nullout"; }
  set_sysctl net.ipv4.ip_forward 1
  set_sysctl net.bridge.bridge-nf-call-iptables 1

  # The host reaches load-balancer addresses through the node, which DNATs them (kube-proxy).
  ip route show "$LB_POOL" | grep -q "via $NODE_IP" || { ip route replace "$LB_POOL" via "$NODE_IP" dev "$HOST_IF"; note "route $LB_POOL"; }
  local cidr
  for cidr in $CLUSTER_CIDRS; do
    ip route show type blackhole "$cidr" | grep -q . || { ip route replace blackhole "$cidr"; note "blackhole $cidr"; }
  done
}

down() {
  local cidr
  for cidr in $CLUSTER_CIDRS; do
    if ip route show type blackhole "$cidr" | grep -q .; then ip route del blackhole "$cidr"; note "blackhole $cidr"; fi
  done
  if ip route show "$LB_POOL" | grep -q .; then ip route del "$LB_POOL"; note "route $LB_POOL"; fi
  if ip link show dev "$HOST_IF" >/dev/null 2>&1; then ip link del "$HOST_IF"; note "veth $HOST_IF"; fi
  if [ -e "/run/netns/$NS" ]; then ip netns del "$NS"; note "netns $NS"; fi
}

"$1"
