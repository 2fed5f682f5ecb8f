//! Keeping secrets out of what surge prints: the user name and password a
//! URL may carry (`https://user:secret@host`) are cut from any text before
//! it reaches a message, a log line or a report.

/// `text` with the userinfo of every URL in it replaced by `***`.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The URL ends at whitespace or a quote. Everything before its last
        // `@` may be userinfo, even a password holding `/`, `?` or `#` that
        // no URL parser accepts: cut it all (at worst a path is hidden too).
        let word_end = tail
            .find(|c: char| matches!(c, '"' | '\'' | '`' | '<' | '>') || c.is_whitespace())
            .unwrap_or(tail.len());
        let word = &tail[..word_end];
        let host_start = word.rfind('@').map_or(0, |at| at + 1);
        if host_start > 0 {
            out.push_str("***@");
        }
        let end = host_start
            + word[host_start..]
                .find(['/', '?', '#'])
                .unwrap_or(word.len() - host_start);
        out.push_str(&tail[host_start..end]);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Whether a URL carries a user name or password.
pub fn has_userinfo(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_never_survives() {
        assert_eq!(
            redact_text("target http://admin:Admin123@127.0.0.1:8080/x is unreachable"),
            "target http://***@127.0.0.1:8080/x is unreachable"
        );
        assert_eq!(
            redact_text("https://tok@h and https://h2/p"),
            "https://***@h and https://h2/p"
        );
        assert_eq!(redact_text("http://a:b@c"), "http://***@c");
        assert_eq!(
            redact_text("--target \"http://u:pa/ss?#x@h:80/p\" bad"),
            "--target \"http://***@h:80/p\" bad"
        );
        assert_eq!(redact_text("no url here"), "no url here");
        assert_eq!(redact_text("mail x@y.org"), "mail x@y.org");
        assert!(has_userinfo("http://u:p@h/"));
        assert!(!has_userinfo("http://h/"));
    }
}
