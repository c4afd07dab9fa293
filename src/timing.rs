//! When each request arrived, recorded once for the access log and the request metrics, which
//! both report the time to the response.

use std::time::{Duration, Instant};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request};

/// Records each request's arrival in its local cache.
pub struct RequestTiming;

struct Arrived(Instant);

#[rocket::async_trait]
impl Fairing for RequestTiming {
    fn info(&self) -> Info {
        Info {
            name: "Request timing",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        request.local_cache(|| Arrived(Instant::now()));
    }
}

/// Time since `request` arrived (or since now, for one that never went through the fairing: a
/// request Rocket refused before routing, say).
pub fn elapsed(request: &Request<'_>) -> Duration {
    let Arrived(arrived) = request.local_cache(|| Arrived(Instant::now()));
    arrived.elapsed()
}
