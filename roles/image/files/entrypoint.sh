#!/usr/bin/env bash
# Mount a Cloud Storage bucket with gcsfuse and serve it with nginx.
#
# Two nginx run in a serving container: the front (GCSFRONT_NGINX_CONF), which clients and probes reach and
# which never makes a FUSE call (it serves from its cache on local disk), and the mount-serving nginx
# (GCSFRONT_NGINX_MOUNT_CONF) behind it on a unix socket, whose workers read the mount and may block there.
#
# GCSFRONT_MODE   all (default): gcsfuse and both nginx in this container (privileged, the 2016 layout)
#                 mount: gcsfuse only (a privileged sidecar sharing the mount through an emptyDir)
#                 serve: both nginx only, reading the shared mount (unprivileged)
# GCSFRONT_BUCKET            bucket to mount (all, mount)
# GCSFRONT_MOUNT_POINT       /mnt/gcs
# GCSFRONT_STATE_DIR         /tmp/gcsfront: the flag mount-alive (readiness), pid files, the nginx socket
# GCSFRONT_GCSFUSE_CONFIG    /etc/gcsfront/gcsfuse.yaml (gcsfuse's --config-file)
# GCSFRONT_NGINX_CONF        /etc/gcsfront/nginx.conf (the front)
# GCSFRONT_NGINX_MOUNT_CONF  /etc/gcsfront/nginx-mount.conf (the mount-serving nginx)
# GCSFRONT_MOUNT_TIMEOUT     60 (seconds one mount attempt may take)
# GCSFRONT_MOUNT_BACKOFF_MAX 30 (seconds between mount attempts at most; the backoff doubles from 1)
# GOOGLE_APPLICATION_CREDENTIALS  service-account key file (gcsfuse --key-file); unset: default credentials
# GCSFRONT_CATALOG_DIR      empty (default): off. A directory: keep the bucket's catalog there (gcsfront-catalog:
#                           names and stored headers, listed through the JSON API) for the front nginx
# GCSFRONT_CATALOG_INTERVAL  30 (seconds between listings)
# GCSFRONT_CATALOG_MAX_NAMES 300000 (more names: the catalog is not trusted and the mount answers)
# GCSFRONT_GCS_ENDPOINT     the JSON API's base URL (gcsfuse's custom endpoint); empty: Google Cloud Storage
# GCSFRONT_WEBSITE_MAIN_PAGE_SUFFIX, GCSFRONT_WEBSITE_NOT_FOUND_PAGE, GCSFRONT_WEBSITE_FROM_BUCKET (true|false):
#                           the website settings the catalog carries to nginx
# GCSFRONT_MIRROR_DIR       empty (default): off. The front's hot copies (gcsfront-catalog.lua): every 30 s
#                           the copies that GCSFRONT_MIRROR_CATALOG (catalog.tsv) no longer names are deleted, and
#                           the oldest beyond GCSFRONT_MIRROR_MAX_SIZE_MB (1024)
# GCSFRONT_MOUNT_FS_TYPE     65735546 (FUSE): the filesystem type (stat -f %t) a live mount has
# GCSFRONT_AUTH              key (default): GOOGLE_APPLICATION_CREDENTIALS, no metadata server needed.
#                            workload_identity: tokens from the metadata server (GKE's, or GCE_METADATA_HOST)
# GCE_METADATA_HOST          with key auth, pointed at 127.0.0.1:9 (nothing) unless set, so gcsfuse never dials
#                            the cloud metadata address; with workload_identity, left as given (unset on GKE:
#                            the node's GKE metadata server answers for the pod's ServiceAccount)
#
# gcsfuse is supervised: a mount that fails (GCS down at start) or dies (gcsfuse killed) is cleared and retried
# with a bounded backoff; the container never exits for it, so a GCS incident never crash-loops a pod, and
# the front keeps serving what its cache holds meanwhile. A watcher keeps GCSFRONT_STATE_DIR/mount-alive
# while a bounded statfs of the mount answers (gcsfuse answers it without GCS): readiness reads that flag.
# The catalog lister is supervised too; nginx trusts its catalog for two intervals after its last listing. The
# helper loops (the watcher, the lister's supervisor, the hot copies' keeper) are started again if killed.
#
# Signals: SIGTERM/SIGQUIT/SIGINT stop the front gracefully (SIGQUIT: requests in flight finish), then the
# mount-serving nginx, then unmount and stop gcsfuse.
set -uo pipefail

