//! Generated tests at the engine's edges: every parser that takes outside input (domain,
//! commit prefix, repository path, globs, known_hosts lines, remote URLs, secret rules)
//! never panics, refuses with an error that names what is wrong within the echo bound,
//! and round-trips where its format allows.

use config_backup_core::domain::{ECHO_LIMIT, quote_input};
use config_backup_core::known_hosts::KnownHosts;
use config_backup_core::remote::RemoteUrl;
use config_backup_core::secrets::Rules;
use config_backup_core::settings::Settings;
use config_backup_core::{CommitPrefix, Domain, RepoPath};
use proptest::prelude::*;

/// Strings as hostile callers send them: long, binary-ish, option-like, traversal.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,80}",
        "[a-f0-9]{0,45}",
        "[a-zA-Z0-9/._-]{0,40}",
        Just("--output=/tmp/x".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("a\0b".to_owned()),
        Just("' OR 1=1 --".to_owned()),
        (1usize..6000).prop_map(|n| "a".repeat(n)),
        proptest::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect()),
    ]
}

/// An error message quotes at most ECHO_LIMIT characters of the value (escaped, so up
/// to 10 bytes each) plus its own text.
fn bounded(message: &str) -> bool {
    message.len() <= ECHO_LIMIT * 10 + 300
}

fn settings_with(var: &str, value: &str) -> Result<Settings, config_backup_core::settings::SettingsError> {
    let root = std::env::temp_dir();
    let env: config_backup_core::settings::Env = [
        ("CONFIG_BACKUP_SOURCE_ROOT".to_owned(), root.display().to_string()),
        (
            "CONFIG_BACKUP_DATA_DIR".to_owned(),
            root.join("cb-edges").display().to_string(),
        ),
        (var.to_owned(), value.to_owned()),
    ]
    .into_iter()
    .collect();
    Settings::from_env(&env)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn quoted_input_is_bounded_and_says_the_full_length(v in hostile()) {
        let q = quote_input(&v);
        let n = v.chars().count();
        prop_assert!(q.chars().count() <= ECHO_LIMIT * 10 + 40, "{q}");
        if n > ECHO_LIMIT {
            prop_assert!(q.ends_with(&format!("… ({n} characters)")), "{q}");
        }
    }

    #[test]
    fn domains_parse_or_name_the_allowed_values(v in hostile()) {
        match v.parse::<Domain>() {
            Ok(d) => prop_assert_eq!(d.as_str(), v.as_str()),
            Err(e) => {
                let m = e.to_string();
                prop_assert!(m.contains("allowed values are gateway, dns, radius, kea, ospf") && bounded(&m), "{m}");
            }
        }
    }

    #[test]
    fn commit_prefixes_are_7_to_40_hex_digits(v in hostile()) {
        let valid = (7..=40).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit());
        match v.parse::<CommitPrefix>() {
            Ok(c) => {
                prop_assert!(valid);
                prop_assert_eq!(c.as_str(), v.to_ascii_lowercase());
            }
            Err(e) => {
                prop_assert!(!valid);
                let m = e.to_string();
                prop_assert!(m.contains("7 to 40 hexadecimal digits") && bounded(&m), "{m}");
            }
        }
    }

    #[test]
    fn repository_paths_round_trip_or_say_why(v in hostile()) {
        match v.parse::<RepoPath>() {
            Ok(p) => {
                prop_assert_eq!(p.as_str(), v.as_str());
                prop_assert!(!v.starts_with('/') && !v.split('/').any(|c| c == ".." || c == "." || c.is_empty()));
                prop_assert_eq!(p.to_string().parse::<RepoPath>().unwrap(), p);
            }
            Err(e) => {
                let m = e.to_string();
                prop_assert!(m.contains("is not a relative path inside the source root") && bounded(&m), "{m}");
            }
        }
    }

    #[test]
    fn globs_are_accepted_or_refused_naming_the_variable(v in hostile()) {
        if let Err(e) = settings_with("CONFIG_BACKUP_PATHS__dns", &v) {
            prop_assert_eq!(e.var.as_str(), "CONFIG_BACKUP_PATHS__dns", "{}", e);
        }
    }

    #[test]
    fn secret_rules_are_accepted_or_refused_naming_the_variable_and_rule(v in hostile(), kind in prop_oneof![Just("key:"), Just("json:"), Just("regex:"), Just("file:"), Just("")]) {
        let text = format!("{kind}{v}");
        let direct = Rules::parse(Domain::Radius, &text);
        match settings_with("CONFIG_BACKUP_SECRETS__radius", &text) {
            Ok(_) => prop_assert!(direct.is_ok()),
            Err(e) => {
                prop_assert_eq!(e.var.as_str(), "CONFIG_BACKUP_SECRETS__radius");
                prop_assert!(e.message.starts_with("rule ") && bounded(&e.message), "{}", e);
            }
        }
    }

    #[test]
    fn known_hosts_lines_never_panic(lines in proptest::collection::vec(hostile(), 0..8), host in "[a-z0-9.-]{1,20}", port in any::<u16>(), key in proptest::collection::vec(any::<u8>(), 0..64)) {
        let kh = KnownHosts::parse(&lines.join("\n"));
        let _ = kh.check(&host, port, &key);
    }

    #[test]
    fn remote_urls_never_panic_and_ssh_urls_round_trip(
        v in hostile(),
        user in "[a-z][a-z0-9]{0,8}",
        host in "[a-z][a-z0-9.-]{0,20}",
        port in 1u16..,
        path in "[a-z0-9/._-]{1,30}",
    ) {
        if let Err(m) = RemoteUrl::parse(&v) {
            prop_assert!(m.contains("use a local path") || m.contains("bad port"), "{m}");
            prop_assert!(bounded(&m), "{m}");
        }
        let url = format!("ssh://{user}@{host}:{port}/{path}");
        prop_assert_eq!(
            RemoteUrl::parse(&url).unwrap(),
            RemoteUrl::Ssh { user: Some(user.clone()), host: host.clone(), port, path: format!("/{path}") }
        );
        if let Err(e) = settings_with("GIT_BACKUP_REPO", &v) {
            prop_assert_eq!(e.var.as_str(), "GIT_BACKUP_REPO", "{}", e);
        }
    }
}
