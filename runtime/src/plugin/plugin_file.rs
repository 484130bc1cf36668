//! Reading a plugin file, and only what a plugin file may be.
//!
//! Whatever sits in the plugin folder is read the same way: opened
//! non-blocking (so a FIFO cannot stall the loader, and opening never waits
//! for a writer), then checked *on the open descriptor*: it must be a regular
//! file no larger than the cap. Checking the path before opening would leave
//! a gap in which the file can be swapped for a FIFO or a link to
//! `/dev/zero`; checking the descriptor does not. The cap is enforced again
//! while reading, so a file that grows meanwhile costs at most the cap.
//!
//! Symbolic links are followed: an operator may deploy by linking a build
//! into the folder. What the link points to must still be a regular file
//! within the cap, so a link to a device or a FIFO is rejected like one.

use std::io::Read;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

use super::error::PluginError;

/// The bytes of the plugin file at `path`, at most `max_bytes` of them.
///
/// # Errors
///
/// [`PluginError::Read`] if it cannot be opened or read,
/// [`PluginError::NotRegularFile`] if it is a FIFO, a device, a socket or a
/// folder, [`PluginError::TooLarge`] if it is, or grows while read, past
/// `max_bytes`.
pub fn read(path: &Path, max_bytes: u64) -> Result<Vec<u8>, PluginError> {
    let read_error = |source: std::io::Error| PluginError::Read {
        path: path.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| read_error(e.into()))?;
    let file = std::fs::File::from(fd);
    let stat = rustix::fs::fstat(&file).map_err(|e| read_error(e.into()))?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::RegularFile {
        return Err(PluginError::NotRegularFile {
            path: path.to_owned(),
            kind: describe(file_type),
        });
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    let too_large = |size: Option<u64>| PluginError::TooLarge {
        path: path.to_owned(),
        size,
        max_bytes,
    };
    if size > max_bytes {
        return Err(too_large(Some(size)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max_bytes {
        // It grew while being read: its true size is unknown.
        return Err(too_large(None));
    }
    Ok(bytes)
}

/// What a file that is not a regular file is, in words.
fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "a folder",
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Socket => "a socket",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_within_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"0123456789").expect("write");
        assert_eq!(read(&file, 10).expect("read"), b"0123456789");
        match read(&file, 9) {
            Err(PluginError::TooLarge {
                size: Some(10),
                max_bytes: 9,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_devices_fifos_and_folders_without_reading_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zero = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        let fifo = dir.path().join("fifo.wasm");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).expect("mkfifo");
        let folder = dir.path().join("folder.wasm");
        std::fs::create_dir(&folder).expect("mkdir");
        for (path, kind) in [
            (zero, "a character device"),
            (fifo, "a FIFO (named pipe)"),
            (folder, "a folder"),
        ] {
            match read(&path, 1 << 20) {
                Err(e @ PluginError::NotRegularFile { .. }) => {
                    assert!(e.to_string().contains(kind), "{e}");
                }
                other => panic!("{}: {other:?}", path.display()),
            }
        }
    }
}
