//! The smallest scenario that compiles, for unit tests: one persona asking
//! for one request `a` at `/`, with the `[target]` and `[load]` a test is
//! about put in (one copy of the header, not one per test file).

use super::Scenario;

/// A `[target]` on a loopback port nothing answers.
pub const LOOPBACK: &str = "base_url = 'http://127.0.0.1:1'";

/// One closed-model user for a second.
pub const ONE_USER: &str = "model = 'closed'\n[[load.stages]]\nusers = 1\nhold = '1s'";

/// The scenario with `target` as its `[target]` table's keys and `load` as
/// its `[load]` table's (stages included).
pub fn scenario(target: &str, load: &str) -> Scenario {
    let text = format!(
        "[scenario]\nname = 't'\n[target]\n{target}\n[load]\n{load}\n\
         [[personas]]\nname = 'p'\nsteps = [{{ request = 'a' }}]\n[requests.a]\npath = '/'\n"
    );
    Scenario::from_text(std::path::Path::new("t.toml"), &text)
        .unwrap_or_else(|e| panic!("a sample scenario compiles: {e}\n{text}"))
}
