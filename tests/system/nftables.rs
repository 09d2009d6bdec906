//! The nftables reader's reuse by generation (`sources::nftables::Reuse`, what the daemon's resyncs and `wait`'s
//! polls use): with no nftables transaction since the last read the kernel is not dumped again, and any change
//! (a native `nft` chain, an iptables-nft chain, a process-owned table going away with its owner) is read.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use routewarden::model::nftables::NftablesState;
use routewarden::sources::nftables::Reuse;
use routewarden::sys::nfnetlink;
use routewarden_system_tests::{in_netns, World};

/// One `Reuse::fetch` inside the world's namespace: the state, the generation now, and the reuse (handed back).
fn fetch(w: &World, mut reuse: Reuse) -> (NftablesState, u32, Reuse) {
    in_netns(&w.name, move || {
        let state = reuse.fetch().unwrap();
        let generation = nfnetlink::generation().unwrap();
        (state, generation, reuse)
    })
}

fn chains<'a>(s: &'a NftablesState, family: &str, table: &str) -> Vec<&'a str> {
    s.table(family, table).map(|t| t.chains.iter().map(String::as_str).collect()).unwrap_or_default()
}

#[test]
fn an_unchanged_generation_reuses_the_last_read_and_every_change_is_read() {
    let Some(w) = World::new("nft-generation") else { return };
    w.ns("nft add table ip kube-proxy && nft add chain ip kube-proxy services");

    let (first, g1, reuse) = fetch(&w, Reuse::default());
    assert_eq!((reuse.reads, reuse.reused), (1, 0));
    assert_eq!(reuse.generation(), Some(g1), "a read with the same generation before and after is kept");
    assert_eq!(chains(&first, "ip", "kube-proxy"), ["services"]);

    // Nothing committed: the kernel is asked for the generation and the tables, not for the chains.
    let (second, g2, reuse) = fetch(&w, reuse);
    assert_eq!((reuse.reads, reuse.reused), (1, 1), "an unchanged generation must not dump the chains again");
    assert_eq!(g2, g1);
    assert_eq!(serde_json::to_string(&second).unwrap(), serde_json::to_string(&first).unwrap());

    // A native nftables transaction moves the generation: read again, and the new chain is seen.
    w.ns("nft add chain ip kube-proxy service-NEW");
    let (third, g3, reuse) = fetch(&w, reuse);
    assert_ne!(g3, g1, "nft add chain must bump the generation");
    assert_eq!((reuse.reads, reuse.reused), (2, 1));
    assert_eq!(chains(&third, "ip", "kube-proxy"), ["service-NEW", "services"]);

    // iptables-nft commits nftables transactions too.
    w.ns("iptables-nft -w -t nat -N KUBE-SVC-GENERATIONTEST0");
    let (fourth, _, reuse) = fetch(&w, reuse);
    assert_eq!((reuse.reads, reuse.reused), (3, 1));
    assert!(fourth.iptables_nft("ip").has_chain("nat", "KUBE-SVC-GENERATIONTEST0"));
    let (_, _, reuse) = fetch(&w, reuse);
    assert_eq!((reuse.reads, reuse.reused), (3, 2));
}

#[test]
fn a_table_released_with_its_owner_is_noticed_without_a_new_generation() {
    let Some(w) = World::new("nft-owner") else { return };
    // `nft -i` keeps its netlink socket open: a table with `flags owner` lives as long as that process.
    let mut nft = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", w.name))
        .args(["nft", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = nft.stdin.take().unwrap();
    writeln!(stdin, "add table ip owned {{ flags owner ; }}").unwrap();
    writeln!(stdin, "add chain ip owned c").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.ns("nft list tables").contains("owned") {
        assert!(Instant::now() < deadline, "nft -i did not create its owned table");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (first, g1, reuse) = fetch(&w, Reuse::default());
    assert!(first.table("ip", "owned").is_some());
    let (_, _, reuse) = fetch(&w, reuse);
    assert_eq!((reuse.reads, reuse.reused), (1, 1));

    // The owner exits (stdin closed): nft_rcv_nl_event releases the table.
    drop(stdin);
    let status = nft.wait().unwrap();
    assert!(status.success(), "nft -i: {status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.ns("nft list tables").contains("owned") {
        assert!(Instant::now() < deadline, "the owned table outlived its owner");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (after, g2, reuse) = fetch(&w, reuse);
    println!("generation {g1} with the owned table, {g2} after its owner exited");
    assert!(after.table("ip", "owned").is_none(), "a released table must not be served from the last read");
    assert_eq!(reuse.reads, 2);
}

#[test]
fn the_daemon_resyncs_an_unchanged_ruleset_without_dumping_it_and_still_follows_a_change() {
    let Some(mut w) = World::new("nft-daemon-reuse") else { return };
    // Service chains as kube-proxy names them (`service-<hash>-<ns>/<name>/<proto>/<port>`): only those count.
    w.ns("nft add table ip kube-proxy && nft add chain ip kube-proxy service-AAAAAAAA-ns/one/tcp/p80");
    let d = w.serve("[daemon]\ndebounce_ms = 100\nresync_secs = 1\n");
    d.wait_notify("READY=1");
    let services = || {
        let (code, body) = d.get("/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["dataplane"]["kube_proxy"]["services"].clone()
    };
    assert_eq!(services(), 1);
    // Resyncs every second: the log says when one was answered from the last read (ROUTEWARDEN_LOG=debug).
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.log(&w).matches("unchanged: reused the last read").count() < 2 {
        assert!(Instant::now() < deadline, "no resync reused the nftables read: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(100));
    }
    w.ns("nft add chain ip kube-proxy service-BBBBBBBB-ns/two/tcp/p80");
    let deadline = Instant::now() + Duration::from_secs(5);
    while services() != 2 {
        assert!(Instant::now() < deadline, "/status did not follow the new chain: {}", d.log(&w));
        std::thread::sleep(Duration::from_millis(50));
    }
}
