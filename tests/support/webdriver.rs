//! A real browser for the console tests: Debian's chromium, driven through chromedriver's
//! W3C WebDriver endpoints (the test command installs both).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// A chromedriver process and one headless chromium session. Dropping it ends the session
/// (chromedriver then quits chromium) and kills chromedriver's process group, so no
/// browser outlives its test, even one that panicked.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless chromium at 1280×800.
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver runs (the test command installs chromium and chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        crate::wait_for("chromedriver to answer", Duration::from_secs(20), || async {
            http.get(format!("{base}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            base,
            http,
            _profile: profile,
        };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,800",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", b._profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}});
        let r = b
            .http
            .post(format!("{}/session", b.base))
            .json(&caps)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        b.base = format!("{}/session/{id}", b.base);
        b.session = id;
        b
    }

    async fn try_call(&self, method: &str, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(body),
        };
        let v: Value = req
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match v["value"].get("error") {
            Some(e) => Err(format!("{e}: {}", v["value"]["message"])),
            None => Ok(v["value"].clone()),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, &body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    /// An action on the element `css` finds, retried while the page re-renders (a stale
    /// or not-yet-present element), for up to 20 s.
    async fn on_element(&self, css: &str, method: &str, action: &str, body: Value) -> Value {
        crate::wait_for(&format!("{css}{action}"), Duration::from_secs(20), || async {
            match self.find(css).await {
                Some(id) => self.try_call(method, &format!("/element/{id}{action}"), &body).await,
                None => Err("not found".to_owned()),
            }
        })
        .await
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    async fn find(&self, css: &str) -> Option<String> {
        let url = format!("{}/element", self.base);
        let v: Value = self
            .http
            .post(url)
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"][ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits for an element, then clicks it.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "POST", "/click", json!({})).await;
    }

    /// Types into a field (cleared first).
    pub async fn fill(&self, css: &str, text: &str) {
        self.on_element(css, "POST", "/clear", json!({})).await;
        self.on_element(css, "POST", "/value", json!({"text": text})).await;
    }

    /// The visible text of an element ("" when absent or being re-rendered).
    pub async fn text(&self, css: &str) -> String {
        match self.find(css).await {
            Some(id) => self
                .try_call("GET", &format!("/element/{id}/text"), &Value::Null)
                .await
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            None => String::new(),
        }
    }

    /// Waits until the element's text contains `needle`; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        crate::wait_for(
            &format!("{css} to show {needle:?}"),
            Duration::from_secs(60),
            || async {
                let t = self.text(css).await;
                if t.contains(needle) {
                    Ok(t)
                } else {
                    Err(format!("{t:?}"))
                }
            },
        )
        .await
    }

    /// Whether the element exists and is displayed.
    pub async fn visible(&self, css: &str) -> bool {
        match self.find(css).await {
            Some(id) => self
                .try_call("GET", &format!("/element/{id}/displayed"), &Value::Null)
                .await
                .is_ok_and(|v| v == json!(true)),
            None => false,
        }
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Presses Tab (a real key event).
    pub async fn press_tab(&self) {
        let tab = "\u{E004}";
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": tab}, {"type": "keyUp", "value": tab}]}]});
        self.call("POST", "/actions", actions).await;
    }

    /// Resizes the window.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.call("POST", "/refresh", json!({})).await;
    }
}

impl Browser {
    /// `DELETE /session/{id}` over a plain blocking socket (Drop cannot await): chromedriver
    /// quits the browser and answers when it is gone.
    fn end_session(&self) -> std::io::Result<()> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session, self.port
        )?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.end_session();
        }
        // Whatever is left of chromedriver's group (a browser a failed quit left behind).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
