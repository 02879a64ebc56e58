//! A real ETL service, in-process on a free port, against a test's databases.

use std::time::Duration;

use agenttrace_cli::send::{BatchClient, ProjectKey};
use agenttrace_etl::clickhouse::loader::LoaderOptions;
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_etl::http::throttle::SignInLimits;
use agenttrace_etl::http::{RunningServer, ServeConfig, start};
use agenttrace_etl::ingest::signing::Keyring;
use agenttrace_schemas::batch::BatchResponse;

use crate::TestEnv;

/// The edge's signing key in tests.
pub const SIGNING_KEYS: &str = "test-edge:0123456789abcdef0123456789abcdef";
/// The key the test ETL seals provider keys with.
pub const ENCRYPTION_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

pub struct Etl {
    pub server: RunningServer,
    pub url: String,
    pub client: BatchClient,
}

/// A project with an API key, as the edge would know it.
pub struct TestProject {
    pub key: ProjectKey,
    pub secret_key: String,
}

impl TestProject {
    /// `Authorization: Basic public:secret`, as the Langfuse SDKs and the edge's agents send it.
    pub fn basic_auth(&self) -> String {
        use base64::Engine as _;
        let pair = format!("{}:{}", self.key.public_key, self.secret_key);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

impl Etl {
    /// Sends `events` as one signed batch and returns the ETL's answer, which must be a 200.
    pub async fn load(&self, key: &ProjectKey, events: &[agenttrace_schemas::Event<'_>]) -> BatchResponse {
        self.client.send(key, events).await.unwrap().response().unwrap()
    }
}

impl TestEnv {
    /// Starts the ETL with test settings; `configure` may change them (e.g. the loader).
    pub async fn start_etl(&self, configure: impl FnOnce(&mut ServeConfig)) -> Etl {
        self.start_etl_at("127.0.0.1:0".parse().unwrap(), configure).await
    }

    /// Starts the ETL on `addr` (e.g. the address of one stopped earlier, to restart it).
    pub async fn start_etl_at(
        &self,
        addr: std::net::SocketAddr,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Etl {
        let mut config = ServeConfig {
            database_url: self.database_url.clone(),
            clickhouse: self.clickhouse.clone(),
            // Tests make a database each, which a reader confined to one cannot read; the
            // reader user's walls have their own test (`tests/tests/query_guard.rs`).
            reader: self.clickhouse.reader(None),
            sealer: Some(agenttrace_etl::control::sealing::Sealer::from_hex(ENCRYPTION_KEY).unwrap()),
            allow_private_model_urls: false,
            keyring: Keyring::parse(SIGNING_KEYS).unwrap(),
            // No caching: tests revoke keys and expect the next batch to see it.
            key_cache_ttl: Duration::ZERO,
            price_refresh: Duration::from_secs(60),
            postgres_pool_size: 4,
            loader: LoaderOptions {
                attempts: 2,
                ..LoaderOptions::default()
            },
            sign_in_limits: SignInLimits::default(),
            tls: None,
            metrics_token: None,
        };
        configure(&mut config);
        let server = start(config, addr).await.unwrap();
        let url = format!("http://{}", server.addr);
        let client = BatchClient::new(&url, SIGNING_KEYS, "test-edge").unwrap();
        Etl { server, url, client }
    }

    /// A project of the organization `test-org`, with an ingest-only key.
    pub async fn create_project(&self, name: &str) -> TestProject {
        self.create_project_in("test-org", name, &[agenttrace_schemas::Scope::Ingest])
            .await
    }

    /// A project of the organization named `organization` (made when missing), with a key of
    /// `scopes`.
    pub async fn create_project_in(
        &self,
        organization: &str,
        name: &str,
        scopes: &[agenttrace_schemas::Scope],
    ) -> TestProject {
        let pg = self.postgres().await;
        let organization = projects::ensure_organization(&pg, organization).await.unwrap();
        let project = projects::create_project(&pg, organization, name, None)
            .await
            .unwrap();
        TestProject::with_key(&pg, project.id, scopes).await
    }
}

impl TestProject {
    /// `project` with a new key of `scopes`.
    pub async fn with_key(
        pg: &tokio_postgres::Client,
        project: uuid::Uuid,
        scopes: &[agenttrace_schemas::Scope],
    ) -> TestProject {
        let key = api_keys::create_key(pg, project, scopes, None).await.unwrap();
        TestProject {
            key: ProjectKey {
                project_id: project,
                public_key: key.public_key,
            },
            secret_key: key.secret_key,
        }
    }
}
