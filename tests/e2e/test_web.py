"""Who can read memwatch --all's endpoints, and whether anyone can starve
them: addresses other hosts reach, TLS and basic authentication scraped by
a real Prometheus, client certificates, Unix sockets and their
permissions, slow and abandoned clients, requests framed to confuse.
(Loopback addresses 127.0.0.2, 127.0.0.3 stand for other hosts.)
"""
import base64
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import warnings

from mwtest import MEMWATCH, TestCase, WaitingWorkload, workload
from test_host import wait_for, free_port

PASSWORD = "s3cret-memwatch"


class WebHost:
    """memwatch --all --listen LISTEN in the background."""

    def __init__(self, listen, args=(), timeout=30):
        self.proc = subprocess.Popen([MEMWATCH, "--all", "--listen", listen] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err_lines = []
        self.port = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.err_lines.append(line)
            m = re.search(r"serving /metrics and /debug/pprof/ on (?:port (\d+)|unix:)", line)
            if m:
                self.port = int(m.group(1)) if m.group(1) else 0
                return
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("memwatch --all did not start: %s" % "".join(self.err_lines))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, "".join(self.err_lines) + err


def run_memwatch(args, timeout=60):
    return subprocess.run([MEMWATCH] + args, capture_output=True, text=True, timeout=timeout)


def bcrypt(password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate
    it signed, and a client certificate it did not."""
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=memwatch test CA")
    openssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2", "-subj", "/CN=rogue")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", "san.ext", "-out", name + ".crt")


def https_status(port, path="/metrics", auth=None, cafile=None, cert=None):
    """(status, body) over TLS; raises on a failed handshake."""
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def unix_get(path, target="/metrics"):
    conn = UnixConnection(path)
    try:
        conn.request("GET", target)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def as_nobody(code):
    """Runs python code as uid/gid 65534: (exit status, output)."""
    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, preexec_fn=drop, timeout=60)
    return p.returncode, p.stdout + p.stderr


def raw_exchange(port, data, src="127.0.0.1", timeout=20):
    """Sends data, reads until the server closes (or timeout): bytes."""
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    return got


def close_wait_sockets(port):
    """Sockets on the server's side of port in CLOSE-WAIT (the client went,
    the server did not close)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) == port and fields[3] == "08":
                    n += 1
    return n


class ExposureTest(TestCase):
    def test_other_hosts_need_protection(self):
        for listen in ("0.0.0.0:0", "[::]:0"):
            run = run_memwatch(["--all", "--listen", listen, "-d", "1"])
            self.assertOneLineError(run, "--listen %s: other hosts reach it.*--insecure-listen" % re.escape(listen))
        # TLS without authentication is not enough.
        make_pki(self.dir)
        config = self.path("web.yml")
        with open(config, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
        run = run_memwatch(["--all", "--listen", "0.0.0.0:0", "--web-config", config, "-d", "1"])
        self.assertOneLineError(run, "it has no authentication")
        # The explicit flag serves, with a warning.
        host = WebHost("0.0.0.0:0", ["--insecure-listen"])
        try:
            warning = [l for l in host.err_lines if "warning" in l]
            self.assertEqual(len(warning), 1, host.err_lines)
            self.assertIn("--insecure-listen", warning[0])
            self.assertEqual(raw_exchange(host.port, b"GET /metrics HTTP/1.0\r\n\r\n")[:12], b"HTTP/1.1 200")
        finally:
            rc, err = host.stop()
        self.assertEqual(rc, 0, err)

    def test_web_config_errors(self):
        config = self.path("web.yml")
        cases = [
            ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
             "line 2: tls_server_config.cipher_suites: not supported by memwatch"),
            ("basic_auth_users:\n  prometheus: plaintext\n", "basic_auth_users.prometheus: not a bcrypt hash"),
            ("web_config:\n  x: 1\n", "line 1: web_config: unknown key"),
            ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "missing.crt"),
        ]
        for text, message in cases:
            with open(config, "w") as f:
                f.write(text)
            run = run_memwatch(["--all", "--listen", "127.0.0.1:0", "--web-config", config, "-d", "1"])
            self.assertOneLineError(run, "--web-config %s: .*%s" % (re.escape(config), re.escape(message)))
        run = run_memwatch(["--all", "--web-config", config, "-d", "1"])
        self.assertOneLineError(run, "--web-config and --insecure-listen go with --listen")


