//! `sslmode=require` in `DATABASE_URL`: TLS to a real PostgreSQL (a private server with a
//! certificate made here), the server's certificate verified — refused without its root, used
//! with `sslrootcert=` naming it.

use std::path::{Path, PathBuf};
use std::process::Command;

use agenttrace_etl::postgres;

/// A private PostgreSQL with TLS on, stopped when dropped.
struct TlsServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    root: PathBuf,
}

/// Runs a PostgreSQL program as the `postgres` user when this is root (it refuses root).
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TlsServer {
    fn start() -> TlsServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server programs (scripts/stack.sh installs them)")
            .map(|entry| entry.unwrap().path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("agenttrace-pg-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A CA of this test's own, and the server's certificate signed by it.
        let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
        let (key, cert, ca) = (dir.join("server.key"), dir.join("server.crt"), dir.join("ca.crt"));
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
            .args([
                "-subj",
                "/CN=agenttrace-test-ca",
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.crt"),
            ]));
        run(Command::new("openssl")
            .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"])
            .args(["-keyout", &path("server.key"), "-out", &path("server.csr")]));
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .args([
                "-in",
                &path("server.csr"),
                "-CA",
                &path("ca.crt"),
                "-CAkey",
                &path("ca.key"),
                "-extfile",
                &path("ext"),
                "-out",
                &path("server.crt"),
            ]));
        run(Command::new("chmod").args(["-R", "a+rx"]).arg(&dir));
        run(Command::new("chmod").arg("600").arg(&key));
        let _ = Command::new("chown").args(["-R", "postgres"]).arg(&dir).output();
        let data = dir.join("data");
        run(as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(&data));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {dir} -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}",
            dir = dir.display(),
            cert = cert.display(),
            key = key.display()
        );
        run(as_postgres(&bin.join("pg_ctl"))
            .args(["-w", "-D"])
            .arg(&data)
            .args(["-l"])
            .arg(dir.join("server.log"))
            .args(["-o", &options, "start"]));
        TlsServer {
            bin,
            data,
            port,
            root: ca,
        }
    }

    fn url(&self, sslmode: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode={sslmode}",
            self.port
        )
    }

    fn trusted_url(&self) -> String {
        format!("{}&sslrootcert={}", self.url("require"), self.root.display())
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .output();
        if let Some(dir) = self.data.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test]
async fn sslmode_require_verifies_the_server_and_encrypts() {
    let server = TlsServer::start();
    // Its certificate is signed by no root we trust yet: refused, not downgraded.
    let Err(refused) = postgres::connect(&server.url("require")).await else {
        panic!("an unverified server must be refused");
    };
    assert!(format!("{refused:?}").contains("UnknownIssuer"), "{refused:?}");

    let client = postgres::connect(&server.trusted_url()).await.unwrap();
    let encrypted: bool = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(encrypted);

    // The service's pool too.
    let pool = postgres::pool(&server.trusted_url(), 2).unwrap();
    let pooled = pool.get().await.unwrap();
    let encrypted: bool = pooled
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(encrypted);

    // `prefer` (the default) stays plain text, as before.
    let plain = postgres::connect(&server.url("prefer")).await.unwrap();
    let encrypted: bool = plain
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!encrypted);
}
