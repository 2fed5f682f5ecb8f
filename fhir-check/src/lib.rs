//! Strict FHIR R4 validation for the reference cluster's `$validate`.
//!
//! This is its own crate for build time only: fhirbolt's generated, generic
//! model makes optimised builds very slow, so the whole dependency sits behind
//! one non-generic function here and the workspace builds this crate at
//! `opt-level = 0` even in release.
#![deny(missing_docs)]

use fhirbolt::model::r4::Resource;

/// Checks `json` as an R4 resource of type `expected_type` (e.g. `"Patient"`).
///
/// Validity is decided by fhirbolt's strict R4 model: unknown elements, wrong
/// JSON types, missing required elements and unknown resource types are all
/// errors. Returns a human-readable diagnostic for the OperationOutcome.
pub fn validate_r4(json: &str, expected_type: &str) -> Result<(), String> {
    let _: Resource =
        fhirbolt::json::from_str(json, None).map_err(|e| format!("invalid R4 resource: {e}"))?;
    let actual = resource_type_of(json);
    if actual.as_deref() != Some(expected_type) {
        return Err(format!(
            "resourceType is {}, expected {expected_type}",
            actual.unwrap_or_else(|| "missing".into())
        ));
    }
    Ok(())
}

fn resource_type_of(json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get("resourceType")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_valid_patient() {
        let json = r#"{"resourceType":"Patient","name":[{"family":"Rahman","given":["Ayesha"]}],"gender":"female","birthDate":"1990-04-01"}"#;
        assert_eq!(validate_r4(json, "Patient"), Ok(()));
    }

    #[test]
    fn rejects_unknown_elements_and_wrong_types() {
        let unknown = r#"{"resourceType":"Patient","birthdate":"1990-04-01"}"#;
        assert!(validate_r4(unknown, "Patient").is_err());
        let wrong_type = r#"{"resourceType":"Patient","gender":42}"#;
        assert!(validate_r4(wrong_type, "Patient").is_err());
    }

    #[test]
    fn rejects_a_resource_of_another_type() {
        let json = r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#;
        let err = validate_r4(json, "Patient").unwrap_err();
        assert!(err.contains("Observation"), "{err}");
    }
}
