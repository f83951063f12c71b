//! `wampring-load`: parses the command line, turns it into a [`Run`], executes it and prints
//! (and with `--json`, writes) the report. Exit codes: 0 the run completed (its errors are in
//! the report), 1 bad flags or setup failed, 3 the hard deadline ended the run.

use std::process::ExitCode;

use clap::Parser;
use wampring_load::auth::ClientAuth;
use wampring_load::cli::{self, Cli, Command, CommonArgs};
use wampring_load::report::Report;
use wampring_load::scenario::{
    self, ConnectPlan, Pacing, PubsubPlan, RpcPlan, Run, Scenario, SessionListPlan,
};
use wampring_load::target::Target;
use wampring_load::{clock, compare};

fn main() -> ExitCode {
    clock::now_ns(); // fix the process clock's base before anything is timed
    let cli = Cli::parse();
    if let Err(e) = cli::validate(&cli.command) {
        eprintln!("wampring-load: {e}");
        return ExitCode::from(1);
    }
    let result = match &cli.command {
        Command::Compare(args) => compare::run(args),
        command => plan(command).and_then(run_one),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wampring-load: {e}");
            ExitCode::from(1)
        }
    }
}

/// A name no other run uses, for the echo procedure and the topic.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("p{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

fn plan(command: &Command) -> Result<(Run, Option<std::path::PathBuf>), String> {
    let (common, scenario) = match command {
        Command::Rpc(a) => {
            let callees = a
                .callees
                .unwrap_or(if a.procedure.is_some() { 0 } else { 1 });
            let plan = RpcPlan {
                callers: a.callers,
                callees,
                procedure: a
                    .procedure
                    .clone()
                    .unwrap_or_else(|| format!("wampload.echo.{}", unique_suffix())),
                payload: a.payload,
                pacing: match a.rate {
                    Some(rate) => Pacing::Rate(rate),
                    None => Pacing::Window(a.window.unwrap_or(1)),
                },
                max_in_flight: a.max_in_flight,
            };
            (&a.common, Scenario::Rpc(plan))
        }
        Command::Pubsub(a) => {
            let plan = PubsubPlan {
                publishers: a.publishers,
                subscribers: a.subscribers,
                topic: a
                    .topic
                    .clone()
                    .unwrap_or_else(|| format!("wampload.topic.{}", unique_suffix())),
                payload: a.payload,
                acknowledge: a.acknowledge,
                pacing: match a.rate {
                    Some(rate) => Pacing::Rate(rate),
                    None => Pacing::Window(a.window.unwrap_or(1)),
                },
                max_in_flight: a.max_in_flight,
            };
            (&a.common, Scenario::Pubsub(plan))
        }
        Command::Connect(a) => {
            let plan = ConnectPlan {
                connections: a.connections,
                hold: a.hold,
                op_timeout: a.op_timeout,
            };
            (&a.common, Scenario::Connect(plan))
        }
        Command::SessionList(a) => {
            let plan = SessionListPlan {
                sessions: a.sessions,
                callers: a.callers,
                window: a.window,
                count: a.count,
            };
            (&a.common, Scenario::SessionList(plan))
        }
        Command::Compare(_) => return Err("compare is not a scenario".into()),
    };
    Ok((build_run(common, scenario)?, common.json.clone()))
}

fn build_run(common: &CommonArgs, scenario: Scenario) -> Result<Run, String> {
    let target = Target::parse(&common.url)?.with_tls(common.tls_trust().as_ref())?;
    let address = target.resolve()?;
    Ok(Run {
        scenario,
        target,
        address,
        serializer: common.serializer.into(),
        realm: common.realm.clone(),
        warmup: common.warmup,
        duration: common.duration,
        drain: common.drain,
        setup_timeout: common.setup_timeout,
        threads: common.thread_count(),
        cpus: common.cpus.as_ref().map(|c| c.0.clone()),
        router_pid: common.router_pid,
        quiet: common.quiet,
        spin_before_park: common.spin_before_park,
        auth: ClientAuth::from_args(&common.auth)?.map(std::sync::Arc::new),
    })
}

fn run_one((run, json): (Run, Option<std::path::PathBuf>)) -> Result<(), String> {
    let outcome = scenario::execute(run.clone())?;
    let report = Report::build(&run, &outcome);
    print!("{}", report.render());
    if let Some(path) = json {
        report.write_json(&path)?;
    }
    Ok(())
}
