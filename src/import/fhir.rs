//! The body a FHIR create or update sends when the recording held none (an
//! access log): a valid R4 resource of the type its path names, whose
//! person's data comes from the import's feeder of synthetic values. Only
//! the types a clinical cluster is commonly written with are made; any
//! other keeps the placeholder `surge check` names.

use super::route::{Piece, Route, ValueKind};
use serde_json::{json, Value};

/// The feeder columns a synthetic resource reads: name and kind.
pub const COLUMNS: &[(&str, ValueKind)] = &[
    ("fhir_given", ValueKind::Name),
    ("fhir_family", ValueKind::Name),
    ("fhir_birth_date", ValueKind::Date),
    ("fhir_identifier", ValueKind::Opaque),
];

/// The recorded shape the identifier column's values take after.
pub const IDENTIFIER_SHAPE: &str = "AAA-99999";

/// The resource types a synthetic body is made for.
pub const TYPES: &[&str] = &[
    "Patient",
    "Practitioner",
    "Organization",
    "Observation",
    "Encounter",
    "Condition",
];

/// The FHIR type a create (`POST …/Patient`) or update (`PUT
/// …/Patient/{id}`) writes, when it is one [`TYPES`] holds.
pub fn written_type(route: &Route) -> Option<&str> {
    let path = &route.path;
    let type_at = match route.method.as_str() {
        "POST" => path.len().checked_sub(1)?,
        "PUT" => {
            matches!(path.last(), Some(Piece::Value(..))).then_some(())?;
            path.len().checked_sub(2)?
        }
        _ => return None,
    };
    match &path[type_at] {
        Piece::Literal(w) => Some(w.as_str()).filter(|t| TYPES.contains(t)),
        Piece::Value(..) => None,
    }
}

/// The resource, its strings templates of the feeder `synthetic` (and
/// `id` its update's id template).
pub fn resource(resource_type: &str, id: Option<&str>) -> Value {
    let column = |c: &str| format!("${{synthetic.{c}}}");
    let name = json!([{ "use": "official", "family": column("fhir_family"), "given": [column("fhir_given")] }]);
    let mut r = match resource_type {
        "Patient" => json!({
            "resourceType": "Patient",
            "identifier": [{ "system": "urn:surge:synthetic", "value": column("fhir_identifier") }],
            "name": name,
            "gender": "unknown",
            "birthDate": column("fhir_birth_date"),
        }),
        "Practitioner" => json!({
            "resourceType": "Practitioner",
            "identifier": [{ "system": "urn:surge:synthetic", "value": column("fhir_identifier") }],
            "name": name,
        }),
        "Organization" => json!({
            "resourceType": "Organization",
            "name": format!("Clinic {}", column("fhir_family")),
        }),
        "Observation" => json!({
            "resourceType": "Observation",
            "status": "final",
            "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4", "display": "Heart rate" }] },
            "valueQuantity": { "value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min" },
        }),
        "Encounter" => json!({
            "resourceType": "Encounter",
            "status": "finished",
            "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
        }),
        _ => json!({
            "resourceType": "Condition",
            "code": { "text": "Synthetic condition" },
            "subject": { "display": format!("{} {}", column("fhir_given"), column("fhir_family")) },
        }),
    };
    if let Some(id) = id {
        r["id"] = Value::String(id.to_owned());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::route;
    use std::collections::BTreeSet;

    /// Each resource, its placeholders filled as the feeder fills them, is
    /// valid R4 by a strict model (fhirbolt's, as the reference cluster's
    /// `$validate` uses).
    #[test]
    fn every_synthetic_resource_is_valid_r4() {
        for t in TYPES {
            for id in [None, Some("${synthetic.patient_id}")] {
                let text = resource(t, id)
                    .to_string()
                    .replace("${synthetic.fhir_given}", "Abeni")
                    .replace("${synthetic.fhir_family}", "Zawadi")
                    .replace("${synthetic.fhir_birth_date}", "1971-04-12")
                    .replace("${synthetic.fhir_identifier}", "QZX-71940")
                    .replace("${synthetic.patient_id}", "1234");
                assert!(!text.contains("${"), "{text}");
                fhir_check::validate_r4(&text, t).unwrap_or_else(|e| panic!("{t}: {e}\n{text}"));
            }
        }
    }

    #[test]
    fn a_create_or_update_names_its_type_and_a_read_or_search_does_not() {
        let keep = BTreeSet::new();
        let of = |m: &str, p: &str| written_type(&route::route(m, p, &keep)).map(str::to_owned);
        assert_eq!(of("POST", "/fhir/Patient").as_deref(), Some("Patient"));
        assert_eq!(
            of("POST", "/openmrs/ws/fhir2/R4/Observation").as_deref(),
            Some("Observation")
        );
        assert_eq!(of("PUT", "/fhir/Patient/123").as_deref(), Some("Patient"));
        assert_eq!(of("PUT", "/fhir/Patient"), None);
        assert_eq!(of("GET", "/fhir/Patient"), None);
        assert_eq!(of("POST", "/fhir/Patient/$validate"), None);
        assert_eq!(of("POST", "/fhir/Binary"), None);
    }
}
