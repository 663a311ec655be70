#!/usr/bin/env bash
# A scheduled CI job: fail when the configuration drifted (exit code 2 of
# plan -detailed-exitcode) or when a check block failed (a destination out
# of sync), which plan reports as a warning only.
set -euo pipefail
set +e
terraform plan -input=false -detailed-exitcode -out=drift.tfplan
code=$?
set -e
if [ "$code" -eq 1 ]; then exit 1; fi
failed=$(terraform show -json drift.tfplan | jq -r '[.checks[]? | select(.status == "fail") | .address.to_display] | join(", ")')
if [ -n "$failed" ]; then
  echo "failed checks: $failed" >&2
  exit 3
fi
exit "$code"
