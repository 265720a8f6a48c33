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

#[cfg(test)]
mod tests {
    use super::Glob;

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
