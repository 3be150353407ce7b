#!/usr/bin/env bash
# Installs versitygw (a real S3-compatible gateway with a posix backend) into
# $(go env GOPATH)/bin when it is missing. The output package's S3 tests start it on
# loopback. Idempotent: does nothing when the pinned binary is already installed.
set -euo pipefail

VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"

command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
bin="$(go env GOPATH)/bin/versitygw"
stamp="$(go env GOPATH)/bin/.versitygw-version"

if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$VERSITYGW_VERSION" ]; then
  echo "versitygw $VERSITYGW_VERSION already installed at $bin"
  exit 0
fi

echo "installing versitygw $VERSITYGW_VERSION into $(dirname "$bin")"
# Build outside the project so its go.mod is not involved.
(cd "$(mktemp -d)" && GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}")
echo "$VERSITYGW_VERSION" > "$stamp"
"$bin" --version >/dev/null
echo "versitygw installed: $bin"
