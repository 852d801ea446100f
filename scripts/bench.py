#!/usr/bin/env python3
"""Benchmarks ft against the tools people would use instead, in one run, on loopback.

Run it through scripts/bench.sh (which installs the peers and builds release binaries). Each
case runs its commands in alternation (ours, a peer, ours, ...) for several rounds, and the
table reports medians with min/max, plus ratios against the peers measured in the same run.
Nothing here is a test: numbers are printed and written to a Markdown file, never asserted.

Cases 1-6 run by default. Case 7 (FTPS: ftserver --tls-self-signed against vsftpd ssl_enable=YES,
and 50 idle FTPS sessions) and case 8 (ftserver --storage on a throwaway PostgreSQL cluster,
against the local backend and the database's own COPY) run when --cases names them; case 8
needs PostgreSQL's initdb and pg_ctl, and keeps its cluster under --dir (a tmpfs --dir keeps
the database in memory: say so when quoting its figures).

With --baseline DIR (another build's ftserver and ftclient, e.g. the commit before a refactor),
cases 1, 2, 4 and 6 also run every contender that uses ft with DIR's binaries, against a
baseline ftserver of its own, labelled "(baseline)", next to its twin in the same alternation;
the report gives each new / baseline ratio. The two builds must take the same options.
"""

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User+system CPU seconds of a process and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        # Gone (or going: a read racing the exit gets ESRCH).
        return 0.0
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / CLK_TCK


def peak_rss_kib(pid):
    """VmHWM of a process in KiB; 0 when it has ended (or is a zombie, which has no memory)."""
    return read_peak_rss_kib(pid) or 0


