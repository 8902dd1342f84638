//! `modelsmith dashboard`: serves the study pages of a storage, read-only, on loopback by default.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use modelsmith::store;
use modelsmith_server::{bind, shutdown_signal};

#[derive(Args)]
pub struct DashboardArgs {
    /// Where studies live: sqlite:PATH (opened read-only; workers are never slowed down).
    #[arg(long, default_value = "sqlite:modelsmith.db")]
    storage: String,
    /// Address to listen on (loopback by default; 0.0.0.0:PORT to accept other machines).
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: String,
    /// A host name the dashboard answers to besides IP addresses and localhost (repeatable):
    /// requests for any other name are refused, which stops DNS-rebinding pages reading studies.
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
}

pub fn run(args: DashboardArgs) -> Result<()> {
    let storage: Arc<dyn store::Storage> = Arc::from(store::open_read_only(&args.storage)?);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async {
            let listener = bind(&args.addr).await?;
            eprintln!(
                "dashboard for {} on http://{}/ (Ctrl-C to stop)",
                store::redact_url(&args.storage),
                listener.local_addr()?
            );
            let hosts = modelsmith_dashboard::HostCheck {
                allowed: args.allow_host.clone(),
            };
            modelsmith_dashboard::run(storage, &args.storage, hosts, listener, shutdown_signal())
                .await?;
            eprintln!("stopped");
            Ok(())
        })
}
