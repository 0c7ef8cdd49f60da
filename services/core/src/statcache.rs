//! The stat cache: what a file's metadata was when its content was last hashed, so a
//! run can skip reading files that have not been touched since (git's index does the
//! same for `git add`).
//!
//! A file is trusted unread only when its size, mtime, ctime, inode, device and execute
//! bit all match the entry, and the entry's SHA-256 and blob are what the branch holds.
//! Writing a file always moves its ctime (no user-space call can set it back), so even a
//! change that keeps the size and restores the mtime is seen. Entries are only kept for
//! files whose mtime and ctime were at least [`RACY_SECS`] old when they were hashed: a
//! write in the same clock tick as the hash would otherwise be invisible. A full re-hash
//! still runs at the configured interval, and whenever the cache is missing or damaged.
//!
//! One file per domain in the git directory of the working copy, written atomically and
//! checked by its own SHA-256 when read: a torn or edited cache is ignored, never trusted.
//!
//! A process keeps the caches it wrote in memory ([`KeptCaches`]): the next run takes its
//! domain's cache from there instead of reading and parsing the file, but only while the
//! file on disk is the very one it was kept with (same device, inode, size, mtime and
//! ctime, as for the files the cache vouches for). Any other file, or none, is read as
//! before: the file stays the truth.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use git2::Oid;
use sha2::{Digest as _, Sha256};

use crate::domain::{Domain, RepoPath};

/// A file hashed less than this many seconds after its last change is not cached.
pub const RACY_SECS: i64 = 2;

const MAGIC: &str = "config-backup-stat-cache v3";

/// A SHA-256 or HMAC-SHA256, as bytes: a large site's cache holds two per file, and as
/// hex strings they were most of its memory.
pub type Digest256 = [u8; 32];

/// Whether `hex` (lower-case, as manifests hold it) is `digest`.
pub fn hex_is(hex: &str, digest: &Digest256) -> bool {
    let mut text = [0u8; 64];
    hex::encode_to_slice(digest, &mut text).is_ok() && hex.as_bytes() == text
}

/// The metadata compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    exec: bool,
}

impl FileStat {
    /// From a file's metadata.
    pub fn of(m: &std::fs::Metadata) -> FileStat {
        FileStat {
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
            exec: m.mode() & 0o111 != 0,
        }
    }

    /// Whether the last change is older than [`RACY_SECS`] before `now_ns`.
    fn settled(&self, now_ns: i128) -> bool {
        let limit = now_ns - i128::from(RACY_SECS) * 1_000_000_000;
        self.mtime_ns < limit && self.ctime_ns < limit
    }
}

/// One file's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its metadata when hashed.
    pub stat: FileStat,
    /// Its stored content's SHA-256.
    pub sha256: Digest256,
    /// Its git blob.
    pub blob: Oid,
    /// The keyed digest of its clear content ([`crate::secrets::Sealer::clear_digest`]);
    /// none for a link.
    pub clear: Option<Digest256>,
    /// Whether its content holds secrets.
    pub secret: bool,
}

/// A domain's stat cache as the last run left it: looked up by path, and taken apart by
/// the run that follows (each entry it vouches for moves into the [`NextCache`]).
///
/// Invariant: `entries` is sorted by path with no path twice (the file is written so,
/// and one that is not is damaged), so a lookup is a binary search. Sorted vectors
/// rather than hash maps: a site of 40,000 files holds this and the next cache at once,
/// and a map's spare buckets were a third of their size.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StatCache {
    /// When every file of the domain was last read and hashed (Unix seconds).
    pub full_rehash_at: i64,
    /// What sealing depended on when the entries were made ([`crate::secrets::Sealer::fingerprint`]):
    /// entries made under another key or other rules are not trusted.
    pub sealing: String,
    /// By path; `None` once taken.
    entries: Vec<(RepoPath, Option<Entry>)>,
    /// Entries not taken yet.
    left: usize,
    /// The slot last looked up: a run asks for its files in path order, each up to three
    /// times, so the next lookup is most often that slot or the one after it.
    cursor: std::cell::Cell<usize>,
}

/// Where a domain's cache lives.
pub fn path(git_dir: &Path, domain: Domain) -> PathBuf {
    git_dir.join("config-backup").join(format!("stat-{domain}"))
}