def read_peak_rss_kib(pid):
    """VmHWM of a process in KiB, 0 for a zombie, None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        # The process ended: before the open (ENOENT) or during the read (ESRCH).
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each case reports its own peak.
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


class RssSampler:
    """Samples a child's VmHWM every 10 ms in a thread.

    ru_maxrss from wait4 is useless here: it counts the forked Python interpreter's pages, so
    every client would show the benchmark's own size. VmHWM only grows, so the last sample
    before exit is the peak to within the final 10 ms.
    """

    def __init__(self, pid):
        import threading
        self.pid = pid
        self.kib = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        # A process that ends between two samples ends the sampling, quietly: its peak is the
        # last value read.
        while not self.done.wait(0.01):
            kib = read_peak_rss_kib(self.pid)
            if kib is None:
                return
            self.kib = max(self.kib, kib)

    def stop(self):
        self.done.set()
        self.thread.join()


class Server:
    """A background server process, stopped on exit."""

    def __init__(self, name, argv, cwd=None, ready=None, env=None):
        self.name = name
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
            start_new_session=True,
        )
        if ready:
            ready(self)

    def wait_tcp(self, port, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {port}")

    def pids(self):
        """The server process and its descendants (vsftpd forks a process per session)."""
        out = [self.proc.pid]
        try:
            children = subprocess.run(["pgrep", "-s", str(self.proc.pid)], capture_output=True, text=True).stdout
            out += [int(p) for p in children.split() if int(p) != self.proc.pid]
        except FileNotFoundError:
            pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_ftserver(name, bin_dir, args):
    """Starts ftserver on 127.0.0.1 port 0 and reads the port it picked (and, with TLS, the
    certificate fingerprint) from the lines it prints once ready: a port found free by binding
    127.0.0.1 can still be in use on 0.0.0.0, where ftserver listens by default.

    Returns (server, port, fingerprint or None)."""
    srv = Server(name, [str(bin_dir / "ftserver"), *args, "-q", "--bind", "127.0.0.1", "--max-clients", "500",
                        "--max-per-ip", "500", "0"])
    port = pin = None
    for line in srv.proc.stdout:
        if line.startswith("ftserver: serving") and port is None:
            port = int(line.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1])
            if "--tls-self-signed" not in args:
                break
        elif "tls certificate" in line:
            pin = line.split()[-1]
            break
    if port is None:
        srv.stop()
        raise RuntimeError(f"{name} did not start (exit status {srv.proc.poll()})")
    srv.wait_tcp(port)
    return srv, port, pin


def run_timed(argv, cwd=None, stdout=subprocess.DEVNULL, server=None, shell=False):
    """Runs one client command to completion; fails if it fails.

    Returns (seconds, client_cpu_seconds, server_cpu_seconds, client_peak_rss_kib, stderr).
    """
    srv_before = cpu_seconds(server.proc.pid) if server else 0.0
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, shell=shell)
    peak = RssSampler(proc.pid)
    stderr = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    peak.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        shown = argv if isinstance(argv, str) else " ".join(map(str, argv))
        raise RuntimeError(f"{shown} exited with {proc.returncode}: {stderr.strip()[-300:]}")
    srv_cpu = (cpu_seconds(server.proc.pid) - srv_before) if server else 0.0
    return elapsed, usage.ru_utime + usage.ru_stime, srv_cpu, peak.kib, stderr


def warm(paths):
    """Reads files (and the files under directories) so that a run starts with its source in
    the page cache. Once at the start is not enough on these VMs: the host pages out memory
    that has not been touched for about a minute (DAMON "pageout" of pages idle for 12 x 5 s),
    so a source last read one case earlier may be on disk again, and whoever runs first in a
    round would pay for reading it."""
    buf = bytearray(MiB)
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.rounds = args.rounds
        self.work = Path(args.dir)
        self.data = self.work / "data"
        self.out = self.work / "out"
        self.bin = Path(args.bin).resolve()
        self.baseline = Path(args.baseline).resolve() if args.baseline else None
        self.servers = []
        self.results = {}  # case -> list of rows
        self.notes = []

    # ---------- setup ----------
    def prepare(self):
        self.data.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        big = self.data / "big.bin"
        if not big.exists() or big.stat().st_size != self.args.big_mib * MiB:
            print(f"preparing {self.args.big_mib} MiB random file", flush=True)
            with open(big, "wb") as f:
                for _ in range(self.args.big_mib):
                    f.write(os.urandom(MiB))
        mid = self.data / "mid.bin"
        if not mid.exists():
            with open(mid, "wb") as f:
                for _ in range(100):
                    f.write(os.urandom(MiB))
        twenty = self.data / "twenty.bin"
        if not twenty.exists():
            twenty.write_bytes(os.urandom(20 * MiB))
        tree = self.data / "tree"
        if not tree.exists():
            tmp = self.data / "tree.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            for i in range(1000):
                d = tmp / f"d{i // 100:02d}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"f{i:04d}.bin").write_bytes(os.urandom(4096))
            tmp.rename(tree)
        self.upload_root = self.work / "upload"
        self.upload_root.mkdir(exist_ok=True)
        os.chmod(self.upload_root, 0o777)

    def start_ft(self, bin_dir, name):
        srv, port, _ = start_ftserver(name, bin_dir, ["--root", str(self.data)])
        return srv, port

    def start_servers(self):
        # ftserver, and the baseline's: builds holds (bin dir, label suffix, ftserver, its port).
        self.ft, self.ft_port = self.start_ft(self.bin, "ftserver")
        self.builds = [(self.bin, "", self.ft, self.ft_port)]
        if self.baseline:
            srv, port = self.start_ft(self.baseline, "ftserver" + BASELINE)
            self.builds.append((self.baseline, BASELINE, srv, port))
            self.servers.append(srv)
        # vsftpd
        if shutil.which("vsftpd"):
            port = free_port()
            conf = self.vsftpd_conf("vsftpd.conf", port, [])
            self.vs = Server("vsftpd", ["vsftpd", str(conf)])
            self.vs.wait_tcp(port)
            self.vs_port = port
        else:
            self.vs = None
        # pyftpdlib
        port = free_port()
        self.py = Server("pyftpdlib", [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port),
                                       "-d", str(self.data)])
        self.py.wait_tcp(port)
        self.py_port = port
        self.servers += [s for s in (self.ft, self.vs, self.py) if s]

    def vsftpd_conf(self, name, port, extra, pasv=(30000, 30999)):
        """Writes an anonymous, read-only vsftpd configuration serving the data directory."""
        conf = self.work / name
        os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
        conf.write_text("\n".join([
            "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1", f"listen_port={port}",
            "anonymous_enable=YES", "local_enable=NO", f"anon_root={self.data}", "no_anon_password=YES",
            "write_enable=NO", "background=NO", "seccomp_sandbox=NO", "run_as_launching_user=YES",
            "pasv_enable=YES", f"pasv_min_port={pasv[0]}", f"pasv_max_port={pasv[1]}", "max_clients=500",
            "max_per_ip=500", "use_sendfile=YES", "xferlog_enable=NO", "dirmessage_enable=NO",
            "secure_chroot_dir=/var/run/vsftpd/empty", "anon_world_readable_only=NO",
        ] + extra) + "\n")
        return conf

    def stop_servers(self):
        for s in self.servers:
            s.stop()

    def per_build(self, make):
        """The contenders make(bin_dir, label_suffix, ftserver, port) returns for this build and,
        with --baseline, for the baseline, interleaved so that each runs next to its twin."""
        lists = [make(*build) for build in self.builds]
        return [c for twins in zip(*lists) for c in twins]

    # ---------- measuring ----------
    def measure(self, case, contenders, size_bytes, sources, rounds=None, prepare=None, unit="MB/s"):
        """contenders: list of (label, argv or callable, server, opts). Runs them in alternation,
        each round starting with the next contender (so none always follows the same one, or
        the previous case), after prepare(), a sync that puts the previous run's dirty pages
        on disk, and a read of the case's source files (see warm) before the clock starts."""
        rounds = rounds or self.rounds
        samples = {label: [] for label, *_ in contenders}
        for r in range(rounds):
            shift = r % len(contenders)
            for label, argv, server, opts in contenders[shift:] + contenders[:shift]:
                if prepare:
                    prepare(label)
                os.sync()
                warm(sources)
                if server:
                    reset_peak_rss(server.proc.pid)
                if callable(argv):
                    elapsed, ccpu, scpu, crss = argv()
                else:
                    elapsed, ccpu, scpu, crss, err = run_timed(argv, server=server, shell=opts.get("shell", False),
                                                               cwd=opts.get("cwd"))
                    verify = opts.get("verify")
                    if verify and not verify():
                        raise RuntimeError(f"{case} / {label}: output did not verify: {err.strip()[-300:]}")
                srss = max((peak_rss_kib(p) for p in server.pids()), default=0) if server else 0
                samples[label].append((elapsed, ccpu, scpu, crss, srss))
                print(f"  {case} round {r + 1} {label}: {size_bytes / elapsed / 1e6:.0f} {unit}", flush=True)
        rows = []
        for label, *_ in contenders:
            s = samples[label]
            rates = sorted(size_bytes / x[0] / 1e6 for x in s)
            rows.append({
                "label": label,
                "median": statistics.median(rates),
                "min": rates[0],
                "max": rates[-1],
                "client_cpu_per_gib": statistics.median(x[1] for x in s) * GiB / size_bytes,
                "server_cpu_per_gib": statistics.median(x[2] for x in s) * GiB / size_bytes,
                "client_rss_mib": max(x[3] for x in s) / 1024,
                "server_rss_mib": max(x[4] for x in s) / 1024,
            })
        self.results[case] = (rows, unit)

    def same_file(self, path, ref):
        def verify():
            ok = Path(path).exists() and Path(path).stat().st_size == ref.stat().st_size
            return ok
        return verify

    # ---------- cases ----------
    def case1(self):
        big = self.data / "big.bin"
        size = big.stat().st_size
        c = []
        if shutil.which("socat"):
            port = free_port()
            def socat_pipe():
                srv = subprocess.Popen(["socat", "-u", "-b", "262144", f"OPEN:{big},rdonly",
                                        f"TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1"])
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if f":{port} " in subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout:
                        break
                    time.sleep(0.02)
                res = run_timed(["socat", "-u", "-b", "262144", f"TCP:127.0.0.1:{port}", "/dev/null"])
                srv.wait(10)
                return res[:4]
            c.append(("raw TCP pipe (socat, 256 KiB buffers)", socat_pipe, None, {}))
        if shutil.which("iperf3"):
            iperf_port = free_port()

            def iperf():
                srv = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(iperf_port)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if f":{iperf_port} " in subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout:
                        break
                    time.sleep(0.02)
                res = run_timed(["iperf3", "-c", "127.0.0.1", "-p", str(iperf_port), "-l", "1M", "-n", str(size)])
                srv.wait(10)
                return res[:4]
            c.append((f"{REFERENCE} one TCP stream from memory, no file (iperf3 -l 1M)", iperf, None, {}))

        def ours(bin_dir, tag, srv, port):
            ft = str(bin_dir / "ftclient")
            return [
                (f"ftserver + ftclient (passive){tag}", [ft, "-q", "127.0.0.1", str(port), "-g", "big.bin", "-o", "-"],
                 srv, {}),
                (f"ftserver + ftclient --no-verify (passive){tag}",
                 [ft, "-q", "--no-verify", "127.0.0.1", str(port), "-g", "big.bin", "-o", "-"], srv, {}),
                (f"ftserver + ftclient (active){tag}",
                 [ft, "-q", "127.0.0.1", str(port), "-g", "big.bin", "-o", "-", str(free_port())], srv, {}),
                (f"ftserver + curl{tag}", ["curl", "-sS", "-o", "/dev/null", f"ftp://127.0.0.1:{port}/big.bin"], srv,
                 {}),
            ]
        c += self.per_build(ours)
        if self.vs:
            c.append(("vsftpd + curl", ["curl", "-sS", "-o", "/dev/null", f"ftp://127.0.0.1:{self.vs_port}/big.bin"],
                      self.vs, {}))
        c.append(("pyftpdlib + curl", ["curl", "-sS", "-o", "/dev/null", f"ftp://127.0.0.1:{self.py_port}/big.bin"],
                  self.py, {}))
        # ftclient -o - writes to stdout; send stdout to /dev/null.
        self.measure("1. 1 GiB download to /dev/null", c, size, [big])

    def case2(self):
        big = self.data / "big.bin"
        size = big.stat().st_size
        target = self.out / "big.copy"

        def clean(_label):
            for p in self.out.glob("big.copy*"):
                p.unlink()
            for p in self.out.glob(".big.copy*"):
                p.unlink()

        def ours(bin_dir, tag, srv, port):
            ft = str(bin_dir / "ftclient")
            return [
                (f"ftserver + ftclient{tag}", [ft, "-q", "127.0.0.1", str(port), "-g", "big.bin", "-o", str(target)],
                 srv, {"verify": self.same_file(target, big)}),
                (f"ftserver + ftclient --no-verify{tag}",
                 [ft, "-q", "--no-verify", "127.0.0.1", str(port), "-g", "big.bin", "-o", str(target)], srv,
                 {"verify": self.same_file(target, big)}),
                (f"ftserver + curl{tag}", ["curl", "-sS", "-o", str(target), f"ftp://127.0.0.1:{port}/big.bin"], srv,
                 {"verify": self.same_file(target, big)}),
            ]
        c = [("cat big > file (write ceiling)", f"cat {big} > {target}", None, {"shell": True})] + self.per_build(ours)
        if self.vs:
            c.append(("vsftpd + curl", ["curl", "-sS", "-o", str(target), f"ftp://127.0.0.1:{self.vs_port}/big.bin"],
                      self.vs, {"verify": self.same_file(target, big)}))
        self.measure("2. 1 GiB download to a file", c, size, [big], prepare=clean)
        clean(None)

    def ftclient_supports(self, flag):
        r = subprocess.run([str(self.bin / "ftclient"), "--help"], capture_output=True, text=True)
        return flag in r.stdout

    def case3(self):
        if not self.ftclient_supports("--put"):
            self.notes.append("case 3 (upload) not measured: ftclient has no --put yet")
            return
        big = self.data / "big.bin"
        size = big.stat().st_size
        port = free_port()
        up = Server("ftserver (writable)", [str(self.bin / "ftserver"), "--root", str(self.upload_root), "-q",
                                            "--writable", "--overwrite", str(port)])
        up.wait_tcp(port)
        self.servers.append(up)

        def clean(_label):
            for p in self.upload_root.iterdir():
                if p.is_file():
                    p.unlink()
        c = [
            ("ftclient -p -> ftserver", [str(self.bin / "ftclient"), "-q", "127.0.0.1", str(port), "-p", str(big)], up,
             {}),
            ("curl -T -> ftserver", ["curl", "-sS", "-T", str(big), f"ftp://127.0.0.1:{port}/big.bin"], up, {}),
        ]
        self.measure("3. 1 GiB upload", c, size, [big], prepare=clean)
        clean(None)

    def case4(self):
        files = 1000
        dest = self.out / "tree"
        done = self.out / "trees-done"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(done, ignore_errors=True)
        done.mkdir(parents=True)
        runs = iter(range(1 << 30))

        def clean(_label):
            # Moved aside, not deleted: on ext4 without a journal (this VM's disk) creating a
            # file searches past every inode deleted in the last few seconds, so deleting a
            # tree before each run made the next run's file creations several times slower,
            # whoever created them. Everything is deleted once the case is over.
            if dest.exists():
                dest.rename(done / str(next(runs)))
            dest.mkdir(parents=True)
        parallel = self.ftclient_supports("--parallel")
        if not parallel:
            self.notes.append("case 4: ftclient has no -r/--parallel yet; only lftp measured")
        lftp = self.vs and shutil.which("lftp")

        def ours(bin_dir, tag, srv, port):
            c = []
            if parallel:
                c.append((f"ftclient -r -g --parallel {self.args.parallel}{tag}",
                          [str(bin_dir / "ftclient"), "-q", "127.0.0.1", str(port), "-r", "-g", "tree",
                           "--parallel", str(self.args.parallel)], srv, {"cwd": str(dest)}))
            if lftp:
                c.append((f"lftp mirror --parallel=8 (ftserver){tag}",
                          ["lftp", "-c", f"set cmd:fail-exit yes; open -p {port} 127.0.0.1; "
                                         f"mirror --parallel=8 tree {dest}/tree"], srv, {}))
            return c
        c = self.per_build(ours)
        if lftp:
            c.append(("lftp mirror --parallel=8 (vsftpd)",
                      ["lftp", "-c", f"set cmd:fail-exit yes; open -p {self.vs_port} 127.0.0.1; "
                                     f"mirror --parallel=8 tree {dest}/tree"], self.vs, {}))
        # Report files per second: size_bytes = files * 1e6 so that "MB/s" becomes files/s.
        self.measure("4. 1000 x 4 KiB files", c, files * 1e6, [self.data / "tree"], prepare=clean, unit="files/s")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(done, ignore_errors=True)

    def case5(self):
        n = 50
        size = n * 20 * MiB

        def parallel(argv_for):
            def run():
                srv = self.current_server
                before = cpu_seconds(srv.proc.pid)
                start = time.perf_counter()
                procs = [subprocess.Popen(argv_for(i), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                         for i in range(n)]
                samplers = [RssSampler(p.pid) for p in procs]
                ccpu, crss = 0.0, 0
                for p, sampler in zip(procs, samplers):
                    _, status, usage = os.wait4(p.pid, 0)
                    sampler.stop()
                    if status != 0:
                        raise RuntimeError(f"a parallel download failed: {p.stderr.read()[-300:]}")
                    ccpu += usage.ru_utime + usage.ru_stime
                    crss = max(crss, sampler.kib)
                elapsed = time.perf_counter() - start
                return elapsed, ccpu, cpu_seconds(srv.proc.pid) - before, crss
            return run

        ft = str(self.bin / "ftclient")
        c = []

        def with_server(srv, fn):
            def run():
                self.current_server = srv
                return fn()
            return run
        c.append(("50 x ftclient <- ftserver", with_server(self.ft, parallel(
            lambda i: [ft, "-q", "127.0.0.1", str(self.ft_port), "-g", "twenty.bin", "-o", "-"])), self.ft, {}))
        c.append(("50 x curl <- ftserver", with_server(self.ft, parallel(
            lambda i: ["curl", "-sS", "-o", "/dev/null", f"ftp://127.0.0.1:{self.ft_port}/twenty.bin"])), self.ft, {}))
        if self.vs:
            c.append(("50 x curl <- vsftpd", with_server(self.vs, parallel(
                lambda i: ["curl", "-sS", "-o", "/dev/null", f"ftp://127.0.0.1:{self.vs_port}/twenty.bin"])),
                      self.vs, {}))
        self.measure("5. 50 concurrent 20 MiB downloads", c, size, [self.data / "twenty.bin"])

    def case6(self):
        mid = self.data / "mid.bin"
        size = mid.stat().st_size
        r = subprocess.run([str(self.bin / "ftserver"), "--help"], capture_output=True, text=True)
        servers = []
        if "--tftp" in r.stdout:
            for bin_dir, tag, *_ in self.builds:
                port = free_port(socket.SOCK_DGRAM)
                ftp_port = free_port()
                s = Server(f"ftserver --tftp{tag}", [str(bin_dir / "ftserver"), "--root", str(self.data), "-q",
                                                     "--tftp", f"127.0.0.1:{port}", str(ftp_port)])
                s.wait_tcp(ftp_port)
                self.servers.append(s)
                servers.append(("ftserver", s, port, tag))
        else:
            self.notes.append("case 6: ftserver has no --tftp yet; only the peers measured")
        if shutil.which("in.tftpd"):
            port = free_port(socket.SOCK_DGRAM)
            s = Server("tftpd-hpa", ["in.tftpd", "-L", "-s", str(self.data), "-a", f"127.0.0.1:{port}"])
            time.sleep(0.3)  # in.tftpd has no readiness signal; this is setup, not a measurement.
            self.servers.append(s)
            servers.append(("tftpd-hpa", s, port, ""))
        try:
            import py3tftp  # noqa: F401
            port = free_port(socket.SOCK_DGRAM)
            s = Server("py3tftp", [sys.executable, "-m", "py3tftp", "--host", "127.0.0.1", "-p", str(port)],
                       cwd=str(self.data))
            time.sleep(0.5)
            self.servers.append(s)
            servers.append(("py3tftp", s, port, ""))
        except ImportError:
            self.notes.append("case 6: py3tftp not installed")
        target = self.out / "mid.copy"

        def clean(_label):
            if target.exists():
                target.unlink()
        for blksize in (512, 1468, 65464):
            c = [(f"{name} + curl blksize {blksize}{tag}",
                  ["curl", "-sS", "--tftp-blksize", str(blksize), "-o", str(target), f"tftp://127.0.0.1:{port}/mid.bin"],
                  srv, {"verify": self.same_file(target, mid)})
                 for name, srv, port, tag in servers if name != "py3tftp" or blksize == 512]
            self.measure(f"6. TFTP 100 MiB, curl, blksize {blksize}", c, size, [mid],
                         prepare=clean)
        if shutil.which("atftp"):
            c = [(f"{name} + atftp blksize 1468 windowsize 16{tag}",
                  ["atftp", "--option", "blksize 1468", "--option", "windowsize 16", "-g", "-r", "mid.bin", "-l",
                   str(target), "127.0.0.1", str(port)], srv, {"verify": self.same_file(target, mid)})
                 for name, srv, port, tag in servers]
            self.measure("6. TFTP 100 MiB, atftp, blksize 1468 + windowsize 16", c, size, [mid],
                         prepare=clean)
        clean(None)

    # ---------- FTPS ----------
    def start_ft_tls(self, name):
        """An ftserver with --tls-self-signed (explicit AUTH TLS, plain FTP still offered) and
        the certificate fingerprint it prints, for ftclient --pin."""
        srv, port, pin = start_ftserver(name, self.bin, ["--root", str(self.data), "--tls-self-signed"])
        self.servers.append(srv)
        if not pin:
            raise RuntimeError(f"{name} printed no certificate fingerprint")
        return srv, port, pin

    def start_vsftpd_tls(self):
        """vsftpd with explicit FTPS forced for anonymous logins and data, a fresh RSA 2048
        certificate and ssl_ciphers=HIGH (AES-GCM/ChaCha20 with ECDHE; TLS 1.3 where OpenSSL
        negotiates it)."""
        cert, key = self.work / "vsftpd-cert.pem", self.work / "vsftpd-key.pem"
        if not cert.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                            "-out", str(cert), "-days", "30", "-subj", "/CN=127.0.0.1"],
                           check=True, capture_output=True)
        port = free_port()
        conf = self.vsftpd_conf("vsftpd-tls.conf", port, [
            "ssl_enable=YES", "allow_anon_ssl=YES", "force_anon_logins_ssl=YES", "force_anon_data_ssl=YES",
            f"rsa_cert_file={cert}", f"rsa_private_key_file={key}", "ssl_ciphers=HIGH",
            "require_ssl_reuse=YES", "ssl_sslv2=NO", "ssl_sslv3=NO", "ssl_tlsv1=YES",
        ], pasv=(31000, 31999))
        srv = Server("vsftpd (tls)", ["vsftpd", str(conf)])
        srv.wait_tcp(port)
        self.servers.append(srv)
        return srv, port

    def tls_suite(self, port):
        """The TLS version and cipher suite curl negotiates with the server on port."""
        r = subprocess.run(["curl", "-sv", "--ssl-reqd", "-k", "-l", f"ftp://127.0.0.1:{port}/"],
                           capture_output=True, text=True)
        for line in r.stderr.splitlines():
            if "SSL connection using" in line:
                return line.split("using", 1)[1].strip()
        return "unknown (curl printed none)"

    def case7(self):
        big = self.data / "big.bin"
        size = big.stat().st_size
        ft_srv, ft_port, pin = self.start_ft_tls("ftserver (tls)")
        vs_srv, vs_port = self.start_vsftpd_tls()
        ft = str(self.bin / "ftclient")
        url = f"ftp://127.0.0.1:{ft_port}/big.bin"
        c = [
            ("ftserver + ftclient --tls --pin", [ft, "-q", "--tls", "--pin", pin, "127.0.0.1", str(ft_port), "-g",
                                                 "big.bin", "-o", "-"], ft_srv, {}),
            ("ftserver + ftclient, plain FTP (same server)",
             [ft, "-q", "127.0.0.1", str(ft_port), "-g", "big.bin", "-o", "-"], ft_srv, {}),
            ("ftserver + curl --ssl-reqd", ["curl", "-sS", "--ssl-reqd", "-k", "-o", "/dev/null", url], ft_srv, {}),
            ("ftserver + curl, plain FTP (same server)", ["curl", "-sS", "-o", "/dev/null", url], ft_srv, {}),
            ("vsftpd + curl --ssl-reqd", ["curl", "-sS", "--ssl-reqd", "-k", "-o", "/dev/null",
                                          f"ftp://127.0.0.1:{vs_port}/big.bin"], vs_srv, {}),
        ]
        self.measure("7. FTPS: 1 GiB download to /dev/null (explicit TLS, PROT P)", c, size, [big])
        self.notes.append(f"case 7: curl negotiated {self.tls_suite(ft_port)} with ftserver (rustls) and "
                          f"{self.tls_suite(vs_port)} with vsftpd (OpenSSL, ssl_ciphers=HIGH, "
                          "require_ssl_reuse=YES); ftclient --tls uses rustls on both ends")
        self.idle_sessions(vs_srv, vs_port)

    def idle_sessions(self, vs_srv, vs_port, n=50):
        """n FTPS sessions, each logged in with PROT P and then idle, against a fresh ftserver
        (and vsftpd for scale); the server's memory with all of them open."""
        import ftplib
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def memory(srv):
            """(RSS KiB, peak RSS KiB, PSS KiB) summed over the server's processes, and their number."""
            rss = hwm = pss = count = 0
            for pid in [srv.proc.pid] + descendants(srv.proc.pid):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
                for line in rollup.splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                count += 1
            return rss, hwm, pss, count

        def hold(srv, port):
            before = memory(srv)
            sessions = []
            try:
                for _ in range(n):
                    f = ftplib.FTP_TLS(context=ctx, timeout=30)
                    f.connect("127.0.0.1", port)
                    f.login()  # AUTH TLS first, then USER anonymous
                    f.prot_p()  # PBSZ 0, PROT P
                    sessions.append(f)
                for f in sessions:
                    f.voidcmd("NOOP")
                during = memory(srv)
            finally:
                for f in sessions:
                    try:
                        f.quit()
                    except (OSError, EOFError, ftplib.Error):
                        f.close()
            return before, during

        fresh, port, _pin = self.start_ft_tls("ftserver (tls, idle sessions)")
        rows = [f"| server | processes | RSS before MiB | RSS with {n} sessions MiB | peak RSS MiB | "
                f"PSS with {n} sessions MiB |", "|---|---:|---:|---:|---:|---:|"]
        for label, srv, p in (("ftserver --tls-self-signed", fresh, port), ("vsftpd ssl_enable=YES", vs_srv, vs_port)):
            before, during = hold(srv, p)
            rows.append(f"| {label} | {during[3]} | {before[0] / 1024:.1f} | {during[0] / 1024:.1f} | "
                        f"{during[1] / 1024:.1f} | {during[2] / 1024:.1f} |")
            print(f"  7. {n} idle FTPS sessions, {label}: RSS {during[0] / 1024:.1f} MiB", flush=True)
        rows.append("")
        rows.append(f"Each session: Python ftplib.FTP_TLS, AUTH TLS, anonymous login, PBSZ 0 + PROT P, one NOOP, "
                    f"then idle while the memory is read. vsftpd's RSS adds up pages its processes share; "
                    f"its PSS does not.")
        self.results[f"7. FTPS: {n} concurrent idle sessions (logged in, PROT P)"] = (rows, TABLE)
        fresh.stop()

    # ---------- PostgreSQL ----------
    def case8(self):
        pg = PgCluster(self.work / "pg", PG_SETTINGS)
        try:
            self.case8_run(pg)
        finally:
            pg.stop()

    def case8_run(self, pg):
        big = self.data / "big.bin"
        tree = self.data / "tree"
        size = big.stat().st_size
        ft = str(self.bin / "ftclient")
        pg.psql("CREATE DATABASE ft", db="postgres")
        # The database's own bulk path: the same bytes in 256 KiB bytea rows (ft.chunks' layout,
        # STORAGE EXTERNAL like it), loaded and dumped with COPY in binary format.
        pg.psql("CREATE SCHEMA bench",
                "CREATE TABLE bench.chunks (content bigint, seq integer, data bytea, PRIMARY KEY (content, seq))",
                "ALTER TABLE bench.chunks ALTER COLUMN data SET STORAGE EXTERNAL")
        copy_in = self.work / "big.pgcopy"
        write_pgcopy(big, copy_in, PG_CHUNK)
        copy_out = self.out / "big.pgcopy.out"
        # ftserver on the database, and on a directory with the same files (hard links).
        pg_srv, port, _ = start_ftserver("ftserver --storage", self.bin,
                                         ["--storage", pg.conninfo("ft"), "--writable"])
        self.servers.append(pg_srv)
        local_root = self.work / "local-root"
        shutil.rmtree(local_root, ignore_errors=True)
        local_root.mkdir()
        os.link(big, local_root / "big.bin")
        shutil.copytree(tree, local_root / "tree")
        local_srv, lport, _ = start_ftserver("ftserver --root (writable)", self.bin,
                                             ["--root", str(local_root), "--writable"])
        self.servers.append(local_srv)
        # The files the downloads read, stored once (not timed).
        subprocess.run([ft, "-q", "127.0.0.1", str(port), "-p", str(big)], check=True)
        subprocess.run([ft, "-q", "127.0.0.1", str(port), "-r", "-p", "tree", "--parallel", "8"], cwd=self.data,
                       check=True)
        db_cpu = {}

        def run(label, argv, server, cwd=None, verify=None, shell=False):
            def go():
                before = pg.cpu()
                elapsed, ccpu, scpu, crss, err = run_timed(argv, server=server, cwd=cwd, shell=shell)
                db_cpu.setdefault(label, []).append(pg.cpu() - before)
                if verify and not verify():
                    raise RuntimeError(f"8 / {label}: output did not verify: {err.strip()[-300:]}")
                return elapsed, ccpu, scpu, crss
            return (label, go, server, {})

        def forget(name):
            """Deletes a file or tree ftserver stored at the root of the database, and vacuums."""
            pg.psql(f"WITH RECURSIVE t AS (SELECT id FROM ft.entries WHERE parent = 0 AND name = '{name}' "
                    "UNION ALL SELECT e.id FROM ft.entries e JOIN t ON e.parent = t.id) "
                    "DELETE FROM ft.entries WHERE id IN (SELECT id FROM t)",
                    "VACUUM ft.chunks", "VACUUM ft.entries")

        # Large file, upload.
        labels = {"pg": "ftclient -p -> ftserver --storage postgres", "local": "ftclient -p -> ftserver --root (local)",
                  "copy": "psql \\copy FROM file (binary) into a bytea table"}

        def clean_up(label):
            if label == labels["pg"]:
                forget("up.bin")
            elif label == labels["local"]:
                (local_root / "up.bin").unlink(missing_ok=True)
            else:
                pg.psql("TRUNCATE bench.chunks", "VACUUM bench.chunks")
        copy_from = f"\\copy bench.chunks FROM '{copy_in}' WITH (FORMAT binary)"
        c = [
            run(labels["pg"], [ft, "-q", "127.0.0.1", str(port), "-p", str(big), "--to", "up.bin"], pg_srv),
            run(labels["local"], [ft, "-q", "127.0.0.1", str(lport), "-p", str(big), "--to", "up.bin"], local_srv,
                verify=self.same_file(local_root / "up.bin", big)),
            run(labels["copy"], pg.psql_argv("ft", copy_from), None),
        ]
        up_case = "8. PostgreSQL: 1 GiB upload"
        self.measure(up_case, c, size, [big, copy_in], prepare=clean_up)
        # The COPY table keeps the last upload (the downloads read it); the others are dropped.
        forget("up.bin")
        (local_root / "up.bin").unlink(missing_ok=True)
        if not pg.psql("SELECT count(*) FROM bench.chunks", capture=True).strip().endswith(
                str((size + PG_CHUNK - 1) // PG_CHUNK)):
            pg.psql("TRUNCATE bench.chunks")
            subprocess.run(pg.psql_argv("ft", copy_from), check=True, stdout=subprocess.DEVNULL)

        # Large file, download to a file.
        target = self.out / "big.copy"

        def clean_down(_label):
            target.unlink(missing_ok=True)
            copy_out.unlink(missing_ok=True)
        copy_to = (f"\\copy (SELECT content, seq, data FROM bench.chunks ORDER BY content, seq) TO '{copy_out}' "
                   "WITH (FORMAT binary)")
        c = [
            run("ftserver --storage postgres -> ftclient -g", [ft, "-q", "127.0.0.1", str(port), "-g", "big.bin", "-o",
                                                               str(target)], pg_srv,
                verify=self.same_file(target, big)),
            run("ftserver --root (local) -> ftclient -g", [ft, "-q", "127.0.0.1", str(lport), "-g", "big.bin", "-o",
                                                          str(target)], local_srv,
                verify=self.same_file(target, big)),
            run("psql \\copy TO file (binary) from a bytea table", pg.psql_argv("ft", copy_to), None,
                verify=lambda: copy_out.stat().st_size >= size),
        ]
        down_case = "8. PostgreSQL: 1 GiB download to a file"
        self.measure(down_case, c, size, [big], prepare=clean_down)
        clean_down(None)

        # 1000 x 4 KiB, 8 sessions, up and down.
        files = 1000
        par = str(self.args.parallel)

        def clean_tree_up(label):
            if "postgres" in label:
                forget("up-tree")
            else:
                shutil.rmtree(local_root / "up-tree", ignore_errors=True)
        c = [
            run(f"ftclient -r -p --parallel {par} -> ftserver --storage postgres",
                [ft, "-q", "127.0.0.1", str(port), "-r", "-p", "tree", "--to", "up-tree", "--parallel", par], pg_srv,
                cwd=str(self.data)),
            run(f"ftclient -r -p --parallel {par} -> ftserver --root (local)",
                [ft, "-q", "127.0.0.1", str(lport), "-r", "-p", "tree", "--to", "up-tree", "--parallel", par],
                local_srv, cwd=str(self.data)),
        ]
        small_up = "8. PostgreSQL: 1000 x 4 KiB uploads"
        self.measure(small_up, c, files * 1e6, [tree], prepare=clean_tree_up, unit="files/s")
        forget("up-tree")
        shutil.rmtree(local_root / "up-tree", ignore_errors=True)
        dest = self.out / "pgtree"

        def clean_tree_down(_label):
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
        c = [
            run(f"ftserver --storage postgres -> ftclient -r -g --parallel {par}",
                [ft, "-q", "127.0.0.1", str(port), "-r", "-g", "tree", "--parallel", par], pg_srv, cwd=str(dest)),
            run(f"ftserver --root (local) -> ftclient -r -g --parallel {par}",
                [ft, "-q", "127.0.0.1", str(lport), "-r", "-g", "tree", "--parallel", par], local_srv, cwd=str(dest)),
        ]
        small_down = "8. PostgreSQL: 1000 x 4 KiB downloads"
        self.measure(small_down, c, files * 1e6, [tree], prepare=clean_tree_down, unit="files/s")
        shutil.rmtree(dest, ignore_errors=True)

        # Where the CPU went: ftserver's own, and the database's (postmaster and every backend).
        rows = ["| case | contender | ftserver CPU s | database CPU s | per GiB or per 1000 files: ftserver + "
                "database |", "|---|---|---:|---:|---:|"]
        for case in (up_case, down_case, small_up, small_down):
            for r in self.results[case][0]:
                db = statistics.median(db_cpu[r["label"]])
                # server_cpu_per_gib was scaled by GiB / size; undo it for the raw seconds.
                per = size if "GiB" in case else files * 1e6
                srv = r["server_cpu_per_gib"] * per / GiB
                unit_total = (srv + db) * (GiB / size if "GiB" in case else 1)
                rows.append(f"| {case.split(': ', 1)[1]} | {r['label']} | {srv:.2f} | {db:.2f} | {unit_total:.2f} |")
        rows.append("")
        rows.append("Medians per run. Database CPU: the postmaster and its backends (live ones' own time, "
                    "exited ones' through the postmaster's cutime), read before and after each run.")
        self.results["8. PostgreSQL: CPU by process"] = (rows, TABLE)
        peak = max(r["server_rss_mib"] for case in (up_case, down_case, small_up, small_down)
                   for r in self.results[case][0] if "postgres" in r["label"] and "psql" not in r["label"])
        self.notes.append(
            f"case 8: ftserver --storage peak RSS over every case-8 run: {peak:.1f} MiB; PostgreSQL "
            f"{pg.version} settings: " + ", ".join(f"{k}={v}" for k, v in PG_SETTINGS.items()) +
            f"; data directory in {pg.base} ({fs_type(pg.base)}); " + PG_WHY)

    # ---------- report ----------
    def report(self):
        lines = ["# Benchmarks", "",
                 f"Machine: {platform.node()}, {os.cpu_count()} cores, "
                 f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GiB:.0f} GiB, "
                 f"{platform.platform()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
                 f"Each row: median of {self.rounds} alternated rounds (min-max); ratio = median / the peer's median "
                 "in the same case of the same run. CPU is user+system seconds per GiB moved; RSS is the peak.", ""]
        for case, (rows, unit) in self.results.items():
            if unit == TABLE:
                # A table a case wrote itself (Markdown lines), not rates.
                lines += [f"## {case}", ""] + rows + [""]
                continue
            lines += [f"## {case}", "",
                      f"| contender | median {unit} | min-max | vs best peer | client CPU s/GiB | server CPU s/GiB | "
                      "client peak RSS MiB | server peak RSS MiB |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|"]
            ours = [r for r in rows if is_ours(r["label"]) and not r["label"].endswith(BASELINE)]
            peers = [r for r in rows if not is_ours(r["label"])]
            best_peer = max((r["median"] for r in peers if not r["label"].startswith(REFERENCE)), default=None)
            for r in rows:
                ratio = f"{r['median'] / best_peer:.2f}x" if best_peer else "-"
                per_gib = unit == "MB/s"
                lines.append(
                    f"| {r['label']} | {r['median']:.0f} | {r['min']:.0f}-{r['max']:.0f} | {ratio} | "
                    f"{r['client_cpu_per_gib']:.2f} | {r['server_cpu_per_gib']:.2f} | "
                    f"{r['client_rss_mib']:.1f} | {r['server_rss_mib']:.1f} |" if per_gib else
                    f"| {r['label']} | {r['median']:.0f} | {r['min']:.0f}-{r['max']:.0f} | {ratio} | - | - | "
                    f"{r['client_rss_mib']:.1f} | {r['server_rss_mib']:.1f} |")
            lines.append("")
            for o in ours:
                for p in peers:
                    lines.append(f"- {o['label']} / {p['label']}: **{o['median'] / p['median']:.2f}x**")
            for old in (r for r in rows if r["label"].endswith(BASELINE)):
                new = next(r for r in rows if r["label"] == old["label"][:-len(BASELINE)])
                lines.append(f"- {new['label']} / its baseline: **{new['median'] / old['median']:.2f}x**")
            lines.append("")
        self.notes.append("every run starts after a sync and a read of the case's source files, because this "
                          "VM's host pages out memory left untouched for about a minute (DAMON pageout)")
        self.notes.append("tftpd-hpa forks a process per transfer and its children are reaped without being "
                          "accounted to the daemon, so its server CPU reads 0; lock-step TFTP (curl) on 2 vCPUs "
                          "swings with where the scheduler puts the two sides (same CPU or not), so compare medians")
        if self.baseline:
            self.notes.append(f"rows marked{BASELINE} ran the same command with the binaries in {self.baseline} "
                              "(and a baseline ftserver of their own), next to their twin in the same alternation")
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        text = "\n".join(lines)
        Path(self.args.output).write_text(text)
        print(text)


# ---------- PostgreSQL (case 8) ----------

# The bytes per row of the COPY table: ft.chunks' (ftserver/src/storage/postgres/schema.rs CHUNK).
PG_CHUNK = 256 * 1024

# The server settings case 8 starts its cluster with (see PG_WHY).
PG_SETTINGS = {
    "fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "wal_level": "replica",
    "shared_buffers": "256MB", "max_wal_size": "4GB", "checkpoint_timeout": "15min",
}
PG_WHY = ("durability as shipped (fsync, synchronous_commit and full_page_writes on: a 226 after an upload "
          "means a durable commit), wal_level=replica as any server with a standby or base backups runs, "
          "shared_buffers 256 MiB for a small dedicated instance, max_wal_size 4 GB and checkpoint_timeout "
          "15 min so that a 1 GiB load is not cut by forced checkpoints (common bulk-load tuning)")


def descendants(root):
    """Every process below root (vsftpd's session processes start sessions of their own, so
    Server.pids, which follows the session, misses them)."""
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def find_pg_bin():
    """The directory with initdb and pg_ctl: $FT_PG_BIN, the newest /usr/lib/postgresql/N/bin, or PATH."""
    candidates = [os.environ.get("FT_PG_BIN", "")]
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                      if p.parent.name.isdigit() else 0, reverse=True)
    candidates += [str(p) for p in versions] + os.environ.get("PATH", "").split(os.pathsep)
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


