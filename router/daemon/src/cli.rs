//! The `meshpay` command line: the daemon (`run`) and the tools that talk to
//! it or inspect things offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::control::Client;
use crate::identity::{Identity, encode_hex};
use crate::state_dir::{CONFIG_FILE, KEY_FILE, StateDir};
use crate::wallet::{self, Wallet};
use crate::{builtins, runtime};

/// meshpay: a plugin-based mesh router that carries payment bundles
/// store-carry-forward across 802.11s and other links.
#[derive(Debug, Parser)]
#[command(name = "meshpay", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Where the node keeps its key, its database and its control socket.
    /// Default: $XDG_STATE_HOME/meshpay, or /var/lib/meshpay as root.
    #[arg(long, global = true, env = "MESHPAY_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router in the foreground until SIGINT or SIGTERM.
    ///
    /// The configuration is FILE if given, else <state-dir>/meshpay.toml if it
    /// exists, else the embedded defaults (a single node with the default
    /// plugins, no radio; see `meshpay config default`).
    Run {
        /// TOML configuration file.
        #[arg(long, env = "MESHPAY_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show the running node's status: identity, uptime, plugins, neighbours.
    Status {
        /// Print the raw JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Show this node's identity (public key as hex and as a did:key).
    Id {
        /// Create the node key if there is none yet (to list a new node in a
        /// committee file before its first start).
        #[arg(long)]
        create: bool,
        #[arg(long)]
        json: bool,
    },
    /// Send a file (or standard input) as a bundle to ENDPOINT.
    ///
    /// The bundle is stored on this node first and travels store-carry-forward:
    /// it reaches ENDPOINT whenever a path appears, even much later. Prints
    /// the bundle id.
    Send {
        /// Destination endpoint, e.g. dtn://<node id>/chat.
        #[arg(long = "to", value_name = "ENDPOINT")]
        to: String,
        /// Service under this node's endpoint the bundle comes from.
        #[arg(long, default_value = "app")]
        service: String,
        /// Lifetime in seconds (default: the node's [bundles] default_lifetime_s).
        #[arg(long, value_name = "SECS")]
        lifetime: Option<u64>,
        /// bulk, normal or expedited (eviction takes bulk first).
        #[arg(long, default_value = "normal")]
        priority: String,
        /// File to send, or - for standard input.
        file: PathBuf,
    },
    /// Receive payloads addressed to SERVICE on this node.
    ///
    /// Writes each payload to standard output (raw bytes, or one JSON line
    /// per payload with --json) and only then acknowledges it, so nothing is
    /// lost if this command dies halfway.
    Recv {
        service: String,
        /// How many payloads to receive before exiting.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Give up after this many seconds (exit status 1). Default: wait.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// One JSON object per payload (id, source, payload in base64).
        #[arg(long)]
        json: bool,
    },
    /// List the bundles this node holds.
    Bundles {
        #[arg(long)]
        json: bool,
    },
    /// The 802.11s mesh as the running node sees it.
    #[command(subcommand)]
    Mesh(MeshCommand),
    /// The wallet key: create it, show its address.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Pay AMOUNT to ADDRESS from this wallet, through the local node.
    ///
    /// Signs a transfer order here (the wallet key never leaves this
    /// process) with the account's next sequence number, submits it to the
    /// node in --state-dir, and waits until more than two thirds of the
    /// committee have signed it: prints the certificate (final; the
    /// recipient can verify it offline) or why the payment failed.
    Pay {
        /// The recipient's wallet address, `<account>@<home node>` (as
        /// `meshpay wallet address` prints it), or a bare account key.
        #[arg(long = "to", value_name = "ADDRESS")]
        to: String,
        /// Amount in the smallest unit (an integer; no decimals).
        #[arg(long, value_name = "N")]
        amount: u64,
        /// Give up waiting after this many seconds (the order stays
        /// submitted and the node keeps re-sending it).
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
        #[command(flatten)]
        wallet: WalletArg,
        #[arg(long)]
        json: bool,
    },
    /// This wallet's balance as the local node knows it (authoritative on an
    /// authority; elsewhere: genesis plus the certificates the node holds).
    Balance {
        /// Another account (64 hex digits) instead of this wallet's.
        #[arg(long, value_name = "HEX")]
        account: Option<String>,
        #[command(flatten)]
        wallet: WalletArg,
        #[arg(long)]
        json: bool,
    },
    /// Payments received by this wallet: certificates held by the local
    /// node (its home node), each verified again offline against the
    /// committee.
    Receipts {
        /// Another account (64 hex digits) instead of this wallet's.
        #[arg(long, value_name = "HEX")]
        account: Option<String>,
        /// At most this many receipts.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        wallet: WalletArg,
        #[arg(long)]
        json: bool,
    },
    /// Call a method of the node's consensus plugin with a JSON body and
    /// print its JSON reply (`status`, `audit`, `history`, `transfer_status`,
    /// ...; see the plugin's README).
    Consensus {
        method: String,
        /// The request body (JSON).
        #[arg(default_value = "{}")]
        body: String,
    },
    /// Inspect plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Peers (peer link state, signal, airtime metric) and mesh paths (next
    /// hop, metric, hop count), read through the control API.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// Where the wallet key is.
#[derive(Debug, clap::Args)]
pub struct WalletArg {
    /// The wallet key file (default: <state-dir>/wallet.key).
    #[arg(long = "wallet", env = "MESHPAY_WALLET", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create a wallet key (mode 0600; never overwrites one) and print its
    /// address.
    New {
        #[command(flatten)]
        wallet: WalletArg,
    },
    /// Print this wallet's address: `<account>@<home node>` (payments to it
    /// leave their receipt at the home node, the node in --state-dir).
    Address {
        #[command(flatten)]
        wallet: WalletArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins built into this binary.
    List,
    /// Load a plugin library, validate it as the router would, and print its
    /// descriptor (or why it cannot be loaded; exit status 1).
    Inspect {
        /// The plugin library (.so).
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded default configuration.
    Default,
    /// Check a configuration file and print what the router would do with it.
    Check { file: PathBuf },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        die_quietly_on_closed_pipe();
    }
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshpay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command whose reader went away (`meshpay bundles | head -1`) ends as
/// other Unix tools do, killed by SIGPIPE, instead of panicking in
/// `println!` (Rust ignores SIGPIPE, so a write to a closed pipe is EPIPE).
/// Not for `meshpay run`: a daemon must outlive a peer that closed a socket.
fn die_quietly_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal; no handler of
    // ours is replaced, and the CLI commands install none.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // No colour codes when stderr is a pipe (procd, syslog, test logs).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    if let Some(level) = &cli.log_level
        && !["error", "warn", "info", "debug", "trace"].contains(&level.as_str())
    {
        bail!("--log-level `{level}` is not one of error, warn, info, debug, trace");
    }
    match cli.command {
        Command::Run { config } => {
            let explicit = cli.state_dir.as_deref();
            // A config file given explicitly may name the state directory;
            // otherwise the state directory may hold the config file.
            let (config, origin) = match &config {
                Some(path) => (Config::load(Some(path))?, path.display().to_string()),
                None => {
                    let dir = StateDir::resolve(explicit)?;
                    let in_dir = dir.join(CONFIG_FILE);
                    if in_dir.exists() {
                        (Config::load(Some(&in_dir))?, in_dir.display().to_string())
                    } else {
                        (Config::default_config(), "embedded defaults".to_owned())
                    }
                }
            };
            let state_dir = StateDir::resolve(explicit.or(config.node.state_dir.as_deref()))?;
            let level =
                cli.log_level.clone().or(config.node.log_level.clone()).unwrap_or_else(|| "info".into());
            init_logging(&level);
            tracing::info!("configuration: {origin}");
            runtime::run(state_dir, config)
        }
        Command::Status { json } => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let status = Client::connect(&state_dir.control_socket())?.call("status", Value::Null)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        Command::Id { create, json } => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let key = state_dir.join(KEY_FILE);
            if create && !key.exists() {
                state_dir.ensure()?;
                Identity::load_or_create(&key)?;
            }
            if !key.exists() {
                bail!(
                    "no node identity in {} yet: it is created when the node first starts (`meshpay run`)",
                    state_dir.path().display()
                );
            }
            let id = Identity::load(&key)?;
            if json {
                let v = serde_json::json!({"id": id.hex(), "did": id.did_key(), "endpoint": id.endpoint()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("id:       {}\ndid:      {}\nendpoint: {}", id.hex(), id.did_key(), id.endpoint());
            }
            Ok(())
        }
        Command::Send { to, service, lifetime, priority, file } => {
            let payload = if file.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .context("cannot read standard input")?;
                buf
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let params = serde_json::json!({
                "destination": to,
                "service": service,
                "lifetime_s": lifetime,
                "priority": priority,
            });
            // The payload goes raw, as an attachment (no base64).
            let (r, _) =
                Client::connect(&state_dir.control_socket())?.call_with("send", params, &[&payload])?;
            println!("{}", r["ids"][0].as_str().unwrap_or(""));
            Ok(())
        }
        Command::Recv { service, count, timeout, json } => {
            recv(cli.state_dir.as_deref(), &service, count, timeout, json)
        }
        Command::Bundles { json } => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let r = Client::connect(&state_dir.control_socket())?.call("bundles", Value::Null)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            let list = r["bundles"].as_array().cloned().unwrap_or_default();
            println!(
                "{:<16} {:<24} {:<24} {:>8} {:>8} {:>10} {:>6}",
                "ID", "SOURCE", "DESTINATION", "SIZE", "AGE", "EXPIRES", "COPIES"
            );
            for b in &list {
                let short = |v: &Value| {
                    let s = v.as_str().unwrap_or("");
                    if s.len() > 24 { format!("{}…", &s[..23]) } else { s.to_owned() }
                };
                println!(
                    "{:<16} {:<24} {:<24} {:>8} {:>7.0}s {:>9.0}s {:>6}",
                    &b["id"].as_str().unwrap_or("")[..16.min(b["id"].as_str().unwrap_or("").len())],
                    short(&b["source"]),
                    short(&b["destination"]),
                    b["size"],
                    b["age_s"].as_f64().unwrap_or(0.0),
                    b["expires_in_s"].as_f64().unwrap_or(0.0),
                    b["copies"].as_u64().map(|c| c.to_string()).unwrap_or_else(|| "-".into())
                );
            }
            println!("{} bundle(s)", list.len());
            Ok(())
        }
        Command::Mesh(MeshCommand::Status { json }) => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let m = Client::connect(&state_dir.control_socket())?.call("mesh", Value::Null)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                print_mesh(&m);
            }
            Ok(())
        }
        Command::Plugins(PluginsCommand::List) => {
            for (id, entry) in builtins::BUILTINS {
                match meshpay_host::Plugin::builtin(*entry) {
                    Ok(p) => print_descriptor(&p, false),
                    Err(e) => println!("{id}: INVALID: {e}"),
                }
            }
            Ok(())
        }
        Command::Plugins(PluginsCommand::Inspect { file, json }) => {
            let plugin = meshpay_host::Plugin::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            print_descriptor(&plugin, json);
            Ok(())
        }
        Command::Wallet(cmd) => wallet_command(cli.state_dir.as_deref(), cmd),
        Command::Pay { to, amount, timeout, wallet, json } => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let w = Wallet::load(&Wallet::path(&state_dir, wallet.path.as_deref()))?;
            let mut client = Client::connect(&state_dir.control_socket())?;
            let p = wallet::pay(&mut client, &w, &to, amount, std::time::Duration::from_secs(timeout))?;
            let cert = &p.status["certificate"];
            if json {
                let v = serde_json::json!({
                    "order_hash": p.order_hash,
                    "sequence": p.sequence,
                    "elapsed_ms": p.elapsed.as_millis() as u64,
                    "certificate": cert,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let signers = cert["votes"].as_array().map_or(0, Vec::len);
                println!("certified: {amount} to {to}");
                println!("order       {} (sequence {})", p.order_hash, p.sequence);
                println!("signed by   {signers} authorities, in {:.2} s", p.elapsed.as_secs_f64());
                println!("certificate {}", cert["bytes"].as_str().unwrap_or(""));
            }
            Ok(())
        }
        Command::Balance { account, wallet, json } => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let account = account_or_wallet(&state_dir, account, &wallet)?;
            let mut client = Client::connect(&state_dir.control_socket())?;
            let b = wallet::consensus_call(&mut client, "balance", serde_json::json!({"account": account}))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                let whose = if b["authoritative"] == true { "authority ledger" } else { "this node's view" };
                println!("{} (next sequence {}; {whose})", b["balance"], b["next_sequence"]);
            }
            Ok(())
        }
        Command::Receipts { account, limit, wallet, json } => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            let account = account_or_wallet(&state_dir, account, &wallet)?;
            let mut client = Client::connect(&state_dir.control_socket())?;
            let body = serde_json::json!({"account": account, "limit": limit});
            let r = wallet::consensus_call(&mut client, "receipts", body)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let list = r["receipts"].as_array().cloned().unwrap_or_default();
                println!("{} receipts for {account}", list.len());
                for x in list {
                    let verified = if x["verified"] == true {
                        "verified".to_owned()
                    } else {
                        format!("NOT VALID: {}", x["problem"].as_str().unwrap_or("?"))
                    };
                    println!(
                        "  {:>12} from {} (sequence {}) {verified}",
                        x["amount"],
                        x["sender"].as_str().unwrap_or(""),
                        x["sequence"]
                    );
                }
            }
            Ok(())
        }
        Command::Consensus { method, body } => {
            let state_dir = StateDir::resolve(cli.state_dir.as_deref())?;
            serde_json::from_str::<serde::de::IgnoredAny>(&body).context("the body is not JSON")?;
            let mut client = Client::connect(&state_dir.control_socket())?;
            let r = client.call("consensus", serde_json::json!({"method": method, "raw": body}))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Command::Config(ConfigCommand::Default) => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
        Command::Config(ConfigCommand::Check { file }) => check_config(&file, cli.state_dir.as_deref()),
    }
}

