//! The pieces of a recorded request an import reads as text: a query's or
//! form's escapes, a form's pairs, a multipart body's parts (when the
//! writer did not parse them), a key as it may be printed, the generated
//! content that stands for a file.

use super::model::Param;

/// What generated content stands for a recorded file of this type.
pub fn kind_of(mime: &str) -> crate::scenario::ContentKind {
    let mime = mime.to_ascii_lowercase();
    if mime.starts_with("application/pdf") {
        crate::scenario::ContentKind::Pdf
    } else if mime.starts_with("text/") {
        crate::scenario::ContentKind::Text
    } else {
        crate::scenario::ContentKind::Bin
    }
}

/// A key or name as it may be printed: a plain word, else a stand-in (a
/// key can itself be data).
pub fn printable(key: &str) -> String {
    if !key.is_empty()
        && key.len() <= 40
        && key
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'-'))
    {
        key.to_owned()
    } else {
        "(a name that is not a plain word)".to_owned()
    }
}

/// `%20` → ` `, `+` → ` ` (a query or form value); a bad escape stays.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A form name or value encoded as a browser sends it (`a b` → `a+b`).
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `a=1&b=x%20y` as pairs, decoded.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// A multipart body's parts from its text (when the writer did not parse
/// them): each part's name, file name and type, and a text part's value.
pub fn multipart_params(mime: &str, text: &str) -> Vec<Param> {
    let Some(boundary) = mime
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"'))
    else {
        return Vec::new();
    };
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (head, body) = part.split_once("\r\n\r\n").unwrap_or((part, ""));
        let body = body.strip_suffix("\r\n").unwrap_or(body);
        let mut param = Param {
            name: String::new(),
            value: None,
            file_name: None,
            content_type: None,
        };
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            if name.eq_ignore_ascii_case("content-disposition") {
                for attr in value.split(';').map(str::trim) {
                    if let Some(v) = attr.strip_prefix("name=") {
                        param.name = v.trim_matches('"').to_owned();
                    } else if let Some(v) = attr.strip_prefix("filename=") {
                        param.file_name = Some(v.trim_matches('"').to_owned());
                    }
                }
            } else if name.eq_ignore_ascii_case("content-type") {
                param.content_type = Some(value.trim().to_owned());
            }
        }
        param.value = Some(body.to_owned());
        out.push(param);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_text_gives_each_parts_name_file_and_value() {
        let text = "--XyZ\r\nContent-Disposition: form-data; name=\"patient\"\r\n\r\nabc-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"scan.pdf\"\r\nContent-Type: application/pdf\r\n\r\n\r\n--XyZ--\r\n";
        let parts = multipart_params("multipart/form-data; boundary=XyZ", text);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].value.as_deref()),
            ("patient", Some("abc-1"))
        );
        assert_eq!(parts[1].file_name.as_deref(), Some("scan.pdf"));
        assert_eq!(parts[1].content_type.as_deref(), Some("application/pdf"));
        assert_eq!(parts[1].value.as_deref(), Some(""));
    }

    #[test]
    fn escapes_decode_and_a_bad_one_stays() {
        assert_eq!(percent_decode("Jane%20Doe+x"), "Jane Doe x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
