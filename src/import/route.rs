//! A request target as a route template, with every value that may be a
//! patient's or a secret taken out before anything is kept: what stays
//! literal is only what is certainly a route word, everything else becomes
//! a feeder column whose values are synthetic (`synthetic.rs`).
//!
//! A path segment stays literal when it is a FHIR resource type, a FHIR
//! operation or control word (`$validate`, `_history`, `metadata`), one of
//! the route words of the clusters surge knows (OpenMRS's REST resources,
//! `healthz`, `actuator`, …), or a word the user names (`--keep-word`).
//! Any other word — `/patients/smith` — becomes a column too: a word the
//! importer does not know may be a name. UUIDs, numbers, dates, e-mail
//! addresses, record numbers and tokens always do. A query keeps the names
//! of its parameters when they look like parameter names (lowercase or `_`
//! first, at most three digits, not a value's pattern); a value stays
//! literal only for paging (`_count=10`, digits) and format parameters
//! (`_format=json`, a lowercase word), every other value becomes a column
//! named by its parameter.

use std::collections::BTreeSet;

/// What a value taken out of a route was, so the synthetic one looks
/// alike (and the scrub report can count it). Never the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueKind {
    /// A UUID.
    Uuid,
    /// Digits only (a database id).
    Number,
    /// A date, `yyyy-mm-dd` (a birth date).
    Date,
    /// An e-mail address.
    Email,
    /// A person's name (a `name`, `given`, `family` or `q` parameter).
    Name,
    /// A word that is not a known route word (a user name, a code, a
    /// name in a path).
    Word,
    /// Anything else: identifiers, tokens, names in paths.
    Opaque,
}

impl ValueKind {
    /// The kind's name in the scrub report.
    pub fn describe(self) -> &'static str {
        match self {
            ValueKind::Uuid => "UUIDs",
            ValueKind::Number => "numeric ids",
            ValueKind::Date => "dates",
            ValueKind::Email => "e-mail addresses",
            ValueKind::Name => "names",
            ValueKind::Word => "words not known as route words",
            ValueKind::Opaque => "other identifiers",
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Piece {
    /// Kept as written.
    Literal(String),
    /// A value taken out: its kind, and the word before it (the column's
    /// name comes from it: `Patient` → `patient_id`).
    Value(ValueKind, String),
}

/// A request's route: its method, path pieces and query.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path's segments.
    pub path: Vec<Piece>,
    /// The query's parameters in order, each name with its value.
    pub query: Vec<(String, Piece)>,
}

/// FHIR R4 resource types a clinical cluster serves (a segment that is one
/// stays literal).
const FHIR_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Appointment",
    "Binary",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CodeSystem",
    "Composition",
    "Condition",
    "Consent",
    "Coverage",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "EpisodeOfCare",
    "Flag",
    "Goal",
    "Group",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "List",
    "Location",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationRequest",
    "MedicationStatement",
    "OperationOutcome",
    "Observation",
    "Organization",
    "Parameters",
    "Patient",
    "Person",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "Schedule",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "StructureDefinition",
    "Subscription",
    "Task",
    "ValueSet",
];

/// Words a clinical cluster's routes are made of (OpenMRS REST resources,
/// its web paths, health and metrics endpoints, Keycloak's token path).
const ROUTE_WORDS: &[&str] = &[
    "openmrs",
    "ws",
    "rest",
    "fhir2",
    "fhir",
    "spa",
    "v1",
    "R4",
    "R5",
    "STU3",
    "DSTU2",
    "session",
    "patient",
    "person",
    "concept",
    "encounter",
    "obs",
    "visit",
    "location",
    "user",
    "provider",
    "patientidentifier",
    "patientidentifiertype",
    "encountertype",
    "visittype",
    "form",
    "order",
    "drug",
    "cohort",
    "relationship",
    "relationshiptype",
    "program",
    "programenrollment",
    "appointment",
    "appointmentscheduling",
    "attachment",
    "bytes",
    "systemsetting",
    "role",
    "privilege",
    "conceptclass",
    "conceptsource",
    "personattributetype",
    "locationtag",
    "idgen",
    "identifiersource",
    "bedmanagement",
    "queue",
    "queueentry",
    "emrapi",
    "encounterrole",
    "orderentryconfig",
    "careprogram",
    "allergy",
    "condition",
    "diagnosis",
    "address",
    "name",
    "identifier",
    "attribute",
    "search",
    "login",
    "logout",
    "static",
    "assets",
    "api",
    "v2",
    "v3",
    "healthz",
    "health",
    "livez",
    "readyz",
    "metrics",
    "actuator",
    "prometheus",
    "info",
    "auth",
    "realms",
    "protocol",
    "openid-connect",
    "token",
    "userinfo",
    "certs",
    "ws",
    "fhir-server",
    "hapi-fhir-jpaserver",
    "baseR4",
    "opt",
    "openfhir",
    "toopenehr",
    "tofhir",
    "owa",
    "module",
    "admin",
    "index.htm",
    "index.html",
    "home.page",
    "login.htm",
    "appui",
    "coreapps",
    "referenceapplication",
    "registrationapp",
    "visit",
    "visits",
    "search",
    "_search",
];

