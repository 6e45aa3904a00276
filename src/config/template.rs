//! Key templates: parse `{{ hashFiles 'pat' }}`, `{{ os }}`, `{{ arch }}`, `{{ libc }}`,
//! `{{ env.NAME }}` with character positions for errors, and expand them into key strings.
//!
//! Grammar (whitespace inside `{{ }}` is free; function names are case-sensitive):
//!
//! ```text
//! template  = { literal | "{{" ws expr ws "}}" }
//! literal   = any text without "{{" or "}}"  (a single "{" or "}" is literal)
//! expr      = "os" | "arch" | "libc" | "env." NAME | "hashFiles" 1*(ws pattern)
//! pattern   = "'" chars-but-' "'" | '"' chars-but-" '"'    (no escapes, not empty)
//! NAME      = [A-Za-z_][A-Za-z0-9_]*
//! ```
//!
//! There is no escape for a literal `{{` or `}}`: a key never needs one, and a stray brace
//! pair is far more likely a typo that would otherwise end up verbatim in every key.

use super::{did_you_mean, platform};
use crate::hash;
use std::path::Path;

/// What went wrong in a template; the caller adds the cache, the field and the position.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("`{{{{` is never closed by `}}}}`")]
    Unclosed,
    #[error("`}}}}` without an opening `{{{{`")]
    StrayClose,
    #[error("empty `{{{{ }}}}`: expected hashFiles, os, arch, libc or env.NAME")]
    Empty,
    #[error("expected a function name (hashFiles, os, arch, libc, env.NAME), found `{found}`")]
    ExpectedFunction { found: char },
    #[error("unknown function `{name}`{}", did_you_mean(.suggestion))]
    UnknownFunction {
        name: String,
        suggestion: Option<&'static str>,
    },
    #[error("`{name}` is not an environment variable reference: write env.NAME, NAME made of letters, digits and `_`")]
    EnvName { name: String },
    #[error("`{function}` takes no arguments, found `{found}`")]
    UnexpectedArgument { function: &'static str, found: char },
    #[error("quote {quote} is never closed")]
    UnterminatedQuote { quote: char },
    #[error("hashFiles needs at least one quoted pattern")]
    NoPatterns,
    #[error("expected a quoted pattern or `}}}}` after hashFiles, found `{found}`")]
    ExpectedPattern { found: char },
    #[error("empty hashFiles pattern")]
    EmptyPattern,
    #[error("{0}")]
    BadPattern(#[source] hash::Error),
    #[error("environment variable {name} is {}", if *.set { "empty" } else { "not set" })]
    EnvUnset { name: String, set: bool },
    #[error("hashFiles: {0}")]
    HashFiles(#[source] hash::Error),
}

impl crate::error::Hint for Problem {
    fn hint(&self) -> Option<String> {
        const FORMS: &str = "functions: {{ hashFiles 'pattern' ... }}, {{ os }}, {{ arch }}, {{ libc }}, {{ env.NAME }}";
        match self {
            Problem::Unclosed | Problem::StrayClose => Some(
                "templates use `{{ ... }}`; a key cannot contain a literal `{{` or `}}`".into(),
            ),
            Problem::Empty | Problem::ExpectedFunction { .. } | Problem::UnknownFunction { .. } => {
                Some(FORMS.into())
            }
            Problem::ExpectedPattern { .. } | Problem::NoPatterns | Problem::EmptyPattern => Some(
                "write {{ hashFiles 'package-lock.json' 'other/*.lock' }}: quoted patterns separated by spaces, no parentheses or commas"
                    .into(),
            ),
            Problem::EnvUnset { name, .. } => Some(format!(
                "set {name} (buildspec `env: variables:`) before cachectl runs; an empty value would make every build share one key"
            )),
            Problem::HashFiles(e) | Problem::BadPattern(e) => crate::error::Hint::hint(e),
            _ => None,
        }
    }
}

/// A template error at a 1-based character position.
#[derive(Debug)]
pub struct TemplateError {
    pub pos: usize,
    pub problem: Problem,
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Os,
    Arch,
    Libc,
    Env(String),
    HashFiles(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    part: Part,
    /// 1-based character position: the literal's first character, or the function name.
    pos: usize,
    /// Byte offset in the source where the segment starts (`{{` for expressions).
    start: usize,
}

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// What templates expand against: the working directory for `hashFiles`, the environment
/// for `env.NAME`, and the platform names.
pub struct TemplateContext<'a> {
    pub cwd: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub os: String,
    pub arch: String,
    pub libc: String,
}

impl<'a> TemplateContext<'a> {
    /// The context of this process on this machine (see [`platform::libc`] for how the C
    /// library is detected). Pass [`process_env`] as `env` to read the real environment.
    pub fn from_system(
        cwd: &'a Path,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> TemplateContext<'a> {
        TemplateContext {
            cwd,
            env,
            os: platform::os(),
            arch: platform::arch(),
            libc: platform::libc(),
        }
    }
}

/// The process environment, in the shape [`TemplateContext::env`] wants.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

const FUNCTIONS: &[&str] = &["hashFiles", "os", "arch", "libc", "env"];

/// Parses a template; errors carry the 1-based character position of the offending part.
pub fn parse(text: &str) -> Result<Template, TemplateError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut literal_at = 0;
    let mut i = 0;
    while let Some(c) = at(i) {
        let pair = at(i + 1) == Some(c);
        if c == '{' && pair {
            if !literal.is_empty() {
                segments.push(Segment {
                    part: Part::Literal(std::mem::take(&mut literal)),
                    pos: literal_at + 1,
                    start: chars[literal_at].0,
                });
            }
            let (segment, next) = parse_expr(&chars, i)?;
            segments.push(segment);
            i = next;
            continue;
        }
        if c == '}' && pair {
            return Err(TemplateError {
                pos: i + 1,
                problem: Problem::StrayClose,
            });
        }
        if literal.is_empty() {
            literal_at = i;
        }
        literal.push(c);
        i += 1;
    }
    if !literal.is_empty() {
        segments.push(Segment {
            part: Part::Literal(literal),
            pos: literal_at + 1,
            start: chars[literal_at].0,
        });
    }
    Ok(Template { segments })
}

/// Parses the expression whose `{{` is at char index `open`; returns it and the index after `}}`.
fn parse_expr(chars: &[(usize, char)], open: usize) -> Result<(Segment, usize), TemplateError> {
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let err = |i: usize, problem| TemplateError {
        pos: i + 1,
        problem,
    };
    let skip_ws = |mut i: usize| {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        i
    };
    // Where `}}` closes the expression, or what is wrong at `i` instead.
    let expect_close = |i: usize, function: &'static str| -> Result<usize, TemplateError> {
        let i = skip_ws(i);
        match (at(i), at(i + 1)) {
            (Some('}'), Some('}')) => Ok(i + 2),
            (None, _) | (Some('}'), None) => Err(err(open, Problem::Unclosed)),
            (Some('{'), Some('{')) => Err(err(open, Problem::Unclosed)),
            (Some(found), _) => Err(err(i, Problem::UnexpectedArgument { function, found })),
        }
    };

    let name_at = skip_ws(open + 2);
    let mut end = name_at;
    while at(end).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        end += 1;
    }
    let name: String = chars[name_at..end].iter().map(|&(_, c)| c).collect();
    if name.is_empty() {
        return Err(match (at(name_at), at(name_at + 1)) {
            (None, _) | (Some('{'), Some('{')) => err(open, Problem::Unclosed),
            (Some('}'), Some('}')) => err(open, Problem::Empty),
            (Some(found), _) => err(name_at, Problem::ExpectedFunction { found }),
        });
    }
    let segment = |part| Segment {
        part,
        pos: name_at + 1,
        start: chars[open].0,
    };
    let simple = |part, function| Ok((segment(part), expect_close(end, function)?));
    match name.as_str() {
        "os" => simple(Part::Os, "os"),
        "arch" => simple(Part::Arch, "arch"),
        "libc" => simple(Part::Libc, "libc"),
        "hashFiles" => {
            let (patterns, next) = parse_patterns(chars, open, name_at, end)?;
            Ok((segment(Part::HashFiles(patterns)), next))
        }
        _ if name == "env" || name.starts_with("env.") => {
            let var = &name[name.len().min(4)..];
            let valid = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(err(name_at, Problem::EnvName { name }));
            }
            simple(Part::Env(var.to_owned()), "env")
        }
        _ => Err(err(
            name_at,
            Problem::UnknownFunction {
                suggestion: super::suggest(name.split('.').next().unwrap_or_default(), FUNCTIONS)
                    .map(|s| if s == "env" { "env.NAME" } else { s }),
                name,
            },
        )),
    }
}

