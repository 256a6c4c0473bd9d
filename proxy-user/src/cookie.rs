//! The sticky cookie: an opaque, signed value naming a backend identity.
//!
//! Value (URL-safe base64 without padding) of the bytes
//! `version(1) ‖ len(1) ‖ identity(len) ‖ issued_at(u64 BE, Unix seconds) ‖
//! key_id(4) ‖ tag(16)`, where `tag` is HMAC-SHA256 truncated to 16 bytes
//! over the service name (domain separation: a cookie of one service is no
//! good for another) and every byte before the tag. No address is inside;
//! the identity is looked up in the current backend table. Verification is
//! constant-time. [`Keyring`] holds the keys (the first signs, all verify).
//! This module also scans `Cookie` headers and builds `Set-Cookie`.

mod header;
mod keyring;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::Mac as _;
use subtle::ConstantTimeEq as _;

pub use self::{
    header::{find_cookie, remove_cookie, set_cookie_value},
    keyring::{KEY_FILE_NAME, Keyring, KeyringError, KeyringHandle, MAX_KEYS},
};

/// Version byte of the current format.
pub const VERSION: u8 = 1;
/// Longest backend identity a cookie can carry, in bytes.
pub const MAX_IDENTITY: usize = 128;
/// Bytes of the truncated HMAC-SHA256 tag.
pub const TAG_LEN: usize = 16;
/// Longest cookie value accepted for decoding (longer ones are rejected
/// before any base64 work).
pub const MAX_VALUE_LEN: usize = (2 + MAX_IDENTITY + 8 + 4 + TAG_LEN) * 4 / 3 + 4;

const FIXED: usize = 2 + 8 + 4 + TAG_LEN;

/// What a valid cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    /// The backend identity (static: its name; Swarm: the task).
    pub backend: String,
    /// When it was issued (Unix seconds).
    pub issued_at: u64,
}

/// Why a cookie value was rejected. Callers treat all of them alike (a
/// new pick and a new cookie); the variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Longer than [`MAX_VALUE_LEN`].
    #[error("cookie value too long")]
    TooLong,
    /// Not canonical URL-safe base64.
    #[error("cookie value is not base64url")]
    Base64,
    /// Wrong length or structure.
    #[error("cookie value is malformed")]
    Malformed,
    /// A version this build does not know.
    #[error("unknown cookie version {0}")]
    Version(u8),
    /// Signed by a key that is not in the keyring.
    #[error("cookie signed by an unknown key")]
    UnknownKey,
    /// The tag does not match.
    #[error("cookie signature mismatch")]
    BadTag,
    /// Older than the service's Max-Age (or issued in the future).
    #[error("cookie expired")]
    Expired,
    /// The identity is empty, too long or not UTF-8.
    #[error("invalid backend identity")]
    Identity,
}

impl Keyring {
    /// Signs `sticky` for `service` with the first key.
    ///
    /// # Errors
    /// [`CookieError::Identity`] when the identity is empty or longer
    /// than [`MAX_IDENTITY`].
    pub fn encode(&self, service: &str, sticky: &Sticky) -> Result<String, CookieError> {
        let id = sticky.backend.as_bytes();
        let len = u8::try_from(id.len()).map_err(|_| CookieError::Identity)?;
        if id.is_empty() || id.len() > MAX_IDENTITY {
            return Err(CookieError::Identity);
        }
        let key = self.signing_key();
        let mut buf = Vec::with_capacity(FIXED + id.len());
        buf.push(VERSION);
        buf.push(len);
        buf.extend_from_slice(id);
        buf.extend_from_slice(&sticky.issued_at.to_be_bytes());
        buf.extend_from_slice(&key.id);
        let tag = key.tag(service, &buf);
        buf.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(buf))
    }

    /// Decodes and verifies a cookie value of `service`.
    ///
    /// `max_age` (seconds) rejects cookies older than that at `now`
    /// (Unix seconds); issued-at more than a minute in the future is
    /// rejected too.
    ///
    /// # Errors
    /// Any [`CookieError`]: the value must not be trusted.
    pub fn decode(&self, service: &str, value: &[u8], now: u64, max_age: Option<u64>) -> Result<Sticky, CookieError> {
        let mut buf = [0u8; MAX_VALUE_LEN];
        let Verified {
            identity: backend,
            issued_at,
            ..
        } = self.verify_in(service, value, now, max_age, &mut buf)?;
        Ok(Sticky {
            backend: backend.to_owned(),
            issued_at,
        })
    }

    /// [`Keyring::decode`] without allocating (the identity borrows `buf`),
    /// also saying whether the signing key signed it (a cookie signed by an
    /// older key is worth re-signing).
    ///
    /// # Errors
    /// Any [`CookieError`]: the value must not be trusted.
    pub fn verify_in<'b>(
        &self,
        service: &str,
        value: &[u8],
        now: u64,
        max_age: Option<u64>,
        buf: &'b mut [u8; MAX_VALUE_LEN],
    ) -> Result<Verified<'b>, CookieError> {
        let fields = unpack(value, buf)?;
        let key = self.key_by_id(&fields.key_id).ok_or(CookieError::UnknownKey)?;
        let expected = key.tag(service, fields.signed);
        if !bool::from(expected.ct_eq(fields.tag)) {
            return Err(CookieError::BadTag);
        }
        let identity = std::str::from_utf8(fields.identity).map_err(|_| CookieError::Identity)?;
        if identity.is_empty() {
            return Err(CookieError::Identity);
        }
        let issued_at = fields.issued_at;
        if issued_at > now.saturating_add(60) {
            return Err(CookieError::Expired);
        }
        if let Some(max) = max_age
            && now.saturating_sub(issued_at) > max
        {
            return Err(CookieError::Expired);
        }
        Ok(Verified {
            identity,
            issued_at,
            current_key: self.is_signing(&fields.key_id),
        })
    }
}

