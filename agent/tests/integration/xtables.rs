//! The legacy-table decoder on blobs captured from real kernels (`agent/tests/data/xtables`, see its README):
//! the same chains, rule counts and jumps as the `iptables-legacy-save` output captured with each; and damaged
//! blobs give errors naming their byte offset, never a panic.

use std::path::{Path, PathBuf};

use routewarden::model::iptables::Ruleset;
use routewarden::sources::iptables::entries::{decode, parse_info, DecodeError, Info};
use routewarden::sources::iptables::{insert, parse_save};
use routewarden::sys::xtables::{Family, INFO_LEN};

use crate::save_jumps::save_jumps;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xtables")
}

/// (table, info, entries) of every blob captured under `name` for `suffix` (v4, v6).
fn blobs(name: &str, suffix: &str) -> Vec<(String, Info, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir()).unwrap() {
        let file = e.unwrap().file_name().into_string().unwrap();
        let Some(rest) = file.strip_prefix(&format!("{name}.")) else { continue };
        let Some(table) = rest.strip_suffix(&format!(".{suffix}.bin")) else { continue };
        let bytes = std::fs::read(dir().join(&file)).unwrap();
        let info = parse_info(&bytes[..INFO_LEN]).unwrap();
        out.push((table.to_string(), info, bytes[INFO_LEN..].to_vec()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn family(suffix: &str) -> Family {
    if suffix == "v6" {
        Family::Ipv6
    } else {
        Family::Ipv4
    }
}

#[test]
fn captured_blobs_decode_to_what_iptables_legacy_save_printed() {
    let mut seen = 0;
    for e in std::fs::read_dir(dir()).unwrap() {
        let file = e.unwrap().file_name().into_string().unwrap();
        let Some(stem) = file.strip_suffix(".save.txt") else { continue };
        let (name, suffix) = stem.rsplit_once('.').unwrap();
        let save = std::fs::read_to_string(dir().join(&file)).unwrap();
        let tables = blobs(name, suffix);
        assert!(!tables.is_empty(), "{file}: no blobs");
        let mut rs = Ruleset::default();
        let mut jumps = Vec::new();
        for (table, info, blob) in &tables {
            let t = decode(family(suffix), info, blob).unwrap_or_else(|e| panic!("{name} {table}: {e}"));
            insert(&mut rs, table, &t);
            for j in &t.jumps {
                let n = |i: u32| t.chains[i as usize].name.to_string();
                jumps.push((table.clone(), n(j.from), n(j.to), j.goto));
            }
        }
        jumps.sort();
        assert_eq!(rs, parse_save(&save, "filter").unwrap(), "{file}");
        assert_eq!(jumps, save_jumps(&save), "{file}");
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} captures");
}

#[test]
fn the_ipv6_capture_has_a_goto_a_fallthrough_and_an_empty_chain() {
    let tables = blobs("ipv6", "v6");
    let (_, info, blob) = tables.iter().find(|t| t.0 == "filter").unwrap();
    let t = decode(Family::Ipv6, info, blob).unwrap();
    let chain = |n: &str| t.chains.iter().find(|c| c.name == n).unwrap();
    assert_eq!(chain("FORWARD").rules, 3, "the rule without a target is a rule, not a jump");
    assert_eq!(chain("KUBE-EMPTY").rules, 0);
    assert_eq!(chain("KUBE-FORWARD").rules, 2, "a -j RETURN rule is a rule; the footer is not");
    let gotos: Vec<_> = t.jumps.iter().filter(|j| j.goto).collect();
    assert_eq!(gotos.len(), 1);
    assert_eq!(t.chains[gotos[0].to as usize].name, "KUBE-FIREWALL");
    // The same bytes read as IPv4 entries do not fit.
    assert!(decode(Family::Ipv4, info, blob).is_err());
}

fn overall_nat() -> (Info, Vec<u8>) {
    let (_, info, blob) = blobs("overall", "v4").into_iter().find(|t| t.0 == "nat").unwrap();
    (info, blob)
}

#[test]
fn a_truncated_or_resized_blob_is_an_error() {
    let (info, blob) = overall_nat();
    for cut in (0..blob.len()).step_by(8) {
        let e = decode(Family::Ipv4, &info, &blob[..cut]).unwrap_err();
        assert!(e.to_string().contains("size the table info announced"), "{e}");
        let short = Info { size: cut as u32, ..info.clone() };
        let e: DecodeError = decode(Family::Ipv4, &short, &blob[..cut]).unwrap_err();
        assert!(e.offset <= cut, "{e}");
    }
    assert!(parse_info(&[0; 83]).is_err());
}

#[test]
fn damaged_bytes_give_errors_not_panics() {
    let (info, blob) = overall_nat();
    let good = decode(Family::Ipv4, &info, &blob).unwrap();
    let mut errors = 0;
    // Every byte of the first entries and a sample of the rest, set to values that break offsets and sizes.
    let positions = (0..2048).chain((2048..blob.len()).step_by(7));
    for at in positions {
        for v in [0x00, 0x01, 0x7f, 0xff] {
            let mut b = blob.clone();
            if b[at] == v {
                continue;
            }
            b[at] = v;
            match decode(Family::Ipv4, &info, &b) {
                Ok(t) => assert!(t.chains.len() <= good.chains.len() + 1),
                Err(e) => {
                    assert!(e.offset <= b.len(), "{e}");
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > 100, "damage went unnoticed: {errors} errors");
}

#[test]
fn a_jump_into_the_middle_of_a_chain_is_an_error() {
    let (info, mut blob) = overall_nat();
    let t = decode(Family::Ipv4, &info, &blob).unwrap();
    assert!(!t.jumps.is_empty());
    // The first standard target with a non-negative verdict: point it 8 bytes further, at no entry.
    let mut off = 0;
    loop {
        let target = off + u16::from_ne_bytes([blob[off + 88], blob[off + 89]]) as usize;
        let next = off + u16::from_ne_bytes([blob[off + 90], blob[off + 91]]) as usize;
        let verdict = i32::from_ne_bytes(blob[target + 32..target + 36].try_into().unwrap());
        if blob[target + 2] == 0 && verdict >= 0 && verdict as usize != next {
            blob[target + 32..target + 36].copy_from_slice(&(verdict + 8).to_ne_bytes());
            let e = decode(Family::Ipv4, &info, &blob).unwrap_err();
            assert_eq!(e.offset, off);
            assert!(e.to_string().contains("starts no chain"), "{e}");
            return;
        }
        off = next;
    }
}
