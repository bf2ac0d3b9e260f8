//! `sbx login` and `sbx logout`: a developer or admin account signs in,
//! and a personal access token made with that session is kept per server
//! (in `~/.config/sbx/credentials.json`, mode 0600) for the other commands.

use std::{
    collections::BTreeMap,
    io::BufRead,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use reqwest::header;
use serde_json::{Value, json};

/// Where tokens from `sbx login` are kept: `$XDG_CONFIG_HOME/sbx` or
/// `~/.config/sbx`.
fn credentials_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("sbx").join("credentials.json"))
}

fn read_all() -> BTreeMap<String, String> {
    credentials_path()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn write_all(tokens: &BTreeMap<String, String>) -> anyhow::Result<PathBuf> {
    let path = credentials_path().context("neither XDG_CONFIG_HOME nor HOME is set")?;
    let dir = path.parent().context("a config directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = serde_json::to_string_pretty(tokens)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // A file made earlier with wider access is narrowed first.
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    use std::io::Write;
    options
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn key(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// The token `sbx login` kept for the server at `url`.
pub fn stored_token(url: &str) -> Option<String> {
    read_all().remove(&key(url))
}

fn password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password("Password: ").context("reading the password")?
    };
    if password.is_empty() {
        bail!("no password given");
    }
    Ok(password)
}

fn problem(what: &str, status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let detail = body.get("detail").and_then(Value::as_str).unwrap_or("");
    anyhow::anyhow!("{what}: {status}: {detail}")
}

/// Signs in, makes a token named after this machine with the session,
/// signs the session out, and keeps the token for `url`.
pub async fn login(url: &str, email: &str, from_stdin: bool) -> anyhow::Result<()> {
    let password = password(from_stdin)?;
    let api = format!("{}/api/v1", key(url));
    let client = reqwest::Client::new();
    let reach = || format!("cannot reach {url}; is `sbx serve` running?");
    let response = client
        .post(format!("{api}/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .with_context(reach)?;
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let Some(cookie) = cookie.filter(|_| status.is_success()) else {
        return Err(problem("signing in", status, &body));
    };
    let csrf = body["csrf_token"].as_str().unwrap_or_default().to_owned();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".to_owned());
    let response = client
        .post(format!("{api}/me/tokens"))
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": format!("sbx login on {host}")}))
        .send()
        .await
        .with_context(reach)?;
    let status = response.status();
    let made: Value = response.json().await.unwrap_or(Value::Null);
    // The session was only a means to the token.
    let _ = client
        .post(format!("{api}/auth/logout"))
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await;
    let Some(token) = made["token"].as_str().filter(|_| status.is_success()) else {
        return Err(problem("making a token", status, &made));
    };
    let mut tokens = read_all();
    tokens.insert(key(url), token.to_owned());
    let path = write_all(&tokens)?;
    crate::out!(
        "Signed in to {url} as {} ({}); the token is kept in {}",
        body["account"]["email"].as_str().unwrap_or(email),
        body["account"]["role"].as_str().unwrap_or("developer"),
        path.display()
    );
    Ok(())
}

/// Revokes the token kept for `url` (signing it out) and forgets it.
pub async fn logout(url: &str) -> anyhow::Result<()> {
    let mut tokens = read_all();
    let Some(token) = tokens.remove(&key(url)) else {
        crate::out!("Not signed in to {url}");
        return Ok(());
    };
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/logout", key(url)))
        .bearer_auth(&token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `sbx serve` running?"))?;
    // 401: revoked or expired already; either way it is forgotten here.
    if !(response.status().is_success() || response.status() == reqwest::StatusCode::UNAUTHORIZED) {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        return Err(problem("signing out", status, &body));
    }
    write_all(&tokens)?;
    crate::out!("Signed out of {url}; the token is revoked");
    Ok(())
}
