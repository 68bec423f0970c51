//! HTTP Range (RFC 9110 §14) and `If-None-Match` for object and block bytes: what a request
//! asks ([`requested`]) and the 200/206/416 answer ([`answer`]). Shared by the gateway
//! (`/ipfs/{cid}`) and the UI's raw files, so both answer a range the same way.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

/// What the request asks of `size` bytes under `etag`: its `Range`, unless an `If-Range`
/// names another version (then the whole thing).
pub(crate) fn requested(headers: &HeaderMap, etag: &str, size: u64) -> Wanted {
    if !if_range_holds(headers, etag) {
        return Wanted::Whole;
    }
    wanted(
        headers.get(header::RANGE).map(|v| v.to_str().unwrap_or("")),
        size,
    )
}

/// A 200, 206 or 416 answer for `size` bytes; `body(start, end_inclusive)` gives the bytes.
/// A 416 carries `Content-Range: bytes */size` and a short text body.
pub(crate) fn answer(size: u64, want: Wanted, body: impl FnOnce(u64, u64) -> Body) -> Response {
    match want {
        Wanted::Whole => {
            let mut res = Response::new(if size == 0 {
                Body::empty()
            } else {
                body(0, size - 1)
            });
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            res
        }
        Wanted::Part(start, end) => {
            let mut res = Response::new(body(start, end));
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = res.headers_mut();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
            h.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {start}-{end}/{size}")),
            );
            res
        }
        Wanted::Unsatisfiable => {
            let mut res = Response::new(Body::from(format!(
                "That range is not inside these {size} bytes.\n"
            )));
            *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            res.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            );
            res
        }
    }
}

/// Whether `If-None-Match` names this entity tag (weak comparison, as RFC 9110 §13.1.2 says).
pub(crate) fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let ours = etag.trim_start_matches("W/");
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == ours)
}

/// What a `Range` header asks of an object of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// No range (or one this hub ignores, such as several ranges): the whole object.
    Whole,
    /// `start..=end`, within the object.
    Part(u64, u64),
    /// Malformed or outside the object: 416.
    Unsatisfiable,
}

/// Reads a `Range` header (RFC 9110 §14.2). One `bytes` range is honoured; several are
/// answered with the whole object (which the RFC allows), and other units are ignored.
pub(crate) fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(range) = range else {
        return Wanted::Whole;
    };
    let Some((unit, set)) = range.trim().split_once('=') else {
        return Wanted::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Wanted::Whole;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        return if specs.is_empty() {
            Wanted::Unsatisfiable
        } else {
            Wanted::Whole
        };
    };
    let Some((a, b)) = spec.split_once('-') else {
        return Wanted::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if size == 0 {
        return Wanted::Unsatisfiable;
    }
    let last = size - 1;
    match (a.is_empty(), b.is_empty()) {
        // `bytes=-n`: the last n bytes.
        (true, false) => match num(b) {
            Some(0) | None => Wanted::Unsatisfiable,
            Some(n) => Wanted::Part(size.saturating_sub(n), last),
        },
        // `bytes=a-`.
        (false, true) => match num(a) {
            Some(start) if start <= last => Wanted::Part(start, last),
            _ => Wanted::Unsatisfiable,
        },
        // `bytes=a-b`.
        (false, false) => match (num(a), num(b)) {
            (Some(start), Some(end)) if start <= end && start <= last => {
                Wanted::Part(start, end.min(last))
            }
            _ => Wanted::Unsatisfiable,
        },
        (true, true) => Wanted::Unsatisfiable,
    }
}

/// Whether `If-Range` (when sent) still names this object, so the range applies.
pub(crate) fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).map(|v| v.to_str()) {
        None => true,
        // A strong comparison; dates never match (there is no Last-Modified).
        Some(Ok(v)) => v.trim() == etag,
        Some(Err(_)) => false,
    }
}

pub(crate) fn header_value(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_byte_range_and_refuses_bad_ones() {
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=2-4"), 10), Wanted::Part(2, 4));
        assert_eq!(wanted(Some("bytes=8-"), 10), Wanted::Part(8, 9));
        assert_eq!(wanted(Some("bytes=-3"), 10), Wanted::Part(7, 9));
        assert_eq!(wanted(Some("bytes=5-99"), 10), Wanted::Part(5, 9));
        assert_eq!(wanted(Some("bytes=0-1,4-5"), 10), Wanted::Whole);
        assert_eq!(wanted(Some("items=0-1"), 10), Wanted::Whole);
        for bad in [
            "bytes=10-",
            "bytes=4-2",
            "bytes=-0",
            "bytes=x-1",
            "bytes",
            "bytes=0-1",
        ] {
            let size = if bad == "bytes=0-1" { 0 } else { 10 };
            assert_eq!(wanted(Some(bad), size), Wanted::Unsatisfiable, "{bad}");
        }
    }

    #[test]
    fn answers_200_206_and_416() {
        let whole = answer(10, Wanted::Whole, |_, _| Body::from("0123456789"));
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(whole.headers()[header::CONTENT_LENGTH], "10");
        let part = answer(10, Wanted::Part(2, 4), |s, e| {
            assert_eq!((s, e), (2, 4));
            Body::from("234")
        });
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers()[header::CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(part.headers()[header::CONTENT_LENGTH], "3");
        let refused = answer(10, Wanted::Unsatisfiable, |_, _| unreachable!());
        assert_eq!(refused.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(refused.headers()[header::CONTENT_RANGE], "bytes */10");
        let empty = answer(0, Wanted::Whole, |_, _| unreachable!());
        assert_eq!(empty.headers()[header::CONTENT_LENGTH], "0");
    }

    #[test]
    fn if_range_with_another_tag_asks_for_everything() {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-0"));
        assert_eq!(requested(&h, "\"a\"", 5), Wanted::Part(0, 0));
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"b\""));
        assert_eq!(requested(&h, "\"a\"", 5), Wanted::Whole);
    }
}
