#!/bin/sh
# Usage: [CACHECTL_VERSION=X.Y.Z] [CACHECTL_BUCKET=bucket | CACHECTL_STORE=s3://bucket/prefix |
#         CACHECTL_DOWNLOAD_URL=base-url] [CACHECTL_INSTALL_DIR=dir] [CACHECTL_STRICT=1] sh install.sh
#
# Installs the cachectl release binary for this machine's architecture (uname -m: x86_64, or
# aarch64/arm64) into CACHECTL_INSTALL_DIR (default /usr/local/bin), for the install phase of an
# AWS CodeBuild build. Environment, all optional:
#
#   CACHECTL_VERSION       version to install, e.g. 0.1.0 (default: the source's `latest` file)
#   CACHECTL_BUCKET        bucket holding cachectl/bin/..., fetched with `aws s3 cp`
#   CACHECTL_STORE         s3://bucket/prefix: the bucket is taken from it if CACHECTL_BUCKET is unset
#   CACHECTL_DOWNLOAD_URL  base URL laid out like s3://BUCKET/cachectl/bin, fetched with curl
#                          (https://..., file:///...); takes precedence over the bucket
#   CACHECTL_INSTALL_DIR   where `cachectl` goes; should be on PATH (default /usr/local/bin)
#   CACHECTL_STRICT=1      fail (exit 1) on any problem instead of warning (also true/yes/on;
#                          unset, empty, 0, false, no, off: not strict)
#
# Source layout (buildspecs/README.md), <target> = x86_64-unknown-linux-musl | aarch64-unknown-linux-musl:
#   <base>/latest                               the version string, e.g. `0.1.0`
#   <base>/<version>/cachectl-<target>          the static binary
#   <base>/<version>/cachectl-<target>.sha256   `<hex>  cachectl-<target>`
#
# What it does: nothing if <dir>/cachectl --version already prints `cachectl <version>`. Otherwise
# it downloads the checksum and the binary to temporary files in <dir>, verifies the sha256 and
# that the binary runs and reports <version>, then chmods and renames it over <dir>/cachectl
# (atomic: a half-written or unverified binary never has the name `cachectl`).
#
# The cache layer must never break a build. On any failure it prints one line starting
# `cachectl install: WARNING:` and exits 0. A cachectl already on PATH is kept if it knows
# `cachectl run` (older ones reject it, exit 2, failing the build). Otherwise it also writes a
# stand-in `cachectl` that prints a warning and exits 0, so the later `cachectl restore` /
# `cachectl save` lines of the buildspec do nothing instead of failing with "command not found";
# only `cachectl [global options] run ... -- COMMAND` runs COMMAND (as after a miss), since
# skipping an install step would break the build. The stand-in goes to <dir>, or over an older
# cachectl where that one is (a stand-in behind it on PATH would never run). With
# CACHECTL_STRICT=1 it prints `cachectl install: ERROR:` and exits 1 instead, writing no stand-in.
set -u

me="cachectl install"
dir=${CACHECTL_INSTALL_DIR:-/usr/local/bin}
dir=${dir%/}
[ -n "$dir" ] || dir=/
dest=$dir/cachectl

# Falsy as for cachectl's own CACHECTL_STRICT, in any case.
case $(printf '%s' "${CACHECTL_STRICT:-}" | tr '[:upper:]' '[:lower:]') in
  '' | 0 | false | no | off | n | f) strict=0 ;;
  *) strict=1 ;;
esac

tmp_bin=
tmp_sum=
tmp_latest=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  for f in "$tmp_bin" "$tmp_sum" "$tmp_latest"; do
    if [ -n "$f" ]; then rm -f "$f"; fi
  done
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

info() {
  printf '%s: %s\n' "$me" "$*" >&2
}

# First line of `$1 --version` on stdout; empty if it does not run. The stand-in prints nothing there.
version_of() {
  if [ -f "$1" ] && [ -x "$1" ]; then
    "$1" --version 2>/dev/null </dev/null | sed -n '1p'
  fi
}

# mk_tmp NAME [DIR]: a fresh temp file in DIR, default $dir (the same filesystem as the file it
# will become, so the final mv is a rename).
mk_tmp() {
  tdir=${2:-$dir}
  mktemp "$tdir/.cachectl-install.XXXXXX" 2>/dev/null && return 0
  f="$tdir/.cachectl-install.$$.$1"
  (true >"$f") 2>/dev/null && printf '%s\n' "$f"
}

# Whether the cachectl at $1 has `cachectl run`, which the buildspecs call: older releases answer
# it with clap's "unrecognized subcommand" (exit 2), which would fail the build.
knows_run() {
  "$1" run --help >/dev/null 2>&1 </dev/null
}

