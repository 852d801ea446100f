//! Directory listings and times: MLSD/MLST fact lines (RFC 3659 section 7), Unix `ls -l` style
//! LIST lines, and `MDTM` timestamps (RFC 3659 section 2.3). All times are UTC seconds since the
//! Unix epoch.

/// What kind of directory entry this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// The listed directory itself (MLSD `type=cdir`).
    CurrentDir,
    /// The parent of the listed directory (MLSD `type=pdir`).
    ParentDir,
    /// A symbolic link (LIST `l...` lines, MLSD `OS.unix=symlink`).
    Symlink,
    /// Something else (device, socket, an unknown MLSD type).
    Other,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name, without any directory part.
    pub name: String,
    /// File, directory, ...
    pub kind: EntryKind,
    /// Size in bytes (64-bit: files beyond 4 GiB are common).
    pub size: u64,
    /// Last modification, UTC seconds since the epoch, when known.
    pub modified: Option<i64>,
    /// Unix permission bits (`0o644`), when known; used for LIST lines.
    pub mode: Option<u32>,
    /// The RFC 3659 `perm` fact (`r`, `el`, `adfrw`...), when known.
    pub perm: Option<String>,
}

impl Entry {
    /// Is this a directory (or the cdir/pdir pseudo-entries)?
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir | EntryKind::CurrentDir | EntryKind::ParentDir)
    }
}

/// Which MLSx facts to send (RFC 3659 section 7.9, chosen with `OPTS MLST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// `type=`.
    pub kind: bool,
    /// `size=`.
    pub size: bool,
    /// `modify=`.
    pub modify: bool,
    /// `perm=`.
    pub perm: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts { kind: true, size: true, modify: true, perm: true }
    }
}

impl Facts {
    /// Selects facts from an `OPTS MLST type;size;` argument; unknown names are ignored and an
    /// empty argument selects none (RFC 3659 section 7.9).
    pub fn from_opts(arg: &str) -> Facts {
        let mut facts = Facts { kind: false, size: false, modify: false, perm: false };
        for name in arg.split(';').map(str::trim) {
            match name.to_ascii_lowercase().as_str() {
                "type" => facts.kind = true,
                "size" => facts.size = true,
                "modify" => facts.modify = true,
                "perm" => facts.perm = true,
                _ => {}
            }
        }
        facts
    }

    /// The fact list for FEAT and the `OPTS MLST` reply, selected ones marked with `*`:
    /// `type*;size*;modify*;perm*;`.
    pub fn feat_list(&self) -> String {
        let star = |on: bool| if on { "*" } else { "" };
        format!("type{};size{};modify{};perm{};", star(self.kind), star(self.size), star(self.modify), star(self.perm))
    }

    /// The selected names for the `OPTS MLST` reply: `type;size;`.
    pub fn selected_list(&self) -> String {
        let mut out = String::new();
        for (on, name) in [(self.kind, "type"), (self.size, "size"), (self.modify, "modify"), (self.perm, "perm")] {
            if on {
                out.push_str(name);
                out.push(';');
            }
        }
        out
    }
}

/// Formats one MLSD line or MLST fact line (without line ending):
/// `type=file;size=156;modify=20071029155301;perm=r; name`. Every fact ends in `;` and exactly
/// one space precedes the name.
pub fn format_mlsx(entry: &Entry, facts: Facts) -> String {
    let mut out = String::new();
    if facts.kind {
        out.push_str(match entry.kind {
            EntryKind::File => "type=file;",
            EntryKind::Dir => "type=dir;",
            EntryKind::CurrentDir => "type=cdir;",
            EntryKind::ParentDir => "type=pdir;",
            EntryKind::Symlink => "type=OS.unix=symlink;",
            EntryKind::Other => "type=OS.unix=special;",
        });
    }
    if facts.size && !entry.is_dir() {
        out.push_str(&format!("size={};", entry.size));
    }
    if facts.modify {
        if let Some(t) = entry.modified {
            out.push_str(&format!("modify={};", format_mdtm(t)));
        }
    }
    if facts.perm {
        if let Some(p) = &entry.perm {
            out.push_str(&format!("perm={p};"));
        }
    }
    out.push(' ');
    out.push_str(&entry.name);
    out
}

/// Why a listing line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// An MLSx line without the space before the name, or a fact without `=`.
    #[error("malformed MLSD line")]
    Mlsx,
    /// A LIST line in no format we know.
    #[error("unrecognised LIST line")]
    List,
}

