use proptest::prelude::*;

use super::*;

fn sum(domain: Domain, path: &str, old: &str, new: &str) -> Summary {
    summarize(domain, path, Some(old.as_bytes()), Some(new.as_bytes()))
}

fn change<'a>(s: &'a Summary, kind: &str, scope: &str) -> &'a Change {
    s.changes
        .iter()
        .find(|c| c.kind == kind && c.scope == scope)
        .unwrap_or_else(|| panic!("no {kind} in {scope:?}: {s:?}"))
}

const NFT: &str = r#"#!/usr/sbin/nft -f
flush ruleset
define WAN = "eth0"
table inet filter {
    set blocked_v4 {
        type ipv4_addr
        flags interval
        elements = { 192.0.2.0/24,
                     198.51.100.17 }
    }
    chain input {
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iif "lo" accept
    }
}
include "/etc/nftables.d/rgz-nat.nft"
"#;

#[test]
fn nft_rules_elements_policy_and_defines_are_counted_per_chain_and_set() {
    let elements: Vec<String> = (1..=12).map(|i| format!("203.0.113.{i}")).collect();
    let new = NFT
        .replace("198.51.100.17 }", &format!("198.51.100.17, {} }}", elements.join(", ")))
        .replace(
            "iif \"lo\" accept\n",
            "iif \"lo\" accept\n        tcp dport 22 accept\n        udp dport 53 accept\n",
        )
        .replace("policy drop;", "policy accept;")
        .replace("\"eth0\"", "\"eth9\"");
    let s = sum(Domain::Gateway, "scripts/gateway/rgz-main.nft", NFT, &new);
    assert_eq!(change(&s, "rule", "inet filter input").added, 2);
    assert_eq!(change(&s, "element", "blocked_v4").added, 12);
    assert_eq!(change(&s, "policy", "inet filter input").changed, 1);
    assert_eq!(change(&s, "define", "").changed, 1);
    assert!(s.summary.contains("+2 rules in inet filter input"), "{}", s.summary);
    assert!(s.summary.contains("+12 elements in blocked_v4"), "{}", s.summary);
    assert!(
        s.summary.contains("policy of inet filter input drop → accept"),
        "{}",
        s.summary
    );
    assert!(s.summary.contains("define WAN changed"), "{}", s.summary);
}

#[test]
fn unbound_local_zones_zones_and_options_are_told() {
    let old = "server:\n    num-threads: 2\n    local-zone: \"ads.example.\" always_nxdomain\n\
               forward-zone:\n    name: \".\"\n    forward-addr: 9.9.9.9\n";
    let zones: String = (1..=12)
        .map(|i| format!("    local-zone: \"bad{i}.example.\" always_nxdomain\n"))
        .collect();
    let new = format!(
        "server:\n    num-threads: 4\n    local-zone: \"ads.example.\" always_nxdomain\n{zones}\
         forward-zone:\n    name: \".\"\n    forward-addr: 1.1.1.1\nstub-zone:\n    name: \"corp.\"\n    stub-addr: 10.0.0.1\n"
    );
    let s = sum(Domain::Dns, "config/unbound/unbound.conf.d/sinkhole.conf", old, &new);
    assert_eq!(change(&s, "local-zone", "").added, 12);
    assert!(s.summary.contains("+12 local-zones"), "{}", s.summary);
    assert!(s.summary.contains("num-threads 2 → 4"), "{}", s.summary);
    assert!(
        s.summary.contains("forward-zone .: forward-addr changed"),
        "{}",
        s.summary
    );
    assert!(s.summary.contains("stub-zone corp. added"), "{}", s.summary);
}