# write_shim DIR: the stand-in DIR/cachectl. It warns on stderr, prints nothing on stdout (so
# `--json` readers see no outcome), exits 0; `run ... -- COMMAND` execs COMMAND, so its output
# and exit status are the command's.
write_shim() {
  mkdir -p "$1" 2>/dev/null || return 1
  shim=$(mk_tmp shim "$1") || return 1
  if cat >"$shim" <<'EOF' && chmod 755 "$shim" && mv -f "$shim" "$1/cachectl"; then
#!/bin/sh
# cachectl-install-shim: written by cachectl's bootstrap/install.sh because the real cachectl
# could not be installed (and no cachectl on PATH had `run`). It only warns and exits 0, so the build goes on without caching, but
# `cachectl run ... -- COMMAND` runs COMMAND (as after a miss): skipping it would break the build.
# Run install.sh again (or delete this file) once the cache layer is back.
#
# Global options may come before the subcommand (`cachectl --json run`, `-q run`,
# `--store URL run`), so `run` anywhere before the first `--` makes this a run. A flag value or
# path that is the word `run` (`--config run`) is taken for it too, and then fails for want of
# a `--`: accepted, to keep this short, as cachectl's values are URLs, paths and cache names.
is_run=
for a in "$@"; do
  [ "$a" = -- ] && break
  [ "$a" = run ] && is_run=1
done
if [ -n "$is_run" ]; then
  while [ $# -gt 0 ]; do a=$1; shift; [ "$a" = -- ] && break; done
  if [ $# -eq 0 ]; then
    printf 'cachectl: error: "cachectl run" needs a command after --\n' >&2
    exit 2
  fi
  printf 'cachectl: WARNING: cachectl is not installed (its install step failed, see the install phase log), so "cachectl run" runs "%s" without it; the build continues WITHOUT caching\n' "$*" >&2
  exec "$@"
fi
printf 'cachectl: WARNING: cachectl is not installed (its install step failed, see the install phase log), so "cachectl %s" did nothing; the build continues WITHOUT caching\n' "$*" >&2
exit 0
EOF
    return 0
  fi
  rm -f "$shim"
  return 1
}

fail() {
  if [ "$strict" = 1 ]; then
    printf '%s: ERROR: %s; failing the build because CACHECTL_STRICT=%s\n' "$me" "$1" "$CACHECTL_STRICT" >&2
    exit 1
  fi
  found=$(command -v cachectl 2>/dev/null) || found=
  have=
  if [ -n "$found" ]; then have=$(version_of "$found"); fi
  case $have in
    'cachectl '*)
      if knows_run "$found"; then
        what="keeping the $have already at $found"
      else
        # Replace it where it is: a stand-in in $dir would be shadowed by it if its directory
        # comes first on PATH. Only if that directory is read-only does the stand-in go to $dir.
        for at in "$(dirname "$found")" "$dir"; do
          write_shim "$at" && break
          at=
        done
        old="the $have at $found has no \`run\` (too old; the cachectl run steps would fail with it)"
        # A new shell, as later phases run: this one may have hashed the old cachectl's path.
        now=$(sh -c 'command -v cachectl' 2>/dev/null) || now=
        if [ -z "$at" ]; then
          what="$old, and no stand-in could be written to $(dirname "$found") or $dir, so they will fail"
        elif [ "$(version_of "$now")" = "$have" ]; then
          what="$old; a stand-in was written to $at/cachectl, but $found comes first on PATH, so they will still fail: put $at before $(dirname "$found") on PATH"
        else
          what="$old, so a stand-in $at/cachectl that prints a warning replaces it on PATH: the cachectl commands of later phases do nothing (cachectl run still runs its command)"
        fi
      fi
      ;;
    *)
      if write_shim "$dir"; then
        what="no cachectl is installed, only a stand-in $dest that prints a warning, so the cachectl commands of later phases do nothing (cachectl run still runs its command)"
      else
        what="could not write a stand-in to $dest either, so later cachectl commands will fail with 'command not found'"
      fi
      ;;
  esac
  printf '%s: WARNING: %s; %s; the build continues WITHOUT caching\n' "$me" "$1" "$what" >&2
  exit 0
}

# fetch SOURCE DEST: s3:// through the aws CLI, anything else through curl.
fetch() {
  case $1 in
    s3://*) aws s3 cp --only-show-errors --cli-connect-timeout 10 --cli-read-timeout 60 "$1" "$2" </dev/null ;;
    *) curl -fsSL --retry 2 --connect-timeout 10 --max-time 300 -o "$2" "$1" </dev/null ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{print $1}'
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | awk '{print $1}'
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$1" | awk '{print $1}'
  else
    return 1
  fi
}