impl StatCache {
    /// Reads the cache; empty (a full re-hash) when missing, damaged or of another version.
    pub fn load(file: &Path) -> StatCache {
        match std::fs::read_to_string(file) {
            Ok(text) if !text.starts_with(MAGIC) => StatCache::default(),
            Ok(text) => Self::parse(&text).unwrap_or_else(|| {
                tracing::warn!(file = %file.display(), "the stat cache is damaged; every file is read again");
                StatCache::default()
            }),
            Err(_) => StatCache::default(),
        }
    }

    fn parse(text: &str) -> Option<StatCache> {
        let (header, body) = text.split_once('\n')?;
        let mut h = header.strip_prefix(MAGIC)?.split_whitespace();
        let full_rehash_at: i64 = h.next()?.parse().ok()?;
        let count: usize = h.next()?.parse().ok()?;
        let sum = h.next()?;
        let sealing = h.next()?.to_owned();
        if hex::encode(Sha256::digest(body.as_bytes())) != sum {
            return None;
        }
        let digest = |s: &str| -> Option<Digest256> {
            let mut d = [0u8; 32];
            hex::decode_to_slice(s, &mut d).ok()?;
            Some(d)
        };
        let mut entries: Vec<(RepoPath, Option<Entry>)> = Vec::with_capacity(count);
        for line in body.lines() {
            let mut f = line.splitn(11, ' ');
            let mut num = || f.next()?.parse::<i128>().ok();
            let (size, mtime_ns, ctime_ns, ino, dev, exec) = (num()?, num()?, num()?, num()?, num()?, num()?);
            let sha256 = digest(f.next()?)?;
            let blob = Oid::from_str(f.next()?).ok()?;
            let clear = match f.next()? {
                "-" => None,
                hex => Some(digest(hex)?),
            };
            let secret = f.next()? == "1";
            let path: RepoPath = f.next()?.parse().ok()?;
            if entries.last().is_some_and(|(last, _)| *last >= path) {
                return None;
            }
            let stat = FileStat {
                size: u64::try_from(size).ok()?,
                mtime_ns,
                ctime_ns,
                ino: u64::try_from(ino).ok()?,
                dev: u64::try_from(dev).ok()?,
                exec: exec != 0,
            };
            entries.push((
                path,
                Some(Entry {
                    stat,
                    sha256,
                    blob,
                    clear,
                    secret,
                }),
            ));
        }
        (entries.len() == count).then_some(StatCache {
            full_rehash_at,
            sealing,
            left: entries.len(),
            entries,
            cursor: Default::default(),
        })
    }

    fn slot(&self, path: &RepoPath) -> Option<usize> {
        let at = self.cursor.get();
        let near = [at, at + 1]
            .into_iter()
            .find(|&i| self.entries.get(i).is_some_and(|(p, _)| p == path));
        let slot = near.or_else(|| self.entries.binary_search_by(|(p, _)| p.cmp(path)).ok())?;
        self.cursor.set(slot);
        Some(slot)
    }

    /// The entry for `path` if its metadata is still `stat`.
    pub fn fresh(&self, path: &RepoPath, stat: &FileStat) -> Option<&Entry> {
        self.known(path).filter(|e| e.stat == *stat)
    }

    /// Takes out `path`'s entry (one [`StatCache::fresh`] vouched for): the next cache
    /// carries it over, moved rather than copied.
    pub fn take(&mut self, path: &RepoPath) -> Option<Entry> {
        let i = self.slot(path)?;
        let entry = self.entries[i].1.take();
        self.left -= usize::from(entry.is_some());
        entry
    }

    /// Whether no entry is left (every one was taken over).
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// `path`'s entry whatever its metadata now, for a file read again (a full re-hash):
    /// the same stored bytes make the same blob, and the same clear content under the same
    /// sealing makes the same stored bytes, so it is neither sealed nor hashed twice.
    pub fn known(&self, path: &RepoPath) -> Option<&Entry> {
        self.entries[self.slot(path)?].1.as_ref()
    }
}

/// The stat caches this process wrote (or found already on disk), one per domain, each
/// with the metadata of the file it was written to. See the module's documentation.
#[derive(Debug, Default)]
pub struct KeptCaches(std::sync::Mutex<std::collections::HashMap<Domain, (FileStat, StatCache)>>);

