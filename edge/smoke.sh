#!/usr/bin/env bash
# End-to-end check of the Cloudflare Worker under `wrangler dev`, against the
# Upstash protocol served locally (flowchat-gateway over redis-server), with
# answers written by `flowchat-drain --follow`. Prints what it checked and
# the measurements (upload size, time from ready to the first answer, Upstash
# requests per chat submission, per-request times); exits non-zero on any
# failure.
#
# Usage: edge/smoke.sh [--no-build]
# Needs: scripts/edge-toolchain done, redis-server, python3. Builds
# flowchat-gateway and flowchat-drain (debug) unless GATEWAY_BIN / DRAIN_BIN
# point at them.
#
# Two gateways share one redis-server: the Worker talks to one, the drain to
# the other, so the Worker's gateway counts only the Worker's requests.
set -euo pipefail
edge="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$edge")"
build_flag=""
[ "${1:-}" = "--no-build" ] && build_flag="--no-build"

say() { echo "smoke: $*" >&2; }
work="$(mktemp -d -t flowchat-edge-smoke.XXXXXX)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    # Each service runs in its own process group (setsid): stop the group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
  [ -z "${port:-}" ] || rm -rf "$edge/.wrangler-dev/$port"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # port what
  local i
  for i in $(seq 1 600); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  say "$2 did not listen on port $1"; return 1
}

if [ -z "${GATEWAY_BIN:-}" ] || [ -z "${DRAIN_BIN:-}" ]; then
  say "building flowchat-gateway and flowchat-drain"
  (cd "$root" && cargo build -q -p flowchat-gateway -p flowchat-drain-bin >&2)
  GATEWAY_BIN="${GATEWAY_BIN:-$root/target/debug/flowchat-gateway}"
  DRAIN_BIN="${DRAIN_BIN:-$root/target/debug/flowchat-drain}"
fi
if [ -z "$build_flag" ]; then
  "$edge/build.sh"
  build_flag="--no-build"
fi

redis_port="$(free_port)"; worker_gw="$(free_port)"; drain_gw="$(free_port)"; port="$(free_port)"
token="smoke-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
secret="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
namespace="edge-smoke-$$"

setsid redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >"$work/redis.log" 2>&1 & pids+=($!)
wait_port "$redis_port" redis-server
for gw in "$worker_gw" "$drain_gw"; do
  FLOWCHAT_GATEWAY_TOKEN="$token" setsid "$GATEWAY_BIN" --port "$gw" \
    --redis-url "redis://127.0.0.1:$redis_port" >"$work/gateway-$gw.log" 2>&1 & pids+=($!)
  wait_port "$gw" flowchat-gateway
done

mkdir -p "$work/data"
FLOWCHAT_STORE=upstash UPSTASH_REDIS_REST_URL="http://127.0.0.1:$drain_gw" \
  UPSTASH_REDIS_REST_TOKEN="$token" FLOWCHAT_NAMESPACE="$namespace" \
  FLOWCHAT_DATA_DIR="$work/data" DOCUMENTS_PATH="$root/documents" LLM_PROVIDER=extractive \
  setsid "$DRAIN_BIN" --follow >"$work/drain.log" 2>&1 & drain_pid=$!; pids+=($drain_pid)

start_ns="$(date +%s%N)"
FLOWCHAT_ENV=production FLOWCHAT_STORE=upstash FLOWCHAT_NAMESPACE="$namespace" \
  UPSTASH_REDIS_REST_URL="http://127.0.0.1:$worker_gw" UPSTASH_REDIS_REST_TOKEN="$token" \
  SESSION_SECRET="$secret" CORS_ORIGINS="https://app.example" \
  RATE_LIMIT_CHAT_PER_MINUTE=100000 RATE_LIMIT_IP_PER_MINUTE=100000 \
  setsid "$root/scripts/edge-dev" --port "$port" $build_flag >"$work/edge-dev.log" 2>&1 & edge_pid=$!; pids+=($edge_pid)

status=0
BASE="http://127.0.0.1:$port" GATEWAY="http://127.0.0.1:$worker_gw" GATEWAY_TOKEN="$token" \
  DRAIN_PID="$drain_pid" START_NS="$start_ns" python3 - <<'PY' || status=$?
import json, os, signal, socket, sys, time, urllib.request, urllib.error

base, gateway, gw_token = os.environ["BASE"], os.environ["GATEWAY"], os.environ["GATEWAY_TOKEN"]
start = int(os.environ["START_NS"]) / 1e9
failures = []

