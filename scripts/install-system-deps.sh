#!/usr/bin/env bash
# Checks the programs wikitide needs from the system and installs redis-server from Debian when it is missing.
set -euo pipefail

missing=0
if ! command -v java >/dev/null 2>&1; then
  echo "wikitide: 'java' (17 or newer) is needed for the KCL MultiLangDaemon; install a JDK, e.g. 'apt-get install openjdk-17-jre-headless'." >&2
  missing=1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "wikitide: 'node' and 'npm' (20 or newer) are needed for kinesis-mock; install Node.js 20." >&2
  missing=1
fi
packages=()
if ! command -v redis-server >/dev/null 2>&1; then
  echo "wikitide: installing redis-server from Debian packages" >&2
  packages+=(redis-server)
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  # The dashboard's browser test (tests/browser) drives Debian's own chromium; nothing is downloaded at run time.
  echo "wikitide: installing chromium and chromium-driver from Debian packages (for the dashboard's browser test)" >&2
  packages+=(chromium chromium-driver)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  sudo_cmd=""
  if [ "$(id -u)" != "0" ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
exit "$missing"
