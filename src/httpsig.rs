//! HTTP Message Signatures (RFC 9421) with `ed25519`, and `Content-Digest` (RFC 9530), for
//! native clients and hub-to-hub calls. Pure: a request's parts in, headers or a verdict out.
//!
//! Signing covers `@method`, `@target-uri` and `content-digest` at least, with `created`,
//! `expires`, a `nonce` and the `keyid`. Verification refuses, each with its own error: an
//! oversized or malformed header, a label that is not there, a required component that is not
//! covered, an unknown key id, a signature that is too old, from the future or expired, a
//! missing or replayed nonce, a body that does not match its digest, and a bad signature.
//!
//! Only the structured-field shapes these headers use are parsed (RFC 8941 dictionaries of
//! inner lists of strings with parameters, and of byte sequences).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use data_encoding::BASE64;
use libp2p::identity::{Keypair, PublicKey};
use sha2::{Digest, Sha256, Sha512};

/// Components every hub-to-hub signature must cover.
pub const REQUIRED: [&str; 3] = ["@method", "@target-uri", "content-digest"];
/// Largest `Signature-Input` or `Signature` header accepted.
pub const MAX_HEADER: usize = 4096;

/// Why a signature or digest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the {0} header is over {MAX_HEADER} bytes")]
    TooLarge(&'static str),
    #[error("malformed {0} header: {1}")]
    Malformed(&'static str, String),
    #[error("no signature labelled {0:?}")]
    NoLabel(String),
    #[error("the signature does not cover {0}")]
    NotCovered(String),
    #[error("the request has no {0} to sign or check")]
    MissingComponent(String),
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    #[error("the signature has no {0} parameter")]
    MissingParam(&'static str),
    #[error("the signature expired")]
    Expired,
    #[error("the signature was created in the future")]
    FromTheFuture,
    #[error("the signature is too old")]
    TooOld,
    #[error("nonce {0:?} was already used")]
    Replayed(String),
    #[error("the body does not match its Content-Digest")]
    DigestMismatch,
    #[error("Content-Digest names no supported algorithm (sha-256, sha-512)")]
    DigestAlgorithm,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("only alg=\"ed25519\" is accepted, not {0:?}")]
    Algorithm(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The parts of a request a signature can cover.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The absolute target URI, e.g. `https://hub.example/alice/song/refs?x=1`.
    pub target_uri: &'a str,
    /// Header fields (any case), in order; repeated names are combined.
    pub headers: &'a [(&'a str, &'a str)],
}

impl Request<'_> {
    fn component(&self, name: &str) -> Result<String> {
        let uri = || {
            reqwest::Url::parse(self.target_uri)
                .map_err(|_| Error::MissingComponent(format!("{name} (bad target URI)")))
        };
        Ok(match name {
            "@method" => self.method.to_ascii_uppercase(),
            "@target-uri" => self.target_uri.to_owned(),
            "@authority" => {
                let u = uri()?;
                let host = u.host_str().unwrap_or("").to_ascii_lowercase();
                match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                }
            }
            "@scheme" => uri()?.scheme().to_owned(),
            "@path" => uri()?.path().to_owned(),
            "@query" => format!("?{}", uri()?.query().unwrap_or("")),
            n if n.starts_with('@') => return Err(Error::MissingComponent(n.to_owned())),
            n => {
                let values: Vec<&str> = self
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.trim())
                    .collect();
                if values.is_empty() {
                    return Err(Error::MissingComponent(n.to_owned()));
                }
                values.join(", ")
            }
        })
    }
}

/// A parameter value: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Str(String),
    Int(i64),
}

/// The covered components and parameters of one signature, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub components: Vec<String>,
    pub params: Vec<(String, Param)>,
}

