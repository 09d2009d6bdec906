//! One journal entry from `journalctl --output=json`, parsed without building a JSON tree: MESSAGE may be a string,
//! an array of bytes (non-UTF-8 or binary), an array of values (a repeated field) or null. The writer is the
//! trusted `_SYSTEMD_UNIT` (never the `SYSLOG_IDENTIFIER` a process chooses), `kernel` for kernel messages, and
//! `docker/<container>` for a Kubernetes container's log through docker's journald driver.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

/// The fields routewarden uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub cursor: String,
    pub realtime_usec: u64,
    /// The writer: `_SYSTEMD_UNIT`, `kernel` for kernel messages, `docker/<container>` for docker's
    /// `CONTAINER_NAME=k8s_<container>_...`, or empty.
    pub unit: String,
    /// `_PID` (0 when absent): a record spanning several entries comes from one process.
    pub pid: u32,
    pub message: String,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "__CURSOR", default, borrow)]
    cursor: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "__REALTIME_TIMESTAMP", default, borrow)]
    realtime: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "_SYSTEMD_UNIT", default, borrow)]
    unit: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "_TRANSPORT", default, borrow)]
    transport: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "CONTAINER_NAME", default, borrow)]
    container: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "_PID", default, borrow)]
    pid: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "MESSAGE", default)]
    message: Message,
}

/// MESSAGE in whichever shape journalctl printed it.
#[derive(Default)]
struct Message(String);

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an array of bytes, an array of values, or null")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Message, E> {
                Ok(Message(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Message, E> {
                Ok(Message(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Message, E> {
                Ok(Message::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Message, E> {
                Ok(Message::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Message, A::Error> {
                // Either bytes ([104, 105]) or several values of a repeated field (["a", "b"] or [[104], ...]).
                let mut bytes = Vec::new();
                let mut first_text: Option<String> = None;
                while let Some(item) = seq.next_element::<Item>()? {
                    match item {
                        Item::Byte(b) => bytes.push(b),
                        Item::Text(t) => {
                            first_text.get_or_insert(t);
                        }
                        Item::Other => {}
                    }
                }
                Ok(Message(first_text.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned())))
            }
        }
        d.deserialize_any(V)
    }
}

enum Item {
    Byte(u8),
    Text(String),
    Other,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte or a value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
                Ok(u8::try_from(v).map(Item::Byte).unwrap_or(Item::Other))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                Ok(Item::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                Ok(Item::Text(String::from_utf8_lossy(&bytes).into_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
                Ok(Item::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A line that is not a journal entry.
#[derive(Debug, thiserror::Error)]
#[error("not a journalctl JSON entry")]
pub struct EntryError(#[from] serde_json::Error);

/// Parses one line of `journalctl --output=json`.
pub fn parse_entry(line: &[u8]) -> Result<Entry, EntryError> {
    let raw: Raw = serde_json::from_slice(line)?;
    let unit = match (raw.unit.as_deref(), raw.transport.as_deref()) {
        (Some("docker.service"), _) => match raw.container.as_deref().and_then(kubernetes_container) {
            Some(c) => format!("docker/{c}"),
            None => "docker.service".to_string(),
        },
        (Some(u), _) => u.to_string(),
        (None, Some("kernel")) => "kernel".to_string(),
        _ => String::new(),
    };
    Ok(Entry {
        cursor: raw.cursor.map(|c| c.into_owned()).unwrap_or_default(),
        realtime_usec: raw.realtime.and_then(|t| t.parse().ok()).unwrap_or(0),
        unit,
        pid: raw.pid.and_then(|p| p.parse().ok()).unwrap_or(0),
        message: raw.message.0,
    })
}

/// The container of a dockershim/cri-dockerd container name, `k8s_<container>_<pod>_<namespace>_<uid>_<n>`.
fn kubernetes_container(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("k8s_")?;
    let c = rest.split('_').next()?;
    (!c.is_empty() && rest.len() > c.len()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_is_no_entry_says_so_and_why_once() {
        let e = parse_entry(b"not json").unwrap_err();
        assert_eq!(crate::model::strict_chain(&e), "not a journalctl JSON entry: expected ident at line 1 column 2");
    }

    #[test]
    fn parses_strings_bytes_repeated_fields_and_null() {
        let e = parse_entry(br#"{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1790000000000000","_SYSTEMD_UNIT":"kubelet.service","MESSAGE":"hello \"x\""}"#).unwrap();
        assert_eq!(
            (e.cursor.as_str(), e.realtime_usec, e.unit.as_str(), e.message.as_str()),
            ("s=1", 1790000000000000, "kubelet.service", "hello \"x\"")
        );
        let e = parse_entry(br#"{"_TRANSPORT":"kernel","MESSAGE":[98,97,100,32,255,254]}"#).unwrap();
        assert_eq!((e.unit.as_str(), e.message.as_str()), ("kernel", "bad \u{fffd}\u{fffd}"));
        let e = parse_entry(br#"{"SYSLOG_IDENTIFIER":"kubelet","MESSAGE":["first","second"]}"#).unwrap();
        assert_eq!((e.unit.as_str(), e.message.as_str()), ("", "first"), "a chosen identifier is no writer");
        let e = parse_entry(br#"{"MESSAGE":[[104,105],[106]]}"#).unwrap();
        assert_eq!(e.message, "hi");
        let e = parse_entry(br#"{"MESSAGE":null}"#).unwrap();
        assert_eq!(e.message, "");
    }

    #[test]
    fn writers_are_the_trusted_unit_the_kernel_or_a_docker_container() {
        let e = parse_entry(
            br#"{"_SYSTEMD_UNIT":"kubelet.service","SYSLOG_IDENTIFIER":"kube-proxy","_PID":"1234","MESSAGE":"x"}"#,
        )
        .unwrap();
        assert_eq!((e.unit.as_str(), e.pid), ("kubelet.service", 1234));
        let e = parse_entry(br#"{"_SYSTEMD_UNIT":"docker.service","CONTAINER_NAME":"k8s_kube-proxy_kube-proxy-7x9kq_kube-system_0b3c_0","MESSAGE":"x"}"#).unwrap();
        assert_eq!(e.unit, "docker/kube-proxy");
        let e = parse_entry(br#"{"_SYSTEMD_UNIT":"docker.service","CONTAINER_NAME":"web","MESSAGE":"x"}"#).unwrap();
        assert_eq!(e.unit, "docker.service", "not a Kubernetes container");
        let e =
            parse_entry(br#"{"_SYSTEMD_UNIT":"sshd.service","CONTAINER_NAME":"k8s_kube-proxy_x_y_z_0","MESSAGE":"x"}"#)
                .unwrap();
        assert_eq!(e.unit, "sshd.service", "CONTAINER_NAME counts only under docker.service");
        let e = parse_entry(br#"{"_TRANSPORT":"kernel","_PID":"x","MESSAGE":"nfs"}"#).unwrap();
        assert_eq!((e.unit.as_str(), e.pid), ("kernel", 0));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_entry(b"not json").is_err());
        assert!(parse_entry(br#"{"MESSAGE": {"a": 1}}"#).is_err());
    }
}
