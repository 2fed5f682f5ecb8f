//! From a pod's first container to a process, as a kubelet and a container
//! runtime would make it: the image's program (the images this node knows
//! are surge's), the container's args with `$(VAR)` expanded, its env
//! (values, the downward API's fields, Secrets and ConfigMaps), and its
//! volumes as folders — a path under a volume's mountPath, in an argument
//! or a variable, is the same path under that volume's folder.

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::Api;
use kube::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How to start a pod's container.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
}

/// What the node runs for an image: surge's images are the surge binary
/// (its Dockerfile's entrypoint), run from the repository (its workdir
/// holds `scenarios/` and `fixtures/`, as the image's does).
pub struct Images {
    pub surge: PathBuf,
    pub workdir: PathBuf,
}

impl Images {
    fn program(&self, image: &str) -> Result<&Path, String> {
        let name = image.rsplit('/').next().unwrap_or(image);
        if name == "surge" || name.starts_with("surge:") {
            Ok(&self.surge)
        } else {
            Err(format!(
                "image {image:?} is not one this node can run (surge:*)"
            ))
        }
    }
}

/// The launch of `pod`'s first container at `address`, its volumes made
/// under `pod_dir` (emptyDir, ConfigMap, Secret) or `claims` (a claim's
/// folder, shared by every pod that mounts it).
pub async fn prepare(
    client: &Client,
    pod: &Pod,
    address: &str,
    images: &Images,
    pod_dir: &Path,
    claims: &Path,
) -> Result<Launch, String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or("the pod has no spec")?;
    let container = spec.containers.first().ok_or("the pod has no container")?;
    let program = images.program(container.image.as_deref().unwrap_or(""))?;
    let mounts = volumes(client, &namespace, pod, container, pod_dir, claims).await?;
    let env = environment(client, &namespace, pod, container, address).await?;
    let vars: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let args: Vec<String> = container
        .command
        .iter()
        .flatten()
        .skip(1)
        .chain(container.args.iter().flatten())
        .map(|a| remap(&expand(a, &vars), &mounts))
        .collect();
    let env = env
        .iter()
        .map(|(k, v)| (k.clone(), remap(v, &mounts)))
        .collect();
    let workdir = match &container.working_dir {
        Some(dir) => PathBuf::from(remap(dir, &mounts)),
        None => images.workdir.clone(),
    };
    Ok(Launch {
        program: program.to_path_buf(),
        args,
        env,
        workdir,
    })
}

/// `$(NAME)` replaced by a variable defined before it; `$$` is a `$`;
/// a reference to nothing stays as written (the kubelet's rules).
fn expand(text: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|a| a.split_once(')'))
            .filter(|(name, _)| vars.contains_key(name))
        {
            out.push_str(vars[name]);
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out + rest
}

/// `text` with a leading mountPath replaced by its volume's folder.
fn remap(text: &str, mounts: &[(String, PathBuf)]) -> String {
    for (mount, folder) in mounts {
        if let Some(rest) = text.strip_prefix(mount.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("{}{rest}", folder.display());
            }
        }
    }
    text.to_owned()
}

/// Each mount's path and the folder that stands for it, longest first.
async fn volumes(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    container: &Container,
    pod_dir: &Path,
    claims: &Path,
) -> Result<Vec<(String, PathBuf)>, String> {
    let declared = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = declared
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| format!("volume {:?} is mounted but not declared", mount.name))?;
        let folder = if let Some(claim) = &volume.persistent_volume_claim {
            claims.join(&claim.claim_name)
        } else if volume.empty_dir.is_some() {
            pod_dir.join(&volume.name)
        } else if let Some(source) = &volume.config_map {
            let data = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get(&source.name)
                .await
                .map_err(|e| format!("configmap {:?}: {e}", source.name))?
                .data
                .unwrap_or_default();
            write_files(
                &pod_dir.join(&volume.name),
                data.into_iter().map(|(k, v)| (k, v.into_bytes())),
            )?
        } else if let Some(source) = &volume.secret {
            let name = source.secret_name.clone().unwrap_or_default();
            let data = Api::<Secret>::namespaced(client.clone(), namespace)
                .get(&name)
                .await
                .map_err(|e| format!("secret {name:?}: {e}"))?
                .data
                .unwrap_or_default();
            write_files(
                &pod_dir.join(&volume.name),
                data.into_iter().map(|(k, v)| (k, v.0)),
            )?
        } else if let Some(projected) = &volume.projected {
            let files = projected_files(client, namespace, pod, projected).await?;
            write_files(&pod_dir.join(&volume.name), files.into_iter())?
        } else {
            return Err(format!("volume {:?}: only emptyDir, persistentVolumeClaim, configMap, secret and projected volumes are mapped to folders", volume.name));
        };
        std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        mounts.push((mount.mount_path.trim_end_matches('/').to_owned(), folder));
    }
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    Ok(mounts)
}

