//! What git does not keep of a file: its type (a symlink stays a link, never followed),
//! the full mode (setuid, setgid and sticky included), the owner and the group by id and
//! by name. A domain's metadata is committed as `.config-backup/<domain>.meta`, one
//! sorted line per path, so `git show` reads it and `git diff` of it reads as a change
//! of mode or owner (as etckeeper's `.etckeeper`).
//!
//! Invariant: a restore never widens access. Owner, group and mode are set on the
//! temporary file before it is renamed into place ([`apply_to_file`]); a restore that
//! cannot set an owner is refused before anything is touched ([`Privilege`]).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::domain::{Domain, RepoPath};

/// The first line of every metadata file: its version and what the columns are.
pub const HEADER: &str = "# config-backup metadata v1: mode type owner:group uid:gid path";

/// Where a domain's metadata lives in the repository.
pub fn meta_path(domain: Domain) -> String {
    format!("{}{domain}.meta", crate::domain::METADATA_DIR)
}

/// Git's mode of a symlink.
pub const GIT_SYMLINK: u32 = 0o120000;

/// The type of a backed-up path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    File,
    /// A symbolic link, kept as a link with its target text.
    Symlink,
}

impl FileType {
    /// The word in the metadata file.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Symlink => "link",
        }
    }

    fn parse(s: &str) -> Option<FileType> {
        match s {
            "file" => Some(FileType::File),
            "link" => Some(FileType::Symlink),
            _ => None,
        }
    }
}

/// One path's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileMeta {
    /// File or symlink.
    pub kind: FileType,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner's id.
    pub uid: u32,
    /// Group's id.
    pub gid: u32,
    /// Owner's name (the id as text when it has none); shared, as most files have few.
    pub owner: Arc<str>,
    /// Group's name (the id as text when it has none).
    pub group: Arc<str>,
}

impl FileMeta {
    /// From `lstat` metadata (a symlink's own, not its target's).
    pub fn of(m: &std::fs::Metadata, names: &Names) -> FileMeta {
        FileMeta {
            kind: if m.file_type().is_symlink() {
                FileType::Symlink
            } else {
                FileType::File
            },
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            owner: names.user(m.uid()),
            group: names.group(m.gid()),
        }
    }

    /// Whether the two give the same access: type, mode and numeric ids (a renamed user
    /// is not a change of the file).
    pub fn same_access(&self, other: &FileMeta) -> bool {
        self.kind == other.kind && self.mode == other.mode && self.uid == other.uid && self.gid == other.gid
    }

    /// The mode as four octal digits.
    pub fn mode_text(&self) -> String {
        format!("{:04o}", self.mode)
    }

    /// The audit trail's form: the metadata file's line without the path
    /// ("0600 file freerad:freerad 101:101").
    pub fn record(&self) -> String {
        format!(
            "{} {} {}:{} {}:{}",
            self.mode_text(),
            self.kind.as_str(),
            self.owner,
            self.group,
            self.uid,
            self.gid
        )
    }

    /// Reads [`FileMeta::record`]'s form.
    pub fn from_record(text: &str) -> Option<FileMeta> {
        let mut fields = text.splitn(4, ' ');
        let fields = [fields.next()?, fields.next()?, fields.next()?, fields.next()?];
        meta_of(fields, &mut |name| Arc::from(name))
    }

    /// Appends the metadata file's line of `path` (no temporary strings: a large site
    /// renders thousands of lines at every commit).
    fn write_line(&self, out: &mut String, path: &RepoPath) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "{:04o} {} {}:{} {}:{} {path}",
            self.mode,
            self.kind.as_str(),
            self.owner,
            self.group,
            self.uid,
            self.gid
        );
    }
}

/// Names shared between the lines of one file.
#[derive(Default)]
pub(crate) struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(a) = self.0.get(name) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(name);
        self.0.insert(name.to_owned(), a.clone());
        a
    }
}

/// A metadata line's fields and its path, not yet checked as a [`RepoPath`].
pub(crate) fn parse_fields<'l>(line: &'l str, names: &mut Interner) -> Option<(&'l str, FileMeta)> {
    let mut parts = line.splitn(5, ' ');
    let fields = [parts.next()?, parts.next()?, parts.next()?, parts.next()?];
    let path = parts.next()?;
    Some((path, meta_of(fields, &mut |name| names.get(name))?))
}

/// The metadata of a line's first four fields (mode, type, owner:group, uid:gid), with
/// `name` making the shared form of a user or group name.
fn meta_of(fields: [&str; 4], name: &mut dyn FnMut(&str) -> Arc<str>) -> Option<FileMeta> {
    let [mode, kind, names, ids] = fields;
    let (owner, group) = names.split_once(':')?;
    let (uid, gid) = ids.split_once(':')?;
    Some(FileMeta {
        kind: FileType::parse(kind)?,
        mode: u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777)?,
        uid: uid.parse().ok()?,
        gid: gid.parse().ok()?,
        owner: name(owner),
        group: name(group),
    })
}

