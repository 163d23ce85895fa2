#!/usr/bin/env bash
# Print the lab's secrets as shell exports, generating them once into .build/lab.env (mode 0600,
# git-ignored). The lab inventory and the molecule scenarios read them from the environment.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV_FILE="$ROOT/.build/lab.env"
if [[ ! -f "$ENV_FILE" ]]; then
  mkdir -p "$(dirname "$ENV_FILE")"
  umask 077
  {
    echo "export CHRONOS_LAB_CIPHER_PASS=$(openssl rand -base64 48 | tr -d '\n')"
    echo "export CHRONOS_LAB_S3_KEY=lab$(openssl rand -hex 8)"
    echo "export CHRONOS_LAB_S3_KEY_SECRET=$(openssl rand -hex 20)"
    echo "export CHRONOS_LAB_DB_PASSWORD=$(openssl rand -hex 12)"
  } >"$ENV_FILE"
fi
cat "$ENV_FILE"
echo "export CHRONOS_LAB_CA_FILE=$ROOT/.build/tls/ca.crt"
