//! Replays the fuzz corpus (`fuzz/corpus/<target>/*`, minimised by `cargo fuzz cmin`) and the
//! hand-written seeds (`fuzz/seeds/<target>/*`: realistic and hostile header values, job
//! documents) through the same invariant checks the fuzz targets run (`fuzz/checks.rs`), on
//! stable Rust, as an ordinary test.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::{fs, path::Path};

fn replay(target: &str, check: checks::Check) -> usize {
    replay_dir("corpus", target, check) + replay_dir("seeds", target, check)
}

fn replay_dir(kind: &str, target: &str, check: checks::Check) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: check failed on {} ({:?})",
            path.display(),
            String::from_utf8_lossy(&data)
        );
        count += 1;
    }
    assert!(count > 0, "{target}: no corpus files in {}", dir.display());
    count
}

#[test]
fn retry_after_corpus() {
    replay("retry_after", checks::check_retry_after);
}

#[test]
fn parse_reset_corpus() {
    replay("parse_reset", checks::check_parse_reset);
}

#[test]
fn rate_limit_headers_corpus() {
    replay("rate_limit_headers", checks::check_rate_limit_headers);
}

#[test]
fn should_retry_corpus() {
    replay("should_retry", checks::check_should_retry);
}

#[test]
fn fireworks_json_corpus() {
    replay("fireworks_json", checks::check_fireworks_json);
}

#[test]
fn every_target_has_a_corpus_directory() {
    for (target, check) in checks::TARGETS {
        assert!(replay(target, *check) > 0);
    }
    let dirs = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"))
        .unwrap()
        .count();
    assert_eq!(
        dirs,
        checks::TARGETS.len(),
        "a corpus directory without a target"
    );
}

/// The checks themselves catch violations (a check that never fails proves nothing).
#[test]
#[should_panic]
fn checks_detect_a_wait_above_the_cap() {
    // A backoff whose real cap is 30 s, checked against a claimed cap of 1 ms.
    checks::assert_backoff_respects_caps(
        &tower_reliability::JitteredBackoff::default(),
        std::time::Duration::from_millis(1),
        std::time::Duration::from_secs(120),
        None,
    );
}
