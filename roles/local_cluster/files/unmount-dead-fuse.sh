#!/usr/bin/env bash
# Unmount the FUSE mounts under the substrate's directories whose daemon is gone. A killed node
# (a machine stopped without `local_cluster_state: absent`) leaves them in pods' emptyDir volumes,
# where the kubelet's next volume setup fails on them ("mkdir ...: file exists") and the pod never
# starts again; a rebooted node would have none. Live mounts are left alone. There is no module for
# this. Prints one "changed: ..." line per unmounted mount.
#
# env: STATE_DIR
set -uo pipefail
: "${STATE_DIR:?}"

# mountinfo: field 5 is the mount point (spaces as \040), the type follows the " - " separator.
awk -v dir="$STATE_DIR/" '{ m = $5; gsub(/\\040/, " ", m)
  for (i = 7; i <= NF; i++) if ($i == "-") { type = $(i + 1); break } }
  type ~ /^fuse/ && index(m, dir) == 1 { print m }' /proc/self/mountinfo |
while IFS= read -r mount_point; do
  # A mount whose daemon died answers ENOTCONN ("Transport endpoint is not connected").
  if ! err=$(stat -- "$mount_point" 2>&1 >/dev/null) && [[ $err == *"not connected"* ]]; then
    umount -l -- "$mount_point" && echo "changed: unmounted $mount_point"
  fi
done
exit 0
