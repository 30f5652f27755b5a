#!/usr/bin/env python3
"""`make abuse`: hostile traffic against a real `funnel serve` on loopback.

Deep nesting, huge row counts, concurrent oversized requests, slowloris heads, stalled and
truncated bodies, bad chunking, wrong methods. Asserts that every case gets its documented
answer, that the server stays alive and answers /healthz quickly, and that its resident memory
stays under the stated bound: base + max-concurrent-requests x 64 MiB (a body of at most
--max-body-bytes, its copy, and the parsed rows of at most --max-rows rows). Everything stays on
127.0.0.1; every loop is bounded in count and time. Exit status 0 when every check passes.
"""
import argparse, concurrent.futures, json, os, socket, subprocess, sys, threading, time, http.client

ap = argparse.ArgumentParser()
ap.add_argument("--funnel", default=".build/release/funnel")
ap.add_argument("--out", default="bench-out/abuse")
ap.add_argument("--port", type=int, default=18282)
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
model = os.path.join(args.out, "model")

def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

if not os.path.exists(os.path.join(model, "model.json")):
    run(args.funnel, "simulate", "--rows", "20000", "--seed", "3", "--vocab-scale", "0.05", "--out", os.path.join(args.out, "data"))
    run(args.funnel, "train", "--train", os.path.join(args.out, "data", "train.csv"), "--model", "esmm", "--out", model, "--threads", "2")

CONCURRENT, MAX_BODY, MAX_ROWS = 4, 8 << 20, 10_000
TIMEOUTS = {"header": 3, "body": 3, "idle": 5}
server = subprocess.Popen([args.funnel, "serve", "--model", model, "--port", str(args.port), "--threads", "2",
                           "--max-rows", str(MAX_ROWS), "--max-body-bytes", str(MAX_BODY),
                           "--max-concurrent-requests", str(CONCURRENT), "--header-timeout", str(TIMEOUTS["header"]),
                           "--body-timeout", str(TIMEOUTS["body"]), "--idle-timeout", str(TIMEOUTS["idle"])],
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.out, "serve.log"), "w"))

def rss_mb():
    with open(f"/proc/{server.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0

peak = [0.0]
stop = threading.Event()
def sample():
    while not stop.is_set() and server.poll() is None:
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.05)

def wait_for_port(port, seconds=10):
    """Returns once a server accepts connections on `port` (or after `seconds`)."""
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)

def request(method, path, body=b"", headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()

def raw(data, wait):
    """Sends bytes, then reads until the server closes (or `wait` s pass): (reply, closed, seconds)."""
    s = socket.create_connection(("127.0.0.1", args.port))
    s.settimeout(wait)
    start = time.time()
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, True, time.time() - start
            out += chunk
    except socket.timeout:
        return out, False, time.time() - start
    except ConnectionResetError:
        return out, True, time.time() - start
    finally:
        s.close()

for _ in range(100):
    try:
        if request("GET", "/healthz", timeout=1)[0] == 200:
            break
    except OSError:
        time.sleep(0.1)
base = rss_mb()
bound = base + CONCURRENT * 64
threading.Thread(target=sample, daemon=True).start()
results, failed = [], []

def check(name, ok, detail=""):
    results.append((name, ok, detail))
    if not ok:
        failed.append(name)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}", flush=True)

header = ["101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210", "216", "301"]
row = {h: 1 for h in header}
row.update({"D109_14": 0.5, "D110_14": 0.5, "D127_14": 0.5, "D150_14": 0.5})

deep = "[" * 100_000 + "]" * 100_000
for name, body in [("deep nesting in a field (100k)", '{"rows":[{"101": %s}]}' % deep),
                   ("deep nesting in an unknown field", '{"rows":[{"x": %s}]}' % deep),
                   ("unclosed nesting (1M)", '{"rows":[{"101": ' + "[" * 1_000_000),
                   ("top-level key nested 1M deep", '{"meta": ' + "{\"a\":" * 1_000_000 + "1" + "}" * 1_000_000 + ', "rows": []}')]:
    status, data, _ = request("POST", "/v1/predict", body.encode())
    check(name, status in (400, 413) and server.poll() is None, f"{status} {data[:80]!r}")

empty_rows = ('{"rows":[' + ",".join(["{}"] * 1_000_000) + "]}").encode()
t = time.time()
status, data, _ = request("POST", "/v1/predict", empty_rows)
check("1M empty rows (3 MB)", status == 413 and time.time() - t < 2, f"{status} in {time.time() - t:.2f}s, {data[:70]!r}")

with concurrent.futures.ThreadPoolExecutor(8) as pool:
    statuses = list(pool.map(lambda _: request("POST", "/v1/predict", empty_rows)[0], range(8)))
check("8 concurrent 1M-row requests", all(s == 413 for s in statuses), f"{statuses}, peak RSS {peak[0]:.0f} MB")

