#!/usr/bin/env python3
"""Plants a deterministic store of N cachectl entries for benches/prune.sh (stdlib only).

    plant.py plant   --store STORE --n N --as-of T [--seed S] [--only NAMES] [--threads 48]
    plant.py objects --store STORE --n N --as-of T [--seed S] --only NAMES

STORE is a local directory or s3://bucket (S3: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION from the environment; requests are signed here with SigV4 and
UNSIGNED-PAYLOAD over http.client keep-alive connections, one per thread: little client CPU per
request on 2 cores shared with the server, ~2,000 PutObject/s against s3s-fs; the venv has no
boto3, only awscli's vendored botocore).

The store (docs/FORMAT.md, "Object name", "Metadata"; last-use records as src/store/mod.rs writes
them), the same for a given --n, --as-of and --seed:
  - entry i: key `fam<f>-<16 hex>` with family `fam<f>`, f uniform over 500 families; each family
    belongs to one of 4 path sets (node_modules / .venv / target + ~/.cargo/registry /
    ~/.m2/repository). The 16-hex path-set names are fixed stand-ins (sha256, not the blake3 digest
    cachectl would compute: prune never recomputes it);
  - created uniformly over the 60 days before --as-of (whole seconds, RFC 3339 UTC);
  - 1,024-4,096 bytes of random content (sizes vary, so --max-total-size has something to weigh);
  - 30 % of entries have one last-use record `v1-used/<pathset>/<YYYYMMDDHH>/<key>` at an hour
    drawn uniformly between its creation and --as-of.
Local store: the file `<root>/v1/<pathset>/<key>` plus its `%meta` JSON sidecar (the keys need no
escaping), and empty files for the use records. S3: PutObject with the x-amz-meta-cachectl-*
headers; use records are empty objects.

--only NAMES (a file of `<pathset>/<key>` lines) restricts `plant` to those entries and their use
records (to put back what a prune deleted), and `objects` prints what deleting those entries must
remove, one per line: `s3://bucket/<object>` for S3, file paths (entry, sidecar, use record) for a
local store. `plant` prints one JSON line: entries, use_records, bytes (entry bytes), seconds.
"""
import argparse
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

FAMILIES = 500
WINDOW_S = 60 * 86400
USED_FRACTION = 0.30
MIN_SIZE, MAX_SIZE = 1024, 4096
PATHSETS = [["node_modules"], [".venv"], ["target", "~/.cargo/registry"], ["~/.m2/repository"]]
VERSION = "bench-plant"


def pathset_name(paths):
    return hashlib.sha256(("cachectl-bench-paths\n" + "\n".join(paths)).encode()).hexdigest()[:16]


def rfc3339(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s):
    return int(dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp())


