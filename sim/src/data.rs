//! The reference cluster's synthetic patients: deterministic, so every replica
//! (like a shared database) and `fixtures/patients.csv` hold the same ones.
//! No real patient data, ever.

use serde::Serialize;

/// A synthetic patient.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Patient {
    /// OpenMRS-style uuid.
    pub uuid: String,
    /// OpenMRS ID (identifier).
    pub identifier: String,
    /// Given name in English.
    pub given: String,
    /// Family name in English.
    pub family: String,
    /// Given name in Bengali.
    pub given_bn: String,
    /// Family name in Bengali.
    pub family_bn: String,
    /// `M` or `F`.
    pub gender: String,
    /// ISO date.
    pub birthdate: String,
}

const GIVEN: [(&str, &str, &str); 12] = [
    ("Ayesha", "আয়েশা", "F"),
    ("Karim", "করিম", "M"),
    ("Fatema", "ফাতেমা", "F"),
    ("Rahim", "রহিম", "M"),
    ("Nasrin", "নাসরিন", "F"),
    ("Sohel", "সোহেল", "M"),
    ("Mitu", "মিতু", "F"),
    ("Jamal", "জামাল", "M"),
    ("Rupa", "রূপা", "F"),
    ("Tanvir", "তানভীর", "M"),
    ("Shirin", "শিরিন", "F"),
    ("Arif", "আরিফ", "M"),
];
const FAMILY: [(&str, &str); 10] = [
    ("Rahman", "রহমান"),
    ("Hossain", "হোসেন"),
    ("Islam", "ইসলাম"),
    ("Ahmed", "আহমেদ"),
    ("Chowdhury", "চৌধুরী"),
    ("Begum", "বেগম"),
    ("Khan", "খান"),
    ("Das", "দাস"),
    ("Sarker", "সরকার"),
    ("Uddin", "উদ্দিন"),
];

/// How many patients the sim holds.
pub const PATIENTS: usize = 300;

/// The `i`-th patient.
pub fn patient(i: usize) -> Patient {
    let (given, given_bn, gender) = GIVEN[i % GIVEN.len()];
    let (family, family_bn) = FAMILY[(i / GIVEN.len()) % FAMILY.len()];
    Patient {
        uuid: format!("5e1f{:04x}-0000-4000-8000-{:012x}", i, i * 7919),
        identifier: format!("10{:04}{}", i, luhn_digit(i)),
        given: given.to_owned(),
        family: family.to_owned(),
        given_bn: given_bn.to_owned(),
        family_bn: family_bn.to_owned(),
        gender: gender.to_owned(),
        birthdate: format!(
            "{}-{:02}-{:02}",
            1940 + (i * 7) % 80,
            1 + i % 12,
            1 + (i * 3) % 28
        ),
    }
}

fn luhn_digit(i: usize) -> usize {
    (i * 9 + 7) % 10
}

/// All patients.
pub fn patients() -> Vec<Patient> {
    (0..PATIENTS).map(patient).collect()
}

/// The feeder CSV the shipped scenarios use (`fixtures/patients.csv`).
pub fn patients_csv() -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "uuid",
        "identifier",
        "given",
        "family",
        "given_bn",
        "family_bn",
        "gender",
        "birthdate",
    ])
    .expect("writing to memory");
    for p in patients() {
        w.write_record([
            &p.uuid,
            &p.identifier,
            &p.given,
            &p.family,
            &p.given_bn,
            &p.family_bn,
            &p.gender,
            &p.birthdate,
        ])
        .expect("writing to memory");
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 fields")
}

/// Patients matching `q` (a name, in either script, or an identifier), as OpenMRS matches.
pub fn search<'a>(patients: &'a [Patient], q: &str) -> Vec<&'a Patient> {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    patients
        .iter()
        .filter(|p| {
            p.identifier == q
                || [&p.given, &p.family, &p.given_bn, &p.family_bn]
                    .iter()
                    .any(|n| n.to_lowercase().starts_with(&q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patients_are_distinct_and_stable() {
        let all = patients();
        let uuids: std::collections::HashSet<_> = all.iter().map(|p| &p.uuid).collect();
        assert_eq!(uuids.len(), PATIENTS);
        assert_eq!(patient(7), patient(7));
    }

    #[test]
    fn search_matches_names_in_both_scripts_and_identifiers() {
        let all = patients();
        assert!(!search(&all, "ayesha").is_empty());
        assert!(!search(&all, "রহমান").is_empty());
        assert_eq!(search(&all, &all[42].identifier).len(), 1);
        assert!(search(&all, "zzz").is_empty());
    }

    #[test]
    fn the_shipped_feeder_matches_the_sim() {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/patients.csv"
        ))
        .expect("fixtures/patients.csv (regenerate with `surge sim fixtures`)");
        assert!(
            shipped == patients_csv(),
            "fixtures/patients.csv is stale: regenerate with `surge sim fixtures`"
        );
    }
}
