#!/usr/bin/env python3
"""Benchmarks ft against curl, lftp, aria2c, atftp, vsftpd and tftpd-hpa on an emulated wide-area
link (linkem, two network namespaces: servers in A at 10.77.0.1, clients in B). Called by
`scripts/bench.sh --wan`; needs root. Contenders alternate within each round; the tables give
medians and ratios from the same run. Writes the tables to a markdown file (printed too) and an
SVG plot of throughput over time (ftclient vs curl, one download on link a), drawn by hand.

Links (issue 18): a = 50 ms RTT, 100 Mbit/s, 0.1% loss; b = 200 ms RTT, 20 Mbit/s, 1% loss.
TFTP runs on link a's delay and rate with no loss and with 1% loss.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MiB = 1 << 20
KiB = 1 << 10
SERVER = "10.77.0.1"
FT_PORT, VS_PORT, FT_TFTP, HPA_TFTP = 2121, 2122, 6969, 69

LINKS = {
    "a": ["--delay", "25ms", "--rate", "100mbit", "--loss", "0.1%"],
    "b": ["--delay", "100ms", "--rate", "20mbit", "--loss", "1%"],
    "a-noloss": ["--delay", "25ms", "--rate", "100mbit"],
    "a-1%": ["--delay", "25ms", "--rate", "100mbit", "--loss", "1%"],
}
LINK_TEXT = {
    "a": "50 ms RTT, 100 Mbit/s, 0.1% loss each way",
    "b": "200 ms RTT, 20 Mbit/s, 1% loss each way",
    "a-noloss": "50 ms RTT, 100 Mbit/s, no loss",
    "a-1%": "50 ms RTT, 100 Mbit/s, 1% loss each way",
}


def log(msg):
    print(f"wan-bench: {msg}", file=sys.stderr, flush=True)


class Link:
    """One linkem between two fresh namespaces, with the servers started in A."""

    def __init__(self, name, linkem, work, bin_dir, vsftpd=True, tftpd=False, cc=None):
        self.name = name
        base = f"wb{os.getpid()}{name.replace('%', 'p').replace('-', '')}"
        self.ns_a, self.ns_b = base + "A", base + "B"
        self.procs = []
        self.proc = subprocess.Popen([str(linkem), "--ns-a", self.ns_a, "--ns-b", self.ns_b, "--seed", "18"]
                                     + LINKS[name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            raise SystemExit(f"wan-bench: linkem did not start for link {name}: {line!r}")
        self.cc = cc
        if cc:
            # The congestion control is per namespace and the sender's counts: set it on both sides.
            for ns in (self.ns_a, self.ns_b):
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.tcp_congestion_control={cc}"],
                               check=True)
        data = work / "data"
        self.serve([str(bin_dir / "ftserver"), "--root", str(data), "--bind", SERVER, "-q", "--writable",
                    "--overwrite", "--max-clients", "500", "--max-per-ip", "500", "--tftp", str(FT_TFTP),
                    str(FT_PORT)], FT_PORT)
        if vsftpd:
            conf = work / f"vsftpd-{os.getpid()}.conf"
            os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
            conf.write_text(
                f"listen=YES\nlisten_ipv6=NO\nlisten_address={SERVER}\nlisten_port={VS_PORT}\n"
                f"anonymous_enable=YES\nanon_root={data}\nno_anon_password=YES\nlocal_enable=NO\n"
                "write_enable=NO\npasv_enable=YES\nbackground=NO\nrun_as_launching_user=YES\n"
                "seccomp_sandbox=NO\nsecure_chroot_dir=/var/run/vsftpd/empty\nxferlog_enable=NO\n"
                "anon_world_readable_only=NO\nmax_clients=500\nmax_per_ip=500\n")
            self.serve(["vsftpd", str(conf)], VS_PORT)
        if tftpd:
            self.serve(["in.tftpd", "-L", "-s", str(data), "-a", f"{SERVER}:{HPA_TFTP}"], HPA_TFTP, udp=True)

    def serve(self, argv, port, udp=False):
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns_a] + argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        deadline = time.time() + 30
        flag = "-Hlun" if udp else "-Hltn"
        while True:
            out = subprocess.run(["ip", "netns", "exec", self.ns_a, "ss", flag, f"sport = :{port}"],
                                 capture_output=True, text=True).stdout
            if out.strip():
                return
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"wan-bench: {argv[0]} did not listen on port {port} in link {self.name}")
            time.sleep(0.05)  # setup, not a measurement

    def run(self, argv, cwd, timeout, trace=None):
        """Runs argv in namespace B; returns seconds, or None when it failed or timed out."""
        sampler = Sampler(trace) if trace else None
        start = time.monotonic()
        try:
            result = subprocess.run(["ip", "netns", "exec", self.ns_b] + argv, cwd=cwd, timeout=timeout,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.monotonic() - start
            ok = result.returncode == 0
            if not ok:
                log(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode(errors='replace')[-300:]}")
        except subprocess.TimeoutExpired:
            log(f"{' '.join(argv)} did not finish within {timeout} s")
            ok, elapsed = False, None
        if sampler:
            sampler.stop()
        return (elapsed if ok else None), (sampler.samples if sampler else None)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.proc.terminate()
        self.proc.wait()


class Sampler:
    """Samples the bytes on disk (allocated blocks: segmented downloads write sparse files) of
    the files in a directory every 0.1 s while a download runs."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.samples = []
        self.done = threading.Event()
        self.start = time.monotonic()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.done.is_set():
            total = 0
            for entry in os.scandir(self.dir):
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                except FileNotFoundError:
                    pass
            self.samples.append((time.monotonic() - self.start, total))
            self.done.wait(0.1)

    def stop(self):
        self.done.set()
        self.thread.join()