/// Reads a metadata file line by line, calling `each` with the path text and the
/// metadata (names shared); lines it cannot read are left out.
pub(crate) fn for_each_line(text: &str, mut each: impl FnMut(&str, FileMeta)) {
    let mut names = Interner::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((path, meta)) = parse_fields(line, &mut names) {
            each(path, meta);
        }
    }
}

/// Every path's metadata of a domain, by path.
pub type MetaMap = BTreeMap<RepoPath, FileMeta>;

/// The metadata file's text: the header, then a line per path in path order.
pub fn render<'a>(entries: impl IntoIterator<Item = (&'a RepoPath, &'a FileMeta)>) -> String {
    let mut s = String::with_capacity(4096);
    s.push_str(HEADER);
    s.push('\n');
    for (path, meta) in entries {
        meta.write_line(&mut s, path);
    }
    s
}

/// Reads a metadata file; lines it cannot read are left out (their paths then carry no
/// metadata, as in a commit made before metadata was kept).
pub fn parse(text: &str) -> MetaMap {
    let mut out = MetaMap::new();
    for_each_line(text, |path, meta| {
        if let Ok(path) = path.parse() {
            out.insert(path, meta);
        }
    });
    out
}

/// What changed between two states of a path, in words: "mode 0600 → 0644",
/// "owner freerad → root", "group freerad → root", "file → link". Link targets are
/// content, and told by [`describe_link`].
pub fn describe(old: &FileMeta, new: &FileMeta) -> Vec<String> {
    let mut out = Vec::new();
    if old.kind != new.kind {
        out.push(format!("{} → {}", old.kind.as_str(), new.kind.as_str()));
    }
    if old.mode != new.mode && old.kind == FileType::File && new.kind == FileType::File {
        out.push(format!("mode {} → {}", old.mode_text(), new.mode_text()));
    }
    if old.uid != new.uid {
        out.push(format!("owner {} → {}", old.owner, new.owner));
    }
    if old.gid != new.gid {
        out.push(format!("group {} → {}", old.group, new.group));
    }
    out
}

/// A symlink's new target, in words.
pub fn describe_link(target: &str) -> String {
    format!("link → {target}")
}

/// Whether `new` lets someone read or write who could not under `old`: a group or other
/// permission bit that was not set, or a group-accessible file moved to another group.
/// Without a previous state (a new file, or one recorded before metadata was kept)
/// nothing was widened.
pub fn widens_access(old: Option<&FileMeta>, new: &FileMeta) -> bool {
    let Some(old) = old.filter(|_| new.kind == FileType::File) else {
        return false;
    };
    let added = new.mode & !old.mode & 0o077;
    added != 0 || (new.gid != old.gid && new.mode & 0o070 != 0)
}

/// User and group names by id, read from `/etc/passwd` and `/etc/group` (once per scan:
/// a renamed user shows at the next run).
#[derive(Debug, Default, Clone)]
pub struct Names {
    users: HashMap<u32, Arc<str>>,
    groups: HashMap<u32, Arc<str>>,
}

impl Names {
    /// The host's names.
    pub fn load() -> Names {
        Names::from_files(Path::new("/etc/passwd"), Path::new("/etc/group"))
    }

    /// Names from files in the `passwd` and `group` formats; a missing file gives none.
    pub fn from_files(passwd: &Path, group: &Path) -> Names {
        let read = |p: &Path| -> HashMap<u32, Arc<str>> {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let id = f.nth(1)?.parse().ok()?;
                    let ok = !name.is_empty() && !name.contains([' ', ':']) && !name.starts_with('#');
                    ok.then(|| (id, Arc::from(name)))
                })
                .collect()
        };
        Names {
            users: read(passwd),
            groups: read(group),
        }
    }

    /// The user's name, or the id as text.
    pub fn user(&self, uid: u32) -> Arc<str> {
        self.users.get(&uid).cloned().unwrap_or_else(|| uid.to_string().into())
    }

    /// The group's name, or the id as text.
    pub fn group(&self, gid: u32) -> Arc<str> {
        self.groups.get(&gid).cloned().unwrap_or_else(|| gid.to_string().into())
    }
}

/// What this process may do about ownership: its effective ids, its groups and its
/// capabilities, read from `/proc/self/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privilege {
    /// Effective user id.
    pub euid: u32,
    /// Effective and supplementary group ids.
    pub groups: Vec<u32>,
    /// CAP_CHOWN: may give a file to any owner and group.
    pub cap_chown: bool,
    /// CAP_FOWNER: may set the mode of a file it does not own.
    pub cap_fowner: bool,
}

impl Privilege {
    /// This process's.
    pub fn current() -> Privilege {
        Privilege::parse(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
    }

    /// From the text of a `/proc/<pid>/status` file.
    pub fn parse(status: &str) -> Privilege {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .unwrap_or("")
        };
        let ids = |name: &str| -> Vec<u32> { field(name).split_whitespace().filter_map(|v| v.parse().ok()).collect() };
        let caps = u64::from_str_radix(field("CapEff").trim(), 16).unwrap_or(0);
        let euid = ids("Uid").get(1).copied().unwrap_or(u32::MAX);
        let mut groups = ids("Groups");
        groups.extend(ids("Gid").get(1).copied());
        Privilege {
            euid,
            groups,
            cap_chown: caps & 1 != 0,
            cap_fowner: caps & (1 << 3) != 0,
        }
    }

