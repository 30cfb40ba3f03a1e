//! A real browser for the console tests: Debian's `chromium`, headless, driven over WebDriver
//! by its `chromedriver` (both installed by `scripts/install-chromium.sh`), through the
//! `fantoccini` client.
//!
//! [`Chromium::start`] takes a machine-wide lock first, so the browser tests run one at a time
//! whatever runs them in parallel (chromium is heavy; the machines are small), then starts
//! chromedriver on a free loopback port (in its own process group) and opens one session. The
//! driver and its browser are killed together when the handle drops; when the test process
//! dies, the parent-death signal kills the driver.
//!
//! Without chromium the tests fail when `CI` is set, and otherwise skip with the reason
//! printed: a developer without root can still run the rest of the suite.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::support::{free_port, Deadline};

/// Environment variable naming the chromedriver binary (default: `chromedriver` on `PATH`).
pub const CHROMEDRIVER_ENV: &str = "PBN_CHROMEDRIVER";
/// Environment variable naming the chromium binary (default: `chromium` on `PATH`).
pub const CHROMIUM_ENV: &str = "PBN_CHROMIUM";
/// Set to `1` to write the screenshots into `docs/` (the README shows them).
pub const SCREENSHOTS_ENV: &str = "PBN_SCREENSHOTS";

/// How long chromedriver may take to answer its status after start, and chromium to open a
/// session (a cold start on a busy two-core machine takes seconds).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a page may take to load after a click or a navigation.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// The browser window: wide enough for the console's tables.
const WINDOW: (u32, u32) = (1280, 900);

/// A browser session on a running chromedriver, and the console's base URL.
pub struct Chromium {
    /// The WebDriver session.
    pub client: Client,
    base: String,
    /// Dropped after the client: kills chromedriver.
    _driver: Driver,
    /// Held until drop: the machine-wide lock of the browser tests.
    _lock: File,
}

/// `env`'s value if set (it must name an executable), else `name` found on `PATH`.
fn find(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{env}={} is not a file", path.display());
        return Some(path);
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs).map(|d| d.join(name)).find(|p| pbn::natsd::is_executable(p))
}

/// The chromedriver and chromium binaries.
pub struct Binaries {
    driver: PathBuf,
    browser: PathBuf,
}