impl Params {
    /// The serialized inner list (the `@signature-params` value and the `Signature-Input`
    /// member).
    pub fn serialize(&self) -> String {
        let mut out = String::from("(");
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&quote(c));
        }
        out.push(')');
        for (k, v) in &self.params {
            out.push(';');
            out.push_str(k);
            out.push('=');
            match v {
                Param::Str(s) => out.push_str(&quote(s)),
                Param::Int(n) => out.push_str(&n.to_string()),
            }
        }
        out
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.params.iter().find_map(|(k, v)| match v {
            Param::Int(n) if k == key => Some(*n),
            _ => None,
        })
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.params.iter().find_map(|(k, v)| match v {
            Param::Str(s) if k == key => Some(s.as_str()),
            _ => None,
        })
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The signature base (RFC 9421 §2.5).
pub fn signature_base(req: &Request<'_>, params: &Params) -> Result<String> {
    let mut out = String::new();
    for c in &params.components {
        out.push_str(&quote(c));
        out.push_str(": ");
        out.push_str(&req.component(c)?);
        out.push('\n');
    }
    out.push_str("\"@signature-params\": ");
    out.push_str(&params.serialize());
    Ok(out)
}

/// `Content-Digest: sha-256=:…:` for a body.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", BASE64.encode(&Sha256::digest(body)))
}

/// Checks a `Content-Digest` header against the body: every supported digest it lists must
/// match, and it must list at least one.
pub fn check_content_digest(header: &str, body: &[u8]) -> Result<()> {
    let mut checked = false;
    for (alg, value) in parse_byte_dict(header, "Content-Digest")? {
        let ours: Vec<u8> = match alg.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        if ours != value {
            return Err(Error::DigestMismatch);
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(Error::DigestAlgorithm)
    }
}

/// How to sign: the signature's times, nonce, key id and label.
#[derive(Debug, Clone)]
pub struct Signing<'a> {
    pub created: i64,
    pub expires: i64,
    pub nonce: &'a str,
    pub keyid: &'a str,
    pub label: &'a str,
}

/// Signs `req` over `components` with `key`. Returns the `Signature-Input` and `Signature`
/// header values.
pub fn sign(
    req: &Request<'_>,
    components: &[&str],
    how: &Signing<'_>,
    key: &Keypair,
) -> Result<(String, String)> {
    let params = Params {
        components: components.iter().map(|c| (*c).to_owned()).collect(),
        params: vec![
            ("created".into(), Param::Int(how.created)),
            ("expires".into(), Param::Int(how.expires)),
            ("nonce".into(), Param::Str(how.nonce.to_owned())),
            ("alg".into(), Param::Str("ed25519".into())),
            ("keyid".into(), Param::Str(how.keyid.to_owned())),
        ],
    };
    let base = signature_base(req, &params)?;
    let sig = key.sign(base.as_bytes()).map_err(|_| Error::BadSignature)?;
    Ok((
        format!("{}={}", how.label, params.serialize()),
        format!("{}=:{}:", how.label, BASE64.encode(&sig)),
    ))
}

/// The three headers that sign a request over [`REQUIRED`]: `Content-Digest`,
/// `Signature-Input` and `Signature`.
pub fn signed_headers(
    method: &str,
    url: &str,
    body: &[u8],
    how: &Signing<'_>,
    key: &Keypair,
) -> Result<[(&'static str, String); 3]> {
    let digest = content_digest(body);
    let headers = [("content-digest", digest.as_str())];
    let req = Request {
        method,
        target_uri: url,
        headers: &headers,
    };
    let (input, sig) = sign(&req, &REQUIRED, how, key)?;
    Ok([
        ("content-digest", digest),
        ("signature-input", input),
        ("signature", sig),
    ])
}

/// What a verifier requires.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    pub required: &'a [&'a str],
    /// Now, in unix seconds.
    pub now: i64,
    /// Oldest acceptable `created`, as an age.
    pub max_age: Duration,
    /// Clock skew tolerated for `created` in the future.
    pub skew: Duration,
    pub require_nonce: bool,
}

/// A verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub keyid: String,
    pub nonce: Option<String>,
    pub created: i64,
}