impl KeptCaches {
    /// `domain`'s cache: the one kept, while `file` is still the file it was kept with;
    /// otherwise read from `file` ([`StatCache::load`]). Either way nothing stays kept for
    /// the domain until the run keeps its next cache.
    pub fn take_or_load(&self, domain: Domain, file: &Path) -> StatCache {
        let kept = self.0.lock().ok().and_then(|mut m| m.remove(&domain));
        match kept {
            Some((kept_as, cache)) if std::fs::symlink_metadata(file).is_ok_and(|m| FileStat::of(&m) == kept_as) => {
                cache
            }
            _ => StatCache::load(file),
        }
    }

    /// Keeps `cache` as what `file` holds now: call it right after saving `cache` to
    /// `file`, or when `file` already holds it. Nothing is kept when `file` cannot be read.
    pub fn keep(&self, domain: Domain, file: &Path, cache: NextCache) {
        let Ok(meta) = std::fs::symlink_metadata(file) else {
            return;
        };
        let cache = cache.into_stat_cache();
        if let Ok(mut map) = self.0.lock() {
            map.insert(domain, (FileStat::of(&meta), cache));
        }
    }

    /// How many files the caches kept for `domains` hold; `None` when one of them is not
    /// kept (a first run, or one after a failure).
    pub fn kept_files(&self, domains: impl IntoIterator<Item = Domain>) -> Option<usize> {
        let map = self.0.lock().ok()?;
        domains
            .into_iter()
            .map(|d| map.get(&d).map(|(_, cache)| cache.entries.len()))
            .sum()
    }

    /// Forgets every cache kept: the next run reads each from its file.
    pub fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }
}

/// The cache a run makes: entries recorded in any order, written sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NextCache {
    /// When every file of the domain was last read and hashed (Unix seconds).
    pub full_rehash_at: i64,
    /// See [`StatCache::sealing`].
    pub sealing: String,
    entries: Vec<(RepoPath, Entry)>,
}

impl NextCache {
    /// An empty cache whose last full re-hash was at `full_rehash_at`, with room for
    /// `files` entries.
    pub fn new(full_rehash_at: i64, sealing: &str, files: usize) -> NextCache {
        NextCache {
            full_rehash_at,
            sealing: sealing.to_owned(),
            entries: Vec::with_capacity(files),
        }
    }

    /// Records a file hashed at `now_ns` (nanoseconds since the epoch; skipped while its
    /// last change is too recent). A path is recorded once per run.
    pub fn record(&mut self, path: RepoPath, entry: Entry, now_ns: i128) {
        if entry.stat.settled(now_ns) {
            self.entries.push((path, entry));
        }
    }

    /// Whether it holds what `previous` held, untouched: nothing recorded but entries
    /// taken over from it, all of them, under the same full re-hash time and sealing.
    pub fn same_as(&self, previous: &StatCache) -> bool {
        previous.is_empty()
            && self.entries.len() == previous.entries.len()
            && self.full_rehash_at == previous.full_rehash_at
            && self.sealing == previous.sealing
    }

    /// Sorted by path, each path once (a run records a path once).
    fn sort(&mut self) {
        self.entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.entries.dedup_by(|a, b| a.0 == b.0);
    }

    /// As the next run would read it back from its file.
    pub fn into_stat_cache(mut self) -> StatCache {
        self.sort();
        let entries: Vec<(RepoPath, Option<Entry>)> = self.entries.into_iter().map(|(p, e)| (p, Some(e))).collect();
        StatCache {
            full_rehash_at: self.full_rehash_at,
            sealing: self.sealing,
            left: entries.len(),
            entries,
            cursor: Default::default(),
        }
    }

