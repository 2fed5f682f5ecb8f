//! Synthetic values for the columns an import takes out of the recorded
//! routes: made from a seeded generator and the value's kind, never from
//! a recorded value. Only the shape of an opaque identifier is kept (its
//! length and where its separators and letters were), so a record number
//! `MRN-00042` becomes something like `QZX-71940`: the route behaves alike,
//! and nothing of the original's characters is written.

use super::route::ValueKind;
use rand::{Rng, SeedableRng};

/// Rows in the generated feeder.
pub const ROWS: usize = 200;

/// Invented names (no real person's), for name parameters.
const NAMES: &[&str] = &[
    "Abeni", "Bakari", "Chidera", "Dalia", "Emeka", "Farida", "Gathoni", "Hamza", "Ifeoma",
    "Jabari", "Kamaria", "Lwazi", "Makena", "Nuru", "Obinna", "Penda", "Rashidi", "Sefu",
    "Tumaini", "Uzoma", "Wanjiru", "Xolani", "Yaw", "Zawadi",
];

/// A generator of synthetic values, the same for the same seed.
pub struct Synthetic {
    rng: rand::rngs::StdRng,
}

impl Synthetic {
    /// Seeded, so an import writes the same feeder twice.
    pub fn new(seed: u64) -> Synthetic {
        Synthetic {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// One value of `kind`; `shape` is a recorded value's shape (see
    /// [`shape_of`]) for the kinds whose length matters.
    pub fn value(&mut self, kind: ValueKind, shape: &str) -> String {
        let rng = &mut self.rng;
        match kind {
            ValueKind::Uuid => {
                let b: [u8; 16] = rng.random();
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(
                    "{}-{}-4{}-a{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[13..16],
                    &hex[17..20],
                    &hex[20..32]
                )
            }
            ValueKind::Number => {
                let digits = shape.len().clamp(1, 18);
                let first = rng.random_range(1..=9u8);
                let rest: String = (1..digits)
                    .map(|_| char::from(b'0' + rng.random_range(0..=9u8)))
                    .collect();
                format!("{first}{rest}")
            }
            ValueKind::Date => format!(
                "{}-{:02}-{:02}",
                rng.random_range(1940..=2020),
                rng.random_range(1..=12),
                rng.random_range(1..=28)
            ),
            ValueKind::Email => format!("user{}@example.org", rng.random_range(1000..=9999)),
            ValueKind::Name => NAMES[rng.random_range(0..NAMES.len())].to_owned(),
            ValueKind::Word => (0..shape.len().clamp(3, 12))
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect(),
            ValueKind::Opaque => shape
                .chars()
                .map(|c| match c {
                    'A' => char::from(b'A' + rng.random_range(0..26u8)),
                    'a' => char::from(b'a' + rng.random_range(0..26u8)),
                    '9' => char::from(b'0' + rng.random_range(0..=9u8)),
                    other => other,
                })
                .collect(),
        }
    }
}

impl Synthetic {
    /// Lowercase words of invented letters, `len` characters in all: free
    /// text replaced, its length kept.
    pub fn text(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len);
        for i in 0..len {
            let space =
                i > 0 && i + 1 < len && !out.ends_with(' ') && self.rng.random_range(0..6) == 0;
            out.push(if space {
                ' '
            } else {
                char::from(b'a' + self.rng.random_range(0..26u8))
            });
        }
        out
    }

    /// Random base64 of `len` characters: a document's bytes replaced.
    pub fn base64(&mut self, len: usize) -> String {
        use base64::Engine as _;
        let bytes: Vec<u8> = (0..len / 4 * 3).map(|_| self.rng.random()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// A value's shape: each uppercase letter `A`, lowercase `a`, digit `9`;
/// `-`, `_` and `.` kept; anything else (a percent-escape, a non-ASCII
/// letter) `a`. At most 64 characters.
pub fn shape_of(value: &str) -> String {
    value
        .chars()
        .take(64)
        .map(|c| match c {
            'A'..='Z' => 'A',
            '0'..='9' => '9',
            '-' | '_' | '.' => c,
            _ => 'a',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_their_kinds_form_and_none_of_the_recorded_characters() {
        let mut s = Synthetic::new(7);
        let recorded = "MRN-00042x";
        let shape = shape_of(recorded);
        assert_eq!(shape, "AAA-99999a");
        let made = s.value(ValueKind::Opaque, &shape);
        assert_eq!(shape_of(&made), shape);
        assert_ne!(made, recorded);
        let uuid = s.value(ValueKind::Uuid, "");
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        let n = s.value(ValueKind::Number, &shape_of("12345"));
        assert!(n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'));
        assert!(NAMES.contains(&s.value(ValueKind::Name, "").as_str()));
        assert_eq!(s.value(ValueKind::Date, "").len(), 10);
        // The same seed writes the same values.
        let (mut a, mut b) = (Synthetic::new(3), Synthetic::new(3));
        assert_eq!(
            a.value(ValueKind::Opaque, "AA99"),
            b.value(ValueKind::Opaque, "AA99")
        );
    }
}