/// Verifies signature `label` (or the only one) of `req`, with the key `key_of(keyid)`.
/// The nonce, when present, is recorded in `replay`.
pub fn verify(
    req: &Request<'_>,
    signature_input: &str,
    signature: &str,
    label: Option<&str>,
    policy: &Policy<'_>,
    key_of: impl Fn(&str) -> Option<PublicKey>,
    replay: &ReplayCache,
) -> Result<Verified> {
    if signature_input.len() > MAX_HEADER {
        return Err(Error::TooLarge("Signature-Input"));
    }
    if signature.len() > MAX_HEADER {
        return Err(Error::TooLarge("Signature"));
    }
    let inputs = parse_inputs(signature_input)?;
    let (label, params) = match label {
        Some(l) => inputs
            .into_iter()
            .find(|(k, _)| k == l)
            .ok_or_else(|| Error::NoLabel(l.to_owned()))?,
        None => match <[_; 1]>::try_from(inputs) {
            Ok([one]) => one,
            Err(v) if v.is_empty() => return Err(Error::NoLabel(String::new())),
            Err(_) => {
                return Err(Error::Malformed(
                    "Signature-Input",
                    "several signatures and no label chosen".into(),
                ));
            }
        },
    };
    let sig = parse_byte_dict(signature, "Signature")?
        .into_iter()
        .find(|(k, _)| *k == label)
        .map(|(_, v)| v)
        .ok_or_else(|| Error::NoLabel(label.clone()))?;
    for r in policy.required {
        if !params.components.iter().any(|c| c == r) {
            return Err(Error::NotCovered((*r).to_owned()));
        }
    }
    if let Some(alg) = params.str("alg")
        && alg != "ed25519"
    {
        return Err(Error::Algorithm(alg.to_owned()));
    }
    let created = params
        .int("created")
        .ok_or(Error::MissingParam("created"))?;
    if created > policy.now + policy.skew.as_secs() as i64 {
        return Err(Error::FromTheFuture);
    }
    if policy.now - created > policy.max_age.as_secs() as i64 {
        return Err(Error::TooOld);
    }
    if let Some(expires) = params.int("expires")
        && expires <= policy.now
    {
        return Err(Error::Expired);
    }
    let keyid = params
        .str("keyid")
        .ok_or(Error::MissingParam("keyid"))?
        .to_owned();
    let key = key_of(&keyid).ok_or_else(|| Error::UnknownKey(keyid.clone()))?;
    let nonce = params.str("nonce").map(str::to_owned);
    if policy.require_nonce && nonce.is_none() {
        return Err(Error::MissingParam("nonce"));
    }
    let base = signature_base(req, &params)?;
    if sig.len() != 64 || !key.verify(base.as_bytes(), &sig) {
        return Err(Error::BadSignature);
    }
    // Only a good signature spends its nonce, so a forger cannot burn someone else's.
    if let Some(n) = &nonce {
        let until = params
            .int("expires")
            .unwrap_or(created + policy.max_age.as_secs() as i64);
        replay.spend(&keyid, n, until, policy.now)?;
    }
    Ok(Verified {
        keyid,
        nonce,
        created,
    })
}

/// The `keyid` of signature `label` (or the only one), read before verifying so the
/// verifier can look the key up.
pub fn keyid(signature_input: &str, label: Option<&str>) -> Result<String> {
    if signature_input.len() > MAX_HEADER {
        return Err(Error::TooLarge("Signature-Input"));
    }
    let inputs = parse_inputs(signature_input)?;
    let params = match label {
        Some(l) => inputs.into_iter().find(|(k, _)| k == l).map(|(_, p)| p),
        None if inputs.len() == 1 => inputs.into_iter().next().map(|(_, p)| p),
        None => None,
    }
    .ok_or_else(|| Error::NoLabel(label.unwrap_or_default().to_owned()))?;
    params
        .str("keyid")
        .map(str::to_owned)
        .ok_or(Error::MissingParam("keyid"))
}

/// Nonces seen, per key, until their signature could no longer verify anyway.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<(String, String), i64>>,
}