mode=${GCSFRONT_MODE:-all}
mnt=${GCSFRONT_MOUNT_POINT:-/mnt/gcs}
state=${GCSFRONT_STATE_DIR:-/tmp/gcsfront}
fuse_conf=${GCSFRONT_GCSFUSE_CONFIG:-/etc/gcsfront/gcsfuse.yaml}
nginx_conf=${GCSFRONT_NGINX_CONF:-/etc/gcsfront/nginx.conf}
nginx_mount_conf=${GCSFRONT_NGINX_MOUNT_CONF:-/etc/gcsfront/nginx-mount.conf}
mount_timeout=${GCSFRONT_MOUNT_TIMEOUT:-60}
backoff_max=${GCSFRONT_MOUNT_BACKOFF_MAX:-30}
catalog_dir=${GCSFRONT_CATALOG_DIR:-}
mirror_dir=${GCSFRONT_MIRROR_DIR:-}
mirror_max_mb=${GCSFRONT_MIRROR_MAX_SIZE_MB:-1024}
alive=$state/mount-alive
# The lister's pid, for a supervisor started again after its predecessor was killed (its lister lives on).
lister_pidfile=$state/catalog-lister.pid
# FUSE's magic number as stat -f prints it.
fuse_magic=${GCSFRONT_MOUNT_FS_TYPE:-65735546}
fuse_sup='' catalog_sup='' watcher='' mirror_keeper='' front_pid='' mount_nginx_pid=''

log() { echo "gcsfront: $*" >&2; }

check_environment() {
  local bad=0
  case $mode in all | mount | serve) ;; *) log "GCSFRONT_MODE=$mode: use all, mount or serve"; bad=1 ;; esac
  [[ $mount_timeout =~ ^[1-9][0-9]*$ ]] || { log "GCSFRONT_MOUNT_TIMEOUT=$mount_timeout is not a number of seconds"; bad=1; }
  [[ $backoff_max =~ ^[1-9][0-9]*$ ]] || { log "GCSFRONT_MOUNT_BACKOFF_MAX=$backoff_max is not a number of seconds"; bad=1; }
  if [ "$mode" != serve ]; then
    [ -n "${GCSFRONT_BUCKET:-}" ] || { log "GCSFRONT_BUCKET is not set: name the bucket to serve"; bad=1; }
    [ -c /dev/fuse ] || { log "/dev/fuse is missing: run this container privileged (or give it /dev/fuse and SYS_ADMIN)"; bad=1; }
    [ -r "$fuse_conf" ] || { log "GCSFRONT_GCSFUSE_CONFIG=$fuse_conf is not a readable file"; bad=1; }
    case ${GCSFRONT_AUTH:-key} in
      key | workload_identity) ;;
      *) log "GCSFRONT_AUTH=$GCSFRONT_AUTH: use key or workload_identity"; bad=1 ;;
    esac
    if [ "${GCSFRONT_AUTH:-key}" = workload_identity ] && [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ]; then
      log "GCSFRONT_AUTH=workload_identity with GOOGLE_APPLICATION_CREDENTIALS set: a key would be used instead"
      bad=1
    fi
    if [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] && [ ! -r "$GOOGLE_APPLICATION_CREDENTIALS" ]; then
      log "GOOGLE_APPLICATION_CREDENTIALS=$GOOGLE_APPLICATION_CREDENTIALS is not a readable file: mount the key Secret there"
      bad=1
    fi
  fi
  if [ "$mode" != mount ]; then
    [ -r "$nginx_conf" ] || { log "GCSFRONT_NGINX_CONF=$nginx_conf is not a readable file"; bad=1; }
    [ -r "$nginx_mount_conf" ] || { log "GCSFRONT_NGINX_MOUNT_CONF=$nginx_mount_conf is not a readable file"; bad=1; }
  fi
  if [ -n "$catalog_dir" ]; then
    [ -n "${GCSFRONT_BUCKET:-}" ] || { log "GCSFRONT_BUCKET is not set: the catalog lists the bucket it names"; bad=1; }
    case ${GCSFRONT_WEBSITE_FROM_BUCKET:-false} in
      true | false) ;;
      *) log "GCSFRONT_WEBSITE_FROM_BUCKET=$GCSFRONT_WEBSITE_FROM_BUCKET: use true or false"; bad=1 ;;
    esac
  fi
  if [ -n "$mirror_dir" ]; then
    [ -n "${GCSFRONT_MIRROR_CATALOG:-}" ] || { log "GCSFRONT_MIRROR_CATALOG is not set: name the catalog file that says which hot copies to keep"; bad=1; }
    [[ $mirror_max_mb =~ ^[0-9]+$ ]] || { log "GCSFRONT_MIRROR_MAX_SIZE_MB=$mirror_max_mb is not a number of MiB"; bad=1; }
  fi
  [ -d "$mnt" ] || mkdir -p "$mnt" 2>/dev/null || { log "GCSFRONT_MOUNT_POINT=$mnt does not exist"; bad=1; }
  mkdir -p "$state" 2>/dev/null
  [ -w "$state" ] || { log "GCSFRONT_STATE_DIR=$state is not writable"; bad=1; }
  [ "$bad" = 0 ] || exit 64
}

