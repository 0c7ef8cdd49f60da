//! Who may call: bearer JWTs (HS256) with `sub` (a UUID), `role` and `exp` (required),
//! `nbf` and `iat` (checked when present), every time compared with [`LEEWAY_SECS`] of
//! clock skew. Only admin and noc users (and the scheduler, for Backup) get in; only
//! admin may roll back. A well-signed token with another role is known but may not act:
//! PERMISSION_DENIED.

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
                "unknown role {}: allowed values are admin, noc, scheduler",
                config_backup_core::domain::quote_input(other)
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

/// The clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

pub use config_backup_core::domain::MAX_AUTHORIZATION_BYTES;

/// The claims as they arrive: the role is checked after the signature, so that an
/// unknown role is told apart from a forged token.
#[derive(Debug, Deserialize)]
struct TokenClaims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    /// Checked by the validation (required, a number); read here only to exist.
    #[serde(default)]
    #[allow(dead_code)]
    exp: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
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
        env: &config_backup_core::settings::Env,
        data_dir: &Path,
    ) -> Result<(Secret, SecretSource), config_backup_core::settings::SettingsError> {
        if let Some(s) = env.get("AUTH_JWT_SECRET") {
            if s.len() < MIN_SECRET {
                return Err(env.invalid("AUTH_JWT_SECRET", format!("is shorter than {MIN_SECRET} characters")));
            }
            return Ok((Secret(Arc::new(s.as_bytes().to_vec())), SecretSource::Env));
        }
        if let Some(path) = env.path("AUTH_JWT_SECRET_FILE")? {
            let s = read_secret_file(&path).map_err(|e| env.invalid("AUTH_JWT_SECRET_FILE", e))?;
            return Ok((s, SecretSource::File(path)));
        }
        let path = data_dir.join("jwt-secret");
        if path.exists() {
            let s = read_secret_file(&path)
                .map_err(|e| config_backup_core::settings::SettingsError::new("AUTH_JWT_SECRET_FILE", e))?;
            return Ok((s, SecretSource::DataDir(path)));
        }
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let text = hex_encode(&bytes);
        write_private(&path, text.as_bytes()).map_err(|e| {
            config_backup_core::settings::SettingsError::new(
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
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
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
        if header.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthError::Unauthenticated(format!(
                "the authorization header is {} bytes: at most {MAX_AUTHORIZATION_BYTES} are accepted",
                header.len()
            )));
        }
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::Unauthenticated("malformed authorization: expected `Bearer <JWT>`".to_owned()))?;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf is in the future)",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not HS256",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (sub, role, exp)",
                ErrorKind::Json(_) => "the token's claims are invalid (sub a string, exp, nbf and iat numbers)",
                _ => "the token is malformed",
            };
            AuthError::Unauthenticated(format!("invalid token: {why}"))
        })?;
        let c = data.claims;
        let now = jsonwebtoken::get_current_timestamp();
        if c.iat.is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECS)) {
            return Err(AuthError::Unauthenticated(
                "invalid token: it was issued in the future (iat)".to_owned(),
            ));
        }
        if uuid::Uuid::parse_str(&c.sub).is_err() {
            return Err(AuthError::Unauthenticated(
                "invalid token: the sub claim must be the user's UUID".to_owned(),
            ));
        }
        let role = c
            .role
            .ok_or_else(|| AuthError::Unauthenticated("invalid token: the role claim is missing".to_owned()))?;
        let role: Role = role.parse().map_err(|_| {
            AuthError::PermissionDenied(format!(
                "role {} may not use this API: allowed roles are admin, noc, scheduler",
                config_backup_core::domain::quote_input(&role)
            ))
        })?;
        Ok(Caller { sub: c.sub, role })
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
        let sub = "6f1c0f7e-1111-4222-8333-944455556666";
        let t = mint(&s, Role::Noc, sub, std::time::Duration::from_secs(60)).unwrap();
        let c = Authenticator::new(&s).verify(Some(&format!("Bearer {t}"))).unwrap();
        assert_eq!(
            c,
            Caller {
                sub: sub.into(),
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
            "6f1c0f7e-1111-4222-8333-944455556666",
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

    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap()
    }

    #[test]
    fn time_claims_are_checked_with_one_leeway() {
        let a = Authenticator::new(&secret());
        let now = jsonwebtoken::get_current_timestamp();
        let sub = "6f1c0f7e-1111-4222-8333-944455556666";
        let verify = |c: serde_json::Value| a.verify(Some(&format!("Bearer {}", signed(c))));
        let ok = serde_json::json!({"sub": sub, "role": "noc", "exp": now + 600});
        assert!(verify(ok).is_ok());
        for (claims, why) in [
            (serde_json::json!({"sub": sub, "role": "noc"}), "required claim"),
            (
                serde_json::json!({"sub": sub, "role": "noc", "exp": "soon"}),
                "claims are invalid",
            ),
            (
                serde_json::json!({"sub": sub, "role": "noc", "exp": now + 600, "nbf": now + 3600}),
                "not valid yet",
            ),
            (
                serde_json::json!({"sub": sub, "role": "noc", "exp": now + 600, "iat": now + 3600}),
                "issued in the future",
            ),
            (
                serde_json::json!({"sub": sub, "role": "noc", "exp": now - 2 * LEEWAY_SECS}),
                "expired",
            ),
            (
                serde_json::json!({"sub": "not-a-uuid", "role": "noc", "exp": now + 600}),
                "UUID",
            ),
        ] {
            match verify(claims.clone()) {
                Err(AuthError::Unauthenticated(m)) => assert!(m.contains(why), "{claims}: {m}"),
                other => panic!("{claims}: {other:?}"),
            }
        }
        // Within the leeway: a little clock skew is tolerated.
        let skew = serde_json::json!({"sub": sub, "role": "noc", "exp": now + 600, "nbf": now + LEEWAY_SECS / 2, "iat": now + LEEWAY_SECS / 2});
        assert!(verify(skew).is_ok());
    }

    #[test]
    fn a_well_signed_token_with_an_unknown_role_is_permission_denied() {
        let a = Authenticator::new(&secret());
        let now = jsonwebtoken::get_current_timestamp();
        let t = signed(
            serde_json::json!({"sub": "6f1c0f7e-1111-4222-8333-944455556666", "role": "superuser", "exp": now + 600}),
        );
        match a.verify(Some(&format!("Bearer {t}"))) {
            Err(AuthError::PermissionDenied(m)) => {
                assert!(m.contains("\"superuser\"") && m.contains("admin, noc"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_oversize_authorization_is_refused_before_parsing() {
        let a = Authenticator::new(&secret());
        let huge = format!("Bearer {}", "a".repeat(64 * 1024));
        match a.verify(Some(&huge)) {
            Err(AuthError::Unauthenticated(m)) => assert!(m.contains("at most 8192") && m.len() < 200, "{m}"),
            other => panic!("{other:?}"),
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

/// Generated JWT claims, well signed: whatever they hold, verification never panics,
/// and only a token with a UUID `sub`, a known role and valid times is let in.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::from),
            Just(json!("admin")),
            Just(json!("noc")),
            Just(json!("6f1c0f7e-1111-4222-8333-944455556666")),
            Just(json!([1, "x"])),
            Just(json!({"a": 1})),
        ]
    }

    fn claim_time() -> impl Strategy<Value = Option<Value>> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        proptest::option::of(prop_oneof![
            (-100_000i64..100_000).prop_map(move |d| json!(now + d)),
            value(),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_claims_never_panic_and_only_valid_ones_pass(
            sub in proptest::option::of(value()),
            role in proptest::option::of(value()),
            exp in claim_time(),
            nbf in claim_time(),
            iat in claim_time(),
        ) {
            let mut claims = serde_json::Map::new();
            for (k, v) in [("sub", &sub), ("role", &role), ("exp", &exp), ("nbf", &nbf), ("iat", &iat)] {
                if let Some(v) = v {
                    claims.insert(k.to_owned(), v.clone());
                }
            }
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &Value::Object(claims),
                &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            )
            .unwrap();
            let a = Authenticator::new(&Secret::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()));
            let now = jsonwebtoken::get_current_timestamp();
            match a.verify(Some(&format!("Bearer {token}"))) {
                Ok(c) => {
                    prop_assert!(uuid::Uuid::parse_str(&c.sub).is_ok());
                    let exp = exp.as_ref().and_then(Value::as_u64).unwrap();
                    prop_assert!(exp + LEEWAY_SECS >= now);
                    if let Some(nbf) = nbf.as_ref().and_then(Value::as_u64) {
                        prop_assert!(nbf <= now + LEEWAY_SECS);
                    }
                    if let Some(iat) = iat.as_ref().and_then(Value::as_u64) {
                        prop_assert!(iat <= now + LEEWAY_SECS);
                    }
                }
                Err(AuthError::PermissionDenied(m)) => prop_assert!(m.starts_with("role "), "{m}"),
                Err(AuthError::Unauthenticated(m)) => prop_assert!(m.len() < 300, "{m}"),
            }
        }
    }
}
