//! How the binaries log: human-readable lines (the default) or one JSON
//! object per line (`--log-format json`) for log collectors.
//!
//! Both go to stderr and honour `RUST_LOG`. A JSON line
//! has `ts` (RFC 3339, milliseconds, UTC), `level`, `target` and `msg`.

use std::io::Write;

/// The binaries' `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `[2026-11-28T09:00:00.000Z INFO  pi_ring::actors] message`
    #[default]
    Text,
    /// `{"ts":"2026-11-28T09:00:00.000Z","level":"INFO","target":"pi_ring::actors","msg":"message"}`
    Json,
}

/// Install the logger with `default_filter` (`RUST_LOG` syntax) unless
/// `RUST_LOG` says otherwise. Call once, first thing in `main`.
pub fn init(format: LogFormat, default_filter: &str) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter));
    match format {
        LogFormat::Text => {
            builder.format_timestamp_millis();
        }
        LogFormat::Json => {
            builder.format(|out, record| {
                let line = serde_json::json!({
                    "ts": out.timestamp_millis().to_string(),
                    "level": record.level().as_str(),
                    "target": record.target(),
                    "msg": record.args().to_string(),
                });
                writeln!(out, "{line}")
            });
        }
    }
    builder.init();
}

/// The version the binaries print: the package's and the commit it was
/// built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PI_RING_COMMIT"), ")");
