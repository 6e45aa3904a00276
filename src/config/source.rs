//! `cachectl.toml` parsed twice over, for readers that must say where a problem is: the plain
//! values, and the span-carrying tree that gives each key's file position and file order.

use super::{suggest, Error, Location};
use toml::de::{DeTable, DeValue};

pub(super) fn kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// The parsed file twice over: as plain values to read, and as the span-carrying tree that
/// tells where each key sits (for error locations and for file order, which the plain
/// table, a BTreeMap, does not keep).
pub(super) struct Source<'a> {
    origin: &'a str,
    text: &'a str,
    pub(super) root: toml::Table,
    spans: DeTable<'a>,
}

impl<'a> Source<'a> {
    pub(super) fn new(text: &'a str, origin: &'a str) -> Result<Self, Error> {
        let syntax = |e: toml::de::Error, text: &str| Error::Syntax {
            at: Location {
                origin: origin.to_owned(),
                line_column: e.span().map(|s| line_column(text, s.start)),
            },
            message: e.message().trim_end().replace('\n', "; "),
        };
        let root: toml::Table = toml::from_str(text).map_err(|e| syntax(e, text))?;
        let spans = DeTable::parse(text)
            .map_err(|e| syntax(e, text))?
            .into_inner();
        Ok(Source {
            origin,
            text,
            root,
            spans,
        })
    }

    /// The span-tree value at `path` (table keys only).
    pub(super) fn de_value(&self, path: &[&str]) -> Option<&toml::Spanned<DeValue<'a>>> {
        let (last, parents) = path.split_last()?;
        let mut table = &self.spans;
        for p in parents {
            table = table.get(*p)?.get_ref().as_table()?;
        }
        table.get(*last)
    }

    pub(super) fn key_span(&self, path: &[&str]) -> Option<std::ops::Range<usize>> {
        let (last, parents) = path.split_last()?;
        let table = match parents {
            [] => &self.spans,
            _ => self.de_value(parents)?.get_ref().as_table()?,
        };
        table
            .iter()
            .find(|(k, _)| k.get_ref() == last)
            .map(|(k, _)| k.span())
    }

    pub(super) fn location(&self, offset: Option<usize>) -> Location {
        Location {
            origin: self.origin.to_owned(),
            line_column: offset.map(|o| line_column(self.text, o)),
        }
    }

    pub(super) fn key_location(&self, path: &[&str]) -> Location {
        self.location(self.key_span(path).map(|s| s.start))
    }

    pub(super) fn value_location(&self, path: &[&str]) -> Location {
        self.location(self.de_value(path).map(|v| v.span().start))
    }

    /// Where element `i` of the array at `path` starts (the array's start if unknown).
    pub(super) fn element_location(&self, path: &[&str], i: usize) -> Location {
        let element = self
            .de_value(path)
            .and_then(|v| v.get_ref().as_array())
            .and_then(|a| a.get(i));
        match element {
            Some(e) => self.location(Some(e.span().start)),
            None => self.value_location(path),
        }
    }

    /// A table's entries in file order (`path` is the table's own path).
    pub(super) fn ordered<'t>(
        &self,
        table: &'t toml::Table,
        path: &[&str],
    ) -> Vec<(&'t String, &'t toml::Value)> {
        let mut entries: Vec<_> = table
            .iter()
            .map(|(k, v)| {
                let full: Vec<&str> = path.iter().copied().chain([k.as_str()]).collect();
                (self.key_span(&full).map_or(usize::MAX, |s| s.start), k, v)
            })
            .collect();
        entries.sort_by_key(|&(start, k, _)| (start, k));
        entries.into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    pub(super) fn table<'t>(
        &self,
        value: &'t toml::Value,
        parent: &[&str],
        parent_label: &str,
        key: &str,
        form: &str,
    ) -> Result<&'t toml::Table, Error> {
        value.as_table().ok_or_else(|| {
            self.invalid(
                parent,
                key,
                parent_label,
                &format!("must be a table ({form}), not {}", kind(value)),
            )
        })
    }

    pub(super) fn invalid(&self, parent: &[&str], key: &str, label: &str, problem: &str) -> Error {
        let full: Vec<&str> = parent.iter().copied().chain([key]).collect();
        Error::Invalid {
            at: self.value_location(&full),
            table: label.to_owned(),
            key: key.to_owned(),
            problem: problem.to_owned(),
        }
    }

    pub(super) fn unknown_key(
        &self,
        parent: &[&str],
        key: &str,
        label: &str,
        allowed: &'static [&'static str],
    ) -> Error {
        let full: Vec<&str> = parent.iter().copied().chain([key]).collect();
        Error::UnknownKey {
            at: self.key_location(&full),
            table: label.to_owned(),
            key: key.to_owned(),
            suggestion: suggest(key, allowed),
            allowed,
        }
    }
}

/// 1-based line and character column of a byte offset.
pub(super) fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let count = |n: usize| u32::try_from(n + 1).unwrap_or(u32::MAX);
    (
        count(before.matches('\n').count()),
        count(before[line_start..].chars().count()),
    )
}
