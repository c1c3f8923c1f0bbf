#!/usr/bin/env bash
# The contract only grows: `buf lint` (STANDARD, see buf.yaml) and `buf breaking` of the proto
# in the working tree against the proto of the previous commit (HEAD~1; HEAD on a first commit).
# buf comes from the npm registry, pinned in package.json / package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"
buf=node_modules/.bin/buf
if [ ! -x "$buf" ] || [ package-lock.json -nt "$buf" ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch "$buf"
fi
"$buf" lint
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
rev=$(git rev-parse -q --verify HEAD~1 || git rev-parse HEAD)
git archive "$rev" . | tar -x -C "$before"
"$buf" breaking . --against "$before"
echo "contract: buf lint and buf breaking against ${rev:0:12} passed"
