//! A LAN of hosts built from Linux network namespaces, for tests that need
//! a real network: one namespace per host with a veth link to a bridge that
//! lives in a namespace of its own, addresses 10.77.0.0/24 inside the
//! namespaces only and no route anywhere else. Partitions move hosts' links
//! to a second bridge; packet loss is an nftables rule inside each host.
//! Everything is deleted when the `Lan` is dropped, also when a test fails.
//! Needs root.
//!
//! [`Lan::routed`] builds two subnets instead (10.77.1.0/24 and
//! 10.77.2.0/24, each on its own bridge) joined by a router namespace that
//! forwards unicast and, like every router, no broadcast; the router can
//! be cut and healed.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::Command;

pub const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 255);

/// Fail with a clear message unless this process may build namespaces.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "this test builds network namespaces and needs root: run it with sudo (CI runs it as root)");
    assert!(Command::new("ip").arg("-V").output().is_ok(), "`ip` (iproute2) is missing: install it (.ci/run does)");
}

pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(out.status.success(), "`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// The tag of this process's namespaces for `tag`, which no other `Lan` of
/// this test run may use: the names are deleted before they are made (a
/// killed run leaves them behind), so two tests sharing a tag would tear
/// down each other's hosts.
fn claim_tag(tag: &str) -> String {
    static CLAIMED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    assert!(!claimed.iter().any(|t| t == tag), "two LANs of this test run use the tag {tag:?}: give each test its own");
    claimed.push(tag.to_owned());
    format!("{tag}{}", std::process::id() % 10_000)
}

fn run_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

pub struct Lan {
    pub hosts: Vec<Host>,
    /// ARP table limits raised for a big LAN, to restore when dropped.
    raised_neigh_limits: Vec<(&'static str, String)>,
    bridge_ns: String,
    /// The namespace an observer listens from (10.77.0.200; 10.77.1.200
    /// on a routed LAN).
    pub observer_ns: String,
    /// The router of a routed LAN.
    router_ns: Option<String>,
    created: Vec<String>,
}

pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
    /// Its subnet's broadcast address.
    pub broadcast: Ipv4Addr,
    /// The bridge-side end of its link.
    port: String,
}

impl Lan {
    /// `n` hosts on one bridge. `tag` (a few letters) keeps the names of
    /// concurrent tests apart.
    pub fn new(tag: &str, n: usize) -> Lan {
        let tag = claim_tag(tag);
        let bridge_ns = format!("pr-{tag}-br");
        let mut lan = Lan {
            hosts: Vec::new(),
            raised_neigh_limits: raise_neigh_limits(n),
            bridge_ns: bridge_ns.clone(),
            observer_ns: format!("pr-{tag}-obs"),
            router_ns: None,
            created: Vec::new(),
        };
        lan.add_bridges(["br0", "br1"]);
        for i in 0..n {
            let ip = Ipv4Addr::new(10, 77, 0, 1 + i as u8);
            let host = lan.add_host(&format!("pr-{tag}-h{}", i + 1), ip, i, "br0", None);
            lan.hosts.push(host);
        }
        let obs = lan.observer_ns.clone();
        lan.add_host(&obs, Ipv4Addr::new(10, 77, 0, 200), 99, "br0", None);
        lan
    }

    /// Two subnets of `per_side` hosts, 10.77.1.1.. and 10.77.2.1.., joined
    /// by a router (10.77.1.254 and 10.77.2.254) that forwards unicast
    /// only. Each host routes 10.77.0.0/16 through it and nothing else.
    /// The observer is 10.77.1.200, in the first subnet.
    pub fn routed(tag: &str, per_side: usize) -> Lan {
        let tag = claim_tag(tag);
        let bridge_ns = format!("pr-{tag}-br");
        let router_ns = format!("pr-{tag}-rt");
        let mut lan = Lan {
            hosts: Vec::new(),
            raised_neigh_limits: Vec::new(),
            bridge_ns: bridge_ns.clone(),
            observer_ns: format!("pr-{tag}-obs"),
            router_ns: Some(router_ns.clone()),
            created: Vec::new(),
        };
        lan.add_bridges(["br1", "br2"]);
        lan.add_namespace(&router_ns);
        run(&["ip", "netns", "exec", &router_ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        for side in [1u8, 2] {
            let leg = format!("r{side}");
            let port = format!("rp{side}");
            let bridge = format!("br{side}");
            run(&[
                "ip", "-n", &router_ns, "link", "add", &leg, "type", "veth", "peer", "name", &port, "netns", &bridge_ns,
            ]);
            run(&["ip", "-n", &router_ns, "addr", "add", &format!("10.77.{side}.254/24"), "dev", &leg]);
            run(&["ip", "-n", &router_ns, "link", "set", &leg, "up"]);
            run(&["ip", "-n", &bridge_ns, "link", "set", &port, "master", &bridge]);
            run(&["ip", "-n", &bridge_ns, "link", "set", &port, "up"]);
            for i in 0..per_side {
                let ip = Ipv4Addr::new(10, 77, side, 1 + i as u8);
                let index = usize::from(side) * 100 + i;
                let ns = format!("pr-{tag}-s{side}h{}", i + 1);
                let host = lan.add_host(&ns, ip, index, &bridge, Some(Ipv4Addr::new(10, 77, side, 254)));
                lan.hosts.push(host);
            }
        }
        let obs = lan.observer_ns.clone();
        lan.add_host(&obs, Ipv4Addr::new(10, 77, 1, 200), 999, "br1", Some(Ipv4Addr::new(10, 77, 1, 254)));
        lan
    }

    /// Make namespace `ns` (removing a stale one of a killed run first),
    /// to be deleted when the LAN is dropped.
    fn add_namespace(&mut self, ns: &str) {
        run_quiet(&["ip", "netns", "del", ns]);
        run(&["ip", "netns", "add", ns]);
        self.created.push(ns.to_owned());
    }

    /// The bridge namespace with these bridges, up.
    fn add_bridges(&mut self, bridges: [&str; 2]) {
        let bridge_ns = self.bridge_ns.clone();
        self.add_namespace(&bridge_ns);
        for bridge in bridges {
            run(&["ip", "-n", &bridge_ns, "link", "add", bridge, "type", "bridge"]);
            run(&["ip", "-n", &bridge_ns, "link", "set", bridge, "up"]);
        }
    }

    fn add_host(&mut self, ns: &str, ip: Ipv4Addr, index: usize, bridge: &str, gateway: Option<Ipv4Addr>) -> Host {
        let port = format!("p{index}");
        let [a, b, c, _] = ip.octets();
        let broadcast = Ipv4Addr::new(a, b, c, 255);
        self.add_namespace(ns);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        run(&["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &self.bridge_ns]);
        run(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "brd", &broadcast.to_string(), "dev", "eth0"]);
        run(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        if let Some(gateway) = gateway {
            run(&["ip", "-n", ns, "route", "add", "10.77.0.0/16", "via", &gateway.to_string()]);
        }
        run(&["ip", "-n", &self.bridge_ns, "link", "set", &port, "master", bridge]);
        run(&["ip", "-n", &self.bridge_ns, "link", "set", &port, "up"]);
        Host { ns: ns.to_owned(), ip, broadcast, port }
    }

    /// Cut a routed LAN's router (both subnets go on alone), or heal it.
    pub fn set_router(&self, up: bool) {
        let router = self.router_ns.as_ref().expect("a routed LAN");
        for leg in ["r1", "r2"] {
            run(&["ip", "-n", router, "link", "set", leg, if up { "up" } else { "down" }]);
        }
    }

    /// Cut the network in two: hosts with `true` stay with the observer,
    /// the others are cut off from them.
    pub fn partition(&self, side: &[bool]) {
        for (host, keep) in self.hosts.iter().zip(side) {
            let bridge = if *keep { "br0" } else { "br1" };
            run(&["ip", "-n", &self.bridge_ns, "link", "set", &host.port, "master", bridge]);
        }
    }

    pub fn heal(&self) {
        for host in &self.hosts {
            run(&["ip", "-n", &self.bridge_ns, "link", "set", &host.port, "master", "br0"]);
        }
    }

    /// Drop `percent`% of the UDP datagrams arriving at every host on `port`
    /// (0 removes the rule).
    pub fn udp_loss(&self, port: u16, percent: u32) {
        for host in &self.hosts {
            run_quiet(&["ip", "netns", "exec", &host.ns, "nft", "delete", "table", "inet", "chaos"]);
            if percent == 0 {
                continue;
            }
            let port = port.to_string();
            let percent = percent.to_string();
            let nft = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", &host.ns, "nft"];
                all.extend_from_slice(args);
                run(&all);
            };
            nft(&["add", "table", "inet", "chaos"]);
            nft(&["add", "chain", "inet", "chaos", "input", "{ type filter hook input priority 0; policy accept; }"]);
            nft(&[
                "add", "rule", "inet", "chaos", "input", "udp", "dport", &port, "numgen", "random", "mod", "100", "lt",
                &percent, "drop",
            ]);
        }
    }
}

impl Lan {
    /// Power host `i` off without a reset: every packet in or out of it is
    /// dropped, so connects to it time out instead of being refused.
    pub fn power_off(&self, i: usize) {
        let ns = &self.hosts[i].ns;
        let nft = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", ns, "nft"];
            all.extend_from_slice(args);
            run(&all);
        };
        nft(&["add", "table", "inet", "power"]);
        for hook in ["input", "output"] {
            let chain = format!("{{ type filter hook {hook} priority -10; policy drop; }}");
            nft(&["add", "chain", "inet", "power", hook, &chain]);
        }
    }

    pub fn power_on(&self, i: usize) {
        run_quiet(&["ip", "netns", "exec", &self.hosts[i].ns, "nft", "delete", "table", "inet", "power"]);
    }

    /// Give every host TCP socket buffers of `bytes` (fixed: no growth), so
    /// a message of a few times that fills them when nobody reads.
    /// Limit every host's link to `mbit` megabits per second each way, as
    /// a LAN of that speed (a token bucket on both ends of each link, with
    /// a burst of 16 KB, about what one timer tick at 100 Mbit/s needs;
    /// `netem` is not available everywhere, `tbf` is).
    pub fn limit_rate(&self, mbit: u32) {
        let rate = format!("{mbit}mbit");
        for host in &self.hosts {
            for (ns, dev) in [(host.ns.as_str(), "eth0"), (self.bridge_ns.as_str(), host.port.as_str())] {
                run(&[
                    "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst",
                    "16kb", "latency", "20ms",
                ]);
            }
        }
    }

    pub fn small_tcp_buffers(&self, bytes: usize) {
        let value = format!("{bytes} {bytes} {bytes}");
        for host in &self.hosts {
            for key in ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"] {
                run(&["ip", "netns", "exec", &host.ns, "sysctl", "-q", "-w", &format!("{key}={value}")]);
            }
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            run_quiet(&["ip", "netns", "del", ns]);
        }
        for (path, old) in &self.raised_neigh_limits {
            let _ = std::fs::write(path, old);
        }
    }
}

/// The kernel's ARP table is shared by every namespace, and its default
/// limit (1,024 entries) is less than a LAN of 40 hosts that all talk to
/// each other needs: past it, "neighbor table overflow" and hosts stop
/// reaching each other. Raise the limits for `n` hosts if they are lower;
/// returns the old values, restored when the LAN is dropped.
fn raise_neigh_limits(n: usize) -> Vec<(&'static str, String)> {
    let wanted = (n + 1) * (n + 1) * 2;
    let mut raised = Vec::new();
    for path in ["/proc/sys/net/ipv4/neigh/default/gc_thresh3", "/proc/sys/net/ipv4/neigh/default/gc_thresh2"] {
        let Ok(old) = std::fs::read_to_string(path) else { continue };
        if old.trim().parse::<usize>().is_ok_and(|v| v < wanted) && std::fs::write(path, wanted.to_string()).is_ok() {
            raised.push((path, old.trim().to_owned()));
        }
    }
    raised
}
