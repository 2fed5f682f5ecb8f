//! What a recorded value in a request body, form or header is, by its key
//! and its pattern — decided before anything is written: kept as recorded
//! (a code, a status, a concept's UUID), replaced by a synthetic value of
//! its kind (a name, a birth date, an identifier, free text), or refused
//! (it looks like a secret or an identifier the importer cannot place).
//!
//! The keys are FHIR R4's identifying elements (`name`, `birthDate`,
//! `identifier`, `telecom`, `address`, `photo`, `contact`) and OpenMRS
//! REST's (`names`, `givenName`, `familyName`, `birthdate`, `identifiers`,
//! `addresses`, `address1`…, `cityVillage`, `attributes`); everything inside
//! one is replaced but its structural codes (`system`, `use`, …).

use crate::import::route::{pattern_kind, ValueKind};
use std::collections::BTreeSet;

/// What to do with one recorded string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Written as recorded.
    Keep,
    /// Replaced by a feeder column of synthetic values of this kind.
    Column(ValueKind),
    /// Free text: replaced by synthetic words of the same length.
    Text,
    /// Looks like a secret or an identifier the importer cannot place: the
    /// import stops unless the user names the key as safe.
    Refuse(&'static str),
}

/// Keys whose whole value is a person's identifying data.
const IDENTIFYING: &[&str] = &[
    "name",
    "names",
    "given",
    "givenname",
    "family",
    "familyname",
    "middlename",
    "prefix",
    "suffix",
    "birthdate",
    "birthtime",
    "deceaseddatetime",
    "identifier",
    "identifiers",
    "telecom",
    "address",
    "addresses",
    "address1",
    "address2",
    "address3",
    "line",
    "city",
    "cityvillage",
    "district",
    "countydistrict",
    "stateprovince",
    "postalcode",
    "contact",
    "photo",
    "attributes",
    "display",
    "email",
    "phone",
    "username",
    "ssn",
    "mrn",
];

/// Keys inside an identifying element whose values are codes, not data.
const STRUCTURAL: &[&str] = &[
    "resourcetype",
    "system",
    "use",
    "status",
    "code",
    "gender",
    "unit",
    "url",
    "mode",
    "rel",
    "relation",
    "method",
    "intent",
    "priority",
    "language",
    "contenttype",
    "preferred",
    "voided",
    "rank",
];

/// Whether a key is an identifying element (any case; `patientName`,
/// `homePhone` and `emailAddress` too).
pub fn identifying(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    IDENTIFYING.contains(&key.as_str())
        || [
            "name",
            "birth",
            "phone",
            "email",
            "address",
            "identifier",
            "nationalid",
        ]
        .iter()
        .any(|part| key.contains(part))
}

/// Whether a key holds a code (kept, after the secret scan).
pub fn structural(key: &str) -> bool {
    STRUCTURAL.contains(&key.to_ascii_lowercase().as_str())
}

/// The verdict on `value` under `key`; `inside` when an enclosing key is
/// identifying. A key in `safe` keeps its value as recorded.
pub fn classify(key: &str, value: &str, inside: bool, safe: &BTreeSet<String>) -> Verdict {
    if safe.contains(key) || value.chars().count() <= 1 {
        return Verdict::Keep;
    }
    let pattern = pattern_kind(value);
    let lower = key.to_ascii_lowercase();
    // A UUID not handed out by an answer and not under a person's key is
    // the server's metadata (a concept, a location, an identifier or
    // attribute type), which replay needs as recorded; so is a CIEL id.
    if (pattern == Some(ValueKind::Uuid) && !person_key(&lower)) || is_ciel(value) {
        return Verdict::Keep;
    }
    if (identifying(key) || inside) && !structural(key) {
        let kind = if lower.contains("birth") || lower.contains("deceased") {
            ValueKind::Date
        } else if let Some(kind) = pattern {
            kind
        } else if value.bytes().any(|b| b.is_ascii_digit()) {
            ValueKind::Opaque
        } else if value.contains(char::is_whitespace) && !lower.contains("name") {
            return Verdict::Text;
        } else {
            ValueKind::Name
        };
        return Verdict::Column(kind);
    }
    if looks_secret(value) {
        return Verdict::Refuse("looks like a secret (long, random-looking)");
    }
    match pattern {
        Some(ValueKind::Email) => return Verdict::Column(ValueKind::Email),
        Some(ValueKind::Uuid) => return Verdict::Column(ValueKind::Uuid),
        Some(ValueKind::Date) => return Verdict::Keep,
        _ => {}
    }
    if structural(key) {
        return Verdict::Keep;
    }
    if looks_identifier(value) {
        return Verdict::Column(pattern.unwrap_or(ValueKind::Opaque));
    }
    if value.contains(char::is_whitespace) && value.len() > 12 {
        return Verdict::Text;
    }
    Verdict::Keep
}

/// A key naming a person or their record (`patient`, `person`, `subject`).
fn person_key(lower: &str) -> bool {
    ["patient", "person", "subject", "beneficiary"]
        .iter()
        .any(|k| lower.contains(k))
}

