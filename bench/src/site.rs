//! Synthetic sites, deterministic from a seed: realistic text for the four domains
//! (nftables rules, Unbound local-data, RADIUS client stanzas, Kea JSON), 1–120 KB per
//! file, and a mutator that edits 1 % of the files and deletes / creates a few.

use std::path::{Path, PathBuf};

/// splitmix64: small, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The bench's globs per domain.
pub const GLOBS: [(&str, &str); 4] = [
    ("gateway", "scripts/gateway/**/*.nft"),
    ("dns", "config/unbound/**/*.conf"),
    ("radius", "config/radius/**/*.conf"),
    ("kea", "config/kea/**/*.json"),
];

fn ip(r: &mut Rng) -> String {
    format!("10.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254))
}

fn line(domain: usize, r: &mut Rng, i: u64) -> String {
    match domain {
        0 => format!(
            "        ip saddr {} tcp dport {{ {}, {} }} counter accept comment \"rule-{i}\"\n",
            ip(r),
            r.below(65535),
            r.below(65535)
        ),
        1 => format!(
            "    local-data: \"host{i}-{}.rgz.local. 300 IN A {}\"\n",
            r.below(1 << 20),
            ip(r)
        ),
        2 => format!(
            "client nas-{i}-{} {{\n    ipaddr = {}\n    secret = s{:016x}\n    shortname = nas{i}\n}}\n",
            r.below(1 << 16),
            ip(r),
            r.next()
        ),
        _ => format!(
            "      {{ \"hw-address\": \"02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\", \"ip-address\": \"{}\", \"hostname\": \"cpe-{i}\" }},\n",
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256),
            r.below(256),
            ip(r)
        ),
    }
}

/// A file's size: 1–120 KB, most near 4–12 KB (mean ≈ 10 KB).
fn size(r: &mut Rng) -> usize {
    let roll = r.below(100);
    let kb = if roll < 70 {
        1 + r.below(12)
    } else if roll < 95 {
        8 + r.below(24)
    } else {
        32 + r.below(89)
    };
    (kb as usize) * 1024
}

fn content(domain: usize, r: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 200);
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&line(domain, r, i));
        i += 1;
    }
    s
}

/// The path of file `n` of a domain.
fn path(domain: usize, n: usize) -> String {
    let sub = n / 500;
    match domain {
        0 => format!("scripts/gateway/set{sub:03}/rules-{n:06}.nft"),
        1 => format!("config/unbound/unbound.conf.d/zone{sub:03}/local-{n:06}.conf"),
        2 => format!("config/radius/clients.d/part{sub:03}/clients-{n:06}.conf"),
        _ => format!("config/kea/subnets{sub:03}/subnet-{n:06}.json"),
    }
}

/// Writes a site of `files` files under `root`; returns the relative paths.
pub fn generate(root: &Path, files: usize, seed: u64) -> std::io::Result<Vec<String>> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(files);
    for n in 0..files {
        // gateway 20 %, dns 40 %, radius 25 %, kea 15 %
        let roll = r.below(100);
        let d = if roll < 20 {
            0
        } else if roll < 60 {
            1
        } else if roll < 85 {
            2
        } else {
            3
        };
        let rel = path(d, n);
        let abs = root.join(&rel);
        std::fs::create_dir_all(abs.parent().unwrap())?;
        let bytes = size(&mut r);
        std::fs::write(&abs, content(d, &mut r, bytes))?;
        out.push(rel);
    }
    Ok(out)
}

fn domain_of(rel: &str) -> usize {
    if rel.starts_with("scripts/gateway") {
        0
    } else if rel.starts_with("config/unbound") {
        1
    } else if rel.starts_with("config/radius") {
        2
    } else {
        3
    }
}

/// One day of change: 1 % of the files edited, 2 deleted, 2 created.
pub fn mutate(root: &Path, files: &mut Vec<String>, r: &mut Rng, next_id: &mut usize) -> std::io::Result<()> {
    let edits = (files.len() / 100).max(1);
    for _ in 0..edits {
        let rel = &files[r.below(files.len() as u64) as usize];
        let abs = root.join(rel);
        let mut text = std::fs::read_to_string(&abs)?;
        let cut = text.len() / 3;
        let at = text[..cut].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let i = r.below(1 << 30);
        text.insert_str(at, &line(domain_of(rel), r, i));
        std::fs::write(&abs, text)?;
    }
    for _ in 0..2 {
        if files.len() > 10 {
            let i = r.below(files.len() as u64) as usize;
            let rel = files.swap_remove(i);
            std::fs::remove_file(root.join(rel))?;
        }
    }
    for _ in 0..2 {
        let d = r.below(4) as usize;
        let rel = path(d, *next_id);
        *next_id += 1;
        let abs = root.join(&rel);
        std::fs::create_dir_all(abs.parent().unwrap())?;
        let bytes = size(r);
        std::fs::write(&abs, content(d, r, bytes))?;
        files.push(rel);
    }
    Ok(())
}

/// Total bytes of a tree.
pub fn bytes(root: &Path) -> u64 {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The domain directories (for the git CLI's per-domain work).
pub fn domain_dirs() -> [(&'static str, PathBuf); 4] {
    [
        ("gateway", PathBuf::from("scripts/gateway")),
        ("dns", PathBuf::from("config/unbound")),
        ("radius", PathBuf::from("config/radius")),
        ("kea", PathBuf::from("config/kea")),
    ]
}
