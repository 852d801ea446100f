//! The real linkem binary between two fresh namespaces: it forwards fast enough to stay out of
//! the way (iperf3, compared with a bare veth pair), and its impairments really happen (ping
//! loss and round trips, a rate-capped TCP stream, reordered UDP datagrams).
//!
//! Every test makes its own namespaces, named after the process id and a counter, so tests and
//! parallel runs never meet; guards remove them even when an assertion fails. Servers inside the
//! namespaces use fixed ports: nothing else can listen in a namespace the test just created.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use linkem::netns::{run_in_namespace, Namespace};
use linkem::{ADDR_A, ADDR_B};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Names for a new pair of namespaces, unique to this process and call.
fn unique_names(tag: &str) -> (String, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = format!("lk{tag}{}x{n}", std::process::id());
    (format!("{base}a"), format!("{base}b"))
}

/// Fails the test with one line when a tool it needs is missing.
fn require(tool: &str, version_flag: &str, package: &str) {
    let found = Command::new(tool).arg(version_flag).output().is_ok_and(|o| o.status.success());
    assert!(found, "{tool} not found: apt install {package}");
}

/// A running linkem; dropping it stops it (SIGTERM, so it removes its namespaces itself), ends
/// whatever the test left running inside the namespaces and removes them if linkem could not.
struct Emulator {
    child: Child,
    ns_a: String,
    ns_b: String,
}

impl Emulator {
    fn start(tag: &str, settings: &[&str]) -> Emulator {
        let (ns_a, ns_b) = unique_names(tag);
        let mut child = Command::new(env!("CARGO_BIN_EXE_linkem"))
            .args(["--ns-a", &ns_a, "--ns-b", &ns_b])
            .args(settings)
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start linkem");
        let stdout = child.stdout.take().expect("piped stdout");
        let emulator = Emulator { child, ns_a, ns_b };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("cannot read linkem's output");
        let expected = format!("ready {} {ADDR_A} {} {ADDR_B}\n", emulator.ns_a, emulator.ns_b);
        assert_eq!(line, expected, "linkem did not start (its error is above)");
        emulator
    }

