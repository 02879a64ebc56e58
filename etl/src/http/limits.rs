//! What one caller may hold of what all callers share: a deadline for every answer, and slots
//! per route group — a few per caller (by credential) and a bounded number for everyone. Over
//! a limit the answer is 429 with `Retry-After` at once, never a queue that grows. A slot is
//! held until the answer's body is sent, so a long export keeps its slot while it streams.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::StreamExt;

use crate::http::error::ApiError;

/// Time until an answer's headers: past it, 503 with `Retry-After` (ClickHouse reads stop at
/// 30 s on their own; this bounds everything else).
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// Callers remembered per group before idle ones are forgotten.
const MAX_TRACKED_CALLERS: usize = 10_000;

/// Slots of one route group.
#[derive(Clone)]
pub struct Gate(Arc<GateInner>);

struct GateInner {
    name: &'static str,
    everyone: Arc<Semaphore>,
    per_caller: usize,
    callers: Mutex<HashMap<u64, Arc<Semaphore>>>,
    hasher: RandomState,
}

impl Gate {
    pub fn new(name: &'static str, everyone: usize, per_caller: usize) -> Self {
        Gate(Arc::new(GateInner {
            name,
            everyone: Arc::new(Semaphore::new(everyone)),
            per_caller,
            callers: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        }))
    }

    /// The caller's slots, keyed by a keyed hash of its credential (never the credential): its
    /// `Authorization`, else its `Cookie`. Only one of them, so that a caller cannot add a
    /// random cookie to its key's requests to get fresh slots for each.
    fn caller_slots(&self, headers: &HeaderMap) -> Arc<Semaphore> {
        let credential = headers
            .get(header::AUTHORIZATION)
            .or_else(|| headers.get(header::COOKIE))
            .map(|v| v.as_bytes());
        let key = self.0.hasher.hash_one(credential);
        let mut callers = self.0.callers.lock().expect("the caller map is never poisoned");
        if callers.len() >= MAX_TRACKED_CALLERS {
            let per_caller = self.0.per_caller;
            callers.retain(|_, slots| slots.available_permits() < per_caller);
        }
        callers
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.0.per_caller)))
            .clone()
    }

    fn busy(&self, whose: &str) -> Response {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "too many {} requests at once {whose}; retry after the Retry-After seconds",
                self.0.name
            ),
        )
        .into_response()
    }
}

/// Middleware: one slot of the caller's and one of everyone's, held until the body is sent.
pub async fn limit(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let Ok(own) = gate.caller_slots(request.headers()).try_acquire_owned() else {
        return gate.busy("from this caller");
    };
    let Ok(shared) = gate.0.everyone.clone().try_acquire_owned() else {
        return gate.busy("on this server");
    };
    hold_until_sent(next.run(request).await, [own, shared])
}

fn hold_until_sent(response: Response, permits: [OwnedSemaphorePermit; 2]) -> Response {
    if response.body().size_hint().exact().is_some() {
        // Already whole in memory: done with the slots.
        return response;
    }
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &permits;
            chunk
        }))
    })
}

/// Middleware: the answer's headers within [`ANSWER_DEADLINE`], else 503 with `Retry-After`.
pub async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(ANSWER_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "no answer within {} s; retry later, or narrow the request",
                ANSWER_DEADLINE.as_secs()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_cannot_take_everyones_slots() {
        let gate = Gate::new("test", 3, 2);
        let mut alice = HeaderMap::new();
        alice.insert(header::AUTHORIZATION, "Bearer alice".parse().unwrap());
        let mut bob = HeaderMap::new();
        bob.insert(header::AUTHORIZATION, "Bearer bob".parse().unwrap());
        let alice_slots = gate.caller_slots(&alice);
        let _a1 = alice_slots.clone().try_acquire_owned().unwrap();
        let _a2 = alice_slots.clone().try_acquire_owned().unwrap();
        assert!(gate.caller_slots(&alice).try_acquire_owned().is_err());
        assert!(gate.caller_slots(&bob).try_acquire_owned().is_ok());
        // A cookie beside the key makes no new caller.
        let mut alice_with_cookie = alice.clone();
        alice_with_cookie.insert(header::COOKIE, "x=random".parse().unwrap());
        assert!(gate.caller_slots(&alice_with_cookie).try_acquire_owned().is_err());
    }

    #[test]
    fn idle_callers_are_forgotten_when_the_map_is_full() {
        let gate = Gate::new("test", 1, 1);
        let busy = {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, "busy".parse().unwrap());
            headers
        };
        let _held = gate.caller_slots(&busy).try_acquire_owned().unwrap();
        for i in 0..MAX_TRACKED_CALLERS + 5 {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, i.to_string().parse().unwrap());
            gate.caller_slots(&headers);
        }
        let callers = gate.0.callers.lock().unwrap().len();
        assert!(callers < 100, "{callers} callers remembered");
        // The busy caller's slot was kept, not forgotten.
        assert!(gate.caller_slots(&busy).try_acquire_owned().is_err());
    }
}
