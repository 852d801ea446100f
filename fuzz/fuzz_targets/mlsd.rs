//! Fuzz target: `common::listing::parse_mlsx` on one MLSD/MLST fact line, plus the `modify` time
//! and `OPTS MLST` fact-list parsers it relies on. A parsed entry must format back (with
//! `format_mlsx`) to a line that parses to the same entry, minus what the format leaves out.
#![no_main]

use common::listing::{format_mdtm, format_mlsx, parse_mdtm, parse_mlsx, Facts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);

    if let Ok(entry) = parse_mlsx(&line) {
        assert!(!entry.name.is_empty(), "{line:?}");
        let formatted = format_mlsx(&entry, Facts::default());
        let back = parse_mlsx(&formatted).unwrap_or_else(|e| panic!("{line:?} formats as {formatted:?}: {e}"));
        // The format sends no size for directories and no unix.mode.
        let mut expected = entry.clone();
        if expected.is_dir() {
            expected.size = 0;
        }
        expected.mode = None;
        assert_eq!(back, expected, "{line:?} formats as {formatted:?}");
    }

    if let Some(t) = parse_mdtm(&line) {
        assert_eq!(parse_mdtm(&format_mdtm(t)), Some(t), "{line:?}");
    }

    let facts = Facts::from_opts(&line);
    assert_eq!(Facts::from_opts(&facts.selected_list()), facts, "{line:?}");
    let _ = facts.feat_list();
});