    /// Runs a command inside namespace A or B and waits for it.
    fn run(&self, ns: &str, command: &[&str]) -> Output {
        let output =
            Command::new("ip").args(["netns", "exec", ns]).args(command).output().expect("cannot run ip netns exec");
        assert!(
            output.status.success(),
            "{command:?} in {ns} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        for ns in [&self.ns_a, &self.ns_b] {
            end_processes_in(ns);
            if std::path::Path::new("/run/netns").join(ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }
}

/// Kills what still runs inside namespace `ns` (only this test starts anything there).
fn end_processes_in(ns: &str) {
    let Ok(output) = Command::new("ip").args(["netns", "pids", ns]).output() else { return };
    for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// An iperf3 server for one test inside namespace `ns`, listening on `addr`; killed on drop.
struct Iperf3Server(Child);

impl Iperf3Server {
    fn start(ns: &str, addr: &str) -> Iperf3Server {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "iperf3", "--server", "--one-off", "--forceflush"])
            .args(["--bind", addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start iperf3");
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let server = Iperf3Server(child);
        let mut lines = BufReader::new(stdout).lines();
        let listening = lines.any(|line| line.is_ok_and(|l| l.contains("Server listening")));
        assert!(listening, "iperf3 --server in {ns} ended before it listened");
        server
    }
}

impl Drop for Iperf3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The number after `"key":` in the first place it appears after `section` in iperf3's JSON.
fn json_number(json: &str, section: &str, key: &str) -> f64 {
    let rest = &json[json.find(section).unwrap_or_else(|| panic!("no {section} in {json}"))..];
    let pattern = format!("\"{key}\":");
    let rest = rest[rest.find(&pattern).unwrap_or_else(|| panic!("no {key} in {json}")) + pattern.len()..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || ".eE+-".contains(c))).unwrap_or(rest.len());
    rest[..end].parse().unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// Runs iperf3 for `seconds` from namespace `client_ns` to a server at `addr` in `server_ns`
/// (TCP, one stream); returns (bytes received, bit/s at the receiver).
fn iperf3(
    run: impl Fn(&str, &[&str]) -> Output,
    server_ns: &str,
    client_ns: &str,
    addr: &str,
    seconds: u32,
) -> (f64, f64) {
    let _server = Iperf3Server::start(server_ns, addr);
    let time = seconds.to_string();
    let output = run(client_ns, &["iperf3", "--client", addr, "--time", &time, "--json"]);
    let json = String::from_utf8_lossy(&output.stdout);
    (json_number(&json, "\"sum_received\"", "bytes"), json_number(&json, "\"sum_received\"", "bits_per_second"))
}

/// Pings `addr` from namespace `ns`; returns (sent, received, minimum round trip in ms).
fn ping(ns: &str, addr: &str, count: u32, interval: &str) -> (u32, u32, f64) {
    let count = count.to_string();
    let output = Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-q", "-n", "-c", &count, "-i", interval, "-W", "2", addr])
        .output()
        .expect("cannot run ping");
    let text = String::from_utf8_lossy(&output.stdout);
    let summary =
        text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("no ping summary in {text}"));
    let numbers: Vec<u32> = summary.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    let min_rtt = text
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .and_then(|l| l.split('/').next())
        .and_then(|min| min.parse().ok())
        .unwrap_or(f64::NAN);
    (numbers[0], numbers[1], min_rtt)
}

#[test]
fn an_unimpaired_link_is_not_the_bottleneck() {
    require("iperf3", "--version", "iperf3");
    let linkem = {
        let emulator = Emulator::start("fast", &[]);
        let run = |ns: &str, command: &[&str]| emulator.run(ns, command);
        iperf3(run, &emulator.ns_a, &emulator.ns_b, ADDR_A, 3)
    };
    // The same transfer over a bare veth pair, the best two namespaces can do on this machine.
    let (veth_a, veth_b) = unique_names("veth");
    let (ns_a, ns_b) = (Namespace::create(&veth_a).unwrap(), Namespace::create(&veth_b).unwrap());
    ns_a.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v0", "netns", ns_b.name()]).unwrap();
    for (ns, addr) in [(&ns_a, "10.78.0.1/24"), (&ns_b, "10.78.0.2/24")] {
        ns.ip(&["addr", "add", addr, "dev", "v0"]).unwrap();
        ns.ip(&["link", "set", "v0", "up"]).unwrap();
    }
    let run = |ns: &str, command: &[&str]| {
        let output = Command::new("ip").args(["netns", "exec", ns]).args(command).output().unwrap();
        assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
        output
    };
    let veth = iperf3(run, ns_a.name(), ns_b.name(), "10.78.0.1", 3);
    for ns in [&ns_a, &ns_b] {
        end_processes_in(ns.name());
    }
    println!(
        "iperf3 over 3 s, one TCP stream: linkem {:.2} Gbit/s, veth direct {:.2} Gbit/s",
        linkem.1 / 1e9,
        veth.1 / 1e9
    );
    assert!(linkem.0 > 0.0, "iperf3 moved no data through linkem");
    assert!(veth.0 > 0.0, "iperf3 moved no data over the veth pair");
}

#[test]
fn loss_happens_in_its_direction() {
    require("ping", "-V", "iputils-ping");
    // Requests go from B to A untouched; 20% of the replies are lost on their way back.
    let emulator = Emulator::start("loss", &["--a-to-b-loss", "20%"]);
    let (sent, received, _) = ping(&emulator.ns_b, ADDR_A, 500, "0.002");
    let loss = 1.0 - f64::from(received) / f64::from(sent);
    println!("20% loss one way: {received} of {sent} pings came back ({:.1}% lost)", loss * 100.0);
    assert_eq!(sent, 500);
    assert!((0.12..=0.28).contains(&loss), "{:.1}% of pings lost, expected about 20%", loss * 100.0);
}

#[test]
fn delay_shows_in_the_round_trip() {
    require("ping", "-V", "iputils-ping");
    let emulator = Emulator::start("delay", &["--delay", "50ms"]);
    let (sent, received, min_rtt) = ping(&emulator.ns_b, ADDR_A, 5, "0.2");
    println!("50 ms each way: {received} of {sent} pings, minimum round trip {min_rtt} ms");
    assert_eq!(received, sent);
    assert!(min_rtt >= 100.0, "round trip {min_rtt} ms with 50 ms each way");
}

#[test]
fn the_rate_caps_a_tcp_stream() {
    require("iperf3", "--version", "iperf3");
    let emulator = Emulator::start("rate", &["--rate", "10mbit", "--delay", "5ms", "--queue", "64KiB"]);
    let run = |ns: &str, command: &[&str]| emulator.run(ns, command);
    let (bytes, rate) = iperf3(run, &emulator.ns_a, &emulator.ns_b, ADDR_A, 3);
    println!("10 Mbit/s link: iperf3 received {bytes} bytes, {:.2} Mbit/s", rate / 1e6);
    // TCP payload is 1448 of each 1514-byte frame, so the most it can get is 9.56 Mbit/s.
    assert!((5e6..=10.5e6).contains(&rate), "{:.2} Mbit/s through a 10 Mbit/s link", rate / 1e6);
}

#[test]
fn reordered_datagrams_overtake() {
    // A to B: frames picked for reordering skip the 20 ms delay and overtake the others.
    let emulator = Emulator::start("order", &["--a-to-b-delay", "20ms", "--a-to-b-reorder", "20%"]);
    let bind = |ns: &str, addr: &str| {
        let addr: SocketAddr = format!("{addr}:0").parse().unwrap();
        run_in_namespace(ns, || Ok(UdpSocket::bind(addr)?)).unwrap()
    };
    let (sender, receiver) = (bind(&emulator.ns_a, ADDR_A), bind(&emulator.ns_b, ADDR_B));
    receiver.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = receiver.local_addr().unwrap();
    const COUNT: u32 = 300;
    for n in 0..COUNT {
        sender.send_to(&n.to_be_bytes(), to).unwrap();
    }
    let mut order = Vec::new();
    let mut buf = [0u8; 4];
    while order.len() < COUNT as usize {
        let (len, _) = receiver.recv_from(&mut buf).expect("a datagram went missing on a link without loss");
        assert_eq!(len, 4);
        order.push(u32::from_be_bytes(buf));
    }
    // A datagram overtook if some earlier-numbered one had not arrived yet.
    let mut arrived = vec![false; COUNT as usize];
    let (mut next_missing, mut early) = (0, 0);
    for &n in &order {
        early += usize::from(n as usize != next_missing);
        arrived[n as usize] = true;
        while next_missing < arrived.len() && arrived[next_missing] {
            next_missing += 1;
        }
    }
    println!("20% reordering: {early} of {COUNT} datagrams overtook an earlier one");
    assert!((30..=90).contains(&early), "{early} of {COUNT} datagrams overtook: {order:?}");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..COUNT).collect::<Vec<_>>(), "each datagram arrives once");
}

