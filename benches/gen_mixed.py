#!/usr/bin/env python3
"""Writes workload (d): one file of mixed compressibility, deterministic (fixed seed).

    gen_mixed.py OUT [SIZE_MIB=1024]

The file is a sequence of 4 MiB segments, each one of:
  - random bytes (incompressible), 40 % of segments: like packed binaries, images, .so files;
  - text-like lines (log lines / source-ish tokens from a vocabulary), 60 % of segments.
zstd -3 gets roughly 1.5-1.7x on the whole; gzip somewhat less.
"""
import random
import sys

SEG = 4 * 1024 * 1024


def text_pool(rng, n_lines=200_000):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(5000)]
    levels = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
    lines = []
    for i in range(n_lines):
        kind = rng.random()
        if kind < 0.5:
            line = "2026-11-%02d %02d:%02d:%02d.%03d %s [%s] %s id=%d took=%dms\n" % (
                rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                rng.randint(0, 999), rng.choice(levels),
                rng.choice(words), " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))),
                rng.randint(0, 10**9), rng.randint(0, 5000))
        else:
            ind = "  " * rng.randint(0, 4)
            line = "%sconst %s = %s(%s, %d);\n" % (
                ind, rng.choice(words), rng.choice(words),
                ", ".join(rng.choice(words) for _ in range(rng.randint(0, 4))), rng.randint(0, 65535))
        lines.append(line.encode())
    return lines


def main():
    out = sys.argv[1]
    size = int(sys.argv[2]) * 1024 * 1024 if len(sys.argv) > 2 else 1024 * 1024 * 1024
    rng = random.Random(20261126)
    pool = text_pool(rng)
    avg = sum(map(len, pool)) // len(pool)
    written = 0
    with open(out, "wb") as f:
        while written < size:
            n = min(SEG, size - written)
            if rng.random() < 0.4:
                seg = rng.randbytes(n)
            else:
                seg = b"".join(rng.choices(pool, k=n // avg + 64))[:n]
            f.write(seg)
            written += n


if __name__ == "__main__":
    main()