/// The binaries, or `None` after printing why the test is skipped.
///
/// # Panics
/// When one is missing and `CI` is set: CI must run the browser tests.
pub fn binaries() -> Option<Binaries> {
    let driver = find(CHROMEDRIVER_ENV, "chromedriver");
    let browser = find(CHROMIUM_ENV, "chromium");
    if let (Some(driver), Some(browser)) = (&driver, &browser) {
        return Some(Binaries { driver: driver.clone(), browser: browser.clone() });
    }
    let missing = if driver.is_none() { "chromedriver" } else { "chromium" };
    let why = format!(
        "{missing} not found (set {CHROMEDRIVER_ENV}/{CHROMIUM_ENV} or run scripts/install-chromium.sh)"
    );
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("the browser tests must run on CI: {why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// Takes the lock file shared by every browser test on this machine (blocks until free).
async fn machine_lock() -> File {
    let path = std::env::temp_dir().join("pbn-browser-tests.lock");
    tokio::task::spawn_blocking(move || {
        let file = File::create(&path)
            .unwrap_or_else(|e| panic!("cannot create the lock {}: {e}", path.display()));
        // SAFETY: flock on a file descriptor this function owns; released when it closes.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}: {}", path.display(), std::io::Error::last_os_error());
        file
    })
    .await
    .expect("the lock task ran")
}

impl Chromium {
    /// A headless chromium session (of `bins`, see [`binaries`]) for the console at `base`
    /// (`http://host:port`).
    pub async fn start(bins: &Binaries, base: &str) -> Chromium {
        let lock = machine_lock().await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let mut cmd = Command::new(&bins.driver);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, which chromium joins: one signal ends them all.
            .process_group(0);
        let driver =
            Driver { child: pbn::natsd::spawn_tied(cmd).expect("spawn chromedriver"), dir };
        let url = format!("http://127.0.0.1:{port}");
        let client = match connect(&url, &bins.browser).await {
            Ok(client) => client,
            Err(e) => panic!("{e}; chromedriver log:\n{}", driver.log()),
        };
        let base = base.trim_end_matches('/').to_string();
        Chromium { client, base, _driver: driver, _lock: lock }
    }

    /// Loads `path` of the console and waits for it.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client.goto(&url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
        self.wait_loaded().await;
    }

    /// The HTTP status of the page shown (the navigation's response).
    pub async fn status(&self) -> u16 {
        let js = "const n = performance.getEntriesByType('navigation')[0]; \
                  return n ? n.responseStatus : 0;";
        let v = self.client.execute(js, vec![]).await.expect("navigation timing");
        v.as_u64().and_then(|s| u16::try_from(s).ok()).expect("a status")
    }

    /// The text of the page's `h1`.
    pub async fn heading(&self) -> String {
        let h1 = self.client.find(Locator::Css("main h1")).await.expect("an h1");
        h1.text().await.expect("its text")
    }

    /// The visible text of the page's `main`.
    pub async fn text(&self) -> String {
        let main = self.client.find(Locator::Css("main")).await.expect("a main element");
        main.text().await.expect("its text")
    }

    /// Types `value` into the field named `name` of the page's form (after clearing it).
    pub async fn fill(&self, name: &str, value: &str) {
        let css = format!("main form [name=\"{name}\"]");
        let field = self.client.find(Locator::Css(&css)).await;
        let field = field.unwrap_or_else(|e| panic!("no field {name}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(value).await.unwrap_or_else(|e| panic!("type into {name}: {e}"));
    }

    /// Clicks the link with text `text` and waits for the page it leads to.
    pub async fn click_link(&self, text: &str) {
        let link = self.client.find(Locator::LinkText(text)).await;
        let link = link.unwrap_or_else(|e| panic!("no link {text:?}: {e}"));
        self.navigating(|| async { link.click().await.map(drop) }).await;
    }

    /// Submits the page's (main) form with its button, as a person would, and waits for the
    /// answer page.
    pub async fn submit(&self) {
        let button = self.client.find(Locator::Css("main form button[type=submit]")).await;
        let button = button.expect("a submit button");
        self.navigating(|| async { button.click().await.map(drop) }).await;
    }

    /// Runs `action`, which leaves the page, and waits until another document has loaded.
    async fn navigating<F, Fut>(&self, action: F)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        // A marker on the old document's window: gone once a new document has replaced it.
        self.client.execute("window.__pbn_old_page = true;", vec![]).await.expect("mark");
        action().await.expect("the click");
        let deadline = Deadline::after(PAGE_TIMEOUT, "the next page to load");
        loop {
            let js = "return window.__pbn_old_page === undefined \
                      && document.readyState === 'complete';";
            if let Ok(Value::Bool(true)) = self.client.execute(js, vec![]).await {
                return;
            }
            deadline.tick().await;
        }
    }

    async fn wait_loaded(&self) {
        let deadline = Deadline::after(PAGE_TIMEOUT, "the page to load");
        let js = "return document.readyState === 'complete';";
        while !matches!(self.client.execute(js, vec![]).await, Ok(Value::Bool(true))) {
            deadline.tick().await;
        }
    }

    /// `fetch(path)` from the page (same origin, its cookies sent), with `Authorization:
    /// Bearer token` when given; the answer's status.
    pub async fn fetch_status(&self, path: &str, token: Option<&str>) -> u16 {
        let js = "const [path, token, done] = arguments; \
                  const headers = token ? { Authorization: 'Bearer ' + token } : {}; \
                  fetch(path, { headers, credentials: 'same-origin' }) \
                    .then(r => done(r.status), e => done(String(e)));";
        let args = vec![json!(path), json!(token)];
        let v = self.client.execute_async(js, args).await.expect("fetch ran");
        v.as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or_else(|| panic!("fetch: {v}"))
    }

    /// The value of the browser's cookie `name` for the console (`HttpOnly` ones too).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let all = self.client.get_all_cookies().await.expect("cookies");
        all.iter().find(|c| c.name() == name).map(|c| c.value().to_string())
    }

    /// A screenshot of the window (PNG). With `PBN_SCREENSHOTS=1` it is also written to
    /// `docs/name` for the README.
    pub async fn screenshot(&self, name: &str) -> Vec<u8> {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        if std::env::var(SCREENSHOTS_ENV).is_ok_and(|v| v == "1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
            let path = docs.join(name);
            std::fs::create_dir_all(&docs)
                .and_then(|()| std::fs::write(&path, &png))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        png
    }
}

/// The chromedriver process and the temp dir of its log; killed on drop.
struct Driver {
    child: Child,
    dir: tempfile::TempDir,
}

impl Driver {
    /// The end of chromedriver's log (for failure messages).
    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("chromedriver.log"));
        let text = text.unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_string()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group of the driver and its browser processes (the driver leads it and is not
        // reaped yet, so the id is still ours).
        let group = i32::try_from(self.child.id()).map(|pid| -pid);
        if let Ok(group) = group {
            // SAFETY: kill(2) with the id of a process group this harness started.
            unsafe { libc::kill(group, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for chromedriver at `url` and opens a headless session of `browser`.
async fn connect(url: &str, browser: &Path) -> Result<Client, String> {
    let http = reqwest::Client::new();
    let deadline = Deadline::after(START_TIMEOUT, format!("chromedriver at {url}"));
    loop {
        let status = http.get(format!("{url}/status")).send().await;
        if let Ok(r) = status {
            let body: Value = r.json().await.unwrap_or_default();
            if body["value"]["ready"] == true {
                break;
            }
        }
        deadline.tick().await;
    }
    let mut caps = serde_json::Map::new();
    let args = [
        "--headless=new".to_string(),
        // The tests run as root in containers: chromium's sandbox needs user namespaces.
        "--no-sandbox".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--disable-gpu".to_string(),
        "--no-first-run".to_string(),
        format!("--window-size={},{}", WINDOW.0, WINDOW.1),
    ];
    let options = json!({ "binary": browser, "args": args });
    caps.insert("goog:chromeOptions".into(), options);
    let connect = ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(url).await;
    connect.map_err(|e| format!("chromedriver refused a session: {e}"))
}
