//! Access log lines as requests: when each began, its method, its target
//! (path and query, as sent) and its status. One parser per proxy, each
//! format as its proxy documents it:
//!
//! - **nginx** `combined` (`$remote_addr - $remote_user [$time_local]
//!   "$request" $status $body_bytes_sent "$http_referer"
//!   "$http_user_agent"`), or a JSON `log_format` (a line starting with
//!   `{`) with `request` or `request_method` + `request_uri`, and
//!   `time_iso8601` or `msec` (+ `request_time`). Apache's combined log is
//!   the same layout (`combined`).
//! - **HAProxy** `option httplog`: `[%tr]` (when the request began,
//!   `dd/Mon/yyyy:HH:MM:SS.mmm`), the timers, the status, and the quoted
//!   request line last; a syslog prefix before the client address is
//!   skipped.
//! - **Traefik** common log (CLF and Traefik's fields after it) or JSON
//!   (`StartUTC`, `RequestMethod`, `RequestPath`, `DownstreamStatus` or
//!   `OriginStatus`).
//!
//! A proxy writes its line when the request ends, so lines are not in
//! order of arrival; the caller sorts by [`LogRecord::start_ms`]. When the
//! log gives only the end (nginx `combined`), the end stands for the start,
//! to the second. Time zones matter only within a file: the arrival curve
//! is relative to its first request. An error says what was expected and
//! never repeats what the line held (it may hold a patient's data).

use serde_json::Value;

/// The proxies whose logs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx `combined`, or nginx JSON.
    Nginx,
    /// Apache/nginx `combined`.
    Combined,
    /// HAProxy `option httplog`.
    Haproxy,
    /// Traefik common log or JSON.
    Traefik,
}

impl LogFormat {
    /// What a line of this format looks like, for an error.
    pub fn expected(self) -> &'static str {
        match self {
            LogFormat::Nginx => "an nginx combined line (ADDR - USER [10/Oct/2023:13:55:36 +0000] \"GET /path HTTP/1.1\" 200 …) or a JSON log_format object with request and time_iso8601 or msec",
            LogFormat::Combined => "a combined log line (ADDR - USER [10/Oct/2023:13:55:36 +0000] \"GET /path HTTP/1.1\" 200 …)",
            LogFormat::Haproxy => "an HAProxy httplog line (ADDR:PORT [06/Feb/2009:12:14:14.655] FRONTEND BACKEND/SERVER TR/Tw/Tc/Tr/Ta STATUS … \"GET /path HTTP/1.1\")",
            LogFormat::Traefik => "a Traefik access log line: common log (ADDR - USER [10/Nov/2009:23:00:00 +0000] \"GET /path HTTP/1.1\" 200 …) or JSON with StartUTC, RequestMethod and RequestPath",
        }
    }
}

/// One request, as a log line tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// When it began (or ended, when the log says only that), ms since
    /// the epoch.
    pub start_ms: i64,
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// The status answered.
    pub status: u16,
    /// The session cookie's value, where the log keeps the cookie (an nginx
    /// JSON field `cookie_JSESSIONID` or `http_cookie`, HAProxy's `capture
    /// cookie`, Traefik's kept `request_Cookie` header). Held in memory to
    /// tell sessions apart, never written.
    pub session: Option<String>,
    /// The client's address, never written.
    pub client: Option<String>,
}

/// The session cookie's value in a `Cookie` header (`a=1; JSESSIONID=x`)
/// or one `NAME=value` pair.
fn session_in(cookies: &str) -> Option<String> {
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (super::session_cookie(name) && !value.is_empty() && value != "-").then(|| value.to_owned())
    })
}

/// Why a line is not one of the format's.
pub type LineError = String;

/// Reads one line; `Ok(None)` for a line that carries no request (an
/// empty line, HAProxy's `<BADREQ>`).
pub fn parse_line(format: LogFormat, line: &str) -> Result<Option<LogRecord>, LineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    match format {
        LogFormat::Nginx if line.trim_start().starts_with('{') => nginx_json(line),
        LogFormat::Nginx | LogFormat::Combined => common(line),
        LogFormat::Haproxy => haproxy(line),
        LogFormat::Traefik if line.trim_start().starts_with('{') => traefik_json(line),
        LogFormat::Traefik => common(line),
    }
}