full = json.dumps({"rows": [row] * MAX_ROWS}).encode()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    statuses = list(pool.map(lambda _: request("POST", "/v1/predict", full)[0], range(8)))
check(f"8 concurrent {MAX_ROWS}-row requests ({len(full) / 1e6:.1f} MB each)", all(s == 200 for s in statuses),
      f"{statuses}, peak RSS {peak[0]:.0f} MB")

wide = json.dumps({"rows": [{f"f{i}": i for i in range(5000)}]}).encode()
status, data, _ = request("POST", "/v1/predict", wide)
check("a row with 5,000 fields", status == 400, f"{status} {data[:80]!r}")

head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Le"
with concurrent.futures.ThreadPoolExecutor(50) as pool:
    outcomes = list(pool.map(lambda _: raw(head, TIMEOUTS["header"] + 5), range(50)))
check("50 slowloris connections (partial head)", all(c for _, c, _ in outcomes),
      f"closed after ≤ {max(s for _, _, s in outcomes):.1f}s (header timeout {TIMEOUTS['header']}s)")
_, closed, secs = raw(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"rows\"", TIMEOUTS["body"] + 5)
check("stalled body (Content-Length 1000, 7 sent)", closed, f"closed after {secs:.1f}s (body timeout {TIMEOUTS['body']}s)")
_, closed, secs = raw(b"", max(TIMEOUTS["idle"], TIMEOUTS["header"]) + 5)
check("idle connection", closed, f"closed after {secs:.1f}s")

s = socket.create_connection(("127.0.0.1", args.port))
s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"rows\": [")
s.shutdown(socket.SHUT_WR)
s.settimeout(10)
reply = b""
try:
    while chunk := s.recv(65536):
        reply += chunk
except (socket.timeout, ConnectionResetError):
    pass
