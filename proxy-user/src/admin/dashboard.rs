//! The dashboard: three static files compiled into the binary (no CDN, no
//! request leaves the admin listener). The page polls `/api/status` and
//! `/api/rate` once a second and redraws in place.

use http::{HeaderMap, HeaderValue, header};

/// One embedded file.
pub(super) struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The file served at `path`, if any.
pub(super) fn asset(path: &str) -> Option<Asset> {
    let (content_type, body): (&'static str, &'static [u8]) = match path {
        "/" | "/dashboard" | "/dashboard/" => ("text/html; charset=utf-8", include_bytes!("dashboard/index.html")),
        "/dashboard/app.js" => ("text/javascript; charset=utf-8", include_bytes!("dashboard/app.js")),
        "/dashboard/style.css" => ("text/css; charset=utf-8", include_bytes!("dashboard/style.css")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// The page may load only its own files and call only its own API.
pub(super) fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refers_only_to_embedded_files() {
        let html = std::str::from_utf8(asset("/").unwrap().body).unwrap();
        for needle in ["/dashboard/app.js", "/dashboard/style.css"] {
            assert!(html.contains(needle), "{needle}");
            assert!(asset(needle).is_some(), "{needle}");
        }
        for a in ["/", "/dashboard/app.js", "/dashboard/style.css"] {
            let body = std::str::from_utf8(asset(a).unwrap().body).unwrap();
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{a} refers off-host"
            );
        }
    }
}
