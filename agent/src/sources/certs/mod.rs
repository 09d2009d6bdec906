//! Certificates: kubelet PKI, kubeconfigs with embedded client certificates, the control-plane PKI, and
//! configured paths (globs, under the host root). A corrupt or unreadable file is a per-file error, never a failed
//! source; private keys are skipped and key material is never kept.

pub mod parse;

use crate::config::Config;
use crate::model::certs::CertState;

#[derive(Debug, thiserror::Error)]
#[error("invalid certificate path pattern {pattern:?}: {source}")]
pub struct CertsError {
    pattern: String,
    source: glob::PatternError,
}

pub fn fetch(config: &Config) -> Result<CertState, CertsError> {
    let mut state = CertState {
        warning_days: config.certificates.warning_days,
        critical_days: config.certificates.critical_days,
        ..CertState::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for pattern in &config.certificates.paths {
        let full = config.host_path(std::path::Path::new(pattern));
        let full = full.to_string_lossy();
        let paths = glob::glob(&full).map_err(|source| CertsError { pattern: pattern.clone(), source })?;
        for entry in paths {
            let path = match entry {
                Ok(p) => p,
                Err(e) => {
                    state.errors.push((e.path().to_path_buf(), e.error().to_string()));
                    continue;
                }
            };
            if !path.is_file() || !seen.insert(path.clone()) {
                continue;
            }
            match std::fs::read(&path) {
                Ok(data) => {
                    let (certs, errors) = parse::certificates(&data, &path);
                    state.certificates.extend(certs);
                    state.errors.extend(errors.into_iter().map(|e| (path.clone(), e)));
                }
                Err(e) => state.errors.push((path.clone(), e.to_string())),
            }
        }
    }
    Ok(state)
}