/// Five digits or more in one token, or a token of letters and digits
/// mixed (`100GEJ`, `MRN-00042`, a phone number): a record number, a
/// national id, a phone. A decimal (`98.6`) and a timestamp are not.
pub fn looks_identifier(value: &str) -> bool {
    // One token: a list (`a,b`), a parameter (`q=0.9`) or a pattern is not.
    let token = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'+' | b':'));
    if !token || value.len() > 64 {
        return false;
    }
    if is_timestamp(value) || value.parse::<f64>().is_ok() && value.contains('.') {
        return false;
    }
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    let letters = value.bytes().filter(u8::is_ascii_alphabetic).count();
    digits >= 5 || (digits >= 2 && letters >= 2 && value.len() >= 5)
}

/// A CIEL concept id as OpenMRS writes it: digits padded with `A` to 36.
fn is_ciel(value: &str) -> bool {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value.len() == 36 && digits > 0 && value.bytes().skip(digits).all(|b| b == b'A')
}

/// `2026-12-07T10:31:52.000+0000` and the like.
fn is_timestamp(value: &str) -> bool {
    let v = value.as_bytes();
    v.len() >= 16
        && v[4] == b'-'
        && v[7] == b'-'
        && v[10] == b'T'
        && v[..10].iter().filter(|b| b.is_ascii_digit()).count() == 8
}

/// A token (JWT, API key, hex or base64 secret): 16 characters or more,
/// no whitespace, and random-looking — at least 3.5 bits of entropy a
/// character, or 32 hexadecimal digits or more. A UUID, a URL and a
/// timestamp are not.
pub fn looks_secret(value: &str) -> bool {
    if value.len() < 16
        || value.contains(char::is_whitespace)
        || pattern_kind(value) == Some(ValueKind::Uuid)
        || value.starts_with("http://")
        || value.starts_with("https://")
        || value.starts_with("urn:")
        || is_timestamp(value)
    {
        return false;
    }
    // A token is made of base64's, URL-safe base64's and a JWT's
    // characters; a MIME list (`text/html,*/*;q=0.8`) or a sentence is not.
    if !value.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'.' | b'-' | b'~')
    }) {
        return false;
    }
    let hex = value.len() >= 32 && value.bytes().all(|b| b.is_ascii_hexdigit());
    let classes = [
        value.bytes().any(|b| b.is_ascii_lowercase()),
        value.bytes().any(|b| b.is_ascii_uppercase()),
        value.bytes().any(|b| b.is_ascii_digit()),
    ]
    .iter()
    .filter(|c| **c)
    .count();
    hex || (classes >= 2 && entropy(value) >= 3.5)
}

/// Shannon entropy in bits a character.
fn entropy(value: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in value.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = value.chars().count() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// A field whose value is a credential, whatever it looks like (a
/// password, a PIN, a one-time code, a client secret) — or a login name
/// the replay must send as the user's own: written as `${env:…}`.
pub fn secret_field(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', '_'], "");
    ["pwd", "pin", "otp", "login"].contains(&k.as_str())
        || [
            "password",
            "passwd",
            "secret",
            "token",
            "apikey",
            "credential",
            "username",
        ]
        .iter()
        .any(|w| k.contains(w))
}

/// A name (a JSON field, a form field, a part) that may itself be data: a
/// UUID, a number, a date, an e-mail address, a record number, a token.
pub fn data_like(name: &str) -> bool {
    pattern_kind(name).is_some() || looks_identifier(name) || looks_secret(name)
}

/// Headers a replay never sends: the client's own, the browser's, and
/// those whose value the user's cookie jar or the scenario's `[auth]`
/// supplies.
pub fn dropped_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with(':')
        || n.starts_with("sec-")
        || matches!(
            n.as_str(),
            "host"
                | "connection"
                | "content-length"
                | "content-type"
                | "cookie"
                | "authorization"
                | "user-agent"
                | "referer"
                | "origin"
                | "accept-encoding"
                | "accept-language"
                | "cache-control"
                | "pragma"
                | "dnt"
                | "upgrade-insecure-requests"
                | "te"
                | "priority"
                | "if-none-match"
                | "if-modified-since"
                | "keep-alive"
                | "transfer-encoding"
                | "purpose"
        )
}

/// A header whose value says how to answer (`Accept`, `Prefer`): kept as
/// recorded, after the secret scan.
pub fn protocol_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "accept"
            | "prefer"
            | "x-requested-with"
            | "content-language"
            | "if-match"
            | "accept-profile"
    )
}

