//! The sticky cookie of a service: its attributes, their defaults, and the
//! overrides a config file or a service's labels give.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// `SameSite` attribute of the sticky cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax` (the default).
    Lax,
    /// `SameSite=None`, which forces `Secure`.
    None,
}

/// When the `Secure` attribute is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureMode {
    /// When the request came over TLS or with `X-Forwarded-Proto: https`
    /// from a trusted proxy (the default).
    Auto,
    /// Always.
    Always,
    /// Never (unless `SameSite=None`).
    Never,
}

/// The sticky cookie of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// Cookie name (default: [`default_cookie_name`] of the service).
    pub name: String,
    /// `Path` (default `/`).
    pub path: String,
    /// `HttpOnly` (default on).
    pub http_only: bool,
    /// `SameSite` (default Lax).
    pub same_site: SameSite,
    /// `Secure` policy (default auto).
    pub secure: SecureMode,
    /// `Max-Age`, also enforced when verifying (default: a session cookie,
    /// no expiry).
    pub max_age: Option<Duration>,
    /// `Domain` (default none).
    pub domain: Option<String>,
}

impl CookieConfig {
    /// The defaults for a service called `service`.
    pub fn for_service(service: &str) -> Self {
        Self {
            name: default_cookie_name(service),
            path: "/".to_owned(),
            http_only: true,
            same_site: SameSite::Lax,
            secure: SecureMode::Auto,
            max_age: None,
            domain: None,
        }
    }
}

/// The default cookie name of a service: `_` and the first five hex digits
/// of SHA-256 of its name (Traefik v1 style), so services never share one.
pub fn default_cookie_name(service: &str) -> String {
    let digest = Sha256::digest(service.as_bytes());
    let hex: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    format!("_{}", &hex[..5])
}

impl std::str::FromStr for SameSite {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "strict" => Ok(Self::Strict),
            "lax" => Ok(Self::Lax),
            "none" => Ok(Self::None),
            _ => Err(format!("{s:?} is not strict, lax or none")),
        }
    }
}

impl SameSite {
    /// The attribute's value, as in `SameSite=Lax`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

impl std::str::FromStr for SecureMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => Err(format!("{s:?} is not auto, always or never")),
        }
    }
}

/// Cookie settings that replace a service's defaults, from the config
/// file or from labels; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieOverrides {
    /// Cookie name.
    pub name: Option<String>,
    /// `Path`.
    pub path: Option<String>,
    /// `Domain`.
    pub domain: Option<String>,
    /// `HttpOnly`.
    pub http_only: Option<bool>,
    /// `SameSite`, as written (`strict`, `lax`, `none`).
    pub same_site: Option<String>,
    /// `Secure`, as written (`auto`, `always`, `never`).
    pub secure: Option<String>,
    /// `Max-Age` in seconds (positive).
    pub max_age: Option<u64>,
}

impl CookieOverrides {
    /// Applies the overrides to `cookie`. Values that make no sense are
    /// left out and returned as (field, problem), e.g.
    /// `("same_site", "\"lots\" is not strict, lax or none")`; the rest is
    /// applied.
    pub fn apply(self, cookie: &mut CookieConfig) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(n) = self.name {
            cookie.name = n;
        }
        if let Some(p) = self.path {
            cookie.path = p;
        }
        if let Some(h) = self.http_only {
            cookie.http_only = h;
        }
        if let Some(v) = self.same_site {
            match v.parse() {
                Ok(s) => cookie.same_site = s,
                Err(e) => problems.push(("same_site", e)),
            }
        }
        if let Some(v) = self.secure {
            match v.parse() {
                Ok(s) => cookie.secure = s,
                Err(e) => problems.push(("secure", e)),
            }
        }
        match self.max_age {
            Some(0) => problems.push(("max_age", "must be positive (omit it for a session cookie)".into())),
            Some(secs) => cookie.max_age = Some(Duration::from_secs(secs)),
            None => {}
        }
        if self.domain.is_some() {
            cookie.domain = self.domain;
        }
        problems
    }
}
