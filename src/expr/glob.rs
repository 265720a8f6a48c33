//! Glob patterns where `*` matches any run of characters: model patterns, `$like`, `$match`.

#[derive(Debug, Clone)]
pub struct Glob {
    parts: Vec<String>,
    anchored_start: bool,
    anchored_end: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        Glob {
            parts: pattern.split('*').map(str::to_owned).collect(),
            anchored_start: !pattern.starts_with('*'),
            anchored_end: !pattern.ends_with('*'),
        }
    }

    /// How specific the pattern is: exact patterns first, then by the number of literal
    /// characters (`m-2.5-pro*` before `m-2.5-*` before `m-*` before `*`).
    pub fn specificity(&self) -> (bool, usize) {
        (self.parts.len() == 1, self.parts.iter().map(String::len).sum())
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.parts.len() == 1 {
            return self.parts[0] == text;
        }
        let mut rest = text;
        let last = self.parts.len() - 1;
        for (i, part) in self.parts.iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            if i == 0 && self.anchored_start {
                match rest.strip_prefix(part.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                }
            } else if i == last && self.anchored_end {
                return rest.ends_with(part.as_str());
            } else {
                match rest.find(part.as_str()) {
                    Some(at) => rest = &rest[at + part.len()..],
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