#[test]
fn radius_clients_by_name_and_a_sealed_secret_is_only_said_to_change() {
    let old = "client switch-core {\n    ipaddr = 10.0.0.2\n    secret = ENC[v1,k1,client.switch-core.secret,AAAA]\n}\n\
               client nas-01 {\n    ipaddr = 10.0.0.3\n    secret = ENC[v1,k1,client.nas-01.secret,BBBB]\n}\n";
    let new = old.replace("AAAA", "CCCC")
        + "client nas-02 {\n    ipaddr = 10.0.0.4\n    secret = ENC[v1,k1,client.nas-02.secret,DDDD]\n}\n";
    let s = sum(Domain::Radius, "config/radius/clients.conf", old, &new);
    assert!(s.summary.contains("client nas-02 added"), "{}", s.summary);
    assert!(
        s.summary.contains("client switch-core: secret changed"),
        "{}",
        s.summary
    );
    assert!(
        !s.summary.contains("CCCC") && !s.summary.contains("AAAA"),
        "{}",
        s.summary
    );
    let c = change(&s, "client", "");
    assert_eq!((c.added, c.removed, c.changed), (1, 0, 1));
}

#[test]
fn a_module_link_is_enabled_or_disabled() {
    let s = summarize(
        Domain::Radius,
        "config/radius/mods-enabled/eap",
        None,
        Some(b"../mods-available/eap"),
    );
    assert_eq!(s.summary, "module eap enabled");
    let s = summarize(
        Domain::Radius,
        "config/radius/sites-enabled/inner-tunnel",
        Some(b"x"),
        None,
    );
    assert_eq!(s.summary, "virtual server inner-tunnel disabled");
}

const KEA: &str = r#"{
  // Kea with comments
  "Dhcp4": {
    "valid-lifetime": 7200,
    "option-data": [ { "name": "domain-name-servers", "data": "10.10.0.53" } ],
    "subnet4": [
      {
        "subnet": "10.40.0.0/22",
        "pools": [ { "pool": "10.40.1.0 - 10.40.3.254" } ],
        /* reservations */
        "reservations": [
          { "hw-address": "aa:bb:cc:00:00:01", "ip-address": "10.40.0.10" }
        ]
      }
    ]
  }
}"#;

#[test]
fn kea_subnets_reservations_pools_and_options_are_told_by_prefix() {
    let extra: String = (2..=4)
        .map(|i| {
            format!(",\n          {{ \"hw-address\": \"aa:bb:cc:00:00:0{i}\", \"ip-address\": \"10.40.0.1{i}\" }}")
        })
        .collect();
    let new = KEA
        .replace(
            "\"ip-address\": \"10.40.0.10\" }",
            &format!("\"ip-address\": \"10.40.0.10\" }}{extra}"),
        )
        .replace("7200", "3600")
        .replace(
            "    \"subnet4\": [\n",
            "    \"subnet4\": [\n      { \"subnet\": \"10.50.0.0/24\" },\n",
        );
    let s = sum(Domain::Kea, "config/kea/kea-dhcp4.conf", KEA, &new);
    assert_eq!(change(&s, "reservation", "10.40.0.0/22").added, 3);
    assert!(s.summary.contains("+3 reservations in 10.40.0.0/22"), "{}", s.summary);
    assert!(s.summary.contains("subnet 10.50.0.0/24 added"), "{}", s.summary);
    assert!(s.summary.contains("valid-lifetime 7200 → 3600"), "{}", s.summary);
}

#[test]
fn a_file_with_a_syntax_error_is_told_in_line_counts() {
    let s = sum(Domain::Kea, "config/kea/kea-dhcp4.conf", KEA, "{ \"Dhcp4\": { broken\n");
    assert_eq!(s.changes[0].kind, "lines");
    assert!(
        s.summary.starts_with('+') && s.summary.ends_with(" lines"),
        "{}",
        s.summary
    );
    let s = sum(
        Domain::Gateway,
        "scripts/gateway/watch_config.sh",
        "a\nb\n",
        "a\nc\nd\n",
    );
    assert_eq!(s.summary, "+2 -1 lines");
}