def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)

def request(method, path, body=None, token=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()

def gateway_stats(reset=False):
    req = urllib.request.Request(gateway + ("/__gateway/stats/reset" if reset else "/__gateway/stats"),
                                 data=b"" if reset else None, method="POST" if reset else "GET")
    req.add_header("authorization", "Bearer " + gw_token)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())

def sse(path, token, until=("answer", "failed"), on_first=None, limit=30):
    """Events of an SSE stream with the time each arrived (s since call)."""
    req = urllib.request.Request(base + path)
    req.add_header("authorization", "Bearer " + token)
    t0 = time.time()
    events, event = [], None
    with urllib.request.urlopen(req, timeout=limit) as r:
        ctype = r.headers.get("content-type", "")
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                events.append((round(time.time() - t0, 3), event, json.loads(line[6:])))
                if len(events) == 1 and on_first:
                    on_first()
                if event in until:
                    break
    return ctype, events

# --- ready ---------------------------------------------------------------
deadline = time.time() + 300
while True:
    try:
        with urllib.request.urlopen(base + "/api/health/ping", timeout=2) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    if time.time() > deadline:
        check(False, "the Worker answered /api/health/ping within 300 s")
        sys.exit(1)
    time.sleep(0.05)
ready = time.time()
print(f"measure  edge-dev started -> ready (ping 200): {ready - start:.2f} s", flush=True)

status, headers, body = request("GET", "/api/health/ping")
check(status == 200, f"GET /api/health/ping -> {status}")

# --- session + first chat, answered by the drain ---------------------------------
status, headers, body = request("POST", "/api/session", {"nickname": "Edge Smoke"})
check(status == 201, f"POST /api/session -> {status}")
token = json.loads(body)["token"]

gateway_stats(reset=True)
status, headers, body = request("POST", "/api/chat", {"message": "How many vacation days do employees get?"}, token)
first_count = gateway_stats()["requests"]
check(status == 202 and headers.get("Location", "").startswith("/api/chat/"), f"POST /api/chat -> {status}, Location {headers.get('Location')}")
job = json.loads(body)["job_id"]
ctype, events = sse(f"/api/chat/{job}/events", token)
answered = time.time()
check(ctype.startswith("text/event-stream"), f"SSE content-type {ctype}")
check(bool(events) and events[-1][1] == "answer", f"SSE ends with an answer event: {[e[1] for e in events]}")
print(f"measure  ready -> first answer (session, submit, drain, SSE): {(answered - ready) * 1000:.0f} ms", flush=True)

# --- streaming: the stream is open before the answer exists ---------------------
drain = int(os.environ["DRAIN_PID"])
os.kill(drain, signal.SIGSTOP)
status, headers, body = request("POST", "/api/chat", {"message": "Is there a remote work policy?"}, token)
job2 = json.loads(body)["job_id"]
resumed = {}
def resume_later():
    # The first event (status: queued) has arrived while the drain is stopped.
    time.sleep(2.0)
    resumed["at"] = time.time()
    os.kill(drain, signal.SIGCONT)
import threading
def on_first():
    threading.Thread(target=resume_later, daemon=True).start()
try:
    ctype, events = sse(f"/api/chat/{job2}/events", token, on_first=on_first)
finally:
    os.kill(drain, signal.SIGCONT)
print("         events: " + ", ".join(f"{e[1]}@{e[0]}s" for e in events), flush=True)
check(events[0][1] == "status" and events[0][2].get("status") == "queued" and events[0][0] < 1.5,
      "SSE: status queued arrives at once, while the drain is stopped")
check(events[-1][1] == "answer" and events[-1][0] >= 2.0,
      f"SSE: the answer arrives on the same open stream after the drain resumes ({[(e[0], e[1]) for e in events]})")

# --- Upstash requests per submission ------------------------------------------
counts = []
for i in range(3):
    gateway_stats(reset=True)
    status, _, _ = request("POST", "/api/chat", {"message": f"Question {i}?"}, token)
    counts.append(gateway_stats()["requests"])
print(f"measure  Upstash requests per chat submission: first on a fresh Redis {first_count} (EVALSHA -> NOSCRIPT -> EVAL), then {counts}", flush=True)
check(all(c == 1 for c in counts), "exactly one Upstash request per chat submission (script cached)")

# --- errors ---------------------------------------------------------------------
status, headers, body = request("POST", "/api/chat", {"message": "hi"})
problem = json.loads(body)
check(status == 401 and headers.get("Content-Type") == "application/problem+json" and problem["status"] == 401,
      f"POST /api/chat without a token -> {status} {headers.get('Content-Type')} {problem.get('type')}")
