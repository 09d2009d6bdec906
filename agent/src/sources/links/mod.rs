//! Network links over rtnetlink, with the BPF programs attached to each (XDP, tc clsact filters and tcx) and the
//! addresses of the IPVS VIP links.

use crate::model::ipvs::MAX_VIPS;
use crate::model::links::{Direction, Link, LinksState, Mechanism, TcProgram, VIP_LINKS};
use crate::sys::bpf;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkXdp};
use rtnetlink::packet_route::tc::{TcAttribute, TcFilterBpfOption, TcOption};

#[derive(Debug, thiserror::Error)]
pub enum LinksError {
    #[error("starting the netlink runtime")]
    Runtime(#[source] std::io::Error),
    #[error("opening an rtnetlink socket")]
    Connect(#[source] std::io::Error),
    #[error("dumping links")]
    Links(#[source] rtnetlink::Error),
    #[error("dumping addresses")]
    Addresses(#[source] rtnetlink::Error),
    #[error("dumping tc filters of {link}")]
    Filters { link: String, source: rtnetlink::Error },
}

pub fn fetch() -> Result<LinksState, LinksError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(LinksError::Runtime)?;
    rt.block_on(fetch_async())
}

async fn fetch_async() -> Result<LinksState, LinksError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(LinksError::Connect)?;
    let conn = tokio::spawn(conn);
    let mut links = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await.map_err(LinksError::Links)? {
        let mut link = Link { index: msg.header.index, ..Link::default() };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind_name(&kind));
                        }
                    }
                }
                LinkAttribute::Xdp(xdp) => {
                    for x in xdp {
                        if let LinkXdp::ProgId(id) = x {
                            if id != 0 {
                                link.xdp_prog_id = Some(id);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        links.push(link);
    }
    // Addresses only of the links whose VIPs tell kube-proxy's IPVS services from kube-router's.
    if links.iter().any(|l| VIP_LINKS.contains(&l.name.as_str())) {
        let mut addrs = handle.address().get().execute();
        while let Some(msg) = addrs.try_next().await.map_err(LinksError::Addresses)? {
            let Some(link) = links.iter_mut().find(|l| l.index == msg.header.index) else { continue };
            if !VIP_LINKS.contains(&link.name.as_str()) {
                continue;
            }
            for attr in msg.attributes {
                if let AddressAttribute::Address(a) = attr {
                    // IPv6 link-local addresses are the kernel's own, never a Service VIP.
                    let link_local = matches!(a, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
                    if !link_local && link.addresses.len() < MAX_VIPS {
                        link.addresses.push(a);
                    }
                }
            }
        }
    }
    for link in &mut links {
        let index = i32::try_from(link.index).unwrap_or(0);
        for (direction, req) in [
            (Direction::Ingress, handle.traffic_filter(index).get().ingress()),
            (Direction::Egress, handle.traffic_filter(index).get().egress()),
        ] {
            let mut filters = req.execute();
            loop {
                let msg = match filters.try_next().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break,
                    // No clsact qdisc on this link: no tc programs. The kernel says EINVAL or ENOENT.
                    Err(rtnetlink::Error::NetlinkError(e))
                        if matches!(e.raw_code().abs(), libc::EINVAL | libc::ENOENT) =>
                    {
                        break
                    }
                    Err(source) => return Err(LinksError::Filters { link: link.name.clone(), source }),
                };
                if let Some(p) = bpf_filter(&msg.attributes, direction) {
                    if !link.programs.contains(&p) {
                        link.programs.push(p);
                    }
                }
            }
        }
        let (ingress, egress) = bpf::tcx_programs(&link.name);
        for (direction, progs) in [(Direction::Ingress, ingress), (Direction::Egress, egress)] {
            for (prog_id, name) in progs {
                link.programs.push(TcProgram { direction, mechanism: Mechanism::Tcx, prog_id, name });
            }
        }
    }
    conn.abort();
    links.sort_by_key(|l| l.index);
    Ok(LinksState { links })
}

/// The BPF program of a tc filter message, if it is a bpf filter with a program.
fn bpf_filter(attrs: &[TcAttribute], direction: Direction) -> Option<TcProgram> {
    let mut name = String::new();
    let mut id = None;
    for attr in attrs {
        if let TcAttribute::Options(opts) = attr {
            for opt in opts {
                match opt {
                    TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => name = n.clone(),
                    TcOption::Bpf(TcFilterBpfOption::ProgId(i)) => id = Some(*i),
                    _ => {}
                }
            }
        }
    }
    id.map(|prog_id| TcProgram { direction, mechanism: Mechanism::Tc, prog_id, name })
}

fn kind_name(kind: &InfoKind) -> String {
    match kind {
        InfoKind::Other(s) => s.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}
