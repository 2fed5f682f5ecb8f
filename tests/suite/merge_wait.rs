//! `surge merge --from DIR --wait`, as a Job's merge step runs it: it
//! starts before any shard has made the folder, so it waits for the folder
//! too, and says when none appeared.

use crate::common::*;

#[test]
fn a_merge_waits_for_its_folder_to_appear_and_says_when_none_did() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("shards");
    let out = dir.path().join("merged");
    let waited = surge(&[
        "merge",
        "--from",
        absent.to_str().unwrap(),
        "--wait",
        "1s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(waited.status.code(), Some(2), "{}", text(&waited));
    assert!(
        text(&waited).contains("no such folder, and none appeared within --wait 1s"),
        "{}",
        text(&waited)
    );
    // Without --wait, or when the path is a file, at once.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for (from, wait) in [(&absent, "0s"), (&file, "1s")] {
        let refused = surge(&[
            "merge",
            "--from",
            from.to_str().unwrap(),
            "--wait",
            wait,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
        assert!(
            text(&refused).contains("not a folder"),
            "{}",
            text(&refused)
        );
    }
}
