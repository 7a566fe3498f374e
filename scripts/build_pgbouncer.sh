#!/usr/bin/env bash
# Builds PgBouncer >= 1.21 (max_prepared_statements) from Debian 13's source package, for
# Debian 12 where apt has 1.18 only (bookworm-backports has none; trixie's binary needs
# glibc 2.38). Prints the binary's path; reuses an earlier build under .cache/.
#   PGBOUNCER_121=$(scripts/build_pgbouncer.sh) make test-pgbouncer
# Needs apt-get (root, to install libevent-dev libc-ares-dev libssl-dev pkg-config), make, cc.
# apt's own configuration is not changed: the trixie source list lives in the build dir.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/.cache/pgbouncer-src
prefix=$root/.cache/pgbouncer-121
if [[ -x $prefix/bin/pgbouncer ]]; then echo "$prefix/bin/pgbouncer"; exit 0; fi
mkdir -p "$dir/lists/partial"
log=$dir/build.log
: > "$log"
{
    missing=()
    for p in libevent-dev libc-ares-dev libssl-dev pkg-config; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if (( ${#missing[@]} )); then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; fi
    echo "deb-src http://deb.debian.org/debian trixie main" > "$dir/sources.list"
    apt=(-o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=/dev/null -o Dir::State::Lists="$dir/lists")
    apt-get "${apt[@]}" update -qq
    cd "$dir"
    apt-get "${apt[@]}" source --download-only pgbouncer
    tarball=$(ls pgbouncer_*.orig.tar.gz | sort -V | tail -1)
    src=$(tar tzf "$tarball" | head -1 | cut -d/ -f1)
    rm -rf "$src" && tar xzf "$tarball"
    cd "$src"
    ./configure --prefix="$prefix" --without-pam --without-systemd
    make -j2
    make install
} >> "$log" 2>&1 || { echo "build_pgbouncer.sh: failed, see $log" >&2; exit 1; }
# pgbouncer runs as the server's unprivileged user when we are root: let it reach the binary.
chmod -R a+rX "$prefix"
echo "$prefix/bin/pgbouncer"