/// Query parameters whose values are counts and offsets (digits).
const PAGING_PARAMS: &[&str] = &[
    "_count",
    "_offset",
    "_getpagesoffset",
    "limit",
    "startIndex",
];

/// Query parameters whose values are format and search controls (a
/// lowercase vocabulary: `full`, `json`, `true`, `-date`).
const CONTROL_PARAMS: &[&str] = &[
    "_sort",
    "_format",
    "_summary",
    "_elements",
    "_include",
    "_revinclude",
    "_total",
    "_pretty",
    "v",
    "lang",
    "format",
];

/// Parameters that carry a person's name.
const NAME_PARAMS: &[&str] = &["name", "given", "family", "q", "phonetic"];

/// The route of `method` and `target` (path and query, percent-encoded as
/// sent); `keep` holds words the user named as route words.
pub fn route(method: &str, target: &str, keep: &BTreeSet<String>) -> Route {
    route_and_values(method, target, keep).0
}

/// [`route`], with the recorded text each value piece took out, in the
/// route's order (path, then query): what the column's shape is made from,
/// read in the one pass that decided the piece.
pub fn route_and_values<'a>(
    method: &str,
    target: &'a str,
    keep: &BTreeSet<String>,
) -> (Route, Vec<&'a str>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut before = String::new();
    let mut pieces = Vec::new();
    let mut values = Vec::new();
    for segment in path.split('/').skip(1) {
        let piece = segment_piece(segment, &before, keep);
        match &piece {
            Piece::Literal(word) => before = word.clone(),
            Piece::Value(..) => values.push(segment),
        }
        pieces.push(piece);
    }
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, piece, recorded) = match pair.split_once('=') {
            Some((name, value)) if is_param_name(name) => {
                (name.to_owned(), query_piece(name, value), value)
            }
            // A name that may itself be data: the whole pair is a value.
            _ => (
                "param".to_owned(),
                Piece::Value(ValueKind::Opaque, "param".to_owned()),
                pair,
            ),
        };
        if let Piece::Value(..) = piece {
            values.push(recorded);
        }
        pairs.push((name, piece));
    }
    let mut route = Route {
        method: method.to_owned(),
        path: pieces,
        query: pairs,
    };
    tell_apart(&mut route);
    (route, values)
}

/// Two values of one kind after the same word in one route (`/x/{a}/{b}`)
/// are two columns, not one: the second's word gets `_2`, and so on.
fn tell_apart(route: &mut Route) {
    let mut seen: std::collections::BTreeMap<(ValueKind, String), usize> = Default::default();
    let pieces = route
        .path
        .iter_mut()
        .chain(route.query.iter_mut().map(|(_, p)| p));
    for piece in pieces {
        if let Piece::Value(kind, before) = piece {
            let n = seen.entry((*kind, before.clone())).or_insert(0);
            *n += 1;
            if *n > 1 {
                let base = if before.is_empty() {
                    "value"
                } else {
                    before.as_str()
                };
                *before = format!("{base}_{n}");
            }
        }
    }
}