status, headers, body = request("POST", "/api/session", {"nickname": "<bad>"})
problem = json.loads(body)
check(status == 400 and problem.get("field") == "nickname", f"POST /api/session bad nickname -> {status} {problem.get('type')}")
status, headers, body = request("GET", "/api/chat/not-a-uuid", token=token)
check(status == 400 and headers.get("Content-Type") == "application/problem+json", f"GET /api/chat/not-a-uuid -> {status}")
preflight = {"access-control-request-method": "POST"}
status, headers, body = request("OPTIONS", "/api/chat", headers={"origin": "https://app.example", **preflight})
allow = {k.lower(): v for k, v in headers.items()}.get("access-control-allow-origin")
check(status == 204 and allow == "https://app.example", f"CORS preflight from CORS_ORIGINS -> {status}, allow-origin {allow}")
status, headers, body = request("OPTIONS", "/api/chat", headers={"origin": "https://elsewhere.example", **preflight})
allow = {k.lower(): v for k, v in headers.items()}.get("access-control-allow-origin")
check(status == 204 and allow is None, f"CORS preflight from another origin -> {status}, allow-origin {allow}")

# --- 413 by Content-Length, body never sent ---------------------------------------
host, port = base.split("//")[1].split(":")
s = socket.create_connection((host, int(port)))
t0 = time.time()
s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 50000000\r\n\r\n{")
s.settimeout(10)
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
s.close()
head = data.split(b"\r\n")[0].decode()
check(head.endswith("413 Payload Too Large") and time.time() - t0 < 2,
      f"declared Content-Length 50 MB, body not sent -> {head!r} in {(time.time() - t0) * 1000:.0f} ms")

# --- CPU time per request: workerd's own CPU clock around a burst ----------------
# workerd in `wrangler dev` reports no per-request CPU time, so this reads the
# CPU time of the workerd processes (user + system, /proc) around N requests of
# one kind: an upper bound (it includes workerd's HTTP handling and the dev
# proxy worker), Upstash round trips excluded (they wait, not compute).
def workerd_group():
    # edge-dev runs wrangler in a session of its own: find it through the
    # workerd that listens on the Worker's port.
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if any(a == f"--socket-addr=entry={host}:{port}".encode() for a in args):
            return int(stat[stat.rindex(")") + 2:].split()[2])
    return None

def workerd_cpu():
    pgid, tick, total = workerd_group(), os.sysconf("SC_CLK_TCK"), 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if comm.startswith("workerd") and int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total

def burst(label, n, call):
    call()
    cpu0, t0 = workerd_cpu(), time.time()
    for _ in range(n):
        call()
    cpu, wall = workerd_cpu() - cpu0, time.time() - t0
    print(f"measure  {label}: {cpu / n * 1000:.2f} ms workerd CPU, {wall / n * 1000:.1f} ms wall per request (n={n})", flush=True)

check(workerd_group() is not None, "found the workerd serving the Worker (for CPU time)")
burst("GET /api/health/ping", 200, lambda: request("GET", "/api/health/ping"))
burst("POST /api/session", 200, lambda: request("POST", "/api/session", {"nickname": "Cpu"}))
burst("POST /api/chat", 200, lambda: request("POST", "/api/chat", {"message": "How many vacation days?"}, token))
burst(f"GET /api/chat/{{id}}", 200, lambda: request("GET", f"/api/chat/{job}", token=token))

print(f"{'PASS' if not failures else 'FAILED: ' + '; '.join(failures)}", flush=True)
sys.exit(1 if failures else 0)
PY

# workerd's own request log: wall time per request (it reports no CPU time).
say "per-request times reported by wrangler dev:"
grep -E '^\[wrangler:info\] (GET|POST|OPTIONS)' "$work/edge-dev.log" | sed 's/^/  /' >&2 || true
if [ "$status" -ne 0 ]; then
  say "failed; edge-dev log:"; sed 's/^/  /' "$work/edge-dev.log" >&2
fi
wasm="$edge/build/index_bg.wasm"; js="$edge/build/index.js"
printf 'measure  upload: index_bg.wasm %s B (gzip %s B), index.js %s B (gzip %s B)\n' \
  "$(wc -c <"$wasm")" "$(gzip -9c "$wasm" | wc -c)" "$(wc -c <"$js")" "$(gzip -9c "$js" | wc -c)"
exit "$status"
