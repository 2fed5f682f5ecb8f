//! A HAR recorded by a real headless Chromium (Debian's) over the DevTools
//! protocol, built from its Network events as DevTools' own "Save all as
//! HAR" builds it: the headers Chromium put on the wire (the ExtraInfo
//! events: `Cookie`, `Set-Cookie`, `Content-Length`), the post data
//! Chromium keeps — a file's bytes never among it — the answers' bodies,
//! `_resourceType`, redirects as entries of their own.

use super::{program, CHROMIUM_FLAGS};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// A headless Chromium with its DevTools endpoint on loopback.
pub struct Chromium {
    child: std::process::Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromium {
    /// Starts Chromium on `about:blank`; `None` (said) when it is not
    /// installed outside CI.
    pub fn start() -> Option<Chromium> {
        let bin = program("chromium")?;
        let profile = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(bin)
            .args(CHROMIUM_FLAGS)
            .args([
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromium starts");
        // Chromium writes the port it chose into the profile.
        let file = profile.path().join("DevToolsActivePort");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u16>().ok()))
            {
                break port;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromium never opened its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Some(Chromium {
            child,
            _profile: profile,
            port,
        })
    }

    /// The DevTools session of its one page.
    pub async fn page(&self) -> Page {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let list: Value = http
            .get(format!("http://127.0.0.1:{}/json/list", self.port))
            .send()
            .await
            .expect("DevTools answers")
            .json()
            .await
            .unwrap();
        let url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("DevTools socket");
        Page {
            ws,
            next: 0,
            events: Vec::new(),
        }
    }
}

/// One page's DevTools session: commands, and the events read meanwhile.
pub struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
    events: Vec<Value>,
}

impl Page {
    /// Sends a command; its result (events that came first are kept).
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next += 1;
        let id = self.next;
        let message = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(message)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer in 60 s"))
                .expect("DevTools socket open")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Reads events until one called `name` came (or 60 s passed).
    pub async fn until(&mut self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !self.events.iter().any(|e| e["method"] == name) {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {name} in 60 s"))
                .unwrap()
                .unwrap();
            if let Message::Text(text) = message {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v.get("method").is_some() {
                    self.events.push(v);
                }
            }
        }
    }

    /// Reads events for `time` (the last requests' ends).
    pub async fn settle(&mut self, time: Duration) {
        let deadline = tokio::time::Instant::now() + time;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(text) = message {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v.get("method").is_some() {
                    self.events.push(v);
                }
            }
        }
    }
}

/// One request hop, as its events told it.
#[derive(Default)]
struct Hop {
    will: Value,
    request_headers: Option<Value>,
    response: Option<Value>,
    response_headers: Option<Value>,
    end: Option<f64>,
    finished: bool,
}

/// Opens `url`, gives the file input `#scan` the file `upload`, runs the
/// page's `run()` and records it: the HAR, and what `run()` returned.
pub async fn record(chromium: &Chromium, url: &str, upload: &Path) -> (Value, String) {
    let mut page = chromium.page().await;
    page.call("Network.enable", json!({ "maxPostDataSize": 65536 }))
        .await
        .unwrap();
    page.call("Page.enable", json!({})).await.unwrap();
    page.call("Page.navigate", json!({ "url": url }))
        .await
        .unwrap();
    page.until("Page.loadEventFired").await;
    let root = page.call("DOM.getDocument", json!({})).await.unwrap();
    let input = page
        .call(
            "DOM.querySelector",
            json!({ "nodeId": root["root"]["nodeId"], "selector": "#scan" }),
        )
        .await
        .unwrap();
    page.call(
        "DOM.setFileInputFiles",
        json!({ "nodeId": input["nodeId"], "files": [upload.to_str().unwrap()] }),
    )
    .await
    .unwrap();
    let ran = page
        .call(
            "Runtime.evaluate",
            json!({ "expression": "run()", "awaitPromise": true, "returnByValue": true }),
        )
        .await
        .unwrap();
    let said = ran["result"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("run() failed: {ran}"))
        .to_owned();
    page.settle(Duration::from_millis(500)).await;
    let har = har(&mut page).await;
    (har, said)
}