# --- where we are -----------------------------------------------------------------------------
os=$(uname -s 2>/dev/null) || os=unknown
[ "$os" = Linux ] || fail "this machine runs '$os', but cachectl release binaries are for Linux"
machine=$(uname -m 2>/dev/null) || machine=unknown
case $machine in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64 | armv8*) arch=aarch64 ;;
  *) fail "unsupported architecture '$machine' (uname -m); cachectl is built for x86_64 and aarch64" ;;
esac
asset=cachectl-$arch-unknown-linux-musl

# --- where from -------------------------------------------------------------------------------
if [ -n "${CACHECTL_DOWNLOAD_URL:-}" ]; then
  base=${CACHECTL_DOWNLOAD_URL%/}
else
  bucket=${CACHECTL_BUCKET:-}
  if [ -z "$bucket" ]; then
    case ${CACHECTL_STORE:-} in
      s3://?*)
        bucket=${CACHECTL_STORE#s3://}
        bucket=${bucket%%/*}
        ;;
    esac
  fi
  [ -n "$bucket" ] || fail "no download source: set CACHECTL_BUCKET, CACHECTL_STORE=s3://BUCKET/... or CACHECTL_DOWNLOAD_URL"
  base=s3://$bucket/cachectl/bin
fi
case $base in
  s3://*) command -v aws >/dev/null 2>&1 || fail "the aws CLI is not on PATH, so $base cannot be read" ;;
  *) command -v curl >/dev/null 2>&1 || fail "curl is not on PATH, so $base cannot be read" ;;
esac

# --- which version ----------------------------------------------------------------------------
mkdir -p "$dir" 2>/dev/null || fail "cannot create the install directory $dir"
version=${CACHECTL_VERSION:-}
if [ -z "$version" ]; then
  tmp_latest=$(mk_tmp latest) || fail "cannot create a temporary file in $dir"
  fetch "$base/latest" "$tmp_latest" || fail "cannot fetch $base/latest (which cachectl version to install)"
  version=$(sed -n '1p' "$tmp_latest" | tr -d ' \t\r')
fi
version=${version#v}
case $version in
  '' | *[!0-9A-Za-z.+-]*)
    from=${CACHECTL_VERSION:+CACHECTL_VERSION}
    fail "'$(printf '%s' "$version" | cut -c1-40)' is not a cachectl version (from ${from:-$base/latest})"
    ;;
esac

if [ "$(version_of "$dest")" = "cachectl $version" ]; then
  info "cachectl $version is already installed at $dest; nothing to do"
  exit 0
fi

# --- download, verify, install ----------------------------------------------------------------
url=$base/$version/$asset
tmp_sum=$(mk_tmp sha256) || fail "cannot create a temporary file in $dir"
tmp_bin=$(mk_tmp bin) || fail "cannot create a temporary file in $dir"
fetch "$url.sha256" "$tmp_sum" || fail "cannot fetch $url.sha256"
fetch "$url" "$tmp_bin" || fail "cannot fetch $url"

want=$(sed -n '1p' "$tmp_sum" | awk '{print tolower($1)}')
named=$(sed -n '1p' "$tmp_sum" | awk '{print $2}')
named=${named#\*}
case $want in
  *[!0-9a-f]*) want= ;;
esac
[ ${#want} -eq 64 ] || fail "$url.sha256 does not start with a sha256 digest, so the download cannot be verified"
[ -z "$named" ] || [ "$named" = "$asset" ] || fail "$url.sha256 is the checksum of '$named', not of $asset"
got=$(sha256_of "$tmp_bin") || got=
[ -n "$got" ] || fail "no sha256 tool (sha256sum, shasum or openssl) to verify $url"
[ "$got" = "$want" ] || fail "checksum mismatch for $url (expected $want, got $got), the download was discarded"

chmod 755 "$tmp_bin" || fail "cannot chmod $tmp_bin"
reported=$(version_of "$tmp_bin")
[ "$reported" = "cachectl $version" ] ||
  fail "the downloaded $asset reports '${reported:-nothing}' for --version, not 'cachectl $version' (a wrong architecture or a bad upload?), the download was discarded"
mv -f "$tmp_bin" "$dest" || fail "cannot move the verified binary to $dest"
tmp_bin=
info "installed cachectl $version ($asset) at $dest from $base"
case ":${PATH:-}:" in
  *":$dir:"*) ;;
  *) info "note: $dir is not on PATH; add it, or set CACHECTL_INSTALL_DIR to a directory that is" ;;
esac
exit 0
