//! Install latency of the store (harness = false): `cargo bench -p akvvm-cert --bench
//! store_install`. Each scenario installs 200 versions of one certificate (alternating between
//! real bundles, keeping 2, so every install after the second also prunes) in a temp directory on
//! the same file system as `$TMPDIR`, and prints the latency distribution. Every install fsyncs
//! its files and the directory, so the figures are dominated by the disk's fsync latency. The
//! `4.x` scenarios use the 4.x layout (`Layout::V4`: `.pem`, `.keyid`, two links, `.luma`).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use akvvm_cert::store::{Acl, InstallRequest, Layout, Store};
use akvvm_testkit::certs;

const INSTALLS: usize = 200;

struct Scenario {
    name: &'static str,
    link_name: Option<&'static str>,
    acls: &'static [Acl],
    certbot_layout: bool,
    layout: Layout,
}

fn main() {
    let bundles: Vec<_> = (0..3)
        .map(|i| certs::generate(&format!("host{i}.example.com"), 90).bundle)
        .collect();
    let acls: &'static [Acl] = Box::leak(Box::new([Acl::User("4711".into())]));
    let scenarios = [
        Scenario {
            name: "file + stable link",
            link_name: None,
            acls: &[],
            certbot_layout: false,
            layout: Layout::V3,
        },
        Scenario {
            name: "+ custom link + ACL",
            link_name: Some("web.pem"),
            acls,
            certbot_layout: false,
            layout: Layout::V3,
        },
        Scenario {
            name: "+ certbot layout",
            link_name: Some("web.pem"),
            acls,
            certbot_layout: true,
            layout: Layout::V3,
        },
        Scenario {
            name: "4.x: 2 files, 2 links",
            link_name: None,
            acls: &[],
            certbot_layout: false,
            layout: Layout::V4,
        },
        Scenario {
            name: "4.x + ACL",
            link_name: None,
            acls,
            certbot_layout: false,
            layout: Layout::V4,
        },
    ];
    #[allow(clippy::print_stdout)]
    {
        println!("store_install: {INSTALLS} installs per scenario, keep 2");
        println!(
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "scenario", "mean", "p50", "p90", "p99", "max", "installs/s"
        );
    }
    for scenario in &scenarios {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open_layout(&root.path().join("store"), scenario.layout).unwrap();
        let mut latencies = Vec::with_capacity(INSTALLS);
        let started = Instant::now();
        for i in 0..INSTALLS {
            let version = format!("{i:032x}");
            let request = InstallRequest {
                vault: "vault",
                name: "cert",
                version: &version,
                bundle: &bundles[i % bundles.len()],
                link_name: scenario.link_name,
                acls: scenario.acls,
                keep: NonZeroU32::new(2).unwrap(),
                certbot_layout: scenario.certbot_layout,
            };
            let start = Instant::now();
            store.install(&request).unwrap();
            latencies.push(start.elapsed());
        }
        let total = started.elapsed();
        latencies.sort();
        let mean = total / u32::try_from(INSTALLS).unwrap();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        let ms = |d: Duration| format!("{:.2}ms", d.as_secs_f64() * 1000.0);
        #[allow(clippy::print_stdout)]
        {
            println!(
                "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10.0}",
                scenario.name,
                ms(mean),
                ms(at(0.5)),
                ms(at(0.9)),
                ms(at(0.99)),
                ms(latencies[latencies.len() - 1]),
                INSTALLS as f64 / total.as_secs_f64()
            );
        }
    }
}