/// A projected volume's files, as the admission plugin makes them for
/// every pod (`kube-api-access-*`): a token of the pod's ServiceAccount
/// from the real TokenRequest API, the cluster's CA, the namespace.
async fn projected_files(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    projected: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    for source in projected.sources.iter().flatten() {
        if let Some(token) = &source.service_account_token {
            let account = pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into());
            let request = serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": token.expiration_seconds.unwrap_or(3607)}
            });
            let answer: k8s_openapi::api::authentication::v1::TokenRequest =
                Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
                    client.clone(),
                    namespace,
                )
                .create_subresource("token", &account, &Default::default(), &request)
                .await
                .map_err(|e| format!("token of {account:?}: {e}"))?;
            let token_text = answer.status.map(|s| s.token).unwrap_or_default();
            files.push((token.path.clone(), token_text.into_bytes()));
        }
        if let Some(map) = &source.config_map {
            let data = Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get(&map.name)
                .await
                .map_err(|e| format!("configmap {:?}: {e}", map.name))?
                .data
                .unwrap_or_default();
            for item in map.items.iter().flatten() {
                if let Some(value) = data.get(&item.key) {
                    files.push((item.path.clone(), value.clone().into_bytes()));
                }
            }
        }
        if let Some(downward) = &source.downward_api {
            for item in downward.items.iter().flatten() {
                if let Some(field) = &item.field_ref {
                    files.push((
                        item.path.clone(),
                        field_value(pod, &field.field_path, "")?.into_bytes(),
                    ));
                }
            }
        }
    }
    Ok(files)
}

fn write_files(
    folder: &Path,
    files: impl Iterator<Item = (String, Vec<u8>)>,
) -> Result<PathBuf, String> {
    std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    for (name, bytes) in files {
        std::fs::write(folder.join(&name), bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(folder.to_path_buf())
}

/// The container's variables in order: `envFrom` first, then `env` (each
/// value expanded against those before it), as the kubelet builds them.
async fn environment(
    client: &Client,
    namespace: &str,
    pod: &Pod,
    container: &Container,
    address: &str,
) -> Result<Vec<(String, String)>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut env: Vec<(String, String)> = Vec::new();
    for source in container.env_from.iter().flatten() {
        if let Some(secret) = &source.secret_ref {
            let found = secrets
                .get(&secret.name)
                .await
                .map_err(|e| format!("secret {:?}: {e}", secret.name))?;
            for (k, v) in found.data.unwrap_or_default() {
                env.push((k, String::from_utf8_lossy(&v.0).into_owned()));
            }
        }
        if let Some(map) = &source.config_map_ref {
            let found = maps
                .get(&map.name)
                .await
                .map_err(|e| format!("configmap {:?}: {e}", map.name))?;
            env.extend(found.data.unwrap_or_default());
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => {
                let vars: BTreeMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(value, &vars)
            }
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(pod, &field.field_path, address)?
                } else if let Some(key) = &from.secret_key_ref {
                    let found = secrets
                        .get(&key.name)
                        .await
                        .map_err(|e| format!("secret {:?}: {e}", key.name))?;
                    let bytes = found
                        .data
                        .unwrap_or_default()
                        .remove(&key.key)
                        .ok_or_else(|| format!("secret {:?} has no key {:?}", key.name, key.key))?;
                    String::from_utf8_lossy(&bytes.0).into_owned()
                } else if let Some(key) = &from.config_map_key_ref {
                    let found = maps
                        .get(&key.name)
                        .await
                        .map_err(|e| format!("configmap {:?}: {e}", key.name))?;
                    found
                        .data
                        .unwrap_or_default()
                        .remove(&key.key)
                        .ok_or_else(|| {
                            format!("configmap {:?} has no key {:?}", key.name, key.key)
                        })?
                } else {
                    return Err(format!(
                        "env {:?}: only fieldRef, secretKeyRef and configMapKeyRef are supported",
                        var.name
                    ));
                }
            }
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

/// A downward-API field of `pod` (the fields a kubelet resolves).
fn field_value(pod: &Pod, path: &str, address: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "status.podIP" => address.to_owned(),
        "spec.nodeName" => super::NODE.to_owned(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        _ => keyed("metadata.annotations['", &meta.annotations)
            .or_else(|| keyed("metadata.labels['", &meta.labels))
            .ok_or_else(|| format!("fieldRef {path:?} is not one this node resolves"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_as_the_kubelet_expands_them() {
        let vars = BTreeMap::from([("A", "1"), ("SURGE_TEST", "t-9")]);
        assert_eq!(
            expand("/results/$(SURGE_TEST)/shards", &vars),
            "/results/t-9/shards"
        );
        assert_eq!(expand("$(A)$(A)-$$(A)-$(B)-$", &vars), "11-$(A)-$(B)-$");
    }

    #[test]
    fn a_path_under_a_mount_is_the_same_path_under_its_folder() {
        let mounts = vec![
            (
                "/opt/surge/scenario".to_owned(),
                PathBuf::from("/n/p/scenario"),
            ),
            ("/results".to_owned(), PathBuf::from("/n/claims/r")),
        ];
        assert_eq!(remap("/results/t/shards", &mounts), "/n/claims/r/t/shards");
        assert_eq!(remap("/results", &mounts), "/n/claims/r");
        assert_eq!(remap("/resultsX", &mounts), "/resultsX");
        assert_eq!(remap("run", &mounts), "run");
    }
}