/// The configurations Debian's packages ship parse without falling back to line counts
/// (the test command installs unbound, kea-dhcp4-server, freeradius and nftables).
#[test]
fn the_configs_debian_ships_are_read_by_their_parsers() {
    let files: [(Domain, &str, Parse); 5] = [
        (Domain::Dns, "/etc/unbound/unbound.conf", unbound::items),
        (Domain::Kea, "/etc/kea/kea-dhcp4.conf", kea::items),
        (Domain::Radius, "/etc/freeradius/3.0/clients.conf", radius::items),
        (Domain::Radius, "/etc/freeradius/3.0/mods-available/eap", radius::items),
        (Domain::Gateway, "/usr/share/doc/nftables/examples/main.nft", nft::items),
    ];
    let mut read = 0;
    for (domain, path, parse) in files {
        let Ok(text) = std::fs::read_to_string(path) else {
            // The nftables examples path differs between releases: find any shipped one.
            assert_eq!(
                domain,
                Domain::Gateway,
                "{path} is missing: the test command installs the services' packages"
            );
            continue;
        };
        let items = parse(&text).unwrap_or_else(|| panic!("{path} does not parse"));
        assert!(!items.is_empty(), "{path}: nothing read");
        read += 1;
    }
    let examples = std::fs::read_dir("/usr/share/doc/nftables/examples").expect("nftables ships examples");
    let mut nft_read = 0;
    for e in examples.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "nft")
            && let Ok(text) = std::fs::read_to_string(&p)
        {
            assert!(nft::items(&text).is_some(), "{} does not parse", p.display());
            nft_read += 1;
        }
    }
    assert!(
        read >= 4 && nft_read > 0,
        "read {read} service configs and {nft_read} nftables examples"
    );
}

proptest! {
    #[test]
    fn parsers_never_panic_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..2048), old in ".{0,400}") {
        for (domain, path) in [
            (Domain::Gateway, "a.nft"),
            (Domain::Dns, "u.conf"),
            (Domain::Radius, "clients.conf"),
            (Domain::Kea, "kea.conf"),
            (Domain::Radius, "mods-enabled/x"),
        ] {
            let _ = summarize(domain, path, Some(old.as_bytes()), Some(&bytes));
            let _ = summarize(domain, path, None, Some(&bytes));
        }
    }

    #[test]
    fn structured_text_never_panics(s in "[{}\\[\\]\":,=a-z0-9 \n#/*-]{0,600}") {
        let _ = nft::items(&s);
        let _ = unbound::items(&s);
        let _ = radius::items(&s);
        let _ = kea::items(&s);
    }
}

/// What `uncommented` did before it searched for bytes: the reference.
fn walked(l: &str) -> &str {
    let mut quoted = false;
    for (i, c) in l.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return l[..i].trim(),
            _ => {}
        }
    }
    l.trim()
}

#[test]
fn comments_are_cut_where_a_character_walk_cuts_them() {
    let text = "  server:\n\
        \tverbosity: 1 # how much\n\
        local-data: \"a.example. TXT 'x#y'\" # the tag\n\
        local-data: \"b.example. TXT \\\"#\\\"\"\n\
        # a whole comment line\n\
        name: \"é#ü\" ## two\n\
        unbalanced: \"open # not a comment\n\
        plain: déjà vu\n\
        #\n\
        \"\"#\n";
    let expected: Vec<&str> = text.lines().map(walked).collect();
    assert_eq!(super::uncommented(text).collect::<Vec<_>>(), expected);
    assert_eq!(expected[2], "local-data: \"a.example. TXT 'x#y'\"");
    assert_eq!(expected[6], "unbalanced: \"open # not a comment");
}

proptest! {
    #[test]
    fn comments_are_cut_where_a_character_walk_cuts_them_in_any_text(text in "[a-z#\" \t\né:]{0,200}") {
        let expected: Vec<&str> = text.lines().map(walked).collect();
        prop_assert_eq!(super::uncommented(&text).collect::<Vec<_>>(), expected);
    }
}

