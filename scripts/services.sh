#!/usr/bin/env bash
# Idempotently install and start the external services this project needs.
#
#   scripts/services.sh docker            # Docker engine (dockerd)
#   scripts/services.sh runtimes          # the sandbox's language runtimes
#   scripts/services.sh postgres          # PostgreSQL + role/database for tests
#   scripts/services.sh netns             # iproute2; checks network namespaces work
#   scripts/services.sh docker postgres   # any subset, in any order
#
# Progress goes to stderr (prefixed "services:"). The only thing written to
# stdout is, for "postgres", one line that callers can eval:
#
#   LYCEUM_TEST_DATABASE_URL=postgres://lyceum:lyceum@127.0.0.1:5432/lyceum_test
#
# e.g.  eval "$(scripts/services.sh docker postgres)"
#
# Needs root (apt-get, dockerd). Safe to re-run: services that already answer
# are left alone, so a second run takes well under a second.
#
# Environment overrides (normally not needed):
#   SERVICES_DOCKERD_ARGS   replaces the default dockerd flags (space separated)
#   SERVICES_DOCKERD_LOG    dockerd log file (default /var/log/lyceum-dockerd.log)
set -euo pipefail

# dockerd, iptables, runc, pg_ctlcluster... live in sbin dirs that a
# non-login shell may not have on PATH.
for d in /usr/local/sbin /usr/sbin /sbin; do
  case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

log() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 {docker|runtimes|postgres|netns|chromium} [...]   (any subset of: docker runtimes postgres netns chromium)" >&2
  exit 2
}

# --------------------------------------------------------------------------
# apt helpers: "apt-get update" at most once per invocation, and only when
# something actually has to be installed.
# --------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    apt-get update -q >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
}

