//! The one reading of the environment. `Env` is a snapshot of the process environment,
//! taken once at start; every crate reads its settings from it through the typed readers
//! here, so a value means the same everywhere and a bad one fails with one message:
//! the variable, the value it got (hidden for secrets) and what is allowed (from the
//! catalog).
//!
//! Invariant: no code outside this module calls `std::env::var` for a setting.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use super::catalog;
use crate::domain::quote_input;

/// What a bad setting was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// The variable is not set (or empty).
    Unset,
    /// The value of a secret: never shown.
    Hidden,
    /// The value, as given.
    Value(String),
    /// The problem is not about the text of the value (a file it names cannot be read).
    NotShown,
}

/// A configuration problem: the variable, what it got, what is wrong and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// The environment variable at fault.
    pub var: String,
    /// What it got.
    pub got: Got,
    /// What is wrong with it.
    pub message: String,
    /// What is allowed (the catalog's words), empty when the catalog has none.
    pub allowed: String,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.got {
            Got::Unset => write!(f, "{} is not set: {}", self.var, self.message)?,
            Got::Hidden => write!(f, "{}=(hidden): {}", self.var, self.message)?,
            Got::Value(v) => write!(f, "{}={}: {}", self.var, quote_input(v), self.message)?,
            Got::NotShown => write!(f, "{}: {}", self.var, self.message)?,
        }
        if !self.allowed.is_empty() {
            write!(f, "; allowed: {}", self.allowed)?;
        }
        Ok(())
    }
}

impl SettingsError {
    /// A problem of `var` that is not about the text of its value (a file it names
    /// cannot be read, a privilege it needs is missing).
    pub fn new(var: &str, message: impl Into<String>) -> SettingsError {
        SettingsError {
            var: var.to_owned(),
            got: Got::NotShown,
            message: message.into(),
            allowed: catalog::allowed(var).to_owned(),
        }
    }
}

/// A snapshot of the environment, read once; the settings of every crate come from it.
#[derive(Debug, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    read: Mutex<BTreeSet<String>>,
}

