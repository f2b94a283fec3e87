#!/usr/bin/env bash
# Mount a Cloud Storage bucket with gcsfuse and serve it with nginx.
#
# GCSFRONT_MODE   all (default): gcsfuse and nginx in this container (privileged, the 2016 layout)
#                 mount: gcsfuse only (a privileged sidecar sharing the mount through an emptyDir)
#                 serve: nginx only, once the shared mount is there (unprivileged)
# GCSFRONT_BUCKET            bucket to mount (all, mount)
# GCSFRONT_MOUNT_POINT       /mnt/gcs
# GCSFRONT_GCSFUSE_CONFIG    /etc/gcsfront/gcsfuse.yaml (gcsfuse's --config-file)
# GCSFRONT_NGINX_CONF        /etc/gcsfront/nginx.conf
# GCSFRONT_MOUNT_TIMEOUT     60 (seconds to wait for the mount)
# GOOGLE_APPLICATION_CREDENTIALS  service-account key file (gcsfuse --key-file); unset: default credentials
# GCSFRONT_NAME_INDEX_DIR   empty (default): off. A directory: keep the bucket's names there for nginx to
#                           answer unknown names 404 without the mount (all, serve; see gcsfront-name-index)
# GCSFRONT_NAME_INDEX_INTERVAL   30 (seconds between listings)
# GCSFRONT_NAME_INDEX_MAX_NAMES  100000 (more names: the index steps aside and the mount answers)
# GCSFRONT_USE_METADATA      false: GCE_METADATA_HOST is pointed at 127.0.0.1:9 (nothing) unless already
#                            set, so gcsfuse never dials the metadata server; true for Workload Identity
#
# Signals: SIGTERM/SIGQUIT/SIGINT make nginx quit gracefully (SIGQUIT) first, then the bucket is
# unmounted and gcsfuse stopped. If gcsfuse dies, the container exits non-zero to be restarted.
set -uo pipefail

mode=${GCSFRONT_MODE:-all}
mnt=${GCSFRONT_MOUNT_POINT:-/mnt/gcs}
fuse_conf=${GCSFRONT_GCSFUSE_CONFIG:-/etc/gcsfront/gcsfuse.yaml}
nginx_conf=${GCSFRONT_NGINX_CONF:-/etc/gcsfront/nginx.conf}
mount_timeout=${GCSFRONT_MOUNT_TIMEOUT:-60}
name_index_dir=${GCSFRONT_NAME_INDEX_DIR:-}
fuse_pid='' nginx_pid='' index_pid=''

log() { echo "gcsfront: $*" >&2; }

check_environment() {
  local bad=0
  case $mode in all | mount | serve) ;; *) log "GCSFRONT_MODE=$mode: use all, mount or serve"; bad=1 ;; esac
  [[ $mount_timeout =~ ^[0-9]+$ ]] || { log "GCSFRONT_MOUNT_TIMEOUT=$mount_timeout is not a number of seconds"; bad=1; }
  if [ "$mode" != serve ]; then
    [ -n "${GCSFRONT_BUCKET:-}" ] || { log "GCSFRONT_BUCKET is not set: name the bucket to serve"; bad=1; }
    [ -c /dev/fuse ] || { log "/dev/fuse is missing: run this container privileged (or give it /dev/fuse and SYS_ADMIN)"; bad=1; }
    [ -r "$fuse_conf" ] || { log "GCSFRONT_GCSFUSE_CONFIG=$fuse_conf is not a readable file"; bad=1; }
    if [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] && [ ! -r "$GOOGLE_APPLICATION_CREDENTIALS" ]; then
      log "GOOGLE_APPLICATION_CREDENTIALS=$GOOGLE_APPLICATION_CREDENTIALS is not a readable file: mount the key Secret there"
      bad=1
    fi
  fi
  if [ "$mode" != mount ]; then
    [ -r "$nginx_conf" ] || { log "GCSFRONT_NGINX_CONF=$nginx_conf is not a readable file"; bad=1; }
  fi
  [ -d "$mnt" ] || mkdir -p "$mnt" 2>/dev/null || { log "GCSFRONT_MOUNT_POINT=$mnt does not exist"; bad=1; }
  [ "$bad" = 0 ] || exit 64
}