def hour_stamp(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y%m%d%H")


class Entry:
    __slots__ = ("pathset", "paths", "key", "family", "created", "size", "offset", "used_hour")


def generate(n, as_of, seed):
    """The N entries, and the 1 MiB block their contents are cut from."""
    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    sets = [(pathset_name(p), p) for p in PATHSETS]
    out = []
    for _ in range(n):
        e = Entry()
        f = rng.randrange(FAMILIES)
        e.pathset, e.paths = sets[f % len(sets)]
        e.family = f"fam{f}"
        e.key = f"{e.family}-{rng.getrandbits(64):016x}"
        e.created = as_of - rng.randrange(WINDOW_S)
        e.size = rng.randint(MIN_SIZE, MAX_SIZE)
        e.offset = rng.randrange(len(block) - e.size)
        e.used_hour = None
        if rng.random() < USED_FRACTION:
            e.used_hour = hour_stamp(rng.randint(e.created, as_of))
        out.append(e)
    return out, block


def meta_of(e):
    return {"format": 1, "key": e.key, "paths": e.paths, "family": e.family,
            "created": rfc3339(e.created), "cachectl": VERSION}


def entry_object(e):
    return f"v1/{e.pathset}/{e.key}"


def use_object(e):
    return f"v1-used/{e.pathset}/{e.used_hour}/{e.key}"


# ---------------------------------------------------------------------------------------------
# local store

def plant_local(root, entries, block):
    made = set()
    for e in entries:
        d = os.path.join(root, "v1", e.pathset)
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        path = os.path.join(d, e.key)
        with open(path, "wb") as f:
            f.write(block[e.offset:e.offset + e.size])
        with open(path + "%meta", "w") as f:
            json.dump(meta_of(e), f)
        if e.used_hour:
            u = os.path.join(root, use_object(e))
            ud = os.path.dirname(u)
            if ud not in made:
                os.makedirs(ud, exist_ok=True)
                made.add(ud)
            open(u, "wb").close()


# ---------------------------------------------------------------------------------------------
# S3: PutObject signed with SigV4 (UNSIGNED-PAYLOAD), path-style URLs

class S3:
    def __init__(self, bucket):
        ep = urllib.parse.urlsplit(os.environ["AWS_ENDPOINT_URL"])
        if ep.scheme != "http":
            sys.exit("plant.py: AWS_ENDPOINT_URL must be http://host:port (a local test server)")
        self.host = ep.netloc
        self.bucket = bucket
        self.ak = os.environ["AWS_ACCESS_KEY_ID"]
        self.sk = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.local = threading.local()
        self.keys = {}

    def signing_key(self, day):
        k = self.keys.get(day)
        if k is None:
            k = ("AWS4" + self.sk).encode()
            for part in (day, self.region, "s3", "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self.keys[day] = k
        return k

    def conn(self, fresh=False):
        c = getattr(self.local, "c", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection(self.host, timeout=60)
            self.local.c = c
        return c

    def put(self, name, body, meta):
        now = time.gmtime()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", now)
        day = amz_date[:8]
        uri = "/" + urllib.parse.quote(f"{self.bucket}/{name}", safe="/-_.~")
        headers = {"host": self.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": amz_date}
        for k, v in meta.items():
            headers["x-amz-meta-" + k] = v
        signed = sorted(headers)
        canonical = "\n".join([
            "PUT", uri, "",
            "".join(f"{k}:{headers[k]}\n" for k in signed),
            ";".join(signed), "UNSIGNED-PAYLOAD"])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        sig = hmac.new(self.signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, "
                                    f"SignedHeaders={';'.join(signed)}, Signature={sig}")
        headers["content-length"] = str(len(body))
        del headers["host"]  # http.client sends it
        for attempt in range(3):
            try:
                c = self.conn(fresh=attempt > 0)
                c.request("PUT", uri, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                if r.status == 200:
                    return
                raise RuntimeError(f"PUT {name}: HTTP {r.status}: {data[:300]!r}")
            except (http.client.HTTPException, ConnectionError, OSError) as e:
                if attempt == 2:
                    raise RuntimeError(f"PUT {name}: {e}") from e


def pct(s):
    return urllib.parse.quote(s, safe="-_.~")


def s3_meta(e):
    return {"cachectl-format": "1", "cachectl-key": pct(e.key), "cachectl-paths": pct(json.dumps(e.paths, separators=(",", ":"))),
            "cachectl-family": pct(e.family), "cachectl-created": rfc3339(e.created), "cachectl-version": VERSION}


def plant_s3(bucket, entries, block, threads):
    s3 = S3(bucket)

    def one(e):
        s3.put(entry_object(e), block[e.offset:e.offset + e.size], s3_meta(e))
        if e.used_hour:
            s3.put(use_object(e), b"", {})

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, entries, chunksize=64):
            pass


# ---------------------------------------------------------------------------------------------

def select(entries, only):
    if not only:
        return entries
    with open(only) as f:
        want = {line.strip() for line in f if line.strip()}
    got = [e for e in entries if f"{e.pathset}/{e.key}" in want]
    if len(got) != len(want):
        sys.exit(f"plant.py: {len(want) - len(got)} of the names in {only} are not in this store")
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["plant", "objects"])
    ap.add_argument("--store", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--as-of", required=True, help="RFC 3339 UTC, e.g. 2026-11-01T00:00:00Z")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--only", help="file of <pathset>/<key> lines")
    ap.add_argument("--threads", type=int, default=48)
    a = ap.parse_args()
    entries, block = generate(a.n, parse_time(a.as_of), a.seed)
    entries = select(entries, a.only)
    s3_bucket = a.store[5:].split("/", 1)[0] if a.store.startswith("s3://") else None
    if s3_bucket is not None and a.store[5:].strip("/") != s3_bucket:
        sys.exit("plant.py: S3 stores with a prefix are not supported; use s3://bucket")

    if a.command == "objects":
        if not a.only:
            sys.exit("plant.py objects needs --only")
        out = sys.stdout
        for e in entries:
            objs = [entry_object(e)] + ([use_object(e)] if e.used_hour else [])
            for o in objs:
                if s3_bucket is not None:
                    out.write(f"s3://{s3_bucket}/{o}\n")
                else:
                    out.write(os.path.join(a.store, o) + "\n")
                    if o.startswith("v1/"):
                        out.write(os.path.join(a.store, o) + "%meta\n")
        return

    t0 = time.monotonic()
    if s3_bucket is not None:
        plant_s3(s3_bucket, entries, block, a.threads)
    else:
        plant_local(a.store, entries, block)
    print(json.dumps({
        "store": a.store,
        "entries": len(entries),
        "use_records": sum(1 for e in entries if e.used_hour),
        "bytes": sum(e.size for e in entries),
        "seconds": round(time.monotonic() - t0, 3),
    }))


if __name__ == "__main__":
    main()
