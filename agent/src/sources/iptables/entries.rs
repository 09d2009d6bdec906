//! Pure decoder of a legacy iptables table as the kernel hands it out (`IPT_SO_GET_INFO` and the
//! `IPT_SO_GET_ENTRIES` blob, or the IPv6 `IP6T_SO_GET_*`): chains, per-chain rule counts and jumps.
//!
//! Layouts from the kernel's uapi headers (`linux/netfilter/x_tables.h`, `linux/netfilter_ipv4/ip_tables.h`,
//! `linux/netfilter_ipv6/ip6_tables.h`), native byte order. The blob is a run of 8-aligned entries (`ipt_entry`:
//! the IP match, `target_offset`, `next_offset`, counters, then matches and one target). The layout libiptc
//! writes, and so what every iptables-legacy table holds:
//!
//! - a built-in chain runs from `hook_entry[hook]` to `underflow[hook]`, the policy entry, which is not a rule;
//! - a user chain starts with an `ERROR` target carrying the chain name (its head), then its rules, then one
//!   unconditional `RETURN` (its footer, not a rule);
//! - the table ends with an `ERROR` entry named `ERROR`;
//! - a standard target (empty name) carries a verdict: negative for ACCEPT/DROP/QUEUE/RETURN, otherwise the byte
//!   offset of the entry to continue at: the entry after a user chain's head (a jump, or a goto when the entry's
//!   `IPT_F_GOTO` flag is set), or the next entry (a rule without a target).
//!
//! Nothing is copied: chain names borrow from the blob. Any entry that does not fit this layout is an error that
//! names its byte offset, never a panic.

use crate::sys::xtables::{Family, INFO_LEN};

/// Built-in chain names by netfilter hook number (NF_INET_PRE_ROUTING .. NF_INET_POST_ROUTING).
const HOOKS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
/// `sizeof(struct xt_entry_target)`: target_size (u16), name[29], revision.
const TARGET_HDR: usize = 32;
/// `XT_ALIGN`: entries and targets are aligned to the alignment of `__u64` counters.
const ALIGN: usize = 8;
/// `XT_RETURN` (`-NF_REPEAT - 1`).
const VERDICT_RETURN: i32 = -5;
/// `XT_FUNCTION_MAXNAMELEN`: the error target's name buffer.
const ERROR_NAME_LEN: usize = 30;

/// The parts of `struct ipt_getinfo` (= `struct ip6t_getinfo`) the decoder uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub valid_hooks: u32,
    pub hook_entry: [u32; 5],
    pub underflow: [u32; 5],
    pub num_entries: u32,
    pub size: u32,
}

/// One chain of a decoded table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain<'a> {
    pub name: &'a str,
    pub builtin: bool,
    /// Rules, without a built-in chain's policy or a user chain's footer.
    pub rules: u32,
}

/// A rule of chain `from` that jumps (or goes, `goto`) to chain `to`; indexes into [`Table::chains`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    pub from: u32,
    pub to: u32,
    pub goto: bool,
}

/// A decoded table: chains in blob order and every jump between them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table<'a> {
    pub chains: Vec<Chain<'a>>,
    pub jumps: Vec<Jump>,
}

/// Bytes that are not a table libiptc could have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {what}")]
pub struct DecodeError {
    pub offset: usize,
    pub what: &'static str,
}

fn bad(offset: usize, what: &'static str) -> DecodeError {
    DecodeError { offset, what }
}

/// Per-family offsets inside `ipt_entry` / `ip6t_entry`.
struct Layout {
    entry: usize,
    flags: usize,
    goto_flag: u8,
    target_offset: usize,
}

