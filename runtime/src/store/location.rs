//! Where the mailbox lives: an SQLite file (the embedded default) or a
//! PostgreSQL database, from `store.path` / `--db` or `store.url` /
//! `--store`. A URL's password is kept apart so that nothing that displays
//! a location can show it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Where the mailbox lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresUrl),
}

/// A `postgres://` (or `postgresql://`) URL. `Display` and `Debug` hide the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: String,
}

impl PostgresUrl {
    /// The full URL, password included: for the database client only.
    pub(crate) fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", self.redacted())
    }
}

impl Location {
    /// Reads a store URL: `postgres://…`, `postgresql://…`, or `sqlite:PATH`
    /// (also `sqlite://PATH`).
    ///
    /// # Errors
    ///
    /// [`StoreError::BadUrl`] for any other scheme or an empty path.
    pub fn parse_url(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: redact_url(url),
            reason: reason.to_owned(),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.parse::<tokio_postgres::Config>().map_err(|e| bad(&e.to_string()))?;
            return Ok(Self::Postgres(PostgresUrl {
                url: url.to_owned(),
            }));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(bad("a sqlite: URL needs a file path, as in sqlite:mailroom.db"));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        Err(bad(
            "use postgres://user:password@host:port/database, or sqlite:PATH for a file",
        ))
    }

    /// The SQLite file, if the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => url.fmt(f),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            Self::Postgres(url) => write!(f, "Postgres({url})"),
        }
    }
}

/// `url` with the password of its user-info part (between `:` and the last
/// `@` before the host) replaced by `***`, and any `password=` query
/// parameter likewise.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end].to_owned();
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let params: Vec<String> = tail[q + 1..]
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db.example:5432/orders",
                "postgres://app:***@db.example:5432/orders",
            ),
            (
                "postgresql://app:p%40ss@db/orders?sslmode=disable&password=x",
                "postgresql://app:***@db/orders?sslmode=disable&password=***",
            ),
            ("postgres://app@db/orders", "postgres://app@db/orders"),
            ("postgres://db/orders", "postgres://db/orders"),
        ] {
            let location = Location::parse_url(url).expect(url);
            assert_eq!(location.to_string(), shown);
            assert!(!format!("{location:?}").contains("s3cret"));
        }
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        assert_eq!(
            Location::parse_url("sqlite:q.db").expect("url").sqlite_path(),
            Some(Path::new("q.db"))
        );
        assert_eq!(
            Location::parse_url("sqlite:///var/lib/m.db")
                .expect("url")
                .sqlite_path(),
            Some(Path::new("/var/lib/m.db"))
        );
        let err = Location::parse_url("mysql://u:pw@h/db").expect_err("refused");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
}