/// Parses one MLSD line or MLST fact line (a leading space, as MLST sends, is allowed).
pub fn parse_mlsx(line: &str) -> Result<Entry, ListingError> {
    let line = line.strip_prefix(' ').filter(|l| l.contains("=")).unwrap_or(line);
    let (facts, name) = line.split_once(' ').ok_or(ListingError::Mlsx)?;
    if name.is_empty() {
        return Err(ListingError::Mlsx);
    }
    let mut entry =
        Entry { name: name.to_owned(), kind: EntryKind::File, size: 0, modified: None, mode: None, perm: None };
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=').ok_or(ListingError::Mlsx)?;
        match key.to_ascii_lowercase().as_str() {
            "type" => {
                entry.kind = match value.to_ascii_lowercase().as_str() {
                    "file" => EntryKind::File,
                    "dir" => EntryKind::Dir,
                    "cdir" => EntryKind::CurrentDir,
                    "pdir" => EntryKind::ParentDir,
                    "os.unix=symlink" | "os.unix=slink" => EntryKind::Symlink,
                    v if v.starts_with("os.unix=slink") || v.starts_with("os.unix=symlink") => EntryKind::Symlink,
                    _ => EntryKind::Other,
                }
            }
            "size" | "sizd" => entry.size = value.parse().map_err(|_| ListingError::Mlsx)?,
            "modify" => entry.modified = parse_mdtm(value),
            "perm" => entry.perm = Some(value.to_owned()),
            "unix.mode" => entry.mode = u32::from_str_radix(value.trim_start_matches('0'), 8).ok().or(Some(0)),
            _ => {}
        }
    }
    Ok(entry)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Formats one `ls -l` style LIST line (without line ending), the format every FTP client
/// parses: `-rw-r--r--    1 ftp      ftp          4096 Mar 14 09:26 name`.
///
/// Times within the last six months (or up to a day ahead) show `HH:MM`, older ones the year,
/// as `ls` does. `now` is the current time in UTC seconds.
pub fn format_list_line(entry: &Entry, now: i64) -> String {
    let type_char = match entry.kind {
        EntryKind::Dir | EntryKind::CurrentDir | EntryKind::ParentDir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::File => '-',
        EntryKind::Other => entry
            .mode
            .and_then(|mode| SPECIAL_TYPES.iter().find(|&&(_, bits)| mode & S_IFMT == bits))
            .map_or('-', |&(c, _)| c as char),
    };
    let mode = entry.mode.unwrap_or(if entry.is_dir() { 0o755 } else { 0o644 });
    let mut perms = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let t = entry.modified.unwrap_or(0);
    let (y, m, d, hh, mm, _) = civil_from_unix(t);
    const SIX_MONTHS: i64 = 182 * 86_400;
    let date = if t > now - SIX_MONTHS && t < now + 86_400 {
        format!("{} {d:02} {hh:02}:{mm:02}", MONTHS[m as usize - 1])
    } else {
        format!("{} {d:02}  {y}", MONTHS[m as usize - 1])
    };
    let nlink = if entry.is_dir() { 2 } else { 1 };
    format!("{type_char}{perms} {nlink:>4} ftp      ftp      {:>12} {date} {}", entry.size, entry.name)
}

/// Parses one LIST line in Unix `ls -l` format (with or without the group column) or in the
/// MS-DOS/IIS format. Returns `Ok(None)` for lines that carry no entry (`total 12`, `.`, `..`).
/// `now` decides the year of `Mon DD HH:MM` dates (the latest such date not after tomorrow).
pub fn parse_list_line(line: &str, now: i64) -> Result<Option<Entry>, ListingError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() || line.starts_with("total ") {
        return Ok(None);
    }
    let entry = match line.as_bytes()[0] {
        b'-' | b'd' | b'l' | b'b' | b'c' | b'p' | b's' => parse_unix_line(line, now)?,
        b'0'..=b'9' => parse_dos_line(line)?,
        _ => return Err(ListingError::List),
    };
    if entry.name == "." || entry.name == ".." {
        return Ok(None);
    }
    Ok(Some(entry))
}