s.close()
check("truncated body", b"413" not in reply.split(b"\r\n")[0], repr(reply.split(b"\r\n")[0]))
reply, _, _ = raw(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 5)
check("bad chunk size", b" 413 " not in reply.split(b"\r\n")[0], repr(reply.split(b"\r\n")[0]))
reply, closed, secs = raw(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n" + b"x" * 65536, 5)
first = reply.split(b"\r\n")[0]
check("20 MB body declared", reply.startswith(b"HTTP/1.1 413") and closed, f"{first!r}, closed={closed}")

status, _, headers = request("GET", "/v1/predict")
check("GET /v1/predict", status == 405 and headers.get("Allow") == "POST", f"{status} Allow={headers.get('Allow')}")
status, _, _ = request("HEAD", "/healthz")
check("HEAD /healthz", status == 200, str(status))
status, data, _ = request("POST", "/v1/reload", b'{"model": "/etc"}')
check("reload without --allow-reload", status == 403, f"{status} {data[:60]!r}")

# Four uploads trickling one byte a second (2 x cores): they hold no place in the gate.
tricklers = []
for _ in range(4):
    t_sock = socket.create_connection(("127.0.0.1", args.port))
    t_sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
    tricklers.append(t_sock)
def trickle():
    for _ in range(2):
        time.sleep(1)
        for t_sock in tricklers:
            try:
                t_sock.send(b" ")
            except OSError:
                pass
threading.Thread(target=trickle, daemon=True).start()
time.sleep(0.3)
t = time.time()
status, data, _ = request("POST", "/v1/predict", json.dumps({"rows": [row]}).encode(), timeout=10)
check("a valid request beside 4 trickling uploads", status == 200 and time.time() - t < 1, f"{status} in {time.time() - t:.2f}s")
for t_sock in tricklers:
    t_sock.close()

# A 413 to a client still sending its 9 MB body: answered, and the connection closed within the
# lingering second, not after the body timeout.
s9 = socket.create_connection(("127.0.0.1", args.port))
s9.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 9437184\r\n\r\n")
def push():
    chunk = b"x" * 65536
    try:
        for _ in range(144):
            s9.sendall(chunk)
    except OSError:
        pass
threading.Thread(target=push, daemon=True).start()
s9.settimeout(10)
t, reply = time.time(), b""
try:
    while chunk := s9.recv(65536):
        reply += chunk
except (socket.timeout, ConnectionResetError, OSError):
    pass
closed_after = time.time() - t
s9.close()
status_line = reply.split(b"\r\n")[0]
check("413 to a client still sending 9 MB", reply.startswith(b"HTTP/1.1 413") and closed_after < 2.5,
      f"{status_line!r}, closed after {closed_after:.1f}s (body timeout {TIMEOUTS['body']}s)")

# Eight concurrent 8 MiB bodies of four million array elements, in a field the model reads and
# in one it does not: refused or answered, within the memory bound.
bag = ('{"rows":[{"101": [' + ",".join(["1"] * 4_000_000) + ']}]}').encode()[:MAX_BODY - 64]
bag = bag[:bag.rfind(b",")] + b"]}]}"
junk = bag.replace(b'"101"', b'"zz"', 1)
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    statuses = list(pool.map(lambda k: request("POST", "/v1/predict", bag if k % 2 == 0 else junk)[0], range(8)))
check("8 concurrent 4M-element arrays (8 MiB)", all(s in (400, 413) for s in statuses) and peak[0] <= bound,
      f"{statuses}, peak RSS {peak[0]:.0f} MB (bound {bound:.0f})")

# A storm of idle connections: capped, answered at the end, memory handed back after.
before = rss_mb()
storm = []
for _ in range(800):
    try:
        storm.append(socket.create_connection(("127.0.0.1", args.port), timeout=2))
    except OSError:
        break
time.sleep(0.5)
during = rss_mb()
for c in storm:
    c.close()
time.sleep(6.5)
after = rss_mb()
check("800 idle connections, then closed", server.poll() is None and after - before < 30,
      f"RSS {before:.0f} -> {during:.0f} -> {after:.0f} MB")

t = time.time()
status, _, _ = request("GET", "/healthz", timeout=5)
check("alive at the end", status == 200 and time.time() - t < 1 and server.poll() is None, f"/healthz in {(time.time() - t) * 1000:.0f} ms")
stop.set()
end = rss_mb()
check(f"peak RSS under the bound", peak[0] <= bound, f"base {base:.0f} MB, peak {peak[0]:.0f} MB, end {end:.0f} MB, bound {bound:.0f} MB")
server.terminate()
server.wait(10)

# Few descriptors (ulimit -n 200): the cap (200 - 64) stops accepting before EMFILE; the server
# does not spin, and answers again once connections close.
import resource
def few_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
small = subprocess.Popen([args.funnel, "serve", "--model", model, "--port", str(args.port + 1), "--threads", "2",
                          "--idle-timeout", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=few_fds)
wait_for_port(args.port + 1)
held = []
for _ in range(300):
    try:
        held.append(socket.create_connection(("127.0.0.1", args.port + 1), timeout=1))
    except OSError:
        break
def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu_seconds(small.pid)
time.sleep(2)
busy = (cpu_seconds(small.pid) - c0) / 2
for c in held[:250]:
    c.close()
try:
    conn = http.client.HTTPConnection("127.0.0.1", args.port + 1, timeout=5)
    conn.request("GET", "/healthz")
    health = json.loads(conn.getresponse().read())
    conn.close()
except OSError as e:
    health = {"error": str(e)}
check("300 connections on 200 descriptors", busy < 0.2 and health.get("status") == "ok",
      f"{len(held)} connected, server CPU {busy * 100:.0f}% while at the cap; 250 closed, then /healthz {health.get('connections', health)}")
for c in held[250:]:
    c.close()
small.terminate()
small.wait(10)

# Three clients reloading the model over and over: reloads queue one at a time off the request
# threads, so predictions keep their pace.
reloader = subprocess.Popen([args.funnel, "serve", "--model", model, "--port", str(args.port + 3), "--threads", "2",
                             "--allow-reload"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_for_port(args.port + 3)
one_row = json.dumps({"rows": [row]}).encode()
def predictions_per_second(seconds):
    conn = http.client.HTTPConnection("127.0.0.1", args.port + 3, timeout=30)
    n, end = 0, time.time() + seconds
    while time.time() < end:
        conn.request("POST", "/v1/predict", body=one_row, headers={"Content-Type": "application/json"})
        if conn.getresponse().read() and True:
            n += 1
    conn.close()
    return n / seconds
quiet_rate = predictions_per_second(3)
reloading = threading.Event()
reload_counts = []
def reload_loop():
    conn, k = http.client.HTTPConnection("127.0.0.1", args.port + 3, timeout=60), 0
    while not reloading.is_set():
        conn.request("POST", "/v1/reload", body=b"")
        conn.getresponse().read()
        k += 1
    conn.close()
    reload_counts.append(k)
threads = [threading.Thread(target=reload_loop, daemon=True) for _ in range(3)]
for th in threads:
    th.start()
busy_rate = predictions_per_second(3)
reloading.set()
for th in threads:
    th.join(30)
reloader.terminate()
reloader.wait(10)
check("predictions while 3 clients reload in a loop", busy_rate >= 0.3 * quiet_rate,
      f"{busy_rate:.0f} req/s (alone {quiet_rate:.0f} req/s), {sum(reload_counts)} reloads")

exposed = subprocess.run([args.funnel, "serve", "--model", model, "--host", "0.0.0.0", "--port", str(args.port + 2),
                          "--allow-reload"], capture_output=True, text=True, timeout=30)
check("--allow-reload on 0.0.0.0 without a token", exposed.returncode != 0 and "--admin-token" in exposed.stderr,
      exposed.stderr.strip()[:100])
print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
