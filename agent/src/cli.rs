//! Command-line interface: the clap definitions, with help that teaches.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "routewarden",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (revision ",
        env!("ROUTEWARDEN_REVISION"),
        ", ",
        env!("ROUTEWARDEN_COMMIT_DATE"),
        ")"
    ),
    about = "Tells who programs Kubernetes Service routing on this node: kube-proxy, Cilium, both, or nobody",
    long_about = "routewarden reads iptables (legacy and nft backends), nftables, links, IPVS, eBPF programs and \
maps, and processes, and decides who programs Service routing on this node. It never changes anything.\n\n\
Run it as root (it needs CAP_NET_ADMIN and CAP_SYS_ADMIN to read rules and BPF objects).",
    after_help = "Examples:\n  routewarden check\n  routewarden check --output json | jq .findings\n  \
routewarden snapshot > node.json && routewarden check --snapshot node.json\n  sudo routewarden status   # what the running daemon sees\n  \
routewarden config defaults"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: /etc/routewarden/config.toml when it exists, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect this node (or a saved snapshot) and report who programs Service routing.
    #[command(after_help = "Exit codes: 0 healthy, 1 warnings, 2 critical findings, 3 could not inspect (a source \
failed), 64 usage or configuration error.\n\nExamples:\n  sudo routewarden check\n  sudo routewarden check --output json\n  \
routewarden check --snapshot node.json   # analyse a snapshot taken on another node")]
    Check {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Analyse this snapshot file (from `routewarden snapshot`) instead of the live node.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
    },
    /// Show what the running daemon sees (its last report, journal, churn, exporter), asking it over its socket.
    #[command(
        long_about = "Asks the running `routewarden serve` for its last report (GET /status) and prints it like \
`check`, with what only the daemon knows: its collections and their age, kube-proxy rule churn, the journal \
follower's counters and the Kubernetes exporter's state. Nothing is collected again.\n\n\
It asks --socket, or --url, or by default daemon.unix_socket (else /run/routewarden/routewarden.sock, the packaged \
units' socket: root only), and daemon.listen only when that socket does not exist. The first line says \
which it asked.",
        after_help = "Exit codes: 0 healthy, 1 warnings, 2 critical findings, 3 could not inspect (a source of the \
daemon failed, or no daemon answered, or its answer was not a report), 64 usage or configuration error.\n\n\
Examples:\n  sudo routewarden status\n  sudo routewarden status --output json | jq .daemon\n  \
routewarden status --url http://127.0.0.1:9977"
    )]
    Status {
        /// Ask the daemon on this unix socket.
        #[arg(long, value_name = "PATH", conflicts_with = "url")]
        socket: Option<PathBuf>,
        /// Ask the daemon at this loopback address (http://HOST:PORT) instead of its socket.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Output format: text, or the daemon's JSON report as it sent it.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Give up when the daemon has not answered within this long (connect, request and answer).
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = interval)]
        timeout: std::time::Duration,
    },
    /// Print the raw inputs of one collection as JSON, for support tickets and `check --snapshot`.
    #[command(
        after_help = "Exit codes: 0 written (a failed source is recorded inside), 3 could not be written, 64 usage \
or configuration error.\n\nExamples:\n  sudo routewarden snapshot > $(hostname)-routewarden.json\n  \
sudo routewarden snapshot --full | gzip > $(hostname)-routewarden.json.gz   # with the rule dumps"
    )]
    Snapshot {
        /// Also include the full iptables-save dumps of every backend and kube-proxy's nftables tables (large on
        /// big nodes: 24 MB at 10,000 Services).
        #[arg(long)]
        full: bool,
    },
    /// Run as a daemon: keep the report fresh and serve it over local HTTP (JSON and Prometheus metrics).
    #[command(
        after_help = "Endpoints: /status (?pretty), /findings, /healthz, /readyz, /readyz?gate=1 (the node gate now: 200 met, 503 \
unmet or unknown), /metrics.\n\
Signals: SIGHUP reloads the configuration (a broken one is refused and the running one kept), SIGTERM stops.\n\
Under systemd (Type=notify) it sends READY=1 after the first collection in which the [gate] requirements hold \
(while they do not, it serves HTTP and sends EXTEND_TIMEOUT_USEC, so the start never times out), STATUS= and \
WATCHDOG=1.\n\
With [kubernetes] enabled = true it also sets the Node conditions ServiceRoutingConflict, ServiceRoutingMissing, \
StaleServiceRules and CNIAPIServerDeadlock (True while a warning or critical finding behind them stands, False when \
it clears) and posts Events on each transition, from its own task with backoff: the local endpoints, the gate and \
READY never wait for the API server. Its state is the report's source \"kubernetes\". With taint = true the Node \
carries taint_key:NoSchedule while the node gate ([gate] requirements, else no-conflict and service-proxy) is unmet \
(see `routewarden untaint`).\n\n\
Exit codes: 0 stopped by SIGTERM or SIGINT, 3 could not start (e.g. the address is taken), 64 usage or \
configuration error.\n\n\
Examples:\n  routewarden serve\n  routewarden serve --listen 127.0.0.1:9977\n  curl -s localhost:9977/status?pretty"
    )]
    Serve {
        /// Address to listen on, overriding daemon.listen in the configuration.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Block until required Service routing state exists (for init containers, ExecStartPre= and ordering).
    #[command(
        after_help = "Requirements (all must hold):\n  chain:TABLE/CHAIN      an iptables chain, in either backend (e.g. chain:filter/KUBE-FORWARD)\n  \
nft-table:FAMILY/NAME  an nftables table (e.g. nft-table:ip/kube-proxy)\n  kube-proxy             kube-proxy's Service rules are programmed\n  \
cilium-lb              Cilium load-balances Services (socket-LB or a populated service map)\n  \
no-conflict            no two proxies (kube-proxy iptables/nftables/IPVS, Cilium, Calico eBPF, kube-router,\n                         Antrea proxyAll, OVN-Kubernetes, LoxiLB) both program Services\n  \
service-proxy          some Service proxy programs Services and its agent runs\n  link:NAME              a network link (e.g. link:cilium_host)\n  \
bpf-prog:NAME          a loaded BPF program (e.g. bpf-prog:cil_sock4_connect)\n\n\
Exit codes: 0 satisfied, 1 timed out (printing what was missing), 3 cannot inspect, 64 usage error.\n\n\
Do not order the kubelet after `wait --for kube-proxy` (an ExecStartPre= of kubelet.service, or a unit\n\
kubelet.service is After=): the kubelet starts kube-proxy, so the kubelet would wait for ever; run from such\n\
a unit, wait says so on stderr (DEADLOCK: ...).\n\n\
Examples:\n  routewarden wait --for chain:filter/KUBE-FORWARD --timeout 5m\n  routewarden wait --for kube-proxy --for no-conflict"
    )]
    Wait {
        /// A requirement; repeat for several.
        #[arg(long = "for", value_name = "REQUIREMENT", required = true, value_parser = parse_requirement)]
        requirements: Vec<crate::rules::gate::Requirement>,
        /// Give up after this long (e.g. 30s, 5m). Default: wait forever.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// How often to re-read what has no change events (iptables-legacy, BPF).
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = interval)]
        poll_interval: std::time::Duration,
        /// How often to say what is still missing.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = interval)]
        report_interval: std::time::Duration,
        /// Output format of the final result.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Run the journal rules over a saved journal (or `journalctl -o json` on stdin) and print matches and findings.
    #[command(
        after_help = "Examples:\n  routewarden scan-journal --directory /var/log/journal   # a journal copied off a broken node\n  \
routewarden scan-journal --file system.journal --output json\n  journalctl -u kubelet -o json | routewarden scan-journal -\n\n\
Without --file, --directory or -, the system journal is read. Exit codes: 0 no findings, 1 warnings, 2 critical,\n\
3 the journal could not be read, 64 usage error."
    )]
    ScanJournal {
        /// A journal file.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["directory", "stdin"])]
        file: Option<PathBuf>,
        /// A journal directory.
        #[arg(long, value_name = "DIR", conflicts_with = "stdin")]
        directory: Option<PathBuf>,
        /// Read `journalctl -o json` lines from standard input (write `-`).
        #[arg(value_name = "-", value_parser = clap::builder::PossibleValuesParser::new(["-"]))]
        stdin: Option<String>,
        /// The API server the node's kubelet used (its kubeconfig's `server:`), for a journal from another node.
        /// Default: `journal.api_server`, else the kubelet's kubeconfig on this machine, else the known ports.
        #[arg(long, value_name = "URL")]
        api_server: Option<String>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Remove routewarden's NoSchedule taint from this node's Node object now (after stopping or removing it).
    #[command(after_help = "With [kubernetes] taint = true the daemon keeps the taint `taint_key:NoSchedule` \
(default routewarden.io/service-routing-not-ready) on the Node while Service routing is not programmed. A daemon \
that is stopped or removed leaves the taint as it last was; this removes it, using the [kubernetes] kubeconfig \
and node name, and touches no other taint (kubectl taint node NODE KEY:NoSchedule- does the same from anywhere).\n\n\
Exit codes: 0 removed or not there, 3 the API server could not be reached or refused, 64 usage or configuration \
error.\n\nExamples:\n  sudo systemctl stop routewarden && sudo routewarden untaint")]
    Untaint,
    /// Write the man page and shell completions into DIR (used to build packages).
    #[command(hide = true)]
    GenerateAssets {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Show or validate the configuration.
    #[command(
        after_help = "Exit codes: 0 printed or valid, 64 invalid (naming the file, the line of the key and the \
reason).\n\nExamples:\n  routewarden config defaults\n  routewarden --config /etc/routewarden/config.toml config validate"
    )]
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the default configuration, every key with a one-line comment (the shipped config.toml).
    Defaults,
    /// Check the configuration file and exit 0 if it is valid, 64 with the reason if not.
    #[command(
        after_help = "Exit codes: 0 valid, 64 invalid (naming the file, the line of the key and the reason).\n\n\
Example:\n  routewarden --config /etc/routewarden/config.toml config validate"
    )]
    Validate,
    /// Print the effective configuration: the file's values over the defaults (a key named like a secret is redacted).
    #[command(after_help = "Example:\n  routewarden --config /etc/routewarden/config.toml config show")]
    Show,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

