//! routewarden: entry point. Parses the command line, runs the pipeline sources -> snapshot -> rules -> outputs.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use routewarden::cli::{Cli, Command, ConfigAction, Output};
use routewarden::config::Config;
use routewarden::settings::Settings;
use routewarden::{daemon, journal, outputs, report, rules, sources, wait};

/// Exit code for usage and configuration errors (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// The largest snapshot file `check --snapshot` reads (a 50k-Service node's snapshot is a few MB).
const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("routewarden: configuration error: {}", e.chain());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(cli.command, &settings, &cli.config) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The chain as every other error is shown (anyhow's `{:#}` would repeat a cause a message still prints).
            eprintln!("routewarden: {}", routewarden::model::error_chain(e.as_ref()));
            ExitCode::from(e.downcast_ref::<UsageError>().map_or(3, |_| EXIT_USAGE))
        }
    }
}

/// An error in what the user asked for (a bad snapshot file), as opposed to a failure to inspect.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn run(command: Command, settings: &Settings, config_path: &Option<std::path::PathBuf>) -> anyhow::Result<u8> {
    match command {
        Command::Check { output, snapshot } => {
            let snap = match snapshot {
                Some(path) => {
                    // Parsed as it is read (no copy of the whole text in memory), at most MAX_SNAPSHOT_BYTES.
                    let file = routewarden::sys::host::open_regular(&path, MAX_SNAPSHOT_BYTES)
                        .map_err(|e| {
                            let why = routewarden::model::error_chain(&e);
                            UsageError(format!("reading snapshot {}: {why}", path.display()))
                        })?
                        .ok_or_else(|| UsageError(format!("snapshot {} is empty", path.display())))?;
                    let snap: routewarden::model::Snapshot = serde_json::from_reader(std::io::BufReader::new(file))
                        .map_err(|e| {
                            UsageError(format!("snapshot {} is not a routewarden snapshot: {e}", path.display()))
                        })?;
                    // Older snapshots read with what they lack as unknown (e.g. version 1 has no routes source).
                    if !(1..=routewarden::model::SCHEMA_VERSION).contains(&snap.schema_version) {
                        return Err(UsageError(format!(
                            "snapshot {} has schema_version {}; this routewarden reads versions 1 to {}",
                            path.display(),
                            snap.schema_version,
                            routewarden::model::SCHEMA_VERSION
                        ))
                        .into());
                    }
                    snap
                }
                None => sources::collect(&settings.config),
            };
            let report =
                rules::analyse(&snap, routewarden::model::Timestamp::from_unix(routewarden::sys::now_unix_secs()));
            let text = match output {
                Output::Text => outputs::text::render(&report),
                Output::Json => outputs::json(&report) + "\n",
            };
            write_stdout(&text)?;
            Ok(u8::try_from(report.exit_code()).unwrap_or(3))
        }
        Command::Status { socket, url, output, timeout } => {
            use routewarden::status::{self, Choice, Target};
            let choice = match (socket, url) {
                (Some(path), _) => Choice::Socket(path),
                (None, Some(url)) => Choice::Url(Target::from_url(&url).map_err(|e| UsageError(e.to_string()))?),
                (None, None) => Choice::Default {
                    socket: settings.config.daemon.unix_socket.clone().unwrap_or_else(|| status::DEFAULT_SOCKET.into()),
                    listen: settings.listen,
                },
            };
            let answer = match status::fetch(&choice, timeout) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("routewarden: {}", routewarden::model::error_chain(&e));
                    return Ok(3);
                }
            };
            let text = match output {
                Output::Json => answer.json.trim_end().to_string() + "\n",
                Output::Text => {
                    let (r, now) = (&answer.report, routewarden::sys::now_unix());
                    outputs::text::daemon_header(&answer.target.to_string(), r, now)
                        + &outputs::text::render(r)
                        + &outputs::text::daemon_state(r, now)
                }
            };
            write_stdout(&text)?;
            Ok(u8::try_from(answer.report.exit_code()).unwrap_or(3))
        }
        Command::Serve { listen } => {
            let listen = match listen.as_deref() {
                None => None,
                Some(l) => Some(routewarden::settings::parse_daemon_listen(l).ok_or_else(|| {
                    UsageError(format!("--listen {l:?} is not an address such as 127.0.0.1:9977 or localhost:9977"))
                })?),
            };
            let level = match std::env::var("ROUTEWARDEN_LOG").as_deref() {
                Ok("debug") => log::LevelFilter::Debug,
                Ok("trace") => log::LevelFilter::Trace,
                Ok("warn") => log::LevelFilter::Warn,
                _ => log::LevelFilter::Info,
            };
            routewarden::logging::init(level);
            daemon::run(daemon::Options { config_path: config_path.clone(), listen }, settings.clone())?;
            Ok(0)
        }
        Command::Wait { requirements, timeout, poll_interval, report_interval, output } => {
            routewarden::logging::init(log::LevelFilter::Info);
            let opts = wait::WaitOptions { requirements, timeout, poll: poll_interval, report_every: report_interval };
            let result = wait::wait(&settings.config, &opts);
            let text = match output {
                Output::Text => result.text(),
                Output::Json => serde_json::to_string_pretty(&result).context("serialising the result")? + "\n",
            };
            write_stdout(&text)?;
            Ok(result.exit_code())
        }
        Command::Snapshot { full } => {
            let mut snap = sources::collect(&settings.config);
            if full {
                snap.raw = sources::raw_dumps(&settings.config, &snap);
            }
            let text = serde_json::to_string(&snap).context("serialising the snapshot")?;
            write_stdout(&(text + "\n"))?;
            Ok(0)
        }
        Command::Untaint => {
            let k = &settings.kubernetes;
            match routewarden::kubernetes::untaint(k)? {
                routewarden::kubernetes::Untainted::Removed { node } => {
                    write_stdout(&format!("removed taint {}:NoSchedule from Node {node}\n", k.taint_key))?
                }
                routewarden::kubernetes::Untainted::NotThere { node } => {
                    write_stdout(&format!("Node {node} has no taint {}:NoSchedule\n", k.taint_key))?
                }
            }
            Ok(0)
        }
        Command::GenerateAssets { dir } => {
            generate_assets(&dir).with_context(|| format!("writing assets to {}", dir.display()))?;
            Ok(0)
        }
        Command::Config { action: ConfigAction::Defaults } => {
            write_stdout(&Config::defaults_toml())?;
            Ok(0)
        }
        Command::ScanJournal { file, directory, stdin, output, api_server } => {
            let input = match (file, directory, stdin) {
                (Some(f), _, _) => journal::reader::Input::File(f),
                (_, Some(d), _) => journal::reader::Input::Directory(d),
                (_, _, Some(_)) => journal::reader::Input::Stdin,
                _ => journal::reader::Input::System,
            };
            let units = settings.journal_units();
            let (rules, unusable) = settings
                .node_journal_rules(api_server.as_deref())
                .map_err(|e| UsageError(routewarden::model::error_chain(&e)))?;
            for e in unusable {
                eprintln!("routewarden: the kubelet's API server endpoint: {}", routewarden::model::error_chain(&e));
            }
            let engine = journal::Engine::new(rules);
            let journalctl = &settings.config.journal.journalctl;
            let stall = settings.config.command_timeout();
            let scan =
                journal::reader::scan(journalctl, &input, &units, engine, stall).context("scanning the journal")?;
            let text = match output {
                Output::Json => serde_json::to_string_pretty(&scan).context("serialising the scan")? + "\n",
                Output::Text => outputs::text::scan(&scan),
            };
            write_stdout(&text)?;
            if let Some(why) =
                journal::reader::nothing_read(&scan, &input).or_else(|| journal::reader::unreadable(&scan))
            {
                eprintln!("routewarden: {why}");
                return Ok(3);
            }
            Ok(match report::verdict(&scan.findings) {
                report::Verdict::Critical => 2,
                report::Verdict::Warning => 1,
                report::Verdict::Ok => 0,
            })
        }
        Command::Config { action: ConfigAction::Show } => {
            write_stdout(&settings.config.effective_toml(settings.path.as_deref()))?;
            Ok(0)
        }
        Command::Config { action: ConfigAction::Validate } => {
            // Loading validated the file and every part (main exits 64 on error); the rule files are checked here.
            settings.journal_rules.as_ref().map_err(|e| UsageError(routewarden::model::error_chain(e)))?;
            write_stdout("configuration is valid\n")?;
            Ok(0)
        }
    }
}