/// The common/combined layout: `ADDR - USER [TIME] "REQUEST" STATUS …`;
/// `None` for a 400 with no request line.
fn common(line: &str) -> Result<Option<LogRecord>, LineError> {
    let open = line
        .find(" [")
        .ok_or("no [time] after the client address")?;
    let close = line[open..].find("] ").ok_or("the [time] is not closed")? + open;
    let time = &line[open + 2..close];
    let start_ms = clf_time(time)?;
    let rest = line[close + 2..].trim_start();
    let (request, after) = quoted(rest).ok_or("no quoted request line after the [time]")?;
    let status = after
        .split_whitespace()
        .next()
        .ok_or("no status after the request line")?;
    let status = status_code(status)?;
    // A request line that is no request to replay (a TLS hello on the
    // plain port, a scanner's bytes, `OPTIONS *`, a proxy's absolute URL):
    // the line is the format's, its request is left out.
    let Some((method, target)) = request_line(&request) else {
        return Ok(None);
    };
    let client = line[..open].split_whitespace().next().map(str::to_owned);
    Ok(Some(LogRecord {
        start_ms,
        method,
        target,
        status,
        session: None,
        client,
    }))
}

/// `10/Oct/2023:13:55:36 +0000` (nginx, Apache, Traefik CLF) in ms.
fn clf_time(text: &str) -> Result<i64, LineError> {
    jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", text)
        .and_then(|t| t.to_timestamp())
        .map(|t| t.as_millisecond())
        .map_err(|_| "the [time] is not a time such as [10/Oct/2023:13:55:36 +0000]".to_owned())
}

/// The text inside the first pair of double quotes (nginx escapes a quote
/// inside as `\x22`, Traefik and HAProxy as `\"`), and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((unescape(&out), &body[i + 1..])),
            '\\' => {
                out.push('\\');
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            c => out.push(c),
        }
    }
    None
}

/// nginx's `\xXX` escapes and a backslash before a quote or a backslash,
/// undone.
fn unescape(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\\' if raw.get(i + 1) == Some(&b'x') => {
                // Bytes, not chars: a cut in the middle of one is no panic.
                let hex = raw
                    .get(i + 2..i + 4)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        bytes.push(b);
                        i += 4;
                    }
                    None => {
                        bytes.push(b'\\');
                        i += 1;
                    }
                }
            }
            b'\\' if matches!(raw.get(i + 1), Some(b'"') | Some(b'\\')) => {
                bytes.push(raw[i + 1]);
                i += 2;
            }
            b => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `GET /path?q HTTP/1.1` → (method, target); `None` when the line is
/// no origin-form request (no method, a target not beginning with `/`).
fn request_line(request: &str) -> Option<(String, String)> {
    let mut parts = request.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    (method_ok && target.starts_with('/')).then(|| (method.to_owned(), target.to_owned()))
}

fn status_code(text: &str) -> Result<u16, LineError> {
    text.parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| "the status is not a number from 100 to 599".into())
}

