#!/usr/bin/env bash
# make check: formatting, vet, buf lint and breaking, go mod tidy, generated
# code freshness and the Kubernetes manifests. Fails on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
step() { printf '== %s\n' "$*"; }
bad() { printf 'check: %s\n' "$*" >&2; fail=1; }

mapfile -t mods < <(go list -m -f '{{.Dir}}')
pkgs=(); for m in "${mods[@]}"; do pkgs+=("$m/..."); done

step gofmt
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
[ -z "$unformatted" ] || bad "gofmt would change (run gofmt -w): $unformatted"

step "go vet"
go vet "${pkgs[@]}" || bad "go vet found problems"
(cd tools && GOWORK=off go vet ./kustomizecheck/...) || bad "go vet found problems in tools"

step "go mod tidy"
for m in "${mods[@]}" "$PWD/tools"; do
  (cd "$m" && GOWORK=off go mod tidy -diff >/dev/null) || bad "go.mod or go.sum of ${m#$PWD/} is not tidy (run: cd ${m#$PWD/} && GOWORK=off go mod tidy)"
done

BUF=$(GOWORK=off go -C tools tool -n buf)

step "buf lint"
"$BUF" lint || bad "buf lint found problems"
"$BUF" format -d --exit-code >/dev/null || bad "buf format would change the protos (run: buf format -w)"

step "buf breaking"
# Against the previous commit when the protos are committed, else against HEAD.
if git diff --quiet HEAD -- proto 2>/dev/null && [ -z "$(git ls-files --others --exclude-standard proto)" ]; then
  against=HEAD~1
else
  against=HEAD
fi
if git cat-file -e "$against:proto" 2>/dev/null; then
  "$BUF" breaking --against ".git#ref=$(git rev-parse "$against")" || bad "buf breaking: the protos break compatibility with $against"
else
  echo "no protos in $against; nothing to compare"
fi

step "generated code"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$BUF" generate --output "$tmp"
diff -r "$tmp/libs/gen" libs/gen >/dev/null || bad "libs/gen is stale (run: make generate)"

step "kubernetes manifests"
(cd tools && GOWORK=off go test -count=1 ./kustomizecheck >/dev/null) || bad "kustomizecheck tests fail"
(cd tools && GOWORK=off go run ./kustomizecheck ../deploy/base && GOWORK=off go run ./kustomizecheck ../deploy/overlays/dev) || bad "deploy manifests are invalid"

if [ "$fail" != 0 ]; then
  echo "make check: FAILED" >&2
  exit 1
fi
echo "make check: ok"