/// The quoted patterns of a hashFiles starting after its name (char index `i`).
fn parse_patterns(
    chars: &[(usize, char)],
    open: usize,
    name_at: usize,
    mut i: usize,
) -> Result<(Vec<String>, usize), TemplateError> {
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let err = |i: usize, problem| TemplateError {
        pos: i + 1,
        problem,
    };
    let mut patterns: Vec<String> = Vec::new();
    loop {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        match (at(i), at(i + 1)) {
            (None, _) | (Some('}'), None) | (Some('{'), Some('{')) => {
                return Err(err(open, Problem::Unclosed))
            }
            (Some('}'), Some('}')) => break,
            (Some(quote @ ('\'' | '"')), _) => {
                let body_at = i + 1;
                let close = (body_at..chars.len())
                    .find(|&j| chars[j].1 == quote)
                    .ok_or_else(|| err(i, Problem::UnterminatedQuote { quote }))?;
                let pattern: String = chars[body_at..close].iter().map(|&(_, c)| c).collect();
                check_pattern(&pattern).map_err(|problem| err(i, problem))?;
                patterns.push(pattern);
                i = close + 1;
            }
            (Some(found), _) => return Err(err(i, Problem::ExpectedPattern { found })),
        }
    }
    if patterns.is_empty() {
        return Err(err(name_at, Problem::NoPatterns));
    }
    if patterns.iter().all(|p| p.starts_with('!')) {
        return Err(err(name_at, Problem::BadPattern(hash::Error::OnlyExcludes)));
    }
    Ok((patterns, i + 2))
}

