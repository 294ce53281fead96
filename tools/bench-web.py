#!/usr/bin/env python3
"""/metrics latency of memwatch --all under the attacks of issue 14, and
memwatch's CPU under a flood of wrong passwords.

    sudo tools/bench-web.py [--requests N] [--memwatch ./memwatch]

Phases: quiet; 64 ?seconds=60 requests whose clients leave at once (from
127.0.0.2); 64 slowloris connections trickling a header line a second
(from 127.0.0.3); both. Each phase times N sequential GET /metrics from
127.0.0.1 (new connection each). Then, with a --web-config holding a
bcrypt cost-10 user, 8 threads send wrong passwords for 10 s while /metrics
is fetched with the right one: memwatch's CPU (utime+stime) over the flood
and the /metrics latency are printed."""
import argparse
import base64
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def start(memwatch, args):
    proc = subprocess.Popen([memwatch, "--all", "--listen", "127.0.0.1:0", "--comm", "^memwatch-bench-none$"] + args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        m = re.search(r"on port (\d+)", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(m.group(1))
    sys.exit("memwatch did not start")


def get(port, auth=None, src="127.0.0.1", timeout=30):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    start = time.perf_counter()
    s.connect(("127.0.0.1", port))
    head = "GET /metrics HTTP/1.0\r\n"
    if auth:
        head += "Authorization: Basic %s\r\n" % base64.b64encode(auth.encode()).decode()
    s.sendall((head + "\r\n").encode())
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    s.close()
    return time.perf_counter() - start, data[:12]


def timed(port, n, auth=None):
    times, bad = [], 0
    for _ in range(n):
        t, status = get(port, auth)
        times.append(t * 1000)
        bad += status != b"HTTP/1.1 200"
    times.sort()
    return "p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d/%d not 200" % (
        statistics.median(times), times[int(len(times) * 0.99) - 1], times[-1], bad, n)


def abandoned(port):
    for _ in range(64):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /debug/pprof/heap?seconds=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()


def slowloris(port, stop):
    conns = []
    for _ in range(64):
        s = socket.socket()
        s.bind(("127.0.0.3", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        conns.append(s)

    def trickle():
        while not stop.wait(1.0):
            for s in conns:
                try:
                    s.send(b"X: y\r\n")
                except OSError:
                    pass
        for s in conns:
            s.close()
    threading.Thread(target=trickle, daemon=True).start()


def cpu_seconds(pid, comm=None):
    """utime+stime of the process, or of its thread named comm."""
    path = "/proc/%d/stat" % pid
    if comm:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() == comm:
                    path = "/proc/%d/task/%s/stat" % (pid, tid)
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def password_flood(memwatch, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    d = tempfile.mkdtemp(prefix="memwatch-bench-web-")
    config = os.path.join(d, "web.yml")
    with open(config, "w") as f:
        f.write("basic_auth_users:\n  prometheus: '%s'\n" %
                crypt.crypt("right", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10)))
    proc, port = start(memwatch, ["--web-config", config])
    try:
        get(port, "prometheus:right")      # the one bcrypt check for the right password
        stop = threading.Event()
        sent = [0]

        def flood():
            while not stop.is_set():
                get(port, "prometheus:wrong-%d" % sent[0])
                sent[0] += 1
        before, t0 = cpu_seconds(proc.pid), time.time()
        checks_before = cpu_seconds(proc.pid, "memwatch-auth")
        threads = [threading.Thread(target=flood) for _ in range(8)]
        for t in threads:
            t.start()
        latency = timed(port, n, "prometheus:right")
        time.sleep(max(0, 10 - (time.time() - t0)))
        stop.set()
        for t in threads:
            t.join()
        cpu, wall = cpu_seconds(proc.pid) - before, time.time() - t0
        checks = cpu_seconds(proc.pid, "memwatch-auth") - checks_before
        print("wrong-password flood (cost 10, 8 threads, %.1f s, %d requests): memwatch CPU %.1f%% of one CPU, "
              "of which bcrypt checks %.1f%%; /metrics with the right password: %s" % (
                  wall, sent[0], 100 * cpu / wall, 100 * checks / wall, latency))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait()
        shutil.rmtree(d)


def request_flood(memwatch):
    """The same flood, no password configured, to a page that does not
    exist: what answering costs by itself."""
    proc, port = start(memwatch, [])
    try:
        stop = threading.Event()
        sent = [0]

        def flood():
            while not stop.is_set():
                s = socket.socket()
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET /nothing HTTP/1.0\r\n\r\n")
                while s.recv(65536):
                    pass
                s.close()
                sent[0] += 1
        before, t0 = cpu_seconds(proc.pid), time.time()
        threads = [threading.Thread(target=flood) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(10)
        stop.set()
        for t in threads:
            t.join()
        cpu, wall = cpu_seconds(proc.pid) - before, time.time() - t0
        print("404 flood without passwords (8 threads, %.1f s, %d requests): memwatch CPU %.1f%% of one CPU" % (
            wall, sent[0], 100 * cpu / wall))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--memwatch", default=os.path.join(ROOT, "memwatch"))
    args = ap.parse_args()
    proc, port = start(args.memwatch, [])
    stop = threading.Event()
    try:
        time.sleep(1)
        print("quiet:                %s" % timed(port, args.requests))
        abandoned(port)
        print("64 abandoned deltas:  %s" % timed(port, args.requests))
        slowloris(port, stop)
        print("+ 64 slowloris:       %s" % timed(port, args.requests))
        abandoned(port)
        print("+ 64 more abandoned:  %s" % timed(port, args.requests))
    finally:
        stop.set()
        proc.send_signal(signal.SIGINT)
        proc.wait()
    password_flood(args.memwatch, args.requests)
    request_flood(args.memwatch)


if __name__ == "__main__":
    main()
