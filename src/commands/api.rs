//! `weir api`: the HTTP server alone (for several processes on PostgreSQL),
//! and what `weir standalone` shares with it.

use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use weir_core::config::Config;
use weir_core::scheduler::Scheduler;

/// The API's state for the configured site.
pub async fn state(config: &Config, sched: &Scheduler) -> anyhow::Result<weir_api::AppState> {
    let hours = i64::try_from(config.api.token_hours).unwrap_or(24);
    weir_api::AppState::new(
        sched.clone(),
        config.core.logs_dir.clone(),
        config.api.jwt_secret.as_deref(),
        chrono::Duration::hours(hours),
    )
    .await
    .map(|s| s.with_rows(std::sync::Arc::new(weir_worker::data::preview::Preview)))
    .context("preparing the API")
}

/// Creates the `admin` user when there is no user at all, and prints its
/// password (this once: it is stored only as a hash).
pub async fn ensure_admin(sched: &Scheduler) -> anyhow::Result<()> {
    let store = sched.store();
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let password = weir_api::auth::password::generate()?;
    match super::users::create_user(
        store.as_ref(),
        "admin",
        weir_core::access::Role::Admin,
        &password,
    )
    .await
    {
        Ok(()) => {
            println!(
                "\nCreated the user `admin` with the password\n\n    {password}\n\n\
                 It is shown only now; add users with `weir users create`.\n"
            );
            Ok(())
        }
        // Another process made the first user a moment ago.
        Err(e) if store.count_users().await? > 0 => {
            tracing::debug!("the first user exists already: {e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Serves the API until Ctrl-C or SIGTERM.
pub async fn run(config: &Config, bind: Option<String>) -> anyhow::Result<ExitCode> {
    let sched = super::scheduler(config).await?;
    let cancel = CancellationToken::new();
    let app = weir_api::app(state(config, &sched).await?.closing_on(&cancel));
    let addr = bind.unwrap_or_else(|| config.api.bind.clone());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!("weir api: listening on http://{}", listener.local_addr()?);
    let stop = cancel.clone();
    tokio::spawn(async move {
        crate::site::shutdown_signal().await;
        stop.cancel();
    });
    weir_api::serve(listener, app, cancel).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