/// Rejects a pattern `hash-files` would reject, so the error comes at load time, not mid-build.
fn check_pattern(pattern: &str) -> Result<(), Problem> {
    let body = pattern.strip_prefix('!').unwrap_or(pattern);
    if body.is_empty() {
        return Err(Problem::EmptyPattern);
    }
    hash::Patterns::new(&[body])
        .map(|_| ())
        .map_err(Problem::BadPattern)
}

impl Template {
    /// The pieces, in order.
    #[cfg(test)]
    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        self.segments.iter().map(|s| &s.part)
    }

    /// Byte offset in the source text of the first `{{ hashFiles }}`, if any.
    pub fn first_hash_start(&self) -> Option<usize> {
        self.segments
            .iter()
            .find(|s| matches!(s.part, Part::HashFiles(_)))
            .map(|s| s.start)
    }

    /// The key this template names in `ctx`.
    pub fn expand(&self, ctx: &TemplateContext<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for seg in &self.segments {
            let err = |problem| TemplateError {
                pos: seg.pos,
                problem,
            };
            match &seg.part {
                Part::Literal(s) => out.push_str(s),
                Part::Os => out.push_str(&ctx.os),
                Part::Arch => out.push_str(&ctx.arch),
                Part::Libc => out.push_str(&ctx.libc),
                Part::Env(name) => match (ctx.env)(name) {
                    Some(v) if !v.is_empty() => out.push_str(&v),
                    v => {
                        return Err(err(Problem::EnvUnset {
                            name: name.clone(),
                            set: v.is_some(),
                        }))
                    }
                },
                Part::HashFiles(patterns) => {
                    let digest = hash::hash_patterns(ctx.cwd, patterns)
                        .map_err(|e| err(Problem::HashFiles(e)))?;
                    out.push_str(&digest);
                }
            }
        }
        Ok(out)
    }
}