# The filesystem type of the topmost mount at the mount point, from the mount table: no FUSE call, so it never
# hangs, also on a dead mount. Empty when nothing is mounted there.
top_fstype() {
  findmnt -n -o FSTYPE --mountpoint "$mnt" 2>/dev/null | tail -n 1
}

# Live: a FUSE mount (not the plain directory, nor the emptyDir a sidecar shares it through) whose daemon answers
# statfs (gcsfuse does so without GCS) within 2 seconds.
mount_alive() {
  [[ $(top_fstype) == fuse* ]] && [ "$(timeout 2 stat -f -c %t "$mnt" 2>/dev/null)" = "$fuse_magic" ]
}

# A killed gcsfuse leaves a dead FUSE mount ("Transport endpoint is not connected") that blocks a new one. Only
# FUSE mounts are cleared: in sidecar mode the mount point is itself the emptyDir that shares the mount with
# nginx, and unmounting that would hide the new mount from nginx.
clear_stale_mount() {
  local tries=0
  while [[ $(top_fstype) == fuse* ]] && [ "$tries" -lt 5 ]; do
    log "unmounting the FUSE mount at $mnt"
    fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    tries=$((tries + 1))
  done
}

# One gcsfuse run: mount, then wait for gcsfuse to exit. Returns 0 if the mount came up at some point.
run_gcsfuse() {
  # --trace-exporters= (none): gcsfuse 3.13 builds its Cloud Trace exporter even when tracing is off
  # (sampling ratio 0), and that gRPC client resolves and dials cloudtrace.googleapis.com.
  local args=(--foreground --disable-autoconfig --trace-exporters= --config-file "$fuse_conf" -o ro -o allow_other)
  local pid deadline mounted=1
  [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}" ] && args+=(--key-file "$GOOGLE_APPLICATION_CREDENTIALS")
  clear_stale_mount
  # The directory under the mount: unreadable, so while gcsfuse is away (killed, remounting) nginx gets EACCES
  # and answers 503, never a 404 for an object that exists. The mount's own modes apply on top of it.
  [[ $(top_fstype) == fuse* ]] || chmod 000 "$mnt"
  log "mounting gs://$GCSFRONT_BUCKET at $mnt"
  gcsfuse "${args[@]}" "$GCSFRONT_BUCKET" "$mnt" &
  pid=$!
  # Nothing reads the mount any more when this runs (nginx stopped first): a lazy unmount spares gcsfuse its
  # 30 s wait on a mount still busy, then gcsfuse is stopped. Never the emptyDir under it.
  trap 'clear_stale_mount; kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM
  deadline=$((SECONDS + mount_timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$mounted" = 1 ] && mount_alive; then
      mounted=0
      log "mounted gs://$GCSFRONT_BUCKET"
    elif [ "$mounted" = 1 ] && [ "$SECONDS" -ge "$deadline" ]; then
      log "gs://$GCSFRONT_BUCKET not mounted within ${mount_timeout}s; stopping this attempt"
      kill -TERM "$pid" 2>/dev/null
    fi
    [ "$mounted" = 0 ] && break
    sleep 0.2
  done
  wait "$pid"
  log "gcsfuse exited (status $?)"
  return "$mounted"
}

# Keeps the bucket mounted: a failed or dead mount is retried after 1, 2, 4 ... backoff_max seconds; a mount
# that lived a minute or more resets the backoff.
supervise_gcsfuse() {
  local delay=1 started
  trap 'exit 0' TERM
  while :; do
    started=$SECONDS
    if run_gcsfuse && [ $((SECONDS - started)) -ge 60 ]; then
      delay=1
    fi
    log "mounting again in ${delay}s"
    sleep "$delay" & wait $!
    delay=$((delay * 2 > backoff_max ? backoff_max : delay * 2))
  done
}

# Restarts the catalog lister whenever it stops (killed, or a crash); nginx stops trusting its catalog at once
# (the lister removes its fresh stamp when stopped, this when it was killed).
supervise_catalog() {
  local pid status args=(-bucket "$GCSFRONT_BUCKET" -dir "$catalog_dir" -interval "${GCSFRONT_CATALOG_INTERVAL:-30}s"
    -max-names "${GCSFRONT_CATALOG_MAX_NAMES:-300000}"
    -main-page-suffix "${GCSFRONT_WEBSITE_MAIN_PAGE_SUFFIX:-}" -not-found-page "${GCSFRONT_WEBSITE_NOT_FOUND_PAGE:-}")
  [ -z "${GCSFRONT_GCS_ENDPOINT:-}" ] || args+=(-endpoint "$GCSFRONT_GCS_ENDPOINT")
  [ "${GCSFRONT_WEBSITE_FROM_BUCKET:-false}" = false ] || args+=(-website-from-bucket)
  [ "${GCSFRONT_AUTH:-key}" = key ] || args+=(-workload-identity)
  trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; rm -f "$catalog_dir/fresh"; exit 0' TERM
  while :; do
    gcsfront-catalog "${args[@]}" &
    pid=$!
    echo "$pid" >"$lister_pidfile"
    wait "$pid"
    status=$?
    rm -f "$catalog_dir/fresh"
    log "the catalog lister stopped (status $status); starting it again in 5s"
    sleep 5 & wait $!
  done
}

# The lister a killed supervisor left running: stopped before a new supervisor starts another (two would both list
# and write the catalog).
stop_orphaned_lister() {
  local pid
  pid=$(cat "$lister_pidfile" 2>/dev/null) || return 0
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = gcsfront-catalo ] && kill -TERM "$pid" 2>/dev/null
  rm -f "$lister_pidfile"
}

# Every 2 seconds: the mount-alive flag (readiness). The catalog's freshness nginx checks itself.
watch() {
  local was_alive=unknown
  trap 'exit 0' TERM
  while :; do
    if mount_alive; then
      : >"$alive"
      [ "$was_alive" = yes ] || log "the mount is alive"
      was_alive=yes
    else
      rm -f "$alive"
      [ "$was_alive" = no ] || log "the mount is not alive; this pod is not ready"
      was_alive=no
    fi
    sleep 2 & wait $!
  done
}

# Every 30 s: hot copies the catalog no longer names are deleted, and the oldest beyond the size (nginx stores
# them; a deleted copy still requested is stored again from the mount). Nothing happens before the first catalog.
keep_mirror() {
  trap 'exit 0' TERM
  while :; do
    sleep 30 & wait $!
    [ -f "$GCSFRONT_MIRROR_CATALOG" ] || continue
    gcsfront-catalog prune -catalog "$GCSFRONT_MIRROR_CATALOG" -dir "$mirror_dir" -max-size-mb "$mirror_max_mb"
  done
}

stop_pid() {  # stop_pid SIGNAL PID: signal it and wait for it to exit
  [ -n "$2" ] && kill -0 "$2" 2>/dev/null || return 0
  kill "-$1" "$2" 2>/dev/null
  wait "$2"
}

stop_all() {
  trap '' TERM QUIT INT
  stop_pid TERM "$catalog_sup"
  [ -z "$front_pid" ] || log "stopping nginx gracefully"
  stop_pid QUIT "$front_pid"
  stop_pid QUIT "$mount_nginx_pid"
  [ -z "$fuse_sup" ] || log "unmounting $mnt"
  stop_pid TERM "$fuse_sup"
  stop_pid TERM "$watcher"
  stop_pid TERM "$mirror_keeper"
  rm -f "$alive"
}

# Whether every serving process runs: both nginx, and gcsfuse's supervisor.
serving() {
  local pid
  for pid in $front_pid $mount_nginx_pid $fuse_sup; do
    kill -0 "$pid" 2>/dev/null || return 1
  done
}

# Several helpers may have been killed at once: each one not running is started again.
restart_stopped_helpers() {
  if ! kill -0 "$watcher" 2>/dev/null; then
    log "the mount watcher stopped; starting it again"
    watch &
    watcher=$!
  fi
  if [ -n "$catalog_sup" ] && ! kill -0 "$catalog_sup" 2>/dev/null; then
    log "the catalog's supervisor stopped; starting it again"
    stop_orphaned_lister
    supervise_catalog &
    catalog_sup=$!
  fi
  if [ -n "$mirror_keeper" ] && ! kill -0 "$mirror_keeper" 2>/dev/null; then
    log "the hot copies' keeper stopped; starting it again"
    keep_mirror &
    mirror_keeper=$!
  fi
}

check_environment
trap 'stop_all; exit 0' TERM QUIT INT
rm -f "$alive"
# With a key nothing needs a metadata server, and without GCE_METADATA_HOST gcsfuse's trace exporter dials the
# cloud metadata address even with --disable-autoconfig. Workload Identity's tokens come from one.
if [ "${GCSFRONT_AUTH:-key}" = key ]; then
  export GCE_METADATA_HOST=${GCE_METADATA_HOST:-127.0.0.1:9}
fi

if [ "$mode" != serve ]; then
  supervise_gcsfuse &
  fuse_sup=$!
fi
# The container with the credentials lists the bucket (the role sets GCSFRONT_CATALOG_DIR there only).
if [ -n "$catalog_dir" ]; then
  supervise_catalog &
  catalog_sup=$!
fi
watch &
watcher=$!
if [ "$mode" != mount ]; then
  # An nginx killed outright (SIGKILL, the OOM killer) leaves its unix sockets behind in this directory, which
  # outlives the container: its successor's bind() would fail on them and the pod crash-loop for good.
  find "$state" -maxdepth 1 -type s -delete
  nginx -c "$nginx_mount_conf" -g 'daemon off;' &
  mount_nginx_pid=$!
  nginx -c "$nginx_conf" -g 'daemon off;' &
  front_pid=$!
  if [ -n "$mirror_dir" ]; then
    # nginx's workers store the copies (as www-data when the master is root).
    mkdir -p "$mirror_dir" && { [ "$(id -u)" != 0 ] || chown www-data: "$mirror_dir"; }
    keep_mirror &
    mirror_keeper=$!
  fi
fi

# Only an nginx that stops (or, in mount mode, the supervisor) ends the container: gcsfuse is retried. A helper
# loop that stops (they only do when killed) is started again: without the watcher readiness would stay as it
# was, without the catalog's supervisor the lister would not be restarted, without the keeper the copies would
# grow to the emptyDir's limit (which evicts the pod).
while :; do
  wait -n ${front_pid:+"$front_pid"} ${mount_nginx_pid:+"$mount_nginx_pid"} ${fuse_sup:+"$fuse_sup"} \
    ${catalog_sup:+"$catalog_sup"} "$watcher" ${mirror_keeper:+"$mirror_keeper"}
  status=$?
  serving || break
  restart_stopped_helpers
done
log "a serving process exited (status $status); stopping"
stop_all
exit $((status == 0 ? 1 : status))
