//! IPIP on a real kernel: this machine's kernel has no ipip, so the data path is proven in a
//! VM booted from Debian's stock kernel (see `vm`), with weft's own binary inside.
//!
//! Inside the VM, two "hosts" are network namespaces joined by a veth pair (the underlay,
//! 10.0.0.1 and 10.0.0.2), each with a "container" namespace behind it (10.244.1.2 behind
//! host 1, 10.244.2.2 behind host 2, plain veth pairs with the host as gateway). Each host
//! runs weft's bgp backend with encapsulation `ipip` through `weft debug bgp-host`, which
//! runs the same backend code as `weft daemon`'s cluster agent for one host from a JSON file:
//! a whole daemon with an etcd is too heavy for a software-emulated VM. The backends peer
//! over BGP, make their IPIP tunnels and route each other's subnet through them. The
//! test's `/init` then checks that the containers ping each other, that the packets went
//! through weft's tunnel (its counters on both hosts), that `weft bgp status` shows the
//! session, and that stopping weft removes the tunnel and its routes; it prints one line the
//! test looks for and powers the VM off.

mod vm;

use std::path::Path;
use std::time::Duration;

/// The modules the check loads (with their dependencies).
const MODULES: [&str; 2] = ["ipip", "veth"];
/// What `/init` prints when every check passed.
const PASSED: &str = "WEFT-IPIP-VM: PASSED";
/// Longest the VM may run (software emulation: a boot takes seconds, the checks some more).
const VM_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn containers_on_two_hosts_talk_over_weft_ipip_tunnels_in_a_stock_kernel_vm() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP ipip vm: needs root (builds under target/, runs qemu)");
        return;
    }
    for program in [
        "qemu-system-x86_64",
        "busybox",
        "ldd",
        "dpkg-deb",
        "apt-get",
    ] {
        if which(program).is_none() {
            eprintln!("SKIP ipip vm: {program} is not installed (run scripts/install-deps)");
            return;
        }
    }
    let busybox = which("busybox").unwrap();
    if !vm::shared_libraries(&busybox)
        .unwrap_or_default()
        .is_empty()
    {
        eprintln!(
            "SKIP ipip vm: {} is not static (install busybox-static)",
            busybox.display()
        );
        return;
    }
    let cache = vm::target_dir().join("ipip-vm");
    let kernel = match vm::kernel(&cache.join("kernel")) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("SKIP ipip vm: cannot get Debian's stock kernel: {e}");
            return;
        }
    };
    let weft = vm::static_weft(&vm::target_dir()).expect("static weft");
    let initrd = cache.join("initrd.cpio");
    let image = initramfs(&kernel, &busybox, &weft).expect("initramfs");
    std::fs::write(&initrd, image).expect("write the initramfs");

    let console = match vm::boot(&kernel, &initrd, VM_TIMEOUT) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let report: Vec<&str> = console.lines().filter(|l| l.starts_with("VM: ")).collect();
    assert!(
        console.contains(PASSED),
        "the IPIP check in the VM failed; its console:\n{console}"
    );
    // The checks /init ran, each reported on its own line.
    for step in [
        "ok: kernel has ipip",
        "ok: host 1 routes 10.244.2.0/24 over weftbgp.tunl",
        "ok: host 2 routes 10.244.1.0/24 over weftbgp.tunl",
        "ok: container 1 pings container 2",
        "ok: the packets went through weft's tunnels",
        "ok: weft bgp status shows the session",
        "ok: teardown removed the tunnel and its routes",
    ] {
        assert!(
            report.iter().any(|l| l.contains(step)),
            "{step:?} missing:\n{}",
            report.join("\n")
        );
    }
    // Shown with --nocapture: the tunnel, the routes and `weft bgp status|routes` inside.
    eprintln!("{console}");
}

/// The initramfs: busybox, the real `ip`, weft, the modules, the hosts' files and `/init`.
fn initramfs(kernel: &vm::Kernel, busybox: &Path, weft: &Path) -> Result<Vec<u8>, String> {
    let mut cpio = vm::Cpio::default();
    for dir in ["/proc", "/sys", "/dev", "/tmp", "/run", "/bb", "/etc/weft"] {
        cpio.dir(dir);
    }
    cpio.char_device("/dev/console", 5, 1);
    cpio.char_device("/dev/null", 1, 3);
    cpio.copy("/bin/busybox", busybox)?;
    cpio.copy("/bin/weft", weft)?;
    let ip = which("ip").ok_or("iproute2's ip is not installed")?;
    cpio.copy("/sbin/ip", &ip)?;
    for lib in vm::shared_libraries(&ip)? {
        cpio.copy(lib.to_str().ok_or("path")?, &lib)?;
    }
    let modules = vm::modules_in_load_order(kernel, &MODULES)?;
    let mut names = Vec::new();
    for m in &modules {
        let inside = format!("/lib/modules/{}", m.display());
        cpio.copy(&inside, &kernel.modules.join(m))?;
        names.push(inside);
    }
    for host in [1, 2] {
        cpio.file(
            &format!("/etc/weft/h{host}.json"),
            0o644,
            host_file(host).as_bytes(),
        );
    }
    cpio.file("/init", 0o755, init_script(&names).as_bytes());
    Ok(cpio.finish())
}

