#!/usr/bin/env bash
# Installs the Debian packages the tests, the demo and the benchmarks use, when missing:
# nginx and curl (real HTTP peers), wrk and h2load (load), sysbench and the mariadb client
# (MySQL peers and load), haproxy (a C proxy the benchmarks measure as a reference), perf (instruction counts), chromium and chromedriver (dashboard browser tests).
# MariaDB's server binaries are expected on the machine (tests fall back to a private mariadbd).
set -euo pipefail

declare -A needed=(
  [nginx]=nginx [curl]=curl [wrk]=wrk [h2load]=nghttp2-client [sysbench]=sysbench
  [mariadb]=mariadb-client [haproxy]=haproxy [perf]=linux-perf [chromium]=chromium [chromedriver]=chromium-driver
)
missing=()
for command in "${!needed[@]}"; do
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("${needed[$command]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "not root: run 'sudo apt-get install -y ${missing[*]}' and try again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
