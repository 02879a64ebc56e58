//! Job runs on real PostgreSQL: one runner per job, recorded runs, a watermark only success moves.

use agenttrace_jobs::runs::{JobRun, recent_runs};
use agenttrace_tests::TestEnv;

#[tokio::test]
async fn one_runner_per_job_and_only_success_moves_the_watermark() {
    let env = TestEnv::migrated().await;
    let (first, second) = (env.postgres().await, env.postgres().await);

    let run = JobRun::start(&first, "evaluate", None)
        .await
        .unwrap()
        .expect("the job is free");
    assert_eq!(run.watermark, None);
    assert!(
        JobRun::start(&second, "evaluate", None).await.unwrap().is_none(),
        "a second runner must not start"
    );
    let other = JobRun::start(&second, "retention", None)
        .await
        .unwrap()
        .expect("another job is not blocked");
    other.succeed(0, 0, None).await.unwrap();
    run.succeed(120, 40, Some(1_000)).await.unwrap();

    // Released: the second session can run it now, from the new watermark.
    let run = JobRun::start(&second, "evaluate", None)
        .await
        .unwrap()
        .expect("released after success");
    assert_eq!(run.watermark, Some(1_000));
    run.fail(7, "evaluator `toxicity`: invalid regex").await.unwrap();

    let run = JobRun::start(&first, "evaluate", None)
        .await
        .unwrap()
        .expect("released after failure");
    assert_eq!(run.watermark, Some(1_000), "a failed run keeps the watermark");
    run.succeed(7, 7, Some(2_000)).await.unwrap();

    let runs = recent_runs(&first, 10).await.unwrap();
    let evaluate: Vec<_> = runs.iter().filter(|r| r.job == "evaluate").collect();
    assert_eq!(evaluate.len(), 3);
    assert_eq!(
        (evaluate[0].status.as_str(), evaluate[0].watermark_after),
        ("succeeded", Some(2_000))
    );
    assert_eq!(evaluate[1].status, "failed");
    assert_eq!(evaluate[1].watermark_after, Some(1_000));
    assert_eq!(
        evaluate[1].error.as_deref(),
        Some("evaluator `toxicity`: invalid regex")
    );
    assert_eq!((evaluate[2].rows_in, evaluate[2].rows_out), (120, 40));
}
