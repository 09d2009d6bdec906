//! Journal rule throughput (criterion): kubelet-like lines, one in ten matching a rule, through record assembly,
//! the whole default rule set and the engine's windows. Target: at least 1,000,000 lines per second per core.
//!
//! cargo bench --bench journal_rules

#![allow(clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use routewarden::journal::assemble::Assembler;
use routewarden::journal::{Engine, Entry, RuleSet};

/// A realistic mix: mostly benign klog lines of varied length, every tenth a rule match.
pub fn lines(n: usize) -> Vec<Entry> {
    let benign = [
        r#"I0102 10:00:00.000000    1234 kubelet.go:2337] "SyncLoop (PLEG): event for pod" pod="default/web-7d9f8b6c5d-x2x4z" event={"ID":"0b3c2d1e","Type":"ContainerStarted","Data":"4f5e6d7c"}"#,
        r#"I0102 10:00:00.000000    1234 reconciler_common.go:258] "operationExecutor.VerifyControllerAttachedVolume started for volume \"kube-api-access-8xk2p\" (UniqueName: \"kubernetes.io/projected/0b3c-kube-api-access-8xk2p\") pod \"web-7d9f8b6c5d-x2x4z\" (UID: \"0b3c\") " pod="default/web-7d9f8b6c5d-x2x4z""#,
        r#"I0102 10:00:00.000000    1234 kuberuntime_manager.go:1056] "Creating container in pod" containerType="container" container="&Container{Name:web,Image:nginx:1.25,...}" pod="default/web-7d9f8b6c5d-x2x4z""#,
        r#"W0102 10:00:00.000000    1234 cpu_manager.go:395] "Failed to read pod level cgroup, skipping" pod="default/web""#,
        r#"I0102 10:00:00.000000    1234 prober.go:107] "Probe failed" probeType="Readiness" pod="default/web-7d9f8b6c5d-x2x4z" podUID="0b3c" containerName="web" probeResult="failure" output="Get \"http://10.244.1.7:8080/healthz\": dial tcp 10.244.1.7:8080: connect: connection refused""#,
        r#"I0102 10:00:00.000000    1234 kubelet_getters.go:187] "Pod status updated" pod="kube-system/coredns-5d78c9869d-abcde" status="Running""#,
        r#"E0102 10:00:00.000000    1234 kubelet.go:2032] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"app\" with ErrImagePull" pod="default/app-0""#,
        "Flag --pod-infra-container-image has been deprecated, will be removed in a future release.",
        // A klog multi-line value: three entries the assembler joins into one record.
        r#"E0102 10:00:00.000000    1234 proxier.go:1447] "Failed to execute iptables-restore" err=<"#,
        "\texit status 2: iptables-restore v1.8.7 (nf_tables): Couldn't load match `comment':No such file or directory",
        " >",
        r#"time="2026-01-02T10:00:00.000000000Z" level=info msg="ImageCreate event name:\"docker.io/library/nginx:1.25\" labels:{key:\"io.cri-containerd.image\" value:\"managed\"}""#,
    ];
    let matching = [
        r#"E0102 10:00:00.123456    1234 kubelet.go:2855] "Container runtime network not ready" networkReady="NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized""#,
        r#"E0102 10:00:01.000000    1234 reflector.go:147] k8s.io/client-go/informers/factory.go:159: Failed to watch *v1.Node: failed to list *v1.Node: Get "https://10.0.0.1:6443/api/v1/nodes?limit=500": dial tcp 10.0.0.1:6443: connect: connection refused"#,
        "Another app is currently holding the xtables lock. Stopped waiting after 5s.",
    ];
    (0..n)
        .map(|i| {
            let message = if i % 10 == 9 { matching[i / 10 % matching.len()] } else { benign[i % benign.len()] };
            let unit = if message.starts_with("time=") { "containerd.service" } else { "kubelet.service" };
            Entry {
                cursor: String::new(),
                realtime_usec: 1_790_000_000_000_000 + i as u64 * 1000,
                unit: unit.into(),
                pid: 1234,
                message: message.into(),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let entries = lines(100_000);
    let mut g = c.benchmark_group("journal");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.sample_size(20);
    g.bench_function("assembly + default rules over 100k kubelet lines", |b| {
        b.iter_batched(
            // The reader owns each parsed entry and moves it into the assembler: the copies are made outside the
            // measured part.
            || (Engine::new(RuleSet::with_defaults(Vec::new()).expect("default rules")), entries.clone()),
            |(mut engine, owned)| {
                let mut n = 0usize;
                let mut asm = Assembler::new();
                for e in owned {
                    asm.push(e, |r| engine.feed_with(&r, |_| n += 1));
                }
                asm.flush(|r| engine.feed_with(&r, |_| n += 1));
                n
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
