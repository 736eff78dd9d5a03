#!/bin/bash
# Regenerate protocols/tests/data/http2/*.rec from real peers on loopback.
# Needs: nghttp2-client nghttp2-server curl python3-h2 python3-grpcio nodejs
# (see scripts/apt-packages.txt). Run from anywhere; takes ~30 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)
py=/usr/bin/python3
www=$(mktemp -d)
trap 'kill ${pids:-} 2>/dev/null || true; rm -rf "$www"' EXIT
pids=""

# Deterministic content: nghttpd serves these.
$py -c "import sys; sys.stdout.write(''.join(chr(97 + i % 26) for i in range(1000)))" > "$www/index.html"
$py -c "import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(100000)))" > "$www/big.bin"
printf 'body{}\n' > "$www/style.css"
$py -c "import sys; sys.stdout.buffer.write(b'u' * 5000)" > "$www/upload.bin"

start() { "$@" & pids="$pids $!"; }
relay() { # relay LISTEN TARGET NAME [CONNS]
  $py "$here/relay.py" "$1" "$2" "$out/$3" "${4:-1}" > "$www/relay.$3" &
  local p=$!; pids="$pids $p"; relay_pid=$p
  for _ in $(seq 50); do grep -q ready "$www/relay.$3" 2>/dev/null && return; sleep 0.1; done
}
finish() { wait "$relay_pid"; }

start nghttpd --no-tls -d "$www" -p /index.html=/style.css 28080
start $py "$here/h2_peer.py" server 28081
start $py "$here/grpc_peer.py" server 28082
start node "$here/node_h2.js" server 28083
sleep 1.5

relay 29080 28080 curl_prior_knowledge
# One URL: curl 7.88 fails (error 16) reusing the connection with nghttpd.
curl -s --http2-prior-knowledge -o /dev/null http://127.0.0.1:29080/big.bin
finish

relay 29081 28081 curl_upgrade
curl -s --http2 -o /dev/null http://127.0.0.1:29081/small
finish

relay 29082 28080 nghttp_push_continuation
nghttp -n -m 3 --continuation -b 17 -d "$www/upload.bin" http://127.0.0.1:29082/index.html
finish

relay 29083 28081 python_h2
$py "$here/h2_peer.py" client 29083
finish

relay 29084 28082 grpc_python
$py "$here/grpc_peer.py" client 29084 > /dev/null
finish

relay 29085 28083 node_http2
node "$here/node_h2.js" client 29085
finish
ls -l "$out"/*.rec