class PrometheusTLSTest(TestCase):
    def test_scraped_through_tls_and_basic_auth(self):
        make_pki(self.dir)
        config = self.path("web.yml")
        with open(config, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "basic_auth_users:\n  prometheus: '%s'\n" % bcrypt(PASSWORD))
        leak = WaitingWorkload([workload("leak"), "--control"])
        host = WebHost("0.0.0.0:0", ["--web-config", config, "--comm", "^leak$"])
        prom = None
        ca = self.path("ca.crt")
        try:
            self.assertIn("(TLS, authenticated)", "".join(host.err_lines))
            # Plain HTTP: no answer; TLS without a password or with a wrong one: 401.
            self.assertNotIn(b"HTTP/1.1 200", raw_exchange(host.port, b"GET /metrics HTTP/1.0\r\n\r\n", timeout=10))
            self.assertEqual(https_status(host.port, cafile=ca)[0], 401)
            self.assertEqual(https_status(host.port, auth="prometheus:wrong", cafile=ca)[0], 401)
            self.assertEqual(https_status(host.port, path="/debug/pprof/heap?pid=%d" % leak.pid,
                                          auth="nobody:" + PASSWORD, cafile=ca)[0], 401)
            self.assertRaises(ssl.SSLError, https_status, host.port, auth="prometheus:" + PASSWORD)
            leak.go()
            self.assertTrue(wait_for(lambda: ('pid="%d"' % leak.pid).encode() in
                                     https_status(host.port, auth="prometheus:" + PASSWORD, cafile=ca)[1]))
            prom = TLSPrometheus(host.port, ca, self.dir)
            self.assertTrue(wait_for(lambda: prom.query('up{job="memwatch"}') == [1.0], timeout=30),
                            prom.query('up{job="memwatch"}'))
            self.assertTrue(wait_for(lambda: prom.query('memwatch_process_live_heap_bytes{pid="%d"}' % leak.pid),
                                     timeout=30))
            status, body = https_status(host.port, auth="prometheus:" + PASSWORD, cafile=ca)
            self.assertEqual(status, 200)
            passed = re.search(rb'^memwatch_http_authentications_total\{result="passed"\} (\d+)', body, re.M)
            remembered = re.search(rb'^memwatch_http_authentications_total\{result="remembered"\} (\d+)', body,
                                   re.M)
            # One bcrypt check for the password; every scrape after it remembered.
            self.assertEqual(int(passed.group(1)), 1, body[-2000:])
            self.assertGreater(int(remembered.group(1)), 1, body[-2000:])
        finally:
            if prom:
                prom.stop()
            leak.kill()
            rc, err = host.stop()
        self.assertEqual(rc, 0, err)

    def test_client_certificates(self):
        make_pki(self.dir)
        config = self.path("web.yml")
        with open(config, "w") as f:
            f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                    "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n")
        host = WebHost("0.0.0.0:0", ["--web-config", config])
        ca = self.path("ca.crt")
        try:
            client = (self.path("client.crt"), self.path("client.key"))
            rogue = (self.path("rogue.crt"), self.path("rogue.key"))
            self.assertEqual(https_status(host.port, cafile=ca, cert=client)[0], 200)
            self.assertEqual(https_status(host.port, cafile=ca)[0], 403)
            self.assertEqual(https_status(host.port, cafile=ca, cert=rogue)[0], 403)
        finally:
            rc, err = host.stop()
        self.assertEqual(rc, 0, err)