    /// Whether a file this process creates can be given `uid` and `gid`.
    pub fn can_own(&self, uid: u32, gid: u32) -> bool {
        self.cap_chown || (uid == self.euid && self.groups.contains(&gid))
    }
}

/// Gives an open file (a temporary not yet renamed into place) its owner, group and
/// mode, in that order: a chown clears setuid and setgid, so the mode comes last.
pub fn apply_to_file(file: &std::fs::File, meta: &FileMeta) -> std::io::Result<()> {
    let st = file.metadata()?;
    if st.uid() != meta.uid || st.gid() != meta.gid {
        std::os::unix::fs::fchown(file, Some(meta.uid), Some(meta.gid))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode))
}

/// Gives a symlink its owner and group (a link has no mode of its own on Linux).
pub fn apply_to_link(path: &Path, meta: &FileMeta) -> std::io::Result<()> {
    let st = std::fs::symlink_metadata(path)?;
    if st.uid() != meta.uid || st.gid() != meta.gid {
        std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32, uid: u32, gid: u32) -> FileMeta {
        FileMeta {
            kind: FileType::File,
            mode,
            uid,
            gid,
            owner: if uid == 0 { "root".into() } else { "freerad".into() },
            group: if gid == 0 { "root".into() } else { "freerad".into() },
        }
    }

    #[test]
    fn an_audit_record_reads_back_as_written_and_a_malformed_one_is_none() {
        for m in [
            meta(0o600, 101, 101),
            meta(0o4755, 0, 0),
            FileMeta {
                kind: FileType::Symlink,
                ..meta(0o777, 0, 101)
            },
        ] {
            assert_eq!(FileMeta::from_record(&m.record()), Some(m.clone()), "{}", m.record());
        }
        for bad in [
            "",
            "0600 file freerad:freerad",
            "0600 file freerad 101:101",
            "0600 file freerad:freerad 101",
            "0600 file freerad:freerad 101:x",
            "10000 file root:root 0:0",
            "0600 pipe root:root 0:0",
            "0600 file root:root 0:0 extra",
        ] {
            assert_eq!(FileMeta::from_record(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_metadata_file_reads_back_as_written() {
        let mut map = MetaMap::new();
        map.insert("config/radius/certs/server.key".parse().unwrap(), meta(0o600, 101, 101));
        map.insert(
            "config/radius/mods-enabled/eap".parse().unwrap(),
            FileMeta {
                kind: FileType::Symlink,
                ..meta(0o777, 0, 0)
            },
        );
        map.insert("bin/with space/s".parse().unwrap(), meta(0o4755, 0, 0));
        let text = render(&map);
        assert!(text.starts_with(HEADER));
        assert!(
            text.contains("\n0600 file freerad:freerad 101:101 config/radius/certs/server.key\n"),
            "{text}"
        );
        assert!(text.contains("\n4755 file root:root 0:0 bin/with space/s\n"), "{text}");
        assert_eq!(parse(&text), map);
        assert!(parse("garbage\n9999 file a:b 1:2 x\n0644 door a:b 1:2 x\n").is_empty());
    }

    #[test]
    fn changes_are_told_in_words_and_widening_is_seen() {
        let (old, new) = (meta(0o600, 101, 101), meta(0o644, 0, 101));
        assert_eq!(describe(&old, &new), ["mode 0600 → 0644", "owner freerad → root"]);
        assert!(widens_access(Some(&old), &new));
        assert!(!widens_access(Some(&new), &old));
        assert!(!widens_access(Some(&old), &meta(0o400, 101, 101)));
        // Group-readable, moved to another group.
        assert!(widens_access(Some(&meta(0o640, 0, 101)), &meta(0o640, 0, 0)));
        assert!(!widens_access(None, &meta(0o644, 0, 0)));
    }

    #[test]
    fn privilege_is_read_from_proc_status() {
        let root = Privilege::parse("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0 \nCapEff:\t000001ffffffffff\n");
        assert!(root.cap_chown && root.cap_fowner && root.can_own(101, 101));
        let user = Privilege::parse(
            "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t27 1000\nCapEff:\t0000000000000000\n",
        );
        assert!(!user.cap_chown);
        assert!(user.can_own(1000, 27) && user.can_own(1000, 1000));
        assert!(!user.can_own(0, 1000) && !user.can_own(1000, 0));
    }

    #[test]
    fn names_come_from_passwd_and_group_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nfreerad:x:101:101::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("group"), "root:x:0:\nfreerad:x:101:\n").unwrap();
        let n = Names::from_files(&dir.path().join("passwd"), &dir.path().join("group"));
        assert_eq!(
            (&*n.user(101), &*n.group(0), &*n.user(4242)),
            ("freerad", "root", "4242")
        );
    }
}
