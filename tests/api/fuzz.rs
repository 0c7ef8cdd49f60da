//! Generated requests against the real REST shim: every route and method, random and
//! duplicate parameters, long, binary and option-like values, hostile headers. Never a
//! 5xx, never a dropped connection, no value echoed beyond the bound, and the server is
//! healthy afterwards.

use std::time::{Duration, Instant};

use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, token};

/// splitmix64: deterministic, so a failure is reproducible from the seed it prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const PATHS: [&str; 9] = [
    "/api/v1/backups/config/run",
    "/api/v1/backups/config/status",
    "/api/v1/backups/config/history",
    "/api/v1/backups/config/diff",
    "/api/v1/backups/config/rollback",
    "/api/v1/backups/config/rollback/status",
    "/api/v1/backups/config/openapi.json",
    "/healthz",
    "/api/v1/backups/config/",
];

const NAMES: [&str; 22] = [
    "domain",
    "domains",
    "path",
    "since",
    "until",
    "change_type",
    "changeType",
    "include_unchanged",
    "page_size",
    "pageSize",
    "page_token",
    "commit1",
    "commit2",
    "format",
    "commit",
    "dry_run",
    "remove_extra",
    "reason",
    "task_id",
    "taskId",
    "watch",
    "reveal_secrets",
];

/// A value, and whether it is a long plain one whose echo is checked.
fn value(r: &mut Rng, commits: &[String]) -> (String, Option<String>) {
    match r.below(12) {
        0 => (String::new(), None),
        1 => (
            r.pick(&["dns", "kea", "all", "radius", "DNS", "ospf"]).to_string(),
            None,
        ),
        2 => (r.pick(commits).clone(), None),
        3 => (r.pick(commits)[..7].to_owned(), None),
        4 => {
            let n = 65 + r.below(6000);
            let long: String = (0..n).map(|i| (b'a' + ((i * 7 + n) % 26) as u8) as char).collect();
            (long.clone(), Some(long))
        }
        5 => ("--output=/tmp/x".into(), None),
        6 => ("../../../etc/passwd".into(), None),
        7 => ("' OR 1=1; DROP TABLE config_git_backups; --".into(), None),
        8 => (
            (0..r.below(40)).map(|_| format!("%{:02X}", r.below(256))).collect(),
            None,
        ),
        9 => (
            r.pick(&["true", "false", "1", "yes", "-5", "99999999999", "2026-11-26T04:00:00Z"])
                .to_string(),
            None,
        ),
        10 => ("%zz%%&&==".into(), None),
        _ => ("\u{202e}évil\u{0}".into(), None),
    }
}

/// Whether `role` may call the route at `path` (the service's role table).
fn allowed(path: &str, role: Role) -> bool {
    match path {
        "/api/v1/backups/config/run" => true,
        "/api/v1/backups/config/rollback" => role == Role::Admin,
        _ => role != Role::Scheduler,
    }
}

fn encode(s: &str) -> String {
    // Values of kind 8 and 10 are already (mis)encoded on purpose; the rest is encoded.
    if s.starts_with('%') {
        return s.to_owned();
    }
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn generated_requests_never_get_a_5xx_nor_an_unbounded_echo(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let report = app.backup().await;
    let commits: Vec<String> = report.domains.iter().map(|d| d.commit_hash.clone()).collect();
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201u64);
    let mut r = Rng(seed);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let n = 3000;
    let mut statuses = std::collections::BTreeMap::new();
    let (mut reached, mut reached_ok) = (0u32, 0u32);
    for i in 0..n {
        let mut path = r.pick(&PATHS).to_string();
        // Mostly the route's own method, so most requests reach its handler.
        let own = if path.ends_with("/run") || path.ends_with("/rollback") {
            "POST"
        } else {
            "GET"
        };
        let method = if r.below(5) == 0 {
            *r.pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
        } else {
            own
        };
        let mut routed = PATHS[..6].contains(&path.as_str()) && method == own;
        if r.below(20) == 0 {
            path.push_str(&"x".repeat(r.below(5000)));
            routed = false;
        }
        let mut query = Vec::new();
        let mut long_values = Vec::new();
        for _ in 0..r.below(6) {
            let name = if r.below(8) == 0 {
                let n = 1 + r.below(3000);
                let long: String = "q".repeat(n);
                if n > 64 {
                    long_values.push(long.clone());
                }
                long
            } else {
                r.pick(&NAMES).to_string()
            };
            let (v, long) = value(&mut r, &commits);
            long_values.extend(long);
            query.push(format!("{}={}", encode(&name), encode(&v)));
        }
        // A rollback only as a dry run: the site stays as it is for the rest of the run.
        if path.ends_with("/rollback") && method == "POST" {
            query.push("dry_run=true".into());
        }
        let url = format!("{}?{}", app.url(&path), query.join("&"));
        let mut req = client.request(method.parse().unwrap(), &url);
        let role = match r.below(8) {
            0 => None,
            1 => {
                req = req.header("authorization", "Bearer not.a.jwt");
                None
            }
            2 => {
                req = req.header("authorization", format!("Bearer {}", "a".repeat(64 * 1024)));
                None
            }
            3 => Some(Role::Scheduler),
            4 | 5 => Some(Role::Noc),
            _ => Some(Role::Admin),
        };
        if let Some(role) = role {
            req = req.bearer_auth(token(role));
        }
        // A valid token whose role may call the route, on its own method: the request
        // must get past the router and authentication to the handler.
        let authorized = routed && role.is_some_and(|role| allowed(&path, role));
        if method == "POST" && r.below(3) == 0 {
            req = req.body(
                r.pick(&["{}", "{\"domains\": [\"dns\"]}", "not json", "{\"domains\": 5}"])
                    .to_string(),
            );
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}, request {i}: {method} {url:.200}: the connection failed: {e}"));
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        *statuses.entry(status).or_insert(0u32) += 1;
        if authorized {
            let routing = status == 405 || (status == 404 && body.contains("\"Not Found: "));
            assert!(
                !matches!(status, 401 | 403) && !routing,
                "seed {seed}, request {i}: {method} {url:.300} with a valid token did not reach its handler: \
                 {status} {body:.300}"
            );
            reached += 1;
            reached_ok += u32::from((200..300).contains(&status));
        }
        assert!(
            status < 500,
            "seed {seed}, request {i}: {method} {url:.300} answered {status}: {body:.500}"
        );
        for long in &long_values {
            assert!(
                !body.contains(&long[..65]),
                "seed {seed}, request {i}: {method} {url:.200} echoed more than 64 characters of a value: {body:.300}"
            );
        }
    }
    let took = started.elapsed();
    assert!(
        reached >= n / 5 && reached_ok >= 30,
        "too few generated requests reached a handler: {reached} of {n}, {reached_ok} answered 2xx"
    );
    // Still healthy: REST and gRPC health, and a real call.
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    app.wait_until_serving().await;
    let status = app.status().await;
    assert!(status.last_run.is_some());
    eprintln!(
        "{n} generated requests in {took:?} (seed {seed}): {statuses:?}; {reached} reached a handler, {reached_ok} with 2xx"
    );
    app.stop().await;
}

on_both_backends!(generated_requests_never_get_a_5xx_nor_an_unbounded_echo);