    /// Writes the cache atomically, sorted by path.
    pub fn save(&mut self, file: &Path) -> std::io::Result<()> {
        self.sort();
        let mut body = String::with_capacity(self.entries.len() * 180);
        for (p, e) in &self.entries {
            use std::fmt::Write;
            let s = &e.stat;
            let _ = writeln!(
                body,
                "{} {} {} {} {} {} {} {} {} {} {}",
                s.size,
                s.mtime_ns,
                s.ctime_ns,
                s.ino,
                s.dev,
                u8::from(s.exec),
                hex::encode(e.sha256),
                e.blob,
                e.clear.map_or_else(|| "-".to_owned(), hex::encode),
                u8::from(e.secret),
                p
            );
        }
        let sum = hex::encode(Sha256::digest(body.as_bytes()));
        let text = format!(
            "{MAGIC} {} {} {sum} {}\n{body}",
            self.full_rehash_at,
            self.entries.len(),
            self.sealing
        );
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fs::write_atomically(file, text.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ns() -> i128 {
        i128::from(chrono::Utc::now().timestamp_nanos_opt().unwrap())
    }

    fn stat_of(path: &Path) -> FileStat {
        FileStat::of(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn a_kept_cache_is_taken_only_while_its_file_is_the_one_it_was_kept_with() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        std::fs::write(&f, "x").unwrap();
        let later = now_ns() + 10_000_000_000;
        let entry = Entry {
            stat: stat_of(&f),
            sha256: [0xab; 32],
            blob: Oid::hash_object(git2::ObjectType::Blob, b"x").unwrap(),
            clear: None,
            secret: false,
        };
        let cache = |at: i64, paths: &[&str]| {
            let mut c = NextCache::new(at, "k-r", paths.len());
            for p in paths {
                c.record(p.parse().unwrap(), entry.clone(), later);
            }
            c
        };
        let file = dir.path().join("cache/stat-dns");
        cache(1, &["on-disk.conf"]).save(&file).unwrap();
        let kept = KeptCaches::default();
        // Kept as what the file holds (here another cache than the file's, to tell them
        // apart): taken from memory, once.
        kept.keep(Domain::Dns, &file, cache(2, &["b.conf", "a.conf"]));
        let taken = kept.take_or_load(Domain::Dns, &file);
        assert_eq!(taken.full_rehash_at, 2);
        let p = |s: &str| s.parse::<RepoPath>().unwrap();
        // Sorted as a loaded cache is, and found in any order.
        assert!(taken.known(&p("b.conf")).is_some() && taken.known(&p("a.conf")).is_some());
        assert!(taken.known(&p("on-disk.conf")).is_none());
        assert_eq!(kept.take_or_load(Domain::Dns, &file).full_rehash_at, 1);
        // Another file written in its place (a new inode): the file is read.
        kept.keep(Domain::Dns, &file, cache(2, &["a.conf"]));
        cache(3, &["on-disk.conf"]).save(&file).unwrap();
        let read = kept.take_or_load(Domain::Dns, &file);
        assert_eq!(read.full_rehash_at, 3);
        assert!(read.known(&p("on-disk.conf")).is_some());
        // The file edited in place (same inode, another size): the file is read; none: empty.
        kept.keep(Domain::Dns, &file, cache(2, &["a.conf"]));
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{text}\n")).unwrap();
        assert_eq!(
            kept.take_or_load(Domain::Dns, &file).full_rehash_at,
            0,
            "a damaged file reads as empty"
        );
        kept.keep(Domain::Dns, &file, cache(2, &["a.conf"]));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(kept.take_or_load(Domain::Dns, &file), StatCache::default());
    }

    #[test]
    fn lookups_in_any_order_find_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        std::fs::write(&f, "x").unwrap();
        let mut c = NextCache::new(1, "k-r", 50);
        let paths: Vec<RepoPath> = (0..50).map(|i| format!("d/f{i:02}.conf").parse().unwrap()).collect();
        for (i, p) in paths.iter().enumerate().rev() {
            let mut e = Entry {
                stat: stat_of(&f),
                sha256: [0; 32],
                blob: Oid::ZERO_SHA1,
                clear: None,
                secret: false,
            };
            e.sha256[0] = i as u8;
            c.record(p.clone(), e, now_ns() + 10_000_000_000);
        }
        let cache = c.into_stat_cache();
        let order = (0..50).chain((0..50).rev()).chain((0..50).map(|i| (i * 7) % 50));
        for i in order {
            assert_eq!(
                cache.known(&paths[i]).map(|e| e.sha256[0]),
                Some(i as u8),
                "{}",
                paths[i]
            );
        }
        assert!(cache.known(&"d/f99.conf".parse().unwrap()).is_none());
    }

    #[test]
    fn a_saved_cache_reads_back_and_a_damaged_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        std::fs::write(&f, "x").unwrap();
        let later = now_ns() + 10_000_000_000;
        let mut c = NextCache::new(1234, "k-r", 1);
        let p: RepoPath = "dir/a b.conf".parse().unwrap();
        let entry = Entry {
            stat: stat_of(&f),
            sha256: [0xab; 32],
            blob: Oid::hash_object(git2::ObjectType::Blob, b"x").unwrap(),
            clear: Some([0xcd; 32]),
            secret: true,
        };
        c.record(p.clone(), entry.clone(), later);
        let file = dir.path().join("cache/stat-dns");
        c.save(&file).unwrap();
        let back = StatCache::load(&file);
        assert_eq!((back.full_rehash_at, back.sealing.as_str()), (1234, "k-r"));
        assert_eq!(back.fresh(&p, &entry.stat), Some(&entry));

        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("dir/a b.conf", "dir/a c.conf");
        std::fs::write(&file, text).unwrap();
        let damaged = StatCache::load(&file);
        assert_eq!((damaged.full_rehash_at, damaged.entries.len()), (0, 0));
    }

    #[test]
    fn a_cache_taken_over_whole_is_the_same_and_one_out_of_order_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        std::fs::write(&f, "x").unwrap();
        let later = now_ns() + 10_000_000_000;
        let entry = |n: u8| Entry {
            stat: stat_of(&f),
            sha256: [n; 32],
            blob: Oid::ZERO_SHA1,
            clear: n.is_multiple_of(2).then_some([n; 32]),
            secret: false,
        };
        // Recorded out of order, saved sorted.
        let mut next = NextCache::new(7, "k-r", 3);
        for (p, n) in [("b/z.conf", 1), ("a.conf", 2), ("b/a.conf", 3)] {
            next.record(p.parse().unwrap(), entry(n), later);
        }
        let file = dir.path().join("stat-dns");
        next.save(&file).unwrap();
        let mut loaded = StatCache::load(&file);
        assert_eq!(loaded.known(&"b/a.conf".parse().unwrap()), Some(&entry(3)));
        assert_eq!(loaded.known(&"b/b.conf".parse().unwrap()), None);

        let mut again = NextCache::new(7, "k-r", 3);
        for p in ["a.conf", "b/a.conf"] {
            let p: RepoPath = p.parse().unwrap();
            let e = loaded.take(&p).unwrap();
            again.record(p, e, later);
        }
        assert!(!loaded.is_empty() && !again.same_as(&loaded), "one entry is left");
        let p: RepoPath = "b/z.conf".parse().unwrap();
        again.record(p.clone(), loaded.take(&p).unwrap(), later);
        assert!(loaded.is_empty() && again.same_as(&loaded));
        assert_eq!(loaded.take(&p), None, "taken once");
        assert!(!NextCache::new(8, "k-r", 0).same_as(&StatCache::load(&file)));

        // A file whose lines are out of order (or a path twice) is not trusted.
        let text = std::fs::read_to_string(&file).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        let mut lines: Vec<&str> = body.lines().collect();
        lines.swap(0, 1);
        let body = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let header = header.replace(
            header.split_whitespace().nth(4).unwrap(),
            &hex::encode(Sha256::digest(body.as_bytes())),
        );
        std::fs::write(&file, format!("{header}\n{body}")).unwrap();
        assert_eq!(StatCache::load(&file), StatCache::default());
    }

