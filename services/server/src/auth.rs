//! Who may call: bearer JWTs (HS256) with `sub`, `role` and `exp`. Only admin and noc
//! users (and the scheduler, for Backup) get in; only admin may roll back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including rollback.
    Admin,
    /// The NOC: backups and reads.
    Noc,
    /// The scheduler: backups only.
    Scheduler,
}

impl Role {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Noc => "noc",
            Role::Scheduler => "scheduler",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "noc" => Ok(Role::Noc),
            "scheduler" => Ok(Role::Scheduler),
            other => Err(format!(
                "unknown role {other:?}: allowed values are admin, noc, scheduler"
            )),
        }
    }
}

/// The token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id (a UUID).
    pub sub: String,
    /// The role.
    pub role: Role,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub sub: String,
    /// The token's role.
    pub role: Role,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable token: UNAUTHENTICATED.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token whose role may not make this call: PERMISSION_DENIED.
    #[error("{0}")]
    PermissionDenied(String),
}

impl Caller {
    /// Refuses a caller whose role is not in `allowed`.
    pub fn require(&self, call: &str, allowed: &[Role]) -> Result<(), AuthError> {
        if allowed.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        Err(AuthError::PermissionDenied(format!(
            "role {} may not call {call}: allowed roles are {}",
            self.role.as_str(),
            names.join(", ")
        )))
    }
}

/// A shared secret for HS256. Its Debug form never shows it.
#[derive(Clone)]
pub struct Secret(Arc<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where the secret came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `AUTH_JWT_SECRET`.
    Env,
    /// `AUTH_JWT_SECRET_FILE`.
    File(PathBuf),
    /// Generated into the data directory on first start.
    Generated(PathBuf),
    /// Read from the data directory (generated earlier).
    DataDir(PathBuf),
}

const MIN_SECRET: usize = 32;

impl Secret {
    /// From `AUTH_JWT_SECRET`, else `AUTH_JWT_SECRET_FILE`, else `<data_dir>/jwt-secret`
    /// (generated with mode 0600 when missing). Never runs open.
    pub fn load(
        get: impl Fn(&str) -> Option<String>,
        data_dir: &Path,
    ) -> Result<(Secret, SecretSource), config_backup_core::settings::SettingsError> {
        use config_backup_core::settings::SettingsError;
        let bad = |var: &str, message: String| SettingsError {
            var: var.to_owned(),
            message,
        };
        if let Some(s) = get("AUTH_JWT_SECRET").filter(|s| !s.is_empty()) {
            if s.len() < MIN_SECRET {
                return Err(bad(
                    "AUTH_JWT_SECRET",
                    format!("too short: use at least {MIN_SECRET} characters"),
                ));
            }
            return Ok((Secret(Arc::new(s.into_bytes())), SecretSource::Env));
        }
        if let Some(path) = get("AUTH_JWT_SECRET_FILE").filter(|s| !s.is_empty()) {
            let path = PathBuf::from(path);
            let s = read_secret_file(&path).map_err(|e| bad("AUTH_JWT_SECRET_FILE", e))?;
            return Ok((s, SecretSource::File(path)));
        }
        let path = data_dir.join("jwt-secret");
        if path.exists() {
            let s = read_secret_file(&path).map_err(|e| bad("AUTH_JWT_SECRET_FILE", e))?;
            return Ok((s, SecretSource::DataDir(path)));
        }
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let text = hex_encode(&bytes);
        write_private(&path, text.as_bytes()).map_err(|e| {
            bad(
                "CONFIG_BACKUP_DATA_DIR",
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        Ok((Secret(Arc::new(text.into_bytes())), SecretSource::Generated(path)))
    }

    /// A secret from bytes (tests, the token command).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(Arc::new(bytes.into()))
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.len() < MIN_SECRET {
        return Err(format!(
            "{} is too short: use at least {MIN_SECRET} characters",
            path.display()
        ));
    }
    Ok(Secret(Arc::new(text.as_bytes().to_vec())))
}

fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content)?;
    f.sync_all()
}

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

impl Authenticator {
    /// Verifies HS256 tokens signed with `secret`.
    pub fn new(secret: &Secret) -> Authenticator {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Authenticator {
            key: DecodingKey::from_secret(&secret.0),
            validation,
        }
    }

    /// Checks an `authorization` header value.
    pub fn verify(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let header = header.ok_or_else(|| {
            AuthError::Unauthenticated("missing authorization: send `authorization: Bearer <JWT>`".to_owned())
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::Unauthenticated("malformed authorization: expected `Bearer <JWT>`".to_owned()))?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (sub, role, exp)",
                ErrorKind::Json(_) => "the token's claims are invalid (role must be admin, noc or scheduler)",
                _ => "the token is malformed",
            };
            AuthError::Unauthenticated(format!("invalid token: {why}"))
        })?;
        let c = data.claims;
        if c.sub.is_empty() || c.sub.len() > 128 || c.sub.chars().any(char::is_control) {
            return Err(AuthError::Unauthenticated("invalid token: bad sub claim".to_owned()));
        }
        Ok(Caller {
            sub: c.sub,
            role: c.role,
        })
    }
}

/// Mints a token (the `token` command, the scheduler, tests).
pub fn mint(secret: &Secret, role: Role, sub: &str, ttl: std::time::Duration) -> Result<String, String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        role,
        exp: now + ttl.as_secs(),
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret.0),
    )
    .map_err(|e| e.to_string())
}

/// Parses a TTL such as `90s`, `15m`, `1h`, `7d`.
pub fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 90s, 15m, 1h, 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => {
            return Err(format!("{s:?} is not a duration: use e.g. 90s, 15m, 1h, 7d"));
        }
    };
    if secs == 0 {
        return Err("the TTL must be positive".to_owned());
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn a_minted_token_verifies_with_its_role() {
        let s = secret();
        let t = mint(&s, Role::Noc, "6f1c", std::time::Duration::from_secs(60)).unwrap();
        let c = Authenticator::new(&s).verify(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(
            c,
            Caller {
                sub: "6f1c".into(),
                role: Role::Noc
            }
        );
        assert!(matches!(
            c.require("Rollback", &[Role::Admin]),
            Err(AuthError::PermissionDenied(_))
        ));
    }

    #[test]
    fn missing_malformed_and_foreign_tokens_are_unauthenticated() {
        let a = Authenticator::new(&secret());
        let other = mint(
            &Secret::from_bytes(vec![b'x'; 32]),
            Role::Admin,
            "u",
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        for h in [
            None,
            Some("Basic abc"),
            Some("Bearer "),
            Some("Bearer not.a.jwt"),
            Some(&*format!("Bearer {other}")),
        ] {
            assert!(matches!(a.verify(h), Err(AuthError::Unauthenticated(_))), "{h:?}");
        }
    }

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_ttl("90").unwrap().as_secs(), 90);
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("0s").is_err());
    }
}
