use clap::Parser;

// glibc malloc cost ~18% of the ETL's CPU under load (profiled with `bench load`).
// Built without transparent huge pages (`no_thp`): with them, every fresh arena page faulted in
// as 2 MiB the kernel had to zero, ~40% of the ETL's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    agenttrace_cli::init_tracing();
    let mut cli = agenttrace_cli::Cli::parse();
    cli.args = std::env::args().skip(1).collect();
    match agenttrace_cli::run(cli, &mut std::io::stdout()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
