#!/usr/bin/env bash
# Remove what the node's daemons leave behind once they are stopped: container processes
# (shims and everything in the kubepods cgroups), mounts under the substrate's directories
# (overlays, pod volumes, dead FUSE mounts), and the kubepods cgroups themselves.
# There is no module for any of this. Prints one "changed: ..." line per kind of change.
#
# env: STATE_DIR RUN_DIR CONTAINERD_SOCK
set -uo pipefail
: "${STATE_DIR:?}" "${RUN_DIR:?}" "${CONTAINERD_SOCK:?}"

# Container processes: the node containerd's shims, and whatever runs in a pod cgroup.
pids=$(pgrep -f -- "containerd-shim.*-address $CONTAINERD_SOCK" || true)
for procs in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [ -d "$procs" ] && pids+=" $(find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null)"
done
readarray -t pid_list < <(tr ' ' '\n' <<<"$pids" | grep .)
if [ "${#pid_list[@]}" -gt 0 ]; then
  kill -9 "${pid_list[@]}" 2>/dev/null || true
  echo "changed: killed container processes"
  sleep 0.5
fi

# Mounts, deepest first; lazily, so a dead FUSE mount cannot block us.
mounts=$(awk -v a="$STATE_DIR" -v b="$RUN_DIR" '{ m=$5; gsub(/\\040/, " ", m) }
  index(m, a "/")==1 || m==a || index(m, b "/")==1 || m==b { print length(m) " " m }' /proc/self/mountinfo |
  sort -rn | cut -d' ' -f2- | uniq)
if [ -n "$mounts" ]; then
  while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
  echo "changed: unmounted $(wc -l <<<"$mounts") mounts"
fi

# kubepods cgroups, leaves first (rmdir only removes empty cgroups).
removed=0
for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [ -d "$root" ] || continue
  while IFS= read -r d; do rmdir "$d" 2>/dev/null && removed=1; done < <(find "$root" -depth -type d)
done
[ "$removed" = 1 ] && echo "changed: removed kubepods cgroups"
exit 0