fn layout(family: Family) -> Layout {
    match family {
        // struct ipt_ip is 84 bytes (flags at 82); nfcache, target_offset at 88, next_offset at 90.
        Family::Ipv4 => Layout { entry: 112, flags: 82, goto_flag: 0x02, target_offset: 88 },
        // struct ip6t_ip6 is 136 bytes (flags at 131); target_offset at 140, next_offset at 142.
        Family::Ipv6 => Layout { entry: 168, flags: 131, goto_flag: 0x04, target_offset: 140 },
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A NUL-terminated name in a fixed buffer.
fn cstr(b: &[u8]) -> Option<&str> {
    let end = b.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&b[..end]).ok()
}

/// Decodes the `ipt_getinfo` bytes.
pub fn parse_info(b: &[u8]) -> Result<Info, DecodeError> {
    if b.len() != INFO_LEN {
        return Err(bad(b.len(), "the table info is not the 84 bytes of struct ipt_getinfo"));
    }
    let at = |i: usize| u32_at(b, i).unwrap_or(0);
    Ok(Info {
        valid_hooks: at(32),
        hook_entry: std::array::from_fn(|h| at(36 + 4 * h)),
        underflow: std::array::from_fn(|h| at(56 + 4 * h)),
        num_entries: at(76),
        size: at(80),
    })
}

/// One entry's fixed fields, checked against the blob.
struct Entry {
    next: usize,
    target: usize,
    target_end: usize,
}

fn entry(l: &Layout, blob: &[u8], off: usize) -> Result<Entry, DecodeError> {
    if !off.is_multiple_of(ALIGN) {
        return Err(bad(off, "entry not 8-byte aligned"));
    }
    let (Some(target_offset), Some(next_offset)) =
        (u16_at(blob, off + l.target_offset), u16_at(blob, off + l.target_offset + 2))
    else {
        return Err(bad(off, "entry truncated"));
    };
    let (target, next) = (off + usize::from(target_offset), off + usize::from(next_offset));
    if usize::from(target_offset) < l.entry || !usize::from(next_offset).is_multiple_of(ALIGN) || next > blob.len() {
        return Err(bad(off, "entry offsets outside the table"));
    }
    let size = u16_at(blob, target).map(usize::from).unwrap_or(0);
    if size < TARGET_HDR || target + size > next {
        return Err(bad(off, "target does not fit its entry"));
    }
    Ok(Entry { next, target, target_end: target + size })
}

/// Decodes one table's entries blob. `info` must be the same table's (its hooks and size).
pub fn decode<'a>(family: Family, info: &Info, blob: &'a [u8]) -> Result<Table<'a>, DecodeError> {
    let l = layout(family);
    if blob.len() != info.size as usize {
        return Err(bad(blob.len(), "the entries blob is not the size the table info announced"));
    }
    let hook_at =
        |off: usize, of: &[u32; 5]| (0..5).find(|&h| info.valid_hooks & (1 << h) != 0 && of[h] as usize == off);
    let mut table = Table::default();
    // Where each user chain's rules start (the entry after its head), ascending, with the chain's index.
    let mut starts: Vec<(usize, u32)> = Vec::new();
    // Jumps with their target offsets, resolved once every chain is known.
    let mut pending: Vec<(u32, usize, bool, usize)> = Vec::new();
    // The chain entries belong to now: (index, Some(hook) for a built-in chain, whether the last entry could be
    // a user chain's footer).
    let mut current: Option<(usize, Option<usize>, bool)> = None;
    let mut entries = 0u32;
    let mut end = false;
    let mut off = 0;
    while off < blob.len() {
        if end {
            return Err(bad(off, "entries after the table's end marker"));
        }
        let e = entry(&l, blob, off)?;
        entries += 1;
        let name = cstr(&blob[e.target + 2..e.target + 31]).ok_or_else(|| bad(off, "target name not terminated"))?;
        let close_user = |table: &mut Table<'a>, current: &Option<(usize, Option<usize>, bool)>| match current {
            Some((i, None, true)) => {
                table.chains[*i].rules -= 1;
                Ok(())
            }
            Some((_, None, false)) => Err(bad(off, "user chain without its RETURN footer")),
            Some((_, Some(_), _)) => Err(bad(off, "built-in chain without its policy entry")),
            None => Ok(()),
        };
        if let Some(h) = hook_at(off, &info.hook_entry) {
            close_user(&mut table, &current)?;
            table.chains.push(Chain { name: HOOKS[h], builtin: true, rules: 0 });
            current = Some((table.chains.len() - 1, Some(h), false));
        } else if name == "ERROR" {
            close_user(&mut table, &current)?;
            current = None;
            if e.next == blob.len() {
                end = true;
            } else {
                let chain = blob
                    .get(e.target + TARGET_HDR..e.target + TARGET_HDR + ERROR_NAME_LEN)
                    .filter(|_| e.target + TARGET_HDR + ERROR_NAME_LEN <= e.target_end)
                    .and_then(cstr)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| bad(off, "chain head without a readable name"))?;
                table.chains.push(Chain { name: chain, builtin: false, rules: 0 });
                let i = table.chains.len() - 1;
                starts.push((e.next, i as u32));
                current = Some((i, None, false));
            }
            off = e.next;
            continue;
        }
        let Some((i, hook, footer)) = current.as_mut() else {
            return Err(bad(off, "rule outside any chain"));
        };
        let verdict = (name.is_empty()).then(|| u32_at(blob, e.target + TARGET_HDR).map(|v| v as i32)).flatten();
        if name.is_empty() && verdict.is_none() {
            return Err(bad(off, "standard target without a verdict"));
        }
        if let Some(h) = *hook {
            if info.underflow[h] as usize == off {
                // The policy: an unconditional standard verdict, not a rule.
                if verdict.is_none_or(|v| v >= 0) {
                    return Err(bad(off, "built-in chain policy is not a verdict"));
                }
                current = None;
                off = e.next;
                continue;
            }
        }
        table.chains[*i].rules += 1;
        *footer = verdict == Some(VERDICT_RETURN) && e.target == off + l.entry;
        if let Some(v) = verdict.filter(|&v| v >= 0) {
            let to = v as usize;
            if to != e.next {
                let goto = blob.get(off + l.flags).is_some_and(|f| f & l.goto_flag != 0);
                pending.push((*i as u32, to, goto, off));
            }
        }
        off = e.next;
    }
    if !end {
        return Err(bad(off, "table without its end marker"));
    }
    if current.is_some() {
        return Err(bad(off, "the last chain is not closed"));
    }
    if entries != info.num_entries {
        return Err(bad(off, "the number of entries is not the one the table info announced"));
    }
    table.jumps.reserve_exact(pending.len());
    for (from, to, goto, at) in pending {
        let i =
            starts.binary_search_by_key(&to, |s| s.0).map_err(|_| bad(at, "jump to an offset that starts no chain"))?;
        table.jumps.push(Jump { from, to: starts[i].1, goto });
    }
    Ok(table)
}
