//! Pure certificate extraction from PEM files and kubeconfigs (`client-certificate-data`,
//! `certificate-authority-data`, base64). Only certificates are decoded; keys are skipped unread.

use std::path::Path;

use base64::Engine as _;
use x509_parser::pem::Pem;

use crate::model::certs::CertInfo;

/// Every certificate in `data` (PEM bundle or kubeconfig), plus one error text per part that failed.
pub fn certificates(data: &[u8], path: &Path) -> (Vec<CertInfo>, Vec<String>) {
    let mut certs = Vec::new();
    let mut errors = Vec::new();
    if data.windows(11).any(|w| w == b"-----BEGIN ") {
        pem_certs(data, path, "pem", &mut certs, &mut errors);
    } else {
        // A kubeconfig: YAML whose certificate fields hold base64 PEM.
        let text = String::from_utf8_lossy(data);
        for line in text.lines() {
            let line = line.trim();
            for field in ["client-certificate-data:", "certificate-authority-data:"] {
                if let Some(value) = line.strip_prefix(field) {
                    let value = value.trim().trim_matches('"');
                    match base64::engine::general_purpose::STANDARD.decode(value) {
                        Ok(pem) => pem_certs(&pem, path, field.trim_end_matches(':'), &mut certs, &mut errors),
                        Err(e) => errors.push(format!("{}: not base64: {e}", field.trim_end_matches(':'))),
                    }
                }
            }
        }
    }
    (certs, errors)
}

fn pem_certs(data: &[u8], path: &Path, location: &str, certs: &mut Vec<CertInfo>, errors: &mut Vec<String>) {
    for (i, pem) in Pem::iter_from_buffer(data).enumerate() {
        let pem = match pem {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("{location} block {i}: {e}"));
                break;
            }
        };
        if pem.label != "CERTIFICATE" {
            continue; // keys and anything else are not looked at
        }
        match pem.parse_x509() {
            Ok(x) => certs.push(CertInfo {
                path: path.to_path_buf(),
                location: if location == "pem" { format!("pem #{i}") } else { location.to_string() },
                subject: x.subject().to_string(),
                issuer: x.issuer().to_string(),
                serial: x.raw_serial_as_string(),
                not_before: x.validity().not_before.timestamp(),
                not_after: x.validity().not_after.timestamp(),
            }),
            Err(e) => errors.push(format!("{location} block {i}: not an X.509 certificate: {e}")),
        }
    }
}