/// nginx JSON: `request` or `request_method` + `request_uri`; the start
/// from `msec` − `request_time`, else the end from `time_iso8601`
/// (numbers may be written as strings).
fn nginx_json(line: &str) -> Result<Option<LogRecord>, LineError> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let text = |key: &str| -> Option<String> {
        match &v[key] {
            Value::String(s) if s != "-" && !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let line = match (text("request_method"), text("request_uri")) {
        (Some(m), Some(u)) => format!("{m} {u} HTTP/1.1"),
        _ => text("request").ok_or("no request, nor request_method and request_uri")?,
    };
    let number = |key: &str| text(key).and_then(|s| s.parse::<f64>().ok());
    let start_ms = match (number("msec"), text("time_iso8601")) {
        (Some(end_s), _) => {
            let start = (end_s - number("request_time").unwrap_or(0.0)) * 1000.0;
            // Years 1970 to 2286 in ms; `inf`, `NaN` and the like are not.
            if !(0.0..1e13).contains(&start) {
                return Err("msec (less request_time) is not a time in seconds since 1970".into());
            }
            start.round() as i64
        }
        (None, Some(iso)) => iso
            .parse::<jiff::Timestamp>()
            .map_err(|_| "time_iso8601 is not a time such as 2011-03-21T18:52:25+03:00".to_owned())?
            .as_millisecond(),
        (None, None) => return Err("no msec, nor time_iso8601".into()),
    };
    let status = status_code(&text("status").ok_or("no status")?)?;
    // `$cookie_JSESSIONID` logged as `cookie_JSESSIONID`, or the whole
    // `$http_cookie`.
    let session = v
        .as_object()
        .into_iter()
        .flatten()
        .find_map(|(key, value)| {
            let value = value.as_str()?;
            match key.strip_prefix("cookie_") {
                Some(name) if super::session_cookie(name) && !value.is_empty() && value != "-" => {
                    Some(value.to_owned())
                }
                _ if key == "http_cookie" => session_in(value),
                _ => None,
            }
        });
    Ok(request_line(&line).map(|(method, target)| LogRecord {
        start_ms,
        method,
        target,
        status,
        session,
        client: text("remote_addr"),
    }))
}

/// HAProxy httplog: the client `ADDR:PORT`, then `[%tr]`, …, the status
/// after the timers, and the quoted request line last.
fn haproxy(line: &str) -> Result<Option<LogRecord>, LineError> {
    // A syslog prefix ends with `haproxy[PID]: `; a raw line begins with
    // the client address.
    let body = match line.find("]: ") {
        Some(at) if line[..at].contains("haproxy[") => &line[at + 3..],
        _ => line,
    };
    // HAProxy's own messages share the log: a server going down or up, a
    // proxy starting or stopping. No request in them.
    const EVENTS: &[&str] = &[
        "Proxy ",
        "Server ",
        "backend ",
        "Stopping ",
        "Pausing ",
        "Resuming ",
        "Health check ",
        "[NOTICE]",
        "[WARNING]",
        "[ALERT]",
    ];
    if EVENTS.iter().any(|e| body.starts_with(e)) {
        return Ok(None);
    }
    let open = body
        .find(" [")
        .ok_or("no [accept date] after the client address")?;
    let close = body[open..]
        .find("] ")
        .ok_or("the [accept date] is not closed")?
        + open;
    let date = &body[open + 2..close];
    let start_ms = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S%.f", date)
        .and_then(|t| t.to_datetime())
        // No zone in %tr: within a file only the differences count.
        .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| {
            "the [accept date] is not a date such as [06/Feb/2009:12:14:14.655]".to_owned()
        })?;
    let fields: Vec<&str> = body[close + 2..].split_whitespace().collect();
    // frontend, backend/server, timers, status.
    let status = fields.get(3).ok_or("no status after the timers")?;
    if fields.get(2).is_none_or(|t| t.split('/').count() != 5) {
        return Err("no TR/Tw/Tc/Tr/Ta timers after the backend/server".into());
    }
    // The request line is the last field (a captured header before it
    // may hold a quote).
    let quote = body.rfind(" \"").ok_or("no quoted request line")?;
    let (request, _) = quoted(&body[quote + 1..]).ok_or("the request line is not closed")?;
    let status = status_code(status)?;
    // After the bytes read: the captured request cookie (`capture cookie
    // JSESSIONID len 32` logs `JSESSIONID=value`, else `-`).
    let session = fields.get(5).and_then(|c| session_in(c));
    let client = body[..open]
        .rsplit_once(':')
        .map(|(addr, _)| addr.to_owned());
    // `<BADREQ>` and the like: no request to replay.
    Ok(request_line(&request).map(|(method, target)| LogRecord {
        start_ms,
        method,
        target,
        status,
        session,
        client,
    }))
}

