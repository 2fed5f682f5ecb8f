//! The write-then-read scenario the database-tier tests share: registrars
//! creating FHIR Patients through the balancer, each create searched by its
//! id (`compare = "search"`), the replica named in `X-Served-By`.

/// The scenario's sections around the create request.
pub struct Registrations<'a> {
    /// The balancer.
    pub base_url: &'a str,
    /// The request timeout, e.g. "5s".
    pub timeout: &'a str,
    /// The `[load]` section's body (model and stages).
    pub load: &'a str,
    /// The pause between a registrar's creates, e.g. "100ms".
    pub think: &'a str,
    /// What follows the request: `[verify]`, `[chaos]`, `[thresholds]`.
    pub rest: &'a str,
}

impl Registrations<'_> {
    /// The scenario file's text.
    pub fn scenario(&self) -> String {
        let Registrations {
            base_url,
            timeout,
            load,
            think,
            rest,
        } = self;
        format!(
            r#"[target]
base_url = "{base_url}"
replica_header = "X-Served-By"
timeout = "{timeout}"

[load]
{load}

[[personas]]
name = "registrar"
steps = [{{ request = "register", think = "{think}" }}]

[requests.register]
method = "POST"
path = "/fhir/Patient"
content_type = "application/fhir+json"
json = {{ resourceType = "Patient", name = [{{ family = "Okello", given = ["Amina"] }}] }}
expect = {{ status = [201] }}
consistency = {{ id = "id", read = "/fhir/Patient?_id=${{id}}", compare = "search" }}

{rest}"#
        )
    }
}

/// A closed `[load]` body: `users` registrars for `hold`.
pub fn closed(users: u32, hold: &str) -> String {
    format!("model = \"closed\"\n[[load.stages]]\nusers = {users}\nhold = \"{hold}\"")
}