def fs_type(path):
    """The file system type of path (e.g. tmpfs, ext2/ext3), as stat -f names it."""
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True).stdout.strip()


def write_pgcopy(src, dst, chunk):
    """Writes src as a binary COPY file of (content 1, seq, data) rows of chunk bytes: the
    bytes ftserver stores, in the form COPY reads fastest."""
    import struct
    rows = (src.stat().st_size + chunk - 1) // chunk
    expect = 19 + rows * 26 + src.stat().st_size + 2
    if dst.exists() and dst.stat().st_size == expect:
        return
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
        seq = 0
        while True:
            data = f.read(chunk)
            if not data:
                break
            out.write(struct.pack("!hiqiii", 3, 8, 1, 4, seq, len(data)))
            out.write(data)
            seq += 1
        out.write(struct.pack("!h", -1))


class PgCluster:
    """A throwaway PostgreSQL cluster, like ftserver's TestCluster: initdb as the postgres user
    (when root) into base/data, a Unix socket in base, a free port, no TCP listener."""

    def __init__(self, base, settings):
        self.bin = find_pg_bin()
        if not self.bin:
            raise RuntimeError("case 8 needs postgresql's initdb and pg_ctl (apt-get install postgresql)")
        self.base = base
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(base, self.user, self.user)
        self.data = base / "data"
        self.as_owner("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                      "--no-sync")
        self.port = free_port()
        opts = f"-k {base} -p {self.port} -c listen_addresses=''" + "".join(
            f" -c {k}={v}" for k, v in settings.items())
        self.as_owner("pg_ctl", "-D", str(self.data), "-l", str(base / "log"), "-w", "-o", opts, "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self.version = self.psql("SHOW server_version", db="postgres", capture=True).strip().split()[0]

    def as_owner(self, program, *args):
        argv = [str(self.bin / program), *args]
        if self.user:
            argv = ["setpriv", "--reuid", self.user, "--regid", self.user, "--init-groups", "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{program} failed: {(r.stderr or r.stdout).strip()[-300:]}")

    def conninfo(self, db):
        """The libpq connection string ftserver --storage takes."""
        return f"host={self.base} port={self.port} user=postgres dbname={db}"

    def psql_argv(self, db, *commands):
        argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.base), "-p", str(self.port),
                "-U", "postgres", "-d", db]
        for c in commands:
            argv += ["-c", c]
        return argv

    def psql(self, *commands, db="ft", capture=False):
        """Runs each command in its own transaction; their output when capture."""
        r = subprocess.run(self.psql_argv(db, *commands), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()[-300:]}")
        return r.stdout if capture else None

    def cpu(self):
        """CPU seconds of the postmaster and its backends: live ones' own user+system time,
        exited (or zombie) ones' through the postmaster's cutime or their own stat."""
        total = 0
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(d.name) == self.pid:
                total += sum(int(fields[i]) for i in (11, 12, 13, 14))
            elif int(fields[1]) == self.pid:
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def stop(self):
        try:
            self.as_owner("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


# The suffix of a row measured with the --baseline build.
BASELINE = " (baseline)"

# The unit of a self.results entry whose rows are ready Markdown lines.
TABLE = "table"

# A row shown for scale only (a ceiling no file transfer reaches), never the "best peer".
REFERENCE = "reference:"


def is_ours(label):
    """Rows with ftclient or ftserver in them; the rest are the peers they are compared with."""
    return "ftclient" in label or "ftserver" in label


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", default="target/release", help="directory with ftserver and ftclient")
    ap.add_argument("--baseline", metavar="DIR",
                    help="another build's ftserver and ftclient, measured beside --bin's in cases 1, 2, 4 and 6")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "ft-bench"), help="work directory")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the large file in MiB")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--cases", default="1,2,3,4,5,6", help="comma-separated case numbers (1-8; 7: FTPS, 8: PostgreSQL)")
    ap.add_argument("--output", default="BENCHMARKS.md")
    args = ap.parse_args()
    b = Bench(args)
    b.prepare()
    b.start_servers()
    try:
        for n in args.cases.split(","):
            getattr(b, f"case{n.strip()}")()
    finally:
        b.stop_servers()
    b.report()


if __name__ == "__main__":
    main()