/// Nonces kept at most; the oldest go first (they are about to expire anyway).
const REPLAY_CAPACITY: usize = 100_000;

impl ReplayCache {
    fn spend(&self, keyid: &str, nonce: &str, until: i64, now: i64) -> Result<()> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, t| *t > now);
        if seen.len() >= REPLAY_CAPACITY
            && let Some(oldest) = seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
        let key = (keyid.to_owned(), nonce.to_owned());
        if seen.contains_key(&key) {
            return Err(Error::Replayed(nonce.to_owned()));
        }
        seen.insert(key, until);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8941, the two dictionary shapes used here

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
    what: &'static str,
}

impl Cursor<'_> {
    fn err(&self, why: &str) -> Error {
        Error::Malformed(self.what, format!("{why} at byte {}", self.i))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {:?}", b as char)))
        }
    }

    fn key(&mut self) -> Result<String> {
        let start = self.i;
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.i += 1,
            _ => return Err(self.err("expected a key")),
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.i += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c as char);
                            self.i += 1;
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(c @ 0x20..=0x7e) => {
                    out.push(c as char);
                    self.i += 1;
                }
                Some(_) => return Err(self.err("a character not allowed in a string")),
            }
        }
    }

    fn integer(&mut self) -> Result<i64> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if text.is_empty() || text == "-" || text.trim_start_matches('-').len() > 15 {
            return Err(self.err("bad integer"));
        }
        text.parse().map_err(|_| self.err("bad integer"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        self.expect(b':')?;
        let start = self.i;
        while self.peek().is_some_and(|c| c != b':') {
            self.i += 1;
        }
        let b64 = &self.s[start..self.i];
        self.expect(b':')?;
        BASE64.decode(b64).map_err(|_| self.err("bad base64"))
    }

    fn params(&mut self) -> Result<Vec<(String, Param)>> {
        let mut out = Vec::new();
        while self.peek() == Some(b';') {
            self.i += 1;
            self.ws();
            let k = self.key()?;
            self.expect(b'=')?;
            let v = match self.peek() {
                Some(b'"') => Param::Str(self.string()?),
                Some(b'-' | b'0'..=b'9') => Param::Int(self.integer()?),
                _ => return Err(self.err("a parameter must be a string or an integer")),
            };
            if out.iter().any(|(x, _): &(String, Param)| *x == k) {
                return Err(self.err("repeated parameter"));
            }
            out.push((k, v));
        }
        Ok(out)
    }

    /// `, ` between members, or the end.
    fn next_member(&mut self) -> Result<bool> {
        self.ws();
        match self.peek() {
            None => Ok(false),
            Some(b',') => {
                self.i += 1;
                self.ws();
                if self.peek().is_none() {
                    return Err(self.err("trailing comma"));
                }
                Ok(true)
            }
            _ => Err(self.err("expected ',' between members")),
        }
    }
}

/// `label=("c1" "c2");p=…, …`
fn parse_inputs(header: &str) -> Result<Vec<(String, Params)>> {
    let mut c = Cursor {
        s: header.trim().as_bytes(),
        i: 0,
        what: "Signature-Input",
    };
    let mut out: Vec<(String, Params)> = Vec::new();
    if c.peek().is_none() {
        return Ok(out);
    }
    loop {
        let label = c.key()?;
        c.expect(b'=')?;
        c.expect(b'(')?;
        let mut components = Vec::new();
        loop {
            c.ws();
            if c.peek() == Some(b')') {
                c.i += 1;
                break;
            }
            let name = c.string()?;
            if c.peek() == Some(b';') {
                return Err(c.err("component parameters are not supported"));
            }
            components.push(name);
        }
        let params = c.params()?;
        if out.iter().any(|(l, _)| *l == label) {
            return Err(c.err("repeated label"));
        }
        out.push((label, Params { components, params }));
        if !c.next_member()? {
            return Ok(out);
        }
    }
}