/// What `compare` did before it walked sorted items, the reference: each side's values
/// by key in a map; the keys whose values differ, with their values.
#[allow(clippy::type_complexity)]
fn differing_by_map<'i>(
    old: &'i [Item<'_>],
    new: &'i [Item<'_>],
) -> BTreeMap<(&'static str, &'i str, &'i str), (Vec<&'i str>, Vec<&'i str>)> {
    use std::collections::HashMap;
    let index = |items: &'i [Item<'_>]| {
        let mut m: HashMap<(&'static str, &'i str, &'i str), Vec<&'i str>> = HashMap::new();
        for i in items {
            m.entry((i.kind, &*i.scope, &*i.key)).or_default().push(&*i.value);
        }
        m
    };
    let (a, b) = (index(old), index(new));
    a.keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            (
                *k,
                (
                    a.get(k).cloned().unwrap_or_default(),
                    b.get(k).cloned().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

fn arb_items() -> impl Strategy<Value = Vec<(usize, usize, usize, usize)>> {
    proptest::collection::vec((0..4usize, 0..2usize, 0..6usize, 0..4usize), 0..40)
}

fn make_items(spec: &[(usize, usize, usize, usize)]) -> Vec<Item<'static>> {
    const KINDS: [&str; 4] = ["local-zone", "option", "client", "rule"];
    const SCOPES: [&str; 2] = ["", "server"];
    const KEYS: [&str; 6] = ["a", "b", "c", "nas-01", "secret", "num-threads"];
    const VALUES: [&str; 4] = ["", "1", "x = 1\ny = 2", "x = 1\ny = 3"];
    spec.iter()
        .map(|&(k, s, key, v)| {
            // Some keys a copy: equal keys compared by their bytes as well as by address.
            let key: std::borrow::Cow<'static, str> = if v % 2 == 0 {
                KEYS[key].to_owned().into()
            } else {
                KEYS[key].into()
            };
            Item::new(KINDS[k], SCOPES[s], key, VALUES[v])
        })
        .collect()
}

proptest! {
    #[test]
    fn the_sorted_walk_finds_the_keys_a_map_found_in_key_order(old in arb_items(), new in arb_items()) {
        let (old, new) = (make_items(&old), make_items(&new));
        let mut walked = Vec::new();
        let (old_all, new_all): (Vec<&Item<'_>>, Vec<&Item<'_>>) = (old.iter().collect(), new.iter().collect());
        each_differing(&sorted(&old_all), &sorted(&new_all), |k, o, n| walked.push((k, (o.to_vec(), n.to_vec()))));
        let expected: Vec<_> = differing_by_map(&old, &new).into_iter().collect();
        prop_assert_eq!(walked, expected);
    }
}

proptest! {
    /// Versions that share a prefix and a suffix of items (a change in the middle of a
    /// file), and versions that share nothing, are told the same from the items
    /// `unshared` keeps as from all of them.
    #[test]
    fn what_is_told_from_the_unshared_items_is_what_all_items_tell(
        prefix in arb_items(),
        old_between in arb_items(),
        new_between in arb_items(),
        suffix in arb_items(),
        shared in any::<bool>(),
    ) {
        let (none, prefix, suffix) = (Vec::new(), make_items(&prefix), make_items(&suffix));
        let (prefix, suffix) = if shared { (&prefix, &suffix) } else { (&none, &none) };
        let join = |between: &[(usize, usize, usize, usize)]| -> Vec<Item<'static>> {
            prefix.iter().cloned().chain(make_items(between)).chain(suffix.iter().cloned()).collect()
        };
        let (old, new) = (join(&old_between), join(&new_between));
        let (old_all, new_all): (Vec<&Item<'_>>, Vec<&Item<'_>>) = (old.iter().collect(), new.iter().collect());
        let (old_kept, new_kept) = unshared(&old, &new);
        prop_assert!(old_kept.len() <= old.len() - prefix.len() && new_kept.len() <= new.len() - prefix.len());
        prop_assert_eq!(compare(&old, &new), tell(&old_all, &new_all));
    }
}