fn segment_piece(segment: &str, before: &str, keep: &BTreeSet<String>) -> Piece {
    let value = |kind| Piece::Value(kind, before.to_owned());
    if segment.is_empty() {
        return Piece::Literal(String::new());
    }
    if let Some(kind) = pattern_kind(segment) {
        return value(kind);
    }
    // `$validate`, `_history`: a lowercase word after the sign, no digit.
    let control = segment.len() <= 40
        && (segment.starts_with('$') || segment.starts_with('_'))
        && segment.as_bytes()[1..]
            .first()
            .is_some_and(u8::is_ascii_lowercase)
        && segment[1..]
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-');
    let known = FHIR_TYPES.contains(&segment)
        || segment == "metadata"
        || control
        || ROUTE_WORDS.contains(&segment)
        || keep.contains(segment);
    if known {
        Piece::Literal(segment.to_owned())
    } else if is_route_word(segment) {
        value(ValueKind::Word)
    } else {
        value(ValueKind::Opaque)
    }
}

/// A short lowercase word: letters, `-` and `_`, and at most three digits
/// (`v1`, `ws`, `rest`, `patientidentifier`).
fn is_route_word(segment: &str) -> bool {
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    (1..=32).contains(&segment.len())
        && segment.as_bytes()[0].is_ascii_lowercase()
        && segment.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && digits <= 3
}

/// A parameter's name, not a value put where a name goes: lowercase or
/// `_` first, at most three digits, no value's pattern.
fn is_param_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && (name.as_bytes()[0].is_ascii_lowercase() || name.as_bytes()[0] == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        && name.bytes().filter(u8::is_ascii_digit).count() <= 3
        && pattern_kind(name).is_none()
}

/// The kind a value's pattern tells, whatever its place.
pub(crate) fn pattern_kind(value: &str) -> Option<ValueKind> {
    let v = value.as_bytes();
    let hex_at = |range: std::ops::Range<usize>| v[range].iter().all(u8::is_ascii_hexdigit);
    if v.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| v[i] == b'-')
        && hex_at(0..8)
        && hex_at(9..13)
        && hex_at(14..18)
        && hex_at(19..23)
        && hex_at(24..36)
    {
        return Some(ValueKind::Uuid);
    }
    if !v.is_empty() && v.iter().all(u8::is_ascii_digit) {
        return Some(ValueKind::Number);
    }
    if v.len() == 10
        && v[4] == b'-'
        && v[7] == b'-'
        && v.iter().filter(|b| b.is_ascii_digit()).count() == 8
    {
        return Some(ValueKind::Date);
    }
    if value.contains('@') || value.contains("%40") {
        return Some(ValueKind::Email);
    }
    None
}

