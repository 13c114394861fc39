#!/usr/bin/env bash
# Roll a release out to one region: migrations first, then the roles.
#   k8s/deploy.sh <region> <image tag>      (kubectl's current context must be that region's cluster)
# The overlay in git is not edited: the tag is set on a temporary kustomization that includes it.
set -euo pipefail
region=${1:?usage: k8s/deploy.sh <region> <image tag>}
tag=${2:?usage: k8s/deploy.sh <region> <image tag>}
here=$(cd "$(dirname "$0")" && pwd)
overlay="$here/overlays/$region"
[ -d "$overlay" ] || { echo "no overlay for region $region" >&2; exit 1; }
context=$(kubectl config current-context)
case "$context" in
	*"$region"*) ;;
	*) echo "kubectl context '$context' does not name $region; switch with gcloud container clusters get-credentials" >&2; exit 1 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$tmp" "$overlay")
images:
  - name: europe-docker.pkg.dev/wallet-prod/wallet/wallet-backend
    newTag: "$tag"
YAML
kubectl kustomize "$tmp" >"$tmp/all.yaml"

echo "== $region: namespace, configuration, secrets, NATS"
kubectl apply --server-side -f "$tmp/all.yaml" --selector 'app.kubernetes.io/component notin (gateway,core,claiming,region,replication,migrations)'
kubectl -n wallet wait --for=condition=Ready externalsecret/wallet-secrets --timeout=120s
kubectl -n wallet rollout status statefulset/nats --timeout=300s

echo "== $region: migrations"
# A Job's pod template cannot change: the previous release's Job goes first.
kubectl -n wallet delete job wallet-migrate --ignore-not-found --wait=true
kubectl apply --server-side -f "$tmp/all.yaml" --selector app.kubernetes.io/component=migrations
if ! kubectl -n wallet wait --for=condition=Complete job/wallet-migrate --timeout=900s; then
	kubectl -n wallet logs job/wallet-migrate -c migrate --tail=100 >&2 || true
	echo "migrations failed: the roles were not touched" >&2
	exit 1
fi

echo "== $region: roles"
kubectl apply --server-side -f "$tmp/all.yaml"
for d in $(kubectl -n wallet get deployments -l app.kubernetes.io/name=wallet -o name); do
	kubectl -n wallet rollout status "$d" --timeout=600s
done
echo "== $region: $tag is out"
