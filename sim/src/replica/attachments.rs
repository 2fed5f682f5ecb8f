//! Attachments as OpenMRS stores them: uploaded as multipart, written to
//! this replica's own folder (the bug the consistency check finds) or to the
//! shared one, optionally copied to the other replicas after a delay.

use super::*;

/// A part's content type as sent (text parts usually have none).
pub(super) fn field_content_type(file: bool, content_type: &str) -> Option<String> {
    (file || content_type != "application/octet-stream").then(|| content_type.to_owned())
}

pub(super) fn safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

pub(super) async fn upload_attachment(
    State(r): State<Shared>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    let (mut file, mut patient, mut caption) = (None, None, String::new());
    let mut parts = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let file_name = field.file_name().unwrap_or("file").to_owned();
                let has_file_name = field.file_name().is_some();
                let Ok(bytes) = field.bytes().await else {
                    return text(StatusCode::BAD_REQUEST, "unreadable multipart body");
                };
                parts.push(json!({"name": name, "content_type": field_content_type(has_file_name, &content_type),
                    "file_name": has_file_name, "bytes": bytes.len()}));
                match name.as_str() {
                    "file" => file = Some((bytes, content_type, file_name)),
                    "patient" => patient = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    "fileCaption" => caption = String::from_utf8_lossy(&bytes).into_owned(),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => return text(StatusCode::BAD_REQUEST, &format!("bad multipart body: {e}")),
        }
    }
    r.capture(json!({"multipart": parts, "path": format!("{REST}/attachment")}));
    let (Some((bytes, content_type, file_name)), Some(patient)) = (file, patient) else {
        return text(
            StatusCode::BAD_REQUEST,
            "parts `file` and `patient` are required",
        );
    };
    if bytes.len() > 5 * 1024 * 1024 {
        return text(
            StatusCode::BAD_REQUEST,
            "file exceeds attachments.maxUploadFileSize (5 MB)",
        );
    }
    // OpenMRS rescales images over attachments.maxStorageFileSize (1.2 MB) on
    // store: what comes back is not what was sent.
    let bytes = if content_type.starts_with("image/") && bytes.len() > 1_200_000 {
        bytes.slice(..bytes.len() / 2)
    } else {
        bytes
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let dir = r.options.attachments_dir.clone();
    let stored = r
        .with_connection(|| store(&dir, &uuid, &bytes, &format!("{content_type}\n{file_name}")))
        .await;
    if matches!(stored, Ok(Ok(()))) {
        replicate(&r, uuid.clone());
    }
    match stored {
        Ok(Ok(())) => with_cookie(
            (
                StatusCode::CREATED,
                Json(json!({"uuid": uuid, "comment": caption, "patient": {"uuid": patient}, "bytesContentFamily": "OTHER"})),
            )
                .into_response(),
            &auth,
        ),
        Ok(Err(e)) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot store attachment: {e}")),
        Err(resp) => resp,
    }
}

pub(super) async fn download_attachment(
    State(r): State<Shared>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Response {
    let auth = session_or_refuse!(r, headers);
    if !safe_id(&uuid) {
        return text(StatusCode::NOT_FOUND, "no such attachment");
    }
    let dir = r.options.attachments_dir.clone();
    let read = r.with_connection(|| load(&dir, &uuid)).await;
    match read {
        Ok(Ok((bytes, meta))) => {
            let (content_type, file_name) = meta
                .split_once('\n')
                .unwrap_or(("application/octet-stream", "file"));
            let ext = file_name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
            let mut resp = bytes.into_response();
            for (k, v) in [
                ("content-type", content_type),
                ("file-name", file_name),
                ("file-ext", ext),
            ] {
                if let Ok(v) = HeaderValue::from_str(v) {
                    resp.headers_mut().insert(k, v);
                }
            }
            with_cookie(resp, &auth)
        }
        // Stored on another replica's disk: the classic multi-replica bug.
        Ok(Err(_)) => text(
            StatusCode::NOT_FOUND,
            "Object with given uuid doesn't exist",
        ),
        Err(resp) => resp,
    }
}

/// Writes a stored object and its metadata (content type, file name) under `dir`.
pub(super) fn store(
    dir: &std::path::Path,
    id: &str,
    bytes: &[u8],
    meta: &str,
) -> std::io::Result<()> {
    std::fs::write(dir.join(id), bytes)?;
    std::fs::write(dir.join(format!("{id}.type")), meta)
}

/// Copies a stored object into the other replicas' folders after the
/// replication delay, as an asynchronously replicated volume would. The
/// metadata file goes last, so a reader never sees half an object.
pub(super) fn replicate(r: &Replica, id: String) {
    if r.options.replicate_to.is_empty() {
        return;
    }
    let from = r.options.attachments_dir.clone();
    let to = r.options.replicate_to.clone();
    let delay = r.options.service.replication_delay;
    let corrupt = r.options.service.corrupt_replication;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for dir in to {
            let _ = tokio::fs::create_dir_all(&dir).await;
            for (name, is_data) in [(id.clone(), true), (format!("{id}.type"), false)] {
                let tmp = dir.join(format!(".{name}.part"));
                let copied = match tokio::fs::read(from.join(&name)).await {
                    Ok(mut bytes) => {
                        if corrupt && is_data {
                            if let Some(first) = bytes.first_mut() {
                                *first ^= 0xff;
                            }
                        }
                        tokio::fs::write(&tmp, bytes).await.is_ok()
                    }
                    Err(_) => false,
                };
                if !copied || tokio::fs::rename(&tmp, dir.join(&name)).await.is_err() {
                    tracing::error!("replicating {name} to {} failed", dir.display());
                }
            }
        }
    });
}

/// Reads back what [`store`] wrote: the bytes and the metadata.
pub(super) fn load(dir: &std::path::Path, id: &str) -> std::io::Result<(Vec<u8>, String)> {
    Ok((
        std::fs::read(dir.join(id))?,
        std::fs::read_to_string(dir.join(format!("{id}.type")))?,
    ))
}
