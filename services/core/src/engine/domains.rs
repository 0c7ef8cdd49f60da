//! One domain's part of a run, in two halves around the run's one hashing pool
//! ([`super::hashing::hash_and_stage`]):
//!
//! - [`prepare`], in domain order: settle claims, take over what the stat cache vouches
//!   for, and list the files that must be read;
//! - [`finish`], in domain order again, once every domain's files are read: the new
//!   manifest, the changes in the services' terms, the commit, the stat cache.
//!
//! Invariant: a domain's commit touches only its own paths, its manifest and its
//! metadata file, so the tree at HEAD when the run prepares is, for each domain, the
//! tree its commit builds on. Nothing a domain commits is read by another's preparation.

use std::sync::Arc;
use std::time::Duration;

use super::hashing::{FileResult, Pending};
use super::message::{Trailers, commit_message};
use super::*;

/// What every domain commit of one run shares.
pub(super) struct RunContext<'a> {
    pub(super) sealer: &'a crate::secrets::Sealer,
    pub(super) manifests: &'a repo::ManifestCache,
    pub(super) stat_caches: &'a crate::statcache::KeptCaches,
    pub(super) told: &'a std::sync::Mutex<std::collections::HashMap<git2::Oid, repo::Summaries>>,
    /// Changes the caller already told (a rollback's plan).
    pub(super) summaries: &'a crate::summary::KnownSummaries,
    pub(super) run_id: Uuid,
    pub(super) actor: &'a Actor,
    pub(super) date: String,
    pub(super) title: &'a CommitTitle,
    /// The audit chain's head when the run started, named in each commit's trailer.
    pub(super) audit_chain: Option<String>,
}

/// A domain's run that read this many files or more (a first backup, a full re-hash of a
/// large site) keeps no stat cache in memory for the next run (see [`finish`]).
const KEEP_CACHE_BELOW_READ: usize = 4096;

/// A domain ready for its files to be read.
pub(super) struct Prepared<'s, 'r> {
    domain: Domain,
    scan: &'s sources::Scan,
    /// Its manifest at HEAD; `cached` when this process rendered those very blobs.
    old: Arc<Manifest>,
    cached: bool,
    head_files: Option<repo::TreeFiles<'r>>,
    /// The next stat cache so far; `same_cache` while it is the loaded one, all of it
    /// taken over (the loaded one is dropped once prepared: a large site's four caches
    /// would otherwise be held twice until the end of the run).
    cache: NextCache,
    same_cache: bool,
    cache_file: std::path::PathBuf,
    full_rehash: bool,
    now_ns: i128,
    /// The new manifest so far: files the stat cache vouched for, and files kept because
    /// a directory could not be read.
    new: Manifest,
    warnings: Vec<String>,
    /// Said after the files' own warnings.
    kept: Vec<String>,
    /// The files to read, in path order.
    pub(super) pending: Vec<Pending<'s>>,
    /// Time spent on this domain alone (not its share of the hashing pool).
    pub(super) took: Duration,
}

