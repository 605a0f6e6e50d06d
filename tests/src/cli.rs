//! `shadowctl`'s API commands run in-process against a test daemon, as the admin acting for
//! tenant `acme`.

use clap::Parser;
use shadowctl::apicli::{ApiArgs, ApiCommand, run};

use crate::daemon::TestDaemon;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    cmd: ApiCommand,
}

/// Runs `shadowctl ARGS...` against `d` and returns what it prints.
pub fn ctl(d: &TestDaemon, args: &[&str]) -> anyhow::Result<String> {
    let mut argv = vec![
        "shadowctl",
        "--api",
        &d.base,
        "--token",
        &d.admin,
        "--tenant",
        "acme",
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    run(cli.cmd, &cli.api)
}

/// [`ctl`] that must succeed.
#[track_caller]
pub fn ok(d: &TestDaemon, args: &[&str]) -> String {
    ctl(d, args).unwrap_or_else(|e| panic!("shadowctl {}: {e:#}", args.join(" ")))
}
