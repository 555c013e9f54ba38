//! The audit trail's offline verifier, and exports to try it on.
//!
//! ```sh
//! # Verify an export with the operator's public key (an nkey `O…`, a PEM
//! # Ed25519 public key, or a file holding either; repeat for several keys):
//! cargo run --example audit -- verify FILE --operator-key KEY
//!
//! # Write an export of a small tenant made in memory, and print the
//! # operator's key to verify it with:
//! cargo run --example audit -- demo FILE
//!
//! # Export a tenant from PostgreSQL (DATABASE_URL; feature `postgres`):
//! cargo run --example audit --features postgres -- \
//!     export FILE --tenant UUID --operator UUID
//! ```
//!
//! `verify` needs nothing but the file and the key. It prints what it
//! checked and exits with 0 when the export is valid, 1 when it is not
//! (naming the line of the first problem), 2 when it could not run.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program prints what it does"
)]

use std::error::Error;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::process::ExitCode;

use security::crypto::Ed25519PublicKey;
use security::eventstore::audit::{
    AnchorVerdict, ExportVerification, parse_operator_key, verify_export,
};

const USAGE: &str = "usage:
  audit verify FILE --operator-key KEY [--operator-key KEY ...]
  audit demo FILE
  audit export FILE --tenant UUID --operator UUID   (feature postgres, DATABASE_URL)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("verify") => verify(&args[1..]),
        Some("demo") => run(demo(&args[1..])),
        Some("export") => export(&args[1..]),
        _ => Err(USAGE.into()),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("audit: {error}");
            ExitCode::from(2)
        }
    }
}

type Outcome = Result<ExitCode, Box<dyn Error>>;

fn run(future: impl Future<Output = Outcome>) -> Outcome {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// A key given as text, or the name of a file holding it.
fn operator_key(arg: &str) -> Result<Ed25519PublicKey, Box<dyn Error>> {
    let text = match std::fs::read_to_string(arg) {
        Ok(text) => text,
        Err(_) => arg.to_owned(),
    };
    Ok(parse_operator_key(&text).map_err(|e| format!("--operator-key: {e}"))?)
}

fn verify(args: &[String]) -> Outcome {
    let mut file = None;
    let mut keys = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--operator-key" => {
                keys.push(operator_key(rest.next().ok_or(USAGE)?)?);
            }
            _ if file.is_none() => file = Some(arg.clone()),
            _ => return Err(USAGE.into()),
        }
    }
    let file = file.ok_or(USAGE)?;
    if keys.is_empty() {
        return Err("--operator-key is required".into());
    }
    let reader = BufReader::new(File::open(&file).map_err(|e| format!("{file}: {e}"))?);
    let verification = verify_export(reader, &keys).map_err(|e| format!("{file}: {e}"))?;
    report(&verification);
    Ok(if verification.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(v: &ExportVerification) {
    println!("tenant {}", v.tenant_id);
    match v.head {
        Some(head) => println!(
            "{} events, head at position {} ({})",
            v.chain.checked, head.position, head.hash
        ),
        None => println!("no events"),
    }
    match v.chain.first_break {
        None => println!("chain: intact"),
        Some(b) => println!(
            "chain: BROKEN at line {} (position {}): {:?}, {}",
            b.locator,
            b.position,
            b.kind,
            b.kind.describe()
        ),
    }
    for anchor in &v.anchors {
        let verdict = match anchor.verdict {
            AnchorVerdict::Valid => "valid".to_owned(),
            other => format!("INVALID ({other:?})"),
        };
        println!(
            "anchor at line {}: position {}, signed {} by key {}: {verdict}",
            anchor.line, anchor.head.position, anchor.anchored_at, anchor.key_id
        );
    }
    match (v.anchored_up_to(), v.head) {
        _ if !v.chain.is_intact() => {}
        (Some(anchored), Some(head)) if anchored < head.position => println!(
            "signed coverage: up to position {anchored}; later events are chained but not yet anchored"
        ),
        (Some(_), _) => println!("signed coverage: the whole chain"),
        (None, Some(_)) => println!("signed coverage: NONE (no valid anchor)"),
        (None, None) => {}
    }
    println!("{}", if v.is_valid() { "VALID" } else { "INVALID" });
}

async fn demo(args: &[String]) -> Outcome {
    use security::Security;
    use security::core::{AccountClaims, Actor, NewPolicy, Request};

    let [file] = args else {
        return Err(USAGE.into());
    };
    let security = Security::builder().build()?;
    let admin = security.admin();
    let request = Request::by(Actor::service("audit-demo"));
    let operator = admin.create_operator(&request, "Demo Operator").await?;
    let account = admin
        .create_account(&request, operator, "Demo Bank", AccountClaims::default())
        .await?;
    for name in ["payments", "ledger", "reports"] {
        admin
            .create_policy(
                &request,
                account.tenant(),
                NewPolicy::new(name).description("demo"),
            )
            .await?;
    }
    security
        .chain_anchorer(operator, std::time::Duration::from_secs(60))
        .anchor_all()
        .await?;
    let mut out = BufWriter::new(File::create(file)?);
    let summary = security::eventstore::audit::export_tenant(
        &**security.store(),
        account.tenant(),
        operator,
        security.clock().now(),
        &mut out,
    )
    .await?;
    let key = admin
        .operator(operator)
        .await?
        .active_key()
        .map(|k| k.public_key.encoded.clone())
        .ok_or("the operator has no key")?;
    println!(
        "wrote {file}: {} events, {} anchors",
        summary.events, summary.anchors
    );
    println!("operator key: {key}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "postgres")]
fn export(args: &[String]) -> Outcome {
    run(export_from_postgres(args))
}

#[cfg(feature = "postgres")]
async fn export_from_postgres(args: &[String]) -> Outcome {
    use security::core::{OperatorId, TenantId};
    use security::eventstore::{PostgresConfig, PostgresEventStore};

    let mut file = None;
    let (mut tenant, mut operator) = (None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--tenant" => tenant = Some(rest.next().ok_or(USAGE)?.parse::<uuid::Uuid>()?),
            "--operator" => operator = Some(rest.next().ok_or(USAGE)?.parse::<uuid::Uuid>()?),
            _ if file.is_none() => file = Some(arg.clone()),
            _ => return Err(USAGE.into()),
        }
    }
    let (Some(file), Some(tenant), Some(operator)) = (file, tenant, operator) else {
        return Err(USAGE.into());
    };
    let store = PostgresEventStore::connect(PostgresConfig::from_env()?).await?;
    let mut out = BufWriter::new(File::create(&file)?);
    let summary = security::eventstore::audit::export_tenant(
        &store,
        TenantId::from_uuid(tenant),
        OperatorId::from_uuid(operator),
        chrono::Utc::now(),
        &mut out,
    )
    .await?;
    println!(
        "wrote {file}: {} events, {} anchors",
        summary.events, summary.anchors
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "postgres"))]
fn export(_: &[String]) -> Outcome {
    Err("export reads PostgreSQL: build with --features postgres".into())
}