/// The template text before its first `{{ hashFiles }}` (all of it if there is none, or if
/// it does not parse): the part of a key that stays put while lockfiles change.
pub fn prefix_before_hash(text: &str) -> &str {
    match parse(text).ok().and_then(|t| t.first_hash_start()) {
        Some(start) => &text[..start],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;

    fn ctx<'a>(cwd: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> TemplateContext<'a> {
        TemplateContext {
            cwd,
            env,
            os: "linux".into(),
            arch: "x64".into(),
            libc: "gnu".into(),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parse_success_table() {
        use Part::*;
        let pats = |p: &[&str]| HashFiles(p.iter().map(|s| s.to_string()).collect());
        let lit = |s: &str| Literal(s.into());
        let cases: Vec<(&str, &str, Vec<Part>)> = vec![
            ("empty", "", vec![]),
            ("literal only", "plain-key", vec![lit("plain-key")]),
            ("single braces are literal", "a{b}c", vec![lit("a{b}c")]),
            ("os", "{{os}}", vec![Os]),
            ("spaces", "{{   arch \t }}", vec![Arch]),
            ("libc", "x-{{ libc }}-y", vec![lit("x-"), Libc, lit("-y")]),
            ("env", "{{ env.HOME_1 }}", vec![Env("HOME_1".into())]),
            ("env underscore", "{{env._X}}", vec![Env("_X".into())]),
            (
                "hashFiles single quotes",
                "{{ hashFiles 'package-lock.json' }}",
                vec![pats(&["package-lock.json"])],
            ),
            (
                "hashFiles double quotes and many",
                r#"{{hashFiles "a.lock" '**/b.lock'   '!x/**'}}"#,
                vec![pats(&["a.lock", "**/b.lock", "!x/**"])],
            ),
            (
                "braces inside quotes",
                "{{ hashFiles 'a[}}]' }}",
                vec![pats(&["a[}}]"])],
            ),
            (
                "adjacent quoted patterns",
                "{{ hashFiles 'a''b' }}",
                vec![pats(&["a", "b"])],
            ),
            (
                "full npm key",
                "npm-{{ os }}-{{ arch }}-{{ hashFiles 'package-lock.json' }}",
                vec![
                    lit("npm-"),
                    Os,
                    lit("-"),
                    Arch,
                    lit("-"),
                    pats(&["package-lock.json"]),
                ],
            ),
            ("unicode literal", "ключ-{{os}}", vec![lit("ключ-"), Os]),
        ];
        for (name, input, want) in cases {
            let got = parse(input).unwrap_or_else(|e| panic!("case {name}: {:?}", e));
            assert_eq!(
                got.parts().cloned().collect::<Vec<_>>(),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn parse_failure_table() {
        // (name, template, 1-based position, a fragment of the message)
        let cases: &[(&str, &str, usize, &str)] = &[
            ("unclosed at end", "npm-{{ os", 5, "never closed"),
            ("unclosed bare", "{{", 1, "never closed"),
            ("single close brace", "a{{ os }", 2, "never closed"),
            ("nested open", "{{ os {{ arch }}", 1, "never closed"),
            (
                "open where name expected",
                "x{{ {{ os }}",
                2,
                "never closed",
            ),
            ("stray close", "npm-}}", 5, "without an opening"),
            (
                "stray close after expr",
                "{{ os }}}}",
                9,
                "without an opening",
            ),
            ("empty expression", "ab{{ }}", 3, "empty"),
            (
                "unknown function",
                "{{ hashfiles 'a' }}",
                4,
                "did you mean `hashFiles`",
            ),
            (
                "unknown function far",
                "k-{{ nope }}",
                6,
                "unknown function `nope`",
            ),
            (
                "env suggestion",
                "{{ evn.X }}",
                4,
                "did you mean `env.NAME`",
            ),
            ("not a name", "{{ 'a' }}", 4, "expected a function name"),
            ("env without name", "{{ env }}", 4, "env.NAME"),
            ("env empty name", "{{ env. }}", 4, "env.NAME"),
            ("env bad name", "{{ env.1X }}", 4, "env.NAME"),
            ("env dotted name", "{{ env.A.B }}", 4, "env.NAME"),
            (
                "argument to os",
                "{{ os 'x' }}",
                7,
                "`os` takes no arguments",
            ),
            (
                "argument to libc",
                "{{ libc x }}",
                9,
                "`libc` takes no arguments",
            ),
            (
                "unterminated single",
                "{{ hashFiles 'a }}",
                14,
                "quote ' is never closed",
            ),
            (
                "unterminated double",
                "k{{ hashFiles \"a }}",
                15,
                "quote \" is never closed",
            ),
            (
                "no patterns",
                "{{ hashFiles }}",
                4,
                "at least one quoted pattern",
            ),
            (
                "unquoted pattern",
                "{{ hashFiles a.lock }}",
                14,
                "expected a quoted pattern",
            ),
            ("parentheses", "{{ hashFiles('a') }}", 13, "found `(`"),
            ("comma", "{{ hashFiles 'a', 'b' }}", 17, "found `,`"),
            (
                "empty pattern",
                "{{ hashFiles '' }}",
                14,
                "empty hashFiles pattern",
            ),
            (
                "bang only",
                "{{ hashFiles 'a' '!' }}",
                18,
                "empty hashFiles pattern",
            ),
            (
                "only excludes",
                "{{ hashFiles '!a' }}",
                4,
                "only `!` exclusions",
            ),
            (
                "absolute pattern",
                "{{ hashFiles '/etc/x' }}",
                14,
                "absolute",
            ),
            ("parent pattern", "{{ hashFiles '../x' }}", 14, "climbs out"),
            ("bad glob", "{{ hashFiles 'a[' }}", 14, "invalid glob"),
            (
                "unclosed inside patterns",
                "{{ hashFiles 'a'",
                1,
                "never closed",
            ),
            (
                "position counts characters",
                "ключ-{{ nope }}",
                9,
                "unknown function",
            ),
        ];
        for (name, input, pos, fragment) in cases {
            let err = match parse(input) {
                Ok(t) => panic!("case {name}: parsed as {t:?}"),
                Err(e) => e,
            };
            let msg = err.problem.to_string();
            assert_eq!(err.pos, *pos, "case {name}: {msg}");
            assert!(msg.contains(fragment), "case {name}: {msg}");
        }
    }

    #[test]
    fn expand_table() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.lock"), "one").unwrap();
        let digest = hash::hash_patterns(dir.path(), &["a.lock"]).unwrap();
        let env = |k: &str| match k {
            "BRANCH" => Some("main".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let c = ctx(dir.path(), &env);
        // Ok(expansion) or Err((position, message fragment))
        type Want = Result<String, (usize, &'static str)>;
        let cases: &[(&str, &str, Want)] = &[
            ("literal", "k", Ok("k".into())),
            (
                "platform",
                "{{ os }}-{{ arch }}-{{ libc }}",
                Ok("linux-x64-gnu".into()),
            ),
            ("env", "b-{{ env.BRANCH }}", Ok("b-main".into())),
            (
                "hash",
                "h-{{ hashFiles 'a.lock' }}",
                Ok(format!("h-{digest}")),
            ),
            (
                "hash with missing second pattern",
                "{{ hashFiles 'a.lock' 'b.lock' }}",
                Ok(digest.clone()),
            ),
            ("env unset", "x-{{ env.NOPE }}", Err((6, "NOPE is not set"))),
            ("env empty", "{{ env.EMPTY }}", Err((4, "EMPTY is empty"))),
            (
                "hash no match",
                "k-{{ hashFiles 'missing.lock' }}",
                Err((6, "no file matches `missing.lock`")),
            ),
        ];
        for (name, input, want) in cases {
            let got = parse(input).unwrap().expand(&c);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "case {name}"),
                (Err(e), Err((pos, fragment))) => {
                    assert_eq!(e.pos, *pos, "case {name}");
                    let msg = e.problem.to_string();
                    assert!(msg.contains(fragment), "case {name}: {msg}");
                }
                (got, _) => panic!("case {name}: got {got:?}"),
            }
        }
    }

    #[test]
    fn prefix_before_hash_table() {
        let cases = [
            (
                "npm",
                "npm-{{ os }}-{{ arch }}-{{ hashFiles 'package-lock.json' }}",
                "npm-{{ os }}-{{ arch }}-",
            ),
            ("no hash", "k-{{ os }}", "k-{{ os }}"),
            ("hash first", "{{ hashFiles 'a' }}-x", ""),
            (
                "first of two",
                "a-{{hashFiles 'x'}}-{{hashFiles 'y'}}",
                "a-",
            ),
            ("unparseable", "a-{{ hashFiles", "a-{{ hashFiles"),
        ];
        for (name, input, want) in cases {
            assert_eq!(prefix_before_hash(input), want, "case {name}");
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in any::<String>()) {
            let _ = parse(&s);
            let _ = prefix_before_hash(&s);
        }

        #[test]
        fn parser_never_panics_on_template_like_text(
            s in r#"([{}'" !.a-zA-Z_*]|\{\{|\}\}|hashFiles|env\.|os|arch|libc){0,30}"#
        ) {
            if let Ok(t) = parse(&s) {
                // Whatever parses round-trips its structure and has a sane hash offset.
                if let Some(start) = t.first_hash_start() {
                    prop_assert!(s.is_char_boundary(start) && s[start..].starts_with("{{"));
                }
            }
        }

        #[test]
        fn literal_text_expands_to_itself(
            s in any::<String>().prop_filter("no braces pairs", |s| !s.contains("{{") && !s.contains("}}"))
        ) {
            let t = parse(&s).unwrap();
            let dir = std::env::temp_dir();
            prop_assert_eq!(t.expand(&ctx(&dir, &no_env)).unwrap(), s);
        }
    }
}
