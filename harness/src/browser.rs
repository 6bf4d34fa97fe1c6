//! A minimal WebDriver client for headless Chromium (through
//! `chromedriver`), and the HTTP/1.1 request it is made of: the browser
//! tests of the monitor page and the page benchmark drive the page with it.

use crate::Killed;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request on loopback; the response body, or None if the
/// server is not up.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&serde_json::Value>) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    // Read the head, then exactly Content-Length bytes (chromedriver keeps
    // the connection open), or to the end without one.
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(len) => {
            while data.len() < head_end + len {
                let n = s.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            s.read_to_end(&mut data).ok()?;
        }
    }
    Some(String::from_utf8_lossy(&data[head_end..]).into_owned())
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A minimal WebDriver client for chromedriver.
pub struct Browser {
    driver: String,
    session: String,
    _process: Killed,
}

impl Browser {
    pub fn start(chromedriver: &Path, chromium: &Path) -> Browser {
        // chromedriver on a free port of our own.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
        let driver = format!("127.0.0.1:{port}");
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver at {} cannot run: {e}", chromedriver.display()));
        let process = Killed(process);
        let deadline = Instant::now() + Duration::from_secs(15);
        while http(&driver, "GET", "/status", None).is_none() {
            assert!(Instant::now() < deadline, "chromedriver did not start within 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1250",
                         "--enable-precise-memory-info"]
            }
        }}});
        let reply = http(&driver, "POST", "/session", Some(&caps)).expect("chromedriver answers");
        let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON from chromedriver");
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium cannot run under chromedriver: {}", reply["value"]))
            .to_string();
        Browser { driver, session, _process: process }
    }

    pub fn command(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
        let path = format!("/session/{}{path}", self.session);
        let reply = http(&self.driver, method, &path, body.as_ref()).expect("chromedriver answers");
        let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON from chromedriver");
        reply["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.command("POST", "/url", Some(serde_json::json!({ "url": url })));
    }

    pub fn eval(&self, script: &str) -> serde_json::Value {
        self.command("POST", "/execute/sync", Some(serde_json::json!({ "script": script, "args": [] })))
    }

    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.command("GET", "/screenshot", None);
        decode_base64(b64.as_str().expect("a base64 screenshot"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(&self.driver, "DELETE", &format!("/session/{}", self.session), None);
    }
}

pub fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|c| u32::from(value(*c))).collect();
        let n = v.iter().enumerate().fold(0u32, |acc, (i, x)| acc | x << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Chromium and chromedriver, or a failure that says how to install them.
pub fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = find(&["/usr/bin/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        panic!("Chromium or chromedriver is not installed: apt-get install chromium chromium-driver (.ci/run does)");
    };
    (chromium, chromedriver)
}