/// A header whose value is a credential: never written, an `${env:…}`
/// template instead.
pub fn secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token",
        "auth",
        "key",
        "secret",
        "csrf",
        "xsrf",
        "session",
        "password",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(key: &str, value: &str) -> Verdict {
        classify(key, value, false, &BTreeSet::new())
    }

    #[test]
    fn a_persons_data_is_replaced_by_its_kind() {
        assert_eq!(
            verdict("givenName", "Wanjiku"),
            Verdict::Column(ValueKind::Name)
        );
        assert_eq!(
            verdict("family", "Otieno"),
            Verdict::Column(ValueKind::Name)
        );
        assert_eq!(
            verdict("birthDate", "1987-03-14"),
            Verdict::Column(ValueKind::Date)
        );
        assert_eq!(
            verdict("birthdate", "1987-03-14T00:00:00.000"),
            Verdict::Column(ValueKind::Date)
        );
        assert_eq!(
            verdict("identifier", "100GEJ"),
            Verdict::Column(ValueKind::Opaque)
        );
        assert_eq!(
            verdict("address1", "12 Moi Avenue"),
            Verdict::Column(ValueKind::Opaque)
        );
        assert_eq!(
            verdict("cityVillage", "Kisumu"),
            Verdict::Column(ValueKind::Name)
        );
        assert_eq!(
            verdict("homePhone", "0712345678"),
            Verdict::Column(ValueKind::Number)
        );
        // Inside `telecom`: the value is data, its system a code.
        assert_eq!(
            classify("value", "+254 712 345 678", true, &BTreeSet::new()),
            Verdict::Column(ValueKind::Opaque)
        );
        assert_eq!(
            classify("system", "phone", true, &BTreeSet::new()),
            Verdict::Keep
        );
        assert_eq!(
            classify("use", "official", true, &BTreeSet::new()),
            Verdict::Keep
        );
    }

    #[test]
    fn codes_and_metadata_stay_and_identifiers_anywhere_go() {
        assert_eq!(verdict("gender", "F"), Verdict::Keep);
        assert_eq!(verdict("resourceType", "Patient"), Verdict::Keep);
        assert_eq!(verdict("status", "final"), Verdict::Keep);
        // CIEL's concept ids: digits padded with `A` to a UUID's length.
        assert_eq!(
            verdict("concept", "5089AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Verdict::Keep
        );
        assert_eq!(
            verdict("concept", "a09ab2c5-878e-4905-b25d-5784167d0216"),
            Verdict::Keep
        );
        assert_eq!(
            verdict("patient", "a09ab2c5-878e-4905-b25d-5784167d0216"),
            Verdict::Column(ValueKind::Uuid)
        );
        assert_eq!(
            verdict("encounterDatetime", "2026-12-07T10:31:52.000+0000"),
            Verdict::Keep
        );
        assert_eq!(verdict("value", "98.6"), Verdict::Keep);
        assert_eq!(
            verdict("nationalNumber", "27801234567"),
            Verdict::Column(ValueKind::Number)
        );
        assert_eq!(
            verdict("ref", "MRN-00042"),
            Verdict::Column(ValueKind::Opaque)
        );
        assert_eq!(
            verdict("contact", "nurse@example.org"),
            Verdict::Column(ValueKind::Email)
        );
        assert_eq!(
            verdict("note", "seen today, complains of a cough"),
            Verdict::Text
        );
        assert_eq!(verdict("note", "fine"), Verdict::Keep);
    }

    #[test]
    fn secrets_are_refused_unless_named_safe() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.Qm9ndXNTaWduYXR1cmVWYWx1ZQ";
        assert!(looks_secret(jwt));
        assert!(looks_secret("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"));
        assert!(!looks_secret("a09ab2c5-878e-4905-b25d-5784167d0216"));
        assert!(!looks_secret("http://loinc.org/some/long/path"));
        assert!(!looks_secret("aaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!looks_secret(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
        ));
        assert!(matches!(verdict("state", jwt), Verdict::Refuse(_)));
        let safe = BTreeSet::from(["state".to_owned()]);
        assert_eq!(classify("state", jwt, false, &safe), Verdict::Keep);
    }

    #[test]
    fn credential_fields_and_names_that_are_data_are_told() {
        for f in [
            "password",
            "newPassword",
            "client_secret",
            "pin",
            "otp",
            "apiKey",
            "username",
            "access_token",
        ] {
            assert!(secret_field(f), "{f}");
        }
        for f in [
            "spinal",
            "location",
            "pinned",
            "display",
            "name",
            "loginLocation",
        ] {
            assert!(!secret_field(f), "{f}");
        }
        for k in [
            "MRN-00042",
            "3f2a9c4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
            "1987-03-14",
            "12345",
            "a@b.org",
        ] {
            assert!(data_like(k), "{k}");
        }
        for k in [
            "givenName",
            "address1",
            "line2",
            "resourceType",
            "obs[]",
            "patient",
        ] {
            assert!(!data_like(k), "{k}");
        }
    }

    #[test]
    fn credentials_and_browser_headers_are_never_replayed_as_recorded() {
        for h in [
            "Cookie",
            "Authorization",
            "sec-ch-ua",
            ":authority",
            "Referer",
            "User-Agent",
        ] {
            assert!(dropped_header(h), "{h}");
        }
        for h in [
            "X-CSRF-Token",
            "X-Api-Key",
            "X-Auth-Request",
            "X-Session-Id",
        ] {
            assert!(secret_header(h), "{h}");
        }
        assert!(!dropped_header("Accept") && !secret_header("Accept") && protocol_header("Accept"));
        assert!(!looks_identifier(
            "text/html,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!dropped_header("Prefer") && !secret_header("Prefer"));
    }
}
