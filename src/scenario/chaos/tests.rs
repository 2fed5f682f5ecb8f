use super::*;

fn kube(ns: &str, sel: &str) -> KubeTarget {
    KubeTarget {
        namespace: ns.into(),
        selector: sel.into(),
        ..Default::default()
    }
}

fn plan_of(specs: &[&str]) -> ChaosPlan {
    ChaosPlan {
        actions: specs.iter().map(|s| parse_cli(s).unwrap()).collect(),
        ..Default::default()
    }
}

#[test]
fn cli_specs_parse() {
    assert_eq!(
        parse_cli("kill-pod@30s").unwrap(),
        Scheduled {
            action: Action::KillPod(Pick::Random),
            when: When::At(Duration::from_secs(30))
        }
    );
    assert_eq!(
        parse_cli("kill-pod:oldest@every:1m").unwrap().when,
        When::Every {
            every: Duration::from_secs(60),
            from: Duration::from_secs(60)
        }
    );
    assert_eq!(parse_cli("scale:5@90s").unwrap().action, Action::Scale(5));
    assert_eq!(
        parse_cli("evict@1m").unwrap().action,
        Action::Evict(Pick::Random)
    );
    assert_eq!(
        parse_cli("evict:most-sessions@every:2m").unwrap().action,
        Action::Evict(Pick::MostSessions)
    );
    assert_eq!(Action::Evict(Pick::Oldest).describe(), "evict oldest");
    assert_eq!(
        parse_cli("exec:docker kill web@2 @45s").unwrap().action,
        Action::Exec("docker kill web@2".into())
    );
    for bad in [
        "kill-pod",
        "kill-pod:newest@3s",
        "scale:x@3s",
        "reboot@3s",
        "rollout-restart:now@3s",
        "kill-pod@soon",
        "exec:@3s",
        "evict:newest@3s",
    ] {
        let e = parse_cli(bad).unwrap_err();
        assert!(e.contains("--chaos"), "{bad}: {e}");
    }
}

#[test]
fn timetable_expands_every_and_drops_what_falls_after_the_run() {
    let plan = plan_of(&["kill-pod@every:20s", "rollout-restart@25s", "scale:3@2m"]);
    let times: Vec<(u64, String)> = timetable(&plan.actions, Duration::from_secs(60))
        .into_iter()
        .map(|(t, a)| (t.as_secs(), a.describe()))
        .collect();
    assert_eq!(
        times,
        [
            (20, "kill-pod random".into()),
            (25, "rollout-restart".into()),
            (40, "kill-pod random".into())
        ]
    );
}

#[test]
fn safety_rules_refuse_and_allow() {
    let plan = plan_of(&["kill-pod@10s"]);
    let allowed = ["clinic".to_owned()];
    assert!(authorize(&plan, &kube("clinic", "app=openmrs"), &allowed).is_ok());
    let refused = |k: KubeTarget, allowed: &[String]| authorize(&plan, &k, allowed).unwrap_err();
    assert!(refused(kube("", "app=x"), &allowed).contains("no namespace"));
    assert!(refused(kube("clinic", " "), &allowed).contains("no label selector"));
    assert!(refused(kube("kube-system", "app=x"), &["kube-system".into()]).contains("refused"));
    assert!(refused(kube("other", "app=x"), &allowed).contains("--allow-namespace other"));
    // Workload actions need the workload; exec-only plans need nothing.
    let restart = plan_of(&["rollout-restart@10s"]);
    assert!(authorize(&restart, &kube("clinic", "app=x"), &allowed)
        .unwrap_err()
        .contains("workload"));
    assert!(authorize(&plan_of(&["exec:true@1s"]), &KubeTarget::default(), &[]).is_ok());
    // The local backend kills processes and nothing else.
    let local = ChaosPlan {
        backend: BackendKind::Local,
        ..plan_of(&["kill-pod@1s", "scale:2@2s"])
    };
    assert!(authorize(&local, &KubeTarget::default(), &[])
        .unwrap_err()
        .contains("local backend"));
    // Eviction is the API server's: refused on local processes, and on
    // Kubernetes it needs no workload (the pods behind the selector).
    let evict_local = ChaosPlan {
        backend: BackendKind::Local,
        ..plan_of(&["evict@1s"])
    };
    let e = authorize(&evict_local, &KubeTarget::default(), &[]).unwrap_err();
    assert!(
        e.contains("`evict random` needs backend = \"kubernetes\""),
        "{e}"
    );
    assert!(authorize(&plan_of(&["evict@1s"]), &kube("clinic", "app=x"), &allowed).is_ok());
}

#[test]
fn scenario_actions_say_what_is_wrong() {
    let def = |t: &str| toml::from_str::<ChaosDef>(t).map_err(|e| e.to_string());
    let compiled = |t: &str| compile_chaos(&def(t).unwrap()).map_err(|e| e.1);
    assert!(def("surprise = 1").unwrap_err().contains("unknown field"));
    assert!(
        compiled("[[actions]]\naction='kill-pod'\nat='5s'\nreplicas=2")
            .unwrap_err()
            .contains("`replicas` does not apply")
    );
    assert!(compiled("[[actions]]\naction='scale'\nat='5s'")
        .unwrap_err()
        .contains("replicas = N"));
    assert!(compiled("[[actions]]\naction='kill-pod'")
        .unwrap_err()
        .contains("`at"));
    assert!(compiled("max_down = 0").unwrap_err().contains("max_down"));
    let ok = compiled("grace_period='5s'\nmax_kills=2\n[[actions]]\naction='kill-pod'\npick='oldest'\nevery='30s'\nfrom='10s'").unwrap();
    assert_eq!(ok.grace_period, Duration::from_secs(5));
    assert_eq!(ok.max_kills, 2);
    assert_eq!(
        ok.actions[0].when,
        When::Every {
            every: Duration::from_secs(30),
            from: Duration::from_secs(10)
        }
    );
}

#[test]
fn workloads_parse() {
    assert_eq!(
        parse_workload("statefulset/hapi").unwrap().kind,
        WorkloadKind::StatefulSet
    );
    assert!(parse_workload("daemonset/x").is_err());
    assert!(parse_workload("openmrs").is_err());
}
