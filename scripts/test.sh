#!/usr/bin/env bash
# Runs every module's tests with the race detector and shuffled order.
# Tests that need Redis use REDIS_URL (default 127.0.0.1:6379); when nothing
# answers there and redis-server is installed, one is started on a free port
# for this run and stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

redis_answers() { # host port
  local reply
  exec 3<>"/dev/tcp/$1/$2" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 2 reply <&3 || true
  exec 3<&- 3>&-
  [[ "$reply" == +PONG* ]]
}

addr="${REDIS_URL:-127.0.0.1:6379}"
addr="${addr#redis://}"; addr="${addr%%/*}"; addr="${addr##*@}"
host="${addr%:*}"; port="${addr##*:}"
if ! redis_answers "$host" "$port"; then
  if command -v redis-server >/dev/null 2>&1; then
    port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo 16379)
    dir=$(mktemp -d)
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" --daemonize no >"$dir/redis.log" 2>&1 &
    redis_pid=$!
    trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 1 50); do redis_answers 127.0.0.1 "$port" && break; sleep 0.1; done
    export REDIS_URL="127.0.0.1:$port"
    echo "test: started redis-server on $REDIS_URL for this run"
  else
    echo "test: no Redis at $host:$port and no redis-server installed; tests that need Redis fail when CI is set" >&2
  fi
fi

mapfile -t mods < <(go list -m -f '{{.Dir}}/...')
go test -race -shuffle=on -timeout 20m -count=1 "$@" "${mods[@]}"
# A few seconds of fuzzing of the one parser that reads input from outside
# (Okta's event hook deliveries), beyond its seed corpus.
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 5s ./services/sync/internal/hooks