fn parse_requirement(s: &str) -> Result<crate::rules::gate::Requirement, crate::rules::gate::RequirementError> {
    s.parse()
}

/// The routewarden(8) sections clap does not generate, in roff: exit status, signals, files, environment and
/// examples, so that the page stands alone.
pub const MAN_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
healthy (\fBcheck\fR), no findings (\fBscan\-journal\fR), satisfied (\fBwait\fR), or success
.TP
\fB1\fR
warnings; for \fBwait\fR: timed out, printing what was missing
.TP
\fB2\fR
critical findings (for example \fBservice\-routing.conflict\fR)
.TP
\fB3\fR
could not inspect: a source failed, the journal could not be read, or no daemon answered \fBstatus\fR
.TP
\fB64\fR
usage or configuration error (the message names the file, key or argument)
.SH SIGNALS
.TP
\fBSIGHUP\fR
\fBserve\fR reloads the configuration and the journal rules; a broken configuration is refused and the running
one kept (\fBsystemctl reload routewarden\fR validates first and fails visibly).
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
\fBserve\fR saves the journal cursor, tells systemd STOPPING=1, removes a unix socket it bound itself (never one
passed by \fBroutewarden.socket\fR) and exits 0.
.SH FILES
.TP
\fI/etc/routewarden/config.toml\fR
the configuration (\fBroutewarden config defaults\fR prints every key with its default)
.TP
\fI/etc/routewarden/rules.d/*.toml\fR
additional or replacing journal rules
.TP
\fI/var/lib/routewarden/\fR
state: the journal cursor (\fB$STATE_DIRECTORY\fR under systemd)
.TP
\fI/run/routewarden/routewarden.sock\fR
the unix socket for local tools (root only), held from boot by \fBroutewarden.socket\fR; where
\fBroutewarden status\fR asks first
.TP
\fI/lib/systemd/system/routewarden.service\fR, \fIroutewarden.socket\fR, \fIroutewarden\-wait@.service\fR
the daemon (Type=notify, watchdog), its listeners held by systemd from boot (127.0.0.1:9977 and the unix socket,
passed as LISTEN_FDS; kept across restarts) and the one\-shot gate per requirement
.TP
\fI/usr/share/routewarden/prometheus/\fR
alerting rules for Prometheus
.SH ENVIRONMENT
.TP
\fBROUTEWARDEN_LOG\fR
log level of \fBserve\fR: warn, info (default), debug or trace
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
set by systemd: READY=1 once the [gate] requirements hold (EXTEND_TIMEOUT_USEC while they do not, so the
start never times out), STATUS=, WATCHDOG=1
.TP
\fBSTATE_DIRECTORY\fR
set by systemd's StateDirectory=; overrides \fBdaemon.state_dir\fR
.TP
\fBLISTEN_PID\fR, \fBLISTEN_FDS\fR, \fBLISTEN_FDNAMES\fR
set by systemd's socket activation: \fBserve\fR serves the passed sockets instead of binding (see sd_listen_fds(3))
.SH EXAMPLES
.nf
sudo routewarden check
sudo routewarden check \-\-output json | jq .findings
sudo routewarden snapshot > node.json; routewarden check \-\-snapshot node.json
sudo routewarden status
curl \-s localhost:9977/status?pretty
routewarden wait \-\-for chain:filter/KUBE\-FORWARD \-\-timeout 5m
routewarden scan\-journal \-\-directory /var/log/journal
.fi
.SH "SEE ALSO"
\fBroutewarden\-check\fR(8), \fBroutewarden\-status\fR(8), \fBroutewarden\-snapshot\fR(8), \fBroutewarden\-serve\fR(8), \fBroutewarden\-wait\fR(8),
\fBroutewarden\-scan\-journal\fR(8), \fBroutewarden\-untaint\fR(8), \fBroutewarden\-config\fR(8), \fBsystemd.service\fR(5),
\fBjournalctl\fR(1)
"#;
/// A pause between two looks: a duration of at least 10 ms (0 would spin a core).
fn interval(text: &str) -> Result<std::time::Duration, IntervalError> {
    let d = humantime::parse_duration(text)?;
    if d < std::time::Duration::from_millis(10) {
        return Err(IntervalError::TooShort(text.to_string()));
    }
    Ok(d)
}

/// Why a `--poll-interval`/`--report-interval` is refused. clap prints only this error's own text (no cause), so
/// humantime's is kept whole.
#[derive(Debug, thiserror::Error)]
pub enum IntervalError {
    #[error(transparent)]
    Duration(#[from] humantime::DurationError),
    #[error("{0:?} is shorter than the 10ms minimum")]
    TooShort(String),
}

/// The sections of each subcommand's page (`routewarden-NAME(8)`, by its full name) that clap does not generate,
/// in roff: exit status, examples and where to read more. clap's own "EXTRA" section (the short help's epilogue)
/// is left out of those pages: these say it in full.
pub fn subcommand_man_sections(name: &str) -> Option<&'static str> {
    Some(match name {
        "routewarden-check" => SEE_FINDINGS_CHECK,
        "routewarden-status" => STATUS_MAN,
        "routewarden-snapshot" => SNAPSHOT_MAN,
        "routewarden-serve" => SERVE_MAN,
        "routewarden-wait" => WAIT_MAN,
        "routewarden-scan-journal" => SCAN_JOURNAL_MAN,
        "routewarden-untaint" => UNTAINT_MAN,
        "routewarden-config" | "routewarden-config-defaults" | "routewarden-config-validate" => CONFIG_MAN,
        _ => return None,
    })
}

const SEE_FINDINGS_CHECK: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
healthy: no warning or critical finding, every source read
.TP
\fB1\fR
warnings (for example \fBkube\-proxy.stale\-rules\fR or a conflict rated warning)
.TP
\fB2\fR
critical findings (for example \fBservice\-routing.conflict\fR); wins over 3
.TP
\fB3\fR
could not inspect: a source failed, so what depends on it is unknown
.TP
\fB64\fR
usage or configuration error, or a snapshot file that is not one
.SH OUTPUT
The text view names each Service proxy found (mode, backend, Services, process) and then each finding: severity,
id, summary, evidence lines and a remedy. \fB\-\-output json\fR prints the report (schema version 2): \fBverdict\fR,
\fBfindings[]\fR, \fBdataplane\fR, \fBsources\fR.
.SH EXAMPLES
.nf
sudo routewarden check
sudo routewarden check \-\-output json | jq \-r '.findings[] | "\e(.severity) \e(.id)"'
routewarden check \-\-snapshot node\-7.json     # a snapshot taken on another node
.fi
.SH "SEE ALSO"
\fBroutewarden\-findings\fR(7), \fBroutewarden\-snapshot\fR(8), \fBroutewarden\fR(8)
"#;

const STATUS_MAN: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
the daemon's report is healthy
.TP
\fB1\fR
warnings in the daemon's report
.TP
\fB2\fR
critical findings in the daemon's report; wins over 3
.TP
\fB3\fR
could not inspect: a source of the daemon failed, or no daemon answered (the message names the socket or address
asked and why: no such socket, connection refused, permission denied, no answer within \fB\-\-timeout\fR), or it
answered with an error (503 before its first collection) or with something that is not a routewarden report
.TP
\fB64\fR
usage or configuration error (\fB\-\-url\fR that is not http://HOST:PORT)
.SH OUTPUT
The first line names the socket or address asked and the age of the daemon's last collection; then the report as
\fBcheck\fR prints it; then a \fBdaemon:\fR section: collections and kube\-proxy rule churn since the start, the
journal follower's entries, lag and matches per rule, the Kubernetes exporter's state. \fB\-\-output json\fR prints
the daemon's report as it sent it (the \fB/status\fR JSON, with its \fBdaemon\fR and \fBnode_gate\fR parts).
.SH EXAMPLES
.nf
sudo routewarden status
sudo routewarden status \-\-output json | jq .daemon.journal
routewarden status \-\-socket /run/routewarden/routewarden.sock \-\-timeout 2s
routewarden status \-\-url http://127.0.0.1:9977    # the loopback listener
.fi
.SH "SEE ALSO"
\fBroutewarden\-serve\fR(8), \fBroutewarden\-check\fR(8), \fBroutewarden\-findings\fR(7)
"#;

const UNTAINT_MAN: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
the taint was removed, or the Node did not carry it
.TP
\fB3\fR
the API server could not be reached, or refused (a kubelet identity may not change taints: NodeRestriction)
.TP
\fB64\fR
usage or configuration error
.SH EXAMPLES
.nf
sudo systemctl stop routewarden && sudo routewarden untaint
kubectl taint node NODE routewarden.io/service\-routing\-not\-ready:NoSchedule\-   # the same, from anywhere
.fi
.SH "SEE ALSO"
\fBroutewarden\-serve\fR(8), \fBroutewarden\fR(8)
"#;

const SNAPSHOT_MAN: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
the snapshot was written (a source that failed is recorded as failed inside it)
.TP
\fB3\fR
it could not be written
.TP
\fB64\fR
usage or configuration error
.SH EXAMPLES
.nf
sudo routewarden snapshot > $(hostname)\-routewarden.json
sudo routewarden snapshot \-\-full | gzip > $(hostname)\-routewarden.json.gz
routewarden check \-\-snapshot node\-7.json     # the same report, anywhere
.fi
.SH "SEE ALSO"
\fBroutewarden\-check\fR(8)
"#;

const SERVE_MAN: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
stopped by SIGTERM or SIGINT
.TP
\fB3\fR
it could not start (the listen address is taken, the unix socket path is another kind of file)
.TP
\fB64\fR
usage or configuration error (\fB\-\-listen nonsense\fR, a broken configuration file)
.SH ENDPOINTS
.TP
\fBGET /status\fR
the JSON report, as \fBcheck \-\-output json\fR (\fB?pretty\fR indents it)
.TP
\fBGET /findings\fR
the findings array
.TP
\fBGET /healthz\fR, \fBGET /readyz\fR
200 while the loop makes progress; 200 once the [gate] requirements held
.TP
\fBGET /metrics\fR
Prometheus text 0.0.4, or OpenMetrics when asked for
.SH EXAMPLES
.nf
systemctl enable \-\-now routewarden
curl \-s localhost:9977/status?pretty
curl \-s localhost:9977/metrics | grep '^routewarden_findings'
routewarden serve \-\-listen 127.0.0.1:9978     # a second instance, by hand
.fi
.SH "SEE ALSO"
\fBroutewarden\-status\fR(8) (what the daemon sees, as text), \fBroutewarden\-wait\fR(8), \fBroutewarden\-findings\fR(7),
\fBroutewarden\fR(8)
"#;

const WAIT_MAN: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
every requirement holds
.TP
\fB1\fR
timed out; what was still missing is printed
.TP
\fB3\fR
cannot inspect (a source the requirements need failed)
.TP
\fB64\fR
usage error (a requirement that does not parse: the message lists the valid forms)
.SH EXAMPLES
.nf
routewarden wait \-\-for chain:filter/KUBE\-FORWARD \-\-timeout 10m
routewarden wait \-\-for kube\-proxy \-\-for no\-conflict \-\-timeout 5m
# in a unit:
ExecStartPre=/usr/bin/routewarden wait \-\-for cilium\-lb \-\-timeout 5min
# or through the template unit:
systemctl start 'routewarden\-wait@chain:filter\-KUBE\ex2dFORWARD.service'
.fi
.SH "SEE ALSO"
\fBroutewarden\-serve\fR(8) (the [gate] and READY=1), \fBroutewarden\fR(8)
"#;

const SCAN_JOURNAL_MAN: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
no findings active at the end of the journal
.TP
\fB1\fR
warnings
.TP
\fB2\fR
critical findings
.TP
\fB3\fR
the journal could not be read (journalctl failed, or printed nothing within command_timeout_secs)
.TP
\fB64\fR
usage or configuration error (a broken file in rules.d names the file and the reason)
.SH EXAMPLES
.nf
routewarden scan\-journal \-\-directory /mnt/broken\-node/var/log/journal
routewarden scan\-journal \-\-file system.journal \-\-output json | jq '.episodes[]'
journalctl \-u kubelet \-o json \-\-since \-1h | routewarden scan\-journal \-
.fi
.SH "SEE ALSO"
\fBroutewarden\-findings\fR(7), \fBroutewarden\fR(8)
"#;

const CONFIG_MAN: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
printed (\fBdefaults\fR), or the configuration and every rules.d file are valid (\fBvalidate\fR)
.TP
\fB64\fR
invalid: the message names the file, the line of the key and the reason
.SH EXAMPLES
.nf
routewarden config defaults > /etc/routewarden/config.toml
routewarden \-\-config /etc/routewarden/config.toml config validate
.fi
.SH "SEE ALSO"
\fBroutewarden\fR(8)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_says_why_it_is_refused() {
        assert_eq!(interval("250ms").unwrap(), std::time::Duration::from_millis(250));
        assert_eq!(interval("1ms").unwrap_err().to_string(), "\"1ms\" is shorter than the 10ms minimum");
        // clap prints the error's own text: humantime's, whole.
        assert_eq!(interval("5").unwrap_err().to_string(), humantime::parse_duration("5").unwrap_err().to_string());
        assert_eq!(
            crate::model::strict_chain(&interval("5").unwrap_err()),
            "time unit needed, for example 5sec or 5ms"
        );
    }
}
