//! libpq's connection service file (`service=name`): named groups of connection
//! parameters in `pg_service.conf`, looked up where libpq looks.
//!
//! Order: `PGSERVICEFILE` (else `~/.pg_service.conf`) first; only when the service is not
//! there, `PGSYSCONFDIR/pg_service.conf` (Debian's libpq defaults to /etc/postgresql-common).
//! The caller lets keys given explicitly win over the file's.

use std::path::{Path, PathBuf};

const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";

/// The `key=value` pairs of service `name`; `Err` is libpq's wording.
pub fn lookup(name: &str) -> Result<Vec<(String, String)>, String> {
    let user_file = match std::env::var_os("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => std::env::var_os("HOME").map(|h| Path::new(&h).join(".pg_service.conf")),
    };
    let sysconfdir = std::env::var_os("PGSYSCONFDIR").map(PathBuf::from).unwrap_or_else(|| DEFAULT_SYSCONFDIR.into());
    for file in user_file.into_iter().chain([sysconfdir.join("pg_service.conf")]) {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("service file \"{}\" could not be read: {e}", file.display())),
        };
        if let Some(found) = parse(&text, name, &file)? {
            return Ok(found);
        }
    }
    Err(format!("definition of service \"{name}\" not found"))
}

/// Service `name`'s pairs in one file's text (None: the file has no such section).
pub fn parse(text: &str, name: &str, file: &Path) -> Result<Option<Vec<(String, String)>>, String> {
    let mut in_section = false;
    let mut found = None::<Vec<(String, String)>>;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found.is_some() && in_section {
                break;
            }
            in_section = section.strip_suffix(']').map(str::trim) == Some(name);
            if in_section {
                found = Some(Vec::new());
            }
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("syntax error in service file \"{}\", line {}", file.display(), i + 1));
        };
        let key = key.trim();
        if key == "service" {
            return Err(format!(
                "nested service specifications not supported in service file \"{}\", line {}",
                file.display(),
                i + 1
            ));
        }
        if let Some(pairs) = found.as_mut() {
            pairs.push((key.to_string(), value.trim().to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::path::Path;

    #[test]
    fn sections_comments_and_errors() {
        let text = "# c\n[a]\nhost=h1\n port = 5 \n[b]\nhost=h2\n";
        let f = Path::new("f");
        assert_eq!(
            parse(text, "a", f).unwrap().unwrap(),
            vec![("host".into(), "h1".into()), ("port".into(), "5".into())]
        );
        assert_eq!(parse(text, "b", f).unwrap().unwrap(), vec![("host".into(), "h2".into())]);
        assert_eq!(parse(text, "c", f).unwrap(), None);
        assert!(parse("[a]\nnonsense\n", "a", f).unwrap_err().contains("line 2"));
        assert!(parse("[a]\nservice=b\n", "a", f).unwrap_err().contains("nested"));
    }
}
