#!/usr/bin/env bash
# Installs the Debian packages the planner links against: COIN-OR CBC for the `milp` strategy and
# COIN-OR CLP for the thorough lower bound (coinor-libcbc-dev depends on coinor-libclp-dev; both
# are named so that neither is left out if that ever changes).
set -euo pipefail
PACKAGES=(coinor-libcbc-dev coinor-libclp-dev)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "installing ${missing[*]} (COIN-OR CBC and CLP, used by milp and the thorough bound)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
