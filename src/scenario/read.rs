//! Reading a scenario file's text into a [`Scenario`]: a table of contents
//! of named steps (parse, feeders, requests, personas, target and load,
//! thresholds, verify and session, chaos, the name, warnings), each pointing
//! its error at the place in the file where it was written.

use super::*;

/// The text being read and where it came from: every error names both.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

/// The requests, and each one's index by name (steps refer to them by it).
struct Requests {
    specs: Vec<RequestSpec>,
    index: HashMap<String, usize>,
}

impl Scenario {
    /// Validates `text` as if read from `path` (fixtures resolve from its folder).
    pub fn from_text(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let source = Source { path, text };
        let mut file = source.parse()?;
        let fixtures = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&file.scenario.fixtures);
        let feeders = source.feeders(&file, &fixtures)?;
        let requests = source.requests(&file, &fixtures, &feeders)?;
        let personas = source.personas(&file, &requests)?;
        let target = source.target(&file, &requests)?;
        let load = compile_load(file.load.get_ref())
            .map_err(|(span, e)| source.at(span.or(Some(file.load.span())), e))?;
        let auth = compile_auth(std::mem::take(&mut file.auth))
            .map_err(|(span, e)| source.at(span.or(find_table(text, "auth")), e))?;
        let thresholds = source.thresholds(&file, &requests.specs)?;
        let verify = compile_verify(&file.verify)
            .map_err(|(span, e)| source.at(span.or_else(|| find_table(text, "verify")), e))?;
        let session = compile_session(&file.session, &requests.index)
            .map_err(|(span, e)| source.at(span.or(find_table(text, "session")), e))?;
        let (kubernetes, chaos) = source.chaos(&file, load.duration())?;
        let metrics_out = super::metrics_out::compile(&file.metrics_out)
            .map_err(|(span, e)| source.at(span.or_else(|| find_table(text, "metrics_out")), e))?;
        source.check_name(&file)?;
        let warnings = source.warnings(&file, &fixtures);
        let scenario = Scenario {
            path: path.to_path_buf(),
            name: file.scenario.name.into_inner(),
            description: file.scenario.description,
            target,
            auth,
            feeders,
            load,
            personas,
            requests: requests.specs,
            thresholds,
            session,
            verify,
            kubernetes,
            chaos,
            shard: shard::Shard::default(),
            metrics_out,
            warnings,
        };
        scenario
            .check_generated_memory()
            .map_err(|e| source.at(find_table(text, "load"), e))?;
        Ok(scenario)
    }
}

