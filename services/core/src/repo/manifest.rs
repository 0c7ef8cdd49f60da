//! Manifests (`.config-backup/<domain>.sha256`, `sha256sum` format) and reading a
//! tree's files a directory at a time.

use super::*;

/// Path of a domain's manifest in the repository.
pub fn manifest_path(domain: Domain) -> String {
    format!("{METADATA_DIR}{domain}.sha256")
}

/// `sha256sum` format, sorted by path: the regular files (`sha256sum -c` reads a
/// symlink's target, so links are in the metadata file only).
pub(super) fn render_manifest(manifest: &Manifest) -> String {
    let mut s = String::with_capacity(manifest.len() * 100);
    for (path, entry) in manifest.iter().filter(|(_, e)| e.mode != metadata::GIT_SYMLINK) {
        s.push_str(&entry.sha256);
        s.push_str("  ");
        s.push_str(path.as_str());
        s.push('\n');
    }
    s
}

/// The metadata file of the entries that carry metadata.
pub(super) fn render_meta(manifest: &Manifest) -> String {
    metadata::render(manifest.iter().filter_map(|(p, e)| Some((p, e.meta.as_ref()?))))
}

/// A domain's files at a tree: the manifest's regular files, with the metadata file's
/// type, mode and owners when the commit has one, and its symlinks (content: the link's
/// target text in the tree).
pub(super) fn read_manifest(repo: &Repository, tree: &Tree<'_>, domain: Domain) -> Result<Manifest, RepoError> {
    let entry = match tree.get_path(Path::new(&manifest_path(domain))) {
        Ok(e) => e,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(Manifest::new()),
        Err(e) => return Err(e.into()),
    };
    let blob = repo.find_blob(entry.id())?;
    let text = std::str::from_utf8(blob.content()).map_err(|_| git2::Error::from_str("manifest is not UTF-8"))?;
    let mut files = TreeFiles::new(repo, tree.clone());
    let mut out = Manifest::new();
    for line in text.lines() {
        let Some((sha, path)) = line.split_once("  ") else {
            continue;
        };
        let Ok(path) = path.parse::<RepoPath>() else {
            continue;
        };
        let Some((_, mode)) = files.get(&path) else {
            continue;
        };
        out.insert(
            path,
            ManifestEntry {
                sha256: sha.to_owned(),
                mode,
                meta: None,
            },
        );
    }
    if let Ok(entry) = tree.get_path(Path::new(&metadata::meta_path(domain))) {
        let blob = repo.find_blob(entry.id())?;
        let mut links = Vec::new();
        // Lines of files the manifest lists are matched by their text; only links are
        // parsed as paths (they are not in the manifest).
        metadata::for_each_line(&String::from_utf8_lossy(blob.content()), |path, meta| {
            if let Some(e) = out.get_mut(path) {
                e.meta = Some(meta);
            } else if meta.kind == metadata::FileType::Symlink
                && let Ok(path) = path.parse::<RepoPath>()
            {
                links.push((path, meta));
            }
        });
        for (path, meta) in links {
            if let Some((id, mode)) = files.get(&path)
                && mode == metadata::GIT_SYMLINK
            {
                use sha2::Digest;
                let sha256 = hex::encode(sha2::Sha256::digest(repo.find_blob(id)?.content()));
                out.insert(
                    path,
                    ManifestEntry {
                        sha256,
                        mode,
                        meta: Some(meta),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// The manifests this process last committed, per domain, with the blobs they were
/// rendered into: a run whose HEAD tree still holds those blobs takes its previous
/// manifest from here instead of parsing it again, and a no-change commit whose manifest
/// equals it reuses the parent's tree without rendering (a no-change run of a large site
/// would otherwise parse and render its manifest and metadata files twice).
#[derive(Debug, Default)]
pub struct ManifestCache(
    std::sync::Mutex<std::collections::HashMap<Domain, (ManifestBlobs, std::sync::Arc<Manifest>)>>,
);

/// The blobs of a domain's manifest and metadata file in a tree.
pub type ManifestBlobs = (Option<Oid>, Option<Oid>);

impl ManifestCache {
    /// The manifest rendered into `blobs`, if this process rendered it.
    pub fn get(&self, domain: Domain, blobs: ManifestBlobs) -> Option<std::sync::Arc<Manifest>> {
        let map = self.0.lock().ok()?;
        map.get(&domain)
            .filter(|(b, _)| *b == blobs && b.0.is_some())
            .map(|(_, m)| m.clone())
    }

    /// Remembers that `manifest` is what `blobs` hold.
    pub fn put(&self, domain: Domain, blobs: ManifestBlobs, manifest: std::sync::Arc<Manifest>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(domain, (blobs, manifest));
        }
    }
}

/// The blobs of `domain`'s manifest and metadata file in `tree`.
pub fn manifest_blob_ids(tree: &Tree<'_>, domain: Domain) -> ManifestBlobs {
    let id = |p: String| tree.get_path(Path::new(&p)).ok().map(|e| e.id());
    (id(manifest_path(domain)), id(metadata::meta_path(domain)))
}

/// Looks files up in a tree, reading each directory once: a path lookup from the root for
/// every file would read (and verify) the same large directory trees thousands of times.
pub struct TreeFiles<'r> {
    repo: &'r Repository,
    root: Tree<'r>,
    dirs: std::collections::HashMap<String, Option<Tree<'r>>>,
}

impl<'r> TreeFiles<'r> {
    /// Lookups in `root`.
    pub fn new(repo: &'r Repository, root: Tree<'r>) -> Self {
        TreeFiles {
            repo,
            root,
            dirs: Default::default(),
        }
    }

    /// The blob and mode at `path`, if the tree has a file there.
    pub fn get(&mut self, path: &RepoPath) -> Option<(Oid, u32)> {
        let (dir, name) = match path.as_str().rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path.as_str()),
        };
        let tree = if dir.is_empty() {
            &self.root
        } else {
            // Looked up before it is inserted: most lookups hit, and an entry would copy
            // the directory's name for each.
            if !self.dirs.contains_key(dir) {
                let tree = self
                    .root
                    .get_path(Path::new(dir))
                    .ok()
                    .and_then(|e| self.repo.find_tree(e.id()).ok());
                self.dirs.insert(dir.to_owned(), tree);
            }
            self.dirs.get(dir)?.as_ref()?
        };
        let e = tree.get_name(name)?;
        (e.kind() == Some(git2::ObjectType::Blob)).then(|| (e.id(), e.filemode() as u32))
    }
}
