# The server under the hostile clients of the hardening issue, one fresh server per attack:
#   slowloris  300 connections trickling a header byte every 2 s
#   idle       150 connections that never send a byte, server started under `ulimit -n 128`
#   png-bombs  8 concurrent 8192x8192 PNGs (256 MiB each once decoded)
#   big-json   one /predict JSON request of 5,000 examples (--max-body-bytes 64 MiB)
# During each attack a prober calls GET /v2/health/live every 50 ms and a client sends a
# well-formed /predict every 100 ms. Prints, per attack: the server's peak RSS (VmHWM), the
# liveness latency p50/p99/max and failures, how many well-formed requests were answered, and
# how many of the attacker's connections the server closed (slowloris and idle reconnect them).
#
# Run: python3 bench/serve_attack.py [BINARY] [SECONDS_PER_ATTACK]
#      (BINARY defaults to target/release/modelsmith; a digits model is trained first)
import json, os, socket, struct, subprocess, sys, tempfile, threading, time, zlib

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/modelsmith"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20
work = tempfile.mkdtemp(prefix="serve-attack-")
model = os.path.join(work, "digits")
subprocess.run([BIN, "train", "--epochs", "1", "--out", model, "--quiet"], check=True)


def png(width, height, rows):
    """A grayscale PNG of `rows` (bytes per row) without any imaging library."""
    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + rows(y) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


DIGIT = png(28, 28, lambda y: bytes((x * y) % 256 for x in range(28)))
BOMB = png(8192, 8192, lambda y: bytes(8192))


def start(extra, ulimit=None):
    cmd = [BIN, "serve", "--model", model, "--addr", "127.0.0.1:0"] + extra
    if ulimit:
        cmd = ["bash", "-c", f"ulimit -n {ulimit} && exec \"$@\"", "serve"] + cmd
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    banner = proc.stderr.readline()
    addr = banner.split("http://")[1].split()[0]
    host, port = addr.rsplit(":", 1)
    return proc, (host, int(port))


def request(addr, method, path, body=b"", ctype=None, timeout=10):
    s = socket.create_connection(addr, timeout=timeout)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    s.sendall(head.encode() + body)
    out = b""
    while True:
        part = s.recv(65536)
        if not part:
            break
        out += part
    s.close()
    return int(out.split(b" ", 2)[1]) if out else 0


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024


def measure(addr, stop, results):
    """Liveness every 50 ms and a well-formed /predict every 100 ms until `stop` is set."""
    def probe():
        while not stop.is_set():
            t = time.perf_counter()
            try:
                ok = request(addr, "GET", "/v2/health/live", timeout=5) == 200
            except OSError:
                ok = False
            results["live"].append((time.perf_counter() - t) * 1000 if ok else None)
            time.sleep(0.05)

    def client():
        while not stop.is_set():
            try:
                ok = request(addr, "POST", "/predict", DIGIT, "image/png", timeout=10) == 200
            except OSError:
                ok = False
            results["predict"].append(ok)
            time.sleep(0.1)
    threads = [threading.Thread(target=probe), threading.Thread(target=client)]
    for t in threads:
        t.start()
    return threads


CLOSED = [0]


def slowloris(addr, stop, n=300):
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(addr, timeout=5)
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            pass
    while not stop.is_set():
        for i, s in enumerate(socks):
            try:
                s.sendall(b"X-a: b\r\n")
            except OSError:
                # Closed by the server: reconnect, as a real attacker would.
                CLOSED[0] += 1
                try:
                    socks[i] = socket.create_connection(addr, timeout=5)
                    socks[i].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
                except OSError:
                    pass
        stop.wait(2)
    for s in socks:
        s.close()


def idle(addr, stop, n=150):
    socks = []
    while not stop.is_set():
        while len(socks) < n:
            try:
                socks.append(socket.create_connection(addr, timeout=5))
            except OSError:
                break
        # Drop the ones the server closed and open new ones: keep 150 open.
        alive = []
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    CLOSED[0] += 1
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            alive.append(s)
        socks = alive
        stop.wait(0.5)
    for s in socks:
        s.close()


def bombs(addr, stop, n=8):
    def one():
        while not stop.is_set():
            try:
                request(addr, "POST", "/predict", BOMB, "image/png", timeout=30)
            except OSError:
                pass
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def big_json(addr, stop):
    example = "[" + ",".join(["0"] * 784) + "]"
    body = ("[" + ",".join([example] * 5000) + "]").encode()
    while not stop.is_set():
        try:
            status = request(addr, "POST", "/predict", body, "application/json", timeout=60)
            print(f"    5,000-example request: HTTP {status}", flush=True)
        except OSError as e:
            print(f"    5,000-example request: {e}", flush=True)
        stop.wait(1)


ATTACKS = [
    ("slowloris 300", slowloris, [], None),
    ("idle 150, ulimit -n 128", idle, [], 128),
    ("8 PNG bombs", bombs, [], None),
    ("5,000-example JSON", big_json, ["--max-body-bytes", str(64 << 20)], None),
]
print(f"{'attack':<26} {'peak RSS':>9} {'live p50':>9} {'p99':>8} {'max':>8} {'live fail':>9} {'predict ok':>11} {'closed':>7}")
for name, attack, extra, ulimit in ATTACKS:
    proc, addr = start(extra, ulimit)
    stop = threading.Event()
    CLOSED[0] = 0
    results = {"live": [], "predict": []}
    attacker = threading.Thread(target=attack, args=(addr, stop))
    attacker.start()
    time.sleep(1)
    probes = measure(addr, stop, results)
    time.sleep(SECONDS)
    stop.set()
    for t in probes + [attacker]:
        t.join()
    rss = peak_rss_mib(proc.pid)
    proc.terminate()
    proc.wait()
    lat = sorted(x for x in results["live"] if x is not None)
    fails = sum(1 for x in results["live"] if x is None)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    ok = sum(results["predict"])
    print(f"{name:<26} {rss:>7.0f}MB {pct(0.5):>7.1f}ms {pct(0.99):>6.1f}ms {lat[-1] if lat else 0:>6.1f}ms"
          f" {fails:>5}/{len(results['live']):<4} {ok:>5}/{len(results['predict']):<5} {CLOSED[0]:>7}", flush=True)