class TLSPrometheus:
    def __init__(self, port, ca, workdir):
        self.port = free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: memwatch\n    scheme: https\n"
                    "    tls_config:\n      ca_file: %s\n"
                    "    basic_auth:\n      username: prometheus\n      password: %s\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % (ca, PASSWORD, port))
        self.proc = subprocess.Popen(["prometheus", "--config.file=" + config,
                                      "--storage.tsdb.path=" + os.path.join(workdir, "tsdb"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(self.ready, timeout=30):
            self.stop()
            raise RuntimeError("prometheus did not become ready")

    def ready(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/-/ready")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def query(self, expr):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
            data = json.load(conn.getresponse())
        finally:
            conn.close()
        return [float(v["value"][1]) for v in data["data"]["result"]]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class UnixSocketTest(TestCase):
    def test_permissions_stale_and_cleanup(self):
        sock = self.path("memwatch.sock")
        # A stale socket, as a killed run leaves it.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(sock)
        stale.close()
        leak = WaitingWorkload([workload("leak"), "--control"])
        host = WebHost("unix:" + sock, ["--comm", "^leak$"])
        try:
            self.assertEqual(os.stat(sock).st_mode & 0o7777, 0o600)
            self.assertTrue(wait_for(lambda: ('pid="%d"' % leak.pid).encode() in unix_get(sock)[1]))
            status, body = unix_get(sock, "/debug/pprof/heap?pid=%d" % leak.pid)
            self.assertEqual(status, 200)
            self.assertGreater(len(body), 100)
            # Another user cannot even connect.
            rc, out = as_nobody("import socket\ns = socket.socket(socket.AF_UNIX)\n"
                                "try:\n    s.connect(%r)\nexcept PermissionError:\n    raise SystemExit(13)\n" % sock)
            self.assertEqual(rc, 13, out)
            # A second memwatch on the same path: refused, the first one intact.
            run = run_memwatch(["--all", "--listen", "unix:" + sock, "-d", "1"])
            self.assertOneLineError(run, "unix:.*in use")
            self.assertEqual(unix_get(sock)[0], 200)
        finally:
            leak.kill()
            rc, err = host.stop()
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.lexists(sock))
        # Something that is not a socket is never replaced.
        with open(sock, "w") as f:
            f.write("precious")
        run = run_memwatch(["--all", "--listen", "unix:" + sock, "-d", "1"])
        self.assertOneLineError(run, "exists and is not a socket")
        with open(sock) as f:
            self.assertEqual(f.read(), "precious")

    def test_loopback_tcp_reaches_local_users(self):
        """What the Unix socket is for: the loopback default answers any
        local user (the README says so)."""
        host = WebHost("127.0.0.1:0")
        try:
            rc, out = as_nobody("import urllib.request\n"
                                "print(urllib.request.urlopen('http://127.0.0.1:%d/metrics').status)" % host.port)
            self.assertEqual((rc, out.strip()), (0, "200"))
        finally:
            host.stop()


def metrics_over(port):
    return raw_exchange(port, b"GET /metrics HTTP/1.0\r\n\r\n", timeout=30)


class StarvationTest(TestCase):
    def setUp(self):
        super().setUp()
        self.leak = WaitingWorkload([workload("leak"), "--control"])
        self.host = WebHost("127.0.0.1:0", ["--comm", "^leak$"])
        self.assertTrue(wait_for(lambda: ('pid="%d"' % self.leak.pid).encode() in metrics_over(self.host.port)))

    def tearDown(self):
        self.leak.kill()
        rc, err = self.host.stop()
        self.assertEqual(rc, 0, err)
        super().tearDown()

    def test_abandoned_delta_requests(self):
        """64 ?seconds=60 requests whose clients leave at once: their
        connections are closed then, not 60 s later, and /metrics answers."""
        port = self.host.port
        for i in range(64):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /debug/pprof/heap?seconds=60 HTTP/1.1\r\nHost: x\r\n\r\n")
            s.close()
        got = metrics_over(port)
        self.assertEqual(got[:12], b"HTTP/1.1 200", got[:200])
        self.assertTrue(wait_for(lambda: close_wait_sockets(port) == 0, timeout=20),
                        "%d sockets in CLOSE-WAIT" % close_wait_sockets(port))

    def test_slowloris(self):
        """64 connections trickling headers from one other host, a header
        line a second: /metrics answers, and that host keeps at most its
        share of connections."""
        port = self.host.port
        stop = threading.Event()
        slow = []

        def trickle():
            while not stop.wait(1.0):
                for s in slow:
                    try:
                        s.send(b"X: y\r\n")
                    except OSError:
                        pass
        try:
            for i in range(64):
                s = socket.socket()
                s.bind(("127.0.0.3", 0))
                s.settimeout(30)
                s.connect(("127.0.0.1", port))
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                slow.append(s)
            threading.Thread(target=trickle, daemon=True).start()
            got = metrics_over(port)
            self.assertEqual(got[:12], b"HTTP/1.1 200", got[:200])
            self.assertIn(b"memwatch_process_info", got)
            open_slow = 0
            for s in slow:
                s.setblocking(False)
                try:
                    open_slow += s.recv(1) != b""
                except BlockingIOError:
                    open_slow += 1
                except OSError:
                    pass
            self.assertLessEqual(open_slow, 16)
            evicted = re.search(rb'^memwatch_http_connections_closed_total\{reason="evicted"\} (\d+)',
                                metrics_over(port), re.M)
            self.assertGreaterEqual(int(evicted.group(1)), 64 - 16)
        finally:
            stop.set()
            for s in slow:
                s.close()


class FramingTest(TestCase):
    def test_nul_and_conflicting_lengths(self):
        leak = WaitingWorkload([workload("leak"), "--control"])
        host = WebHost("127.0.0.1:0", ["--comm", "^leak$"])
        try:
            ok = raw_exchange(host.port, b"GET /debug/pprof/heap HTTP/1.0\r\n\r\n")
            self.assertEqual(ok[:12], b"HTTP/1.1 200", ok[:200])
            got = raw_exchange(host.port, b"GET /debug/pprof/heap%00.txt HTTP/1.0\r\n\r\n")
            self.assertEqual(got[:12], b"HTTP/1.1 400", got[:200])
            # Two lengths: a front proxy may have read a body where memwatch
            # reads the next request. One answer, a 400, then the close.
            got = raw_exchange(host.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                          b"Content-Length: 44\r\n\r\n"
                                          b"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(got[:12], b"HTTP/1.1 400", got[:200])
            self.assertEqual(got.count(b"HTTP/1.1 "), 1, got[:400])
        finally:
            leak.kill()
            rc, err = host.stop()
        self.assertEqual(rc, 0, err)
