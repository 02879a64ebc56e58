//! The threads CPU-bound work runs on: opening signed batches (HMAC, parsing), converting events
//! to Arrow, encoding and compressing inserts.
//!
//! One thread per core, the same threads for the life of the process. Tokio's blocking pool
//! grows a thread per concurrent request instead (35 threads for 32 senders on 2 cores), each
//! with an allocator heap of its own; with the pool `bench load` peaks ~130 MB lower and faults
//! in fewer fresh pages (BENCHMARKS.md), at the same CPU per event.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;

/// Prefix of the pool's thread names (benchmarks measure the ETL's CPU by thread name).
pub const THREAD_NAME: &str = "etl-cpu";

static POOL: LazyLock<rayon::ThreadPool> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("{THREAD_NAME}-{i}"))
        .build()
        .expect("a thread pool of one thread per core")
});

/// `work` failed: it panicked (the panic's message is kept).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(String);

/// Runs `work` on the CPU pool and waits for it without holding an async worker.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Panicked> {
    let (done, result) = tokio::sync::oneshot::channel();
    POOL.spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Panicked(message)
        });
        // The caller may have gone (its request was dropped); the result is then not needed.
        let _ = done.send(outcome);
    });
    result
        .await
        .unwrap_or_else(|_| Err(Panicked("the CPU pool dropped the work".to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_reports_a_panic_without_taking_the_pool_down() {
        assert_eq!(run(|| 2 + 2).await.unwrap(), 4);
        let panicked = run(|| -> u8 { panic!("bad input") }).await.unwrap_err();
        assert_eq!(panicked.to_string(), "bad input");
        let name = run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with(THREAD_NAME));
    }
}