/// Host `n`'s `weft debug bgp-host` file: its subnet, the other host as its peer,
/// encapsulation ipip.
fn host_file(n: u8) -> String {
    let other = 3 - n;
    serde_json::json!({
        "cluster": "vm",
        "iface": "eth0",
        "subnets": [format!("10.244.{n}.0/24")],
        "cluster_networks": ["10.244.0.0/16"],
        "bgp": {
            "encapsulation": "ipip",
            "connect_retry": 1,
            "startup_grace": 1,
            "hold_time": 9
        },
        "peers": [{
            "name": format!("h{other}"),
            "subnets": [format!("10.244.{other}.0/24")],
            "public_ip": format!("10.0.0.{other}"),
            "data": {}
        }]
    })
    .to_string()
}

/// The VM's `/init` (busybox sh): load the modules, build the hosts and containers, run
/// weft, check, report, power off. Every check prints `VM: ok: …` or `VM: FAIL: …`.
fn init_script(modules: &[String]) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t tmpfs tmpfs /run
/bin/busybox mount -t tmpfs tmpfs /tmp
/bin/busybox --install -s /bb
export PATH=/sbin:/bb:/bin
# Busybox's shell has an ip of its own: the real one by its full path.
IP=/sbin/ip
say() {{ echo "VM: $*"; }}
dump() {{
  for h in 1 2; do
    echo "---- host $h"; $IP -n h$h -d link; $IP -n h$h route; cat /tmp/h$h.log
  done
}}
fail() {{ say "FAIL: $*"; dump; poweroff -f; }}
# Polls (every 0.1 s, at most 40 s) until the command succeeds.
until_ok() {{
  what="$1"; shift
  n=0
  until "$@" >/dev/null 2>&1; do
    n=$((n + 1)); [ $n -gt 400 ] && fail "$what"
    sleep 0.1
  done
  say "ok: $what"
}}
# Counter of a device inside a namespace (sysfs shows the namespace that mounts it).
counter() {{ nsenter --net=/run/netns/$1 unshare -m sh -c "mount -t sysfs sysfs /sys && cat /sys/class/net/$2/statistics/$3"; }}
routes_over_tunnel() {{ $IP -n $1 route show $2 | grep -q 'dev weftbgp.tunl'; }}
pings() {{ nsenter --net=/run/netns/c1 ping -c 3 -W 2 10.244.2.2; }}
status_established() {{ /bin/weft bgp status --control-socket /run/h1.ctl | grep -q 'Established'; }}
stopped() {{ ! kill -0 $1 2>/dev/null; }}

say "kernel $(uname -r)"
for m in {modules}; do insmod $m || fail "insmod $m"; done
$IP link add probe type ipip remote 192.0.2.1 && $IP link del probe && say "ok: kernel has ipip" || fail "no ipip"

for n in h1 h2 c1 c2; do $IP netns add $n || fail "netns $n"; done
$IP link add eth0 netns h1 type veth peer name eth0 netns h2 || fail "underlay"
for h in 1 2; do
  $IP -n h$h link set lo up
  $IP -n h$h addr add 10.0.0.$h/24 dev eth0
  $IP -n h$h link set eth0 up
  $IP link add cont netns h$h type veth peer name eth0 netns c$h || fail "container $h"
  $IP -n h$h addr add 10.244.$h.1/24 dev cont
  $IP -n h$h link set cont up
  $IP -n c$h link set lo up
  $IP -n c$h link set eth0 mtu 1480
  $IP -n c$h addr add 10.244.$h.2/24 dev eth0
  $IP -n c$h link set eth0 up
  $IP -n c$h route add default via 10.244.$h.1
  nsenter --net=/run/netns/h$h sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  nsenter --net=/run/netns/h$h /bin/weft --log-level info debug bgp-host /etc/weft/h$h.json \
    --control-socket /run/h$h.ctl >/tmp/h$h.log 2>&1 &
  eval "pid$h=$!"
done

until_ok "host 1 routes 10.244.2.0/24 over weftbgp.tunl" routes_over_tunnel h1 10.244.2.0/24
until_ok "host 2 routes 10.244.1.0/24 over weftbgp.tunl" routes_over_tunnel h2 10.244.1.0/24
$IP -n h1 -d link show weftbgp.tunl
$IP -n h1 route
tx=$(counter h1 weftbgp.tunl tx_packets)
rx=$(counter h2 weftbgp.tunl rx_packets)
until_ok "container 1 pings container 2" pings
tx2=$(counter h1 weftbgp.tunl tx_packets)
rx2=$(counter h2 weftbgp.tunl rx_packets)
say "tunnel packets: host 1 sent $tx -> $tx2, host 2 received $rx -> $rx2"
[ $((tx2 - tx)) -ge 3 ] && [ $((rx2 - rx)) -ge 3 ] && say "ok: the packets went through weft's tunnels" \
  || fail "the pings did not go through the tunnels"
until_ok "weft bgp status shows the session" status_established
/bin/weft bgp status --control-socket /run/h1.ctl
/bin/weft bgp routes --control-socket /run/h1.ctl

kill -TERM $pid1 $pid2
until_ok "weft stopped on host 1" stopped $pid1
until_ok "weft stopped on host 2" stopped $pid2
if $IP -n h1 link show weftbgp.tunl >/dev/null 2>&1 || [ -n "$($IP -n h1 route show proto 87)" ]; then
  fail "teardown left the tunnel or routes"
fi
say "ok: teardown removed the tunnel and its routes"
echo "{PASSED}"
poweroff -f
"#,
        modules = modules.join(" "),
        PASSED = PASSED
    )
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
