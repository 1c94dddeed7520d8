//! The SFTP side of the in-process server: a russh-sftp handler serving one directory tree.
//! Client paths are resolved lexically under the root (`/` is the root, `..` stops there), so no
//! request reaches outside it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use russh_sftp::protocol::{Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// The most handles one session may hold open, so a client cannot exhaust descriptors.
const MAX_OPEN_HANDLES: usize = 256;
/// The largest read answered at once (what OpenSSH's server allows too).
const MAX_READ_BYTES: u32 = 256 << 10;

/// An open file or a directory listing.
enum OpenHandle {
    File(tokio::fs::File),
    /// Entries still to send; `None` once sent.
    Dir(Option<Vec<File>>),
}

/// One SFTP session's handler.
pub struct DirectoryHandler {
    root: PathBuf,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
}

impl DirectoryHandler {
    /// A handler serving `root`.
    pub fn new(root: PathBuf) -> Self {
        DirectoryHandler { root, handles: HashMap::new(), next_handle: 0 }
    }

    fn resolve(&self, client_path: &str) -> PathBuf {
        self.root.join(normalize(client_path))
    }

    fn insert(&mut self, handle: OpenHandle) -> Result<String, StatusCode> {
        if self.handles.len() >= MAX_OPEN_HANDLES {
            return Err(StatusCode::Failure);
        }
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        Ok(name)
    }

    fn file(&mut self, handle: &str) -> Result<&mut tokio::fs::File, StatusCode> {
        match self.handles.get_mut(handle) {
            Some(OpenHandle::File(file)) => Ok(file),
            _ => Err(StatusCode::Failure),
        }
    }
}

/// `client_path` as a relative path with `.`, `..` and the leading `/` resolved, never above the root.
pub fn normalize(client_path: &str) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in Path::new(client_path).components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    parts.iter().collect()
}

fn ok(id: u32) -> Status {
    Status { id, status_code: StatusCode::Ok, error_message: "Ok".into(), language_tag: "en-US".into() }
}

fn status_of(error: std::io::Error) -> StatusCode {
    match error.kind() {
        std::io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        std::io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

async fn set_attributes(path: &Path, attrs: &FileAttributes) -> Result<(), StatusCode> {
    if let Some(size) = attrs.size {
        let file = tokio::fs::OpenOptions::new().write(true).open(path).await.map_err(status_of)?;
        file.set_len(size).await.map_err(status_of)?;
    }
    if let Some(mode) = attrs.permissions {
        use std::os::unix::fs::PermissionsExt;
        let permissions = std::fs::Permissions::from_mode(mode & 0o7777);
        tokio::fs::set_permissions(path, permissions).await.map_err(status_of)?;
    }
    Ok(())
}

impl russh_sftp::server::Handler for DirectoryHandler {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(&mut self, _version: u32, _extensions: HashMap<String, String>) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(&mut self, id: u32, filename: String, pflags: OpenFlags, _attrs: FileAttributes) -> Result<Handle, Self::Error> {
        let file = tokio::fs::OpenOptions::new()
            .read(pflags.contains(OpenFlags::READ))
            .write(pflags.contains(OpenFlags::WRITE) || pflags.contains(OpenFlags::APPEND))
            .append(pflags.contains(OpenFlags::APPEND))
            .create(pflags.contains(OpenFlags::CREATE) && !pflags.contains(OpenFlags::EXCLUDE))
            .create_new(pflags.contains(OpenFlags::CREATE) && pflags.contains(OpenFlags::EXCLUDE))
            .truncate(pflags.contains(OpenFlags::TRUNCATE))
            .open(self.resolve(&filename))
            .await
            .map_err(status_of)?;
        Ok(Handle { id, handle: self.insert(OpenHandle::File(file))? })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(OpenHandle::File(mut file)) => {
                file.flush().await.map_err(status_of)?;
                Ok(ok(id))
            }
            Some(OpenHandle::Dir(_)) => Ok(ok(id)),
            None => Err(StatusCode::Failure),
        }
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> Result<Data, Self::Error> {
        let file = self.file(&handle)?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(status_of)?;
        let mut data = vec![0u8; len.min(MAX_READ_BYTES) as usize];
        let mut filled = 0;
        while filled < data.len() {
            let read = file.read(&mut data[filled..]).await.map_err(status_of)?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        if filled == 0 {
            return Err(StatusCode::Eof);
        }
        data.truncate(filled);
        Ok(Data { id, data })
    }

    async fn write(&mut self, id: u32, handle: String, offset: u64, data: Vec<u8>) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(status_of)?;
        file.write_all(&data).await.map_err(status_of)?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let metadata = tokio::fs::symlink_metadata(self.resolve(&path)).await.map_err(status_of)?;
        Ok(Attrs { id, attrs: FileAttributes::from(&metadata) })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let metadata = tokio::fs::metadata(self.resolve(&path)).await.map_err(status_of)?;
        Ok(Attrs { id, attrs: FileAttributes::from(&metadata) })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let metadata = self.file(&handle)?.metadata().await.map_err(status_of)?;
        Ok(Attrs { id, attrs: FileAttributes::from(&metadata) })
    }

    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        set_attributes(&self.resolve(&path), &attrs).await?;
        Ok(ok(id))
    }

    async fn fsetstat(&mut self, id: u32, handle: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let file = self.file(&handle)?;
        if let Some(size) = attrs.size {
            file.set_len(size).await.map_err(status_of)?;
        }
        if let Some(mode) = attrs.permissions {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777)).await.map_err(status_of)?;
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let mut listing = tokio::fs::read_dir(self.resolve(&path)).await.map_err(status_of)?;
        let mut entries = Vec::new();
        while let Some(entry) = listing.next_entry().await.map_err(status_of)? {
            let metadata = entry.metadata().await.map_err(status_of)?;
            entries.push(File::new(entry.file_name().to_string_lossy(), FileAttributes::from(&metadata)));
        }
        Ok(Handle { id, handle: self.insert(OpenHandle::Dir(Some(entries)))? })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(OpenHandle::Dir(entries)) => match entries.take() {
                Some(files) if !files.is_empty() => Ok(Name { id, files }),
                _ => Err(StatusCode::Eof),
            },
            _ => Err(StatusCode::Failure),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_file(self.resolve(&filename)).await.map_err(status_of)?;
        Ok(ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, _attrs: FileAttributes) -> Result<Status, Self::Error> {
        tokio::fs::create_dir(self.resolve(&path)).await.map_err(status_of)?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        tokio::fs::remove_dir(self.resolve(&path)).await.map_err(status_of)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let resolved = format!("/{}", normalize(&path).display());
        Ok(Name { id, files: vec![File::dummy(resolved)] })
    }

    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> Result<Status, Self::Error> {
        tokio::fs::rename(self.resolve(&oldpath), self.resolve(&newpath)).await.map_err(status_of)?;
        Ok(ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::path::PathBuf;

    #[test]
    fn paths_never_leave_the_root() {
        assert_eq!(normalize("/a/b"), PathBuf::from("a/b"));
        assert_eq!(normalize("../../etc/passwd"), PathBuf::from("etc/passwd"));
        assert_eq!(normalize("a/../../b/./c"), PathBuf::from("b/c"));
        assert_eq!(normalize("."), PathBuf::new());
    }
}