/// The first half: claims, the stat cache, the files to read.
pub(super) fn prepare<'s, 'r>(
    wc: &'r WorkingCopy,
    settings: &Settings,
    spec: &DomainSpec,
    scan: &'s sources::Scan,
    mut previous: StatCache,
    claimed: &mut BTreeMap<RepoPath, Domain>,
    ctx: &RunContext<'_>,
) -> Result<Prepared<'s, 'r>, EngineError> {
    let began = Instant::now();
    let domain = spec.domain;
    // The previous manifest: as this process committed it when HEAD still holds those
    // blobs, else read from HEAD's tree.
    let head_tree = wc.head_tree()?;
    let head_blobs = head_tree
        .as_ref()
        .map(|t| repo::manifest_blob_ids(t, domain))
        .unwrap_or_default();
    let cached = ctx.manifests.get(domain, head_blobs);
    let old: Arc<Manifest> = match &cached {
        Some(m) => m.clone(),
        None => Arc::new(wc.manifest_at(wc.head()?, domain)?),
    };
    let mut head_files = head_tree.map(|t| repo::TreeFiles::new(wc.repository(), t));
    // The stat cache: files untouched since they were last hashed are not read, unless a
    // full re-hash is due.
    let now = Utc::now();
    let now_unix = now.timestamp();
    let now_ns = i128::from(now.timestamp_nanos_opt().unwrap_or(i64::MAX));
    let interval = i64::try_from(settings.full_rehash_interval.as_secs()).unwrap_or(i64::MAX);
    // Entries made under another secrets key or other rules vouch for another sealed form:
    // every file is read and sealed again (a key rotation's re-seal commit).
    let sealing = ctx.sealer.fingerprint(domain);
    let same_sealing = previous.sealing == sealing;
    let full_rehash = interval == 0 || now_unix.saturating_sub(previous.full_rehash_at) >= interval || !same_sealing;
    let mut cache = NextCache::new(
        if full_rehash { now_unix } else { previous.full_rehash_at },
        &sealing,
        scan.files.len(),
    );
    let mut warnings = scan.warnings.clone();
    // The files the stat cache vouches for, in path order: the new manifest is built from
    // them at once.
    let mut vouched: Vec<(RepoPath, ManifestEntry)> = Vec::with_capacity(scan.files.len());
    // In order: claims, and files the stat cache vouches for; the rest must be read.
    let mut pending = Vec::new();
    // The scan's files are in path order, as the manifest is: its entries are met walking
    // both together, not looked up.
    let mut old_entries = old.iter().peekable();
    for file in &scan.files {
        match claimed.entry(file.path.clone()) {
            std::collections::btree_map::Entry::Occupied(owner) => {
                warnings.push(format!("{}: skipped, it belongs to domain {}", file.path, owner.get()));
                continue;
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(domain);
            }
        }
        let mode = file.git_mode();
        let tree_blob = head_files.as_mut().and_then(|f| f.get(&file.path)).map(|(id, _)| id);
        while old_entries.next_if(|(p, _)| *p < &file.path).is_some() {}
        let committed = old_entries.peek().filter(|(p, _)| *p == &file.path).map(|(_, e)| *e);
        if !full_rehash
            && let Some(hit) = previous.fresh(&file.path, &file.stat)
            && let Some(committed) = committed
            && statcache::hex_is(&committed.sha256, &hit.sha256)
            && committed.mode == mode
            && tree_blob == Some(hit.blob)
        {
            // Untouched since it was hashed, and the branch still holds that content; the
            // metadata is this run's (the scan's lstat).
            vouched.push((
                file.path.clone(),
                ManifestEntry {
                    sha256: committed.sha256.clone(),
                    mode: committed.mode,
                    meta: Some(file.meta.clone()),
                },
            ));
            if let Some(hit) = previous.take(&file.path) {
                cache.record(file.path.clone(), hit, now_ns);
            }
            continue;
        }
        pending.push(Pending {
            domain,
            file,
            mode,
            committed: committed.cloned(),
            tree_blob,
            // Trusted for content only: made under this sealing (key and rules).
            known: same_sealing.then(|| previous.known(&file.path).cloned()).flatten(),
        });
    }
    drop(old_entries);
    let mut new: Manifest = vouched.into_iter().collect();
    // A committed file not found because its directory could not be read is kept as it
    // was, unless another domain claimed it this run (claims so far: this domain's and
    // the earlier ones').
    let mut kept = Vec::new();
    for (path, entry) in old.iter() {
        if !claimed.contains_key(path) && scan.may_have_missed(path) {
            kept.push(format!(
                "{path}: not found in an unreadable directory; the backed-up version is kept"
            ));
            new.insert(path.clone(), entry.clone());
        }
    }
    let same_cache = cache.same_as(&previous);
    drop(previous);
    Ok(Prepared {
        domain,
        scan,
        old,
        cached: cached.is_some(),
        head_files,
        cache,
        same_cache,
        cache_file: statcache::path(wc.repository().path(), domain),
        full_rehash,
        now_ns,
        new,
        warnings,
        kept,
        pending,
        took: began.elapsed(),
    })
}