# True if the pid stored in file $1 is a live (non-zombie) process named $2.
# (PID 1 here is the sandbox's process_api, which reaps orphans lazily, so a
# just-stopped daemon can linger as a zombie with the same name.)
pidfile_is() {
  local file=$1 want=$2 pid state
  [[ -r $file ]] || return 1
  pid=$(head -n1 "$file" 2>/dev/null | tr -dc '0-9')
  [[ -n $pid ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$want" ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# /run is NOT a tmpfs on this machine (it lives on the root disk), so pid and
# lock files survive a VM restart/snapshot. A stale pid file whose number has
# been reused by an unrelated process makes dockerd / postgres refuse to start,
# so remove pid files that do not point at the expected program.
remove_stale_pidfile() {
  local file=$1 want=$2
  if [[ -e $file ]] && ! pidfile_is "$file" "$want"; then
    log "removing stale pid file $file"
    rm -f "$file"
  fi
}

# --------------------------------------------------------------------------
# docker
# --------------------------------------------------------------------------
DOCKERD_LOG=${SERVICES_DOCKERD_LOG:-/var/log/lyceum-dockerd.log}

# Flags verified on this sandbox (Firecracker VM, kernel 6.18, Debian 12,
# docker.io 20.10.24, no systemd, cgroup v1 "hybrid" layout, ext4 root):
#  * --storage-driver=overlay2: overlayfs is built into the kernel and the root
#    fs is ext4 with d_type, so overlay2 works (vfs would copy every layer).
#  * --exec-opt native.cgroupdriver=cgroupfs: there is no systemd (PID 1 is the
#    sandbox's process_api), so the systemd cgroup driver cannot work; cgroups
#    are v1 (memory, pids, cpu, ... mounted under /sys/fs/cgroup/<ctrl>).
#  * iptables is left ON (default): the kernel has nf_tables + NAT and Debian's
#    iptables-nft works, so the default bridge network is functional.
#  * --host / --pidfile / --data-root are the defaults, spelled out because the
#    script relies on them (docker.sock for "docker info", pid file cleanup).
DOCKERD_DEFAULT_ARGS=(
  --host=unix:///var/run/docker.sock
  --pidfile=/var/run/docker.pid
  --data-root=/var/lib/docker
  --exec-opt native.cgroupdriver=cgroupfs
  --storage-driver=overlay2
)
# Used only if dockerd dies with the flags above (e.g. a sandbox without
# overlayfs or without working netfilter): the slowest but most portable
# storage driver, and no iptables/bridge setup (containers can still use
# --network none or --network host).
DOCKERD_FALLBACK_ARGS=(
  --host=unix:///var/run/docker.sock
  --pidfile=/var/run/docker.pid
  --data-root=/var/lib/docker
  --exec-opt native.cgroupdriver=cgroupfs
  --storage-driver=vfs
  --iptables=false
  --ip-masq=false
  --bridge=none
)

docker_ok() {
  command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1
}

# Start dockerd with the given flags, fully detached (own session, no stdio
# shared with the caller, so "$(services.sh ...)" does not hang), then wait up
# to 60 s for "docker info". Returns 1 if dockerd exits or never answers.
start_dockerd() {
  local pid deadline
  log "starting dockerd $* (log: $DOCKERD_LOG)"
  echo "=== $(date -u +%FT%TZ) services.sh: dockerd $*" >>"$DOCKERD_LOG"
  setsid nohup dockerd "$@" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  pid=$!
  deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if docker_ok; then
      log "docker is up (dockerd pid $pid, $(docker info --format '{{.ServerVersion}} storage={{.Driver}} cgroup=v{{.CgroupVersion}}' 2>/dev/null))"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "dockerd exited early; last lines of $DOCKERD_LOG (grpc chatter omitted):"
      tail -n 200 "$DOCKERD_LOG" | grep -v 'module=grpc' | tail -n 8 \
        | sed 's/^/services:   /' >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "dockerd did not answer within 60 s; stopping it (pid $pid)"
  kill "$pid" 2>/dev/null || true
  sleep 2
  return 1
}

ensure_docker() {
  if docker_ok; then
    log "docker: already running"
    return 0
  fi

  # /usr/local/bin/docker may exist as a client only; what we need is the
  # daemon plus its runtime pieces. docker.io depends on containerd, runc,
  # iptables and tini, so installing it pulls everything.
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"
  command -v docker >/dev/null 2>&1 || die "docker client not found"

  # A dockerd may already be starting (e.g. launched moments ago): wait for it
  # instead of starting a second one on the same data root.
  if pidfile_is /var/run/docker.pid dockerd; then
    local deadline=$((SECONDS + 60))
    log "dockerd already running (pid $(cat /var/run/docker.pid)); waiting for it to answer"
    while ((SECONDS < deadline)); do
      docker_ok && { log "docker is up"; return 0; }
      sleep 0.5
    done
    die "dockerd (pid $(cat /var/run/docker.pid)) is running but 'docker info' does not answer; see $DOCKERD_LOG"
  fi
  remove_stale_pidfile /var/run/docker.pid dockerd
  remove_stale_pidfile /var/run/docker/containerd/containerd.pid containerd

  if [[ -n ${SERVICES_DOCKERD_ARGS:-} ]]; then
    # shellcheck disable=SC2206  # intentional word splitting of user flags
    local user_args=($SERVICES_DOCKERD_ARGS)
    start_dockerd "${user_args[@]}" && return 0
  else
    start_dockerd "${DOCKERD_DEFAULT_ARGS[@]}" && return 0
  fi
  log "retrying dockerd with fallback flags (vfs, no iptables)"
  remove_stale_pidfile /var/run/docker.pid dockerd
  remove_stale_pidfile /var/run/docker/containerd/containerd.pid containerd
  start_dockerd "${DOCKERD_FALLBACK_ARGS[@]}" && return 0
  die "could not start dockerd; see $DOCKERD_LOG"
}

# --------------------------------------------------------------------------
# postgres
# --------------------------------------------------------------------------
PG_ROLE=lyceum
PG_PASSWORD=lyceum
PG_DB=lyceum_test

# Run a command as the postgres OS user (peer auth over the unix socket).
as_postgres() {
  (cd / && runuser -u postgres -- "$@")
}

ensure_postgres() {
  if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    apt_install postgresql
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    apt_install postgresql-common postgresql-client
  fi

  # Pick the cluster: the one on 5432 if any, otherwise the newest one.
  # Columns: Ver Cluster Port Status Owner Datadir Logfile
  local line ver name port status datadir
  line=$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432' | tail -n1)
  [[ -n $line ]] || line=$(pg_lsclusters -h 2>/dev/null | tail -n1)
  if [[ -z $line ]]; then
    ver=$(basename "$(dirname "$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n1)")")")
    log "no PostgreSQL cluster found; creating $ver/main"
    pg_createcluster "$ver" main >&2 || die "pg_createcluster $ver main failed"
    line=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main"')
  fi
  read -r ver name port status _ datadir _ <<<"$line"
  [[ -n ${port:-} ]] || die "could not determine PostgreSQL cluster (pg_lsclusters: '$line')"

  if [[ $status == online* ]]; then
    log "postgres: cluster $ver/$name already running on port $port"
  else
    # Stale lock files (see remove_stale_pidfile) would make postgres refuse
    # to start with "lock file ... already exists".
    remove_stale_pidfile "$datadir/postmaster.pid" postgres
    remove_stale_pidfile "/var/run/postgresql/.s.PGSQL.$port.lock" postgres
    mkdir -p /var/run/postgresql
    chown postgres:postgres /var/run/postgresql
    log "starting PostgreSQL cluster $ver/$name (port $port)"
    # No systemd here, so pg_ctlcluster runs pg_ctl directly; the postmaster
    # logs to /var/log/postgresql/postgresql-$ver-$name.log. Keep its stdio
    # away from our stdout so "$(services.sh postgres)" cannot hang.
    pg_ctlcluster "$ver" "$name" start </dev/null >&2 \
      || die "pg_ctlcluster $ver $name start failed; see /var/log/postgresql/postgresql-$ver-$name.log"
  fi

  local deadline=$((SECONDS + 60))
  until pg_isready -q -h 127.0.0.1 -p "$port" -t 2; do
    ((SECONDS < deadline)) \
      || die "PostgreSQL not accepting TCP connections on 127.0.0.1:$port after 60 s (check listen_addresses, /var/log/postgresql/postgresql-$ver-$name.log)"
    sleep 0.5
  done
  log "postgres is accepting connections on 127.0.0.1:$port"

  # Role: create or (re)assert attributes + password; cheap and idempotent.
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres >&2 <<SQL \
    || die "could not create/update role $PG_ROLE"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SQL

  local have_db
  have_db=$(as_postgres psql -X -A -t -q -p "$port" -d postgres \
    -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") \
    || die "could not query pg_database"
  if [[ $have_db == 1 ]]; then
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres \
      -c "ALTER DATABASE $PG_DB OWNER TO $PG_ROLE" >&2 || die "could not set owner of $PG_DB"
  else
    log "creating database $PG_DB owned by $PG_ROLE"
    as_postgres createdb -p "$port" -O "$PG_ROLE" "$PG_DB" >&2 || die "createdb $PG_DB failed"
  fi

  # Make sure password login over TCP on 127.0.0.1 works. Debian's default
  # pg_hba.conf already has "host all all 127.0.0.1/32 scram-sha-256"; only if
  # the login fails do we prepend an explicit rule and reload.
  local url="postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
  if ! PGCONNECT_TIMEOUT=5 psql "$url" -X -A -t -q -c 'SELECT 1' >/dev/null 2>&1; then
    local hba
    hba=$(as_postgres psql -X -A -t -q -p "$port" -d postgres -c 'SHOW hba_file') \
      || die "could not locate pg_hba.conf"
    log "password login over TCP failed; adding rule to $hba and reloading"
    sed -i "1i host $PG_DB $PG_ROLE 127.0.0.1/32 scram-sha-256  # added by scripts/services.sh" "$hba"
    as_postgres psql -X -q -p "$port" -d postgres -c 'SELECT pg_reload_conf()' >/dev/null
    sleep 1
    PGCONNECT_TIMEOUT=5 psql "$url" -X -A -t -q -c 'SELECT 1' >/dev/null \
      || die "cannot log in as $PG_ROLE over TCP at 127.0.0.1:$port"
  fi
  log "postgres: $PG_ROLE@127.0.0.1:$port/$PG_DB ready"
  echo "LYCEUM_TEST_DATABASE_URL=$url"
}

# --------------------------------------------------------------------------
# --------------------------------------------------------------------------
# runtimes: the sandbox's language runtimes, from Debian's packages. The
# sandbox bind-mounts the host's /usr read-only into its containers, so these
# are what learners' code runs on. The paths are the ones the language table
# (sandbox/src/languages.rs) names.
# --------------------------------------------------------------------------
RUNTIMES=(
  "/usr/bin/python3:python3"
  "/usr/bin/node:nodejs"
  "/usr/bin/gcc:gcc"
  "/usr/bin/g++:g++"
  "/usr/bin/javac:default-jdk-headless"
  "/usr/bin/go:golang-go"
  "/usr/bin/rustc:rustc"
  "/usr/bin/ruby:ruby"
  "/usr/bin/bash:bash"
  "/usr/bin/sqlite3:sqlite3"
)

ensure_runtimes() {
  local entry path package missing=()
  for entry in "${RUNTIMES[@]}"; do
    path=${entry%%:*}
    package=${entry#*:}
    [[ -x $path ]] || missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    log "runtimes: all ${#RUNTIMES[@]} installed"
    return
  fi
  log "runtimes: installing ${missing[*]}"
  apt_install "${missing[@]}"
  for entry in "${RUNTIMES[@]}"; do
    path=${entry%%:*}
    [[ -x $path ]] || die "runtime $path is still missing after installing ${entry#*:}"
  done
}

# --------------------------------------------------------------------------
# netns: iproute2, and a check that this machine lets us make network
# namespaces, veth pairs and bridges (the partition test in
# node/tests/it/netns_partition.rs runs edges in their own namespaces and
# fails, rather than skips, without them).
# --------------------------------------------------------------------------
ensure_netns() {
  command -v ip >/dev/null 2>&1 || apt_install iproute2
  command -v ip >/dev/null 2>&1 || die "ip not found after installing iproute2"
  local probe="lyceum-probe-$$" ok=1
  ip netns add "$probe" >&2 || die "cannot create a network namespace (needs root and a kernel with network namespaces)"
  ip -n "$probe" link add name probe0 type veth peer name probe1 >&2 || ok=0
  ip -n "$probe" link add name probebr type bridge >&2 || ok=0
  ip netns del "$probe" >&2 || true
  ((ok)) || die "network namespaces work but veth pairs or bridges cannot be made in them"
  log "netns: $(ip -V 2>&1 | head -n1); namespaces, veth pairs and bridges work"
}

# --------------------------------------------------------------------------
# chromium: Debian's Chromium for the web app's end-to-end tests
# (web/app/e2e drives /usr/bin/chromium with playwright-core; no browser
# download).
# --------------------------------------------------------------------------
ensure_chromium() {
  [[ -x /usr/bin/chromium ]] || apt_install chromium
  [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium not found after installing chromium"
  log "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
}

main() {
  (($# > 0)) || usage
  local want_docker=0 want_postgres=0 want_runtimes=0 want_netns=0 want_chromium=0 arg
  for arg in "$@"; do
    case $arg in
      docker) want_docker=1 ;;
      runtimes) want_runtimes=1 ;;
      postgres | postgresql) want_postgres=1 ;;
      netns) want_netns=1 ;;
      chromium) want_chromium=1 ;;
      -h | --help) usage ;;
      *) echo "services: unknown service '$arg'" >&2; usage ;;
    esac
  done
  [[ $EUID -eq 0 ]] || die "must run as root (installs packages, starts daemons)"

  ((want_docker)) && ensure_docker
  ((want_runtimes)) && ensure_runtimes
  ((want_postgres)) && ensure_postgres
  ((want_netns)) && ensure_netns
  ((want_chromium)) && ensure_chromium
  log "done in ${SECONDS}s"
}

main "$@"
