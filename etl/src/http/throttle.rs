//! What keeps password sign-ins from stalling the server or being guessed at speed:
//!
//! - argon2id verification (19 MiB, tens of milliseconds of CPU) runs on tokio's blocking
//!   threads, at most one per core at once ([`SignInGuard::check_password`]), never on an async
//!   worker (which would stop every request it serves) and never while holding a PostgreSQL
//!   connection (a flood of sign-ins would take the whole pool). At most [`QUEUED_PER_CORE`]
//!   sign-ins per core wait for it: past that, 429 with `Retry-After` at once, as the other
//!   limits answer ([`crate::http::limits`]), rather than a queue that outgrows the answer
//!   deadline;
//! - failed sign-ins are throttled per client address and per email by token buckets in a
//!   bounded map ([`SignInLimits`]): an attempt takes a token from both before its password is
//!   checked (so a burst of concurrent attempts cannot all pass), a success gives them back,
//!   and an attempt that finds either empty is answered 429 with `Retry-After`, unchecked.
//!
//! The client address is the TCP peer's ([`ClientAddress`]): behind a reverse proxy every
//! client shares the proxy's address, and the per-email limit is what remains per account.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::control::identity;
use crate::http::error::ApiError;

/// Up to `burst` attempts at once, then one more every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// How many failed sign-ins a client address and an email may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Per client address (IPv6 by its /64, which one client usually holds whole).
    pub per_address: Rate,
    /// Per email, whatever the address.
    pub per_email: Rate,
    /// Addresses and emails tracked at most (each kind); when full, those idle longest are
    /// forgotten first.
    pub tracked: usize,
}

impl Default for SignInLimits {
    /// 30 failures per address, then one every 2 s; 10 per email, then one every 30 s.
    fn default() -> Self {
        SignInLimits {
            per_address: Rate {
                burst: 30,
                every: Duration::from_secs(2),
            },
            per_email: Rate {
                burst: 10,
                every: Duration::from_secs(30),
            },
            tracked: 100_000,
        }
    }
}

impl SignInLimits {
    /// No throttling (benchmarks, and tests of something else).
    pub fn unlimited() -> Self {
        let rate = Rate {
            burst: u32::MAX,
            every: Duration::from_millis(1),
        };
        SignInLimits {
            per_address: rate,
            per_email: rate,
            tracked: 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key, at most `tracked` of them.
struct Buckets<K> {
    rate: Rate,
    tracked: usize,
    map: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(rate: Rate, tracked: usize) -> Self {
        Buckets {
            rate,
            tracked: tracked.max(1),
            map: HashMap::new(),
        }
    }

    fn burst(&self) -> f64 {
        f64::from(self.rate.burst)
    }

    /// `bucket` refilled up to `now`.
    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let earned = now.saturating_duration_since(bucket.at).as_secs_f64() / self.rate.every.as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + earned).min(self.burst()),
            at: now,
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until it holds one.
    fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let bucket = match self.map.get(key) {
            Some(bucket) => self.refilled(*bucket, now),
            None => {
                self.make_room(now);
                Bucket {
                    tokens: self.burst(),
                    at: now,
                }
            }
        };
        if bucket.tokens < 1.0 {
            self.map.insert(key.clone(), bucket);
            return Err(self.rate.every.mul_f64(1.0 - bucket.tokens));
        }
        self.map.insert(
            key.clone(),
            Bucket {
                tokens: bucket.tokens - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    /// Gives back a token taken from `key`'s bucket.
    fn give_back(&mut self, key: &K, now: Instant) {
        let burst = self.burst();
        if let Some(bucket) = self.map.get(key).copied() {
            let mut bucket = self.refilled(bucket, now);
            bucket.tokens = (bucket.tokens + 1.0).min(burst);
            self.map.insert(key.clone(), bucket);
        }
    }

    /// Before tracking one more key: forget the full buckets (as good as untracked), and if the
    /// map is still full, the half idle longest.
    fn make_room(&mut self, now: Instant) {
        if self.map.len() < self.tracked {
            return;
        }
        let burst = self.burst();
        let every = self.rate.every.as_secs_f64();
        self.map.retain(|_, bucket| {
            bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() / every < burst
        });
        if self.map.len() >= self.tracked {
            let mut times: Vec<Instant> = self.map.values().map(|bucket| bucket.at).collect();
            times.sort_unstable();
            let cutoff = times[times.len() / 2];
            self.map.retain(|_, bucket| bucket.at > cutoff);
        }
    }
}

struct Throttle {
    addresses: Buckets<IpAddr>,
    emails: Buckets<String>,
}

/// Sign-ins that may be checking or waiting to check a password at once, per core.
pub const QUEUED_PER_CORE: usize = 16;

/// Sign-ins' bounded hashing and their throttle, shared by every request.
pub struct SignInGuard {
    /// Sign-ins checking a password or waiting to: bounded, so the wait is.
    admitted: Arc<Semaphore>,
    /// Sign-ins checking a password: one per core.
    hashing: Arc<Semaphore>,
    throttle: Arc<Mutex<Throttle>>,
}

/// One sign-in's tokens, taken from its address's and its email's buckets: kept when it fails
/// (dropped), given back when it succeeds.
pub struct Attempt {
    throttle: Arc<Mutex<Throttle>>,
    address: Option<IpAddr>,
    email: String,
}

impl Attempt {
    /// The attempt does not count: the password was right, or it was not checked.
    pub fn give_back(self) {
        let now = Instant::now();
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(address) = &self.address {
            throttle.addresses.give_back(address, now);
        }
        throttle.emails.give_back(&self.email, now);
    }
}

/// The key an address is throttled by: IPv4 whole, IPv6 by its /64.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The key an email is throttled by: as accounts store it (lowercase), bounded.
fn email_key(email: &str) -> String {
    let mut email = email.trim().to_lowercase();
    let mut end = email.len().min(320);
    while !email.is_char_boundary(end) {
        end -= 1;
    }
    email.truncate(end);
    email
}

impl SignInGuard {
    pub fn new(limits: SignInLimits) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        SignInGuard {
            admitted: Arc::new(Semaphore::new(cores * QUEUED_PER_CORE)),
            hashing: Arc::new(Semaphore::new(cores)),
            throttle: Arc::new(Mutex::new(Throttle {
                addresses: Buckets::new(limits.per_address, limits.tracked),
                emails: Buckets::new(limits.per_email, limits.tracked),
            })),
        }
    }

    /// Takes a token for a sign-in from `address` as `email`, or answers 429 with how long to
    /// wait.
    pub fn attempt(&self, address: Option<IpAddr>, email: &str) -> Result<Attempt, ApiError> {
        let now = Instant::now();
        let address = address.map(address_key);
        let email = email_key(email);
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(address) = &address {
            throttle
                .addresses
                .take(address, now)
                .map_err(|wait| too_many("from this address", wait))?;
        }
        if let Err(wait) = throttle.emails.take(&email, now) {
            if let Some(address) = &address {
                throttle.addresses.give_back(address, now);
            }
            return Err(too_many("for this email", wait));
        }
        Ok(Attempt {
            throttle: self.throttle.clone(),
            address,
            email,
        })
    }

    /// A place among the sign-ins that may check a password now or soon, or 429 at once when
    /// they are all taken.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.admitted.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sign_ins",
                "too many sign-ins at once; try again in a second",
            )
            .retry_after(1)
        })
    }

    /// [`identity::check_password`] on a blocking thread, once one of the hashing permits is
    /// free. The permits (this one and `admitted`) go with the work, so a request dropped
    /// meanwhile does not let more hashes run at once than there are permits.
    pub async fn check_password(
        &self,
        admitted: OwnedSemaphorePermit,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, ApiError> {
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, permit);
            identity::check_password(&password, phc.as_deref())
        })
        .await
        .map_err(ApiError::internal)
    }
}