#[test]
fn a_full_queue_drops_at_the_tail() {
    // A burst of 200 datagrams into a 1 Mbit/s link that queues 10 frames: each 1042-byte
    // frame takes 8.3 ms to serialise, so about 10 get through and the rest are dropped.
    let emulator = Emulator::start("queue", &["--rate", "1mbit", "--queue", "10p"]);
    let bind = |ns: &str, addr: &str| {
        let addr: SocketAddr = format!("{addr}:0").parse().unwrap();
        run_in_namespace(ns, || Ok(UdpSocket::bind(addr)?)).unwrap()
    };
    let (sender, receiver) = (bind(&emulator.ns_a, ADDR_A), bind(&emulator.ns_b, ADDR_B));
    let to = receiver.local_addr().unwrap();
    for _ in 0..200 {
        sender.send_to(&[7; 1000], to).unwrap();
    }
    // The queue empties within 100 ms; a second of silence means nothing more is coming.
    receiver.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 2000];
    let mut received = 0;
    while receiver.recv_from(&mut buf).is_ok() {
        received += 1;
    }
    println!("1 Mbit/s with a 10-frame queue: {received} of a 200-datagram burst arrived");
    assert!((8..=40).contains(&received), "{received} of 200 datagrams through a 10-frame queue");
}
