//! The house plan, checked: every module of the library sits on a floor,
//! and a module may import only modules on its own floor or below. The
//! floors follow the data flow of a run (see the crate doc):
//!
//! ```text
//! bundle ← scenario ← import ← measure ← verify ← chaos ← engine ← analysis ← report ← run
//! (analysis: calibrate, compare, merge)
//! ```
//!
//! A test reads every source file under `src/` and fails on an import that
//! reaches up a floor, or on a module that has no floor.

use std::collections::BTreeSet;

/// The floors, lowest first; modules on one floor may import each other.
pub const FLOORS: &[&[&str]] = &[
    &["bundle"],
    &["scenario"],
    &["import"],
    &["measure"],
    &["verify"],
    &["chaos"],
    &["engine"],
    &["calibrate", "compare", "merge"],
    &["report"],
    &["run"],
];

fn floor(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

/// The top-level modules a source text names through `crate::` (code only:
/// comments are dropped).
pub fn imports(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a::b, c}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[j..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[j..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// What is wrong with `module` importing `imported`, if anything.
pub fn violation(module: &str, imported: &str) -> Option<String> {
    let (Some(own), Some(theirs)) = (floor(module), floor(imported)) else {
        return Some(format!(
            "{module} imports {imported}, and one of them has no floor in the house plan"
        ));
    };
    (theirs > own).then(|| {
        format!("{module} (floor {own}) imports {imported} (floor {theirs}), which sits above it")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The binary (main.rs and its modules) sits above every floor.
    const BINARY: &[&str] = &["main", "cli", "demo", "outcome"];

    #[test]
    fn no_module_imports_one_above_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut problems = Vec::new();
        let mut modules = BTreeSet::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap();
            let top = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if top == "lib" || top == "layering" || BINARY.contains(&top.as_str()) {
                continue;
            }
            modules.insert(top.clone());
            let text = std::fs::read_to_string(file).unwrap();
            for imported in imports(&text) {
                if imported == top {
                    continue;
                }
                if let Some(why) = violation(&top, &imported) {
                    problems.push(format!("{}: {why}", relative.display()));
                }
            }
        }
        for module in &modules {
            if floor(module).is_none() {
                problems.push(format!("module {module} has no floor in the house plan"));
            }
        }
        assert!(
            problems.is_empty(),
            "back-imports:\n{}",
            problems.join("\n")
        );
        assert!(modules.len() >= 10, "read the modules: {modules:?}");
    }

    #[test]
    fn a_back_import_is_caught_whatever_its_spelling() {
        let text = "use crate::bundle::RunResults;\n\
                    use crate::{scenario::Scenario, report::{self, x}};\n\
                    // crate::run is only a comment\n\
                    fn f() { crate::engine::go(); }";
        let found = imports(text);
        assert_eq!(
            found,
            ["bundle", "engine", "report", "scenario"]
                .map(String::from)
                .into()
        );
        assert!(violation("verify", "report").is_some());
        assert!(violation("verify", "engine").is_some());
        assert!(violation("bundle", "scenario").is_some());
        assert!(violation("report", "bundle").is_none());
        assert!(violation("calibrate", "compare").is_none());
        assert!(violation("report", "sim").is_some(), "an unplaced module");
    }
}