fn too_many(whom: &str, wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed sign-ins {whom}; try again in {seconds} s"),
    )
    .retry_after(seconds.max(1))
}

/// The address of the TCP peer, when the server records it (it does: `ConnectInfo`).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(burst: u32, every_ms: u64) -> Rate {
        Rate {
            burst,
            every: Duration::from_millis(every_ms),
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_period() {
        let mut buckets = Buckets::new(rate(3, 1000), 10);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(buckets.take(&"a", start).is_ok());
        }
        let wait = buckets.take(&"a", start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(1000));
        assert!(
            buckets.take(&"b", start).is_ok(),
            "another key has its own bucket"
        );
        let later = start + Duration::from_millis(1500);
        assert!(buckets.take(&"a", later).is_ok());
        assert_eq!(buckets.take(&"a", later).unwrap_err(), Duration::from_millis(500));
        buckets.give_back(&"a", later);
        assert!(buckets.take(&"a", later).is_ok());
    }

    #[test]
    fn the_map_stays_bounded() {
        let mut buckets = Buckets::new(rate(1, 60_000), 100);
        let start = Instant::now();
        for i in 0..1000u32 {
            let _ = buckets.take(&i, start + Duration::from_millis(u64::from(i)));
            assert!(buckets.map.len() <= 100);
        }
        // The newest keys are still throttled.
        assert!(buckets.take(&999, start + Duration::from_millis(1000)).is_err());
    }

    #[test]
    fn an_attempt_takes_from_both_and_a_success_gives_back() {
        let guard = SignInGuard::new(SignInLimits {
            per_address: rate(2, 60_000),
            per_email: rate(5, 60_000),
            tracked: 100,
        });
        let here = Some("10.0.0.1".parse().unwrap());
        guard.attempt(here, "A@x.test").unwrap().give_back();
        drop(guard.attempt(here, "a@x.test").unwrap());
        drop(guard.attempt(here, "b@x.test").unwrap());
        let refused = guard.attempt(here, "c@x.test").err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(60));
        // Another address, and the email limit: a@x.test has 4 left (one given back).
        for i in 0..4 {
            drop(
                guard
                    .attempt(Some(format!("10.0.1.{i}").parse().unwrap()), "a@x.test")
                    .unwrap(),
            );
        }
        assert!(
            guard
                .attempt(Some("10.0.2.1".parse().unwrap()), "a@x.test")
                .is_err()
        );
        // One IPv6 client is its /64.
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let two: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(address_key(one), address_key(two));
    }

    #[test]
    fn sign_ins_waiting_to_hash_are_bounded() {
        let guard = SignInGuard::new(SignInLimits::default());
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let admitted: Vec<_> = (0..cores * QUEUED_PER_CORE)
            .map(|_| guard.admit().unwrap())
            .collect();
        let refused = guard.admit().err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        drop(admitted);
        assert!(guard.admit().is_ok());
    }
}
