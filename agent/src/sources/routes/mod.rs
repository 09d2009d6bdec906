//! Routes with a gateway and permanent neighbours on the devices the rules read (`KEPT_DEVICES`) over rtnetlink
//! (IPv4 and IPv6, every table), with device
//! names resolved from a link dump on the same socket; one deadline for the whole dump, and a bound on entries.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::RouteMessageBuilder;

use crate::config::Config;
use crate::model::routes::{Neighbour, Route, RoutesState, KEPT_DEVICES, MAX_ENTRIES};

#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("starting the netlink runtime")]
    Runtime(#[source] std::io::Error),
    #[error("opening an rtnetlink socket")]
    Connect(#[source] std::io::Error),
    #[error("dumping {what}")]
    Dump { what: &'static str, source: rtnetlink::Error },
    #[error("dumping routes and neighbours did not finish within {0:?}")]
    Timeout(std::time::Duration),
}

pub fn fetch(config: &Config) -> Result<RoutesState, RoutesError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RoutesError::Runtime)?;
    let limit = config.command_timeout();
    rt.block_on(async { tokio::time::timeout(limit, fetch_async()).await.map_err(|_| RoutesError::Timeout(limit))? })
}

async fn fetch_async() -> Result<RoutesState, RoutesError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(RoutesError::Connect)?;
    let conn = tokio::spawn(conn);
    let dump = |what| move |source| RoutesError::Dump { what, source };

    let mut names = HashMap::new();
    let mut links = handle.link().get().execute();
    while let Some(msg) = links.try_next().await.map_err(dump("links"))? {
        for attr in msg.attributes {
            if let LinkAttribute::IfName(n) = attr {
                names.insert(msg.header.index, n);
            }
        }
    }

    let mut state = RoutesState::default();
    for request in [RouteMessageBuilder::<Ipv4Addr>::new().build(), RouteMessageBuilder::<Ipv6Addr>::new().build()] {
        let mut routes = handle.route().get(request).execute();
        while let Some(msg) = routes.try_next().await.map_err(dump("routes"))? {
            if let Some(route) = route(&msg, &names).filter(|r| kept(r.device.as_deref())) {
                if state.routes.len() < MAX_ENTRIES {
                    state.routes.push(route);
                } else {
                    state.truncated = true;
                }
            }
        }
    }

    let mut neighbours = handle.neighbours().get().execute();
    while let Some(msg) = neighbours.try_next().await.map_err(dump("neighbours"))? {
        if msg.header.state != NeighbourState::Permanent {
            continue;
        }
        let address = msg.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
            _ => None,
        });
        let device = names.get(&msg.header.ifindex).cloned();
        if let (Some(address), true) = (address, kept(device.as_deref())) {
            if state.neighbours.len() < MAX_ENTRIES {
                state.neighbours.push(Neighbour { address, device });
            } else {
                state.truncated = true;
            }
        }
    }
    conn.abort();
    Ok(state)
}

/// Whether the rules read routes and neighbours of `device`.
fn kept(device: Option<&str>) -> bool {
    device.is_some_and(|d| KEPT_DEVICES.contains(&d))
}

/// A route with a gateway, as `destination/len via gateway dev device table N`; none for a prefix length the
/// destination's family cannot have (the kernel gives none).
fn route(msg: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let addr = |a: &RouteAddress| match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    };
    let mut destination = None;
    let mut gateway = None;
    let mut device = None;
    let mut table = u32::from(msg.header.table);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => destination = addr(a),
            RouteAttribute::Gateway(a) => gateway = addr(a),
            RouteAttribute::Oif(i) => device = names.get(i).cloned(),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let gateway = gateway?;
    let len = msg.header.destination_prefix_length;
    // No destination attribute: the default route of the gateway's family.
    let destination = match destination {
        Some(d) => d,
        None if gateway.is_ipv6() => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let destination = IpNet::new(destination, len).ok()?;
    Some(Route { destination, gateway, device, table })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(destination: Option<RouteAddress>, len: u8, gateway: RouteAddress) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.destination_prefix_length = len;
        msg.attributes.extend(destination.map(RouteAttribute::Destination));
        msg.attributes.extend([RouteAttribute::Gateway(gateway), RouteAttribute::Oif(7), RouteAttribute::Table(254)]);
        msg
    }

    /// Destinations are networks with their prefix length; a route without one is its gateway family's default
    /// route, serialised as it always was (`0.0.0.0/0`, `::/0`).
    #[test]
    fn destinations_are_networks_and_a_missing_one_is_the_default_route() {
        let names = HashMap::from([(7, "antrea-gw0".to_string())]);
        let v4 = |a: [u8; 4]| RouteAddress::Inet(Ipv4Addr::from(a));
        let gw6 = RouteAddress::Inet6("fc01::aabb:ccdd:eeff".parse().unwrap());
        let text = |r: Option<Route>| {
            let r = r.unwrap();
            format!("{} via {} dev {} table {}", r.destination, r.gateway, r.device.unwrap_or_default(), r.table)
        };
        let cidr = route(&message(Some(v4([10, 96, 0, 0])), 12, v4([169, 254, 0, 253])), &names);
        assert_eq!(text(cidr), "10.96.0.0/12 via 169.254.0.253 dev antrea-gw0 table 254");
        assert_eq!(
            text(route(&message(None, 0, v4([10, 0, 0, 1])), &names)),
            "0.0.0.0/0 via 10.0.0.1 dev antrea-gw0 table 254"
        );
        let default6 = route(&message(None, 0, gw6.clone()), &names).unwrap();
        assert_eq!(serde_json::to_value(default6.destination).unwrap(), serde_json::json!("::/0"));
        assert_eq!(default6.gateway.to_string(), "fc01::aabb:ccdd:eeff");
        // A prefix longer than the family allows is no network; no gateway, no route.
        assert!(route(&message(Some(v4([10, 96, 0, 0])), 33, v4([169, 254, 0, 253])), &names).is_none());
        let mut no_gateway = message(Some(v4([10, 96, 0, 0])), 12, gw6);
        no_gateway.attributes.retain(|a| !matches!(a, RouteAttribute::Gateway(_)));
        assert!(route(&no_gateway, &names).is_none());
    }
}