/// Traefik JSON: `StartUTC` (RFC 3339), `RequestMethod`, `RequestPath`
/// (with the query), `DownstreamStatus` or `OriginStatus`.
fn traefik_json(line: &str) -> Result<Option<LogRecord>, LineError> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let start = v["StartUTC"]
        .as_str()
        .or(v["StartLocal"].as_str())
        .ok_or("no StartUTC")?;
    let start_ms = start
        .parse::<jiff::Timestamp>()
        .map_err(|_| "StartUTC is not an RFC 3339 time".to_owned())?
        .as_millisecond();
    let method = v["RequestMethod"].as_str().ok_or("no RequestMethod")?;
    let path = v["RequestPath"].as_str().ok_or("no RequestPath")?;
    let status = v["DownstreamStatus"]
        .as_u64()
        .or(v["OriginStatus"].as_u64())
        .ok_or("no DownstreamStatus or OriginStatus")?;
    let status = status_code(&status.to_string())?;
    Ok(
        request_line(&format!("{method} {path} HTTP/1.1")).map(|(method, target)| LogRecord {
            start_ms,
            method,
            target,
            status,
            session: v["request_Cookie"].as_str().and_then(session_in),
            client: v["ClientHost"].as_str().map(str::to_owned),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn each_proxys_documented_line_reads_as_its_request() {
        let nginx = r#"203.0.113.7 - - [10/Oct/2023:13:55:36 +0200] "GET /fhir/Patient?name=x%20y&_count=10 HTTP/1.1" 200 612 "-" "curl/8.4.0""#;
        assert_eq!(
            parse_line(LogFormat::Nginx, nginx).unwrap().unwrap(),
            LogRecord {
                start_ms: ms("2023-10-10T11:55:36Z"),
                method: "GET".into(),
                target: "/fhir/Patient?name=x%20y&_count=10".into(),
                status: 200,
                session: None,
                client: Some("203.0.113.7".into()),
            }
        );
        let json = r#"{"time_iso8601":"2023-10-10T13:55:36+00:00","msec":"1696946136.250","request":"POST /fhir/Patient HTTP/1.1","status":"201","request_time":"0.250"}"#;
        let r = parse_line(LogFormat::Nginx, json).unwrap().unwrap();
        assert_eq!(
            (r.start_ms, r.method.as_str(), r.status),
            (1_696_946_136_000, "POST", 201)
        );
        let haproxy = r#"<30>Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1""#;
        let r = parse_line(LogFormat::Haproxy, haproxy).unwrap().unwrap();
        assert_eq!(
            (r.start_ms, r.target.as_str(), r.status),
            (ms("2009-02-06T12:14:14.655Z"), "/index.html", 200)
        );
        let cookie = r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 JSESSIONID=A1B2 - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1""#;
        let r = parse_line(LogFormat::Haproxy, cookie).unwrap().unwrap();
        assert_eq!(
            (r.session.as_deref(), r.client.as_deref()),
            (Some("A1B2"), Some("10.0.1.2"))
        );
        let json = r#"{"msec":"1696946136.250","request":"GET / HTTP/1.1","status":"200","remote_addr":"10.0.0.9","cookie_JSESSIONID":"S7"}"#;
        let r = parse_line(LogFormat::Nginx, json).unwrap().unwrap();
        assert_eq!(
            (r.session.as_deref(), r.client.as_deref()),
            (Some("S7"), Some("10.0.0.9"))
        );
        let json = r#"{"msec":"1696946136.250","request":"GET / HTTP/1.1","status":"200","http_cookie":"theme=dark; connect.sid=s%3Aab"}"#;
        assert_eq!(
            parse_line(LogFormat::Nginx, json)
                .unwrap()
                .unwrap()
                .session
                .as_deref(),
            Some("s%3Aab")
        );
        let bad = r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in http-in/<NOSRV> -1/-1/-1/-1/0 400 187 - - PR-- 1/1/0/0/0 0/0 "<BADREQ>""#;
        assert_eq!(parse_line(LogFormat::Haproxy, bad).unwrap(), None);
        let down = "Server be/r1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms.";
        assert_eq!(parse_line(LogFormat::Haproxy, down).unwrap(), None);
        let traefik = r#"10.0.0.1 - Client [10/Nov/2009:23:00:00 +0000] "GET /foo HTTP/1.1" 123 132 "referer" "agent" 5 "foo" "http://10.0.0.2/toto" 123ms"#;
        let r = parse_line(LogFormat::Traefik, traefik).unwrap().unwrap();
        assert_eq!(
            (r.start_ms, r.target.as_str(), r.status),
            (ms("2009-11-10T23:00:00Z"), "/foo", 123)
        );
        let traefik_json = r#"{"StartUTC":"2024-05-01T10:00:00.123456789Z","RequestMethod":"PUT","RequestPath":"/fhir/Patient/7?x=1","DownstreamStatus":200,"Duration":1500000}"#;
        let r = parse_line(LogFormat::Traefik, traefik_json)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.start_ms, r.method.as_str(), r.target.as_str()),
            (ms("2024-05-01T10:00:00.123Z"), "PUT", "/fhir/Patient/7?x=1")
        );
    }

    #[test]
    fn nginx_escapes_are_undone_and_a_line_of_another_format_says_what_was_expected() {
        let escaped =
            r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /a\x22b HTTP/1.1" 404 0 "-" "-""#;
        assert_eq!(
            parse_line(LogFormat::Combined, escaped)
                .unwrap()
                .unwrap()
                .target,
            "/a\"b"
        );
        assert_eq!(parse_line(LogFormat::Nginx, "   ").unwrap(), None);
        let inf = r#"{"msec":"-inf","request":"GET / HTTP/1.1","status":"200"}"#;
        assert!(parse_line(LogFormat::Nginx, inf)
            .unwrap_err()
            .contains("not a time"));
        let haproxy = r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1""#;
        let said = parse_line(LogFormat::Nginx, haproxy).unwrap_err();
        assert!(said.contains("not a time such as"), "{said}");
        let said = parse_line(
            LogFormat::Haproxy,
            r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#,
        )
        .unwrap_err();
        assert!(said.contains("not a date such as"), "{said}");
        assert!(parse_line(LogFormat::Traefik, "{\"StartUTC\": 3}")
            .unwrap_err()
            .contains("no StartUTC"));
        let no_request = r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "hello" 200 1"#;
        assert_eq!(parse_line(LogFormat::Combined, no_request).unwrap(), None);
        let absolute = r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET http://x/ HTTP/1.1" 200 1"#;
        assert_eq!(parse_line(LogFormat::Combined, absolute).unwrap(), None);
        // A TLS hello on the plain port, refused with 400: no request.
        let hello = r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "\x16\x03\x01\x02\x00\x01\x00" 400 157 "-" "-""#;
        assert_eq!(parse_line(LogFormat::Nginx, hello).unwrap(), None);
    }
}