impl Source<'_> {
    fn at(&self, span: Option<Range<usize>>, message: String) -> ScenarioError {
        ScenarioError::at(self.path, self.text, span, message)
    }

    /// The TOML, into the file's shape (unknown keys, wrong types refused).
    fn parse(&self) -> Result<ScenarioFile, ScenarioError> {
        let text = self.text;
        if let Some(nul) = text.find('\0') {
            return Err(self.at(
                Some(nul..nul + 1),
                "a NUL byte (binary data?): a scenario is a UTF-8 TOML text file".into(),
            ));
        }
        toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim().to_owned();
            // toml says "duplicate key" without saying which: name it.
            if message.starts_with("duplicate key") {
                if let Some(key) = e.span().and_then(|s| text.get(s)) {
                    message = format!(
                        "duplicate key `{}`: each key may appear once in a table",
                        key.trim()
                    );
                }
            }
            self.at(e.span(), message)
        })
    }

    /// `[[feeders]]`, each loaded from the fixtures folder.
    fn feeders(
        &self,
        file: &ScenarioFile,
        fixtures: &Path,
    ) -> Result<Vec<Arc<Feeder>>, ScenarioError> {
        let mut feeders: Vec<Arc<Feeder>> = Vec::new();
        for def in &file.feeders {
            let def = def.get_ref();
            let name = def.name.get_ref();
            if feeders.iter().any(|f| &f.name == name) {
                return Err(self.at(
                    Some(def.name.span()),
                    format!("feeder `{name}` is defined twice"),
                ));
            }
            let feeder = Feeder::load(name, &fixtures.join(def.file.get_ref()), def.order)
                .map_err(|e| self.at(Some(def.file.span()), e))?;
            feeders.push(Arc::new(feeder));
        }
        Ok(feeders)
    }

    /// `[requests.NAME]`, each compiled and its paths, JSON paths and
    /// placeholders checked; then no capture may wait on itself.
    fn requests(
        &self,
        file: &ScenarioFile,
        fixtures: &Path,
        feeders: &[Arc<Feeder>],
    ) -> Result<Requests, ScenarioError> {
        let captured = captured(file);
        let mut specs = Vec::new();
        let mut index = HashMap::new();
        for (name, def) in &file.requests {
            let spec = self.request(name, def, fixtures)?;
            check_placeholders(&spec, feeders, &captured)
                .map_err(|e| self.at(Some(def.span()), e))?;
            index.insert(name.clone(), specs.len());
            specs.push(spec);
        }
        if let Err((request, var, e)) = captures::check_circles(&specs) {
            // Point at the placeholder where the request writes it, if it does.
            let name = &specs[request].name;
            let place = find_in_table(
                self.text,
                &format!("requests.{name}"),
                &format!("${{{var}}}"),
            )
            .or_else(|| file.requests.get(name).map(|d| d.span()));
            return Err(self.at(place, e));
        }
        Ok(Requests { specs, index })
    }

    /// One request, compiled, with its paths and JSON paths checked.
    fn request(
        &self,
        name: &str,
        def: &toml::Spanned<RequestDef>,
        fixtures: &Path,
    ) -> Result<RequestSpec, ScenarioError> {
        let span = Some(def.span());
        let table = format!("requests.{name}");
        let header = content_type_header(name, def.get_ref()).map_err(|e| {
            let written = def.get_ref().content_type.as_ref().map(|c| c.span());
            let key =
                content_type_key(def.get_ref()).and_then(|k| find_in_table(self.text, &table, k));
            self.at(written.or(key).or(span.clone()), e)
        })?;
        let spec = compile_request(name, def.get_ref(), fixtures, header)
            .map_err(|e| self.at(span.clone(), e))?;
        let paths = std::iter::once(("path", &def.get_ref().path)).chain(
            def.get_ref()
                .consistency
                .iter()
                .map(|c| ("consistency.read", &c.read)),
        );
        for (what, path) in paths {
            check_path(&format!("request `{name}`: {what}"), path.get_ref())
                .map_err(|e| self.at(Some(path.span()), e))?;
        }
        if let Err((path, why)) = check_json_paths(&spec) {
            // Point at the path itself, where it is written in this request.
            // (toml's span of a table value is not always the table's.)
            let place = find_in_table(self.text, &table, &format!("\"{path}\""));
            return Err(self.at(place.or(span), format!("request `{name}`: {why}")));
        }
        Ok(spec)
    }

    /// `[[personas]]`: named once, weighted in range, each step a defined
    /// request, captures taken before they are used.
    fn personas(
        &self,
        file: &ScenarioFile,
        requests: &Requests,
    ) -> Result<Vec<PersonaSpec>, ScenarioError> {
        if file.personas.is_empty() {
            return Err(self.at(
                None,
                "no personas: add at least one [[personas]] with steps".into(),
            ));
        }
        let captured = captured(file);
        let mut personas: Vec<PersonaSpec> = Vec::new();
        for persona in &file.personas {
            let span = Some(persona.span());
            let p = persona.get_ref();
            let name = p.name.get_ref();
            if personas.iter().any(|q| &q.name == name) {
                return Err(self.at(
                    Some(p.name.span()),
                    format!(
                        "persona `{name}` is defined twice: each persona needs a name of its own (reports and --persona NAME=WEIGHT tell them apart by it)"
                    ),
                ));
            }
            if p.weight == 0 || p.weight > limits::MAX_WEIGHT {
                return Err(self.at(
                    span,
                    format!(
                        "persona `{name}` has weight {}: expected a weight from 1 to {}",
                        p.weight,
                        limits::MAX_WEIGHT
                    ),
                ));
            }
            if p.steps.is_empty() {
                return Err(self.at(span, format!("persona `{name}` has no steps")));
            }
            let steps: Vec<StepSpec> = p
                .steps
                .iter()
                .map(|step| self.step(step, requests, &captured))
                .collect::<Result<_, ScenarioError>>()?;
            captures::check_order(p, &steps, &requests.specs)
                .map_err(|(span, e)| self.at(span, e))?;
            personas.push(PersonaSpec {
                name: name.clone(),
                weight: p.weight,
                steps,
            });
        }
        Ok(personas)
    }

    fn step(
        &self,
        step: &model::StepDef,
        requests: &Requests,
        captured: &BTreeSet<&str>,
    ) -> Result<StepSpec, ScenarioError> {
        let name = step.request.get_ref();
        let request = *requests.index.get(name).ok_or_else(|| {
            self.at(
                Some(step.request.span()),
                format!(
                    "step names request `{name}`, which is not defined under [requests] (defined: {})",
                    list(requests.index.keys())
                ),
            )
        })?;
        let repeat = compile_repeat(step, captured).map_err(|(span, e)| self.at(span, e))?;
        Ok(StepSpec {
            request,
            think: step.think,
            repeat,
        })
    }

    /// `[target]`, whose control request must be one of the requests.
    fn target(
        &self,
        file: &ScenarioFile,
        requests: &Requests,
    ) -> Result<TargetSpec, ScenarioError> {
        let target = compile_target(file.target.get_ref())
            .map_err(|(span, e)| self.at(span.or(Some(file.target.span())), e))?;
        if let Some(control) = &file.target.get_ref().control {
            if !requests.index.contains_key(control.get_ref()) {
                return Err(self.at(
                    Some(control.span()),
                    format!(
                        "target.control names `{}`, which is not a request ({})",
                        control.get_ref(),
                        list(requests.index.keys())
                    ),
                ));
            }
        }
        Ok(target)
    }

    /// `[thresholds]`, each judging something this scenario measures.
    fn thresholds(
        &self,
        file: &ScenarioFile,
        requests: &[RequestSpec],
    ) -> Result<Vec<Threshold>, ScenarioError> {
        let names: Vec<&str> = requests.iter().map(|r| r.name.as_str()).collect();
        file.thresholds
            .iter()
            .map(|(name, expression)| {
                threshold::parse(name.get_ref(), expression.get_ref(), &names).map_err(|e| {
                    let span = if e.is_in_name() {
                        name.span()
                    } else {
                        expression.span()
                    };
                    self.at(Some(span), e.to_string())
                })
            })
            .collect()
    }

    /// `[kubernetes]` and `[chaos]`: every action within the run, and the
    /// safety rules passed as the file writes them.
    fn chaos(
        &self,
        file: &ScenarioFile,
        run_length: Duration,
    ) -> Result<(chaos::KubeTarget, Option<chaos::ChaosPlan>), ScenarioError> {
        let text = self.text;
        let kubernetes = match &file.kubernetes {
            Some(def) => chaos::compile_kubernetes(def)
                .map_err(|e| self.at(find_table(text, "kubernetes"), e))?,
            None => Default::default(),
        };
        let Some(def) = file.chaos.as_ref() else {
            return Ok((kubernetes, None));
        };
        let plan = chaos::compile_chaos(def)
            .map_err(|(span, e)| self.at(span.or(find_table(text, "chaos")), e))?;
        chaos::check_timing(&plan.actions, run_length).map_err(|e| {
            let place = chaos::late_action_place(def, &plan, run_length);
            self.at(place.or_else(|| find_table(text, "chaos")), e)
        })?;
        // The file says where chaos runs: it must pass the safety rules
        // as written (the command line may still add the selector or
        // namespace to a file that names neither).
        if !kubernetes.namespace.is_empty() || !kubernetes.selector.is_empty() {
            chaos::authorize(
                &plan,
                &kubernetes,
                std::slice::from_ref(&kubernetes.namespace),
            )
            .map_err(|e| {
                // A system namespace is the namespace's fault; the rest
                // is about the table (a key it lacks). Which rule
                // refused is told by its words, not guessed again.
                let namespace = file.kubernetes.as_ref().and_then(|k| k.namespace.as_ref());
                let place = namespace
                    .filter(|n| chaos::system_namespace(n.get_ref()).as_deref() == Some(e.as_str()))
                    .map(|n| n.span());
                self.at(
                    place.or_else(|| find_table(text, "kubernetes")),
                    format!("chaos: {e}"),
                )
            })?;
        }
        Ok((kubernetes, Some(plan)))
    }

    /// `scenario.name` names the bundle folder: 1 to 100 printable characters.
    fn check_name(&self, file: &ScenarioFile) -> Result<(), ScenarioError> {
        let name = file.scenario.name.get_ref();
        if name.trim().is_empty()
            || name.chars().count() > limits::MAX_NAME
            || name.chars().any(char::is_control)
        {
            return Err(self.at(
                Some(file.scenario.name.span()),
                format!(
                    "scenario.name must be 1 to {} characters without control characters (it names the bundle folder); this one has {}",
                    limits::MAX_NAME,
                    name.chars().count()
                ),
            ));
        }
        Ok(())
    }

    /// What `surge check` warns about without refusing the file.
    fn warnings(&self, file: &ScenarioFile, fixtures: &Path) -> Vec<ScenarioError> {
        let off = file
            .target
            .get_ref()
            .tls_verify
            .as_ref()
            .filter(|v| !v.get_ref());
        let tls = off.map(|off| {
            self.at(
                Some(off.span()),
                "warning: tls_verify = false: TLS certificates will not be verified, so nothing tells the target from an impostor (every report says so); remove it to verify them".into(),
            )
        });
        // A body an import could not know, still as the import wrote it.
        let placeholders = file.requests.iter().filter_map(|(name, def)| {
            let body = def.get_ref().body_template.as_ref()?;
            let bytes = super::compile::read_fixture(fixtures, body).ok()?;
            bytes.starts_with(super::IMPORT_PLACEHOLDER.as_bytes()).then(|| {
                self.at(
                    Some(def.span()),
                    format!("warning: request `{name}` sends {body}, the placeholder surge import wrote (the recording held no body for it): replace the file with the body to send"),
                )
            })
        });
        tls.into_iter().chain(placeholders).collect()
    }
}

/// Every variable some request captures.
fn captured(file: &ScenarioFile) -> BTreeSet<&str> {
    file.requests
        .values()
        .flat_map(|r| r.get_ref().capture.keys().map(String::as_str))
        .collect()
}
