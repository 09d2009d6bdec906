//! Who owns an iptables chain: kube-proxy (iptables or IPVS mode), kubelet, Cilium, or nobody we know.
//!
//! The classic false positive is "any KUBE-* chain means kube-proxy": kubelet creates KUBE-FIREWALL,
//! KUBE-KUBELET-CANARY and KUBE-IPTABLES-HINT on every node. See docs/DATAPLANE-FACTS.md sections 1.1 to 1.4 and 2.2.

use crate::model::nftables::Chains;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// kube-proxy, iptables mode only (per-service chains, canary, nodeports).
    KubeProxyIptables,
    /// kube-proxy, IPVS mode only.
    KubeProxyIpvs,
    /// kube-proxy, iptables or IPVS mode.
    KubeProxy,
    /// kubelet's own chains: never evidence of kube-proxy.
    Kubelet,
    /// Shared by kubelet (before 1.27) and kube-proxy: ignored on its own.
    Ambiguous,
    /// kube-proxy's `KUBE-PROXY-CANARY`: an empty marker that `kube-proxy --cleanup` leaves behind. It shows that
    /// kube-proxy ran once and routes nothing, so on its own it is no Service routing (section 1.3).
    KubeProxyMarker,
    Cilium,
    Other,
}

/// Per-service chain prefixes of iptables mode (`isServiceChainName`, plus pre-1.24 `KUBE-XLB-`).
const SERVICE_PREFIXES: &[&str] = &["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-", "KUBE-XLB-"];

pub fn owner(table: &str, chain: &str) -> Owner {
    if chain.starts_with("CILIUM_") || chain.starts_with("OLD_CILIUM_") {
        return Owner::Cilium;
    }
    if SERVICE_PREFIXES.iter().any(|p| chain.starts_with(p)) {
        return Owner::KubeProxyIptables;
    }
    match (table, chain) {
        (_, "KUBE-PROXY-CANARY") => Owner::KubeProxyMarker,
        (_, "KUBE-NODEPORTS" | "KUBE-EXTERNAL-SERVICES") => Owner::KubeProxyIptables,
        // Userspace proxy mode (removed in 1.26): only ever leftovers on a current node.
        (_, "KUBE-PORTALS-CONTAINER" | "KUBE-PORTALS-HOST" | "KUBE-NODEPORT-CONTAINER" | "KUBE-NODEPORT-HOST") => {
            Owner::KubeProxyIptables
        }
        (
            _,
            "KUBE-NODE-PORT"
            | "KUBE-LOAD-BALANCER"
            | "KUBE-IPVS-FILTER"
            | "KUBE-IPVS-OUT-FILTER"
            | "KUBE-SOURCE-RANGES-FIREWALL",
        ) => Owner::KubeProxyIpvs,
        (_, "KUBE-SERVICES" | "KUBE-FORWARD" | "KUBE-PROXY-FIREWALL") => Owner::KubeProxy,
        ("filter", "KUBE-FIREWALL") | (_, "KUBE-KUBELET-CANARY" | "KUBE-IPTABLES-HINT") => Owner::Kubelet,
        (_, "KUBE-MARK-MASQ" | "KUBE-MARK-DROP" | "KUBE-POSTROUTING" | "KUBE-FIREWALL") => Owner::Ambiguous,
        _ => Owner::Other,
    }
}

/// What one iptables ruleset (one backend, one family) says about kube-proxy and Cilium.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// `KUBE-SVC-*` chains in nat: one per Service port.
    pub svc_chains: u32,
    /// Chains only kube-proxy's iptables mode creates.
    pub iptables_mode_chains: u32,
    /// Chains only kube-proxy's IPVS mode creates.
    pub ipvs_mode_chains: u32,
    /// Chains either kube-proxy mode creates (KUBE-SERVICES, KUBE-FORWARD, ...).
    pub shared_chains: u32,
    /// Pre-1.24 `KUBE-XLB-*` chains no current kube-proxy creates or removes.
    pub xlb_chains: u32,
    pub kubelet_chains: u32,
    pub cilium_chains: u32,
}

impl Signals {
    pub fn of(rs: Chains<'_>) -> Signals {
        let mut s = Signals::default();
        for (table, chain) in rs.all() {
            match owner(table, chain) {
                Owner::KubeProxyIptables => {
                    s.iptables_mode_chains += 1;
                    if table == "nat" && chain.starts_with("KUBE-SVC-") {
                        s.svc_chains += 1;
                    }
                    if chain.starts_with("KUBE-XLB-") {
                        s.xlb_chains += 1;
                    }
                }
                Owner::KubeProxyIpvs => s.ipvs_mode_chains += 1,
                Owner::KubeProxy => s.shared_chains += 1,
                Owner::Kubelet => s.kubelet_chains += 1,
                Owner::Cilium => s.cilium_chains += 1,
                Owner::KubeProxyMarker | Owner::Ambiguous | Owner::Other => {}
            }
        }
        s
    }

    /// Whether any chain only kube-proxy creates is here (kubelet-only nodes have none).
    pub fn kube_proxy(&self) -> bool {
        self.iptables_mode_chains + self.ipvs_mode_chains + self.shared_chains > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_chains_are_never_kube_proxy() {
        for (t, c) in [("filter", "KUBE-FIREWALL"), ("mangle", "KUBE-KUBELET-CANARY"), ("mangle", "KUBE-IPTABLES-HINT")]
        {
            assert_eq!(owner(t, c), Owner::Kubelet, "{t}/{c}");
        }
        assert_eq!(owner("nat", "KUBE-MARK-MASQ"), Owner::Ambiguous);
        assert_eq!(owner("nat", "KUBE-FIREWALL"), Owner::Ambiguous);
        assert_eq!(owner("filter", "KUBE-NWPLCY-DEFAULT"), Owner::Other);
        assert_eq!(owner("mangle", "OLD_CILIUM_PRE_mangle"), Owner::Cilium);
        assert_eq!(owner("nat", "KUBE-SEP-UHEGFW77JX3KXTOV"), Owner::KubeProxyIptables);
        assert_eq!(owner("filter", "KUBE-IPVS-FILTER"), Owner::KubeProxyIpvs);
    }
}