    #[test]
    fn a_file_changed_within_the_racy_window_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        std::fs::write(&f, "x").unwrap();
        let mut c = NextCache::default();
        let entry = Entry {
            stat: stat_of(&f),
            sha256: [0; 32],
            blob: Oid::ZERO_SHA1,
            clear: None,
            secret: false,
        };
        c.record("a.conf".parse().unwrap(), entry, now_ns());
        assert!(c.entries.is_empty());
    }

    #[test]
    fn rewriting_a_file_with_the_same_size_and_mtime_changes_its_stat() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.conf");
        std::fs::write(&f, "aaaa").unwrap();
        let before = std::fs::metadata(&f).unwrap();
        // Until the filesystem's clock has moved past the first write (a probe's ctime).
        let probe = dir.path().join("probe");
        let ctime = |p: &Path| {
            std::fs::metadata(p).unwrap().ctime_nsec() + std::fs::metadata(p).unwrap().ctime() * 1_000_000_000
        };
        while {
            std::fs::write(&probe, "").unwrap();
            ctime(&probe) <= ctime(&f)
        } {}
        std::fs::write(&f, "bbbb").unwrap();
        let file = std::fs::File::options().write(true).open(&f).unwrap();
        file.set_modified(before.modified().unwrap()).unwrap();
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(
            (after.len(), after.modified().unwrap()),
            (before.len(), before.modified().unwrap())
        );
        assert_ne!(FileStat::of(&before), FileStat::of(&after), "the ctime moved");
    }
}
