use clap::Parser;

// glibc malloc cost ~18% of the ETL's CPU under load (profiled with `bench load`).
// Built without transparent huge pages (`no_thp`): with them, every fresh arena page faulted in
// as 2 MiB the kernel had to zero, ~40% of the ETL's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    agenttrace_cli::init_tracing();
    let names = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    if let Err(message) = agenttrace_cli::settings::check_environment(names) {
        eprintln!("error: {message}");
        return std::process::ExitCode::from(2);
    }
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let mut cli = match agenttrace_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let variable = agenttrace_cli::settings::variable_behind(&error, &args);
            let _ = error.print();
            if let Some(variable) = variable {
                eprintln!("note: the value comes from the environment variable {variable}");
            }
            return std::process::ExitCode::from(error.exit_code() as u8);
        }
    };
    cli.args = args;
    match agenttrace_cli::run(cli, &mut std::io::stdout()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
