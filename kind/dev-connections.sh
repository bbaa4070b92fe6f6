#!/usr/bin/env bash
# Development only (Tiltfile): create the namespace (restricted Pod Security Standard) and the
# connection Secret the chart and the operator read, with fresh random passwords for the dev
# PostgreSQL and Redis of kind/dev-services.yaml. An existing Secret is left alone, so the
# passwords stay those the dev databases were initialised with.
#
#   bash kind/dev-connections.sh [NAMESPACE]
set -euo pipefail

namespace="${1:-alphaspt}"
secret=alphaspt-connections

kubectl apply -f - <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: ${namespace}
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
YAML

if kubectl -n "${namespace}" get secret "${secret}" >/dev/null 2>&1; then
  echo "secret ${namespace}/${secret} exists; keeping it"
  exit 0
fi

random() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }
postgres_password="$(random)"
redis_password="$(random)"
api_token="$(random)"

env_file="$(mktemp)"
trap 'rm -f "${env_file}"' EXIT
chmod 600 "${env_file}"
cat >"${env_file}" <<ENV
postgres-password=${postgres_password}
redis-password=${redis_password}
ALPHASPT_KAFKA__BOOTSTRAP_SERVERS=redpanda.${namespace}.svc.cluster.local:9092
ALPHASPT_POSTGRES__URL=postgresql+asyncpg://alphaspt:${postgres_password}@postgres.${namespace}.svc.cluster.local:5432/alphaspt
ALPHASPT_REDIS__URL=redis://:${redis_password}@redis.${namespace}.svc.cluster.local:6379/0
ALPHASPT_API__TOKEN=${api_token}
ENV
kubectl -n "${namespace}" create secret generic "${secret}" --from-env-file="${env_file}"
echo "created secret ${namespace}/${secret}; the API token:"
echo "  kubectl -n ${namespace} get secret ${secret} -o jsonpath='{.data.ALPHASPT_API__TOKEN}' | base64 -d"
