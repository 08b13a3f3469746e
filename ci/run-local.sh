#!/usr/bin/env bash
# The pipeline's stages (test -> train -> publish) on this machine, against the local stack:
# what CI does, without CI. From the project root:
#
#   bash ci/run-local.sh
#
# With EDML_KAFKA_BOOTSTRAP set it uses that broker (and EDML_STORAGE_*) and starts
# nothing; otherwise it starts the local stack (Tansu + the GCS emulator) and stops it at
# the end. TRAIN_ARGS (default --quick), TEST_ARGS and MODEL_NAME change the stages.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=.venv/bin
work=$(mktemp -d)
stack_pid=""
cleanup() {
  if [ -n "$stack_pid" ]; then kill -INT "$stack_pid" 2>/dev/null || true; wait "$stack_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${EDML_KAFKA_BOOTSTRAP:-}" ]; then
  echo "== starting the local stack"
  "$bin/edml" stack --storage gcs --env-file "$work/stack.env" >"$work/stack.log" 2>&1 &
  stack_pid=$!
  for _ in $(seq 600); do
    [ -f "$work/stack.env" ] && break
    kill -0 "$stack_pid" 2>/dev/null || { cat "$work/stack.log"; exit 1; }
    sleep 0.1
  done
  [ -f "$work/stack.env" ] || { echo "the local stack did not start"; cat "$work/stack.log"; exit 1; }
  set -a; . "$work/stack.env"; set +a
fi

if [ -n "${TEST_ARGS:-}" ]; then read -ra test_args <<<"$TEST_ARGS"
else test_args=(-m "not kafka and not gcs and not tf" tests/edml); fi
read -ra train_args <<<"${TRAIN_ARGS:---quick}"

echo "== stage: test"
"$bin/pytest" -q "${test_args[@]}"

echo "== stage: train"
"$bin/edml" train "${train_args[@]}" --out "$work/model-out"
version=$("$bin/edml" models version)

echo "== stage: publish $version"
"$bin/edml" publish "$work/model-out/saved_model" --name "${MODEL_NAME:-trip-duration}" --version "$version"
"$bin/edml" models list
