//! Fuzz target: `common::listing::parse_list_line` on one LIST line (Unix `ls -l` or MS-DOS
//! format). A parsed entry must format back (with `format_list_line`) to a line that parses to
//! the same entry, minus what the format leaves out.
//!
//! Input: four bytes that choose "now" (a time from 2001 to 2137, as a real clock gives), then
//! the line.
#![no_main]

use common::listing::{format_list_line, parse_list_line, EntryKind};
use ft_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let now = 1_000_000_000 + i64::from(input.u32());
    let line = String::from_utf8_lossy(input.rest());

    let Ok(Some(entry)) = parse_list_line(&line, now) else { return };
    assert!(entry.name != "." && entry.name != "..", "{line:?}");
    // A listing is one entry per line, so a name with CR or LF cannot survive formatting (the
    // server leaves such files out of its listings; a client splits the data at LF first).
    if entry.name.contains(['\r', '\n']) {
        return;
    }
    let formatted = format_list_line(&entry, now);
    let back = match parse_list_line(&formatted, now) {
        Ok(Some(back)) => back,
        other => panic!("{line:?} formats as {formatted:?}, which parses as {other:?}"),
    };
    // The format shows devices and the like as plain files, makes up a mode when none was known
    // and, like `ls`, shows only the day for times not within the last six months (or up to a
    // day ahead); everything else must survive.
    let mut expected = entry.clone();
    if let Some(t) = entry.modified {
        const SIX_MONTHS: i64 = 182 * 86_400;
        if !(t > now - SIX_MONTHS && t < now + 86_400) {
            expected.modified = Some(t - t.rem_euclid(86_400));
        }
    }
    if expected.kind == EntryKind::Other {
        expected.kind = EntryKind::File;
    }
    expected.mode = Some(entry.mode.unwrap_or(if entry.is_dir() { 0o755 } else { 0o644 }));
    assert_eq!(back, expected, "{line:?} (now {now}) formats as {formatted:?}");
});
