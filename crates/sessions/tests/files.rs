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
