//! Routes and permanent neighbours from rtnetlink: Antrea's proxyAll shows as the Service CIDR routed via
//! 169.254.0.253 on `antrea-gw0` with a permanent neighbour (docs/DATAPLANE-FACTS.md section 10).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutesState {
    /// Routes with a gateway on one of `KEPT_DEVICES`, of every table (link-scope routes carry no proxy signal
    /// and are not kept).
    pub routes: Vec<Route>,
    /// Neighbour entries in state PERMANENT on one of `KEPT_DEVICES`.
    pub neighbours: Vec<Neighbour>,
    /// More routes or neighbours than the source keeps (`MAX_ENTRIES` of each); the rest were dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The only devices whose routes and neighbours the rules read (Antrea's gateway): the others are not kept.
pub const KEPT_DEVICES: &[&str] = &["antrea-gw0"];

/// At most this many routes and this many neighbours are kept.
pub const MAX_ENTRIES: usize = 100_000;

/// A route with a gateway. Addresses serialise as the strings they always were; a snapshot with anything else in
/// them does not load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Always a network with its prefix length (`10.96.0.0/12`; a default route is `0.0.0.0/0` or `::/0`).
    pub destination: IpNet,
    pub gateway: IpAddr,
    /// The output device's name; `None` when it has none or it is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub table: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub address: IpAddr,
    pub device: Option<String>,
}
