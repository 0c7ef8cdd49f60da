//! Changes told in the services' own terms: one backup with a realistic edit per domain,
//! and the Backup answer, History, Diff, the commit bodies and the mail name the counts
//! and objects, with no secret value anywhere.

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, log_messages, with_token};

use crate::mail::{env_with_mail, parse};

const NFT: &str = "scripts/gateway/rgz-main.nft";
const SINKHOLE: &str = "config/unbound/unbound.conf.d/sinkhole.conf";
const CLIENTS: &str = "config/radius/clients.conf";
const KEA: &str = "config/kea/kea-dhcp4.conf";
const NAT: &str = "scripts/gateway/rgz-nat.nft";

/// The edits: two rules in input and twelve set elements on the gateway, twelve
/// local-zones in the sinkhole, a RADIUS client added and another's secret rotated, three
/// Kea reservations; and the NAT rules broken (a syntax error).
fn edit_every_domain(site: &std::path::Path) {
    let edit = |path: &str, f: &dyn Fn(String) -> String| {
        let p = site.join(path);
        let text = std::fs::read_to_string(&p).unwrap();
        let new = f(text.clone());
        assert_ne!(new, text, "{path} was not edited");
        std::fs::write(p, new).unwrap();
    };
    let elements: Vec<String> = (1..=12).map(|i| format!("203.0.113.{i}")).collect();
    edit(NFT, &|t| {
        t.replace("198.51.100.17 }", &format!("198.51.100.17, {} }}", elements.join(", ")))
            .replace(
                "        iif \"lo\" accept\n",
                "        iif \"lo\" accept\n        tcp dport 853 accept\n        udp dport 123 accept\n",
            )
    });
    let zones: String = (1..=12)
        .map(|i| format!("    local-zone: \"blocked{i}.example.\" always_nxdomain\n"))
        .collect();
    edit(SINKHOLE, &|t| t + &zones);
    edit(CLIENTS, &|t| {
        t.replace("sample-bng01-secret-7f3a", "rotated-bng01-secret-0000")
            + "\nclient nas-02 {\n    ipaddr = 10.10.0.40\n    secret = brand-new-nas02-secret\n}\n"
    });
    let reservations: String = (1..=3)
        .map(|i| {
            format!(",\n          {{ \"hw-address\": \"02:00:00:00:01:0{i}\", \"ip-address\": \"10.10.0.4{i}\" }}")
        })
        .collect();
    edit(KEA, &|t| {
        t.replace(
            "\"hostname\": \"bng-02\" }",
            &format!("\"hostname\": \"bng-02\" }}{reservations}"),
        )
    });
    edit(NAT, &|t| t + "\ntable ip broken {\n    chain oops {\n");
}

const SECRETS: [&str; 3] = [
    "rotated-bng01-secret-0000",
    "brand-new-nas02-secret",
    "sample-bng01-secret-7f3a",
];

fn no_secret_in(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds the secret {s}: {text}");
    }
}

async fn one_backup_tells_every_domain_in_its_services_terms(backend: Backend) {
    let (env, smtp) = env_with_mail(backend, &[]).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    smtp.wait_for(1);
    edit_every_domain(&env.site());
    let report = app.backup().await;
    let file = |path: &str| -> pb::FileChange {
        report
            .domains
            .iter()
            .flat_map(|d| d.changes.iter())
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("{path} did not change: {report:?}"))
            .clone()
    };
    let expect = [
        (
            NFT,
            vec!["+2 rules in inet filter input", "+12 elements in blocklist_v4"],
        ),
        (SINKHOLE, vec!["+12 local-zones"]),
        (CLIENTS, vec!["client nas-02 added", "client bng-01: secret changed"]),
        (KEA, vec!["+3 reservations in 10.10.0.0/24"]),
    ];
    for (path, words) in &expect {
        let f = file(path);
        for w in words {
            assert!(f.summary.contains(w), "{path}: {w:?} not in {:?}", f.summary);
        }
        no_secret_in(path, &f.summary);
    }
    let nft = file(NFT);
    let rule = nft
        .service_changes
        .iter()
        .find(|c| c.kind == "rule" && c.scope == "inet filter input")
        .unwrap();
    assert_eq!((rule.added, rule.removed), (2, 0));
    // The broken file still backs up, told in lines.
    let nat = file(NAT);
    assert!(nat.summary.ends_with(" lines"), "{}", nat.summary);
    assert_eq!(nat.service_changes[0].kind, "lines");

    // The commit bodies, for git log readers.
    let messages = log_messages(&env.remote(), "main").join("\n----\n");
    for (path, words) in &expect {
        for w in words {
            assert!(
                messages.contains(w),
                "{path}: {w:?} not in the commit messages:\n{messages}"
            );
        }
    }
    no_secret_in("the commit messages", &messages);

    // History, served from the audit trail.
    let history = app
        .client()
        .history(with_token(
            pb::HistoryRequest {
                path: CLIENTS.into(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    let newest = &history.entries[0];
    assert!(newest.summary.contains("client nas-02 added"), "{newest:?}");
    assert!(
        newest
            .service_changes
            .iter()
            .any(|c| c.kind == "client" && c.added == 1 && c.changed == 1)
    );

    // Diff between the two backups of the gateway.
    let gw = |r: &pb::BackupReport| {
        r.domains
            .iter()
            .find(|d| d.domain == "gateway")
            .unwrap()
            .commit_hash
            .clone()
    };
    let diff = app
        .client()
        .diff(with_token(
            pb::DiffRequest {
                commit1: gw(&first),
                commit2: gw(&report),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    let d = diff.files.iter().find(|f| f.path == NFT).unwrap();
    assert!(d.summary.contains("+12 elements in blocklist_v4"), "{}", d.summary);
    no_secret_in("Diff", &format!("{diff:?}"));

    // The mail, in the specification's layout.
    let mails = smtp.wait_for(2);
    let m = parse(&mails[1]);
    assert!(
        m.text.contains("      Modified: ") && m.text.contains("+2 rules in inet filter input"),
        "{}",
        m.text
    );
    assert!(m.text.contains("client nas-02 added"), "{}", m.text);
    assert!(m.text.contains("+3 reservations in 10.10.0.0/24"), "{}", m.text);
    assert!(m.text.contains("Previous: "), "{}", m.text);
    no_secret_in("the mail", &m.text);
    no_secret_in("the mail", &m.html);
    app.stop().await;
}

on_both_backends!(one_backup_tells_every_domain_in_its_services_terms);
