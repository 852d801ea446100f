//! Fuzz target: `common::path::VirtualPath::join`, the one place a client's path argument is
//! resolved. Whatever the current directory and the argument, the result has no empty, `.` or
//! `..` component (so it cannot climb above `/`), and it agrees with resolving the joined text
//! from the root.
//!
//! Input: one byte giving the length of the current directory's text, that text, then the
//! argument.
#![no_main]

use common::path::{unquote_257, PathError, VirtualPath};
use ft_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let len = usize::from(input.byte());
    let cwd_text = String::from_utf8_lossy(input.take(len)).into_owned();
    let arg = String::from_utf8_lossy(input.rest()).into_owned();

    let _ = unquote_257(&arg);
    let Ok(cwd) = VirtualPath::parse(&cwd_text) else { return };
    check(&cwd);

    let joined = cwd.join(&arg);
    // An absolute argument ignores the current directory; a relative one means the same as the
    // two texts joined with a slash.
    let same =
        if arg.starts_with('/') { VirtualPath::root().join(&arg) } else { VirtualPath::parse(&format!("{cwd}/{arg}")) };
    assert_eq!(joined, same, "{cwd} + {arg:?}");

    match joined {
        Ok(path) => {
            check(&path);
            let parent = path.parent();
            check(&parent);
            if let Some(name) = path.file_name() {
                assert_eq!(parent.join(name).as_ref(), Ok(&path));
            } else {
                assert!(path.is_root());
            }
        }
        Err(PathError::ControlCharacter) => assert!(arg.contains(['\0', '\r', '\n']), "{arg:?}"),
        Err(PathError::ComponentTooLong) => assert!(arg.split('/').any(|c| c.len() > 255), "{arg:?}"),
    }
});

/// The `VirtualPath` invariant, and the text forms that must round trip.
fn check(path: &VirtualPath) {
    for c in path.components() {
        assert!(!c.is_empty() && c != "." && c != "..", "component {c:?} in {path:?}");
        assert!(!c.contains(['/', '\0', '\r', '\n']), "component {c:?} in {path:?}");
        assert!(c.len() <= 255, "component of {} bytes in {path:?}", c.len());
    }
    let text = path.to_string();
    assert!(text.starts_with('/'));
    assert_eq!(VirtualPath::parse(&text).as_ref(), Ok(path), "{text:?}");
    let reply = format!("{} is the current directory", path.quoted());
    assert_eq!(unquote_257(&reply), Some(text), "{reply:?}");
}
