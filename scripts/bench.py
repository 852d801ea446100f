#!/usr/bin/env python3
"""Benchmarks ft against the tools people would use instead, in one run, on loopback.

Run it through scripts/bench.sh (which installs the peers and builds release binaries). Each
case runs its commands in alternation (ours, a peer, ours, ...) for several rounds, and the
table reports medians with min/max, plus ratios against the peers measured in the same run.
Nothing here is a test: numbers are printed and written to a Markdown file, never asserted.

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
        port = free_port()
        srv = Server(name, [str(bin_dir / "ftserver"), "--root", str(self.data), "-q", "--max-clients", "500",
                            "--max-per-ip", "500", str(port)])
        srv.wait_tcp(port)
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
            conf = self.work / "vsftpd.conf"
            os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
            conf.write_text("\n".join([
                "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1", f"listen_port={port}",
                "anonymous_enable=YES", "local_enable=NO", f"anon_root={self.data}", "no_anon_password=YES",
                "write_enable=NO", "background=NO", "seccomp_sandbox=NO", "run_as_launching_user=YES",
                "pasv_enable=YES", "pasv_min_port=30000", "pasv_max_port=30999", "max_clients=500",
                "max_per_ip=500", "use_sendfile=YES", "xferlog_enable=NO", "dirmessage_enable=NO",
                "secure_chroot_dir=/var/run/vsftpd/empty", "anon_world_readable_only=NO",
            ]) + "\n")
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

    # ---------- report ----------
    def report(self):
        lines = ["# Benchmarks", "",
                 f"Machine: {platform.node()}, {os.cpu_count()} cores, "
                 f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GiB:.0f} GiB, "
                 f"{platform.platform()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
                 f"Each row: median of {self.rounds} alternated rounds (min-max); ratio = median / the peer's median "
                 "in the same case of the same run. CPU is user+system seconds per GiB moved; RSS is the peak.", ""]
        for case, (rows, unit) in self.results.items():
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


# The suffix of a row measured with the --baseline build.
BASELINE = " (baseline)"

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
    ap.add_argument("--cases", default="1,2,3,4,5,6", help="comma-separated case numbers")
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