/// The HAR of the events read.
async fn har(page: &mut Page) -> Value {
    let mut hops: Vec<(String, Hop)> = Vec::new();
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    let events = std::mem::take(&mut page.events);
    for e in &events {
        let p = &e["params"];
        let id = p["requestId"].as_str().unwrap_or("").to_owned();
        match e["method"].as_str().unwrap_or("") {
            "Network.requestWillBeSent" => {
                if let (Some(redirect), Some(&i)) = (p.get("redirectResponse"), last.get(&id)) {
                    hops[i].1.response = Some(redirect.clone());
                    hops[i].1.end = p["timestamp"].as_f64();
                    hops[i].1.finished = true;
                }
                last.insert(id.clone(), hops.len());
                hops.push((
                    id,
                    Hop {
                        will: p.clone(),
                        ..Hop::default()
                    },
                ));
            }
            "Network.requestWillBeSentExtraInfo" => {
                if let Some(&i) = last.get(&id) {
                    hops[i].1.request_headers = Some(p["headers"].clone());
                }
            }
            "Network.responseReceived" => {
                if let Some(&i) = last.get(&id) {
                    hops[i].1.response = Some(p["response"].clone());
                }
            }
            "Network.responseReceivedExtraInfo" => {
                if let Some(&i) = last.get(&id) {
                    hops[i].1.response_headers = Some(p["headers"].clone());
                }
            }
            "Network.loadingFinished" => {
                if let Some(&i) = last.get(&id) {
                    hops[i].1.end = p["timestamp"].as_f64();
                    hops[i].1.finished = true;
                }
            }
            _ => {}
        }
    }
    let mut entries = Vec::new();
    for (i, (id, hop)) in hops.iter().enumerate() {
        let Some(response) = &hop.response else {
            continue;
        };
        let will = &hop.will;
        let request = &will["request"];
        let is_final = last.get(id) == Some(&i);
        let (text, base64) = if is_final && hop.finished {
            match page
                .call("Network.getResponseBody", json!({ "requestId": id }))
                .await
            {
                Ok(b) => (
                    b["body"].as_str().map(str::to_owned),
                    b["base64Encoded"] == true,
                ),
                Err(_) => (None, false),
            }
        } else {
            (None, false)
        };
        let request_headers = pairs(hop.request_headers.as_ref().unwrap_or(&request["headers"]));
        let post = match request.get("postData").and_then(Value::as_str) {
            Some(text) => Some(text.to_owned()),
            None if request["hasPostData"] == true => page
                .call("Network.getRequestPostData", json!({ "requestId": id }))
                .await
                .ok()
                .and_then(|d| d["postData"].as_str().map(str::to_owned)),
            None => None,
        };
        let mime = header(&request_headers, "content-type").unwrap_or_default();
        let started =
            jiff::Timestamp::from_millisecond((will["wallTime"].as_f64().unwrap() * 1000.0) as i64)
                .unwrap();
        let time = hop.end.map_or(-1.0, |end| {
            (end - will["timestamp"].as_f64().unwrap()) * 1000.0
        });
        let mut entry = json!({
            "startedDateTime": started.to_string(),
            "time": time,
            "request": {
                "method": request["method"], "url": request["url"], "httpVersion": "HTTP/1.1",
                "headers": request_headers, "queryString": [], "cookies": [], "headersSize": -1,
                "bodySize": post.as_ref().map_or(0, |p| p.len()),
            },
            "response": {
                "status": response["status"], "statusText": response["statusText"],
                "httpVersion": "HTTP/1.1",
                "headers": pairs(hop.response_headers.as_ref().unwrap_or(&response["headers"])),
                "cookies": [], "redirectURL": "", "headersSize": -1, "bodySize": -1,
                "content": { "size": text.as_ref().map_or(0, |t| t.len()), "mimeType": response["mimeType"] },
            },
            "cache": {},
            "timings": { "send": 0, "wait": time, "receive": 0 },
            "_resourceType": will["type"].as_str().unwrap_or("other").to_ascii_lowercase(),
        });
        if let Some(text) = text {
            entry["response"]["content"]["text"] = json!(text);
            if base64 {
                entry["response"]["content"]["encoding"] = json!("base64");
            }
        }
        if let Some(post) = post {
            entry["request"]["postData"] = json!({ "mimeType": mime, "text": post });
        }
        entries.push(entry);
    }
    json!({ "log": {
        "version": "1.2",
        "creator": { "name": "WebInspector", "version": "537.36" },
        "pages": [],
        "entries": entries,
    } })
}

/// DevTools' header object as HAR's list (a repeated header, such as
/// `Set-Cookie`, is one value joined by newlines, as Chromium gives it).
fn pairs(headers: &Value) -> Value {
    Value::Array(
        headers
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| json!({ "name": k, "value": v.as_str().unwrap_or("") }))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn header(headers: &Value, name: &str) -> Option<String> {
    headers.as_array()?.iter().find_map(|h| {
        h["name"]
            .as_str()
            .filter(|n| n.eq_ignore_ascii_case(name))
            .and(h["value"].as_str().map(str::to_owned))
    })
}