/// `label=:base64:, …`
fn parse_byte_dict(header: &str, what: &'static str) -> Result<Vec<(String, Vec<u8>)>> {
    if header.len() > MAX_HEADER {
        return Err(Error::TooLarge(what));
    }
    let mut c = Cursor {
        s: header.trim().as_bytes(),
        i: 0,
        what,
    };
    let mut out = Vec::new();
    if c.peek().is_none() {
        return Ok(out);
    }
    loop {
        let label = c.key()?;
        c.expect(b'=')?;
        let value = c.bytes()?;
        c.params()?;
        out.push((label, value));
        if !c.next_member()? {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9421 B.1.4 `test-key-ed25519` (the private scalar seed and public key, base64url).
    fn rfc_key() -> Keypair {
        let seed = data_encoding::BASE64URL_NOPAD
            .decode(b"n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
            .unwrap();
        let secret = libp2p::identity::ed25519::SecretKey::try_from_bytes(seed).unwrap();
        Keypair::from(libp2p::identity::ed25519::Keypair::from(secret))
    }

    const HEADERS: [(&str, &str); 4] = [
        ("Host", "example.com"),
        ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("Content-Type", "application/json"),
        ("Content-Length", "18"),
    ];

    fn rfc_request() -> Request<'static> {
        Request {
            method: "POST",
            target_uri: "http://example.com/foo?param=Value&Pet=dog",
            headers: &HEADERS,
        }
    }

    #[test]
    fn the_rfc_9421_ed25519_vector_b_2_6() {
        let key = rfc_key();
        let public = data_encoding::BASE64URL_NOPAD
            .decode(b"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")
            .unwrap();
        assert_eq!(
            key.public().try_into_ed25519().unwrap().to_bytes().to_vec(),
            public
        );
        let input = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
        let (label, params) = parse_inputs(input).unwrap().remove(0);
        assert_eq!(label, "sig-b26");
        let base = signature_base(&rfc_request(), &params).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        let sig = key.sign(base.as_bytes()).unwrap();
        assert_eq!(
            BASE64.encode(&sig),
            "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
        );
        // And the verifier accepts the RFC's headers as they are.
        let policy = Policy {
            required: &["@method", "@path"],
            now: 1618884473 + 10,
            max_age: Duration::from_secs(300),
            skew: Duration::from_secs(60),
            require_nonce: false,
        };
        let v = verify(
            &rfc_request(),
            input,
            "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
            None,
            &policy,
            |id| (id == "test-key-ed25519").then(|| key.public()),
            &ReplayCache::default(),
        )
        .unwrap();
        assert_eq!(v.keyid, "test-key-ed25519");
    }

    #[test]
    fn content_digest_matches_the_rfc_9530_example() {
        // RFC 9530 §2: {"hello": "world"} and a trailing newline.
        let body = b"{\"hello\": \"world\"}\n";
        assert_eq!(
            content_digest(body),
            "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
        );
        check_content_digest(&content_digest(body), body).unwrap();
        assert_eq!(
            check_content_digest(&content_digest(body), b"{}"),
            Err(Error::DigestMismatch)
        );
        assert_eq!(
            check_content_digest("md5=:AAAA:", body),
            Err(Error::DigestAlgorithm)
        );
    }

    /// The hub-to-hub request every fixture signs and checks.
    fn request<'a>(headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method: "POST",
            target_uri: "https://hub.example/alice/song/notify",
            headers,
        }
    }

    struct Fixture {
        key: Keypair,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
        now: i64,
    }

    impl Fixture {
        fn new() -> Fixture {
            let key = Keypair::generate_ed25519();
            let body = b"{\"repo\":\"alice/song\"}".to_vec();
            Fixture {
                headers: vec![("Content-Digest".into(), content_digest(&body))],
                key,
                body,
                now: 1_790_000_000,
            }
        }

        fn header_refs(&self) -> Vec<(&str, &str)> {
            self.headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }

        fn signed(&self, nonce: &str, expires_in: i64) -> (String, String) {
            let h = self.header_refs();
            let req = request(&h);
            let how = Signing {
                created: self.now,
                expires: self.now + expires_in,
                nonce,
                keyid: "hub-a",
                label: "sig1",
            };
            sign(&req, &REQUIRED, &how, &self.key).unwrap()
        }

        fn check(
            &self,
            input: &str,
            sig: &str,
            now: i64,
            replay: &ReplayCache,
        ) -> Result<Verified> {
            let h = self.header_refs();
            let req = request(&h);
            let digest = req.component("content-digest")?;
            check_content_digest(&digest, &self.body)?;
            let policy = Policy {
                required: &REQUIRED,
                now,
                max_age: Duration::from_secs(300),
                skew: Duration::from_secs(30),
                require_nonce: true,
            };
            verify(
                &req,
                input,
                sig,
                Some("sig1"),
                &policy,
                |id| (id == "hub-a").then(|| self.key.public()),
                replay,
            )
        }
    }

    #[test]
    fn signed_requests_verify_once_and_bad_ones_say_why() {
        let f = Fixture::new();
        let replay = ReplayCache::default();
        let (input, sig) = f.signed("n-1", 60);
        assert!(
            input.contains(r#"("@method" "@target-uri" "content-digest")"#),
            "{input}"
        );
        f.check(&input, &sig, f.now + 1, &replay).unwrap();
        assert_eq!(
            f.check(&input, &sig, f.now + 2, &replay),
            Err(Error::Replayed("n-1".into()))
        );
        // Expired, too old, from the future.
        let (input, sig) = f.signed("n-2", 60);
        assert_eq!(
            f.check(&input, &sig, f.now + 61, &replay),
            Err(Error::Expired)
        );
        let (input, sig) = f.signed("n-3", 3600);
        assert_eq!(
            f.check(&input, &sig, f.now + 400, &replay),
            Err(Error::TooOld)
        );
        assert_eq!(
            f.check(&input, &sig, f.now - 100, &replay),
            Err(Error::FromTheFuture)
        );
        // A flipped signature byte, a truncated signature.
        let (input, sig) = f.signed("n-4", 60);
        let mut raw = BASE64
            .decode(
                sig.trim_start_matches("sig1=:")
                    .trim_end_matches(':')
                    .as_bytes(),
            )
            .unwrap();
        raw[0] ^= 1;
        let flipped = format!("sig1=:{}:", BASE64.encode(&raw));
        assert_eq!(
            f.check(&input, &flipped, f.now, &replay),
            Err(Error::BadSignature)
        );
        let short = format!("sig1=:{}:", BASE64.encode(&raw[..40]));
        assert_eq!(
            f.check(&input, &short, f.now, &replay),
            Err(Error::BadSignature)
        );
        // The failed attempts did not spend the nonce.
        f.check(&input, &sig, f.now, &replay).unwrap();
        // An unknown key id, a component not covered, an oversized header, garbage.
        let (input, sig) = f.signed("n-5", 60);
        let other = input.replace("hub-a", "hub-b");
        assert_eq!(
            f.check(&other, &sig, f.now, &replay),
            Err(Error::UnknownKey("hub-b".into()))
        );
        let uncovered = input.replace(r#" "content-digest""#, "");
        assert_eq!(
            f.check(&uncovered, &sig, f.now, &replay),
            Err(Error::NotCovered("content-digest".into()))
        );
        let huge = format!("{input}{}", " ".repeat(MAX_HEADER));
        assert_eq!(
            f.check(&huge, &sig, f.now, &replay),
            Err(Error::TooLarge("Signature-Input"))
        );
        assert!(matches!(
            f.check("sig1=(\"@method\"", &sig, f.now, &replay),
            Err(Error::Malformed(..))
        ));
        // A body that does not match its digest.
        let mut tampered = Fixture::new();
        tampered.key = f.key.clone();
        tampered.body = b"{\"repo\":\"mallory/song\"}".to_vec();
        tampered.headers = f.headers.clone();
        assert_eq!(
            tampered.check(&input, &sig, f.now, &replay),
            Err(Error::DigestMismatch)
        );
    }
}
