//! The workspace seen from outside the jail: paths resolve beneath it,
//! whatever links the code planted.

use std::os::unix::fs::{MetadataExt, symlink};

use sbx_sessions::files::{FilesError, Found, Workspace};

#[test]
fn writes_are_owned_by_the_session_and_links_never_lead_out() {
    let root = tempfile::tempdir().unwrap();
    let workspace = Workspace::open(root.path(), 3_200_000).unwrap();
    let mut file = workspace.create("data/deep/in.csv").unwrap();
    std::io::Write::write_all(&mut file, b"a,b\n").unwrap();
    for made in ["data", "data/deep", "data/deep/in.csv"] {
        let owner = std::fs::metadata(root.path().join(made)).unwrap().uid();
        assert_eq!(owner, 3_200_000, "{made}");
    }
    match workspace.get("data/deep/in.csv").unwrap() {
        Found::File { size, .. } => assert_eq!(size, 4),
        Found::Directory(_) => panic!("a file"),
    }
    symlink("/etc", root.path().join("etc")).unwrap();
    symlink("data/deep", root.path().join("inside")).unwrap();
    assert!(matches!(
        workspace.get("etc/passwd"),
        Err(FilesError::Outside(_))
    ));
    assert!(matches!(
        workspace.create("etc/sbx-escape"),
        Err(FilesError::Outside(_))
    ));
    assert!(!std::path::Path::new("/etc/sbx-escape").exists());
    assert!(matches!(
        workspace.get("inside/in.csv"),
        Ok(Found::File { .. })
    ));
    assert!(matches!(workspace.get("../x"), Err(FilesError::BadPath(_))));
    match workspace.get("").unwrap() {
        Found::Directory(entries) => {
            let names: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
            assert_eq!(
                names,
                [
                    ("data", "directory"),
                    ("etc", "symlink"),
                    ("inside", "symlink")
                ]
            );
        }
        Found::File { .. } => panic!("a directory"),
    }
    workspace.remove("etc").unwrap();
    assert!(
        std::path::Path::new("/etc/passwd").exists(),
        "the link went, not its target"
    );
    workspace.remove("data").unwrap();
    assert!(matches!(
        workspace.get("data"),
        Err(FilesError::NotFound(_))
    ));
}

#[test]
fn a_packed_workspace_unpacks_elsewhere_without_its_links() {
    let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = Workspace::open(from.path(), 3_200_001).unwrap();
    std::io::Write::write_all(&mut source.create("notes/a.txt").unwrap(), b"alpha").unwrap();
    std::io::Write::write_all(&mut source.create("run.sh").unwrap(), b"#!/bin/sh\n").unwrap();
    std::fs::create_dir(from.path().join("empty")).unwrap();
    symlink("/etc/passwd", from.path().join("link")).unwrap();
    let mut archive = Vec::new();
    let packed = source.pack(&mut archive).unwrap();
    assert_eq!((packed.files, packed.bytes), (2, 15));

    let target = Workspace::open(to.path(), 3_200_002).unwrap();
    assert_eq!(target.unpack(archive.as_slice()).unwrap(), packed);
    assert_eq!(
        std::fs::read(to.path().join("notes/a.txt")).unwrap(),
        b"alpha"
    );
    assert!(to.path().join("empty").is_dir());
    assert!(
        !to.path().join("link").exists()
            && std::fs::symlink_metadata(to.path().join("link")).is_err()
    );
    let owner = std::fs::metadata(to.path().join("notes")).unwrap().uid();
    assert_eq!(owner, 3_200_002);

    // An archive naming a path outside is refused, nothing written there.
    let mut hostile = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_entry_type(tar::EntryType::Regular);
    let name = b"../escaped";
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    hostile.append(&header, &b"x"[..]).unwrap();
    let hostile = hostile.into_inner().unwrap();
    assert!(matches!(
        target.unpack(hostile.as_slice()),
        Err(FilesError::BadPath(_))
    ));
    assert!(!to.path().parent().unwrap().join("escaped").exists());
}

#[test]
fn a_workspace_is_a_filesystem_of_its_size() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("ws");
    sbx_sessions::workspace::make(&root, 3_200_003, 64 * 1024).unwrap();
    let workspace = Workspace::open(&root, 3_200_003).unwrap();
    std::io::Write::write_all(&mut workspace.create("a.txt").unwrap(), b"kept").unwrap();
    match workspace.get("a.txt").unwrap() {
        Found::File { mut file, size } => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).unwrap();
            assert_eq!((size, text.as_str()), (4, "kept"));
        }
        Found::Directory(_) => panic!("a file"),
    }
    let too_big =
        std::io::Write::write_all(&mut workspace.create("big").unwrap(), &[0; 128 * 1024]);
    assert_eq!(too_big.unwrap_err().raw_os_error(), Some(28), "ENOSPC");
    sbx_sessions::workspace::remove(&root).unwrap();
    assert!(!root.exists());
}
