//! Glob patterns where `*` matches any run of characters: model patterns, `$like`, `$match`.

use memchr::memmem::Finder;

/// A pattern compiled once: its literal runs, each with a precomputed substring searcher (a
/// `str::find` builds its searcher on every call; `$match` tries up to a few dozen patterns per
/// value).
#[derive(Debug, Clone)]
pub struct Glob {
    parts: Vec<Finder<'static>>,
    anchored_start: bool,
    anchored_end: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob {
            parts: pattern.split('*').map(|p| Finder::new(p).into_owned()).collect(),
            anchored_start: !pattern.starts_with('*'),
            anchored_end: !pattern.ends_with('*'),
        }
    }

    /// How specific the pattern is: exact patterns first, then by the number of literal
    /// characters (`m-2.5-pro*` before `m-2.5-*` before `m-*` before `*`).
    pub fn specificity(&self) -> (bool, usize) {
        (self.parts.len() == 1, self.parts.iter().map(|p| p.needle().len()).sum())
    }

    /// The byte every match begins with, when the pattern begins with a literal.
    fn first_byte(&self) -> Option<u8> {
        self.parts[0].needle().first().copied().filter(|_| self.anchored_start)
    }

    pub fn matches(&self, text: &str) -> bool {
        let mut rest = text.as_bytes();
        if self.parts.len() == 1 {
            return self.parts[0].needle() == rest;
        }
        let last = self.parts.len() - 1;
        for (i, part) in self.parts.iter().enumerate() {
            let needle = part.needle();
            if needle.is_empty() {
                continue;
            }
            if i == 0 && self.anchored_start {
                match rest.strip_prefix(needle) {
                    Some(r) => rest = r,
                    None => return false,
                }
            } else if i == last && self.anchored_end {
                return rest.ends_with(needle);
            } else {
                match part.find(rest) {
                    Some(at) => rest = &rest[at + needle.len()..],
                    None => return false,
                }
            }
        }
        true
    }
}

/// Patterns matched as one, in order of listing: the text's first byte rules out every
/// pattern that begins with another literal before any is tried (a model name is checked
/// against each provider's and each route's patterns).
#[derive(Debug, Clone, Default)]
pub struct GlobSet {
    globs: Vec<Glob>,
    /// Bit `b` set: some pattern begins with byte `b`.
    first: [u64; 4],
    /// Some pattern begins with `*` or is empty: the first byte rules nothing out.
    open: bool,
}

impl GlobSet {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> GlobSet {
        let mut set = GlobSet::default();
        for p in patterns {
            let g = Glob::new(p);
            match g.first_byte() {
                Some(b) => set.first[usize::from(b >> 6)] |= 1 << (b & 63),
                None => set.open = true,
            }
            set.globs.push(g);
        }
        set
    }

    pub fn matches(&self, text: &str) -> bool {
        if !self.open {
            let Some(&b) = text.as_bytes().first() else { return false };
            if self.first[usize::from(b >> 6)] & (1 << (b & 63)) == 0 {
                return false;
            }
        }
        self.globs.iter().any(|g| g.matches(text))
    }
}

#[cfg(test)]
mod tests {
    use super::{Glob, GlobSet};

    #[test]
    fn a_set_matches_what_one_of_its_patterns_matches() {
        let set = GlobSet::new(["gpt-4*", "o3*", "text-embedding-*"]);
        for (text, want) in [
            ("gpt-4o", true),
            ("o3-mini", true),
            ("text-embedding-3", true),
            ("gpt-5", false),
            ("", false),
            ("claude", false),
        ] {
            assert_eq!(set.matches(text), want, "{text}");
        }
        assert!(GlobSet::new(["a*", "*-x"]).matches("b-x"));
        assert!(GlobSet::new([""]).matches(""));
        assert!(!GlobSet::new([]).matches("a"));
        assert!(GlobSet::new(["\u{e9}t\u{e9}*"]).matches("\u{e9}t\u{e9}-1"));
    }

    #[test]
    fn star_matches_runs() {
        assert!(Glob::new("family-*").matches("family-large-4-5"));
        assert!(!Glob::new("family-*").matches("other-4o"));
        assert!(Glob::new("*-4-5").matches("family-large-4-5"));
        assert!(Glob::new("model-2.5-*").matches("model-2.5-pro"));
        assert!(Glob::new("a*b*c").matches("axxbyyc"));
        assert!(!Glob::new("a*b*c").matches("axxbyy"));
        assert!(Glob::new("exact").matches("exact"));
        assert!(!Glob::new("exact").matches("exactly"));
        assert!(Glob::new("*").matches(""));
        assert!(!Glob::new("ab*ba").matches("aba"));
    }
}