fn descriptor_json(p: &meshpay_host::Plugin) -> Value {
    let d = p.descriptor();
    serde_json::json!({
        "id": d.id,
        "name": d.name,
        "version": d.version,
        "vendor": d.vendor,
        "description": d.description,
        "abi": d.abi.to_string(),
        "kinds": meshpay_host::kind_names(d.kinds),
        "transport_mode": d.transport_mode.map(|m| format!("{m:?}")),
        "source": p.path().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in".into()),
    })
}

fn print_descriptor(p: &meshpay_host::Plugin, json: bool) {
    let v = descriptor_json(p);
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    let d = p.descriptor();
    println!("{}", d.id);
    println!("  name:        {}", d.name);
    println!("  version:     {}", d.version);
    println!("  vendor:      {}", d.vendor);
    if !d.description.is_empty() {
        println!("  description: {}", d.description);
    }
    println!("  ABI:         {} (router: {})", d.abi, meshpay_abi::ABI_VERSION);
    println!("  kinds:       {}", meshpay_host::kind_names(d.kinds).join(", "));
    if let Some(mode) = d.transport_mode {
        println!("  transport:   {mode:?} mode");
    }
    println!("  source:      {}", v["source"].as_str().unwrap_or(""));
}

fn wallet_command(state_dir: Option<&Path>, cmd: WalletCommand) -> anyhow::Result<()> {
    let state_dir = StateDir::resolve(state_dir)?;
    match cmd {
        WalletCommand::New { wallet } => {
            if wallet.path.is_none() {
                state_dir.ensure()?;
            }
            let path = Wallet::path(&state_dir, wallet.path.as_deref());
            let w = Wallet::create(&path)?;
            eprintln!("created wallet {} (mode 0600; back it up: the key is the money)", path.display());
            match w.address(&state_dir) {
                Ok(a) => println!("{a}"),
                Err(e) => {
                    println!("{}", encode_hex(&w.account()));
                    eprintln!("(no home node yet: {e:#})");
                }
            }
        }
        WalletCommand::Address { wallet, json } => {
            let w = Wallet::load(&Wallet::path(&state_dir, wallet.path.as_deref()))?;
            let address = w.address(&state_dir)?;
            if json {
                let v = serde_json::json!({
                    "address": address,
                    "account": encode_hex(&w.account()),
                    "home": encode_hex(&wallet::node_key(&state_dir)?),
                    "file": w.file().display().to_string(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{address}");
            }
        }
    }
    Ok(())
}

/// `--account HEX` if given, else the wallet's account.
fn account_or_wallet(
    state_dir: &StateDir,
    account: Option<String>,
    wallet: &WalletArg,
) -> anyhow::Result<String> {
    match account {
        Some(a) => Ok(a),
        None => Ok(encode_hex(&Wallet::load(&Wallet::path(state_dir, wallet.path.as_deref()))?.account())),
    }
}

fn print_status(s: &Value) {
    let n = &s["node"];
    println!("node      {} ({})", n["name"].as_str().unwrap_or(""), n["id"].as_str().unwrap_or(""));
    println!("did       {}", n["did"].as_str().unwrap_or(""));
    println!("endpoint  {}", n["endpoint"].as_str().unwrap_or(""));
    println!(
        "version   {} (plugin ABI {})",
        s["version"].as_str().unwrap_or(""),
        s["abi"].as_str().unwrap_or("")
    );
    println!("uptime    {:.1} s", s["uptime_s"].as_f64().unwrap_or(0.0));
    println!("plugins");
    for p in s["plugins"].as_array().into_iter().flatten() {
        println!(
            "  {:<40} {:<10} ABI {:<5} {}",
            p["id"].as_str().unwrap_or(""),
            p["version"].as_str().unwrap_or(""),
            p["abi"].as_str().unwrap_or(""),
            p["source"].as_str().unwrap_or("")
        );
    }
    println!("transports");
    for t in s["transports"].as_array().into_iter().flatten() {
        let state = match t["reason"].as_str() {
            Some(r) => format!("{}: {r}", t["state"].as_str().unwrap_or("")),
            None => t["state"].as_str().unwrap_or("").to_owned(),
        };
        println!(
            "  {:<12} {:<40} {}  in {} out {}",
            t["name"].as_str().unwrap_or(""),
            t["plugin"].as_str().unwrap_or(""),
            state,
            t["frames_in"],
            t["frames_out"]
        );
    }
    println!("neighbours");
    for nb in s["neighbours"].as_array().into_iter().flatten() {
        println!(
            "  {} via {} {} ({:.0} s)",
            nb["node"].as_str().unwrap_or(""),
            nb["transport"].as_str().unwrap_or(""),
            nb["peer"].as_str().unwrap_or(""),
            nb["for_s"].as_f64().unwrap_or(0.0)
        );
    }
}

fn print_mesh(m: &Value) {
    let s = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    println!("mesh {} on {} ({} mode)", s(&m["mesh_id"]), s(&m["interface"]), s(&m["mode"]));
    if let Some(e) = m["error"].as_str() {
        println!("error: {e}");
    }
    println!("peers");
    println!("  {:<18} {:<8} {:>7} {:>8}", "MAC", "LINK", "SIGNAL", "METRIC");
    for st in m["stations"].as_array().into_iter().flatten() {
        println!(
            "  {:<18} {:<8} {:>7} {:>8}",
            s(&st["mac"]),
            s(&st["plink_state"]),
            st["signal_dbm"].as_i64().map(|v| format!("{v} dBm")).unwrap_or_default(),
            // u32::MAX: the kernel's "no usable link" (a blocked peer).
            st["airtime_metric"]
                .as_u64()
                .map(|v| if v == u64::from(u32::MAX) { "-".into() } else { v.to_string() })
                .unwrap_or_default()
        );
    }
    println!("paths");
    println!("  {:<18} {:<18} {:>8} {:>5}", "DESTINATION", "NEXT HOP", "METRIC", "HOPS");
    for p in m["paths"].as_array().into_iter().flatten() {
        println!(
            "  {:<18} {:<18} {:>8} {:>5}",
            s(&p["dst"]),
            s(&p["next_hop"]),
            p["metric"].as_u64().map(|v| v.to_string()).unwrap_or_default(),
            p["hop_count"].as_u64().map(|v| v.to_string()).unwrap_or_default()
        );
    }
}

/// `meshpay recv`: long-polls the node, writes each payload, then acks it.
fn recv(
    state_dir: Option<&Path>,
    service: &str,
    count: usize,
    timeout: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    let state_dir = StateDir::resolve(state_dir)?;
    let mut client = Client::connect(&state_dir.control_socket())?;
    let deadline = timeout.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
    let mut got = 0;
    let mut out = std::io::stdout().lock();
    while got < count {
        let wait_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    bail!("timed out: {got} of {count} payload(s) received for `{service}`");
                }
                left.as_millis().min(30_000) as u64
            }
            None => 30_000,
        };
        // Raw payloads come as attachments; --json prints them in base64,
        // as the node encodes them.
        let params = serde_json::json!({
            "service": service, "max": count - got, "wait_ms": wait_ms, "binary": !json,
        });
        let (r, payloads) = client.call_with("recv", params, &[])?;
        let items = r["items"].as_array().map_or(&[][..], Vec::as_slice);
        if !json && payloads.len() != items.len() {
            bail!("the node sent {} payloads for {} items", payloads.len(), items.len());
        }
        for (i, item) in items.iter().enumerate() {
            if json {
                writeln!(out, "{}", serde_json::to_string(item)?)?;
            } else {
                out.write_all(&payloads[i])?;
            }
            out.flush()?;
            let seq = item["seq"].as_u64().context("the node sent an item without seq")?;
            client.call("ack", serde_json::json!({"service": service, "seq": seq}))?;
            got += 1;
        }
    }
    Ok(())
}

/// Parses a config, creates (and destroys, never starts) every plugin
/// instance it names as the router would, and prints what the router would
/// run. Any problem, including a plugin refusing its own config, is an error.
fn check_config(file: &Path, state_dir: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(Some(file))?;
    let state_dir = StateDir::resolve(state_dir.or(config.node.state_dir.as_deref()))?;
    println!("config {}: syntax and keys OK", file.display());
    println!("state dir: {}", state_dir.path().display());
    let report = crate::config_check::check(&config, state_dir.path());
    for line in &report.lines {
        println!("{line}");
    }
    if report.problems.is_empty() {
        println!("OK");
        Ok(())
    } else {
        for p in &report.problems {
            eprintln!("error: {p}");
        }
        Err(anyhow::anyhow!("{} problem(s) in {}", report.problems.len(), file.display()))
            .context("config check failed")
    }
}