fn query_piece(name: &str, value: &str) -> Piece {
    let paging = PAGING_PARAMS.contains(&name)
        && (1..=6).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_digit());
    let control = CONTROL_PARAMS.contains(&name)
        && (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || matches!(b, b'_' | b'.' | b',' | b':' | b'-'));
    if paging || control || value.is_empty() {
        return Piece::Literal(value.to_owned());
    }
    let kind = pattern_kind(value).unwrap_or(if NAME_PARAMS.contains(&name) {
        ValueKind::Name
    } else {
        ValueKind::Opaque
    });
    Piece::Value(kind, name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece {
        Piece::Literal(s.into())
    }

    #[test]
    fn route_words_stay_and_every_value_is_taken_out() {
        let none = BTreeSet::new();
        let r = route(
            "GET",
            "/openmrs/ws/rest/v1/patient/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0?v=full",
            &none,
        );
        assert_eq!(
            r.path,
            vec![
                lit("openmrs"),
                lit("ws"),
                lit("rest"),
                lit("v1"),
                lit("patient"),
                Piece::Value(ValueKind::Uuid, "patient".into())
            ]
        );
        assert_eq!(r.query, vec![("v".into(), lit("full"))]);
        let openmrs_fhir = route("GET", "/openmrs/ws/fhir2/R4/Patient?name=x", &none);
        assert_eq!(openmrs_fhir.path[3], lit("R4"));
        let fhir = route("GET", "/fhir/Patient/12345/_history/2", &none);
        assert_eq!(fhir.path[1], lit("Patient"));
        assert_eq!(
            fhir.path[2],
            Piece::Value(ValueKind::Number, "Patient".into())
        );
        assert_eq!(fhir.path[3], lit("_history"));
        // Names, record numbers, e-mails and dates in paths and queries.
        let names = route("GET", "/person/Smith/MRN-00042/jane%40example.org/1950-04-01?name=Mary&family=Okafor&identifier=NID-123-456&birthdate=1950-04-01&_count=10", &none);
        assert_eq!(
            names.path[1],
            Piece::Value(ValueKind::Opaque, "person".into())
        );
        assert_eq!(
            names.path[2],
            Piece::Value(ValueKind::Opaque, "person_2".into())
        );
        assert_eq!(
            names.path[3],
            Piece::Value(ValueKind::Email, "person".into())
        );
        assert_eq!(
            names.path[4],
            Piece::Value(ValueKind::Date, "person".into())
        );
        let kinds: Vec<(&str, &Piece)> = names.query.iter().map(|(n, p)| (n.as_str(), p)).collect();
        assert_eq!(
            kinds[0],
            ("name", &Piece::Value(ValueKind::Name, "name".into()))
        );
        assert_eq!(
            kinds[1],
            ("family", &Piece::Value(ValueKind::Name, "family".into()))
        );
        assert_eq!(
            kinds[2],
            (
                "identifier",
                &Piece::Value(ValueKind::Opaque, "identifier".into())
            )
        );
        assert_eq!(
            kinds[3],
            (
                "birthdate",
                &Piece::Value(ValueKind::Date, "birthdate".into())
            )
        );
        assert_eq!(kinds[4], ("_count", &lit("10")));
        // A safe parameter with a value that is not a control is taken out too.
        let sneaky = route("GET", "/fhir/Patient?_sort=a1b2c3d4e5", &none);
        assert!(matches!(sneaky.query[0].1, Piece::Value(..)));
    }

    /// Each value piece comes with the text it took out, a pair whose
    /// name may be data with the whole pair.
    #[test]
    fn each_value_comes_with_what_it_took_out() {
        let (r, values) = route_and_values(
            "GET",
            "/fhir/Patient/884213907?MRN-778812&_count=10&name=Okonkwo",
            &BTreeSet::new(),
        );
        let taken = r
            .path
            .iter()
            .chain(r.query.iter().map(|(_, p)| p))
            .filter(|p| matches!(p, Piece::Value(..)))
            .count();
        assert_eq!(taken, values.len());
        assert_eq!(values, ["884213907", "MRN-778812", "Okonkwo"]);
    }

    #[test]
    fn a_word_the_importer_does_not_know_is_taken_out_unless_named() {
        let none = BTreeSet::new();
        let r = route("GET", "/patients/smith/visits", &none);
        assert_eq!(r.path[0], Piece::Value(ValueKind::Word, String::new()));
        assert_eq!(r.path[1], Piece::Value(ValueKind::Word, "value_2".into()));
        assert_eq!(r.path[2], lit("visits"));
        let keep: BTreeSet<String> = ["patients".to_owned()].into();
        let kept = route("GET", "/patients/smith", &keep);
        assert_eq!(kept.path[0], lit("patients"));
        assert_eq!(
            kept.path[1],
            Piece::Value(ValueKind::Word, "patients".into())
        );
        // Names that may be data, and control values that are not controls.
        let q = route(
            "GET",
            "/fhir/Patient?Okonkwo=1&MRN-778812&_sort=Okonkwo&_count=1e9&_format=json&_count=20",
            &none,
        );
        let names: Vec<&str> = q.query.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["param", "param", "_sort", "_count", "_format", "_count"]
        );
        assert!(matches!(q.query[2].1, Piece::Value(..)));
        assert!(matches!(q.query[3].1, Piece::Value(..)));
        assert_eq!((&q.query[4].1, &q.query[5].1), (&lit("json"), &lit("20")));
        // `_` and `$` words with digits or capitals are values.
        let odd = route("GET", "/fhir/_Okonkwo/$x9", &none);
        assert!(matches!(odd.path[1], Piece::Value(ValueKind::Opaque, _)));
        assert!(matches!(odd.path[2], Piece::Value(ValueKind::Opaque, _)));
    }
}
