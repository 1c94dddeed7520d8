//! The programs the `subprocess` experiment may run: the names in `ASYNCLAB_ALLOW_PROGRAMS`,
//! each resolved once at start-up to an absolute path, so a launch never searches `PATH`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The name under which the built-in child (`asynclab child`) is allowed.
pub const CHILD_PROGRAM: &str = "asynclab-child";
/// Where bare program names are looked up, in order.
const SEARCH_DIRS: [&str; 2] = ["/usr/bin", "/bin"];

/// A program a launch may name, as it will be executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedProgram {
    /// The executable's absolute path.
    pub path: PathBuf,
    /// Arguments put before the caller's: the `child` subcommand for the built-in child.
    pub leading_args: Vec<String>,
}

/// The resolved allowlist, by the name launches use.
#[derive(Debug, Clone, Default)]
pub struct ProgramAllowlist {
    programs: BTreeMap<String, AllowedProgram>,
}

impl ProgramAllowlist {
    /// Resolves each configured entry: `asynclab-child` to `child_exe` (or this executable),
    /// a bare name to the first executable file of that name in /usr/bin or /bin, an absolute
    /// path to itself. Entries that do not resolve are left out with a warning.
    pub fn resolve(entries: &[String], child_exe: Option<&Path>) -> Self {
        let mut programs = BTreeMap::new();
        for entry in entries.iter().map(|entry| entry.trim()).filter(|entry| !entry.is_empty()) {
            match resolve_entry(entry, child_exe) {
                Some(program) => {
                    programs.insert(entry.to_string(), program);
                }
                None => tracing::warn!(program = entry, "allowed program not found or not executable; left out"),
            }
        }
        ProgramAllowlist { programs }
    }

    /// The program allowed under `name`.
    pub fn get(&self, name: &str) -> Option<&AllowedProgram> {
        self.programs.get(name)
    }

    /// The allowed names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.programs.keys().map(String::as_str).collect()
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }
}

fn resolve_entry(entry: &str, child_exe: Option<&Path>) -> Option<AllowedProgram> {
    let (path, leading_args) = if entry == CHILD_PROGRAM {
        let path = match child_exe {
            Some(path) => path.to_path_buf(),
            None => std::env::current_exe().ok()?,
        };
        (path, vec!["child".to_string()])
    } else if entry.contains('/') {
        (PathBuf::from(entry), Vec::new())
    } else {
        (SEARCH_DIRS.iter().map(|dir| Path::new(dir).join(entry)).find(|path| is_executable(path))?, Vec::new())
    };
    (path.is_absolute() && is_executable(&path)).then_some(AllowedProgram { path, leading_args })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_resolve_to_absolute_paths_and_unknown_ones_are_left_out() {
        let not_executable = std::env::temp_dir().join(format!("asynclab-not-executable-{}", std::process::id()));
        std::fs::write(&not_executable, "data").unwrap();
        std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
        let entries = ["echo", " seq ", "", "no-such-program-here", "relative/path"].map(String::from);
        let mut entries = entries.to_vec();
        entries.push(not_executable.display().to_string());
        let allowlist = ProgramAllowlist::resolve(&entries, None);
        std::fs::remove_file(&not_executable).unwrap();
        assert_eq!(allowlist.names(), ["echo", "seq"]);
        let echo = allowlist.get("echo").unwrap();
        assert!(echo.path.is_absolute() && echo.path.ends_with("echo"), "{echo:?}");
        assert!(echo.leading_args.is_empty());
    }

    #[test]
    fn the_built_in_child_runs_an_executable_with_the_child_subcommand() {
        let allowlist = ProgramAllowlist::resolve(&[CHILD_PROGRAM.to_string()], Some(Path::new("/bin/sh")));
        let child = allowlist.get(CHILD_PROGRAM).unwrap();
        assert_eq!(child.path, Path::new("/bin/sh"));
        assert_eq!(child.leading_args, ["child"]);
        assert!(ProgramAllowlist::resolve(&[CHILD_PROGRAM.to_string()], None).get(CHILD_PROGRAM).is_some());
        assert!(ProgramAllowlist::resolve(&[], None).is_empty());
    }
}