/// The man pages (routewarden.8 standing alone, one page per visible subcommand, which it refers to, and
/// routewarden-findings.7) and bash,
/// zsh and fish completions without hidden commands, from the clap definition.
fn generate_assets(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let page = |cmd: &clap::Command| clap_mangen::Man::new(cmd.clone()).section("8");
    let main = page(&cmd);
    let mut man = Vec::new();
    main.render_title(&mut man)?;
    main.render_name_section(&mut man)?;
    main.render_synopsis_section(&mut man)?;
    main.render_description_section(&mut man)?;
    main.render_options_section(&mut man)?;
    main.render_subcommands_section(&mut man)?;
    man.extend_from_slice(routewarden::cli::MAN_SECTIONS.as_bytes());
    main.render_version_section(&mut man)?;
    std::fs::write(dir.join("routewarden.8"), man)?;
    // Each subcommand's page: clap's sections, then its exit status, examples and see-also from cli.rs.
    fn subpages(cmd: &clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let man = clap_mangen::Man::new(sub.clone()).section("8");
            let name = sub.get_display_name().unwrap_or(sub.get_name()).to_string();
            match routewarden::cli::subcommand_man_sections(&name) {
                Some(extra) => {
                    let mut page = Vec::new();
                    man.render_title(&mut page)?;
                    man.render_name_section(&mut page)?;
                    man.render_synopsis_section(&mut page)?;
                    man.render_description_section(&mut page)?;
                    man.render_options_section(&mut page)?;
                    if sub.has_subcommands() {
                        man.render_subcommands_section(&mut page)?;
                    }
                    page.extend_from_slice(extra.as_bytes());
                    std::fs::write(dir.join(format!("{name}.8")), page)?;
                }
                None => man.generate_to(dir).map(|_| ())?,
            }
            subpages(sub, dir)?;
        }
        Ok(())
    }
    subpages(&cmd, dir)?;
    // routewarden-findings(7), from the findings catalogue and the default journal rules.
    let entries = routewarden::outputs::reference::entries()?;
    std::fs::write(dir.join("routewarden-findings.7"), routewarden::outputs::reference::findings_man_page(&entries))?;
    // Completions from a copy without the hidden subcommands (clap_complete would offer them).
    let unbuilt = Cli::command();
    let mut shown = clap::Command::new("routewarden")
        .version(env!("CARGO_PKG_VERSION"))
        .args(unbuilt.get_arguments().cloned().collect::<Vec<_>>())
        .subcommands(unbuilt.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect::<Vec<_>>())
        .disable_help_subcommand(true);
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        clap_complete::generate_to(shell, &mut shown, "routewarden", dir)?;
    }
    Ok(())
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // A closed pipe (`| head`) is not an error worth reporting.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to standard output"),
    }
}
