#!/usr/bin/env bash
# Installs the Debian packages the planner links against (COIN-OR CBC for the `milp` strategy).
set -euo pipefail
if dpkg -s coinor-libcbc-dev >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "installing coinor-libcbc-dev (COIN-OR CBC, used by the milp strategy)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq coinor-libcbc-dev >/dev/null