/// Splits off `n` whitespace-separated tokens and returns them with the rest of the line after
/// exactly one separating space (names may begin with spaces).
fn tokens(line: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut out = Vec::with_capacity(n);
    let mut rest = line;
    for _ in 0..n {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ')?;
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    Some((out, rest.strip_prefix(' ')?))
}

/// The file-type bits of a Unix mode (`st_mode & S_IFMT`).
const S_IFMT: u32 = 0o170000;

/// The `ls -l` type letters of the kinds that are [`EntryKind::Other`], and their mode bits
/// (kept in [`Entry::mode`] so that a FIFO or device lists as one, as `ls` and vsftpd show it).
const SPECIAL_TYPES: [(u8, u32); 4] = [(b'p', 0o010000), (b'c', 0o020000), (b'b', 0o060000), (b's', 0o140000)];

fn parse_unix_line(line: &str, now: i64) -> Result<Entry, ListingError> {
    let kind = match line.as_bytes()[0] {
        b'-' => EntryKind::File,
        b'd' => EntryKind::Dir,
        b'l' => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    // perms links owner group size month day time name, or without the group column.
    for n in [8usize, 7] {
        let Some((t, name)) = tokens(line, n) else { continue };
        let (size, month, day, time) = (t[n - 4], t[n - 3], t[n - 2], t[n - 1]);
        let Ok(size) = size.parse::<u64>() else { continue };
        let Some(month) = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month)) else { continue };
        let Ok(day) = day.parse::<u32>() else { continue };
        let Some(modified) = parse_ls_date(month as u32 + 1, day, time, now) else { continue };
        let name = match kind {
            EntryKind::Symlink => name.split_once(" -> ").map_or(name, |(n, _)| n),
            _ => name,
        };
        let type_bits = SPECIAL_TYPES.iter().find(|&&(c, _)| c == line.as_bytes()[0]).map_or(0, |&(_, bits)| bits);
        let mode = line.get(1..10).and_then(parse_mode).map(|mode| mode | type_bits);
        return Ok(Entry { name: name.to_owned(), kind, size, modified: Some(modified), mode, perm: None });
    }
    Err(ListingError::List)
}

fn parse_mode(perms: &str) -> Option<u32> {
    let b = perms.as_bytes();
    if b.len() != 9 {
        return None;
    }
    let mut mode = 0;
    for (i, &c) in b.iter().enumerate() {
        if c != b'-' {
            mode |= 1 << (8 - i);
        }
    }
    Some(mode)
}

fn parse_ls_date(month: u32, day: u32, time_or_year: &str, now: i64) -> Option<i64> {
    if !(1..=31).contains(&day) {
        return None;
    }
    if let Some((h, m)) = time_or_year.split_once(':') {
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        if h > 23 || m > 59 {
            return None;
        }
        // `ls` shows HH:MM for dates within the last six months (or a little ahead), so the year
        // is the latest one that does not put the date after tomorrow: on 31 December,
        // "Jan 01 06:00" is tomorrow, next year.
        let (this_year, ..) = civil_from_unix(now);
        [this_year + 1, this_year, this_year - 1]
            .into_iter()
            .map(|y| unix_from_civil(y, month, day, h, m, 0))
            .find(|&t| t <= now + 86_400)
    } else {
        // A four-digit year keeps the date arithmetic far from overflow on hostile input.
        let y: i64 = time_or_year.parse().ok().filter(|y| (1000..=9999).contains(y))?;
        Some(unix_from_civil(y, month, day, 0, 0, 0))
    }
}

fn parse_dos_line(line: &str) -> Result<Entry, ListingError> {
    // 01-31-24  10:00AM       <DIR>          docs
    // 01-31-24  10:00PM                 1234 a file.txt
    let (t, name) = tokens(line, 3).ok_or(ListingError::List)?;
    let name = name.trim_start_matches(' ');
    let date: Vec<u32> = t[0].split('-').filter_map(|p| p.parse().ok()).collect();
    let [mon, day, yy] = date.as_slice() else { return Err(ListingError::List) };
    let year = if *yy < 70 {
        2000 + *yy as i64
    } else if *yy < 100 {
        1900 + *yy as i64
    } else {
        *yy as i64
    };
    // Four-digit years only, as for Unix lines: keeps the date arithmetic far from overflow.
    if !(1000..=9999).contains(&year) {
        return Err(ListingError::List);
    }
    let time = t[1].to_ascii_uppercase();
    let pm = time.ends_with("PM");
    let (h, m) = time.trim_end_matches(['A', 'M', 'P']).split_once(':').ok_or(ListingError::List)?;
    let (mut h, m): (u32, u32) =
        (h.parse().map_err(|_| ListingError::List)?, m.parse().map_err(|_| ListingError::List)?);
    if pm && h < 12 {
        h += 12;
    } else if !pm && h == 12 && time.ends_with("AM") {
        h = 0;
    }
    let (kind, size) = if t[2].eq_ignore_ascii_case("<DIR>") {
        (EntryKind::Dir, 0)
    } else {
        (EntryKind::File, t[2].parse().map_err(|_| ListingError::List)?)
    };
    if name.is_empty() || !(1..=12).contains(mon) || !(1..=31).contains(day) || h > 23 || m > 59 {
        return Err(ListingError::List);
    }
    let modified = Some(unix_from_civil(year, *mon, *day, h, m, 0));
    Ok(Entry { name: name.to_owned(), kind, size, modified, mode: None, perm: None })
}