/// A cookie that verified ([`Keyring::verify_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'b> {
    /// The backend identity.
    pub identity: &'b str,
    /// When it was issued (Unix seconds).
    pub issued_at: u64,
    /// Signed by the signing key (not by an older one that still verifies).
    pub current_key: bool,
}

/// The fields of a cookie value read without verifying its signature:
/// for support tools only, never for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    /// The backend identity it claims.
    pub backend: String,
    /// When it claims to have been issued (Unix seconds).
    pub issued_at: u64,
    /// The id of the key it claims to be signed with.
    pub key_id: [u8; 4],
}

/// Reads a cookie value's fields without checking the signature.
///
/// # Errors
/// When the value is not structurally a cookie of this format.
pub fn peek(value: &[u8]) -> Result<Unverified, CookieError> {
    let mut buf = [0u8; MAX_VALUE_LEN];
    let fields = unpack(value, &mut buf)?;
    Ok(Unverified {
        backend: std::str::from_utf8(fields.identity)
            .map_err(|_| CookieError::Identity)?
            .to_owned(),
        issued_at: fields.issued_at,
        key_id: fields.key_id,
    })
}

/// The parts of a cookie value, not yet verified.
struct Fields<'b> {
    /// Every byte the tag covers (with the service name).
    signed: &'b [u8],
    tag: &'b [u8],
    identity: &'b [u8],
    issued_at: u64,
    key_id: [u8; 4],
}

/// Decodes `value` into `buf` and splits it into its fields, checking
/// only length, base64 and version.
fn unpack<'b>(value: &[u8], buf: &'b mut [u8; MAX_VALUE_LEN]) -> Result<Fields<'b>, CookieError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(CookieError::TooLong);
    }
    // A value of at most MAX_VALUE_LEN characters decodes to fewer bytes.
    let n = URL_SAFE_NO_PAD
        .decode_slice(value, &mut buf[..])
        .map_err(|_| CookieError::Base64)?;
    let raw: &'b [u8] = &buf[..n];
    if raw.len() < FIXED + 1 {
        return Err(CookieError::Malformed);
    }
    if raw[0] != VERSION {
        return Err(CookieError::Version(raw[0]));
    }
    let len = usize::from(raw[1]);
    if raw.len() != FIXED + len {
        return Err(CookieError::Malformed);
    }
    let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&signed[2 + len..2 + len + 8]);
    let mut key_id = [0u8; 4];
    key_id.copy_from_slice(&signed[2 + len + 8..]);
    Ok(Fields {
        signed,
        tag,
        identity: &signed[2..2 + len],
        issued_at: u64::from_be_bytes(ts),
        key_id,
    })
}

impl Keyring {
    /// The ids of the keys, the signing key first (for support tools).
    pub fn key_ids(&self) -> Vec<[u8; 4]> {
        self.ids()
    }
}

/// One HMAC key with its 4-byte id (the first bytes of SHA-256 of the key).
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) id: [u8; 4],
    mac: hmac::Hmac<sha2::Sha256>,
}

impl Key {
    pub(crate) fn new(secret: &[u8]) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(secret);
        let id = [digest[0], digest[1], digest[2], digest[3]];
        let mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret)
            .expect("HMAC-SHA256 accepts keys of any length");
        Self { id, mac }
    }

    /// A 32-byte secret for another use of this key (`label`, `context`).
    /// A cookie tag's input starts with the service name's length as a
    /// u32, which is never `u32::MAX`: these inputs start with four 0xff
    /// bytes, so no derived secret is ever a cookie tag.
    pub(crate) fn derive(&self, label: &[u8], context: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&[0xff; 4]);
        mac.update(&u32::try_from(label.len()).unwrap_or(u32::MAX).to_be_bytes());
        mac.update(label);
        mac.update(context);
        mac.finalize().into_bytes().into()
    }

    /// The truncated tag; the pre-keyed HMAC is cloned, never re-keyed.
    fn tag(&self, service: &str, signed: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(&u32::try_from(service.len()).unwrap_or(u32::MAX).to_be_bytes());
        mac.update(service.as_bytes());
        mac.update(signed);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full[..TAG_LEN]);
        out
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The current time in Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
