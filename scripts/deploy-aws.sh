#!/usr/bin/env bash
# Deploy wikitide to an AWS account, layer by layer, with `wikitide deploy` (cfn-lint, the computed diff, a change
# set per layer; a layer that fails rolls itself back, its failed resources are named and the script stops):
# network, data, cache, compute, then the archive (Firehose from the stream into the data layer's bucket) and the
# monitoring (alarms, dashboard). Then wait for the API's /health and, when it does not answer 200, deploy the
# compute layer again with the image tag it ran before and exit 1. WIKITIDE names the command (default
# .venv/bin/wikitide: `make aws-deploy` installs it with cfn-lint, or `pip install -e . cfn-lint`).
#
#   scripts/deploy-aws.sh ENV IMAGE_TAG
#
# ENV is staging or production. The images <registry>/wikitide/{producer,kcl_app,api}:IMAGE_TAG must be in the
# image layer's repositories (`make push`). Needs CERTIFICATE_ARN (ACM, for the API's HTTPS listener) and
# WIKITIDE_CONTACT (an e-mail or URL, for the EventStreams User-Agent). Optional: SHARD_COUNT (2), STREAM_MODE
# (PROVISIONED), KCL_WORKERS (2), API_TASKS (2), ALARM_EMAIL (subscribed to the alarms' topic; it must confirm),
# HEALTH_URL (default: the load balancer's address; its certificate is not checked then, since it names your
# domain, not the load balancer).
set -euo pipefail

env_name="${1:?usage: $0 staging|production IMAGE_TAG}"
tag="${2:?usage: $0 staging|production IMAGE_TAG}"
: "${CERTIFICATE_ARN:?set CERTIFICATE_ARN}" "${WIKITIDE_CONTACT:?set WIKITIDE_CONTACT}"
system="wikitide-${env_name}"
cd "$(dirname "$0")/.."

wikitide="${WIKITIDE:-.venv/bin/wikitide}"

deploy() {
    local stack="$1" template="$2" parameter
    shift 2
    local params=()
    for parameter in "$@"; do
        params+=(--param "${parameter}")
    done
    echo "== ${stack} (${template})"
    "${wikitide}" deploy --stack "${stack}" --env "${env_name}" --template "cloudformation/${template}" \
        "${params[@]}" --yes
}

output() {
    aws cloudformation describe-stacks --stack-name "$1" \
        --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

previous_tag="$(aws cloudformation describe-stacks --stack-name "${system}-compute" \
    --query "Stacks[0].Parameters[?ParameterKey=='ImageTag'].ParameterValue" --output text 2>/dev/null || true)"

deploy "${system}-network" network.yaml "Environment=${env_name}"
deploy "${system}" wikitide.yaml "Environment=${env_name}" "ShardCount=${SHARD_COUNT:-2}" \
    "StreamMode=${STREAM_MODE:-PROVISIONED}"
deploy "${system}-cache" cache.yaml "Environment=${env_name}" "NetworkStackName=${system}-network"
compute_parameters=(
    "Environment=${env_name}" "NetworkStackName=${system}-network" "ImagesStackName=wikitide-images"
    "DataStackName=${system}" "CacheStackName=${system}-cache" "CertificateArn=${CERTIFICATE_ARN}"
    "Contact=${WIKITIDE_CONTACT}" "KclWorkers=${KCL_WORKERS:-2}" "ApiTasks=${API_TASKS:-2}"
)
deploy "${system}-compute" compute.yaml "${compute_parameters[@]}" "ImageTag=${tag}"
deploy "${system}-archive" archive.yaml "DataStackName=${system}"
deploy "${system}-monitoring" monitoring.yaml "DataStackName=${system}" \
    "ClusterName=$(output "${system}-compute" ClusterName)" "AlarmEmail=${ALARM_EMAIL:-}"

health_url="${HEALTH_URL:-$(output "${system}-compute" ApiUrl)}/health"
for _ in $(seq 1 40); do
    if curl --fail --silent --show-error --insecure --max-time 5 "${health_url}" > /dev/null; then
        echo "healthy: ${health_url} (image ${tag})"
        exit 0
    fi
    sleep 15
done
echo "not healthy after 10 minutes: ${health_url}" >&2
if [ -n "${previous_tag}" ] && [ "${previous_tag}" != "None" ] && [ "${previous_tag}" != "${tag}" ]; then
    echo "rolling the services back to image ${previous_tag}" >&2
    deploy "${system}-compute" compute.yaml "${compute_parameters[@]}" "ImageTag=${previous_tag}"
fi
exit 1