/// Formats a time as `YYYYMMDDHHMMSS` (UTC), the `MDTM` reply and `modify` fact.
pub fn format_mdtm(t: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_unix(t);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// Parses `YYYYMMDDHHMMSS` with optional fractional seconds (`.sss`), as sent by `MDTM` and the
/// `modify` fact. Fractions are dropped.
pub fn parse_mdtm(text: &str) -> Option<i64> {
    let text = text.trim();
    let main =
        text.split_once('.').map_or(text, |(a, frac)| if frac.bytes().all(|b| b.is_ascii_digit()) { a } else { "" });
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: core::ops::Range<usize>| main[r].parse::<u32>().ok();
    let (y, mo, d, h, mi, s) = (n(0..4)?, n(4..6)?, n(6..8)?, n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(unix_from_civil(i64::from(y), mo, d, h, mi, s))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_from_civil(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)
}

/// Splits UTC seconds since the epoch into (year, month, day, hour, minute, second).
pub fn civil_from_unix(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, (secs / 3600) as u32, (secs % 3600 / 60) as u32, (secs % 60) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-14 09:26:00 UTC
    const T: i64 = 1_710_408_360;

    fn file(name: &str, size: u64, modified: i64) -> Entry {
        Entry {
            name: name.into(),
            kind: EntryKind::File,
            size,
            modified: Some(modified),
            mode: Some(0o644),
            perm: Some("r".into()),
        }
    }

    #[test]
    fn formats_and_parses_times() {
        for (t, text) in [
            (0, "19700101000000"),
            (T, "20240314092600"),
            (951_782_400, "20000229000000"),
            (4_102_444_799, "20991231235959"),
        ] {
            assert_eq!(format_mdtm(t), text);
            assert_eq!(parse_mdtm(text), Some(t));
        }
        assert_eq!(parse_mdtm("20240314092600.123"), Some(T));
        assert_eq!(parse_mdtm("2024031409260"), None);
        assert_eq!(parse_mdtm("20241314092600"), None);
        assert_eq!(parse_mdtm("20240314092600.x"), None);
    }

    #[test]
    fn formats_mlsx_lines() {
        let f = file("a file.txt", 5_368_709_120, T);
        assert_eq!(
            format_mlsx(&f, Facts::default()),
            "type=file;size=5368709120;modify=20240314092600;perm=r; a file.txt"
        );
        let sel = Facts::from_opts("size;type;");
        assert_eq!(format_mlsx(&f, sel), "type=file;size=5368709120; a file.txt");
        assert_eq!(sel.selected_list(), "type;size;");
        assert_eq!(Facts::default().feat_list(), "type*;size*;modify*;perm*;");
        let d = Entry { kind: EntryKind::Dir, perm: Some("el".into()), ..file("docs", 4096, T) };
        assert_eq!(format_mlsx(&d, Facts::default()), "type=dir;modify=20240314092600;perm=el; docs");
    }

    #[test]
    fn parses_mlsx_lines() {
        let e = parse_mlsx("type=file;size=156;modify=20071029155301;perm=r; name with  spaces ").unwrap();
        assert_eq!((e.kind, e.size, e.name.as_str()), (EntryKind::File, 156, "name with  spaces "));
        assert_eq!(e.modified, parse_mdtm("20071029155301"));
        // MLST sends the fact line with a leading space.
        assert_eq!(parse_mlsx(" Type=cdir;Modify=20071029155301; /pub").unwrap().kind, EntryKind::CurrentDir);
        assert_eq!(parse_mlsx("type=OS.unix=slink:/x; l").unwrap().kind, EntryKind::Symlink);
        assert_eq!(parse_mlsx("nospace"), Err(ListingError::Mlsx));
        assert_eq!(parse_mlsx("type=file;size=x; a"), Err(ListingError::Mlsx));
        for entry in [file("ünï 🚀", 0, T), Entry { kind: EntryKind::Dir, size: 0, ..file(" lead", 0, T) }] {
            let mut back = parse_mlsx(&format_mlsx(&entry, Facts::default())).unwrap();
            back.mode = entry.mode;
            assert_eq!(back, entry);
        }
    }

    #[test]
    fn formats_list_lines() {
        let now = T + 3600;
        assert_eq!(
            format_list_line(&file("a b", 4096, T), now),
            "-rw-r--r--    1 ftp      ftp              4096 Mar 14 09:26 a b"
        );
        let old = file("old", 1, 0);
        assert_eq!(format_list_line(&old, now), "-rw-r--r--    1 ftp      ftp                 1 Jan 01  1970 old");
        let d = Entry { kind: EntryKind::Dir, mode: Some(0o755), ..file("d", 4096, T) };
        assert!(format_list_line(&d, now).starts_with("drwxr-xr-x    2 "));
        let fifo = Entry { kind: EntryKind::Other, mode: Some(0o010644), ..file("p", 0, T) };
        assert!(format_list_line(&fifo, now).starts_with("prw-r--r-- "));
    }

    #[test]
    fn parses_list_lines() {
        let now = T + 3600;
        for entry in [
            file("a b", 4096, T),
            file("old", 1, 0),
            file("  lead", 5_368_709_120, T),
            Entry { kind: EntryKind::Dir, mode: Some(0o755), ..file("d", 4096, T) },
            // A FIFO and a character device list with their `ls` letters and parse back.
            Entry { kind: EntryKind::Other, mode: Some(0o010600), ..file("fifo", 0, T) },
            Entry { kind: EntryKind::Other, mode: Some(0o020666), ..file("zero", 0, T) },
        ] {
            let mut back = parse_list_line(&format_list_line(&entry, now), now).unwrap().unwrap();
            back.perm = entry.perm.clone();
            assert_eq!(back, entry);
        }
        let e = parse_list_line("lrwxrwxrwx 1 0 0 7 Jan 02  2020 link -> target", now).unwrap().unwrap();
        assert_eq!((e.kind, e.name.as_str()), (EntryKind::Symlink, "link"));
        // No group column (some servers).
        let e = parse_list_line("-rw-r--r-- 1 owner 12 Mar 14 09:26 x", now).unwrap().unwrap();
        assert_eq!((e.size, e.name.as_str()), (12, "x"));
        // A date in December seen in January belongs to last year, and on New Year's Eve a
        // time on 1 January is tomorrow, next year.
        let eve = unix_from_civil(2024, 12, 31, 12, 0, 0);
        let e = parse_list_line("-rw-r--r-- 1 a b 1 Jan 01 06:00 y", eve).unwrap().unwrap();
        assert_eq!(e.modified, Some(unix_from_civil(2025, 1, 1, 6, 0, 0)));
        // Found by fuzzing: a huge year overflowed the date arithmetic.
        assert_eq!(parse_list_line("-rw-r--r-- 1 a b 1 Jan 01 999999999999 x", eve), Err(ListingError::List));
        let jan = unix_from_civil(2025, 1, 5, 0, 0, 0);
        let e = parse_list_line("-rw-r--r-- 1 a b 1 Dec 31 23:00 y", jan).unwrap().unwrap();
        assert_eq!(e.modified, Some(unix_from_civil(2024, 12, 31, 23, 0, 0)));
        assert_eq!(parse_list_line("total 12", now), Ok(None));
        assert_eq!(parse_list_line("drwxr-xr-x 2 a b 4096 Mar 14 09:26 ..", now), Ok(None));
        let e = parse_list_line("03-14-24  09:26PM       <DIR>          my docs", now).unwrap().unwrap();
        assert_eq!((e.kind, e.name.as_str()), (EntryKind::Dir, "my docs"));
        let e = parse_list_line("03-14-24  09:26AM                 1234 f.txt", now).unwrap().unwrap();
        assert_eq!((e.size, e.modified), (1234, Some(unix_from_civil(2024, 3, 14, 9, 26, 0))));
        assert_eq!(parse_list_line("garbage", now), Err(ListingError::List));
    }

    proptest::proptest! {
        #[test]
        fn never_panic(s in "\\PC{0,80}") {
            let _ = parse_mlsx(&s);
            let _ = parse_list_line(&s, T);
            let _ = parse_mdtm(&s);
        }

        #[test]
        fn times_round_trip(t in 0i64..253_402_300_799) {
            proptest::prop_assert_eq!(parse_mdtm(&format_mdtm(t)), Some(t));
        }
    }
}