impl Clone for Env {
    fn clone(&self) -> Env {
        Env {
            vars: self.vars.clone(),
            read: Mutex::new(self.names_read()),
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Env {
        Env {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            read: Mutex::default(),
        }
    }
}

impl Env {
    /// The process environment, now. Values that are not UTF-8 are read lossily (and
    /// then fail their own checks, naming the variable).
    pub fn from_process() -> Env {
        std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect()
    }

    /// This environment with `var` set to `value`.
    pub fn with(mut self, var: &str, value: impl Into<String>) -> Env {
        self.vars.insert(var.to_owned(), value.into());
        self
    }

    /// This environment without `var`.
    pub fn without(mut self, var: &str) -> Env {
        self.vars.remove(var);
        self
    }

    /// The value of `var`, trimmed; `None` when unset or blank.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(var.to_owned());
        self.vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Every variable a reader asked for so far (set or not): the catalog test checks
    /// that each is documented.
    pub fn names_read(&self) -> BTreeSet<String> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The error of `var`: what it got (hidden for a secret), `message`, and what the
    /// catalog allows.
    pub fn invalid(&self, var: &str, message: impl Into<String>) -> SettingsError {
        let got = match self.vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Got::Unset,
            Some(v) => match catalog::shown_as(var) {
                catalog::Shown::Hidden => Got::Hidden,
                catalog::Shown::Url => Got::Value(crate::remote::redact_url(v)),
                catalog::Shown::Plain => Got::Value(v.to_owned()),
            },
        };
        SettingsError {
            var: var.to_owned(),
            got,
            message: message.into(),
            allowed: catalog::allowed(var).to_owned(),
        }
    }

    /// A value parsed by `parse`, whose error says what is wrong; `None` when unset.
    pub fn parsed<T>(
        &self,
        var: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, SettingsError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).map_err(|m| self.invalid(var, m)),
        }
    }

    /// Free text (a name, a user): any characters but control characters.
    pub fn text(&self, var: &str) -> Result<Option<String>, SettingsError> {
        self.parsed(var, |v| {
            if v.chars().any(char::is_control) {
                Err("holds a control character (a line break?)".to_owned())
            } else {
                Ok(v.to_owned())
            }
        })
    }

    /// A boolean: `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`, in any case;
    /// unset is `default`. The one reading of a flag, for every crate.
    pub fn flag(&self, var: &str, default: bool) -> Result<bool, SettingsError> {
        Ok(self
            .parsed(var, |v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err("is not a boolean".to_owned()),
            })?
            .unwrap_or(default))
    }

    /// A number in `range`; unset is `default`.
    pub fn number<T>(&self, var: &str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, SettingsError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        Ok(self
            .parsed(var, |v| {
                let n: T = v.parse().map_err(|_| "is not a whole number".to_owned())?;
                if range.contains(&n) {
                    Ok(n)
                } else {
                    Err(format!("is out of range {} to {}", range.start(), range.end()))
                }
            })?
            .unwrap_or(default))
    }

    /// One of `choices` (exactly, lower case); unset is `default`.
    pub fn choice(
        &self,
        var: &str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, SettingsError> {
        Ok(self
            .parsed(var, |v| {
                choices
                    .iter()
                    .find(|c| **c == v)
                    .copied()
                    .ok_or_else(|| "is not one of the choices".to_owned())
            })?
            .unwrap_or(default))
    }

    /// A listen address `host:port`; unset is `default`.
    pub fn address(&self, var: &str, default: &str) -> Result<SocketAddr, SettingsError> {
        let addr = self.parsed(var, |v| v.parse().map_err(|_| "is not an address host:port".to_owned()))?;
        Ok(addr.unwrap_or_else(|| default.parse().expect("the default address parses")))
    }

    /// An absolute path (the service's working directory is not the operator's).
    pub fn path(&self, var: &str) -> Result<Option<PathBuf>, SettingsError> {
        self.parsed(var, |v| {
            let p = Path::new(v);
            if p.is_absolute() {
                Ok(p.to_path_buf())
            } else {
                Err("is not an absolute path".to_owned())
            }
        })
    }

    /// A comma-separated list, blanks dropped.
    pub fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `$XDG_DATA_HOME/config-backup`, else `$HOME/.local/share/config-backup`.
    pub fn default_data_dir(&self) -> Option<PathBuf> {
        let known = |v: &str| self.vars.get(v).filter(|v| !v.is_empty());
        if let Some(x) = known("XDG_DATA_HOME") {
            return Some(Path::new(x).join("config-backup"));
        }
        known("HOME").map(|h| Path::new(h).join(".local/share/config-backup"))
    }

    /// `CONFIG_BACKUP_DATA_DIR`, else the default data directory.
    pub fn data_dir(&self) -> Result<PathBuf, SettingsError> {
        match self.path("CONFIG_BACKUP_DATA_DIR")? {
            Some(d) => Ok(d),
            None => self.default_data_dir().ok_or_else(|| {
                self.invalid(
                    "CONFIG_BACKUP_DATA_DIR",
                    "there is no HOME or XDG_DATA_HOME to default to",
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_names_the_variable_the_value_and_what_is_allowed() {
        let env: Env = [("CONFIG_BACKUP_HOUR_UTC", " 24 "), ("CONFIG_BACKUP_ENABLED", "maybe")]
            .into_iter()
            .collect();
        let e = env.number("CONFIG_BACKUP_HOUR_UTC", 4u32, 0..=23).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CONFIG_BACKUP_HOUR_UTC=\"24\": is out of range 0 to 23; allowed: a whole number 0 to 23"
        );
        let e = env.flag("CONFIG_BACKUP_ENABLED", true).unwrap_err();
        assert!(e.to_string().contains("allowed: true or false"), "{e}");
    }

    #[test]
    fn a_secret_is_never_echoed() {
        let env: Env = [("AUTH_JWT_SECRET", "short-but-secret")].into_iter().collect();
        let e = env.invalid("AUTH_JWT_SECRET", "is too short");
        assert_eq!(e.got, Got::Hidden);
        assert!(!e.to_string().contains("short-but-secret"), "{e}");
    }

    #[test]
    fn every_spelling_of_a_flag_reads_the_same() {
        for (v, want) in [
            ("True", true),
            ("on", true),
            ("YES", true),
            ("1", true),
            ("off", false),
            ("0", false),
        ] {
            let env: Env = [("X", v)].into_iter().collect();
            assert_eq!(env.flag("X", !want).unwrap(), want, "{v}");
        }
    }
}
