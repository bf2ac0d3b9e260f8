//! Every environment variable `sbx` reads, in one place; each stands in
//! for the flag of the same name (docs/configuration.md lists them).

/// `sbx serve`: the TOML config file.
pub const CONFIG: &str = "SBX_CONFIG";
pub const LISTEN: &str = "SBX_LISTEN";
/// Also where client commands look for the admin token.
pub const DATA_DIR: &str = "SBX_DATA_DIR";
pub const DATABASE_URL: &str = "SBX_DATABASE_URL";
pub const BASE_DOMAIN: &str = "SBX_BASE_DOMAIN";
pub const PUBLIC_URL: &str = "SBX_PUBLIC_URL";
pub const INTERNAL_URL: &str = "SBX_INTERNAL_URL";
/// Single-sandbox mode: the bundle folder a sandbox's namespace mounts.
pub const SANDBOX_BUNDLE: &str = "SBX_SANDBOX_BUNDLE";
/// The admin token `sbx serve` accepts (no flag: it would show in `ps`).
pub const ADMIN_TOKEN: &str = "SBX_ADMIN_TOKEN";
/// The key stored secrets are sealed under (32 bytes, base64), and the
/// keys of earlier rotations, comma-separated.
pub const SECRETS_KEY: &str = "SBX_SECRETS_KEY";
pub const SECRETS_PREVIOUS_KEYS: &str = "SBX_SECRETS_PREVIOUS_KEYS";
pub const ALLOW_PRIVATE_EGRESS: &str = "SBX_ALLOW_PRIVATE_EGRESS";
pub const OTLP_ENDPOINT: &str = "SBX_OTLP_ENDPOINT";
pub const PUBLIC_METRICS: &str = "SBX_PUBLIC_METRICS";
/// `sbx serve --signup`.
pub const SIGNUP: &str = "SBX_SIGNUP";
/// Where session snapshots go (`s3://bucket/prefix`); `AWS_*` variables
/// configure an S3 store.
pub const SNAPSHOT_STORE: &str = "SBX_SNAPSHOT_STORE";
/// `sbx mock --listen`.
pub const MOCK_LISTEN: &str = "SBX_MOCK_LISTEN";
/// The log filter (tracing's syntax) and format (`json`).
pub const LOG: &str = "SBX_LOG";
pub const LOG_FORMAT: &str = "SBX_LOG_FORMAT";
/// Client commands: the server's URL and the admin token they send.
pub const URL: &str = "SBX_URL";
pub const TOKEN: &str = "SBX_TOKEN";
/// `sbx token`: the OAuth client's secret.
pub const CLIENT_SECRET: &str = "SBX_CLIENT_SECRET";

#[cfg(test)]
mod tests {
    /// The configuration docs name every variable declared here.
    #[test]
    fn every_variable_is_documented() {
        let docs = include_str!("../../../docs/configuration.md");
        let source = include_str!("env.rs");
        let declared: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub const "))
            .filter_map(|line| line.split('"').nth(1))
            .collect();
        assert_eq!(declared.len(), 22);
        for name in declared {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not documented"
            );
        }
    }
}
