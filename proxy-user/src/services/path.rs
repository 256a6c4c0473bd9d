//! Paths as routing sees them: normalised the way backends resolve them,
//! and matched against a rule's prefix on segment boundaries.
//!
//! A rule that sends `/admin` to one service must also catch
//! `/x/../admin`, `/%61dmin`, `/x%2F..%2Fadmin` and `//admin`, which nginx,
//! Go and most frameworks resolve to `/admin`. So before matching,
//! percent-encoded unreserved characters (RFC 3986 §6.2.2.2) and encoded
//! slashes are decoded, dot segments removed (§5.2.4) and repeated slashes
//! merged. Only routing uses the normalised path; the backend receives the
//! request target as sent.

use std::borrow::Cow;

/// `path` normalised for routing (borrowed when already normal, which
/// is almost always).
pub fn normalize(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let suspicious = b.contains(&b'%') || b.windows(2).any(|w| w == b"/." || w == b"//") || !path.starts_with('/');
    if !suspicious {
        return Cow::Borrowed(path);
    }
    let decoded = decode_for_routing(path);
    Cow::Owned(merge_slashes(&remove_dot_segments(&decoded)))
}

/// Whether the normalised `path` is under `prefix`: equal to it, or
/// continuing it with a new segment (`/api` matches `/api` and `/api/x`,
/// not `/apix`); a prefix ending in `/` matches everything below it.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` where it stands for an unreserved character or a slash
/// (nginx and Go decode `%2F` before they resolve a path); other escapes
/// stay, with upper-case hex digits.
fn decode_for_routing(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len() + 1);
    if !path.starts_with('/') {
        out.push(b'/');
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(hi), Some(lo)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c)))
        {
            let c = hi << 4 | lo;
            if is_unreserved(c) || c == b'/' {
                out.push(c);
            } else {
                out.push(b'%');
                out.push(b[i + 1].to_ascii_uppercase());
                out.push(b[i + 2].to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII was replaced by ASCII, so this stays valid UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 §5.2.4 for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/api", "/api/v1/x.json", "/a-b_c~d"] {
            assert!(matches!(normalize(p), Cow::Borrowed(_)), "{p}");
        }
    }

    #[test]
    fn paths_resolve_as_backends_resolve_them() {
        let cases = [
            ("/x/../admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%2e%2e/admin", "/admin"),
            ("/a/./b/../../admin/", "/admin/"),
            ("//admin", "/admin"),
            ("/api/..", "/"),
            ("/..", "/"),
            ("/a/.", "/a/"),
            ("/a%2fb", "/a/b"),
            ("/x%2F..%2Fadmin", "/admin"),
            ("/a%3fb", "/a%3Fb"),
            ("/100%", "/100%"),
            ("/%zz", "/%zz"),
            ("/caf%C3%A9", "/caf%C3%A9"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "{input}");
        }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/"));
        assert!(prefix_matches("/api", "/api/v1"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/ap"));
        assert!(prefix_matches("/api/", "/api/v1"));
        assert!(!prefix_matches("/api/", "/api"));
    }
}