def fresh(directory):
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def fmt_rate(size, secs):
    return f"{size / secs / 1e6:.2f}" if secs else "failed"


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.dir)
        self.data = self.work / "data"
        self.out = self.work / "out"
        self.bin = Path(args.bin).resolve()
        self.linkem = self.bin / "linkem"
        self.ftclient = str(self.bin / "ftclient")
        self.tables = []
        self.traces = {}

    def prepare(self):
        a = self.args
        self.data.mkdir(parents=True, exist_ok=True)
        for name, size in [("big.bin", a.big_mib * MiB), ("bigb.bin", a.big_b_mib * MiB),
                           ("mid.bin", a.tftp_mib * MiB), ("small.bin", a.lockstep_kib * KiB),
                           ("sweepb.bin", a.sweep_b_kib * KiB), ("up.bin", a.upload_mib * MiB)]:
            path = self.data / name
            if not path.exists() or path.stat().st_size != size:
                log(f"making {name} ({size} bytes)")
                with open(path, "wb") as f:
                    left = size
                    while left:
                        n = min(left, MiB)
                        f.write(os.urandom(n))
                        left -= n
        tree = self.data / "tree"
        if not tree.exists() or sum(1 for _ in tree.rglob("*.bin")) != a.tree_files:
            shutil.rmtree(tree, ignore_errors=True)
            for i in range(a.tree_files):
                d = tree / f"d{i // 100:02d}"
                d.mkdir(parents=True, exist_ok=True)
                (d / f"f{i:04d}.bin").write_bytes(os.urandom(16 * KiB))

    def measure(self, link, title, size, contenders, reference, timeout, trace_labels=()):
        """contenders: (label, argv, expected output name or None). Alternates them for the rounds."""
        times = {c[0]: [] for c in contenders}
        sizes = {c[0]: (c[3] if len(c) > 3 else size) for c in contenders}
        for r in range(self.args.rounds):
            for label, argv, expect, *own in contenders:
                want = own[0] if own else size
                out = fresh(self.out / "run")
                trace = out if (r == 0 and label in trace_labels) else None
                secs, samples = link.run(argv() if callable(argv) else argv, out, timeout, trace)
                if secs is not None and expect is not None:
                    got = out / expect
                    if not got.exists() or (got.is_file() and got.stat().st_size != want):
                        log(f"{label}: wrong output {got}")
                        secs = None
                times[label].append(secs)
                if samples is not None:
                    self.traces[label] = samples
                shown = f"{secs:.2f} s" if secs else "failed"
                log(f"[{link.name}] {title} round {r + 1}: {label}: {shown}")
        self.table(link, title, size, sizes, times, reference)

    def table(self, link, title, size, sizes, times, reference):
        rows = []
        med = {}
        for label, ts in times.items():
            ok = [t for t in ts if t is not None]
            med[label] = statistics.median(ok) if ok and len(ok) == len(ts) else None
        ref = med.get(reference) and sizes[reference] / med[reference]
        for label, ts in times.items():
            m = med[label]
            ratio = f"{sizes[label] / m / ref:.2f}x" if (m and ref) else "-"
            runs = ", ".join(f"{t:.1f}" if t else "fail" for t in ts)
            mib = f"{sizes[label] / MiB:g}"
            rows.append(f"| {label} | {mib} | {m:.2f} | {fmt_rate(sizes[label], m)} | {ratio} | {runs} |" if m else
                        f"| {label} | {mib} | failed | - | - | {runs} |")
        cc = f" TCP congestion control {link.cc}." if link.cc else ""
        head = (f"### {title}\n\nLink {link.name}: {LINK_TEXT[link.name]}.{cc} {self.args.rounds} round(s),"
                f" medians; ratio = rate against {reference}.\n\n"
                "| contender | MiB | median s | MB/s | ratio | runs (s) |\n|---|---|---|---|---|---|\n")
        self.tables.append(head + "\n".join(rows) + "\n")
        print(self.tables[-1], flush=True)

    # ---------- cases ----------
    def downloads(self, link, name, size, servers):
        c = []
        for server, port in servers:
            url = f"ftp://{SERVER}:{port}/{name}"
            ft = [self.ftclient, "-q", SERVER, str(port), "-g", name]
            c += [
                (f"ftclient default ({server})", ft, name),
                (f"ftclient --segments 8 ({server})", ft + ["--segments", "8"], name),
                (f"curl ({server})", ["curl", "-sS", "-o", name, url], name),
                (f"lftp pget -n 8 ({server})", ["lftp", "-c", f"set cmd:fail-exit yes; pget -n 8 {url}"], name),
                (f"aria2c -x 8 -s 8 -k 1M ({server})", ["aria2c", "-q", "-x", "8", "-s", "8", "-k", "1M",
                                                        "--file-allocation=none", "-d", ".", "-o", name, url], name),
            ]
        traced = ("ftclient default (ftserver)", "curl (ftserver)") if link.name == "a" else ()
        self.measure(link, f"Download {size // MiB} MiB", size, c, "curl (ftserver)", self.args.timeout, traced)

    def trees(self, link, servers):
        """Downloads of the 500-file tree; against vsftpd ftclient has no block mode (stream mode)."""
        n = self.args.tree_files
        c = []
        for server, port in servers:
            c += [(f"ftclient -r -g --parallel 8 ({server})",
                   [self.ftclient, "-q", SERVER, str(port), "-r", "-g", "tree", "--parallel", "8"], None),
                  (f"lftp mirror --parallel=8 ({server})",
                   ["lftp", "-c", f"set cmd:fail-exit yes; open ftp://{SERVER}:{port}; mirror --parallel=8 tree tree"],
                   None)]
        self.measure(link, f"Tree of {n} x 16 KiB", n * 16 * KiB, c, "lftp mirror --parallel=8 (ftserver)",
                     self.args.timeout)

    def tree_uploads(self, link):
        """Uploads of the same tree to ftserver (a new remote directory per run)."""
        n = self.args.tree_files
        src = str(self.data / "tree")
        # Names never used before on this server (its data directory outlives the run).
        stamp = (f"{time.time_ns()}" for _ in iter(int, 1))
        c = [("ftclient -r -p --parallel 8 (ftserver)",
              lambda: [self.ftclient, "-q", SERVER, str(FT_PORT), "-r", "-p", src, "--to", f"up-ft-{next(stamp)}",
                       "--parallel", "8"], None),
             ("lftp mirror -R --parallel=8 (ftserver)",
              lambda: ["lftp", "-c", f"set cmd:fail-exit yes; set ftp:use-allo yes; open ftp://{SERVER}:{FT_PORT}; "
                       f"mirror -R --parallel=8 {src} up-lftp-{next(stamp)}"], None)]
        self.measure(link, f"Tree upload of {n} x 16 KiB", n * 16 * KiB, c, "lftp mirror -R --parallel=8 (ftserver)",
                     self.args.timeout)

    def tftp(self, link):
        big, small = self.args.tftp_mib * MiB, self.args.lockstep_kib * KiB
        ws = ["ftclient --tftp windowsize 16 (ftserver)",
              [self.ftclient, "-q", "--tftp", SERVER, str(FT_TFTP), "-g", "mid.bin", "--windowsize", "16"], "mid.bin"]
        at = ["atftp windowsize 16 (ftserver)",
              ["atftp", "--option", "blksize 1468", "--option", "windowsize 16", "-g", "-r", "mid.bin", "-l",
               "mid.bin", SERVER, str(FT_TFTP)], "mid.bin"]
        lock = ("curl lock-step (tftpd-hpa)", ["curl", "-sS", "-o", "small.bin", f"tftp://{SERVER}:{HPA_TFTP}/small.bin"],
                "small.bin", small)
        self.measure(link, "TFTP, windowed against lock-step", big, [tuple(ws), tuple(at), lock], lock[0],
                     self.args.timeout)

    def sweep(self, link, name, size):
        c = [(f"ftclient --tftp --windowsize {w}",
              [self.ftclient, "-q", "--tftp", SERVER, str(FT_TFTP), "-g", name, "--windowsize", str(w)], name)
             for w in self.args.windows]
        self.measure(link, f"TFTP windowsize sweep, {size / MiB:g} MiB", size, c, c[0][0], self.args.timeout)

    def upload(self, link):
        size = self.args.upload_mib * MiB
        src = str(self.data / "up.bin")
        c = [("ftclient -p (ftserver)", [self.ftclient, "-q", SERVER, str(FT_PORT), "-p", src, "--to", "upload-ft.bin",
                                         "--overwrite"], None),
             ("curl -T (ftserver)", ["curl", "-sS", "-T", src, f"ftp://{SERVER}:{FT_PORT}/upload-curl.bin"], None)]
        # The server runs with --overwrite: each run replaces the previous run's file.
        self.measure(link, f"Upload {size // MiB} MiB", size, c, "curl -T (ftserver)", self.args.timeout)

    # ---------- the plot ----------
    def svg(self, path):
        series = [(label, self.traces[label]) for label in ("ftclient default (ftserver)", "curl (ftserver)")
                  if label in self.traces]
        if not series:
            return
        colours = ["#1f77b4", "#d62728"]
        rates = []
        for label, samples in series:
            pts = []
            for i in range(len(samples)):
                # Throughput over the last second.
                j = i
                while j > 0 and samples[i][0] - samples[j][0] < 1.0:
                    j -= 1
                dt = samples[i][0] - samples[j][0]
                pts.append((samples[i][0], (samples[i][1] - samples[j][1]) * 8 / dt / 1e6 if dt > 0 else 0.0))
            rates.append((label, pts))
        tmax = max(p[-1][0] for _, p in rates if p) or 1
        ymax = max(max((r for _, r in p), default=1) for _, p in rates) * 1.1 or 1
        w, h, ml, mb, mt, mr = 800, 400, 60, 40, 30, 20
        x = lambda t: ml + (w - ml - mr) * t / tmax  # noqa: E731
        y = lambda r: h - mb - (h - mb - mt) * r / ymax  # noqa: E731
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
                 f'font-size="12">', f'<rect width="{w}" height="{h}" fill="white"/>',
                 f'<text x="{w / 2}" y="18" text-anchor="middle">{self.args.big_mib} MiB download on link a '
                 f'({LINK_TEXT["a"]}): throughput over time (1 s window)</text>',
                 f'<line x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="black"/>',
                 f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}" stroke="black"/>']
        for k in range(6):
            t, r = tmax * k / 5, ymax * k / 5
            parts.append(f'<text x="{x(t):.1f}" y="{h - mb + 16}" text-anchor="middle">{t:.0f} s</text>')
            parts.append(f'<text x="{ml - 6}" y="{y(r) + 4:.1f}" text-anchor="end">{r:.0f}</text>')
            parts.append(f'<line x1="{ml}" y1="{y(r):.1f}" x2="{w - mr}" y2="{y(r):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">Mbit/s</text>')
        for (label, pts), colour, k in zip(rates, colours, range(2)):
            line = " ".join(f"{x(t):.1f},{y(r):.1f}" for t, r in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>')
            parts.append(f'<text x="{w - mr - 250}" y="{mt + 20 + 16 * k}" fill="{colour}">{label}</text>')
        parts.append("</svg>\n")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("\n".join(parts))
        log(f"wrote {path}")

    def run(self):
        self.prepare()
        cases = set(self.args.cases.split(","))
        servers = [("ftserver", FT_PORT), ("vsftpd", VS_PORT)][: self.args.a_servers]
        if cases & {"dl", "tree", "treeup", "upload", "sweep"}:
            link = Link("a", self.linkem, self.work, self.bin, cc=self.args.cc)
            try:
                if "dl" in cases:
                    self.downloads(link, "big.bin", self.args.big_mib * MiB, servers)
                if "tree" in cases:
                    self.trees(link, servers)
                if "treeup" in cases:
                    self.tree_uploads(link)
                if "upload" in cases:
                    self.upload(link)
                if "sweep" in cases:
                    self.sweep(link, "mid.bin", self.args.tftp_mib * MiB)
            finally:
                link.close()
        if cases & {"dlb", "sweep"}:
            link = Link("b", self.linkem, self.work, self.bin, cc=self.args.cc)
            try:
                if "dlb" in cases:
                    self.downloads(link, "bigb.bin", self.args.big_b_mib * MiB, servers[: self.args.b_servers])
                if "sweep" in cases:
                    self.sweep(link, "sweepb.bin", self.args.sweep_b_kib * KiB)
            finally:
                link.close()
        if "tftp" in cases:
            for name in ("a-noloss", "a-1%"):
                link = Link(name, self.linkem, self.work, self.bin, vsftpd=False, tftpd=True, cc=self.args.cc)
                try:
                    self.tftp(link)
                finally:
                    link.close()
        text = "# ft on an emulated wide-area link (linkem)\n\n" + "\n".join(self.tables)
        Path(self.args.markdown).write_text(text)
        print(f"wan-bench: tables in {self.args.markdown}", flush=True)
        if "dl" in cases:
            self.svg(self.args.svg)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, help="directory with ftserver, ftclient and linkem")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cases", default="dl,dlb,tree,treeup,tftp,upload,sweep")
    p.add_argument("--big-mib", type=int, default=256, help="download size on link a")
    p.add_argument("--big-b-mib", type=int, default=64, help="download size on link b")
    p.add_argument("--a-servers", type=int, default=2, help="1: link a downloads from ftserver only")
    p.add_argument("--b-servers", type=int, default=2, help="1: link b downloads from ftserver only")
    p.add_argument("--tree-files", type=int, default=500)
    p.add_argument("--tftp-mib", type=int, default=16, help="windowed TFTP size (and link a sweep)")
    p.add_argument("--lockstep-kib", type=int, default=16384, help="lock-step TFTP size")
    p.add_argument("--sweep-b-kib", type=int, default=2048, help="windowsize sweep size on link b")
    p.add_argument("--windows", type=lambda s: [int(w) for w in s.split(",")], default=[4, 8, 16, 32, 64])
    p.add_argument("--upload-mib", type=int, default=64)
    p.add_argument("--timeout", type=int, default=900, help="seconds before one run counts as failed")
    p.add_argument("--cc", help="TCP congestion control in both namespaces, one of net.ipv4.tcp_allowed_congestion_control (e.g. reno; default: the system's, here bbr)")
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "ft-wan-bench"))
    p.add_argument("--markdown", default="wan-bench.md")
    p.add_argument("--svg", default="docs/wan-download.svg")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("wan-bench: network namespaces need root")
    for tool in ("ip", "curl", "lftp", "aria2c", "atftp", "in.tftpd", "vsftpd"):
        if not shutil.which(tool):
            raise SystemExit(f"wan-bench: {tool} not found (scripts/bench.sh --wan installs it)")
    Bench(args).run()


if __name__ == "__main__":
    main()