# A killed gcsfuse leaves a dead mount ("Transport endpoint is not connected") that blocks a new one.
clear_stale_mount() {
  if ! stat "$mnt" >/dev/null 2>&1 || mountpoint -q "$mnt"; then
    log "unmounting a stale mount at $mnt"
    fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  fi
}

wait_for_mount() {  # wait_for_mount PID_TO_WATCH
  local deadline=$((SECONDS + mount_timeout))
  until mountpoint -q "$mnt" && stat "$mnt" >/dev/null 2>&1; do
    if [ -n "$1" ] && ! kill -0 "$1" 2>/dev/null; then
      wait "$1"
      log "gcsfuse exited (status $?) before gs://${GCSFRONT_BUCKET:-?} was mounted; its messages are above"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "gs://${GCSFRONT_BUCKET:-?} not mounted at $mnt within ${mount_timeout}s"
      [ -n "$1" ] && kill "$1" 2>/dev/null
      exit 1
    fi
    sleep 0.2
  done
}

start_gcsfuse() {
  if [ "${GCSFRONT_USE_METADATA:-false}" != true ]; then
    # Without it gcsfuse's trace exporter dials the cloud metadata address even with --disable-autoconfig.
    export GCE_METADATA_HOST=${GCE_METADATA_HOST:-127.0.0.1:9}
  fi
  # --trace-exporters= (none): gcsfuse 3.13 builds its Cloud Trace exporter even when tracing is off
  # (sampling ratio 0), and that gRPC client resolves and dials cloudtrace.googleapis.com.
  local args=(--foreground --disable-autoconfig --trace-exporters= --config-file "$fuse_conf" -o ro -o allow_other)
  [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] && args+=(--key-file "$GOOGLE_APPLICATION_CREDENTIALS")
  clear_stale_mount
  log "mounting gs://$GCSFRONT_BUCKET at $mnt"
  gcsfuse "${args[@]}" "$GCSFRONT_BUCKET" "$mnt" &
  fuse_pid=$!
  wait_for_mount "$fuse_pid"
  log "mounted gs://$GCSFRONT_BUCKET"
}

stop_all() {
  trap '' TERM QUIT INT
  [ -z "$index_pid" ] || kill -TERM "$index_pid" 2>/dev/null
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    log "stopping nginx gracefully"
    kill -QUIT "$nginx_pid" 2>/dev/null
    wait "$nginx_pid"
  fi
  if [ -n "$fuse_pid" ]; then
    log "unmounting $mnt"
    fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
    kill -TERM "$fuse_pid" 2>/dev/null
    wait "$fuse_pid"
  fi
}

check_environment
trap 'stop_all; exit 0' TERM QUIT INT

[ "$mode" = serve ] || start_gcsfuse
if [ "$mode" = serve ]; then
  log "waiting for the mount at $mnt"
  wait_for_mount ""
fi
if [ "$mode" != mount ] && [ -n "$name_index_dir" ]; then
  # Until its first complete listing (and whenever it cannot be trusted) nginx asks the mount about every name.
  gcsfront-name-index "$mnt" "$name_index_dir" "${GCSFRONT_NAME_INDEX_INTERVAL:-30}" \
    "${GCSFRONT_NAME_INDEX_MAX_NAMES:-100000}" &
  index_pid=$!
fi
if [ "$mode" != mount ]; then
  nginx -c "$nginx_conf" -g 'daemon off;' &
  nginx_pid=$!
fi

# Whichever stops first decides: a dead gcsfuse must restart the container.
wait -n ${fuse_pid:+"$fuse_pid"} ${nginx_pid:+"$nginx_pid"}
status=$?
if [ -n "$fuse_pid" ] && ! kill -0 "$fuse_pid" 2>/dev/null; then
  log "gcsfuse exited (status $status); stopping"
  fuse_pid=
  stop_all
  exit 1
fi
log "nginx exited (status $status); stopping"
nginx_pid=
stop_all
exit "$status"
