//! Draining on SIGTERM: `/ready` turns 503 at once while every request, in flight or new, is
//! still served for `shutdown_drain`, so that a load balancer polling `/ready` stops sending
//! before the listener closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::tokio::signal::unix::{SignalKind, signal};
use rocket::tokio::{select, time::sleep};

/// Set from SIGTERM on; `/ready` reads it.
#[derive(Debug, Default, Clone)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The fairing that, once the service has lifted off, drains on SIGTERM for `drain`: `/ready`
/// answers 503 from the signal on, then Rocket's graceful shutdown starts (`shutdown.grace` for
/// requests still in flight). A second SIGTERM cuts the drain short. Rocket's own SIGTERM handler
/// would close the listener at once, so `lib::build` leaves SIGTERM to this one; Ctrl-C (SIGINT)
/// stays Rocket's and stops at once.
pub fn on_sigterm(draining: Draining, drain: Duration) -> AdHoc {
    AdHoc::on_liftoff("Drain on SIGTERM", move |rocket| {
        let shutdown = rocket.shutdown();
        Box::pin(async move { listen(draining, drain, shutdown) })
    })
}

fn listen(draining: Draining, drain: Duration, shutdown: rocket::Shutdown) {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            log::error!("cannot handle SIGTERM ({err}); it will stop the process without draining");
            return;
        }
    };
    rocket::tokio::spawn(async move {
        term.recv().await;
        draining.0.store(true, Ordering::Relaxed);
        match drain.is_zero() {
            true => log::warn!("SIGTERM: shutting down"),
            false => log::warn!(
                "SIGTERM: draining. /ready answers 503; requests are served for {}s more, then \
                 the listener closes (another SIGTERM closes it now)",
                drain.as_secs()
            ),
        }
        select! {
            _ = sleep(drain) => {}
            _ = term.recv() => {}
        }
        shutdown.notify();
    });
}