/// The second half: `results` are what reading `p.pending` gave, in its order.
pub(super) fn finish(
    wc: &WorkingCopy,
    p: Prepared<'_, '_>,
    results: impl Iterator<Item = FileResult>,
    ctx: &RunContext<'_>,
) -> Result<DomainReport, EngineError> {
    let Prepared {
        domain,
        scan,
        mut old,
        cached,
        mut head_files,
        mut cache,
        same_cache,
        cache_file,
        full_rehash,
        now_ns,
        mut new,
        mut warnings,
        kept,
        pending,
        took: _,
    } = p;
    let (run_id, actor, date, title) = (ctx.run_id, ctx.actor, ctx.date.as_str(), ctx.title);
    let head = wc.head()?;
    let mut security = Vec::new();
    let mut told_here: repo::Summaries = BTreeMap::new();
    let mut contents = BTreeMap::new();
    // Any file read (and recorded) makes the cache another one than the loaded one.
    let mut cache_changed = false;
    let read = pending.len();
    for (p, result) in pending.iter().zip(results) {
        let path = &p.file.path;
        match result? {
            Ok(h) => {
                if let Some(tree_sha) = h.hand_edit {
                    // The tree is the truth: the manifest entry matched but the tree held other
                    // content (someone committed on the remote); that content's hash is the old
                    // one and the live file was written again.
                    warnings.push(format!(
                        "{path}: the repository held a hand edit; the live file replaces it"
                    ));
                    if let Some(o) = Arc::make_mut(&mut old).get_mut(path) {
                        o.sha256 = tree_sha;
                    }
                }
                if let Some(staged) = h.staged {
                    contents.insert(path.clone(), staged);
                }
                if let Some(summary) = h.summary {
                    told_here.insert(path.clone(), summary);
                }
                let before = old.get(path).and_then(|o| o.meta.as_ref());
                if h.secret
                    && let Some(before) = before.filter(|b| crate::metadata::widens_access(Some(b), &p.file.meta))
                {
                    let words = crate::metadata::describe(before, &p.file.meta).join(", ");
                    let warning = format!(
                        "SECURITY: {path} holds secrets and is now open to group or others ({words}, {}:{})",
                        p.file.meta.owner, p.file.meta.group
                    );
                    tracing::warn!(run_id = %run_id, domain = %domain, file = %path, change = %words, "a file holding secrets was opened to group or others");
                    security.push(warning);
                }
                let entry = statcache::Entry {
                    stat: h.stat,
                    sha256: h.sha256,
                    blob: h.blob,
                    clear: h.clear,
                    secret: h.secret,
                };
                cache.record(path.clone(), entry, now_ns);
                cache_changed = true;
                new.insert(
                    path.clone(),
                    ManifestEntry {
                        sha256: hex::encode(h.sha256),
                        mode: p.mode,
                        meta: Some(p.file.meta.clone()),
                    },
                );
            }
            Err(e) => {
                warnings.push(format!("{path}: cannot read ({e}); the backed-up version is kept"));
                if let Some(o) = old.get(path) {
                    new.insert(path.clone(), o.clone());
                }
            }
        }
    }
    warnings.extend(kept);
    let (mut records, unchanged) = repo::changes(&old, &new);
    // Each changed file in its service's terms, from the stored forms: the branch's blob
    // before, the staged (or, for a change of mode alone, the same) blob after.
    let blobs: BTreeMap<RepoPath, (Option<git2::Oid>, Option<git2::Oid>)> = records
        .iter()
        .map(|r| {
            let before = head_files.as_mut().and_then(|f| f.get(&r.path)).map(|(id, _)| id);
            let after = contents.get(&r.path).map(|s| s.id).or(before);
            (r.path.clone(), (before, after))
        })
        .collect();
    repo::summarize_changes(
        wc.repository(),
        domain,
        &mut records,
        |p| blobs.get(p).and_then(|b| b.0),
        |p| blobs.get(p).and_then(|b| b.1),
        |p| told_here.get(p).cloned(),
    );
    let deleted: Vec<RepoPath> = records
        .iter()
        .filter(|r| r.kind == ChangeKind::Deleted)
        .map(|r| r.path.clone())
        .collect();
    let message = commit_message(
        date,
        domain,
        &records,
        title,
        &Trailers {
            run_id,
            actor,
            sealed_with: ctx.sealer.keys().sealing().id(),
            audit_chain: ctx.audit_chain.as_deref(),
        },
    );
    let same_as_parent = cached && records.is_empty() && *old == new;
    let commit = wc.commit_domain(domain, &new, &contents, &deleted, &message, same_as_parent)?;
    let committed = wc
        .repository()
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map(|t| repo::manifest_blob_ids(&t, domain))
        .unwrap_or_default();
    ctx.manifests.put(domain, committed, Arc::new(new));
    if let Ok(mut told) = ctx.told.lock() {
        // Bounded: commits a recording never took (a stopped run) are read again then.
        if told.len() > 64 {
            told.clear();
        }
        // Files changed in place only: one added or removed whole is told again unread.
        let summaries: repo::Summaries = records
            .iter()
            .filter(|r| r.kind == ChangeKind::Modified)
            .map(|r| (r.path.clone(), r.summary.clone()))
            .collect();
        told.insert(commit, summaries);
    }
    // When every entry was taken over unread, the cache on disk is already this one.
    let same_cache = same_cache && !cache_changed;
    let on_disk = same_cache
        || match cache.save(&cache_file) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(file = %cache_file.display(), error = %e, "could not save the stat cache; the next run reads every file");
                let _ = std::fs::remove_file(&cache_file);
                false
            }
        };
    // A run that read many files (a first backup, a full re-hash) keeps none: its peak
    // memory stays what it was, and the next run reads the file.
    if on_disk && read < KEEP_CACHE_BELOW_READ {
        ctx.stat_caches.keep(domain, &cache_file, cache);
    }
    tracing::info!(
        run_id = %run_id,
        domain = %domain,
        commit = %commit,
        changed = records.len(),
        unchanged,
        read,
        full_rehash,
        "domain committed"
    );
    Ok(DomainReport {
        domain: Some(domain),
        commit: Some(commit.into()),
        message,
        previous: head.map(CommitHash::from),
        changes: records,
        unchanged,
        unmatched: scan.unmatched.clone(),
        warnings,
        security_warnings: security,
        error: None,
        duration: Default::default(),
    })
}
